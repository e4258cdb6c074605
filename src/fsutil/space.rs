//! Free space of the filesystem holding a path (statvfs), to refuse up front what cannot fit.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Space on a filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    /// What an unprivileged writer may still use (`f_bavail`; root may use a little more).
    pub available: u64,
    /// The filesystem's size (`f_blocks`).
    pub total: u64,
}

/// Free space of the filesystem that holds `path`.
pub fn free_space(path: &Path) -> io::Result<FreeSpace> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
    // SAFETY: statvfs fills the zeroed struct it is given; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let unit = st.f_frsize as u64;
    Ok(FreeSpace {
        available: (st.f_bavail as u64).saturating_mul(unit),
        total: (st.f_blocks as u64).saturating_mul(unit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_filesystem_of_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = free_space(dir.path()).unwrap();
        assert!(s.total > 0 && s.available <= s.total, "{s:?}");
        assert!(free_space(&dir.path().join("absent")).is_err());
    }
}
