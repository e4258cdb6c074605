//! `ferry rm`: takes references out of a bundle, and exactly the blobs no other image uses.
//! index.json, ferry.lock and restore.sh are replaced first; the blobs go after, so a crash at
//! any instant leaves a valid bundle (at worst with blobs nothing names, which `ferry gc`
//! removes, or a lock and restore.sh still naming the images, which the next run of `rm` or
//! any other writing command sets right).

use std::collections::BTreeSet;

use super::derived;
use crate::digest::Digest;
use crate::store::gc::{GcError, Removed, referenced, remove_blobs};
use crate::store::{Layout, StoreError, inspect_entry};

/// Why references could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RmError {
    /// Some named reference is not in the bundle; nothing was changed.
    #[error(
        "not in {bundle}: {}; nothing was removed",
        .missing.join(", ")
    )]
    NotInBundle {
        /// The bundle.
        bundle: String,
        /// The references not found.
        missing: Vec<String>,
    },
    /// Reading, writing or walking the bundle failed.
    #[error(transparent)]
    Gc(#[from] GcError),
}

impl From<StoreError> for RmError {
    fn from(e: StoreError) -> RmError {
        RmError::Gc(GcError::Store(e))
    }
}

/// What `rm` did.
#[derive(Debug, Default)]
pub struct RmReport {
    /// The references removed, as named in the bundle.
    pub references: Vec<String>,
    /// Of those, the ones an interrupted `rm` had already taken out of index.json but not
    /// out of ferry.lock or restore.sh: their removal is finished now.
    pub finished: Vec<String>,
    /// The blobs removed with them.
    pub removed: Removed,
}

/// The name a reference has among `names`: as written, or normalized (`alpine` ->
/// `docker.io/library/alpine:latest`).
fn name_in(has: impl Fn(&str) -> bool, reference: &str) -> Option<String> {
    if has(reference) {
        return Some(reference.to_owned());
    }
    let normalized = reference
        .parse::<crate::reference::ImageRef>()
        .ok()?
        .to_string();
    has(&normalized).then_some(normalized)
}

/// Removes `references` from the bundle. `layout` must be open for writing. A reference that
/// only ferry.lock or restore.sh still names (an `rm` was interrupted) is removed from them,
/// with the blobs no other image uses; index.json is the truth for what the others use.
pub fn remove_references(layout: &Layout, references: &[String]) -> Result<RmReport, RmError> {
    let mut index = layout.read_index()?;
    let lock = layout.read_lock()?;
    let stale = derived::stale_entries(layout, &index, &lock)?;
    let stale_named = |n: &str| stale.iter().find(|e| e.name.as_deref() == Some(n));
    let mut names = Vec::new();
    let mut finishing = Vec::new();
    let mut missing = Vec::new();
    for r in references {
        if let Some(n) = name_in(|n| index.get(n).is_some(), r) {
            names.push(n);
        } else if let Some(n) = name_in(|n| stale_named(n).is_some(), r) {
            finishing.push(n);
        } else {
            missing.push(r.clone());
        }
    }
    if !missing.is_empty() {
        return Err(RmError::NotInBundle {
            bundle: layout.root().display().to_string(),
            missing,
        });
    }
    names.sort();
    names.dedup();
    finishing.sort();
    finishing.dedup();
    // What the removed entries reach, and what the others still use: both must be fully known
    // (for an entry index.json no longer names, what its manifests still reach).
    let mut before = referenced(layout, &index)?;
    for entry in finishing.iter().filter_map(|n| stale_named(n)) {
        before.extend(inspect_entry(layout, entry).blobs);
    }
    for n in &names {
        index.remove(n);
    }
    let after = referenced(layout, &index)?;
    let gone: BTreeSet<Digest> = before
        .into_keys()
        .filter(|d| !after.contains_key(d))
        .collect();
    let (lock, _) = derived::agreeing_lock(layout, &index, lock);
    crate::store::publish::publish(layout, &index, &lock)?;
    let removed = remove_blobs(layout, &gone)?;
    layout.tidy();
    let mut all = names;
    all.extend(finishing.iter().cloned());
    all.sort();
    Ok(RmReport {
        references: all,
        finished: finishing,
        removed,
    })
}

impl crate::error::Diagnostic for RmError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            RmError::NotInBundle { .. } => crate::error::Kind::Usage,
            RmError::Gc(e) => e.kind(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            RmError::NotInBundle { bundle, .. } => {
                Some(format!("`ferry ls {bundle}` lists its references"))
            }
            RmError::Gc(e) => e.hint(),
        }
    }
}
