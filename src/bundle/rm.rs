//! `ferry rm`: takes references out of a bundle, and exactly the blobs no other image uses.
//! index.json, ferry.lock and restore.sh are replaced first; the blobs go after, so a crash at
//! any instant leaves a valid bundle (at worst with blobs nothing names, which `ferry gc` removes).

use std::collections::BTreeSet;

use crate::digest::Digest;
use crate::store::gc::{GcError, Removed, referenced, remove_blobs};
use crate::store::{Layout, StoreError};

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
    /// The blobs removed with them.
    pub removed: Removed,
}

/// The name a reference has in the bundle: as written, or normalized (`alpine` ->
/// `docker.io/library/alpine:latest`).
fn name_in(index: &crate::store::BundleIndex, reference: &str) -> Option<String> {
    if index.get(reference).is_some() {
        return Some(reference.to_owned());
    }
    let normalized = reference
        .parse::<crate::reference::ImageRef>()
        .ok()?
        .to_string();
    index.get(&normalized).map(|_| normalized)
}

/// Removes `references` from the bundle. `layout` must be open for writing.
pub fn remove_references(layout: &Layout, references: &[String]) -> Result<RmReport, RmError> {
    let mut index = layout.read_index()?;
    let mut names = Vec::new();
    let mut missing = Vec::new();
    for r in references {
        match name_in(&index, r) {
            Some(n) => names.push(n),
            None => missing.push(r.clone()),
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
    // What the removed entries reach, and what the others still use: both must be fully known.
    let before = referenced(layout, &index)?;
    for n in &names {
        index.remove(n);
    }
    let after = referenced(layout, &index)?;
    let gone: BTreeSet<Digest> = before
        .into_keys()
        .filter(|d| !after.contains_key(d))
        .collect();
    let mut lock = layout.read_lock()?;
    lock.images.retain(|i| !names.contains(&i.reference));
    super::publish::publish(layout, &index, &lock)?;
    let removed = remove_blobs(layout, &gone)?;
    layout.tidy();
    Ok(RmReport {
        references: names,
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
