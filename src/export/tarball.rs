//! Deterministic tar streams of a bundle: sorted entries, fixed owner, mode and time, so that
//! the same bundle gives the same bytes. Blobs are re-hashed as they are copied.

use std::collections::BTreeMap;
use std::io::{self, Write};

use tokio_util::sync::CancellationToken;

use super::ExportError;
use super::checked::{open_blob, stopped};
use crate::digest::Digest;
use crate::store::BundleSource;
use crate::store::source::{SCRIPT_FILE, blob_member};

/// What goes into a tar of a layout: in-memory files (index.json written for the occasion,
/// oci-layout, manifest.json...) and blobs read from the bundle.
#[derive(Debug, Default)]
pub struct TarPlan {
    /// `(path, bytes)` written as they are.
    pub files: Vec<(String, Vec<u8>)>,
    /// Blobs to include under `blobs/<algorithm>/<hex>`.
    pub blobs: Vec<Digest>,
    /// The sizes descriptors declare for them, where known (a blob of another size fails).
    pub sizes: BTreeMap<Digest, u64>,
}

impl TarPlan {
    /// Adds a blob with the size its descriptor declares. Two descriptors that declare two
    /// sizes for one digest cannot both be right: the plan is refused.
    pub fn add_blob(&mut self, digest: Digest, size: u64) -> Result<(), ExportError> {
        if let Some(other) = self.sizes.insert(digest.clone(), size)
            && other != size
        {
            return Err(ExportError::Incomplete(format!(
                "{digest}: descriptors declare two sizes ({other} and {size})"
            )));
        }
        self.blobs.push(digest);
        Ok(())
    }

    /// The bytes [`write_tar_checked`] writes for this plan (blobs without a declared size
    /// count as empty): the total a progress bar counts towards.
    pub fn tar_size(&self) -> u64 {
        let padded = |n: u64| n.div_ceil(512) * 512;
        // A header, a GNU long-name entry first when the path passes ustar's 100 bytes.
        let member = |path: &str, size: u64| {
            let long = if path.len() > 100 {
                512 + padded(path.len() as u64 + 1)
            } else {
                0
            };
            long + 512 + padded(size)
        };
        let mut blobs = self.blobs.clone();
        blobs.sort();
        blobs.dedup();
        let mut algorithms: Vec<&str> = blobs.iter().map(|d| d.algorithm().as_str()).collect();
        algorithms.dedup();
        let files: u64 = self
            .files
            .iter()
            .map(|(path, bytes)| member(path, bytes.len() as u64))
            .sum();
        let blob_bytes: u64 = blobs
            .iter()
            .map(|d| member(&blob_member(d), self.sizes.get(d).copied().unwrap_or(0)))
            .sum();
        // `blobs/`, one folder per algorithm, and the two zero blocks that end the archive.
        files + blob_bytes + 512 * (1 + algorithms.len() as u64) + 1024
    }
}

/// A header without its path: `append_data` sets it, with a GNU long-name entry before it when
/// it does not fit ustar's 100 bytes (`blobs/sha512/<128 hex>` does not).
fn header(size: u64, directory: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
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
    h
}

/// [`write_tar_checked`] for a stream that cannot be interrupted by a signal (restore into
/// `ctr`): any failure, a damaged blob included, is an `io::Error`.
pub fn write_tar(layout: &dyn BundleSource, plan: &TarPlan, mut out: impl Write) -> io::Result<()> {
    write_tar_checked(
        layout,
        plan,
        &mut out,
        "the tar stream",
        &CancellationToken::new(),
    )
    .map_err(|e| match e {
        ExportError::Io(_, e) => e,
        ExportError::Blob(e) => io::Error::new(io::ErrorKind::InvalidData, e),
        other => io::Error::other(other),
    })
}

