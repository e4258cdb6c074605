//! Making one image visible in the bundle: manifests are stored last (after every blob they
//! name), then index.json and the lock file are replaced atomically, then restore.sh.

use std::str::FromStr;

use oci_spec::image::{Arch, Descriptor, MediaType, Os, Platform as OciPlatform};

use crate::resolve::ResolvedImage;
use crate::store::lockfile::{LOCK_FILE_NAME, LockFile};
use crate::store::{
    ANNOTATION_PLATFORMS, BundleIndex, Layout, MAX_INDEX_BYTES, StagedBlob, StoreError,
};

/// What a commit wrote that had been held in memory.
#[derive(Debug, Default)]
pub(super) struct Stored {
    /// Configs written (fetched while resolving).
    pub configs: usize,
    /// Their bytes.
    pub config_bytes: u64,
}

/// Holds index.json and the lock file in memory between commits.
pub(super) struct Committer {
    index: BundleIndex,
    lock: LockFile,
    /// Blobs a base bundle holds (`--since`): not stored here.
    leave_out: std::collections::BTreeMap<crate::digest::Digest, u64>,
    /// Images committed in memory since index.json was last written.
    unwritten: usize,
    /// Their manifests and configs, stored at the next write, before index.json names them.
    queued: Vec<(crate::digest::Digest, Vec<u8>)>,
    /// Downloaded blobs, verified, made durable and moved into blobs/ at the next write.
    staged: Vec<StagedBlob>,
    last_write: std::time::Instant,
    /// About how large index.json and the lock are with every committed image: an image that
    /// would take either past what ferry reads back fails instead (see [`Committer::room`]).
    index_bytes: u64,
    lock_bytes: u64,
}

/// index.json, the lock and restore.sh are written after this many images...
const GROUP_IMAGES: usize = 64;
/// ...or when this much time has passed since the last write, and at the end of a run.
const GROUP_TIME: std::time::Duration = std::time::Duration::from_millis(500);
/// Blobs landed in one batch at most (each staged blob holds a descriptor until it lands).
const GROUP_BLOBS: usize = 256;

impl Committer {
    /// Reads index.json and the lock, and makes the lock and restore.sh agree with index.json
    /// (see [`super::derived`]): every bundle carries the script, an empty one too, one made
    /// by an older ferry gets the current script, and an interrupted run's are set right.
    pub fn open(layout: &Layout) -> Result<Committer, StoreError> {
        let (index, lock, _) = super::derived::reconcile(layout)?;
        Ok(Committer {
            index_bytes: index.to_json().len() as u64,
            lock_bytes: lock.to_json().len() as u64,
            index,
            lock,
            leave_out: Default::default(),
            unwritten: 0,
            queued: Vec::new(),
            staged: Vec::new(),
            last_write: std::time::Instant::now(),
        })
    }

    /// Makes this a delta's committer: blobs of `base` are recorded but not stored.
    pub fn leave_out(&mut self, base: std::collections::BTreeMap<crate::digest::Digest, u64>) {
        self.leave_out = base;
    }

    /// Queues small content for the next write (see [`Committer::flush`]); returns whether it
    /// will be written (false when the bundle or the base has it, or it is queued already).
    fn put(
        &mut self,
        layout: &Layout,
        digest: &crate::digest::Digest,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        let size = bytes.len() as u64;
        if self.leave_out.get(digest) == Some(&size)
            || self.queued.iter().any(|(d, _)| d == digest)
            || self.staged.iter().any(|b| b.digest() == digest)
            || layout.has_blob(digest, size)
        {
            return Ok(false);
        }
        self.queued.push((digest.clone(), bytes.to_vec()));
        Ok(true)
    }

    /// Takes a downloaded blob (if staged), to land with the next group (before index.json names it).
    pub fn add_staged(&mut self, blob: Option<StagedBlob>) {
        self.staged.extend(blob);
    }

    /// Records the image (its manifests and configs are stored at the next write, before
    /// index.json names it). Its layers must be stored or staged.
    pub fn commit(&mut self, layout: &Layout, image: &ResolvedImage) -> Result<Stored, StoreError> {
        let name = image.reference.to_string();
        let descriptor = index_descriptor(image);
        let locked = crate::lock::locked_image(image);
        // Before anything is queued: an image that does not fit leaves nothing behind.
        (self.index_bytes, self.lock_bytes) = self.room(layout, &name, &descriptor, &locked)?;
        let mut stored = Stored::default();
        for p in &image.platforms {
            if let Some(config) = &p.config_bytes
                && self.put(layout, &p.config.digest, config)?
            {
                stored.configs += 1;
                stored.config_bytes += config.len() as u64;
            }
            if image.is_index {
                self.put(layout, &p.manifest.digest, &p.manifest.bytes)?;
            }
        }
        self.put(layout, &image.root.digest, &image.root.bytes)?;
        self.index.upsert(&name, descriptor);
        self.lock.upsert(locked);
        // index.json, the lock and restore.sh are rewritten for a group of images, not for
        // each: the group's staged blobs land (synced, renamed, folders synced) before that
        // write, so a crash before it loses only the naming and partial files a re-run
        // re-hashes and lands without fetching anything.
        self.unwritten += 1;
        Ok(stored)
    }

