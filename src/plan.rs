//! From resolved images to the downloads a run needs. Pure: what is already in the bundle is
//! passed in, nothing is read or fetched here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::digest::Digest;
use crate::resolve::ResolvedImage;

/// One blob to download, from the first image (repository) that wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// The blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Index (into the plan's images) of the image whose repository it is fetched from.
    pub source: usize,
}

/// What a run will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Distinct blobs to download, largest first (so one big layer does not finish alone).
    pub downloads: Vec<Download>,
    /// For each image, the digests of `downloads` it waits for.
    pub waits: Vec<BTreeSet<Digest>>,
    /// Distinct blobs the images need that the bundle already has.
    pub present_blobs: usize,
    /// Their bytes.
    pub present_bytes: u64,
}

impl Plan {
    /// Bytes to download.
    pub fn bytes_to_fetch(&self) -> u64 {
        self.downloads.iter().map(|d| d.size).sum()
    }

    /// For each download, the references of the images waiting for it.
    pub fn owners(&self, images: &[ResolvedImage]) -> HashMap<Digest, Vec<String>> {
        let mut owners: HashMap<Digest, Vec<String>> = HashMap::new();
        for (image, waits) in images.iter().zip(&self.waits) {
            for digest in waits {
                owners
                    .entry(digest.clone())
                    .or_default()
                    .push(image.reference.to_string());
            }
        }
        owners
    }

    /// Builds the plan. `is_present(digest, size)` tells whether the bundle holds a blob.
    /// Manifests and in-memory configs are not downloads: they are written when an image
    /// completes.
    pub fn new(images: &[ResolvedImage], is_present: impl Fn(&Digest, u64) -> bool) -> Plan {
        let mut sources: BTreeMap<Digest, (u64, usize)> = BTreeMap::new();
        let mut present: BTreeMap<Digest, u64> = BTreeMap::new();
        let mut waits = Vec::with_capacity(images.len());
        for (i, image) in images.iter().enumerate() {
            let mut wait = BTreeSet::new();
            for p in &image.platforms {
                if p.config_bytes.is_some() {
                    let c = &p.config;
                    // Held in memory; counted as present only when the bundle has it.
                    if is_present(&c.digest, c.size) {
                        present.insert(c.digest.clone(), c.size);
                    }
                }
                let config = (p.config_bytes.is_none()).then_some(&p.config);
                for blob in config.into_iter().chain(&p.layers) {
                    if present.contains_key(&blob.digest) {
                        continue;
                    }
                    if !sources.contains_key(&blob.digest) && is_present(&blob.digest, blob.size) {
                        present.insert(blob.digest.clone(), blob.size);
                        continue;
                    }
                    sources.entry(blob.digest.clone()).or_insert((blob.size, i));
                    wait.insert(blob.digest.clone());
                }
            }
            waits.push(wait);
        }
        // A config one image holds in memory and another downloads is stored once, by the
        // download: the first image waits for it too, so its commit finds the blob stored and
        // the run counts it once, whichever finishes first.
        for (image, wait) in images.iter().zip(waits.iter_mut()) {
            for p in image.platforms.iter().filter(|p| p.config_bytes.is_some()) {
                if sources.contains_key(&p.config.digest) {
                    wait.insert(p.config.digest.clone());
                }
            }
        }
        let mut downloads: Vec<Download> = sources
            .into_iter()
            .map(|(digest, (size, source))| Download {
                digest,
                size,
                source,
            })
            .collect();
        downloads.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.digest.cmp(&b.digest)));
        Plan {
            downloads,
            waits,
            present_blobs: present.len(),
            present_bytes: present.values().sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::{BlobRef, InMemoryBlob, ResolvedPlatform};

    fn d(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    fn image(name: &str, config: u8, layers: &[(u8, u64)]) -> ResolvedImage {
        let m = InMemoryBlob {
            digest: d(200),
            media_type: crate::manifest::OCI_MANIFEST.into(),
            bytes: bytes::Bytes::from_static(b"{}"),
        };
        let reference: crate::reference::ImageRef = name.parse().unwrap();
        ResolvedImage {
            remotes: vec![crate::registry::Remote::origin(&reference)],
            reference,
            root: m.clone(),
            is_index: false,
            source: None,
            platforms: vec![ResolvedPlatform {
                platform: None,
                manifest: m,
                config: BlobRef {
                    digest: d(config),
                    size: 10,
                },
                config_bytes: None,
                layers: layers
                    .iter()
                    .map(|(n, s)| BlobRef {
                        digest: d(*n),
                        size: *s,
                    })
                    .collect(),
                attestation: false,
            }],
        }
    }

    #[test]
    fn shared_blobs_are_fetched_once_largest_first() {
        let images = vec![
            image("a", 1, &[(10, 500), (11, 50)]),
            image("b", 2, &[(10, 500), (12, 900)]),
        ];
        let plan = Plan::new(&images, |digest, _| *digest == d(11));
        let order: Vec<_> = plan
            .downloads
            .iter()
            .map(|x| (x.digest.clone(), x.source))
            .collect();
        assert_eq!(order, [(d(12), 1), (d(10), 0), (d(1), 0), (d(2), 1)]);
        assert_eq!(plan.bytes_to_fetch(), 900 + 500 + 10 + 10);
        assert_eq!(plan.present_blobs, 1);
        assert_eq!(plan.present_bytes, 50);
        assert!(plan.waits[0].contains(&d(10)) && !plan.waits[0].contains(&d(11)));
        assert!(
            plan.waits[1].contains(&d(10)),
            "b waits for the shared layer too"
        );
    }

    #[test]
    fn a_config_held_in_memory_and_downloaded_is_one_download() {
        // "a" resolved its config while resolving (a single manifest); "b" is an index child
        // with the same config, to download.
        let mut a = image("a", 1, &[(10, 500)]);
        a.platforms[0].config_bytes = Some(bytes::Bytes::from_static(b"{}"));
        let b = image("b", 1, &[(10, 500)]);
        for images in [vec![a.clone(), b.clone()], vec![b, a]] {
            let plan = Plan::new(&images, |_, _| false);
            let configs = plan.downloads.iter().filter(|x| x.digest == d(1)).count();
            assert_eq!(configs, 1, "the shared config is one download");
            assert_eq!(plan.downloads.len(), 2);
            assert!(
                plan.waits.iter().all(|w| w.contains(&d(1))),
                "both images wait for the stored config, so neither commit counts it again"
            );
        }
    }

    #[test]
    fn nothing_to_do_when_all_present() {
        let images = vec![image("a", 1, &[(10, 500)])];
        let plan = Plan::new(&images, |_, _| true);
        assert!(plan.downloads.is_empty());
        assert!(plan.waits[0].is_empty());
        assert_eq!(plan.present_bytes, 510);
    }
}
