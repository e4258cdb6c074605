//! Walks what an index.json entry reaches in the bundle: the platforms present, every blob with
//! its size, and anything that is referenced but missing.

use std::collections::BTreeMap;

use oci_spec::image::Descriptor;

use super::{IndexEntry, Layout};
use crate::digest::Digest;
use crate::manifest::{self, Manifest};
use crate::platform::Platform;

/// What one image entry holds in the bundle.
#[derive(Debug, Clone, Default)]
pub struct ImageContents {
    /// Platforms whose image is complete in the bundle (`None` when an image declares none).
    pub platforms: Vec<Option<Platform>>,
    /// Every blob reached (manifests, configs, layers), with its descriptor size.
    pub blobs: BTreeMap<Digest, u64>,
    /// Referenced content that is absent or unreadable: `(digest, what is wrong)`.
    pub problems: Vec<(Digest, String)>,
}

impl ImageContents {
    /// Sum of the distinct blobs' sizes.
    pub fn total_size(&self) -> u64 {
        self.blobs.values().sum()
    }
}

/// Inspects an index.json entry.
pub fn inspect_entry(layout: &Layout, entry: &IndexEntry) -> ImageContents {
    let mut out = ImageContents::default();
    let d = &entry.descriptor;
    let digest = manifest::descriptor_digest(d);
    let Some(bytes) = read_checked(layout, &digest, d.size(), &mut out) else {
        return out;
    };
    match Manifest::parse(&bytes, Some(d.media_type().as_ref())) {
        Ok((Manifest::Index(index), _)) => {
            let recorded = entry.recorded_platforms();
            for child in index.manifests() {
                let child_digest = manifest::descriptor_digest(child);
                let platform = manifest::descriptor_platform(child);
                let wanted = recorded.as_ref().is_some_and(|r| {
                    platform
                        .as_ref()
                        .is_some_and(|p| r.contains(&p.to_string()))
                });
                // Children not fetched are absent by design (platform filtering); only those
                // the bundle says it holds, or that are partly there, must be complete.
                if !wanted && !layout.has_blob(&child_digest, child.size()) {
                    continue;
                }
                let before = out.problems.len();
                inspect_image(layout, child, &mut out);
                if out.problems.len() == before && !manifest::is_attestation(child) {
                    out.platforms.push(platform);
                }
            }
            if out.platforms.is_empty() && out.problems.is_empty() {
                out.problems
                    .push((digest, "no platform of this index is in the bundle".into()));
            }
        }
        Ok((Manifest::Image(_), _)) => {
            let platform = inspect_image(layout, d, &mut out);
            if out.problems.is_empty() {
                out.platforms
                    .push(platform.or_else(|| manifest::descriptor_platform(d)));
            }
        }
        Err(e) => out
            .problems
            .push((digest, format!("unreadable manifest: {e}"))),
    }
    out
}

/// Walks one image manifest; returns the platform its config declares.
fn inspect_image(layout: &Layout, d: &Descriptor, out: &mut ImageContents) -> Option<Platform> {
    let digest = manifest::descriptor_digest(d);
    let bytes = read_checked(layout, &digest, d.size(), out)?;
    let image = match Manifest::parse(&bytes, Some(d.media_type().as_ref())) {
        Ok((Manifest::Image(m), _)) => m,
        Ok((Manifest::Index(_), _)) => {
            out.problems
                .push((digest, "nested index: not supported".into()));
            return None;
        }
        Err(e) => {
            out.problems
                .push((digest, format!("unreadable manifest: {e}")));
            return None;
        }
    };
    let config = image.config();
    let config_digest = manifest::descriptor_digest(config);
    let platform = read_checked(layout, &config_digest, config.size(), out)
        .and_then(|c| manifest::config_platform(&c));
    for layer in image.layers() {
        let layer_digest = manifest::descriptor_digest(layer);
        out.blobs.insert(layer_digest.clone(), layer.size());
        if !layout.has_blob(&layer_digest, layer.size()) {
            let why = if layout.blob_path(&layer_digest).exists() {
                "wrong size"
            } else {
                "missing"
            };
            out.problems.push((layer_digest, format!("layer {why}")));
        }
    }
    platform
}

/// Reads a small blob that must be present with the descriptor's size.
fn read_checked(
    layout: &Layout,
    digest: &Digest,
    size: u64,
    out: &mut ImageContents,
) -> Option<Vec<u8>> {
    out.blobs.insert(digest.clone(), size);
    if size > manifest::MAX_MANIFEST_BYTES {
        out.problems.push((
            digest.clone(),
            format!("{size} bytes is too large for a manifest or config"),
        ));
        return None;
    }
    match layout.read_blob(digest) {
        Ok(bytes) if bytes.len() as u64 == size => Some(bytes),
        Ok(bytes) => {
            out.problems.push((
                digest.clone(),
                format!("size {} but the descriptor says {size}", bytes.len()),
            ));
            None
        }
        Err(_) => {
            out.problems.push((digest.clone(), "missing".into()));
            None
        }
    }
}
