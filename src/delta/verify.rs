//! Checking and exporting a delta, which by design lacks the blobs its base holds: every blob
//! present is re-hashed, and every blob its images need must be either present or claimed by
//! the base's lock (recorded in `ferry-delta.json`).

use std::collections::BTreeMap;

use super::{MARKER_NAME, Marker};
use crate::digest::Digest;
use crate::export::tarball::TarPlan;
use crate::export::{ExportError, Target, add_root_files};
use crate::store::lockfile::LOCK_FILE_NAME;
use crate::store::source::SCRIPT_FILE;
use crate::store::{BundleSource, StoreError};
use tokio_util::sync::CancellationToken;

/// The outcome of checking a delta. Sound when `problems` is empty.
#[derive(Debug, Default)]
pub struct DeltaReport {
    /// Image references.
    pub images: usize,
    /// Blob files present and re-hashed.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Blobs the images need that the base provides.
    pub from_base: usize,
    /// Layers the delta carries as binary patches (rebuilt by apply).
    pub patched: usize,
    /// What is wrong.
    pub problems: Vec<String>,
}

impl DeltaReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Every blob the delta's images need, by its lock (which must have an entry, with blobs, for
/// every reference of index.json, at the same digest). Problems are appended to `problems`.
pub fn needed_blobs(
    layout: &dyn BundleSource,
    problems: &mut Vec<String>,
) -> Result<BTreeMap<Digest, u64>, StoreError> {
    let index = layout.index()?;
    let lock = layout.lock()?.unwrap_or_default();
    let mut needed = BTreeMap::new();
    for entry in index.entries() {
        let Some(name) = entry.name else {
            problems.push("index.json has an entry without a reference name".into());
            continue;
        };
        let digest = entry.descriptor.digest().to_string();
        match lock.get(&name) {
            Some(l) if l.digest.to_string() == digest && l.blobs.contains_key(&l.digest) => {
                needed.extend(l.blobs.iter().map(|(d, s)| (d.clone(), *s)));
            }
            Some(l) if l.digest.to_string() != digest => problems.push(format!(
                "{name}: ferry.lock says {}, index.json says {digest}",
                l.digest
            )),
            _ => problems.push(format!(
                "{name}: ferry.lock does not record its blobs; this delta cannot be checked or applied"
            )),
        }
    }
    Ok(needed)
}

/// Checks a delta. `on_bytes` is told of progress as blobs are hashed.
pub fn verify_delta(
    layout: &dyn BundleSource,
    marker: &Marker,
    on_bytes: &dyn Fn(u64),
) -> Result<DeltaReport, StoreError> {
    let mut report = DeltaReport::default();
    // In the source's order: a .tar.zst that cannot seek is read once.
    for (digest, _) in layout.blobs()? {
        let checked = layout.open_blob(&digest, None).and_then(|b| {
            b.verify()?;
            Ok(b.size())
        });
        match checked {
            Ok(size) => {
                report.blobs += 1;
                report.bytes += size;
                on_bytes(size);
            }
            Err(e) => report.problems.push(format!("blob {digest}: {e}")),
        }
    }
    check_needed(layout, marker, &mut report)?;
    report.problems.sort();
    Ok(report)
}

/// The blobs the delta's images need, each checked to be in the delta or claimed by its base's
/// lock (problems go into `report`, with the image count).
fn check_needed(
    layout: &dyn BundleSource,
    marker: &Marker,
    report: &mut DeltaReport,
) -> Result<BTreeMap<Digest, u64>, StoreError> {
    report.images = layout.index()?.len();
    let needed = needed_blobs(layout, &mut report.problems)?;
    for (digest, size) in &needed {
        if layout.has_blob(digest, *size) {
            continue;
        }
        if marker.base_blobs.get(digest) == Some(size) {
            report.from_base += 1;
        } else if let Some(p) = marker.patched.get(digest).filter(|p| p.size == *size) {
            // Rebuilt by apply from its patch (in the delta) and its base layer (BASE's).
            report.patched += 1;
            if !layout.has_blob(&p.patch, p.patch_size) {
                report.problems.push(format!(
                    "layer {digest}: its binary patch {} ({} bytes) is not in the delta",
                    p.patch, p.patch_size
                ));
            }
            if marker.base_blobs.get(&p.base) != Some(&p.base_size) {
                report.problems.push(format!(
                    "layer {digest}: its patch applies to {}, which the base's lock does not claim",
                    p.base
                ));
            }
        } else {
            report.problems.push(format!(
                "blob {digest} ({size} bytes) is neither in the delta nor in its base's lock"
            ));
        }
    }
    Ok(needed)
}

/// Writes a delta as an oci-archive (`.tar`, or zstd-compressed `.tar.zst`): oci-layout,
/// index.json, ferry.lock, ferry-delta.json, restore.sh and the blobs present that its images
/// need. Refuses a delta that does not check out.
pub fn export_delta(
    layout: &dyn BundleSource,
    marker: &Marker,
    out: &Target,
    cancel: &CancellationToken,
    reporter: &dyn crate::report::Reporter,
) -> Result<(), ExportError> {
    // Blobs are re-hashed as the tar streams them; what is checked here is that the delta is
    // whole: every blob its images need is in it or claimed by its base.
    let mut report = DeltaReport::default();
    let needed = check_needed(layout, marker, &mut report)?;
    if let Some(p) = report.problems.first() {
        let hint = format!(
            "`ferry verify {}` lists every problem",
            layout.path().display()
        );
        return Err(ExportError::Incomplete(p.to_string()).with_hint(hint));
    }
    let mut plan = TarPlan::default();
    for (d, s) in needed.iter().filter(|(d, s)| layout.has_blob(d, **s)) {
        plan.add_blob(d.clone(), *s)?;
    }
    let patches = needed.keys().filter_map(|d| marker.patched.get(d));
    for p in patches.filter(|p| layout.has_blob(&p.patch, p.patch_size)) {
        plan.add_blob(p.patch.clone(), p.patch_size)?;
    }
    let names = ["index.json", LOCK_FILE_NAME, MARKER_NAME, SCRIPT_FILE];
    add_root_files(layout, &mut plan, &names)?;
    crate::export::write_oci_tar(layout, &plan, out, cancel, reporter)
}
