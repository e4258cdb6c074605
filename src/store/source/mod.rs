//! The one way to read a bundle, whatever holds it: a folder (also a read-only mount), a plain
//! `.tar`, a seekable `.tar.zst`, or a `.tar.zst` made by another tool (read sequentially).
//! Shaped like go-containerregistry's layout/tarball images and regclient's `ocidir`/`ocifile`
//! schemes: one interface hands out the bundle's root files (index.json, the lock, restore.sh,
//! the delta marker) and blobs; every command reads through it and none spells
//! `blobs/<algorithm>/<hex>` itself.
//!
//! Everything read is untrusted. Files are opened without following symlinks, archive members
//! are validated (no `..`, no absolute path, blobs are regular files), index.json and the lock
//! are checked as they parse, and a [`Blob`] hands out no byte it has not hashed: a whole read
//! holds its last chunk back until digest and size are checked; a ranged read is served only
//! from a blob verified since its file last changed ([`FileKey`]), and is cut when the file
//! changes under it.

mod archive;
mod blob;
mod folder;
mod zst;

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

pub use archive::ArchiveSource;
pub use blob::{Blob, BlobReader, FileKey, RangeReader, VerifiedCache};
pub use zst::{SEEKABLE_FRAME, SeekableWriter};

use super::lockfile::{LOCK_FILE_NAME, LockFile};
use super::{BundleIndex, Layout, MAX_INDEX_BYTES, MAX_SMALL_BLOB, StoreError};
use crate::digest::Digest;

/// The delta marker's name at a delta's root (`ferry-delta.json`).
pub const MARKER_FILE: &str = "ferry-delta.json";
/// restore.sh's name at a bundle's root.
pub const SCRIPT_FILE: &str = "restore.sh";

/// A blob's path inside a bundle (a folder's file, an archive's member):
/// `blobs/<algorithm>/<hex>`. The one place that spells it.
pub fn blob_member(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}

/// What holds a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A bundle folder.
    Folder,
    /// An uncompressed oci-archive, read with positioned reads.
    Tar,
    /// A `.tar.zst` in the zstd seekable format: any byte is reached by decompressing at most
    /// one frame.
    SeekableZst,
    /// A `.tar.zst` in one zstd stream (made by another tool): read from its start. Opening it
    /// decompresses it once (to find its members; small ones are kept in memory); reading a
    /// blob behind the last one read decompresses from the start again.
    StreamZst,
}

impl SourceKind {
    /// Whether this is an archive file (not a folder).
    pub fn is_archive(self) -> bool {
        self != SourceKind::Folder
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Folder => "bundle folder",
            SourceKind::Tar => "oci-archive (.tar)",
            SourceKind::SeekableZst => "oci-archive (seekable .tar.zst)",
            SourceKind::StreamZst => "oci-archive (.tar.zst, not seekable)",
        })
    }
}

/// What a bundle stores under a digest, found without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobStat {
    /// Nothing.
    Missing,
    /// A regular file of this size.
    File(u64),
    /// Something that is not a blob: a symlink, a folder, a device...
    NotAFile(&'static str),
}

