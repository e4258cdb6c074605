//! Walks what an index.json entry reaches in the bundle: the platforms present, every blob with
//! its size, and anything that is referenced but missing.

use std::collections::BTreeMap;

use oci_spec::image::Descriptor;

use super::IndexEntry;
use super::source::{BlobStat, BundleSource};
use crate::digest::Digest;
use crate::manifest::{self, Manifest};
use crate::platform::Platform;

/// What one image entry holds in the bundle.
#[derive(Debug, Clone, Default)]
pub struct ImageContents {
    /// The image manifest of each platform whose image is complete in the bundle.
    pub manifests: Vec<PlatformManifest>,
    /// Every blob reached (manifests, configs, layers), with its descriptor size.
    pub blobs: BTreeMap<Digest, u64>,
    /// Referenced content that is absent, unreadable or unsupported: `(digest, what is wrong)`.
    pub problems: Vec<(String, String)>,
}

/// One platform's image manifest in the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformManifest {
    /// The platform (from the index entry, else the config; `None` when neither declares one).
    pub platform: Option<Platform>,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// Bytes of its distinct blobs: the manifest, its config and its layers.
    pub size: u64,
}

impl ImageContents {
    /// Records a complete platform image.
    fn complete(&mut self, platform: Option<Platform>, d: &Descriptor, digest: Digest, size: u64) {
        self.manifests.push(PlatformManifest {
            platform,
            digest,
            media_type: d.media_type().to_string(),
            size,
        });
    }

    /// Sum of the distinct blobs' sizes.
    pub fn total_size(&self) -> u64 {
        self.blobs.values().sum()
    }

    fn problem(&mut self, digest: impl ToString, why: impl Into<String>) {
        self.problems.push((digest.to_string(), why.into()));
    }

    /// The descriptor's digest, or a problem when ferry cannot handle its algorithm.
    fn digest_of(&mut self, d: &Descriptor) -> Option<Digest> {
        match manifest::descriptor_digest(d) {
            Ok(digest) => Some(digest),
            Err(e) => {
                self.problem(d.digest(), e.to_string());
                None
            }
        }
    }
}

/// Inspects an index.json entry.
pub fn inspect_entry(layout: &dyn BundleSource, entry: &IndexEntry) -> ImageContents {
    let mut out = ImageContents::default();
    let d = &entry.descriptor;
    let Some(digest) = out.digest_of(d) else {
        return out;
    };
    let Some(bytes) = read_checked(layout, &digest, d.size(), &mut out) else {
        return out;
    };
    match Manifest::parse(&bytes, Some(d.media_type().as_ref())) {
        Ok((Manifest::Index(index), _)) => {
            // Children not fetched are absent by design (platform filtering); those present
            // must be complete, and every recorded platform needs one complete child (an index
            // may list a platform twice, e.g. gzip and zstd variants: one is enough).
            for child in index.manifests() {
                let Some(child_digest) = out.digest_of(child) else {
                    continue;
                };
                // Absent, or with an invalid platform (never kept): not part of this image.
                if layout.blob_stat(&child_digest) == BlobStat::Missing
                    || manifest::descriptor_platform(child).is_err()
                {
                    continue;
                }
                let before = out.problems.len();
                let walked = inspect_image(layout, child, &mut out);
                if let (Some((_, size)), true) = (walked, out.problems.len() == before)
                    && !manifest::is_attestation(child)
                {
                    let platform = manifest::descriptor_platform(child).ok().flatten();
                    out.complete(platform, child, child_digest, size);
                }
            }
            let present: Vec<String> = out
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(ToString::to_string)
                .collect();
            for p in entry.recorded_platforms().unwrap_or_default() {
                if !present.contains(&p) {
                    out.problem(
                        &digest,
                        format!(
                            "platform {p} is recorded but no complete image for it is in the bundle"
                        ),
                    );
                }
            }
            if out.manifests.is_empty() && out.problems.is_empty() {
                out.problem(&digest, "no platform of this index is in the bundle");
            }
        }
        Ok((Manifest::Image(_), _)) => {
            let walked = inspect_image(layout, d, &mut out);
            if let (Some((platform, size)), true) = (walked, out.problems.is_empty()) {
                let platform = platform.or_else(|| manifest::descriptor_platform(d).ok().flatten());
                out.complete(platform, d, digest, size);
            }
        }
        Err(e) => out.problem(&digest, format!("unreadable manifest: {e}")),
    }
    out
}

/// Walks one image manifest; returns the platform its config declares and the bytes of its
/// distinct blobs (manifest, config, layers), or `None` when the manifest is unusable.
fn inspect_image(
    layout: &dyn BundleSource,
    d: &Descriptor,
    out: &mut ImageContents,
) -> Option<(Option<Platform>, u64)> {
    let digest = out.digest_of(d)?;
    let bytes = read_checked(layout, &digest, d.size(), out)?;
    let image = match Manifest::parse(&bytes, Some(d.media_type().as_ref())) {
        Ok((Manifest::Image(m), _)) => m,
        Ok((Manifest::Index(_), _)) => {
            out.problem(&digest, "nested index: not supported");
            return None;
        }
        Err(e) => {
            out.problem(&digest, format!("unreadable manifest: {e}"));
            return None;
        }
    };
    let config = image.config();
    let platform = out
        .digest_of(config)
        .and_then(|c| read_checked(layout, &c, config.size(), out))
        .and_then(|c| match manifest::config_platform(&c) {
            Ok(p) => p,
            Err(e) => {
                out.problem(config.digest(), format!("config: {e}"));
                None
            }
        });
    let mut own = BTreeMap::from([(digest, d.size())]);
    if let Ok(c) = manifest::descriptor_digest(config) {
        own.insert(c, config.size());
    }
    for layer in image.layers() {
        let Some(layer_digest) = out.digest_of(layer) else {
            continue;
        };
        own.insert(layer_digest.clone(), layer.size());
        out.blobs.insert(layer_digest.clone(), layer.size());
        if !layout.has_blob(&layer_digest, layer.size()) {
            let why = match layout.blob_stat(&layer_digest) {
                BlobStat::NotAFile("a symlink") => {
                    "is a symlink (a bundle holds regular files only)"
                }
                BlobStat::NotAFile(_) => "not a regular file",
                BlobStat::File(_) => "wrong size",
                BlobStat::Missing => "missing",
            };
            out.problem(&layer_digest, format!("layer {why}"));
        }
    }
    Some((platform, own.values().sum()))
}

/// Reads a small blob that must be present with the descriptor's size.
fn read_checked(
    layout: &dyn BundleSource,
    digest: &Digest,
    size: u64,
    out: &mut ImageContents,
) -> Option<Vec<u8>> {
    out.blobs.insert(digest.clone(), size);
    if size > manifest::MAX_MANIFEST_BYTES {
        out.problem(
            digest,
            format!("{size} bytes is too large for a manifest or config"),
        );
        return None;
    }
    match layout.read_blob(digest) {
        Ok(bytes) if bytes.len() as u64 == size => Some(bytes),
        Ok(bytes) => {
            out.problem(
                digest,
                format!("size {} but the descriptor says {size}", bytes.len()),
            );
            None
        }
        Err(super::StoreError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            out.problem(digest, "missing");
            None
        }
        Err(e) => {
            out.problem(digest, e.to_string());
            None
        }
    }
}
