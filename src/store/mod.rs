//! The bundle on disk: an OCI image layout with ferry's lock file beside it.
//!
//! Every write goes through a temp file in the bundle's own filesystem, is hashed and checked
//! while written, fsynced and renamed, so a crash at any instant leaves a valid layout.
//! This module knows nothing of registries.

mod blob;
mod discard;
pub mod gc;
mod index;
pub mod inside;
mod inspect;
mod lock_source;
pub mod lockfile;
mod partial;
pub mod publish;
mod read;
pub mod script;
pub mod select;
pub mod source;
pub mod verify;

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

pub use blob::{BlobWriter, StagedBlob};
pub use discard::discard_created;
pub use index::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_PLATFORMS, ANNOTATION_REF_NAME, BundleIndex, IndexEntry,
    MAX_INDEX_BYTES, check_entry,
};
pub use inside::InsideDir;
pub use inspect::{ImageContents, PlatformManifest, inspect_entry};
pub use partial::{MAX_PARTS, Part, PartialDownload, contiguous, plan_parts};
pub(crate) use read::blob_read_error;
pub use read::{BlobFile, VerifiedReader};
pub use source::{Blob, BlobStat, BundleSource, SourceKind};

use crate::digest::Digest;
use crate::fsutil::{FsError, write_atomic, write_atomic_mode};
use lockfile::{LOCK_FILE_NAME, LockFile};

/// Content of the `oci-layout` file.
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// The most ferry reads into memory for one manifest or config: a manifest is at most 4 MiB
/// (as registries and containerd enforce); image configs of real images stay far below this.
pub const MAX_SMALL_BLOB: u64 = 16 << 20;

/// Ferry's working folder inside a bundle: temp files and partial downloads (never exported).
pub const WORK_DIR: &str = ".ferry";

/// A failure reading or writing the bundle, naming the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What ferry was doing.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Another process holds the bundle.
    #[error("{0} is in use by another ferry process")]
    Busy(PathBuf),
    /// `-o` names a folder with other files in it and no OCI layout.
    #[error("{0} is not an OCI image layout: the folder has other files and no oci-layout")]
    NotEmpty(PathBuf),
    /// The folder is not an OCI layout.
    #[error("{path} is not an OCI image layout: {reason}")]
    NotALayout {
        /// The folder.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// Content did not match its digest while being stored.
    #[error("{digest}: {source}")]
    Mismatch {
        /// The blob.
        digest: Digest,
        /// How it differs.
        source: crate::digest::Mismatch,
    },
    /// A path in the bundle is a symlink, device or folder where a regular file belongs.
    #[error("{path}: {what}; refusing to read it (a bundle holds regular files only)")]
    NotARegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// A folder ferry walks into (`.ferry`, `blobs/sha256`, a hosts.toml folder) is a link or
    /// not a folder: never followed, for reading, writing or removing.
    #[error(
        "{path} is {what} where a folder belongs; ferry never follows a link out of the folder \
         it works in (for reading, writing or removing)"
    )]
    LinkInside {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// A write would replace something that is not a regular file.
    #[error("{path} is {what}; refusing to replace it with a regular file")]
    WontReplace {
        /// The destination.
        path: PathBuf,
        /// What is there instead.
        what: &'static str,
    },
    /// A file in the bundle is larger than ferry reads into memory for its kind.
    #[error("{path}: {size} bytes is more than the {max} bytes allowed for it")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A file in the bundle holds what ferry never writes (changed by another tool).
    #[error("{path}: {reason}")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// A JSON document in the bundle does not parse.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }

    /// True when the cause is a full disk or quota, which a retry will not cure.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Io { source, .. }
            if matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded))
    }
}

impl From<FsError> for StoreError {
    fn from(e: FsError) -> StoreError {
        match e {
            FsError::Io {
                action,
                path,
                source,
            } => StoreError::Io {
                action,
                path,
                source,
            },
            FsError::WontReplace { path, what } => StoreError::WontReplace { path, what },
            FsError::TooLarge { path, limit } => StoreError::Foreign {
                path,
                reason: format!("larger than the {} MiB ferry reads", limit >> 20),
                hint: "this is not a file ferry wrote",
            },
        }
    }
}

