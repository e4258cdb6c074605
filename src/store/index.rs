//! index.json: one descriptor per image reference, sorted, annotated with the full reference.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use super::StoreError;

/// The OCI annotation naming a reference; ferry writes the full normalized reference.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The name containerd's importer gives the image (takes precedence over ref.name).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// On an index entry: the platforms whose images are in the bundle, comma separated.
/// The index blob itself is stored unchanged and may list more.
pub const ANNOTATION_PLATFORMS: &str = "io.ferry.platforms";

/// One entry of index.json.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The full normalized reference (ref.name), when the entry has one.
    pub name: Option<String>,
    /// The descriptor as stored.
    pub descriptor: Descriptor,
}

impl IndexEntry {
    /// The platforms recorded for an index entry, if any.
    pub fn recorded_platforms(&self) -> Option<Vec<String>> {
        self.descriptor
            .annotations()
            .as_ref()?
            .get(ANNOTATION_PLATFORMS)
            .map(|s| {
                s.split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
    }
}

/// The bundle's index.json, keyed by reference name.
#[derive(Debug, Clone, Default)]
pub struct BundleIndex {
    named: BTreeMap<String, Descriptor>,
    unnamed: Vec<Descriptor>,
    annotations: Option<std::collections::HashMap<String, String>>,
}

impl BundleIndex {
    /// Reads index.json; a missing file is an empty index.
    pub fn read(path: &Path) -> Result<BundleIndex, StoreError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BundleIndex::default()),
            Err(e) => return Err(StoreError::io("read", path)(e)),
        };
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let mut out = BundleIndex {
            annotations: index.annotations().clone(),
            ..BundleIndex::default()
        };
        for d in index.manifests() {
            match d
                .annotations()
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_REF_NAME))
            {
                Some(name) => {
                    out.named.insert(name.clone(), d.clone());
                }
                None => out.unnamed.push(d.clone()),
            }
        }
        Ok(out)
    }

    /// Entries in file order: named ones sorted by name, then unnamed ones.
    pub fn entries(&self) -> Vec<IndexEntry> {
        self.named
            .iter()
            .map(|(n, d)| IndexEntry {
                name: Some(n.clone()),
                descriptor: d.clone(),
            })
            .chain(self.unnamed.iter().map(|d| IndexEntry {
                name: None,
                descriptor: d.clone(),
            }))
            .collect()
    }

    /// The descriptor stored under a reference name.
    pub fn get(&self, name: &str) -> Option<&Descriptor> {
        self.named.get(name)
    }

    /// Adds or replaces the entry for `name`, stamping both name annotations on it.
    pub fn upsert(&mut self, name: &str, mut descriptor: Descriptor) {
        let mut annotations = descriptor.annotations().clone().unwrap_or_default();
        annotations.insert(ANNOTATION_REF_NAME.to_owned(), name.to_owned());
        annotations.insert(ANNOTATION_CONTAINERD_NAME.to_owned(), name.to_owned());
        descriptor.set_annotations(Some(annotations));
        self.named.insert(name.to_owned(), descriptor);
    }

    /// Removes the entry named `name`; returns its descriptor when there was one.
    pub fn remove(&mut self, name: &str) -> Option<Descriptor> {
        self.named.remove(name)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.named.len() + self.unnamed.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The JSON written to disk: an OCI index, pretty-printed for diffs.
    pub fn to_json(&self) -> Vec<u8> {
        let manifests: Vec<Descriptor> = self.entries().into_iter().map(|e| e.descriptor).collect();
        let mut builder = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests);
        if let Some(a) = &self.annotations {
            builder = builder.annotations(a.clone());
        }
        let index = builder.build().expect("all required index fields are set");
        // Through serde_json::Value, whose maps are sorted: annotations are HashMaps in
        // oci-spec, and index.json must be the same bytes for the same content.
        let value = serde_json::to_value(&index).expect("an index serializes");
        let mut out = serde_json::to_vec_pretty(&value).expect("a value serializes");
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const D2: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn upsert_sorts_names_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let mut index = BundleIndex::default();
        let d = |digest: &str| {
            Descriptor::new(
                MediaType::ImageManifest,
                5,
                oci_spec::image::Digest::try_from(digest).unwrap(),
            )
        };
        index.upsert("docker.io/library/zeta:1", d(D1));
        index.upsert("docker.io/library/alpha:1", d(D1));
        index.upsert("docker.io/library/zeta:1", d(D2));
        fs::write(&path, index.to_json()).unwrap();
        let back = BundleIndex::read(&path).unwrap();
        let names: Vec<_> = back
            .entries()
            .into_iter()
            .map(|e| e.name.unwrap())
            .collect();
        assert_eq!(
            names,
            ["docker.io/library/alpha:1", "docker.io/library/zeta:1"]
        );
        let zeta = back.get("docker.io/library/zeta:1").unwrap();
        assert_eq!(zeta.digest().to_string(), D2);
        let ann = zeta.annotations().as_ref().unwrap();
        assert_eq!(ann[ANNOTATION_CONTAINERD_NAME], "docker.io/library/zeta:1");
        let text = String::from_utf8(back.to_json()).unwrap();
        assert!(text.contains("\"schemaVersion\": 2"), "{text}");
        // Same content, same bytes, however the annotations hash.
        for _ in 0..10 {
            assert_eq!(BundleIndex::read(&path).unwrap().to_json(), back.to_json());
        }
    }

    #[test]
    fn missing_is_empty_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            BundleIndex::read(&dir.path().join("index.json"))
                .unwrap()
                .is_empty()
        );
        fs::write(dir.path().join("index.json"), "{not json").unwrap();
        assert!(matches!(
            BundleIndex::read(&dir.path().join("index.json")),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
