//! What pushing one index.json entry means: its blobs, and its manifests bottom-up (children
//! before the index that names them), read from the bundle and checked against their digests.
//!
//! An index whose children are only partly in the bundle (a bundle made for some platforms)
//! cannot be pushed under its tag without changing its digest, and docker-registry refuses an
//! index whose children are absent. So its present platform manifests are pushed by digest and
//! the tag is left alone (status `partial`), unless `--tag-single-platform` asks, for an index
//! with exactly one platform present, to tag that platform's manifest instead (and says so).

use std::collections::BTreeMap;

use bytes::Bytes;
use oci_spec::image::Descriptor;

use crate::digest::Digest;
use crate::error::{Error, Kind};
use crate::manifest::{self, Manifest};
use crate::reference::ImageRef;
use crate::store::{BlobStat, BundleSource, IndexEntry};

/// One manifest PUT.
#[derive(Debug, Clone)]
pub struct ManifestPut {
    /// Its digest (the bytes hash to it).
    pub digest: Digest,
    /// The media type stored for it (Content-Type of the PUT).
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Bytes,
    /// The tag to PUT it under; `None`: by digest.
    pub tag: Option<String>,
}

/// Everything one image needs on the target.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// The bundle's reference.
    pub source: ImageRef,
    /// The entry's digest (index or manifest).
    pub digest: Digest,
    /// Configs and layers of every manifest pushed: digest -> size.
    pub blobs: BTreeMap<Digest, u64>,
    /// Manifests to PUT, children first; the last one carries the tag when there is one.
    pub manifests: Vec<ManifestPut>,
    /// Platforms whose manifests are pushed.
    pub platforms: Vec<String>,
    /// Children of an index absent from the bundle (`linux/arm64`, `attestation sha256:…`).
    pub absent: Vec<String>,
    /// Whether the reference will resolve on the target (tag or digest PUT of the entry, or of
    /// its one platform with `--tag-single-platform`).
    pub tagged: bool,
    /// Said in the report when the tag points elsewhere than the source's digest.
    pub note: Option<String>,
}

/// Why an entry cannot be pushed.
pub type PlanError = Error;

fn digest_of(d: &Descriptor) -> Result<Digest, PlanError> {
    Ok(manifest::descriptor_digest(d)?)
}

fn read_manifest(
    layout: &dyn BundleSource,
    d: &Descriptor,
) -> Result<(Manifest, ManifestPut), PlanError> {
    let digest = digest_of(d)?;
    if d.size() > manifest::MAX_MANIFEST_BYTES {
        return Err(Error::msg(
            Kind::Bundle,
            format!("{digest}: {} bytes is too large for a manifest", d.size()),
        ));
    }
    let bytes = layout
        .open_blob(&digest, Some(d.size()))
        .and_then(|b| b.read_verified(manifest::MAX_MANIFEST_BYTES))
        .map_err(|e| Error::from(e).wrap(format!("manifest {digest}")))?;
    let declared = d.media_type().to_string();
    let (parsed, media_type) = Manifest::parse(&bytes, Some(&declared))
        .map_err(|e| Error::from(e).wrap(digest.to_string()))?;
    Ok((
        parsed,
        ManifestPut {
            digest,
            media_type,
            bytes: Bytes::from(bytes),
            tag: None,
        },
    ))
}

/// Adds an image manifest's config and layers, which must all be in the bundle.
fn add_blobs(
    layout: &dyn BundleSource,
    m: &oci_spec::image::ImageManifest,
    blobs: &mut BTreeMap<Digest, u64>,
) -> Result<(), PlanError> {
    for d in std::iter::once(m.config()).chain(m.layers()) {
        let digest = digest_of(d)?;
        if !layout.has_blob(&digest, d.size()) {
            return Err(Error::msg(
                Kind::Bundle,
                format!(
                    "blob {digest} ({} bytes) is missing from the bundle",
                    d.size()
                ),
            )
            .with_hint("run `ferry verify` on the bundle, and bundle the image again"));
        }
        blobs.insert(digest, d.size());
    }
    Ok(())
}

fn child_name(child: &Descriptor) -> String {
    // A platform that fails its grammar is shown by digest, never as written.
    match manifest::descriptor_platform(child) {
        Ok(Some(_)) if manifest::is_attestation(child) => format!("attestation {}", child.digest()),
        Ok(Some(p)) => p.to_string(),
        Ok(None) | Err(_) => format!("manifest {}", child.digest()),
    }
}

/// Plans the push of one index.json entry.
pub fn plan_entry(
    layout: &dyn BundleSource,
    entry: &IndexEntry,
    source: ImageRef,
    tag_single_platform: bool,
) -> Result<ImagePlan, PlanError> {
    let (top, mut top_put) = read_manifest(layout, &entry.descriptor)?;
    let mut plan = ImagePlan {
        source: source.clone(),
        digest: top_put.digest.clone(),
        blobs: BTreeMap::new(),
        manifests: Vec::new(),
        platforms: Vec::new(),
        absent: Vec::new(),
        tagged: true,
        note: None,
    };
    let tag = match source.digest() {
        Some(_) => None,
        None => Some(source.tag().unwrap_or("latest").to_owned()),
    };
    match top {
        Manifest::Image(m) => {
            add_blobs(layout, &m, &mut plan.blobs)?;
            if let Ok(Some(p)) = manifest::descriptor_platform(&entry.descriptor) {
                plan.platforms.push(p.to_string());
            }
            top_put.tag = tag;
            plan.manifests.push(top_put);
        }
        Manifest::Index(index) => {
            let mut present = Vec::new();
            for child in index.manifests() {
                let digest = digest_of(child)?;
                if layout.blob_stat(&digest) == BlobStat::Missing {
                    plan.absent.push(child_name(child));
                    continue;
                }
                let (parsed, put) = read_manifest(layout, child)?;
                let Manifest::Image(m) = parsed else {
                    return Err(Error::msg(
                        Kind::Bundle,
                        format!("{digest}: a nested index is not supported"),
                    ));
                };
                add_blobs(layout, &m, &mut plan.blobs)?;
                if !manifest::is_attestation(child) {
                    plan.platforms.push(child_name(child));
                }
                present.push((put, manifest::is_attestation(child)));
            }
            let platforms: Vec<usize> = (0..present.len()).filter(|i| !present[*i].1).collect();
            plan.manifests = present.iter().map(|(p, _)| p.clone()).collect();
            if plan.absent.is_empty() {
                top_put.tag = tag;
                plan.manifests.push(top_put);
            } else if tag_single_platform && platforms.len() == 1 && tag.is_some() {
                let one = &mut plan.manifests[platforms[0]];
                plan.note = Some(format!(
                    "the tag points to the {} manifest {} (the bundle lacks {} of index {})",
                    plan.platforms[0],
                    one.digest,
                    plan.absent.join(", "),
                    plan.digest
                ));
                // Moved last: the tag is PUT after everything else is there.
                let mut tagged = plan.manifests.remove(platforms[0]);
                tagged.tag = tag;
                plan.manifests.push(tagged);
            } else {
                plan.tagged = false;
            }
        }
    }
    Ok(plan)
}
