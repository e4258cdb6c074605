//! Delta bundles: a complete description of a new set of images (index.json, ferry.lock,
//! restore.sh) holding only the blobs a base bundle lacks, marked by `ferry-delta.json` with a
//! digest of the base's ferry.lock. `bundle --since` makes one, `apply` turns the base into the
//! new bundle, `diff` compares two bundles or locks.

pub mod apply;
pub mod archive;
pub mod diff;
pub mod verify;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::lock::{LOCK_FILE_NAME, LockFile};
use crate::store::gc::{GcError, referenced};
use crate::store::{Layout, StoreError, WORK_DIR, write_atomic};

/// The marker file at a delta's root.
pub const MARKER_NAME: &str = "ferry-delta.json";

const DELTA_VERSION: u32 = 1;

/// The content of `ferry-delta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    /// Format version.
    pub delta_version: u32,
    /// sha256 of the base's ferry.lock bytes: the one base this delta applies to.
    pub base_lock: Digest,
    /// Every blob the base holds, per its lock: what the delta may leave out.
    pub base_blobs: BTreeMap<Digest, u64>,
}

/// Why a delta operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// Reading or writing a bundle failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Walking a bundle failed.
    #[error(transparent)]
    Gc(#[from] GcError),
    /// A path is not a bundle folder or lock file this can use.
    #[error("{}: {problem}", .path.display())]
    Input {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// What to do about it.
        hint: Option<&'static str>,
    },
}

fn input(path: &Path, problem: String, hint: Option<&'static str>) -> DeltaError {
    DeltaError::Input {
        path: path.to_path_buf(),
        problem,
        hint,
    }
}

const NEW_FOLDER: &str = "choose a new -o folder";

impl crate::error::Diagnostic for DeltaError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            DeltaError::Store(e) => e.kind(),
            DeltaError::Gc(e) => e.kind(),
            DeltaError::Input { .. } => crate::error::Kind::Configuration,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            DeltaError::Store(e) => e.hint(),
            DeltaError::Gc(e) => e.hint(),
            DeltaError::Input { hint, .. } => hint.map(str::to_owned),
        }
    }
}

impl Marker {
    /// Reads the marker of a folder; `None` when the folder is not a delta.
    pub fn read(root: &Path) -> Result<Option<Marker>, StoreError> {
        let path = root.join(MARKER_NAME);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read", &path)(e)),
        };
        let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if marker.delta_version != DELTA_VERSION {
            return Err(StoreError::Corrupt {
                path,
                reason: format!(
                    "delta version {} is not supported by this ferry (it reads version {DELTA_VERSION})",
                    marker.delta_version
                ),
            });
        }
        Ok(Some(marker))
    }

    /// Writes the marker into a layout open for writing.
    pub fn write(&self, layout: &Layout) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a marker serializes");
        bytes.push(b'\n');
        let tmp = layout.root().join(WORK_DIR).join("tmp");
        write_atomic(layout.root(), MARKER_NAME, &bytes, &tmp)
    }
}

/// A bundle or lock file as `diff` and `--since` see it: its references and, when known, every
/// blob they need.
#[derive(Debug, Clone)]
pub struct Side {
    /// Reference -> manifest (or index) digest.
    pub refs: BTreeMap<String, Digest>,
    /// Every blob the references need, with sizes; `None` for a lock made by an older ferry.
    pub blobs: Option<BTreeMap<Digest, u64>>,
    /// sha256 of the lock file's bytes.
    pub lock_digest: Digest,
}

/// sha256 of a file's bytes (of no bytes when it does not exist).
pub fn file_digest(path: &Path) -> Result<Digest, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Digest::sha256_of(&b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Digest::sha256_of(b"")),
        Err(e) => Err(StoreError::io("read", path)(e)),
    }
}

/// The blobs a lock records for all its images, when it records them for every image.
pub fn lock_blobs(lock: &LockFile) -> Option<BTreeMap<Digest, u64>> {
    let mut out = BTreeMap::new();
    for image in &lock.images {
        if image.blobs.is_empty() {
            return None;
        }
        out.extend(image.blobs.iter().map(|(d, s)| (d.clone(), *s)));
    }
    Some(out)
}

