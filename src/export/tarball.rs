//! Deterministic tar streams of a bundle: sorted entries, fixed owner, mode and time, so that
//! the same bundle gives the same bytes.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::digest::Digest;
use crate::store::Layout;

/// What goes into a tar of a layout: in-memory files (index.json written for the occasion,
/// oci-layout, manifest.json...) and blobs read from the bundle.
#[derive(Debug, Default)]
pub struct TarPlan {
    /// `(path, bytes)` written as they are.
    pub files: Vec<(String, Vec<u8>)>,
    /// Blobs to include under `blobs/<algorithm>/<hex>`.
    pub blobs: Vec<Digest>,
}

fn header(path: &str, size: u64, directory: bool) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(if directory { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(if directory {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_cksum();
    Ok(h)
}

/// Writes the plan as a tar: files first, then `blobs/` and the blobs, everything sorted.
pub fn write_tar(layout: &Layout, plan: &TarPlan, out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    let mut files: Vec<&(String, Vec<u8>)> = plan.files.iter().collect();
    files.sort_by(|a, c| a.0.cmp(&c.0));
    for (path, bytes) in files {
        b.append(&header(path, bytes.len() as u64, false)?, bytes.as_slice())?;
    }
    let mut blobs = plan.blobs.clone();
    blobs.sort();
    blobs.dedup();
    b.append(&header("blobs/", 0, true)?, io::empty())?;
    let mut dirs: Vec<&str> = blobs.iter().map(|d| d.algorithm().as_str()).collect();
    dirs.dedup();
    for alg in dirs {
        b.append(&header(&format!("blobs/{alg}/"), 0, true)?, io::empty())?;
        for d in blobs.iter().filter(|d| d.algorithm().as_str() == alg) {
            let path = layout.blob_path(d);
            let f = File::open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let size = f.metadata()?.len();
            b.append(
                &header(&format!("blobs/{alg}/{}", d.hex()), size, false)?,
                f,
            )?;
        }
    }
    b.into_inner()?.flush()
}

/// Writes a file through a temp file in the same folder, renamed when complete.
pub fn write_file_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.ferry-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        write(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