    /// The sizes index.json and the lock will have with `name` committed, or an error when
    /// either would pass [`MAX_INDEX_BYTES`]: ferry never writes a file it refuses to read.
    fn room(
        &self,
        layout: &Layout,
        name: &str,
        descriptor: &Descriptor,
        locked: &crate::store::lockfile::LockedImage,
    ) -> Result<(u64, u64), StoreError> {
        // The two name annotations upsert adds.
        let names = 2 * (name.len() as u64 + 64);
        let index = (self.index_bytes + element_bytes(descriptor) + names)
            .saturating_sub(self.index.get(name).map_or(0, element_bytes));
        let lock = (self.lock_bytes + element_bytes(locked))
            .saturating_sub(self.lock.get(name).map_or(0, element_bytes));
        for (file, size) in [("index.json", index), (LOCK_FILE_NAME, lock)] {
            if size > MAX_INDEX_BYTES {
                return Err(StoreError::TooLarge {
                    path: layout.root().join(file),
                    size,
                    max: MAX_INDEX_BYTES,
                });
            }
        }
        Ok((index, lock))
    }

    /// Writes the group (see [`Committer::flush`]) when it is large or old enough.
    pub fn flush_if_due(&mut self, layout: &Layout) -> Result<(), StoreError> {
        if self.unwritten >= GROUP_IMAGES
            || self.staged.len() >= GROUP_BLOBS
            || ((self.unwritten > 0 || !self.staged.is_empty())
                && self.last_write.elapsed() >= GROUP_TIME)
        {
            self.flush(layout)?;
        }
        Ok(())
    }

    /// Lands the staged and queued blobs (synced together, then renamed into blobs/), then
    /// writes index.json, the lock and restore.sh for the images committed since the last
    /// write (only files whose bytes change: a run that changes nothing writes nothing).
    pub fn flush(&mut self, layout: &Layout) -> Result<(), StoreError> {
        // Every blob is durable and in place before index.json names it. Batches are bounded:
        // each staged blob holds a descriptor until it lands.
        let mut batch = std::mem::take(&mut self.staged);
        for chunk in std::mem::take(&mut self.queued).chunks(GROUP_BLOBS) {
            if batch.len() + chunk.len() > GROUP_BLOBS {
                layout.land(std::mem::take(&mut batch))?;
            }
            batch.extend(layout.stage_blobs(chunk)?);
        }
        // Also with nothing staged when images are to be named: their large blobs were renamed
        // in one by one, and the folder sync in `land` makes those renames durable.
        if !batch.is_empty() || self.unwritten > 0 {
            layout.land(batch)?;
        }
        if self.unwritten > 0 {
            crate::store::publish::publish(layout, &self.index, &self.lock)?;
        }
        self.unwritten = 0;
        self.last_write = std::time::Instant::now();
        Ok(())
    }
}

/// The index.json descriptor of a resolved image: its root manifest, with the platforms kept
/// (an index) or its platform (a single manifest).
fn index_descriptor(image: &ResolvedImage) -> Descriptor {
    let digest =
        oci_spec::image::Digest::from_str(&image.root.digest.to_string()).expect("valid digest");
    let mut descriptor = Descriptor::new(
        MediaType::from(image.root.media_type.as_str()),
        image.root.bytes.len() as u64,
        digest,
    );
    let runnable: Vec<_> = image.platforms.iter().filter(|p| !p.attestation).collect();
    if image.is_index {
        let mut platforms: Vec<String> = runnable
            .iter()
            .filter_map(|p| p.platform.as_ref().map(|p| p.to_string()))
            .collect();
        platforms.sort();
        platforms.dedup();
        let mut annotations = std::collections::HashMap::new();
        annotations.insert(ANNOTATION_PLATFORMS.to_owned(), platforms.join(","));
        descriptor.set_annotations(Some(annotations));
    } else if let Some(p) = runnable.first().and_then(|p| p.platform.as_ref()) {
        let mut oci = OciPlatform::default();
        oci.set_os(Os::from(p.os()));
        oci.set_architecture(Arch::from(p.architecture()));
        oci.set_variant(p.variant().map(str::to_owned));
        descriptor.set_platform(Some(oci));
    }
    // A chart or another artifact says so in index.json (OCI 1.1 `artifactType`): restore.sh
    // and other tools tell it from an image without reading its manifest.
    let kind = crate::artifact::Kind::of_manifest(&image.root.bytes, &image.root.media_type);
    if let Some(t) = kind.as_ref().and_then(crate::artifact::Kind::artifact_type) {
        descriptor.set_artifact_type(Some(MediaType::from(t)));
    }
    descriptor
}

