//! An opened blob of any source, and the readers that hand out only checked bytes.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::super::{StoreError, blob_read_error};
use crate::digest::{self, Digest, Hasher};

/// Bytes held back by a whole read until the blob's digest and size are checked: whatever
/// consumes the reader (a tar, an HTTP body, an upload) never has the complete blob unless it
/// is right.
const HOLD_BACK: u64 = 64 * 1024;

/// What identifies the content of a file on disk: any write changes its ctime (which no
/// program can set back), a replacement its inode. A blob verified under one key is trusted
/// for ranged reads only while the file still has that key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileKey {
    /// The key of an open file now (`fstat`).
    pub fn of(file: &File) -> io::Result<FileKey> {
        Ok(FileKey::of_metadata(&file.metadata()?))
    }

    /// The key of a file whose metadata was read (to tell whether a path now names another
    /// file, or the same one changed).
    pub fn of_metadata(m: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Blobs whose whole content was hashed and found right, with the key their file had then.
#[derive(Debug, Default)]
pub struct VerifiedCache(Mutex<HashMap<Digest, FileKey>>);

impl VerifiedCache {
    fn get(&self, digest: &Digest) -> Option<FileKey> {
        self.0.lock().expect("not poisoned").get(digest).copied()
    }

    fn insert(&self, digest: &Digest, key: FileKey) {
        self.0
            .lock()
            .expect("not poisoned")
            .insert(digest.clone(), key);
    }

    /// Forgets a blob (found wrong).
    pub fn forget(&self, digest: &Digest) {
        self.0.lock().expect("not poisoned").remove(digest);
    }
}

/// Where blob bytes are read from: a blob file, an archive file, or a decompressed archive.
pub(crate) trait Space: Send + Sync + fmt::Debug {
    /// A reader of the bytes from `offset` on (the caller bounds the length).
    fn reader_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>>;
    /// The key of the file the bytes come from, now.
    fn key(&self) -> io::Result<FileKey>;
}

/// Reads a file from an offset with `pread`, leaving any cursor alone.
#[derive(Debug)]
pub(crate) struct PositionedReader {
    pub file: Arc<File>,
    pub offset: u64,
}

impl Read for PositionedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// A plain file as a space (a blob file, or an uncompressed archive).
#[derive(Debug)]
pub(crate) struct FileSpace(pub Arc<File>);

impl Space for FileSpace {
    fn reader_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(PositionedReader {
            file: self.0.clone(),
            offset,
        }))
    }

    fn key(&self) -> io::Result<FileKey> {
        FileKey::of(&self.0)
    }
}

/// An opened blob: its digest and size, and where its bytes are.
#[derive(Debug, Clone)]
pub struct Blob {
    digest: Digest,
    size: u64,
    space: Arc<dyn Space>,
    offset: u64,
    /// Whether the blob is a file of its own, which may be longer than its size (one byte past
    /// it is read to catch that); an archive member ends where its header says.
    own_file: bool,
    path: PathBuf,
    verified: Arc<VerifiedCache>,
}

/// Where an opened blob's bytes are.
pub(crate) struct At {
    pub space: Arc<dyn Space>,
    pub offset: u64,
    pub own_file: bool,
}

impl Blob {
    pub(crate) fn new(
        digest: Digest,
        size: u64,
        at: At,
        path: PathBuf,
        verified: Arc<VerifiedCache>,
    ) -> Blob {
        Blob {
            digest,
            size,
            space: at.space,
            offset: at.offset,
            own_file: at.own_file,
            path,
            verified,
        }
    }

