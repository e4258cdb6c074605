//! `ferry verify`: re-hash every blob, check every reference resolves to complete content, and
//! compare the lock file with index.json.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::inspect::inspect_entry;
use super::source::{BundleSource, SourceKind};
use super::{Layout, OCI_LAYOUT, StoreError};
use crate::digest::Digest;

/// The outcome of a verification. The bundle is sound when `problems` is empty.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Image references checked (signatures, SBOMs and other referrers not counted).
    pub images: usize,
    /// Referrer entries checked (cosign signatures, attestations, SBOMs).
    pub referrers: usize,
    /// Blob files re-hashed.
    pub blobs: usize,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// What is wrong: corrupt or missing blobs, unresolvable references.
    pub problems: Vec<String>,
    /// What is odd but harmless (a stale lock file, blobs nothing references).
    pub warnings: Vec<String>,
    /// Blob files whose content does not match their name.
    pub corrupt: Vec<(Digest, PathBuf)>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies a bundle (a folder or an archive). `on_bytes` is told of progress as blobs are
/// hashed (from worker threads).
pub fn verify(
    layout: &dyn BundleSource,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    check_oci_layout(layout, &mut report);
    // A malformed index.json or lock (a name that is not a reference, an oversized file) is a
    // problem to report, with the blobs still checked.
    let index = layout.index().or_else(|e| reported(e, &mut report))?;
    let blobs = layout.blobs()?;
    let (bytes, problems, corrupt) = rehash_all(layout, &blobs, on_bytes);
    report.blobs = blobs.len();
    report.bytes = bytes;
    report.problems.extend(problems);
    report.corrupt = corrupt;

    let reachable = check_entries(layout, &index, &mut report);
    // Where the lock and restore.sh disagree with index.json: bundle::derived, called by the CLI.
    match layout.lock().or_else(|e| reported(e, &mut report))? {
        Some(_) => {}
        // One word for the bundle, not one per image (a layout made by another tool).
        None if !index.is_empty() => report.warnings.push(
            "no ferry.lock: the images cannot be compared with what was resolved (a layout not \
             made by ferry bundle?)"
                .into(),
        ),
        None => {}
    }
    let orphans = blobs.iter().filter(|(d, _)| !reachable.contains(d)).count();
    if orphans > 0 {
        report
            .warnings
            .push(format!("{orphans} blob(s) are not referenced by any image"));
    }
    Ok(report)
}

/// A document that does not parse is a problem to report (verification goes on with an empty
/// one); any other error ends the verification.
fn reported<T: Default>(e: StoreError, report: &mut VerifyReport) -> Result<T, StoreError> {
    match e {
        StoreError::Corrupt { .. } | StoreError::Foreign { .. } => {
            report.problems.push(e.to_string());
            Ok(T::default())
        }
        e => Err(e),
    }
}

/// The `oci-layout` file must exist and declare a layout version.
fn check_oci_layout(layout: &dyn BundleSource, report: &mut VerifyReport) {
    match layout.root_file("oci-layout", 4096) {
        Ok(Some(b))
            if serde_json::from_slice::<serde_json::Value>(&b)
                .ok()
                .and_then(|v| v.get("imageLayoutVersion").cloned())
                .is_some() => {}
        _ => report
            .problems
            .push(format!("oci-layout: missing or not {OCI_LAYOUT}")),
    }
}

/// Checks that every index entry resolves to complete content (and that a name pinning a
/// digest points at it); returns every blob the entries reach.
fn check_entries(
    layout: &dyn BundleSource,
    index: &super::BundleIndex,
    report: &mut VerifyReport,
) -> BTreeSet<Digest> {
    let mut reachable = BTreeSet::new();
    for entry in index.entries() {
        match entry
            .name
            .as_deref()
            .is_some_and(crate::reference::is_referrer_name)
        {
            true => report.referrers += 1,
            false => report.images += 1,
        }
        let name = entry
            .name
            .clone()
            .unwrap_or_else(|| "(unnamed entry)".into());
        let contents = inspect_entry(layout, &entry);
        let pinned = entry
            .name
            .as_deref()
            .and_then(|n| n.parse::<crate::reference::ImageRef>().ok())
            .and_then(|r| r.digest().cloned());
        if let Some(pinned) = pinned
            && pinned.to_string() != entry.descriptor.digest().to_string()
        {
            report.problems.push(format!(
                "{name}: the name pins {pinned} but points at {}",
                entry.descriptor.digest()
            ));
        }
        for (digest, why) in &contents.problems {
            report.problems.push(format!("{name}: {digest}: {why}"));
        }
        reachable.extend(contents.blobs.into_keys());
    }
    reachable
}

/// Re-hashes every blob, on all cores (one, in order, for a stream that cannot seek); returns
/// bytes hashed, the problems found and the corrupt blobs.
fn rehash_all(
    layout: &dyn BundleSource,
    blobs: &[(Digest, u64)],
    on_bytes: &(dyn Fn(u64) + Sync),
) -> (u64, Vec<String>, Vec<(Digest, PathBuf)>) {
    let next = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    let corrupt = Mutex::new(Vec::new());
    let total = std::sync::atomic::AtomicU64::new(0);
    let workers = match layout.kind() {
        SourceKind::StreamZst => 1,
        _ => std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(8),
    };
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((digest, _)) = blobs.get(i) else {
                        break;
                    };
                    // Opened as every reader opens one: never through a symlink, and only a
                    // regular file (a link planted in blobs/ is reported, not followed).
                    let hashed = layout
                        .open_blob(digest, None)
                        .and_then(|b| Ok((b.actual_digest(on_bytes)?, b.path().to_path_buf())));
                    match hashed {
                        Ok(((actual, n), path)) => {
                            total.fetch_add(n, Ordering::Relaxed);
                            if &actual != digest {
                                problems.lock().unwrap().push(format!(
                                    "blob {digest} is corrupt: its content hashes to {actual}"
                                ));
                                corrupt.lock().unwrap().push((digest.clone(), path));
                            }
                        }
                        Err(e) => problems.lock().unwrap().push(format!("blob {digest}: {e}")),
                    }
                }
            });
        }
    });
    let mut problems = problems.into_inner().unwrap();
    problems.sort();
    let mut corrupt = corrupt.into_inner().unwrap();
    corrupt.sort();
    (total.into_inner(), problems, corrupt)
}

/// Removes the corrupt blobs a verification found, so that the next `ferry bundle` fetches
/// them again. `layout` must be open for writing (it holds the bundle's lock).
pub fn remove_corrupt(layout: &Layout, report: &VerifyReport) -> Result<usize, StoreError> {
    for (digest, _) in &report.corrupt {
        let path = layout.blob_path(digest);
        std::fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
    }
    if !report.corrupt.is_empty() {
        layout.sync_blob_dirs()?;
    }
    Ok(report.corrupt.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_blob_is_reported_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_for_write(&dir.path().join("b")).unwrap();
        let content = b"a blob that lives elsewhere";
        let digest = Digest::sha256_of(content);
        // The link points at the right bytes: followed, the blob would pass as sound.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, content).unwrap();
        std::os::unix::fs::symlink(&elsewhere, layout.blob_path(&digest)).unwrap();
        let report = verify(&layout, &|_| {}).unwrap();
        assert!(!report.ok());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains(&digest.to_string()) && p.contains("symlink")),
            "{:?}",
            report.problems
        );
        assert_eq!(report.bytes, 0, "nothing was read through the link");
    }
}
