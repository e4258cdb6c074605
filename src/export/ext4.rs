//! An ext4 filesystem image of a bundle, made by e2fsprogs (`mkfs.ext4 -d`) and checked with
//! `e2fsck -fn`: ready to write to a volume or import as a snapshot.

use std::process::Command;

use tokio_util::sync::CancellationToken;

use super::archive::complete_images;
use super::output::create_temp;
use super::tree::{Tree, rehash, scan};
use super::{ExportError, Target};
use crate::store::{Layout, WORK_DIR};

/// How big to make the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// The bundle's size with headroom (metadata, journal, and 10% to spare).
    Auto,
    /// Exactly this many bytes.
    Bytes(u64),
}

/// The automatic size for a tree: the data, one inode per 16 KiB-ish file, the journal, 10%
/// headroom, rounded up to a MiB, never under 16 MiB.
fn auto_size_of(tree: &Tree) -> u64 {
    let overhead = tree.files * 256 + (8 << 20) + tree.bytes / 16;
    let size = (tree.bytes + overhead) * 11 / 10;
    size.div_ceil(1 << 20).max(16) << 20
}

/// Makes the image at `out`. Before mkfs copies the folder, every entry is checked (regular
/// files and folders only, blobs only under `blobs/`), every index entry must be complete and
/// every blob is re-hashed: the image is what nodes trust.
pub fn ext4_image(
    layout: &Layout,
    out: &Target,
    size: Size,
    label: &str,
    cancel: &CancellationToken,
) -> Result<u64, ExportError> {
    let Target::File(out) = out else {
        return Err(ExportError::Usage(
            "--ext4 needs a file: mkfs.ext4 cannot write a filesystem to stdout".into(),
        ));
    };
    if layout.root().join(WORK_DIR).exists() {
        return Err(ExportError::Incomplete(format!(
            "{} has an unfinished ferry run ({WORK_DIR}/)",
            layout.root().display()
        ))
        .with_hint("run the ferry bundle command again to finish it first"));
    }
    if label.len() > 16 {
        return Err(ExportError::Usage(format!(
            "--label {label:?}: ext4 labels have 16 characters at most"
        )));
    }
    let tree = scan(layout)?;
    complete_images(layout)?;
    rehash(layout, &tree, cancel)?;
    let bytes = match size {
        Size::Auto => auto_size_of(&tree),
        Size::Bytes(b) => b,
    };
    let tmp = create_temp(out)?;
    // Enough inodes for every file whatever the size (mkfs gives one per 16 KiB above
    // 512 MiB, too few for a bundle of many small blobs).
    let inodes = (tree.files + tree.files / 5 + 1024).to_string();
    // -d copies the tree in; -m 0: no blocks reserved for root on a data volume.
    tool(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0", "-N", &inodes, "-L", label, "-d"])
            .arg(layout.root())
            .arg(tmp.tmp_path())
            .arg(format!("{}k", bytes / 1024)),
        "mkfs.ext4",
        cancel,
    )
    .map_err(|e| match e {
        ExportError::Tool(m) if m.contains("Could not allocate") || m.contains("No space") => {
            let advice = match size {
                Size::Auto => "please report it: --size auto should have fitted; pass a larger --size meanwhile",
                Size::Bytes(_) => "use --size auto or a larger size",
            };
            ExportError::Tool(m)
                .with_hint(format!("the image is too small for the bundle; {advice}"))
        }
        other => other,
    })?;
    tool(
        Command::new("e2fsck")
            .args(["-f", "-n"])
            .arg(tmp.tmp_path()),
        "e2fsck -fn",
        cancel,
    )?;
    tmp.commit().map_err(crate::store::StoreError::from)?;
    Ok(bytes)
}

/// Runs an e2fsprogs tool to completion, or kills it when `cancel` fires (the temp image is
/// then removed by its guard).
fn tool(cmd: &mut Command, what: &str, cancel: &CancellationToken) -> Result<(), ExportError> {
    let ran = crate::tool::run_until(cmd, || cancel.is_cancelled()).map_err(|e| {
        ExportError::Tool(format!("cannot run {what}: {e}"))
            .with_hint("it comes with e2fsprogs (apt-get install e2fsprogs)")
    })?;
    let crate::tool::Ran {
        status,
        stdout,
        stderr,
    } = ran;
    match status {
        Some(s) if !cancel.is_cancelled() && s.success() => return Ok(()),
        Some(_) if !cancel.is_cancelled() => {}
        _ => return Err(ExportError::Interrupted),
    }
    let said = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    Err(ExportError::Tool(format!("{what} failed: {}", said.trim())))
}
