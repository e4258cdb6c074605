//! Restoring into CRI-O's containers-storage with skopeo, and pinning with a CRI-O drop-in.

use std::path::Path;
use std::process::Command;

use super::{RestoreError, RestoreOptions, Restored};
use crate::report::{Event, Reporter};
use crate::store::select::PlatformImage;
use crate::store::{BundleSource, OCI_LAYOUT};

/// A one-image layout whose blobs are the bundle's (a symlink, no copy). skopeo's `oci:`
/// transport then finds the image whatever its media type (it skips Docker-typed index.json
/// entries it is asked for by name).
fn one_image_layout(
    dir: &Path,
    layout: &dyn BundleSource,
    image: &PlatformImage,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::os::unix::fs::symlink(
        layout.path().canonicalize()?.join("blobs"),
        dir.join("blobs"),
    )?;
    std::fs::write(dir.join("oci-layout"), OCI_LAYOUT)?;
    let d = &image.entry;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": d.media_type().to_string(), "digest": d.digest().to_string(), "size": d.size()}],
    });
    std::fs::write(dir.join("index.json"), index.to_string())
}

/// Copies `images` (each serving the node) into containers-storage.
pub fn restore(
    layout: &dyn BundleSource,
    images: &[PlatformImage],
    options: &RestoreOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<Restored>, RestoreError> {
    if layout.kind().is_archive() {
        return Err(RestoreError::runtime_hint(
            format!(
                "restoring into CRI-O needs a bundle folder; {} is an archive",
                layout.path().display()
            ),
            "skopeo reads a layout folder: unpack the archive (`tar -xf`, with --zstd for a \
             .tar.zst) and restore the folder, or use --runtime containerd",
        ));
    }
    // Removed when dropped: on every way out, an early error included.
    let tmp = TempTree::create()?;
    let tmp = tmp.path();
    let p = &options.platform;
    let mut outcomes = Vec::new();
    // skopeo copies each image whole: counted by image and by its blobs' bytes.
    let sizes: Vec<u64> = images
        .iter()
        .map(|i| Ok(i.sized_blobs()?.iter().map(|(_, s)| s).sum()))
        .collect::<Result<_, crate::store::StoreError>>()?;
    reporter.event(&Event::CopyStarted {
        images: images.len(),
        bytes: sizes.iter().sum(),
    });
    for (i, image) in images.iter().enumerate() {
        let dir = tmp.join(i.to_string());
        one_image_layout(&dir, layout, image)
            .map_err(|e| RestoreError::runtime(format!("preparing {}: {e}", image.name)))?;
        let mut copy = Command::new("skopeo");
        copy.args([
            "copy",
            "--quiet",
            "--override-os",
            p.os(),
            "--override-arch",
            p.architecture(),
        ]);
        if let Some(v) = p.variant() {
            copy.args(["--override-variant", v]);
        }
        copy.arg(format!("oci:{}", dir.display())).arg(format!(
            "containers-storage:{}{}",
            options.storage, image.name
        ));
        let error = match copy.output() {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(crate::error::Error::msg(
                crate::error::Kind::Failed,
                format!(
                    "skopeo copy failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            )),
            Err(e) => {
                return Err(RestoreError::runtime_hint(
                    format!("cannot run skopeo: {e}"),
                    "apt-get install skopeo, or use --runtime containerd",
                ));
            }
        };
        reporter.event(&Event::Copied { bytes: sizes[i] });
        reporter.event(&Event::ImageCopied {
            reference: image.name.clone(),
            failed: error.is_some(),
        });
        outcomes.push(Restored {
            reference: image.name.clone(),
            digest: image.entry.digest().to_string(),
            pinned: options.pin && error.is_none(),
            error,
            names: vec![image.name.clone()],
            already_present: false,
        });
    }
    if options.pin {
        pin(images, options)?;
    }
    Ok(outcomes)
}

/// Adds the images (both names) to CRI-O's pinned_images drop-in, recorded as pinned by this
/// bundle, keeping every name pinned there before.
fn pin(images: &[PlatformImage], options: &RestoreOptions) -> Result<(), RestoreError> {
    let mut list = super::crio_pins::PinList::read(&options.crio_conf_dir);
    for image in images {
        let digest = image.entry.digest().to_string();
        for name in super::pins::names([(image.name.as_str(), digest.as_str())]) {
            list.add(&name, options.record.as_ref());
        }
    }
    list.write(&options.crio_conf_dir)
}

/// A private folder in the temp folder for the one-image layouts, removed with what is in it
/// when dropped. Made with mkdir (never an existing folder or a planted link), mode 0700.
struct TempTree(std::path::PathBuf);

impl TempTree {
    fn create() -> Result<TempTree, RestoreError> {
        use std::os::unix::fs::DirBuilderExt;
        let mut tries = 0;
        loop {
            let dir = std::env::temp_dir().join(format!(
                "ferry-restore-{}-{}",
                std::process::id(),
                fastrand::u64(..)
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(TempTree(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 16 => {
                    tries += 1;
                }
                Err(e) => {
                    return Err(RestoreError::runtime(format!(
                        "cannot create {}: {e}",
                        dir.display()
                    )));
                }
            }
        }
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temp_tree_is_private_and_gone_once_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let tree = TempTree::create().unwrap();
        let dir = tree.path().to_path_buf();
        std::fs::create_dir(dir.join("0")).unwrap();
        std::fs::write(dir.join("0/index.json"), "{}").unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(tree);
        assert!(!dir.exists());
    }
}
