//! Whole-file replacement that a crash cannot tear: temp file, fsync, rename, fsync the folder.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::StoreError;

/// Writes `bytes` to `dir/name` atomically, staging the temp file in `tmp_dir` (same filesystem).
pub fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    tmp_dir: &Path,
) -> Result<(), StoreError> {
    write_atomic_mode(dir, name, bytes, tmp_dir, 0o644)
}

/// [`write_atomic`] with a file mode (0o755 for a script).
pub fn write_atomic_mode(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    tmp_dir: &Path,
    mode: u32,
) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::create_dir_all(tmp_dir).map_err(StoreError::io("create", tmp_dir))?;
    let tmp = tmp_dir.join(format!("{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(StoreError::io("create", &tmp))?;
        f.write_all(bytes).map_err(StoreError::io("write", &tmp))?;
        f.sync_all().map_err(StoreError::io("sync", &tmp))?;
        let dest = dir.join(name);
        fs::rename(&tmp, &dest).map_err(StoreError::io("rename into", &dest))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a folder so that renames into it survive a power loss.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("sync", dir))
}
