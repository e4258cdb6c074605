//! Restoring into containerd: one tar streamed into `ctr images import` (no copy of the bundle
//! on the node), then the `repository@digest` names and pins.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use super::groups;
use super::present::{self, PresentImage};
use super::{RestoreError, RestoreOptions, Restored, repository};
use crate::error::{Error, Kind};
use crate::export::tarball::{TarPlan, write_tar};
use crate::report::{Counting, Event, Reporter};
use crate::store::select::PlatformImage;
use crate::store::{BundleIndex, BundleSource, OCI_LAYOUT};

/// `ctr -a ADDRESS -n NAMESPACE`.
pub(super) fn ctr(options: &RestoreOptions) -> Command {
    let mut c = Command::new("ctr");
    c.arg("-a")
        .arg(&options.containerd_address)
        .args(["-n", &options.namespace]);
    c
}

/// Runs a command; its stderr when it fails.
pub(super) fn run(mut c: Command) -> Result<(), String> {
    match c.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs a command; its stdout, or its stderr when it fails.
pub(super) fn output(mut c: Command) -> Result<String, String> {
    match c.output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// What containerd holds now (an empty map when it cannot say: then everything is imported).
pub(super) fn present_images(options: &RestoreOptions) -> HashMap<String, PresentImage> {
    let mut ls = ctr(options);
    ls.args(["images", "ls"]);
    let mut check = ctr(options);
    // `check` judges completeness for the host's platform, which is what restore imports
    // unless --platform says otherwise (then an image may be imported again: harmless).
    check.args(["images", "check"]);
    match (output(ls), output(check)) {
        (Ok(ls), Ok(check)) => present::parse(&ls, &check),
        _ => HashMap::new(),
    }
}

/// Imports `images` (each serving the node) into containerd, skipping those already present
/// under both names, complete, and pinned when asked.
pub fn restore(
    layout: &dyn BundleSource,
    images: &[PlatformImage],
    options: &RestoreOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<Restored>, RestoreError> {
    let (mut outcomes, todo) = skip_present(
        images,
        |i| (i.name.as_str(), i.entry.digest().to_string()),
        options,
    );
    if !todo.is_empty() {
        import_parallel(layout, &todo, options, reporter)?;
        outcomes.extend(
            todo.iter()
                .map(|image| name_and_pin(&image.name, image.entry.digest().as_ref(), options)),
        );
    }
    read_back_pins(&mut outcomes, options);
    Ok(outcomes)
}

/// Splits `items` (each giving its name and digest) into outcomes for those containerd holds
/// already under both names, complete, and pinned when asked (only the pin missing: pinned
/// now, not imported again), and those still to bring.
pub(super) fn skip_present<'a, T>(
    items: &'a [T],
    key: impl Fn(&T) -> (&str, String),
    options: &RestoreOptions,
) -> (Vec<Restored>, Vec<&'a T>) {
    let present = present_images(options);
    let record = options.record.as_ref().map(super::pins::record_key);
    let pin = options.pin.then_some(record.as_deref());
    let mut outcomes = Vec::new();
    let mut todo = Vec::new();
    for item in items {
        let (name, digest) = key(item);
        let twin = format!("{}@{digest}", repository(name));
        let names = [name, twin.as_str()];
        if present::already_there(&present, &names, &digest, pin) {
            outcomes.push(Restored {
                reference: name.to_owned(),
                pinned: present.get(name).is_some_and(PresentImage::pinned),
                digest,
                error: None,
                names: vec![name.to_owned(), twin],
                already_present: true,
            });
        } else if present::already_there(&present, &names, &digest, None) {
            outcomes.push(name_and_pin(name, &digest, options));
        } else {
            todo.push(item);
        }
    }
    (outcomes, todo)
}

/// Reports the pin containerd holds, not the one asked for: an image pinned by an earlier
/// `--pin` stays pinned (kubelet keeps it) though this run did not ask. Kept as computed when
/// containerd cannot be listed.
pub(super) fn read_back_pins(outcomes: &mut [Restored], options: &RestoreOptions) {
    let after = present_images(options);
    if after.is_empty() {
        return;
    }
    for o in outcomes.iter_mut().filter(|o| o.error.is_none()) {
        o.pinned = after.get(&o.reference).is_some_and(PresentImage::pinned);
    }
}

/// Imports in as many `ctr images import` processes as the node has cores (at most 4), each
/// with a group of images sharing no blob with another group: containerd ingests and unpacks
/// them side by side, where one import would do it one layer at a time.
fn import_parallel(
    layout: &dyn BundleSource,
    images: &[&PlatformImage],
    options: &RestoreOptions,
    reporter: &dyn Reporter,
) -> Result<(), RestoreError> {
    let blobs: Vec<Vec<(crate::digest::Digest, u64)>> = images
        .iter()
        .map(|i| i.sized_blobs())
        .collect::<Result<_, _>>()?;
    let workers = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        n => n,
    };
    let groups = groups::split(&blobs, workers);
    let plans: Vec<(Vec<&PlatformImage>, TarPlan)> = groups
        .iter()
        .map(|g| {
            let group: Vec<&PlatformImage> = g.iter().map(|&i| images[i]).collect();
            let plan = tar_plan(&group, g.iter().map(|&i| &blobs[i]))?;
            Ok((group, plan))
        })
        .collect::<Result<_, RestoreError>>()?;
    reporter.event(&Event::CopyStarted {
        images: images.len(),
        bytes: plans.iter().map(|(_, p)| p.tar_size()).sum(),
    });
    std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|(group, plan)| s.spawn(move || import(layout, group, plan, options, reporter)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an import thread panicked"))
            .collect::<Result<Vec<()>, _>>()
    })?;
    Ok(())
}

