//! index.json: one descriptor per image reference, sorted, annotated with the full reference.

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use super::StoreError;
use crate::platform::Platform;
use crate::untrusted::{self, Invalid};

/// The OCI annotation naming a reference; ferry writes the full normalized reference.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The name containerd's importer gives the image (takes precedence over ref.name).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// On an index entry: the platforms whose images are in the bundle, comma separated.
/// The index blob itself is stored unchanged and may list more.
pub const ANNOTATION_PLATFORMS: &str = "io.ferry.platforms";

/// The largest index.json (and ferry.lock) ferry reads. An entry takes 450 to 600 bytes, so
/// 16 MiB holds over 27,000 images, far beyond any cluster's image set; `ferry verify` of a
/// 16 MB index.json (36,000 entries) peaks at 125 MB RSS, where an unbounded file (74 MB took
/// 1 GB) could exhaust a node.
pub const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;

/// Checks every field of an index.json entry that ferry uses or writes elsewhere: media type,
/// digest, platform, and the name annotations (full references) and `io.ferry.platforms`
/// (canonical platforms). Returns the entry's name.
pub fn check_entry(d: &Descriptor) -> Result<Option<String>, Invalid> {
    untrusted::check_media_type(d.media_type().as_ref())?;
    crate::manifest::descriptor_digest(d).map_err(|_| {
        Invalid::new(
            "digest",
            d.digest().as_ref(),
            "sha256:<64 hex digits> or sha512:<128 hex digits>",
        )
    })?;
    crate::manifest::descriptor_platform(d)?;
    if let Some(t) = d.artifact_type() {
        untrusted::check_media_type(t.as_ref())?;
    }
    let Some(annotations) = d.annotations() else {
        return Ok(None);
    };
    if let Some(platforms) = annotations.get(ANNOTATION_PLATFORMS) {
        check_platform_list(platforms)?;
    }
    if let Some(name) = annotations.get(ANNOTATION_CONTAINERD_NAME) {
        untrusted::check_reference_name(name)?;
    }
    match annotations.get(ANNOTATION_REF_NAME) {
        Some(name) => untrusted::check_reference_name(name).map(|_| Some(name.clone())),
        None => Ok(None),
    }
}

