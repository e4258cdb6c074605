//! The filesystem primitives every writer shares, knowing nothing of bundles, registries or
//! commands: whole-file atomic replacement ([`write_atomic`], [`AtomicFile`]), free space
//! ([`free_space`]), bounded reads of small files ([`read_bounded`]) and the crash points the
//! crash-safety tests kill the process at ([`crash_point`]).

mod atomic;
mod space;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use atomic::{AtomicFile, check_replaceable, sync_dir, write_atomic, write_atomic_mode};
pub use space::{FreeSpace, free_space};

/// A failure of a filesystem primitive, naming the path involved.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// An I/O error on a path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A write would replace something that is not a regular file.
    #[error("{path} is {what}; refusing to replace it with a regular file")]
    WontReplace {
        /// The destination.
        path: PathBuf,
        /// What is there instead.
        what: &'static str,
    },
    /// A file is larger than the limit it is read with.
    #[error("{path}: larger than the {} MiB ferry reads", limit >> 20)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
}

impl FsError {
    /// A closure turning an `io::Error` of `action` on `path` into an [`FsError::Io`].
    pub fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FsError {
        let path = path.to_path_buf();
        move |source| FsError::Io {
            action,
            path,
            source,
        }
    }
}

impl crate::error::Diagnostic for FsError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            FsError::Io { .. } => crate::error::Kind::Io,
            // A link, folder or device where a file is written, or a file nobody wrote.
            FsError::WontReplace { .. } | FsError::TooLarge { .. } => crate::error::Kind::Bundle,
        }
    }
}

/// The folder a file is in (`.` for a bare name): where its temp file is staged.
pub fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Reads a whole small file, `None` when it does not exist; refuses one larger than `limit`
/// without reading it all (a FIFO or a device reads at most `limit` + 1 bytes).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, FsError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FsError::io("read", path)(e)),
    };
    let too_large = || FsError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    if file.metadata().is_ok_and(|m| m.len() > limit) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(FsError::io("read", path))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(Some(bytes))
}

/// For tests of crash safety only: when `FERRY_TEST_CRASH_AT` names this point, the process
/// kills itself with SIGKILL here, as a power cut or `kill -9` would. Debug builds only: the
/// tests run one, and a release build has no such switch.
pub fn crash_point(name: &str) {
    if cfg!(debug_assertions) && std::env::var_os("FERRY_TEST_CRASH_AT").is_some_and(|v| v == name)
    {
        // SAFETY: raise has no preconditions; SIGKILL ends the process at once.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_bounded_refuses_more_than_the_limit_without_reading_it_all() {
        // /dev/zero never ends: only limit + 1 bytes are read.
        let e = read_bounded(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(matches!(e, FsError::TooLarge { limit: 1024, .. }), "{e}");
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read_bounded(&dir.path().join("absent"), 10)
                .unwrap()
                .is_none()
        );
        fs::write(dir.path().join("f"), b"0123456789").unwrap();
        assert_eq!(
            read_bounded(&dir.path().join("f"), 10).unwrap().unwrap(),
            b"0123456789"
        );
        assert!(read_bounded(&dir.path().join("f"), 9).is_err());
    }

    #[test]
    fn folder_of_a_bare_name_is_the_current_folder() {
        assert_eq!(folder_of(Path::new("x.lock")), Path::new("."));
        assert_eq!(folder_of(Path::new("/a/b")), Path::new("/a"));
    }
}