/// The tar of `images` (with their blobs and sizes) for one `ctr images import`: an index of
/// these images only, since ctr would record the others without their content.
fn tar_plan<'a>(
    images: &[&PlatformImage],
    blobs: impl Iterator<Item = &'a Vec<(crate::digest::Digest, u64)>>,
) -> Result<TarPlan, RestoreError> {
    let mut index = BundleIndex::default();
    let mut plan = TarPlan::default();
    for image in images {
        index.upsert(&image.name, image.entry.clone());
    }
    for (digest, size) in blobs.flatten() {
        plan.add_blob(digest.clone(), *size)
            .map_err(|e| RestoreError::runtime(e.to_string()))?;
    }
    plan.files.push(("index.json".into(), index.to_json()));
    plan.files
        .push(("oci-layout".into(), OCI_LAYOUT.as_bytes().to_vec()));
    Ok(plan)
}

/// Streams the tar `plan` of `images` into `ctr images import`; reports its bytes, then its
/// images once ctr has them.
fn import(
    layout: &dyn BundleSource,
    images: &[&PlatformImage],
    plan: &TarPlan,
    options: &RestoreOptions,
    reporter: &dyn Reporter,
) -> Result<(), RestoreError> {
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
        RestoreError::runtime_hint(
            format!("cannot run ctr: {e}"),
            "ctr comes with containerd (apt-get install containerd), or use --runtime cri-o",
        )
    })?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let layout_root = layout.path().to_path_buf();
    // Stream from a thread while ctr reads; ctr's stderr is collected by wait_with_output.
    let (written, out) = std::thread::scope(|s| {
        let w = s.spawn(move || -> std::io::Result<()> {
            let mut stdin = Counting::new(stdin, reporter);
            write_tar(layout, plan, &mut stdin)?;
            stdin.flush()
        });
        let out = child.wait_with_output();
        (w.join().expect("tar writer panicked"), out)
    });
    let out = out.map_err(|e| RestoreError::runtime(format!("ctr images import: {e}")))?;
    if !out.status.success() {
        return Err(RestoreError::runtime_hint(
            format!(
                "ctr images import failed for {}: {}",
                layout_root.display(),
                String::from_utf8_lossy(&out.stderr).trim(),
            ),
            format!(
                "is containerd running at {}? (--address or CONTAINERD_ADDRESS)",
                options.containerd_address.display()
            ),
        ));
    }
    written.map_err(|e| RestoreError::runtime(format!("streaming the bundle to ctr: {e}")))?;
    for image in images {
        reporter.event(&Event::ImageCopied {
            reference: image.name.clone(),
            failed: false,
        });
    }
    Ok(())
}

/// Names an imported image `repository@digest` too, and pins both names when asked.
pub(super) fn name_and_pin(name: &str, digest: &str, options: &RestoreOptions) -> Restored {
    let twin = format!("{}@{digest}", repository(name));
    let mut error = None;
    if twin != name {
        let mut tag = ctr(options);
        tag.args(["images", "tag", "--force", name, &twin]);
        if let Err(e) = run(tag) {
            error = Some(Error::context(
                Kind::Failed,
                format!("cannot name it {twin}"),
                e,
            ));
        }
    }
    if options.pin && error.is_none() {
        for name in [name, &twin] {
            let mut label = ctr(options);
            label.args(["images", "label", name, present::PIN_LABEL]);
            label.args(options.record.as_ref().map(super::pins::record_label));
            if let Err(e) = run(label) {
                error = Some(Error::context(
                    Kind::Failed,
                    format!("cannot pin {name}"),
                    e,
                ));
            }
        }
    }
    Restored {
        reference: name.to_owned(),
        digest: digest.to_owned(),
        pinned: options.pin && error.is_none(),
        error,
        names: vec![name.to_owned(), twin],
        already_present: false,
    }
}