impl crate::error::Diagnostic for StoreError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            StoreError::Io { .. } => Kind::Io,
            // A local condition, as a folder of other things is: exit 2, nothing contacted.
            StoreError::Busy(_) => Kind::Configuration,
            // -o names a folder of other things (the CLI says whether a path was the user's).
            StoreError::NotEmpty(_) => Kind::Configuration,
            StoreError::NotALayout { .. } => Kind::Bundle,
            StoreError::Mismatch { .. } => Kind::Corrupt,
            StoreError::NotARegularFile { .. }
            | StoreError::LinkInside { .. }
            | StoreError::WontReplace { .. }
            | StoreError::TooLarge { .. }
            | StoreError::Foreign { .. }
            | StoreError::Corrupt { .. } => Kind::Bundle,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            StoreError::Busy(_) => Some("wait for it to finish, or use another -o folder".into()),
            StoreError::NotEmpty(_) => Some("choose an empty or new folder for -o".into()),
            StoreError::Foreign { hint, .. } => Some((*hint).into()),
            StoreError::NotALayout { hint, .. } => hint.clone(),
            StoreError::LinkInside { path, .. } => Some(format!(
                "ferry did not make {}: look at what it points to, remove it, and run the \
                 command again",
                path.display()
            )),
            _ => None,
        }
    }
}

/// An opened bundle folder. A writer holds an exclusive lock on the folder for its lifetime.
#[derive(Debug)]
pub struct Layout {
    root: PathBuf,
    _lock: Option<File>,
    /// Blobs read whole and found right (see [`source::Blob::range_reader`]).
    verified: std::sync::Arc<source::VerifiedCache>,
}