    /// Its size (checked against the expected one when it was opened).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Where it is, for messages (`archive.tar.zst:blobs/...` for an archive).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn raw(&self) -> io::Result<io::Take<Box<dyn Read + Send>>> {
        // One byte past the size of a file is readable, so a longer file is caught, not cut.
        let probe = u64::from(self.own_file);
        Ok(self.space.reader_at(self.offset)?.take(self.size + probe))
    }

    /// A reader over the whole blob that hashes every byte and holds its last chunk back until
    /// digest and size are checked: a mismatch is an `InvalidData` error (wrapping
    /// [`digest::Mismatch`]) before the last bytes are handed out. A blob read whole and right
    /// is remembered as verified (for [`Blob::range_reader`]).
    pub fn reader(&self) -> io::Result<BlobReader> {
        let key = self.space.key()?;
        Ok(BlobReader {
            inner: self.raw()?,
            hasher: Some(Hasher::new(self.digest.algorithm())),
            blob: self.clone(),
            key,
            read: 0,
            tail: Vec::new(),
            tail_at: None,
        })
    }

    /// Reads and checks the whole blob, refusing one above `max` bytes before reading.
    pub fn read_verified(&self, max: u64) -> Result<Vec<u8>, StoreError> {
        if self.size > max {
            return Err(StoreError::TooLarge {
                path: self.path.clone(),
                size: self.size,
                max,
            });
        }
        let mut out = Vec::with_capacity(self.size as usize);
        self.reader()
            .and_then(|mut r| r.read_to_end(&mut out))
            .map_err(|e| self.error(e))?;
        Ok(out)
    }

    /// Reads the whole blob through the hash and checks it.
    pub fn verify(&self) -> Result<(), StoreError> {
        self.reader()
            .and_then(|mut r| io::copy(&mut r, &mut io::sink()))
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Hashes what is stored (up to 1 byte past its size) without judging it: the digest the
    /// content has and its length, for a report of what is wrong. A right blob is remembered as
    /// verified. `on_bytes` is told of progress.
    pub fn actual_digest(&self, on_bytes: &dyn Fn(u64)) -> Result<(Digest, u64), StoreError> {
        let key = self.space.key().map_err(|e| self.error(e))?;
        let raw = self.raw().map_err(|e| self.error(e))?;
        // Reads ahead on another thread: a large blob costs the hash alone.
        let h = crate::digest::hash_reader(self.digest.algorithm(), raw, on_bytes)
            .map_err(|e| self.error(e))?;
        let len = h.len();
        let actual = h.finish();
        if actual == self.digest && len == self.size {
            self.mark_verified(key);
        }
        Ok((actual, len))
    }

    /// Whether the blob was verified whole since its file last changed.
    pub fn is_verified(&self) -> bool {
        self.verified_key().is_some()
    }

    /// The key the blob's file had when it was verified, when it still has it.
    fn verified_key(&self) -> Option<FileKey> {
        let now = self.space.key().ok()?;
        (self.verified.get(&self.digest) == Some(now)).then_some(now)
    }

    /// A reader of the whole blob that hands out only checked bytes, as cheaply as that can
    /// be: a blob verified since its file last changed is read as it is and cut as soon as the
    /// file changes (as [`Blob::range_reader`]); any other is read through the hash
    /// ([`Blob::reader`]). What serves the same blob many times hashes it once.
    pub fn checked_reader(&self) -> io::Result<Box<dyn Read + Send>> {
        let Some(key) = self.verified_key() else {
            return Ok(Box::new(self.reader()?));
        };
        let inner = self.space.reader_at(self.offset)?.take(self.size);
        Ok(Box::new(RangeReader {
            inner,
            blob: self.clone(),
            key,
            left: self.size,
        }))
    }

    /// A reader of bytes `start..end` of the blob. A part cannot be checked on its own: the
    /// blob is verified whole first unless it was since its file last changed, and the reader
    /// fails (cutting whatever streams it) as soon as the file changes.
    pub fn range_reader(&self, start: u64, end: u64) -> Result<RangeReader, StoreError> {
        if !self.is_verified() {
            self.verify()?;
        }
        let key = self
            .verified
            .get(&self.digest)
            .ok_or_else(|| self.error(io::Error::other("changed while it was verified")))?;
        let end = end.min(self.size);
        let start = start.min(end);
        let inner = self
            .space
            .reader_at(self.offset + start)
            .map_err(|e| self.error(e))?
            .take(end - start);
        Ok(RangeReader {
            inner,
            blob: self.clone(),
            key,
            left: end - start,
        })
    }

    fn mark_verified(&self, key: FileKey) {
        // Only when the file did not change while it was read.
        if self.space.key().is_ok_and(|now| now == key) {
            self.verified.insert(&self.digest, key);
        }
    }

    /// Forgets that the blob was verified (it was found wrong).
    pub fn forget(&self) {
        self.verified.forget(&self.digest);
    }

    /// A read error as a store error naming the blob (a mismatch stays a mismatch).
    pub fn error(&self, e: io::Error) -> StoreError {
        blob_read_error(self.path.clone(), self.digest.clone(), e)
    }
}

/// A whole-blob reader that hands out no byte of a blob that is not right: see
/// [`Blob::reader`].
pub struct BlobReader {
    inner: io::Take<Box<dyn Read + Send>>,
    hasher: Option<Hasher>,
    blob: Blob,
    key: FileKey,
    /// Bytes read from the source.
    read: u64,
    /// The held-back end of the blob, handed out once checked.
    tail: Vec<u8>,
    /// How much of `tail` was handed out; `None` until it is checked.
    tail_at: Option<usize>,
}

impl BlobReader {
    fn mismatch(m: digest::Mismatch) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, m)
    }

    /// Reads the rest (the held-back tail and one byte more), then checks digest and size.
    fn finish(&mut self) -> io::Result<()> {
        let size = self.blob.size;
        let mut hasher = self.hasher.take().expect("finished once");
        // Read straight into the tail: one buffer per reader finishing, not two.
        self.tail.reserve_exact((size - self.read) as usize + 1);
        self.inner.read_to_end(&mut self.tail)?;
        hasher.update(&self.tail);
        digest::check(hasher, &self.blob.digest, Some(size)).map_err(Self::mismatch)?;
        self.blob.mark_verified(self.key);
        self.tail.truncate(self.tail.len().min(size as usize));
        self.tail_at = Some(0);
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(at) = self.tail_at {
            let n = buf.len().min(self.tail.len() - at);
            buf[..n].copy_from_slice(&self.tail[at..at + n]);
            self.tail_at = Some(at + n);
            return Ok(n);
        }
        let open = self.blob.size.saturating_sub(HOLD_BACK);
        if self.read < open {
            let want = buf.len().min((open - self.read) as usize);
            let n = self.inner.read(&mut buf[..want])?;
            if n == 0 {
                return Err(Self::mismatch(digest::Mismatch::Size {
                    expected: self.blob.size,
                    actual: self.read,
                }));
            }
            if let Some(h) = &mut self.hasher {
                h.update(&buf[..n]);
            }
            self.read += n as u64;
            return Ok(n);
        }
        self.finish()?;
        self.read(buf)
    }
}

/// Bytes of a verified blob: fails as soon as its file is found changed since it was verified.
pub struct RangeReader {
    inner: io::Take<Box<dyn Read + Send>>,
    blob: Blob,
    key: FileKey,
    left: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        // Checked after the read: the bytes just read came from the file as verified, or the
        // key now differs and they are not handed out.
        if self.blob.space.key()? != self.key {
            self.blob.forget();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} changed on disk since it was verified",
                    self.blob.path.display()
                ),
            ));
        }
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}