/// Loads a bundle folder (its index.json, and its lock or else its own content for the blobs)
/// or a lock file.
pub fn load_side(path: &Path) -> Result<Side, DeltaError> {
    if path.is_dir() {
        let layout = Layout::open_read(path)?;
        let index = layout.read_index()?;
        let lock_path = path.join(LOCK_FILE_NAME);
        let lock = LockFile::read(&lock_path)?;
        let mut refs = BTreeMap::new();
        let mut lock_agrees = true;
        for entry in index.entries() {
            let Some(name) = entry.name else { continue };
            let digest = crate::manifest::descriptor_digest(&entry.descriptor)
                .map_err(|e| input(path, format!("{name}: {e}"), None))?;
            lock_agrees &= lock.get(&name).is_some_and(|l| l.digest == digest);
            refs.insert(name, digest);
        }
        lock_agrees &= lock.images.len() == refs.len();
        let blobs = match lock_blobs(&lock).filter(|_| lock_agrees) {
            Some(b) => b,
            None => referenced(&layout, &index)?,
        };
        return Ok(Side {
            refs,
            blobs: Some(blobs),
            lock_digest: file_digest(&lock_path)?,
        });
    }
    if !path.is_file() {
        return Err(input(
            path,
            "no such bundle folder or lock file".into(),
            None,
        ));
    }
    let lock = LockFile::read(path)?;
    Ok(Side {
        refs: lock
            .images
            .iter()
            .map(|i| (i.reference.clone(), i.digest.clone()))
            .collect(),
        blobs: lock_blobs(&lock),
        lock_digest: file_digest(path)?,
    })
}

/// Prepares `output` as a delta of `base` (a bundle folder or its ferry.lock) for
/// `bundle --since`: checks that `output` is new, empty or a delta of the same base, writes the
/// marker before any blob, and returns the base's blobs (which the run must not store).
pub fn prepare_since(layout: &Layout, base: &Path) -> Result<BTreeMap<Digest, u64>, DeltaError> {
    let side = load_side(base)?;
    let Some(base_blobs) = side.blobs else {
        return Err(input(
            base,
            "this lock records no blob digests (it was made by an older ferry)".into(),
            Some("pass the base bundle folder instead, or re-make the lock with this ferry"),
        ));
    };
    let marker = Marker {
        delta_version: DELTA_VERSION,
        base_lock: side.lock_digest,
        base_blobs,
    };
    let out = layout.root();
    match Marker::read(out)? {
        Some(old) if old.base_lock == marker.base_lock => {}
        Some(old) => {
            let problem = format!(
                "it is a delta of another base (lock {}, not {})",
                old.base_lock, marker.base_lock
            );
            return Err(input(out, problem, Some(NEW_FOLDER)));
        }
        None if !layout.read_index()?.is_empty() => {
            let problem = "it is a bundle; --since writes a delta into a new or empty folder";
            return Err(input(out, problem.into(), Some(NEW_FOLDER)));
        }
        None => {}
    }
    marker.write(layout)?;
    Ok(marker.base_blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_without_blob_digests_still_reads_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::sha256_of(b"m");
        let old = format!(
            r#"{{"lockVersion":1,"images":[{{"reference":"docker.io/library/a:1","digest":"{d}",
            "mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
            "platforms":[{{"digest":"{d}","size":1}}],"totalSize":1}}]}}"#
        );
        let path = dir.path().join("old.lock");
        fs::write(&path, old).unwrap();
        let side = load_side(&path).unwrap();
        assert_eq!(side.refs.len(), 1);
        assert!(side.blobs.is_none(), "an older lock records no blobs");
        let lock = LockFile::read(&path).unwrap();
        assert!(
            !String::from_utf8(lock.to_json())
                .unwrap()
                .contains("\"blobs\"")
        );
        let mut with = lock.clone();
        with.images[0].blobs.insert(d.clone(), 1);
        fs::write(&path, with.to_json()).unwrap();
        assert_eq!(load_side(&path).unwrap().blobs.unwrap().get(&d), Some(&1));
    }
}
