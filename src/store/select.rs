//! One image of the bundle for one platform: the manifest that serves it, its config and
//! layers (for restoring on a node, or a docker-archive of that platform).

use oci_spec::image::Descriptor;

use super::source::{BlobStat, BundleSource};
use super::{IndexEntry, StoreError};
use crate::digest::Digest;
use crate::manifest::{self, Manifest};
use crate::platform::Platform;

/// An image chosen for a platform.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    /// The reference (index.json's name).
    pub name: String,
    /// The index.json descriptor (an index or a manifest).
    pub entry: Descriptor,
    /// The image manifest for the platform (the entry itself for a single image).
    pub manifest: Descriptor,
    /// Its config.
    pub config: Descriptor,
    /// Its layers, in order.
    pub layers: Vec<Descriptor>,
}

impl PlatformImage {
    /// Every blob the image needs on a node of that platform.
    pub fn blobs(&self) -> Result<Vec<Digest>, StoreError> {
        Ok(self.sized_blobs()?.into_iter().map(|(d, _)| d).collect())
    }

    /// Every blob the image needs on a node of that platform, with its declared size.
    pub fn sized_blobs(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        let mut out = vec![
            (digest(&self.entry)?, self.entry.size()),
            (digest(&self.manifest)?, self.manifest.size()),
            (digest(&self.config)?, self.config.size()),
        ];
        for l in &self.layers {
            out.push((digest(l)?, l.size()));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// What a bundle entry offers a platform.
#[derive(Debug, Clone)]
pub enum Offer {
    /// An image for it.
    Serves(Box<PlatformImage>),
    /// No image for it; the platforms it has.
    Lacks {
        /// The reference.
        name: String,
        /// Its platforms (`-` when it declares none).
        has: Vec<String>,
    },
}

fn digest(d: &Descriptor) -> Result<Digest, StoreError> {
    manifest::descriptor_digest(d).map_err(|e| StoreError::Corrupt {
        path: "index.json".into(),
        reason: e.to_string(),
    })
}

fn read_manifest(layout: &dyn BundleSource, d: &Descriptor) -> Result<Manifest, StoreError> {
    let digest = digest(d)?;
    let bytes = layout.read_blob(&digest)?;
    Manifest::parse(&bytes, Some(d.media_type().as_ref()))
        .map(|(m, _)| m)
        .map_err(|e| StoreError::Corrupt {
            path: layout.path().join(digest.to_string()),
            reason: e.to_string(),
        })
}

/// The image of `entry` for `platform`: among an index's children present in the bundle, the
/// best match (the default variant first); a single image when it declares that platform or
/// none.
pub fn offer(
    layout: &dyn BundleSource,
    entry: &IndexEntry,
    platform: &Platform,
) -> Result<Offer, StoreError> {
    let name = entry.name.clone().unwrap_or_else(|| "(unnamed)".into());
    let image = |d: &Descriptor| -> Result<PlatformImage, StoreError> {
        match read_manifest(layout, d)? {
            Manifest::Image(m) => Ok(PlatformImage {
                name: name.clone(),
                entry: entry.descriptor.clone(),
                manifest: d.clone(),
                config: m.config().clone(),
                layers: m.layers().clone(),
            }),
            Manifest::Index(_) => Err(StoreError::Corrupt {
                path: layout.path().join(digest(d)?.to_string()),
                reason: "a nested index".into(),
            }),
        }
    };
    match read_manifest(layout, &entry.descriptor)? {
        Manifest::Image(m) => {
            // index.json's entries were checked when it was read; a config's platform is
            // checked here (an invalid one serves no platform).
            let declared = match manifest::descriptor_platform(&entry.descriptor) {
                Ok(Some(p)) => Some(p),
                _ => {
                    let config = layout.read_blob(&digest(m.config())?)?;
                    match manifest::config_platform(&config) {
                        Ok(p) => p,
                        Err(e) => {
                            return Ok(Offer::Lacks {
                                name,
                                has: vec![e.to_string()],
                            });
                        }
                    }
                }
            };
            match declared {
                Some(p) if !platform.matches(&p) => Ok(Offer::Lacks {
                    name,
                    has: vec![p.to_string()],
                }),
                _ => Ok(Offer::Serves(Box::new(image(&entry.descriptor)?))),
            }
        }
        Manifest::Index(index) => {
            let mut present = Vec::new();
            for child in index.manifests() {
                if manifest::is_attestation(child)
                    || layout.blob_stat(&digest(child)?) == BlobStat::Missing
                {
                    continue;
                }
                // A child with an invalid platform was never kept: ignore it.
                if let Ok(Some(p)) = manifest::descriptor_platform(child) {
                    present.push((child, p));
                }
            }
            let best = platform.best_of(present.iter().map(|(d, p)| (*d, p)));
            match best {
                Some(d) => Ok(Offer::Serves(Box::new(image(d)?))),
                None => Ok(Offer::Lacks {
                    name,
                    has: present.iter().map(|(_, p)| p.to_string()).collect(),
                }),
            }
        }
    }
}
