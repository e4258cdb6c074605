//! `ferry apply DELTA BASE`: turns BASE, in place, into the bundle DELTA describes.
//!
//! Order, so that BASE is a valid bundle at every instant: (1) every check, before any change
//! (the base is the one the delta was made against, holds every blob the delta relies on, and
//! has room for what is to be written); (2) a journal in BASE/.ferry/ naming the delta; (3) the
//! delta's blobs, re-hashed as they are copied; (4) a check that every new image is complete;
//! (5) index.json, ferry.lock, restore.sh; (6) blobs nothing names any more removed; (7) the
//! journal removed. A re-run finds the journal and finishes the job, even though the base's
//! lock has changed by then.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Marker;
use super::verify::needed_blobs;
use crate::digest::Digest;
use crate::fsutil::crash_point;
use crate::fsutil::write_atomic;
use crate::report::{Event, Reporter};
use crate::store::gc::{referenced, remove_blobs, unreferenced};
use crate::store::inspect_entry;
use crate::store::publish::publish;
use crate::store::{BlobWriter, BundleSource, Layout, StoreError, WORK_DIR};

/// The journal's name under BASE/.ferry/.
pub const JOURNAL_NAME: &str = "apply.json";

/// Room kept free beyond the bytes counted (metadata, the rewritten index and lock).
const SPACE_MARGIN: u64 = 1 << 20;

/// Why an apply did not happen (or did not finish).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Reading or writing failed.
    #[error(transparent)]
    Delta(#[from] super::DeltaError),
    /// Writing the new archive failed.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// DELTA has no ferry-delta.json.
    #[error("{0} is not a delta (no ferry-delta.json)")]
    NotADelta(PathBuf),
    /// The delta was made against another base.
    #[error(
        "{delta} was made against another base: it expects a ferry.lock with digest {expected}, {base} has {actual}; nothing was changed"
    )]
    WrongBase {
        /// The delta.
        delta: String,
        /// The base.
        base: String,
        /// The lock digest the delta expects.
        expected: Digest,
        /// The base's.
        actual: Digest,
    },
    /// The base lacks blobs the delta relies on.
    #[error("{base} lacks {} blob(s) the delta relies on; nothing was changed:\n{}", .missing.len(), .missing.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n"))]
    MissingFromBase {
        /// The base.
        base: String,
        /// `digest (size) for REF` lines.
        missing: Vec<String>,
    },
    /// Not enough free space.
    #[error(
        "{base}: the delta needs {need} more bytes but its filesystem has {free} free; nothing was changed"
    )]
    NoSpace {
        /// The base.
        base: String,
        /// Bytes to be written.
        need: u64,
        /// Bytes free.
        free: u64,
    },
    /// An earlier apply of another delta was interrupted.
    #[error(
        "{base} holds an unfinished apply of another delta (lock {pending}); nothing was changed"
    )]
    OtherApplyPending {
        /// The base.
        base: String,
        /// The other delta's lock digest.
        pending: Digest,
    },
    /// A layer did not rebuild from its binary patch to its digest.
    #[error("layer {layer} does not rebuild from its binary patch: {reason}; nothing was changed")]
    BadPatch {
        /// The layer.
        layer: Digest,
        /// Why.
        reason: String,
    },
    /// A delta with binary patches cannot be applied into an archive.
    #[error(
        "{delta} holds layers as binary patches, which apply rebuilds only into a bundle folder"
    )]
    PatchedToArchive {
        /// The delta.
        delta: String,
    },
    /// The delta does not describe complete images.
    #[error("the delta {delta} is not sound; the base's images are unchanged:\n{}", .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    BadDelta {
        /// The delta.
        delta: String,
        /// What is wrong.
        problems: Vec<String>,
    },
}

impl From<StoreError> for ApplyError {
    fn from(e: StoreError) -> ApplyError {
        ApplyError::Delta(e.into())
    }
}

impl From<crate::store::gc::GcError> for ApplyError {
    fn from(e: crate::store::gc::GcError) -> ApplyError {
        ApplyError::Delta(e.into())
    }
}

/// What an apply did.
#[derive(Debug, Default, Clone)]
pub struct ApplyReport {
    /// Images in the new bundle.
    pub images: usize,
    /// Blobs copied from the delta.
    pub blobs_added: usize,
    /// Their bytes.
    pub bytes_added: u64,
    /// Blobs removed (no longer used).
    pub blobs_removed: usize,
    /// Their bytes.
    pub bytes_removed: u64,
    /// Layers rebuilt from binary patches (`--binary-deltas`).
    pub blobs_rebuilt: usize,
    /// Their bytes.
    pub bytes_rebuilt: u64,
    /// An interrupted apply was finished.
    pub resumed: bool,
    /// BASE already was the new bundle.
    pub already_applied: bool,
}

