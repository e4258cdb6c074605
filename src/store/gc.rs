//! Removing what a bundle no longer needs: blobs no index.json entry reaches, and partial
//! downloads of runs that will not be continued. Every removal is of a file nothing names, so
//! the bundle is valid at every instant, whatever is interrupted.

use std::collections::{BTreeMap, BTreeSet};

use rustix::fs::FileType;

use super::inside::{InsideDir, component};
use super::inspect::inspect_entry;
use super::{BundleIndex, Layout, StoreError, WORK_DIR};
use crate::digest::Digest;

/// Why blobs could not be removed safely.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Reading or removing failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Some image could not be walked, so what it uses is unknown: nothing is removed.
    #[error(
        "{bundle}: cannot tell which blobs its images use, so nothing was removed:\n{}",
        .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
    )]
    Unsound {
        /// The bundle.
        bundle: String,
        /// What is wrong, one line each.
        problems: Vec<String>,
    },
}

/// What a removal did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Blob files removed.
    pub blobs: usize,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Partial downloads and temp files removed.
    pub partials: usize,
    /// Their bytes.
    pub partial_bytes: u64,
}

/// Every blob the index's entries reach, with its size. Fails, naming the problems, when an
/// entry cannot be walked completely (an unreadable manifest hides what it uses).
pub fn referenced(layout: &Layout, index: &BundleIndex) -> Result<BTreeMap<Digest, u64>, GcError> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for entry in index.entries() {
        let contents = inspect_entry(layout, &entry);
        let name = entry
            .name
            .clone()
            .unwrap_or_else(|| "(unnamed entry)".into());
        problems.extend(
            contents
                .problems
                .iter()
                .map(|(d, why)| format!("{name}: {d}: {why}")),
        );
        out.extend(contents.blobs);
    }
    if !problems.is_empty() {
        return Err(GcError::Unsound {
            bundle: layout.root().display().to_string(),
            problems,
        });
    }
    Ok(out)
}

/// Removes the given blob files (those absent are skipped) and makes the removals durable.
/// Each is removed relative to its `blobs/<alg>` folder, opened without following a link.
pub fn remove_blobs(layout: &Layout, digests: &BTreeSet<Digest>) -> Result<Removed, StoreError> {
    let mut removed = Removed::default();
    let mut folders: BTreeMap<&'static str, Option<InsideDir>> = BTreeMap::new();
    for digest in digests {
        let alg = digest.algorithm().as_str();
        let folder = match folders.entry(alg) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(InsideDir::open(layout.root(), &["blobs", alg])?)
            }
        };
        let Some(dir) = folder else { continue };
        let name = component(digest.hex());
        let Some((_, len)) = dir.stat(&name)? else {
            continue;
        };
        if dir.remove_file(&name)? {
            removed.blobs += 1;
            removed.blob_bytes += len;
        }
        crate::fsutil::crash_point("remove-blob");
    }
    if removed.blobs > 0 {
        layout.sync_blob_dirs()?;
    }
    Ok(removed)
}

/// The blob files of the bundle that nothing in `keep` names.
pub fn unreferenced(
    layout: &Layout,
    keep: &BTreeMap<Digest, u64>,
) -> Result<BTreeSet<Digest>, StoreError> {
    Ok(layout
        .list_blobs()?
        .into_iter()
        .map(|(d, _)| d)
        .filter(|d| !keep.contains_key(d))
        .collect())
}

/// `ferry gc`: removes every blob that no index.json entry reaches and every partial download
/// or temp file under `.ferry/`. `layout` must be open for writing (it holds the bundle's lock).
/// With `dry_run`, counts what would go and removes nothing.
pub fn gc(layout: &Layout, dry_run: bool) -> Result<Removed, GcError> {
    let index = layout.read_index()?;
    let keep = referenced(layout, &index)?;
    let orphans = unreferenced(layout, &keep)?;
    let mut removed = if dry_run {
        let mut r = Removed::default();
        for d in &orphans {
            if let Ok(m) = layout.blob_path(d).symlink_metadata() {
                r.blobs += 1;
                r.blob_bytes += m.len();
            }
        }
        r
    } else {
        remove_blobs(layout, &orphans)?
    };
    for sub in ["partial", "tmp"] {
        // A link at `.ferry` or below is refused, never emptied: it leads out of the bundle.
        let Some(dir) = InsideDir::open(layout.root(), &[WORK_DIR, sub])? else {
            continue;
        };
        for entry in dir.entries()? {
            if !matches!(entry.file_type, FileType::RegularFile | FileType::Symlink) {
                continue;
            }
            if dry_run || dir.remove_file(&entry.name)? {
                removed.partials += 1;
                removed.partial_bytes += entry.len;
            }
        }
    }
    if !dry_run {
        layout.tidy();
    }
    Ok(removed)
}

impl crate::error::Diagnostic for GcError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            GcError::Store(e) => e.kind(),
            GcError::Unsound { .. } => crate::error::Kind::Bundle,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            GcError::Store(e) => e.hint(),
            GcError::Unsound { bundle, .. } => Some(format!(
                "run `ferry verify {bundle}`, and re-run the ferry bundle command that made it \
                 to complete it"
            )),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn gc_removes_orphans_and_partials_and_keeps_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_for_write(dir.path()).unwrap();
        let orphan = Digest::sha256_of(b"orphan");
        layout.put_blob(&orphan, b"orphan").unwrap();
        let partial = dir.path().join(".ferry/partial/sha256-abc");
        fs::write(&partial, b"12345").unwrap();
        let dry = gc(&layout, true).unwrap();
        assert_eq!((dry.blobs, dry.partials), (1, 1));
        assert!(layout.blob_path(&orphan).exists() && partial.exists());
        let done = gc(&layout, false).unwrap();
        assert_eq!(done, dry);
        assert_eq!(done.blob_bytes, 6);
        assert_eq!(done.partial_bytes, 5);
        assert!(!layout.blob_path(&orphan).exists());
        assert!(!dir.path().join(WORK_DIR).exists());
        assert_eq!(gc(&layout, false).unwrap(), Removed::default());
    }
}
