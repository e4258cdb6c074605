//! Restoring into CRI-O's containers-storage with skopeo, and pinning with a CRI-O drop-in.

use std::path::Path;
use std::process::Command;

use super::{RestoreError, RestoreOptions, Restored};
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
    let tmp = tempdir()?;
    let p = &options.platform;
    let mut outcomes = Vec::new();
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
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(RestoreError::runtime_hint(
                    format!("cannot run skopeo: {e}"),
                    "apt-get install skopeo, or use --runtime containerd",
                ));
            }
        };
        outcomes.push(Restored {
            reference: image.name.clone(),
            digest: image.entry.digest().to_string(),
            pinned: options.pin && error.is_none(),
            error,
            names: vec![image.name.clone()],
            already_present: false,
        });
    }
    let _ = std::fs::remove_dir_all(&tmp);
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

fn tempdir() -> Result<std::path::PathBuf, RestoreError> {
    let dir = std::env::temp_dir().join(format!(
        "ferry-restore-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| RestoreError::runtime(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}
