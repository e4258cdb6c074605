//! `apply` of a delta holding binary patches: the patched layers rebuilt from the delta's
//! patches and BASE's layers, each checked against its digest before anything lands.

use std::collections::BTreeMap;

use super::apply::{ApplyError, Delta};
use super::binary::{Patched, rebuild_layer};
use crate::digest::Digest;
use crate::store::{BundleSource, Layout, StagedBlob};

/// Splits the blobs the new bundle needs into those the delta holds or BASE has (`direct`)
/// and those to rebuild from a patch (the delta lists them and does not hold them whole).
pub fn split(
    delta: &Delta,
    needed: &BTreeMap<Digest, u64>,
) -> (BTreeMap<Digest, u64>, BTreeMap<Digest, Patched>) {
    let mut direct = BTreeMap::new();
    let mut patched = BTreeMap::new();
    for (digest, size) in needed {
        match delta.marker.patched.get(digest) {
            Some(p) if p.size == *size && !delta.source.has_blob(digest, *size) => {
                patched.insert(digest.clone(), p.clone());
            }
            _ => {
                direct.insert(digest.clone(), *size);
            }
        }
    }
    (direct, patched)
}

/// Rebuilds every patched layer into a staged blob of `base` (checked against its digest and
/// size; not yet in `blobs/`). The first that fails is refused, naming the layer; the staged
/// ones are then dropped (removed), so BASE is unchanged.
pub fn rebuild_all(
    delta: &Delta,
    base: &Layout,
    patched: &BTreeMap<Digest, Patched>,
) -> Result<Vec<StagedBlob>, ApplyError> {
    let mut staged = Vec::new();
    for (layer, p) in patched {
        let refuse = |reason: String| ApplyError::BadPatch {
            layer: layer.clone(),
            reason,
        };
        if !delta.source.has_blob(&p.patch, p.patch_size) {
            return Err(refuse(format!("the delta lacks its patch {}", p.patch)));
        }
        if !base.has_blob(&p.base, p.base_size) {
            return Err(refuse(format!(
                "{} lacks the layer {} the patch applies to",
                BundleSource::path(base).display(),
                p.base
            )));
        }
        staged.push(rebuild_layer(&*delta.source, base, base, layer, p).map_err(refuse)?);
    }
    Ok(staged)
}