/// Writes the plan as a tar to `out` (named `name` in errors): files first, then `blobs/` and
/// the blobs, everything sorted. A blob that is missing, not a regular file, of another size or
/// content than its digest fails the whole tar ([`ExportError::Blob`]).
pub fn write_tar_checked(
    layout: &dyn BundleSource,
    plan: &TarPlan,
    out: &mut dyn Write,
    name: &str,
    cancel: &CancellationToken,
) -> Result<(), ExportError> {
    let mut b = tar::Builder::new(out);
    match append_all(&mut b, layout, plan, name, cancel) {
        Ok(()) => b
            .into_inner()
            .and_then(|w| w.flush())
            .map_err(|e| stopped(name, e)),
        Err(e) => {
            // Dropped, the builder would end the archive properly: a failed stream to stdout
            // must not look complete to whatever reads it.
            std::mem::forget(b);
            Err(e)
        }
    }
}

fn append_all(
    b: &mut tar::Builder<&mut dyn Write>,
    layout: &dyn BundleSource,
    plan: &TarPlan,
    name: &str,
    cancel: &CancellationToken,
) -> Result<(), ExportError> {
    let fail = |e| stopped(name, e);
    let mut files: Vec<&(String, Vec<u8>)> = plan.files.iter().collect();
    files.sort_by(|a, c| a.0.cmp(&c.0));
    for (path, bytes) in files {
        let mut h = header(bytes.len() as u64, false);
        if path == SCRIPT_FILE {
            h.set_mode(0o755);
        }
        b.append_data(&mut h, path, bytes.as_slice())
            .map_err(fail)?;
    }
    // A flush ends a frame of a seekable .tar.zst: the small files share the first one (what
    // `ls` reads), and every blob starts its own.
    b.get_mut().flush().map_err(fail)?;
    let mut blobs = plan.blobs.clone();
    blobs.sort();
    blobs.dedup();
    b.append_data(&mut header(0, true), "blobs/", io::empty())
        .map_err(fail)?;
    let mut dirs: Vec<&str> = blobs.iter().map(|d| d.algorithm().as_str()).collect();
    dirs.dedup();
    for alg in dirs {
        let dir = format!("blobs/{alg}/");
        b.append_data(&mut header(0, true), &dir, io::empty())
            .map_err(fail)?;
        for d in blobs.iter().filter(|d| d.algorithm().as_str() == alg) {
            let (len, reader) = open_blob(layout, d, plan.sizes.get(d).copied(), cancel)?;
            b.append_data(&mut header(len, false), blob_member(d), reader)
                .map_err(fail)?;
            b.get_mut().flush().map_err(fail)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::report::{Counting, Event, Reporter};
    use crate::store::Layout;

    /// Sums the bytes of the copy events it hears.
    #[derive(Default)]
    struct Sum(AtomicU64);

    impl Reporter for Sum {
        fn event(&self, event: &Event) {
            if let Event::Copied { bytes } = event {
                self.0.fetch_add(*bytes, Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn the_planned_size_is_the_tar_written_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_for_write(dir.path()).unwrap();
        // Sizes around tar's 512-byte blocks, and one of several MiB (counted in steps).
        let blobs: Vec<_> = [0usize, 1, 511, 512, 513, 5 << 20]
            .iter()
            .map(|&n| {
                let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                (Digest::sha256_of(&bytes), bytes)
            })
            .collect();
        layout.land(layout.stage_blobs(&blobs).unwrap()).unwrap();
        let mut plan = TarPlan::default();
        for (d, bytes) in &blobs {
            plan.add_blob(d.clone(), bytes.len() as u64).unwrap();
        }
        plan.files.push(("index.json".into(), vec![b'x'; 700]));
        plan.files.push(("oci-layout".into(), Vec::new()));
        let sum = Sum::default();
        let mut tar = Vec::new();
        write_tar(&layout, &plan, Counting::new(&mut tar, &sum)).unwrap();
        assert_eq!(plan.tar_size(), tar.len() as u64);
        assert_eq!(sum.0.load(Ordering::Relaxed), tar.len() as u64);
    }
}