impl Layout {
    /// Opens `root` for writing, creating the layout when absent, and locks it against other
    /// ferry processes.
    pub fn open_for_write(root: &Path) -> Result<Layout, StoreError> {
        if root.exists() && !root.is_dir() {
            return Err(StoreError::NotALayout {
                path: root.to_path_buf(),
                reason: "it exists and is not a folder".into(),
                hint: None,
            });
        }
        fs::create_dir_all(root).map_err(StoreError::io("create", root))?;
        let lock = File::open(root).map_err(StoreError::io("open", root))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StoreError::Busy(root.to_path_buf())),
            Err(TryLockError::Error(e)) => return Err(StoreError::io("lock", root)(e)),
        }
        let layout = Layout {
            root: root.to_path_buf(),
            _lock: Some(lock),
            verified: Default::default(),
        };
        let oci_layout = root.join("oci-layout");
        match fs::read(&oci_layout) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let has_foreign = fs::read_dir(root)
                    .map_err(StoreError::io("read", root))?
                    .filter_map(Result::ok)
                    // A freshly made filesystem (a new PVC) has lost+found at its root.
                    .any(|e| e.file_name() != WORK_DIR && e.file_name() != "lost+found");
                if has_foreign {
                    return Err(StoreError::NotEmpty(root.to_path_buf()));
                }
                write_atomic(
                    &root.join("oci-layout"),
                    OCI_LAYOUT.as_bytes(),
                    Some(&layout.tmp_dir()),
                )?;
            }
            Err(e) => return Err(StoreError::io("read", &oci_layout)(e)),
        }
        // Every folder ferry writes into is a real folder of the bundle, never a planted link.
        for alg in crate::digest::Algorithm::ALL {
            if alg == crate::digest::Algorithm::Sha256 {
                InsideDir::create(root, &["blobs", alg.as_str()], 0o755)?;
            } else {
                InsideDir::open(root, &["blobs", alg.as_str()])?;
            }
        }
        InsideDir::create(root, &[WORK_DIR, "partial"], 0o755)?;
        // Temp files of a run that was killed: nobody else writes here while we hold the lock.
        // (Partial downloads are kept: they are resumed.)
        let tmp = InsideDir::create(root, &[WORK_DIR, "tmp"], 0o755)?;
        for e in tmp.entries()? {
            if e.file_type != rustix::fs::FileType::Directory {
                let _ = tmp.remove_file(&e.name);
            }
        }
        // A layout is valid only with an index.json, even before its first image lands.
        if !root.join("index.json").exists() {
            layout.write_index(&BundleIndex::default())?;
        }
        Ok(layout)
    }

    /// Opens an existing layout for reading; works on read-only mounts and takes no lock.
    pub fn open_read(root: &Path) -> Result<Layout, StoreError> {
        let oci_layout = root.join("oci-layout");
        if !root.is_dir() {
            return Err(StoreError::NotALayout {
                path: root.to_path_buf(),
                reason: "no such folder".into(),
                hint: None,
            });
        }
        // Both are written first in a bundle (oci-layout, then an empty index.json): a folder
        // without them is not one, or was never finished.
        for (file, what) in [
            (&oci_layout, "no oci-layout file"),
            (&root.join("index.json"), "no index.json file"),
        ] {
            if !file.is_file() {
                return Err(StoreError::NotALayout {
                    path: root.to_path_buf(),
                    reason: what.into(),
                    hint: None,
                });
            }
        }
        Ok(Layout {
            root: root.to_path_buf(),
            _lock: None,
            verified: Default::default(),
        })
    }

    /// The bundle folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/<algorithm>` for an algorithm.
    pub fn blob_dir(&self, alg: crate::digest::Algorithm) -> PathBuf {
        self.root.join("blobs").join(alg.as_str())
    }

    /// Where a blob lives: `blobs/<algorithm>/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(source::blob_member(digest))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join(WORK_DIR).join("tmp")
    }

    fn partial_dir(&self) -> PathBuf {
        self.root.join(WORK_DIR).join("partial")
    }

    /// Whether a blob is stored with the expected size. Blobs are only ever renamed into
    /// place after their digest was checked, so presence is proof (`verify` re-hashes). A
    /// symlink is not a stored blob (a run then fetches the blob and renames it over the link).
    pub fn has_blob(&self, digest: &Digest, size: u64) -> bool {
        fs::symlink_metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.partial_dir()
            .join(format!("{}-{}", digest.algorithm().as_str(), digest.hex()))
    }

    /// Reads a whole blob (manifests and configs; never layers), without following a
    /// symlink, re-hashed against its digest, and refused above [`MAX_SMALL_BLOB`] bytes.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        BundleSource::read_blob(self, digest)
    }

    /// Stores small content (a manifest or config) already held in memory.
    /// Returns whether it was written now (false when it was there already).
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<bool, StoreError> {
        if self.has_blob(digest, bytes.len() as u64) {
            return Ok(false);
        }
        let mut writer = BlobWriter::create(self, digest.clone(), Some(bytes.len() as u64))?;
        writer.write(bytes)?;
        writer.commit()?;
        Ok(true)
    }

    /// Writes small contents held in memory (manifests, configs) to staged files, a few at a
    /// time (creating a file waits on the filesystem's journal), for [`Layout::land`].
    pub fn stage_blobs(&self, blobs: &[(Digest, Vec<u8>)]) -> Result<Vec<StagedBlob>, StoreError> {
        let staged = std::sync::Mutex::new(Vec::with_capacity(blobs.len()));
        blob::on_threads(blobs, |(digest, bytes)| {
            let mut writer = BlobWriter::create(self, digest.clone(), Some(bytes.len() as u64))?;
            writer.write(bytes)?;
            let blob = writer.stage()?;
            staged.lock().expect("not poisoned").push(blob);
            Ok(())
        })?;
        Ok(staged.into_inner().expect("not poisoned"))
    }

    /// Makes a batch of staged blobs durable (their files synced together, on a few threads),
    /// renames them into `blobs/` and syncs the blob folders: afterwards index.json may name
    /// them. Writing many small blobs this way costs a few journal commits, not one each. The
    /// folders are synced even for an empty batch: large blobs are renamed in by
    /// `BlobWriter::commit`, and their renames must be durable before index.json names them.
    pub fn land(&self, blobs: Vec<StagedBlob>) -> Result<(), StoreError> {
        blob::land(blobs)?;
        self.sync_blob_dirs()
    }

    /// Makes renames into `blobs/` durable (call before index.json names them).
    pub fn sync_blob_dirs(&self) -> Result<(), StoreError> {
        for alg in crate::digest::Algorithm::ALL {
            let dir = self.blob_dir(alg);
            // blobs/sha512 exists only once a sha512 blob was stored.
            if alg == crate::digest::Algorithm::Sha256 || dir.is_dir() {
                crate::fsutil::sync_dir(&dir)?;
            }
        }
        Ok(())
    }

    /// Removes ferry's working folder when nothing resumable is left in it.
    pub fn tidy(&self) {
        let _ = fs::remove_dir(self.tmp_dir());
        let _ = fs::remove_dir(self.partial_dir());
        let _ = fs::remove_dir(self.root.join(WORK_DIR));
    }

    /// Reads index.json (an empty index when the file does not exist yet).
    pub fn read_index(&self) -> Result<BundleIndex, StoreError> {
        BundleIndex::read(&self.root.join("index.json"))
    }

    /// Replaces index.json atomically. Refuses (writing nothing) an index larger than ferry
    /// reads back ([`MAX_INDEX_BYTES`]): the bundle would be unreadable to ferry itself.
    pub fn write_index(&self, index: &BundleIndex) -> Result<(), StoreError> {
        let bytes = index.to_json();
        self.refuse_unreadable("index.json", &bytes)?;
        Ok(write_atomic(
            &self.root.join("index.json"),
            &bytes,
            Some(&self.tmp_dir()),
        )?)
    }

    /// Refuses to write `bytes` as `name` when ferry would refuse to read it back.
    fn refuse_unreadable(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.len() as u64 > MAX_INDEX_BYTES {
            return Err(StoreError::TooLarge {
                path: self.root.join(name),
                size: bytes.len() as u64,
                max: MAX_INDEX_BYTES,
            });
        }
        Ok(())
    }

    /// Replaces an executable file at the bundle's root atomically (restore.sh).
    pub fn write_script(&self, name: &str, text: &str) -> Result<(), StoreError> {
        Ok(write_atomic_mode(
            &self.root.join(name),
            text.as_bytes(),
            Some(&self.tmp_dir()),
            0o755,
        )?)
    }

    /// Reads the lock file (empty when absent).
    pub fn read_lock(&self) -> Result<LockFile, StoreError> {
        LockFile::read(&self.root.join(LOCK_FILE_NAME))
    }

    /// Replaces the lock file atomically; refuses one larger than ferry reads back.
    pub fn write_lock(&self, lock: &LockFile) -> Result<(), StoreError> {
        let bytes = lock.to_json();
        self.refuse_unreadable(LOCK_FILE_NAME, &bytes)?;
        Ok(write_atomic(
            &self.root.join(LOCK_FILE_NAME),
            &bytes,
            Some(&self.tmp_dir()),
        )?)
    }

    /// Every blob file under `blobs/`, with its digest (files that are not digests are skipped).
    pub fn list_blobs(&self) -> Result<Vec<(Digest, PathBuf)>, StoreError> {
        let mut out = Vec::new();
        for alg in crate::digest::Algorithm::ALL {
            // A linked `blobs/` or `blobs/<alg>/` is refused: what it holds is not the bundle's.
            let Some(dir) = InsideDir::open(&self.root, &["blobs", alg.as_str()])? else {
                continue;
            };
            for entry in dir.entries()? {
                let Some(name) = entry.name.to_str() else {
                    continue;
                };
                if let Ok(d) = format!("{}:{name}", alg.as_str()).parse::<Digest>() {
                    out.push((d, dir.path().join(name)));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}
