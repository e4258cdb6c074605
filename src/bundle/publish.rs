//! Replacing a bundle's description (index.json, ferry.lock, restore.sh) as a whole, for the
//! commands that change the set of images at once (`rm`, `apply`). A file whose bytes would not
//! change is not rewritten.

use crate::lock::{LOCK_FILE_NAME, LockFile};
use crate::restore::script::{SCRIPT_NAME, render};
use crate::store::{BundleIndex, Layout, StoreError, gc::crash_point};

/// Writes index.json, then ferry.lock, then restore.sh, each atomically and only when its bytes
/// differ from what is on disk. Every blob the index names must be stored (and synced) first.
/// Returns how many files were written.
pub fn publish(layout: &Layout, index: &BundleIndex, lock: &LockFile) -> Result<usize, StoreError> {
    let mut written = 0;
    let same = |name: &str, bytes: &[u8]| {
        std::fs::read(layout.root().join(name)).is_ok_and(|old| old == bytes)
    };
    crash_point("before-index");
    let index_json = index.to_json();
    if !same("index.json", &index_json) {
        layout.write_index(index)?;
        written += 1;
    }
    crash_point("after-index");
    if !same(LOCK_FILE_NAME, &lock.to_json()) {
        layout.write_lock(lock)?;
        written += 1;
    }
    let script = render(index);
    if !same(SCRIPT_NAME, script.as_bytes()) {
        layout.write_script(SCRIPT_NAME, &script)?;
        written += 1;
    }
    Ok(written)
}
