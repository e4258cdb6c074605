//! Which base layer a new layer is patched against.
//!
//! The rule, first match wins (one candidate is tried per layer):
//! 1. the layer at the same position of an image of the same repository and platform in BASE;
//! 2. else, in that repository and platform, the layer nearest in size;
//! 3. else, among every layer of that platform in BASE, the one nearest in size, when the two
//!    sizes are within a factor of two.
//!
//! A new layer with no candidate ships whole.

use crate::digest::Digest;
use crate::manifest::{self, Manifest};
use crate::store::BundleSource;

/// A layer and where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// `registry/repository` of the image (no tag).
    pub repository: String,
    /// The platform, when the index entry or manifest says.
    pub platform: Option<String>,
    /// Its position in the manifest's layers.
    pub position: usize,
    /// The layer.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
}

/// Every layer of every image whose manifests `source` holds (those it lacks are skipped: a
/// delta leaves unchanged ones to its base).
pub fn slots(source: &dyn BundleSource) -> Vec<Slot> {
    let mut out = Vec::new();
    let Ok(index) = source.index() else {
        return out;
    };
    for entry in index.entries() {
        let Some(name) = entry.name.as_deref() else {
            continue;
        };
        let repository = name
            .parse::<crate::reference::ImageRef>()
            .map(|r| r.name())
            .unwrap_or_else(|_| name.to_owned());
        let Some(Ok((parsed, _))) = read(source, &entry.descriptor) else {
            continue;
        };
        match parsed {
            Manifest::Image(_) => {
                let platform = platform_of(&entry.descriptor);
                image_slots(source, &entry.descriptor, &repository, platform, &mut out);
            }
            Manifest::Index(index) => {
                for child in index.manifests() {
                    let platform = platform_of(child);
                    image_slots(source, child, &repository, platform, &mut out);
                }
            }
        }
    }
    out
}

type Parsed = Result<(Manifest, String), manifest::ManifestError>;

fn read(source: &dyn BundleSource, d: &oci_spec::image::Descriptor) -> Option<Parsed> {
    let digest = manifest::descriptor_digest(d).ok()?;
    let bytes = source.read_blob(&digest).ok()?;
    Some(Manifest::parse(&bytes, Some(d.media_type().as_ref())))
}

fn platform_of(d: &oci_spec::image::Descriptor) -> Option<String> {
    manifest::descriptor_platform(d)
        .ok()
        .flatten()
        .map(|p| p.to_string())
}

fn image_slots(
    source: &dyn BundleSource,
    d: &oci_spec::image::Descriptor,
    repository: &str,
    platform: Option<String>,
    out: &mut Vec<Slot>,
) {
    let Some(Ok((Manifest::Image(image), _))) = read(source, d) else {
        return;
    };
    for (position, layer) in image.layers().iter().enumerate() {
        let Ok(digest) = manifest::descriptor_digest(layer) else {
            continue;
        };
        out.push(Slot {
            repository: repository.to_owned(),
            platform: platform.clone(),
            position,
            digest,
            size: layer.size(),
            media_type: layer.media_type().to_string(),
        });
    }
}

/// The base layer `new` is patched against, by the rule above; `base` holds only layers
/// present in BASE.
pub fn base_for<'a>(new: &Slot, base: &'a [Slot]) -> Option<&'a Slot> {
    let same_image = |b: &&Slot| b.repository == new.repository && b.platform == new.platform;
    let distance = |b: &&Slot| b.size.abs_diff(new.size);
    if let Some(b) = base
        .iter()
        .filter(same_image)
        .find(|b| b.position == new.position)
    {
        return Some(b);
    }
    if let Some(b) = base.iter().filter(same_image).min_by_key(distance) {
        return Some(b);
    }
    base.iter()
        .filter(|b| b.platform == new.platform)
        .filter(|b| b.size <= new.size.saturating_mul(2) && new.size <= b.size.saturating_mul(2))
        .min_by_key(distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(repo: &str, position: usize, size: u64, tag: &str) -> Slot {
        Slot {
            repository: repo.into(),
            platform: Some("linux/amd64".into()),
            position,
            digest: Digest::sha256_of(tag.as_bytes()),
            size,
            media_type: String::new(),
        }
    }

    #[test]
    fn same_repository_and_position_first_then_nearest_size() {
        let base = vec![
            slot("r/a", 0, 100, "a0"),
            slot("r/a", 1, 50, "a1"),
            slot("r/b", 0, 400, "b0"),
        ];
        let pick = |s: &Slot| base_for(s, &base).map(|b| b.digest.clone());
        assert_eq!(
            pick(&slot("r/a", 1, 1000, "n")),
            Some(base[1].digest.clone())
        );
        assert_eq!(pick(&slot("r/a", 5, 90, "n")), Some(base[0].digest.clone()));
        assert_eq!(
            pick(&slot("r/c", 0, 300, "n")),
            Some(base[2].digest.clone())
        );
        assert_eq!(pick(&slot("r/c", 0, 10_000, "n")), None, "too far in size");
        let mut other = slot("r/a", 0, 100, "n");
        other.platform = Some("linux/arm64".into());
        assert_eq!(pick(&other), None, "another platform");
    }
}