/// The journal: which delta is being applied.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Journal {
    /// sha256 of the delta's ferry.lock (the new bundle's lock).
    delta_lock: Digest,
    /// sha256 of the base's ferry.lock before the apply.
    base_lock: Digest,
}

fn journal_path(base: &Path) -> PathBuf {
    base.join(WORK_DIR).join(JOURNAL_NAME)
}

fn read_journal(base: &Path) -> Result<Option<Journal>, StoreError> {
    let path = journal_path(base);
    match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", &path)(e)),
    }
}

/// The delta being applied: a folder or an archive, read in place, and its name to show.
pub(super) struct Delta {
    pub source: std::sync::Arc<dyn BundleSource>,
    pub marker: Marker,
    pub name: String,
}

impl Delta {
    /// Opens DELTA (a folder or an oci-archive), refusing a bundle that is no delta.
    pub fn open(path: &Path) -> Result<Delta, ApplyError> {
        let source = crate::store::source::open(path)?;
        let marker = Marker::of(&*source)?.ok_or_else(|| ApplyError::NotADelta(path.into()))?;
        Ok(Delta {
            source,
            marker,
            name: path.display().to_string(),
        })
    }

    /// Copies `wanted` into the base, re-hashed, in the delta's own order (a `.tar.zst` that
    /// cannot seek is then read once); counts them into `report`.
    fn copy(
        &self,
        base: &Layout,
        wanted: &BTreeMap<Digest, u64>,
        report: &mut ApplyReport,
        reporter: &dyn Reporter,
    ) -> Result<(), StoreError> {
        for (digest, _) in self.source.blobs()? {
            let Some(&size) = wanted.get(&digest) else {
                continue;
            };
            copy_blob(&*self.source, base, &digest, size, reporter)?;
            crash_point("after-blob");
        }
        report.blobs_added += wanted.len();
        report.bytes_added += wanted.values().sum::<u64>();
        Ok(())
    }
}

/// Applies the delta `delta_path` (a folder, or an oci-archive `.tar`/`.tar.zst`, read in
/// place) to the bundle folder `base_root`. The blobs it copies are reported as
/// [`Event::CopyStarted`] and [`Event::Copied`].
pub fn apply(
    delta_path: &Path,
    base_root: &Path,
    reporter: &dyn Reporter,
) -> Result<ApplyReport, ApplyError> {
    super::apply_archive::remove_stale_temp_folders();
    let delta = Delta::open(delta_path)?;
    Layout::open_read(base_root)?;
    let base = Layout::open_for_write(base_root)?;
    let result = apply_locked(&delta, &base, reporter);
    base.tidy();
    result
}

fn apply_locked(
    delta: &Delta,
    base: &Layout,
    reporter: &dyn Reporter,
) -> Result<ApplyReport, ApplyError> {
    let source = &*delta.source;
    let new_lock_digest = source.lock_digest()?;
    let new_index = source.index()?;
    let new_lock = source.lock()?.unwrap_or_default();
    let mut report = ApplyReport {
        images: new_index.len(),
        ..ApplyReport::default()
    };
    match start(delta, base, &new_lock_digest, &new_index)? {
        Start::Fresh => {}
        Start::Resume => report.resumed = true,
        Start::Done => {
            report.already_applied = true;
            return Ok(report);
        }
    }
    let needed = sound_delta(delta)?;
    let (direct, mut patched) = super::apply_patched::split(delta, &needed);
    let mut to_copy = check_base(source, base, &new_lock, &direct)?;
    // Copied (or rebuilt) by the interrupted run this one finishes.
    to_copy.retain(|d, s| !base.has_blob(d, *s));
    patched.retain(|d, p| !base.has_blob(d, p.size));
    let rebuilt_bytes: u64 = patched.values().map(|p| p.size).sum();
    check_space(base, to_copy.values().sum::<u64>() + rebuilt_bytes)?;
    // Before the journal: a layer that does not rebuild to its digest is refused with BASE
    // unchanged (the rebuilt ones wait, staged, in BASE/.ferry/tmp).
    let rebuilt = super::apply_patched::rebuild_all(delta, base, &patched)?;
    // From here on BASE changes; the journal lets a re-run finish.
    if !report.resumed {
        let journal = Journal {
            delta_lock: new_lock_digest,
            base_lock: delta.marker.base_lock.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&journal).expect("a journal serializes");
        let work = base.root().join(WORK_DIR);
        write_atomic(&work.join(JOURNAL_NAME), &bytes, Some(&work.join("tmp")))
            .map_err(StoreError::from)?;
    }
    reporter.event(&Event::CopyStarted {
        images: 0,
        bytes: to_copy.values().sum(),
    });
    delta.copy(base, &to_copy, &mut report, reporter)?;
    report.blobs_rebuilt = rebuilt.len();
    report.bytes_rebuilt = rebuilt_bytes;
    base.land(rebuilt)?;
    base.sync_blob_dirs()?;
    check_complete(base, &new_index, delta.name.clone())?;
    publish(base, &new_index, &new_lock)?;
    crash_point("after-publish");
    let mut keep = referenced(base, &new_index)?;
    keep.extend(needed);
    let removed = remove_blobs(base, &unreferenced(base, &keep)?)?;
    report.blobs_removed = removed.blobs;
    report.bytes_removed = removed.blob_bytes;
    let journal = journal_path(base.root());
    fs::remove_file(&journal).map_err(StoreError::io("remove", &journal))?;
    Ok(report)
}

