//! Restoring into containerd: one tar streamed into `ctr images import` (no copy of the bundle
//! on the node), then the `repository@digest` names and pins.

use std::io::Write;
use std::process::{Command, Stdio};

use super::{RestoreError, RestoreOptions, Restored, repository};
use crate::export::tarball::{TarPlan, write_tar};
use crate::store::select::PlatformImage;
use crate::store::{BundleIndex, Layout, OCI_LAYOUT};

fn ctr(options: &RestoreOptions) -> Command {
    let mut c = Command::new("ctr");
    c.arg("-a")
        .arg(&options.containerd_address)
        .args(["-n", &options.namespace]);
    c
}

fn run(mut c: Command) -> Result<(), String> {
    match c.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Imports `images` (each serving the node) into containerd.
pub fn restore(
    layout: &Layout,
    images: &[PlatformImage],
    options: &RestoreOptions,
) -> Result<Vec<Restored>, RestoreError> {
    // An index of these images only: ctr would record the others without their content.
    let mut index = BundleIndex::default();
    let mut plan = TarPlan::default();
    for image in images {
        index.upsert(&image.name, image.entry.clone());
        plan.blobs.extend(image.blobs()?);
    }
    plan.files.push(("index.json".into(), index.to_json()));
    plan.files
        .push(("oci-layout".into(), OCI_LAYOUT.as_bytes().to_vec()));

    let mut import = ctr(options);
    import
        .args([
            "images",
            "import",
            "--platform",
            &options.platform.to_string(),
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = import.spawn().map_err(|e| {
        RestoreError::Runtime(format!("cannot run ctr: {e}\nhint: ctr comes with containerd (apt-get install containerd), or use --runtime cri-o"))
    })?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let layout_root = layout.root().to_path_buf();
    // Stream from a thread while ctr reads; ctr's stderr is collected by wait_with_output.
    let writer = std::thread::scope(|s| {
        let w = s.spawn(move || -> std::io::Result<()> {
            let mut stdin = stdin;
            write_tar(layout, &plan, &mut stdin)?;
            stdin.flush()
        });
        let out = child.wait_with_output();
        (w.join().expect("tar writer panicked"), out)
    });
    let (written, out) = writer;
    let out = out.map_err(|e| RestoreError::Runtime(format!("ctr images import: {e}")))?;
    if !out.status.success() {
        return Err(RestoreError::Runtime(format!(
            "ctr images import failed for {}: {}\nhint: is containerd running at {}? (--address or CONTAINERD_ADDRESS)",
            layout_root.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            options.containerd_address.display()
        )));
    }
    written.map_err(|e| RestoreError::Runtime(format!("streaming the bundle to ctr: {e}")))?;

    let mut outcomes = Vec::new();
    for image in images {
        let digest = image.entry.digest().to_string();
        let twin = format!("{}@{digest}", repository(&image.name));
        let mut error = None;
        if twin != image.name {
            let mut tag = ctr(options);
            tag.args(["images", "tag", "--force", &image.name, &twin]);
            if let Err(e) = run(tag) {
                error = Some(format!("cannot name it {twin}: {e}"));
            }
        }
        if options.pin && error.is_none() {
            for name in [&image.name, &twin] {
                let mut label = ctr(options);
                label.args(["images", "label", name, "io.cri-containerd.pinned=pinned"]);
                if let Err(e) = run(label) {
                    error = Some(format!("cannot pin {name}: {e}"));
                }
            }
        }
        outcomes.push(Restored {
            reference: image.name.clone(),
            digest,
            error,
        });
    }
    Ok(outcomes)
}