/// Checks an `io.ferry.platforms` value: comma-separated platforms as ferry writes them.
fn check_platform_list(list: &str) -> Result<(), Invalid> {
    for p in list.split(',').filter(|p| !p.is_empty()) {
        if p.parse::<Platform>().map(|q| q.to_string()).as_deref() != Ok(p) {
            return Err(Invalid::new(
                "io.ferry.platforms annotation",
                list,
                "comma-separated os/arch[/variant] platforms (e.g. linux/amd64,linux/arm64/v8)",
            ));
        }
    }
    Ok(())
}

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
    /// Reads index.json; a missing file is an empty index. Refuses a file over
    /// [`MAX_INDEX_BYTES`], and an entry with any field that is not what ferry would write
    /// (see [`check_entry`]): index.json may come from another tool or a tampered bundle, and
    /// its names reach restore.sh.
    pub fn read(path: &Path) -> Result<BundleIndex, StoreError> {
        match crate::fsutil::read_bounded(path, MAX_INDEX_BYTES)? {
            Some(bytes) => BundleIndex::parse(&bytes, path),
            None => Ok(BundleIndex::default()),
        }
    }

    /// Parses and checks index.json bytes read from `path` (a folder's file or an archive's
    /// member), as [`BundleIndex::read`] does.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<BundleIndex, StoreError> {
        let index: ImageIndex = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut out = BundleIndex {
            annotations: index.annotations().clone(),
            ..BundleIndex::default()
        };
        for (i, d) in index.manifests().iter().enumerate() {
            match check_entry(d) {
                Ok(Some(name)) => {
                    out.named.insert(name, d.clone());
                }
                Ok(None) => out.unnamed.push(d.clone()),
                Err(e) => {
                    return Err(StoreError::Foreign {
                        path: path.to_path_buf(),
                        reason: format!("entry {} of {}: {e}", i + 1, index.manifests().len()),
                        hint: "ferry never writes this; the file was written or changed by \
                               another tool. Remove that entry, or bundle into a new folder",
                    });
                }
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
    use std::fs;

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

    fn index_with(annotations: serde_json::Value, extra: serde_json::Value) -> String {
        let mut entry = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": D1,
            "size": 5,
            "annotations": annotations,
        });
        for (k, v) in extra.as_object().unwrap() {
            entry[k] = v.clone();
        }
        serde_json::json!({"schemaVersion": 2, "manifests": [entry]}).to_string()
    }

    #[test]
    fn hostile_entries_are_refused_naming_index_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let good = "docker.io/library/alpine:3.20";
        let hostile = "evil\nFERRY_IMAGES\ntouch /tmp/x\ncat <<'FERRY_IMAGES'";
        let none = serde_json::json!({});
        let cases = [
            (
                serde_json::json!({ANNOTATION_REF_NAME: hostile}),
                none.clone(),
                "reference name",
            ),
            (
                serde_json::json!({ANNOTATION_REF_NAME: "alpine:3.20"}),
                none.clone(),
                "reference name",
            ),
            (
                serde_json::json!({ANNOTATION_REF_NAME: good, ANNOTATION_CONTAINERD_NAME: "x y"}),
                none.clone(),
                "reference name",
            ),
            (
                serde_json::json!({ANNOTATION_REF_NAME: good, ANNOTATION_PLATFORMS: "linux/amd64,linux/arm64\nx"}),
                none.clone(),
                "io.ferry.platforms",
            ),
            (
                serde_json::json!({ANNOTATION_REF_NAME: good, ANNOTATION_PLATFORMS: "Linux/amd64"}),
                none.clone(),
                "io.ferry.platforms",
            ),
            (
                serde_json::json!({ANNOTATION_REF_NAME: good}),
                serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json\nx"}),
                "media type",
            ),
            (
                serde_json::json!({ANNOTATION_REF_NAME: good}),
                serde_json::json!({"platform": {"os": "linux", "architecture": "amd64", "variant": "v1\nx"}}),
                "platform variant",
            ),
            (
                serde_json::json!({}),
                serde_json::json!({"mediaType": "a b/c"}),
                "media type",
            ),
        ];
        for (annotations, extra, field) in cases {
            fs::write(&path, index_with(annotations, extra)).unwrap();
            let e = BundleIndex::read(&path).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "{}: entry 1 of 1: invalid {field}",
                    path.display()
                )),
                "{e}"
            );
            assert!(
                !e.contains("FERRY_IMAGES\n") && !e.contains("\ntouch"),
                "{e}"
            );
        }
        fs::write(&path, index_with(serde_json::json!({ANNOTATION_REF_NAME: good, ANNOTATION_PLATFORMS: "linux/amd64,linux/arm64/v8"}), none)).unwrap();
        let back = BundleIndex::read(&path).unwrap();
        assert!(back.get(good).is_some());
    }

    #[test]
    fn an_oversized_index_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let f = fs::File::create(&path).unwrap();
        f.set_len(MAX_INDEX_BYTES + 1).unwrap();
        let e = BundleIndex::read(&path).unwrap_err().to_string();
        assert!(e.contains("larger than the 16 MiB"), "{e}");
        f.set_len(MAX_INDEX_BYTES).unwrap();
        // At the limit it is read (and then is not JSON).
        let e = BundleIndex::read(&path).unwrap_err().to_string();
        assert!(!e.contains("larger than"), "{e}");
    }

    #[test]
    fn a_device_is_read_no_further_than_the_limit() {
        let e = crate::fsutil::read_bounded(Path::new("/dev/zero"), 1024)
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than"), "{e}");
    }
}
