//! Free space of a filesystem, for preflight checks before large writes.
//!
//! A private helper: the storage work on the store adds its own query; the two should become
//! one when both are merged.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes an unprivileged writer may still use on the filesystem holding `path` (statvfs's
/// `f_bavail * f_frsize`).
pub fn available_bytes(path: &Path) -> io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: statvfs is plain old data that the call fills; zeroed is a valid value for it.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `s` a valid, writable statvfs for the call's duration.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_temp_folder_has_some_space() {
        let dir = tempfile::tempdir().unwrap();
        assert!(super::available_bytes(dir.path()).unwrap() > 0);
        assert!(super::available_bytes(&dir.path().join("absent")).is_err());
    }
}
