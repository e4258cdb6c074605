//! Making one image visible in the bundle: manifests are stored last (after every blob they
//! name), then index.json and the lock file are replaced atomically, then restore.sh.

use std::str::FromStr;

use oci_spec::image::{Arch, Descriptor, MediaType, Os, Platform as OciPlatform};

use crate::resolve::ResolvedImage;
use crate::store::{ANNOTATION_PLATFORMS, BundleIndex, Layout, LockFile, StoreError};

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
}

impl Committer {
    /// Reads index.json and the lock, and (re)writes restore.sh for them: every bundle carries
    /// the script, an empty one too, and one made by an older ferry gets the current script.
    pub fn open(layout: &Layout) -> Result<Committer, StoreError> {
        let index = layout.read_index()?;
        layout.write_script(
            crate::restore::script::SCRIPT_NAME,
            &crate::restore::script::render(&index),
        )?;
        Ok(Committer {
            index,
            lock: layout.read_lock()?,
        })
    }

    /// Stores the image's manifests and records it. Its configs and layers must be stored.
    pub fn commit(&mut self, layout: &Layout, image: &ResolvedImage) -> Result<Stored, StoreError> {
        let mut stored = Stored::default();
        for p in &image.platforms {
            if let Some(config) = &p.config_bytes
                && layout.put_blob(&p.config.digest, config)?
            {
                stored.configs += 1;
                stored.config_bytes += config.len() as u64;
            }
            if image.is_index {
                layout.put_blob(&p.manifest.digest, &p.manifest.bytes)?;
            }
        }
        layout.put_blob(&image.root.digest, &image.root.bytes)?;
        // The renames above must be durable before index.json names them.
        layout.sync_blob_dirs()?;

        let name = image.reference.to_string();
        let digest = oci_spec::image::Digest::from_str(&image.root.digest.to_string())
            .expect("valid digest");
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
        self.index.upsert(&name, descriptor);
        layout.write_index(&self.index)?;
        self.lock.upsert(crate::lock::locked_image(image));
        layout.write_lock(&self.lock)?;
        // restore.sh lists the images itself (no JSON parser on the node). Written last, so
        // that a crash never leaves it naming an image index.json lacks (it may miss the last
        // one; the next run's `open` writes it again from index.json).
        let script = crate::restore::script::render(&self.index);
        layout.write_script(crate::restore::script::SCRIPT_NAME, &script)?;
        Ok(stored)
    }
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
        // restore.sh cannot be replaced (a non-empty folder is in its way): the commit fails
        // at that write, and what came before it must be complete.
        let script = dir.path().join(crate::restore::script::SCRIPT_NAME);
        std::fs::remove_file(&script).unwrap();
        std::fs::create_dir_all(script.join("in-the-way")).unwrap();
        let image = image();
        let err = committer.commit(&layout, &image).unwrap_err();
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
}
