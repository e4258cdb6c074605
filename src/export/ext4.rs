//! An ext4 filesystem image of a bundle, made by e2fsprogs (`mkfs.ext4 -d`) and checked with
//! `e2fsck -fn`: ready to write to a volume or import as a snapshot.

use std::path::Path;
use std::process::Command;

use super::ExportError;
use crate::store::{Layout, WORK_DIR};

/// How big to make the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// The bundle's size with headroom (metadata, journal, and 10% to spare).
    Auto,
    /// Exactly this many bytes.
    Bytes(u64),
}

/// Bytes the files under `dir` take (each counted in 4 KiB blocks, as ext4 will).
fn tree_bytes(dir: &Path) -> std::io::Result<(u64, u64)> {
    let mut bytes = 0;
    let mut files = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        files += 1;
        if m.is_dir() {
            let (b, f) = tree_bytes(&e.path())?;
            bytes += b + 4096;
            files += f;
        } else {
            bytes += m.len().div_ceil(4096) * 4096;
        }
    }
    Ok((bytes, files))
}

/// The automatic size: the data, one inode per 16 KiB-ish file, the journal, 10% headroom,
/// rounded up to a MiB, never under 16 MiB.
pub fn auto_size(layout: &Layout) -> Result<u64, ExportError> {
    let (bytes, files) = tree_bytes(layout.root())
        .map_err(|e| ExportError::Io(layout.root().display().to_string(), e))?;
    let overhead = files * 256 + (8 << 20) + bytes / 16;
    let size = (bytes + overhead) * 11 / 10;
    Ok(size.div_ceil(1 << 20).max(16) << 20)
}

/// Makes the image at `out`.
pub fn ext4_image(
    layout: &Layout,
    out: &Path,
    size: Size,
    label: &str,
) -> Result<u64, ExportError> {
    if layout.root().join(WORK_DIR).exists() {
        return Err(ExportError::Incomplete(format!(
            "{} has an unfinished ferry run ({WORK_DIR}/)\nhint: run the ferry bundle command again to finish it first",
            layout.root().display()
        )));
    }
    if label.len() > 16 {
        return Err(ExportError::Usage(format!(
            "--label {label:?}: ext4 labels have 16 characters at most"
        )));
    }
    let bytes = match size {
        Size::Auto => auto_size(layout)?,
        Size::Bytes(b) => b,
    };
    let tmp = out.with_file_name(format!(
        ".{}.ferry-{}",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("img"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let tool = |cmd: &mut Command, what: &str| -> Result<(), ExportError> {
        let o = cmd.output().map_err(|e| {
            ExportError::Tool(format!(
                "cannot run {what}: {e}\nhint: it comes with e2fsprogs (apt-get install e2fsprogs)"
            ))
        })?;
        if o.status.success() {
            Ok(())
        } else {
            let _ = std::fs::remove_file(&tmp);
            let stderr = String::from_utf8_lossy(&o.stderr);
            let said = if stderr.trim().is_empty() {
                String::from_utf8_lossy(&o.stdout)
            } else {
                stderr
            };
            Err(ExportError::Tool(format!("{what} failed: {}", said.trim())))
        }
    };
    // Enough inodes for every file whatever the size (mkfs gives one per 16 KiB above
    // 512 MiB, too few for a bundle of many small blobs).
    let (_, files) = tree_bytes(layout.root())
        .map_err(|e| ExportError::Io(layout.root().display().to_string(), e))?;
    let inodes = (files + files / 5 + 1024).to_string();
    // -d copies the tree in; -m 0: no blocks reserved for root on a data volume.
    tool(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0", "-N", &inodes, "-L", label, "-d"])
            .arg(layout.root())
            .arg(&tmp)
            .arg(format!("{}k", bytes / 1024)),
        "mkfs.ext4",
    )
    .map_err(|e| match e {
        ExportError::Tool(m) if m.contains("Could not allocate") || m.contains("No space") => {
            let advice = match size {
                Size::Auto => "please report it: --size auto should have fitted; pass a larger --size meanwhile",
                Size::Bytes(_) => "use --size auto or a larger size",
            };
            ExportError::Tool(format!("{m}\nhint: the image is too small for the bundle; {advice}"))
        }
        other => other,
    })?;
    tool(
        Command::new("e2fsck").args(["-f", "-n"]).arg(&tmp),
        "e2fsck -fn",
    )?;
    std::fs::rename(&tmp, out).map_err(|e| ExportError::Io(out.display().to_string(), e))?;
    Ok(bytes)
}
