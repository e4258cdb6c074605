//! Opening blob files of a bundle folder, which may have been written by another tool or
//! tampered with: never through a symlink, regular files only, of the size their descriptor
//! declares. Reading them (re-hashed) is [`super::source::Blob`]'s job.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Layout, StoreError};
use crate::digest::{self, Digest, Hasher};

/// A blob file opened for reading: not a symlink, a regular file, of a known size.
#[derive(Debug)]
pub struct BlobFile {
    file: File,
    path: PathBuf,
    digest: Digest,
    size: u64,
}

impl BlobFile {
    /// Its size on disk (checked against the expected size when one was given).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest it is stored under.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file and where it is.
    pub(crate) fn into_parts(self) -> (File, PathBuf) {
        (self.file, self.path)
    }
}

/// Turns a read error into a store error, keeping a digest mismatch as its own kind.
pub(crate) fn blob_read_error(path: PathBuf, digest: Digest, e: io::Error) -> StoreError {
    let mismatch = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<digest::Mismatch>())
        .cloned();
    match mismatch {
        Some(source) => StoreError::Mismatch { digest, source },
        None => StoreError::io("read", &path)(e),
    }
}

impl Layout {
    /// Opens a stored blob for reading. Refuses a symlink (at `blobs/`, `blobs/<alg>/` or the
    /// blob itself), anything that is not a regular file, and a file whose size differs from
    /// `expected_size` when given.
    pub fn open_blob(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
    ) -> Result<BlobFile, StoreError> {
        let path = self.blob_path(digest);
        // O_NOFOLLOW covers the last component; the two folders above it are checked here.
        for dir in [self.root().join("blobs"), self.blob_dir(digest.algorithm())] {
            if let Ok(m) = dir.symlink_metadata()
                && !m.is_dir()
            {
                return Err(StoreError::NotARegularFile {
                    path: dir,
                    what: "a symlink or file where a folder belongs",
                });
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => StoreError::NotARegularFile {
                    path: path.clone(),
                    what: "a symlink",
                },
                _ => StoreError::io("open", &path)(e),
            })?;
        let meta = file.metadata().map_err(StoreError::io("stat", &path))?;
        if !meta.is_file() {
            return Err(StoreError::NotARegularFile {
                path,
                what: "not a regular file",
            });
        }
        if let Some(expected) = expected_size
            && meta.len() != expected
        {
            return Err(StoreError::Mismatch {
                digest: digest.clone(),
                source: digest::Mismatch::Size {
                    expected,
                    actual: meta.len(),
                },
            });
        }
        Ok(BlobFile {
            file,
            path,
            digest: digest.clone(),
            size: meta.len(),
        })
    }
}

/// A reader that hashes what passes and, at its end, checks digest and size; a mismatch is an
/// `InvalidData` error wrapping [`digest::Mismatch`]. It never reads past `size` bytes.
#[derive(Debug)]
pub struct VerifiedReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    digest: Digest,
    size: u64,
}

impl<R: Read> VerifiedReader<R> {
    /// Wraps `inner`, which must yield exactly `size` bytes hashing to `digest`.
    pub fn new(inner: R, digest: Digest, size: u64) -> VerifiedReader<R> {
        VerifiedReader {
            inner,
            hasher: Some(Hasher::new(digest.algorithm())),
            digest,
            size,
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        let Some(hasher) = self.hasher.take() else {
            return Ok(());
        };
        digest::check(hasher, &self.digest, Some(self.size))
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m))
    }
}

impl<R: Read> Read for VerifiedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(hasher) = &mut self.hasher else {
            return Ok(0);
        };
        // One byte past the size is asked for, so a longer file is caught, not cut silently.
        let left = (self.size - hasher.len().min(self.size)) as usize + 1;
        let want = buf.len().min(left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 || hasher.len() + n as u64 > self.size {
            if n > 0 {
                hasher.update(&buf[..n]);
            }
            self.finish()?;
            return Ok(0);
        }
        hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BundleSource;
    use std::fs;

    fn layout_with(content: &[u8]) -> (tempfile::TempDir, Layout, Digest) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_for_write(dir.path()).unwrap();
        let digest = Digest::sha256_of(content);
        layout.put_blob(&digest, content).unwrap();
        (dir, layout, digest)
    }

    #[test]
    fn reads_and_verifies_good_content() {
        let (_d, layout, digest) = layout_with(b"hello world");
        let blob = BundleSource::open_blob(&layout, &digest, Some(11)).unwrap();
        blob.verify().unwrap();
        assert_eq!(blob.read_verified(1024).unwrap(), b"hello world");
    }

    #[test]
    fn flipped_truncated_and_longer_content_fail_at_the_end() {
        for bad in [&b"hello worle"[..], b"hello", b"hello world!"] {
            let (_d, layout, digest) = layout_with(b"hello world");
            fs::write(layout.blob_path(&digest), bad).unwrap();
            let blob = BundleSource::open_blob(&layout, &digest, None).unwrap();
            let mut out = Vec::new();
            let err = blob.reader().unwrap().read_to_end(&mut out).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}");
            assert!(matches!(
                blob.read_verified(1024),
                Err(StoreError::Mismatch { .. })
            ));
        }
    }

    #[test]
    fn wrong_size_missing_and_too_large_are_refused() {
        let (_d, layout, digest) = layout_with(b"hello world");
        assert!(matches!(
            layout.open_blob(&digest, Some(12)),
            Err(StoreError::Mismatch { .. })
        ));
        let absent = Digest::sha256_of(b"absent");
        assert!(matches!(
            layout.open_blob(&absent, None),
            Err(StoreError::Io { .. })
        ));
        let blob = BundleSource::open_blob(&layout, &digest, None).unwrap();
        assert!(matches!(
            blob.read_verified(4),
            Err(StoreError::TooLarge { .. })
        ));
    }

    #[test]
    fn symlinks_and_non_files_are_refused() {
        let (dir, layout, digest) = layout_with(b"hello world");
        let target = dir.path().join("outside");
        fs::write(&target, b"hello world").unwrap();
        let path = layout.blob_path(&digest);
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(matches!(
            layout.open_blob(&digest, None),
            Err(StoreError::NotARegularFile { .. })
        ));
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(
            layout.open_blob(&digest, None),
            Err(StoreError::NotARegularFile { .. })
        ));
        // A symlinked blobs/sha256 folder.
        fs::remove_dir(&path).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join(digest.hex()), b"hello world").unwrap();
        let alg_dir = layout.blob_dir(digest.algorithm());
        fs::remove_dir_all(&alg_dir).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &alg_dir).unwrap();
        assert!(matches!(
            layout.open_blob(&digest, None),
            Err(StoreError::NotARegularFile { .. })
        ));
    }
}
