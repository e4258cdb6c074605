//! Replacing a bundle's description (index.json, ferry.lock, restore.sh) as a whole, for the
//! commands that change the set of images at once (`rm`, `apply`, a group of `bundle`), and the
//! derived files alone ([`publish_derived`]) to make them agree with index.json. A file whose
//! bytes would not change is not rewritten.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use super::lockfile::{LOCK_FILE_NAME, LockFile};
use super::script::{SCRIPT_NAME, render};
use super::{BundleIndex, Layout, StoreError};
use crate::fsutil::crash_point;

/// Writes index.json, then ferry.lock, then restore.sh, each atomically and only when its bytes
/// differ from what is on disk. Every blob the index names must be stored (and synced) first.
/// Returns how many files were written.
pub fn publish(layout: &Layout, index: &BundleIndex, lock: &LockFile) -> Result<usize, StoreError> {
    let mut written = 0;
    // The crash points (tests only) are where a kill leaves the files disagreeing.
    crash_point("before-index");
    if !holds(layout, "index.json", &index.to_json()) {
        layout.write_index(index)?;
        written += 1;
        crash_point("after-index");
    }
    Ok(written + publish_derived(layout, index, lock)?)
}

/// Writes ferry.lock, then restore.sh, for `index`, each only when its bytes differ; index.json
/// itself is left as it is. Returns how many files were written.
pub fn publish_derived(
    layout: &Layout,
    index: &BundleIndex,
    lock: &LockFile,
) -> Result<usize, StoreError> {
    let mut written = 0;
    if !holds(layout, LOCK_FILE_NAME, &lock.to_json()) {
        layout.write_lock(lock)?;
        written += 1;
        crash_point("after-lock");
    }
    let script = render(index);
    if !holds(layout, SCRIPT_NAME, script.as_bytes()) {
        layout.write_script(SCRIPT_NAME, &script)?;
        written += 1;
    }
    Ok(written)
}

/// Whether `name` at the bundle's root is a regular file holding exactly `bytes`: opened
/// without following a link, and read only when its size matches (a link to /dev/zero is
/// neither followed nor read; the write that follows refuses to replace it).
fn holds(layout: &Layout, name: &str, bytes: &[u8]) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(layout.root().join(name))
    else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if !meta.is_file() || meta.len() != bytes.len() as u64 {
        return false;
    }
    let mut on_disk = Vec::with_capacity(bytes.len());
    file.take(meta.len()).read_to_end(&mut on_disk).is_ok() && on_disk == bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_link_is_neither_read_nor_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_for_write(dir.path()).unwrap();
        // Read through, /dev/zero never ends; written through, the target would change.
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(SCRIPT_NAME)).unwrap();
        let err = publish(&layout, &BundleIndex::default(), &LockFile::default()).unwrap_err();
        assert!(matches!(err, StoreError::WontReplace { .. }), "{err}");
        assert!(dir.path().join(SCRIPT_NAME).is_symlink());
    }
}
