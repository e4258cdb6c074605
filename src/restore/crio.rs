//! Restoring into CRI-O's containers-storage with skopeo, and pinning with a CRI-O drop-in.

use std::path::Path;
use std::process::Command;

use super::{RestoreError, RestoreOptions, Restored, repository};
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
        pin(images, &options.crio_conf_dir)?;
    }
    Ok(outcomes)
}

/// The drop-in file CRI-O reads pinned images from.
const PIN_FILE: &str = "50-ferry-pinned.conf";

/// Adds the images to CRI-O's pinned_images drop-in, keeping the names pinned there before (a
/// later drop-in replaces the whole list, so pins of earlier bundles must stay in this one).
fn pin(images: &[PlatformImage], dir: &Path) -> Result<(), RestoreError> {
    let path = dir.join(PIN_FILE);
    let mut names: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('"')?
                .strip_suffix("\",")
                .map(str::to_owned)
        })
        .collect();
    for image in images {
        names.push(image.name.clone());
        names.push(format!(
            "{}@{}",
            repository(&image.name),
            image.entry.digest()
        ));
    }
    names.sort();
    names.dedup();
    let mut text = String::from(
        "# Written by ferry restore: images kept from kubelet's image GC.\n[crio.image]\npinned_images = [\n",
    );
    for n in &names {
        text.push_str(&format!("  \"{n}\",\n"));
    }
    text.push_str("]\n");
    crate::store::write_atomic_mode(dir, PIN_FILE, text.as_bytes(), dir, 0o644)
        .map_err(|e| RestoreError::runtime(format!("cannot write the CRI-O pinning drop-in: {e}")))
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