/// Every blob the delta's images need (by its lock), or why the delta is not sound.
pub(super) fn sound_delta(delta: &Delta) -> Result<BTreeMap<Digest, u64>, ApplyError> {
    let mut problems = Vec::new();
    let needed = needed_blobs(&*delta.source, &mut problems)?;
    if !problems.is_empty() {
        return Err(ApplyError::BadDelta {
            delta: delta.name.clone(),
            problems,
        });
    }
    Ok(needed)
}

/// Refuses an apply whose `need` bytes (plus a margin) do not fit the base's filesystem.
fn check_space(base: &Layout, need: u64) -> Result<(), ApplyError> {
    if need == 0 {
        return Ok(());
    }
    let free = crate::fsutil::free_space(base.root())
        .map_err(|e| StoreError::io("statvfs", base.root())(e))?
        .available;
    if need.saturating_add(SPACE_MARGIN) > free {
        return Err(ApplyError::NoSpace {
            base: base.root().display().to_string(),
            need,
            free,
        });
    }
    Ok(())
}

/// Every image of the new index must resolve to complete content in the base before the
/// index is published.
pub(super) fn check_complete(
    base: &dyn BundleSource,
    new_index: &crate::store::BundleIndex,
    delta_name: String,
) -> Result<(), ApplyError> {
    let mut problems = Vec::new();
    for entry in new_index.entries() {
        let name = entry.name.clone().unwrap_or_default();
        problems.extend(
            inspect_entry(base, &entry)
                .problems
                .into_iter()
                .map(|(d, why)| format!("{name}: {d}: {why}")),
        );
    }
    if !problems.is_empty() {
        return Err(ApplyError::BadDelta {
            delta: delta_name,
            problems,
        });
    }
    Ok(())
}

/// Where an apply starts.
enum Start {
    /// A new apply onto the right base.
    Fresh,
    /// The journal names this delta: finish it.
    Resume,
    /// BASE already is the new bundle.
    Done,
}

/// Reads the journal, or checks that BASE is the delta's base.
fn start(
    delta: &Delta,
    base: &Layout,
    new_lock_digest: &Digest,
    new_index: &crate::store::BundleIndex,
) -> Result<Start, ApplyError> {
    let base_name = base.root().display().to_string();
    match read_journal(base.root())? {
        Some(j) if &j.delta_lock == new_lock_digest => Ok(Start::Resume),
        Some(j) => Err(ApplyError::OtherApplyPending {
            base: base_name,
            pending: j.delta_lock,
        }),
        None => {
            let actual = base.lock_digest()?;
            if &actual == new_lock_digest
                && fs::read(base.root().join("index.json")).is_ok_and(|b| b == new_index.to_json())
            {
                return Ok(Start::Done);
            }
            check_base_lock(delta, &base_name, actual)?;
            Ok(Start::Fresh)
        }
    }
}

