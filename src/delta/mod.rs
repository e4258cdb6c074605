//! Delta bundles: a complete description of a new set of images (index.json, ferry.lock,
//! restore.sh) holding only the blobs a base bundle lacks, marked by `ferry-delta.json` with a
//! digest of the base's ferry.lock. `bundle --since` makes one, `apply` turns the base into the
//! new bundle, `diff` compares two bundles or locks.

pub mod apply;
mod apply_archive;
mod apply_patched;
pub mod binary;
pub mod diff;
pub mod verify;

pub use apply_archive::{ArchiveApplied, apply_to_archive};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::fsutil::write_atomic;
use crate::store::gc::GcError;
use crate::store::lockfile::LockFile;
use crate::store::source::MARKER_FILE;
use crate::store::{BundleSource, Layout, MAX_INDEX_BYTES, StoreError, WORK_DIR};

/// The marker file at a delta's root.
pub const MARKER_NAME: &str = MARKER_FILE;

const DELTA_VERSION: u32 = 1;
/// The version of a delta that carries binary patches (`patched`): a ferry that reads only
/// version 1 refuses it rather than miss the layers it must rebuild.
const BINARY_DELTA_VERSION: u32 = 2;

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
    /// Layers the delta carries as patches against base layers (`--binary-deltas`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub patched: BTreeMap<Digest, binary::Patched>,
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
    /// Reads the marker of a bundle (a folder or an archive); `None` when it is not a delta.
    pub fn of(source: &dyn BundleSource) -> Result<Option<Marker>, StoreError> {
        let path = source.path().join(MARKER_NAME);
        let Some(bytes) = source.root_file(MARKER_NAME, MAX_INDEX_BYTES)? else {
            return Ok(None);
        };
        let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let expected = marker.version();
        if marker.delta_version != expected {
            return Err(StoreError::Corrupt {
                path,
                reason: format!(
                    "delta version {} is not supported by this ferry (it reads versions \
                     {DELTA_VERSION} and {BINARY_DELTA_VERSION}; version {BINARY_DELTA_VERSION} lists patched layers)",
                    marker.delta_version
                ),
            });
        }
        Ok(Some(marker))
    }

    /// The version this marker is written as: 2 when it lists patched layers, else 1 (which
    /// every ferry that reads deltas applies).
    fn version(&self) -> u32 {
        if self.patched.is_empty() {
            DELTA_VERSION
        } else {
            BINARY_DELTA_VERSION
        }
    }

    /// Writes the marker into a layout open for writing.
    pub fn write(&self, layout: &Layout) -> Result<(), StoreError> {
        let marker = Marker {
            delta_version: self.version(),
            ..self.clone()
        };
        let mut bytes = serde_json::to_vec_pretty(&marker).expect("a marker serializes");
        bytes.push(b'\n');
        let tmp = layout.root().join(WORK_DIR).join("tmp");
        Ok(write_atomic(
            &layout.root().join(MARKER_NAME),
            &bytes,
            Some(&tmp),
        )?)
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

/// Whether `path` is a lock file (JSON) rather than a bundle folder or archive.
fn is_lock_file(path: &Path) -> bool {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    path.is_file() && head[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Loads a bundle (a folder or an archive: its index.json, and its lock or else its own
/// content for the blobs) or a lock file.
pub fn load_side(path: &Path) -> Result<Side, DeltaError> {
    if is_lock_file(path) {
        let lock = LockFile::read(path)?;
        let bytes = std::fs::read(path).map_err(StoreError::io("read", path))?;
        return Ok(Side {
            refs: lock
                .images
                .iter()
                .map(|i| (i.reference.clone(), i.digest.clone()))
                .collect(),
            blobs: lock_blobs(&lock),
            lock_digest: Digest::sha256_of(&bytes),
        });
    }
    let source = crate::store::source::open(path).map_err(|e| match e {
        StoreError::NotALayout { reason, .. } => input(
            path,
            format!("not a bundle folder, archive or lock file: {reason}"),
            None,
        ),
        e => e.into(),
    })?;
    side_of(&*source)
}

/// The references and blobs of a bundle, its lock's digest.
pub fn side_of(source: &dyn BundleSource) -> Result<Side, DeltaError> {
    let path = source.path();
    let index = source.index()?;
    let lock = source.lock()?.unwrap_or_default();
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
        None => reached(source, &index)?,
    };
    Ok(Side {
        refs,
        blobs: Some(blobs),
        lock_digest: source.lock_digest()?,
    })
}

/// Every blob the index's images reach; an image with missing content is an error.
fn reached(
    source: &dyn BundleSource,
    index: &crate::store::BundleIndex,
) -> Result<BTreeMap<Digest, u64>, DeltaError> {
    let mut out = BTreeMap::new();
    for entry in index.entries() {
        let contents = crate::store::inspect_entry(source, &entry);
        if let Some((digest, why)) = contents.problems.first() {
            let name = entry.name.unwrap_or_default();
            let problem = format!("{name}: {digest}: {why}; it cannot serve as a base");
            return Err(input(
                source.path(),
                problem,
                Some("run `ferry verify` on it"),
            ));
        }
        out.extend(contents.blobs);
    }
    Ok(out)
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
    let mut marker = Marker {
        delta_version: DELTA_VERSION,
        base_lock: side.lock_digest,
        base_blobs,
        patched: BTreeMap::new(),
    };
    let out = layout.root();
    match Marker::of(layout)? {
        // A re-run keeps the layers an earlier run patched (they are not fetched again).
        Some(old) if old.base_lock == marker.base_lock => marker.patched = old.patched,
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
    let mut present = marker.base_blobs;
    present.extend(marker.patched.iter().map(|(d, p)| (d.clone(), p.size)));
    Ok(present)
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
        std::fs::write(&path, old).unwrap();
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
        std::fs::write(&path, with.to_json()).unwrap();
        assert_eq!(load_side(&path).unwrap().blobs.unwrap().get(&d), Some(&1));
    }
}