/// Read access to a bundle.
pub trait BundleSource: Send + Sync + fmt::Debug {
    /// The folder or archive file, for messages.
    fn path(&self) -> &Path;
    /// What holds the bundle.
    fn kind(&self) -> SourceKind;
    /// A file at the bundle's root (index.json, ferry.lock, restore.sh, the delta marker,
    /// oci-layout), whole; `None` when absent. Refuses a symlink, a non-file, and a file larger
    /// than `max` bytes.
    fn root_file(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// What is stored under `digest`.
    fn blob_stat(&self, digest: &Digest) -> BlobStat;
    /// Opens a blob: a regular file (never through a symlink), of `expected_size` when given.
    /// A missing blob is `StoreError::Io` of kind `NotFound`.
    fn open_blob(&self, digest: &Digest, expected_size: Option<u64>) -> Result<Blob, StoreError>;
    /// Every blob held, with its size, in the order that reads them cheapest (an archive's
    /// member order; sorted for a folder).
    fn blobs(&self) -> Result<Vec<(Digest, u64)>, StoreError>;

    /// index.json, checked entry by entry (an empty index when absent).
    fn index(&self) -> Result<BundleIndex, StoreError> {
        let path = self.path().join("index.json");
        match self.root_file("index.json", MAX_INDEX_BYTES)? {
            Some(bytes) => BundleIndex::parse(&bytes, &path),
            None => Ok(BundleIndex::default()),
        }
    }

    /// The lock file, `None` when the bundle has none.
    fn lock(&self) -> Result<Option<LockFile>, StoreError> {
        let path = self.path().join(LOCK_FILE_NAME);
        self.root_file(LOCK_FILE_NAME, MAX_INDEX_BYTES)?
            .map(|bytes| LockFile::parse(&bytes, &path))
            .transpose()
    }

    /// sha256 of the lock file's bytes (of no bytes when there is none): what a delta names
    /// its base by.
    fn lock_digest(&self) -> Result<Digest, StoreError> {
        let bytes = self.root_file(LOCK_FILE_NAME, MAX_INDEX_BYTES)?;
        Ok(Digest::sha256_of(bytes.as_deref().unwrap_or_default()))
    }

    /// A whole small blob (a manifest or config), re-hashed, refused above [`MAX_SMALL_BLOB`].
    fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        self.open_blob(digest, None)?.read_verified(MAX_SMALL_BLOB)
    }

    /// Whether a blob is there as a regular file of `size` bytes (not re-hashed).
    fn has_blob(&self, digest: &Digest, size: u64) -> bool {
        self.blob_stat(digest) == BlobStat::File(size)
    }
}

/// Opens BUNDLE, a folder or an archive file, for reading, in place. A folder being written by
/// a running `ferry bundle` (which holds its lock) is refused; so is a path that is neither.
pub fn open(path: &Path) -> Result<Arc<dyn BundleSource>, StoreError> {
    let meta = std::fs::symlink_metadata(path).map_err(|_| StoreError::NotALayout {
        path: path.to_path_buf(),
        reason: "no such folder or archive file".into(),
        hint: None,
    })?;
    // A symlink given on the command line is the user's own choice: follow that one (a bundle
    // on a mount is often reached so); nothing inside the bundle is followed.
    let meta = if meta.is_symlink() {
        std::fs::metadata(path).map_err(StoreError::io("stat", path))?
    } else {
        meta
    };
    if meta.is_dir() {
        refuse_busy(path)?;
        return Ok(Arc::new(Layout::open_read(path)?));
    }
    if !meta.is_file() {
        return Err(StoreError::NotALayout {
            path: path.to_path_buf(),
            reason: "neither a folder nor an archive file".into(),
            hint: None,
        });
    }
    if path.is_symlink() {
        // The archive the link names (the link itself is the user's choice, see above).
        let target = std::fs::canonicalize(path).map_err(StoreError::io("resolve", path))?;
        return Ok(Arc::new(archive::open_file(&target)?));
    }
    Ok(Arc::new(archive::open_file(path)?))
}

/// Refuses a folder whose lock a writer holds (a `ferry bundle` or `apply` running into it).
fn refuse_busy(root: &Path) -> Result<(), StoreError> {
    let Ok(dir) = File::open(root) else {
        return Ok(()); // open_read says what is wrong
    };
    match dir.try_lock_shared() {
        Ok(()) => {
            let _ = dir.unlock();
            Ok(())
        }
        Err(TryLockError::WouldBlock) => Err(StoreError::Busy(root.to_path_buf())),
        Err(TryLockError::Error(_)) => Ok(()), // no locks on this filesystem: nothing to learn
    }
}

/// Opens a file for reading without following a symlink at its last component.
pub(crate) fn open_nofollow(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => StoreError::NotARegularFile {
                path: path.to_path_buf(),
                what: "a symlink",
            },
            _ => StoreError::io("open", path)(e),
        })
}

/// A not-found error for `what` (how sources say a blob or file is absent).
pub(crate) fn not_found(action: &'static str, what: &Path) -> StoreError {
    StoreError::io(action, what)(std::io::ErrorKind::NotFound.into())
}

/// Whether an error says the thing is absent (not that it is wrong).
pub fn is_not_found(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests;