/// Refuses a base whose lock is not the one the delta was made against.
pub(super) fn check_base_lock(delta: &Delta, base: &str, actual: Digest) -> Result<(), ApplyError> {
    if actual != delta.marker.base_lock {
        return Err(ApplyError::WrongBase {
            delta: delta.name.clone(),
            base: base.to_owned(),
            expected: delta.marker.base_lock.clone(),
            actual,
        });
    }
    Ok(())
}

/// Checks that BASE has every blob the delta leaves out, right (re-hashed: the new bundle
/// relies on them and nothing else checks a reused layer), naming the images that need those
/// it lacks; returns the delta's blobs BASE does not have yet (to copy).
pub(super) fn check_base(
    delta: &dyn BundleSource,
    base: &dyn BundleSource,
    new_lock: &crate::store::lockfile::LockFile,
    needed: &BTreeMap<Digest, u64>,
) -> Result<BTreeMap<Digest, u64>, ApplyError> {
    let mut to_copy = BTreeMap::new();
    let mut missing = BTreeSet::new();
    for (digest, size) in needed {
        let users = || {
            let users: Vec<&str> = new_lock
                .images
                .iter()
                .filter(|i| i.blobs.contains_key(digest))
                .map(|i| i.reference.as_str())
                .collect();
            users.join(", ")
        };
        if delta.has_blob(digest, *size) {
            to_copy.insert(digest.clone(), *size);
            continue;
        }
        if !base.has_blob(digest, *size) {
            missing.insert(format!("{digest} ({size} bytes), for {}", users()));
            continue;
        }
        if let Err(e) = base.open_blob(digest, Some(*size)).and_then(|b| b.verify()) {
            missing.insert(format!("{digest} ({size} bytes), for {}: {e}", users()));
        }
    }
    if !missing.is_empty() {
        return Err(ApplyError::MissingFromBase {
            base: base.path().display().to_string(),
            missing: missing.into_iter().collect(),
        });
    }
    Ok(to_copy)
}

/// Copies one blob from the delta into the base: read through the hash (the last chunk held
/// back until it is checked), written through the store's blob writer (hashed again, fsynced,
/// renamed into place).
fn copy_blob(
    delta: &dyn BundleSource,
    base: &Layout,
    digest: &Digest,
    size: u64,
    reporter: &dyn Reporter,
) -> Result<(), StoreError> {
    let source = delta.open_blob(digest, Some(size))?;
    let mut reader = source.reader().map_err(|e| source.error(e))?;
    let mut writer = BlobWriter::create(base, digest.clone(), Some(size))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(|e| source.error(e))?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n])?;
        reporter.event(&Event::Copied { bytes: n as u64 });
    }
    writer.commit()
}

impl crate::error::Diagnostic for ApplyError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            ApplyError::Delta(e) => e.kind(),
            ApplyError::Export(e) => e.kind(),
            // The user named the wrong folder.
            ApplyError::NotADelta(_)
            | ApplyError::WrongBase { .. }
            | ApplyError::OtherApplyPending { .. }
            | ApplyError::PatchedToArchive { .. } => Kind::Configuration,
            ApplyError::MissingFromBase { .. }
            | ApplyError::BadDelta { .. }
            | ApplyError::BadPatch { .. } => Kind::Bundle,
            ApplyError::NoSpace { .. } => Kind::Io,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ApplyError::Delta(e) => return e.hint(),
            ApplyError::Export(e) => return e.hint(),
            ApplyError::NotADelta(_) => "a delta is made by `ferry bundle ... --since BASE`; a \
                full bundle needs no apply"
                .into(),
            ApplyError::WrongBase { .. } => "apply it to the bundle it was made from (`ferry \
                diff` compares bundles)"
                .into(),
            ApplyError::MissingFromBase { base, .. } => format!(
                "run `ferry verify {base}`; restore the base from its source, or make a full \
                 bundle instead of a delta"
            ),
            ApplyError::NoSpace { base, .. } => format!(
                "free space on that filesystem (`ferry gc {base}` removes unused blobs), or use \
                 a larger volume"
            ),
            ApplyError::OtherApplyPending { .. } => {
                "re-run `ferry apply` with that delta to finish it first".into()
            }
            ApplyError::BadPatch { .. } => "run `ferry verify` on the delta and on BASE; make \
                the delta again, or without --binary-deltas"
                .into(),
            ApplyError::PatchedToArchive { .. } => "apply it to the base bundle folder, then \
                `ferry export` the result"
                .into(),
            ApplyError::BadDelta { delta, .. } => {
                format!("run `ferry verify {delta}`, and make the delta again")
            }
        })
    }
}
