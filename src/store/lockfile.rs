//! ferry.lock: what each reference resolved to. Sorted and pretty-printed so that a diff of two
//! lock files reads as "this tag moved".

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{MAX_INDEX_BYTES, StoreError};
use crate::digest::Digest;
use crate::fsutil::read_bounded;
use crate::platform::Platform;

pub use super::lock_source::LockedSource;

/// The lock file's name inside a bundle.
pub const LOCK_FILE_NAME: &str = "ferry.lock";

const LOCK_VERSION: u32 = 1;

/// The whole lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockFile {
    /// Format version, bumped on incompatible changes.
    pub lock_version: u32,
    /// One entry per reference, sorted by reference.
    pub images: Vec<LockedImage>,
}

/// What one reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockedImage {
    /// The full normalized reference, as in index.json.
    pub reference: String,
    /// Digest of the manifest or index the reference resolved to.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The platforms kept, with their manifests. For a single-platform image, one entry whose
    /// digest is the image's own.
    pub platforms: Vec<LockedPlatform>,
    /// Bytes of all the image's distinct blobs in the bundle (manifests, configs, layers).
    pub total_size: u64,
    /// Every distinct blob of the image (manifests, configs, layers) with its size, so that a
    /// lock alone tells what a bundle holds (`bundle --since`, `diff`). Absent in locks made by
    /// older ferry versions, which still read.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub blobs: std::collections::BTreeMap<Digest, u64>,
    /// Where the entry came from when no registry serves it under its reference (a chart from
    /// an HTTP Helm repository, a local file); absent for registry images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<LockedSource>,
}

/// One platform of a locked image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockedPlatform {
    /// `os/arch[/variant]`; absent when the image declares none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<Platform>,
    /// Digest of the platform's image manifest.
    pub digest: Digest,
    /// Size of that manifest.
    pub size: u64,
}

impl Default for LockFile {
    fn default() -> Self {
        LockFile {
            lock_version: LOCK_VERSION,
            images: Vec::new(),
        }
    }
}

impl LockFile {
    /// Reads a lock file; a missing file is an empty lock. Refuses a file over
    /// [`MAX_INDEX_BYTES`], and an entry whose reference is not a full reference or whose media
    /// type is not one (platforms and digests are checked as they parse).
    pub fn read(path: &Path) -> Result<LockFile, StoreError> {
        match read_bounded(path, MAX_INDEX_BYTES)? {
            Some(bytes) => LockFile::parse(&bytes, path),
            None => Ok(LockFile::default()),
        }
    }

    /// Parses and checks lock file bytes read from `path` (a file or an archive's member), as
    /// [`LockFile::read`] does.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<LockFile, StoreError> {
        let lock: LockFile = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        for image in &lock.images {
            crate::untrusted::check_reference_name(&image.reference)
                .and_then(|_| crate::untrusted::check_media_type(&image.media_type))
                .and_then(|_| image.source.as_ref().map_or(Ok(()), LockedSource::check))
                .map_err(|e| StoreError::Foreign {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                    hint: "ferry never writes this; make the lock again with `ferry lock`",
                })?;
        }
        for image in &lock.images {
            let pinned = image
                .reference
                .parse::<crate::reference::ImageRef>()
                .ok()
                .and_then(|r| r.digest().cloned());
            if let Some(pinned) = pinned
                && pinned != image.digest
            {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!(
                        "{} pins {pinned} but its entry says {}; a lock must not put a name on other content",
                        image.reference, image.digest
                    ),
                });
            }
        }
        if lock.lock_version != LOCK_VERSION {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "lock version {} is not supported by this ferry (it reads version {LOCK_VERSION})",
                    lock.lock_version
                ),
            });
        }
        Ok(lock)
    }

    /// The entry for a reference.
    pub fn get(&self, reference: &str) -> Option<&LockedImage> {
        self.images.iter().find(|i| i.reference == reference)
    }

    /// Adds or replaces an entry, keeping the list sorted.
    pub fn upsert(&mut self, image: LockedImage) {
        match self
            .images
            .binary_search_by(|i| i.reference.cmp(&image.reference))
        {
            Ok(pos) => self.images[pos] = image,
            Err(pos) => self.images.insert(pos, image),
        }
    }

    /// The JSON written to disk.
    pub fn to_json(&self) -> Vec<u8> {
        let mut sorted = self.clone();
        sorted.images.sort_by(|a, b| a.reference.cmp(&b.reference));
        for image in &mut sorted.images {
            image
                .platforms
                .sort_by(|a, b| a.platform.cmp(&b.platform).then(a.digest.cmp(&b.digest)));
        }
        let mut out = serde_json::to_vec_pretty(&sorted).expect("a lock file serializes");
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn image(reference: &str) -> LockedImage {
        let d = Digest::sha256_of(reference.as_bytes());
        LockedImage {
            reference: reference.into(),
            digest: d.clone(),
            media_type: crate::manifest::OCI_MANIFEST.into(),
            size: 10,
            platforms: vec![LockedPlatform {
                platform: Some("linux/amd64".parse().unwrap()),
                digest: d,
                size: 10,
            }],
            total_size: 100,
            blobs: Default::default(),
            source: None,
        }
    }

    #[test]
    fn stable_sorted_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut lock = LockFile::default();
        lock.upsert(image("docker.io/library/b:1"));
        lock.upsert(image("docker.io/library/a:1"));
        lock.upsert(image("docker.io/library/b:1"));
        let path = dir.path().join(LOCK_FILE_NAME);
        fs::write(&path, lock.to_json()).unwrap();
        let back = LockFile::read(&path).unwrap();
        assert_eq!(back, lock);
        assert_eq!(back.images.len(), 2);
        assert_eq!(back.images[0].reference, "docker.io/library/a:1");
        assert_eq!(back.to_json(), lock.to_json());
        let text = String::from_utf8(lock.to_json()).unwrap();
        assert!(text.contains("\"platform\": \"linux/amd64\""), "{text}");
    }

    #[test]
    fn hostile_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE_NAME);
        let mut lock = LockFile::default();
        lock.upsert(image("docker.io/library/a:1"));
        let good = String::from_utf8(lock.to_json()).unwrap();
        for (from, to, field) in [
            (
                "docker.io/library/a:1",
                "evil\\nFERRY_IMAGES\\ntouch /tmp/x",
                "reference name",
            ),
            ("docker.io/library/a:1", "a:1", "reference name"),
            ("manifest.v1+json", "manifest.v1+json\\nx", "media type"),
            ("linux/amd64", "linux/amd64/v1\\nx", "platform"),
        ] {
            std::fs::write(&path, good.replacen(from, to, 1)).unwrap();
            let e = LockFile::read(&path).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{}: ", path.display())), "{e}");
            assert!(e.contains(&format!("invalid {field}")), "{e}");
            assert!(
                !e.contains("\ntouch") && !e.contains("FERRY_IMAGES\n"),
                "{e}"
            );
        }
    }
}