/// The bytes `value` takes in a pretty-printed file as an element of a top-level array: its
/// own pretty text indented two levels deeper, and a separator.
fn element_bytes(value: &impl serde::Serialize) -> u64 {
    let text = serde_json::to_vec_pretty(value).expect("a lock entry or descriptor serializes");
    let lines = text.iter().filter(|&&b| b == b'\n').count() + 1;
    (text.len() + 4 * lines + 2) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::resolve::{BlobRef, InMemoryBlob, ResolvedPlatform};

    fn image() -> ResolvedImage {
        let config = br#"{"os":"linux","architecture":"amd64","rootfs":{}}"#;
        let config_digest = Digest::sha256_of(config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::manifest::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest.to_string(), "size": config.len()},
            "layers": [],
        }))
        .unwrap();
        let root = InMemoryBlob {
            digest: Digest::sha256_of(&manifest),
            media_type: crate::manifest::OCI_MANIFEST.into(),
            bytes: manifest.into(),
        };
        ResolvedImage {
            reference: "docker.io/library/alpine:3.20".parse().unwrap(),
            remotes: Vec::new(),
            is_index: false,
            source: None,
            platforms: vec![ResolvedPlatform {
                platform: Some("linux/amd64".parse().unwrap()),
                manifest: root.clone(),
                config: BlobRef {
                    digest: config_digest,
                    size: config.len() as u64,
                },
                config_bytes: Some(config.to_vec().into()),
                layers: Vec::new(),
                attestation: false,
            }],
            root,
        }
    }

    #[test]
    fn index_and_lock_are_written_before_restore_sh() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_for_write(dir.path()).unwrap();
        let mut committer = Committer::open(&layout).unwrap();
        // restore.sh cannot be replaced (a non-empty folder is in its way): the write of the
        // group fails there, and what came before it must be complete.
        let script = dir.path().join(crate::store::script::SCRIPT_NAME);
        std::fs::remove_file(&script).unwrap();
        std::fs::create_dir_all(script.join("in-the-way")).unwrap();
        let image = image();
        committer.commit(&layout, &image).unwrap();
        let err = committer.flush(&layout).unwrap_err();
        assert!(err.to_string().contains("restore.sh"), "{err}");
        let name = "docker.io/library/alpine:3.20";
        let index = layout.read_index().unwrap();
        assert_eq!(
            index.get(name).map(|d| d.digest().to_string()),
            Some(image.root.digest.to_string()),
            "index.json has the image"
        );
        assert!(
            layout.read_lock().unwrap().get(name).is_some(),
            "so has the lock"
        );
        // The next run writes restore.sh again from index.json.
        std::fs::remove_dir_all(&script).unwrap();
        Committer::open(&layout).unwrap();
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(
            text.contains(&format!("{name} {}", image.root.digest)),
            "{text}"
        );
    }

    /// `image()` with so many layers that its lock entry alone is larger than ferry reads.
    fn huge_image() -> ResolvedImage {
        let mut img = image();
        img.reference = "docker.io/library/huge:1".parse().unwrap();
        img.platforms[0].layers = (0u32..200_000)
            .map(|i| BlobRef {
                digest: Digest::sha256_of(&i.to_le_bytes()),
                size: 1,
            })
            .collect();
        img
    }

    #[test]
    fn an_image_that_would_make_the_lock_unreadable_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_for_write(dir.path()).unwrap();
        let mut committer = Committer::open(&layout).unwrap();
        let err = committer.commit(&layout, &huge_image()).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("ferry.lock"), "{err}");
        assert!(committer.queued.is_empty(), "nothing of it is stored");
        // The others go on, and every file reads back.
        committer.commit(&layout, &image()).unwrap();
        committer.flush(&layout).unwrap();
        let lock = layout.read_lock().unwrap();
        assert_eq!(lock.images.len(), 1);
        assert!(
            layout
                .read_index()
                .unwrap()
                .get("docker.io/library/huge:1")
                .is_none()
        );
        // The estimate follows the files it stands for.
        for (file, estimate) in [
            ("index.json", committer.index_bytes),
            ("ferry.lock", committer.lock_bytes),
        ] {
            let actual = std::fs::metadata(dir.path().join(file)).unwrap().len();
            assert!(
                estimate + 16 >= actual && estimate <= actual + 400,
                "{file}: estimated {estimate}, is {actual}"
            );
        }
    }

    #[test]
    fn a_lock_or_index_ferry_would_refuse_to_read_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_for_write(dir.path()).unwrap();
        let before = std::fs::read(dir.path().join("index.json")).unwrap();
        let mut lock = LockFile::default();
        lock.upsert(crate::lock::locked_image(&huge_image()));
        let err = layout.write_lock(&lock).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
        assert!(!dir.path().join("ferry.lock").exists());
        let mut index = BundleIndex::default();
        let big = "a".repeat(1 << 20);
        for i in 0..20 {
            let mut d = index_descriptor(&image());
            d.set_annotations(Some([("x".to_owned(), big.clone())].into()));
            index.upsert(&format!("docker.io/library/a:{i}"), d);
        }
        let err = layout.write_index(&index).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join("index.json")).unwrap(),
            before
        );
    }
}
