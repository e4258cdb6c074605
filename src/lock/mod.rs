//! `ferry lock`: what every reference resolves to, without downloading blobs; and the drift
//! between a lock file and what the tags say today.

pub mod sources;

use std::collections::BTreeMap;

use crate::platform::PlatformFilter;
use crate::reference::ImageRef;
use crate::registry::Registries;
use crate::resolve::{ResolvedImage, Selection, current_digest, resolve_many};

/// The lock file format lives with the bundle it describes; re-exported for the command.
pub use crate::store::lockfile::{LOCK_FILE_NAME, LockFile, LockedImage, LockedPlatform};

/// The lock entry for a resolved image: its manifest, and every child kept (attestations
/// included, so that a bundle made from the lock is the same bundle).
pub fn locked_image(image: &ResolvedImage) -> LockedImage {
    let mut platforms: Vec<LockedPlatform> = image
        .platforms
        .iter()
        .map(|p| LockedPlatform {
            platform: p.platform.clone(),
            digest: p.manifest.digest.clone(),
            size: p.manifest.bytes.len() as u64,
        })
        .collect();
    // The order the file has: a comparison with a lock read back must not see a change.
    platforms.sort_by(|a, b| a.platform.cmp(&b.platform).then(a.digest.cmp(&b.digest)));
    LockedImage {
        reference: image.reference.to_string(),
        digest: image.root.digest.clone(),
        media_type: image.root.media_type.clone(),
        size: image.root.bytes.len() as u64,
        platforms,
        total_size: image.all_blobs().values().sum(),
        blobs: image.all_blobs(),
        source: image.source.clone(),
    }
}

/// The outcome of `ferry lock`.
#[derive(Debug, Default)]
pub struct LockOutcome {
    /// The lock of every reference that resolved.
    pub lock: LockFile,
    /// References that did not, with why.
    pub failed: Vec<(String, crate::error::Error)>,
}

/// Resolves every reference (manifests and single-image configs only) into a lock file.
pub async fn lock(
    registries: &Registries,
    references: &[ImageRef],
    filter: &PlatformFilter,
    jobs: usize,
) -> LockOutcome {
    let mut out = LockOutcome::default();
    for (reference, result) in resolve_many(registries, references, jobs, |_| {
        Selection::Platforms(filter)
    })
    .await
    {
        match result {
            Ok(image) => out.lock.upsert(locked_image(&image)),
            Err(e) => out.failed.push((reference.to_string(), e.into())),
        }
    }
    out.failed.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// How a lock differs from another (or from the registries): one line per reference.
pub fn differences(old: &LockFile, new: &LockFile) -> Vec<String> {
    let old: BTreeMap<&str, &LockedImage> = old
        .images
        .iter()
        .map(|i| (i.reference.as_str(), i))
        .collect();
    let new: BTreeMap<&str, &LockedImage> = new
        .images
        .iter()
        .map(|i| (i.reference.as_str(), i))
        .collect();
    let mut out = Vec::new();
    for (r, n) in &new {
        match old.get(r) {
            None => out.push(format!("{r}: not in the lock file (new)")),
            Some(o) if o.digest != n.digest => {
                out.push(format!("{r}: locked {}, now {}", o.digest, n.digest))
            }
            Some(o) if o.platforms != n.platforms => {
                out.push(format!("{r}: its platforms changed"))
            }
            Some(_) => {}
        }
    }
    for r in old.keys().filter(|r| !new.contains_key(*r)) {
        out.push(format!(
            "{r}: in the lock file, no longer among the sources"
        ));
    }
    out
}

/// The references of a lock whose tag names another manifest today (by-digest references
/// cannot drift). Lines for people; errors reaching a registry count as drift too, naming it.
pub async fn drift(registries: &Registries, lock: &LockFile) -> Vec<String> {
    let mut out = Vec::new();
    for locked in &lock.images {
        let reference: ImageRef = match locked.reference.parse() {
            Ok(r) => r,
            Err(e) => {
                out.push(format!("{}: {e}", locked.reference));
                continue;
            }
        };
        if reference.digest().is_some() {
            continue;
        }
        match current_digest(registries, &reference).await {
            Ok(d) if d == locked.digest => {}
            Ok(d) => out.push(format!(
                "{reference}: locked {}, the tag now names {d}",
                locked.digest
            )),
            Err(e) => out.push(format!(
                "{reference}: cannot check: {}",
                e.to_string().lines().next().unwrap_or_default()
            )),
        }
    }
    out
}
