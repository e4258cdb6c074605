//! `ferry restore`: import a bundle into this node's container runtime.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use ferry::digest::Digest;
use ferry::error::Kind;
use ferry::platform::Platform;
use ferry::restore::pins::{OldBundle, bundle_id};
use ferry::restore::{RestoreOptions, Restored, Runtime, restore};
use ferry::store::{BundleSource, verify};

use super::progress::ProgressArgs;
use super::{Exit, Failure, output};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    /// containerd when its socket is there, else CRI-O when skopeo is.
    Auto,
    /// containerd, through ctr.
    Containerd,
    /// CRI-O's containers-storage, through skopeo.
    CriO,
}

/// Import a bundle into this node's containerd or CRI-O, under each reference and its
/// repository@digest name, optionally pinned against kubelet's image GC.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry restore /preload --pin
  ferry restore /preload-v2 --replace /preload-v1 --remove     # an upgrade
  ferry restore --list-pinned
  ferry restore --from http://10.0.0.5:5000 --pin              # from a running ferry serve
  ferry restore ./bundle --runtime cri-o \\
      --storage '[vfs@/var/lib/containers/storage+/run/containers/storage]'")]
pub struct RestoreArgs {
    /// The bundle: a folder (may be a read-only mount), or an archive (`.tar`, `.tar.zst`)
    /// read in place and streamed into ctr as a plain tar.
    #[arg(required_unless_present_any = ["list_pinned", "from"])]
    pub bundle: Option<PathBuf>,
    /// The runtime to import into.
    #[arg(long, value_enum, default_value = "auto")]
    pub runtime: RuntimeArg,
    /// containerd namespace (`-n` as with ctr).
    #[arg(short = 'n', long, default_value = "k8s.io")]
    pub namespace: String,
    /// The platform to import (default: this node's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = Platform::parse_requested)]
    pub platform: Option<Platform>,
    /// Pin the images so kubelet's image GC keeps them (containerd label
    /// io.cri-containerd.pinned=pinned; a CRI-O pinned_images drop-in).
    #[arg(long)]
    pub pin: bool,
    /// An upgrade from OLD (a bundle folder or its ferry.lock): once this bundle is in and
    /// pinned, unpin the names OLD had and this bundle has not (those another bundle pinned
    /// too stay pinned). Implies --pin.
    #[arg(long, value_name = "OLD")]
    pub replace: Option<PathBuf>,
    /// With --replace: also delete those images where no container uses them.
    #[arg(long, requires = "replace")]
    pub remove: bool,
    /// List the pinned names, with the bundles (ferry.lock digests) that pinned them; import
    /// nothing.
    #[arg(long, conflicts_with_all = ["replace", "pin", "verify", "key"])]
    pub list_pinned: bool,
    /// Verify the bundle (re-hash every blob) before importing.
    #[arg(long)]
    pub verify: bool,
    /// Before importing, check every image's cosign signature with this public key (PEM);
    /// import nothing when one is unsigned, signed by another key or names another digest.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// containerd's socket.
    #[arg(
        long,
        env = "CONTAINERD_ADDRESS",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub address: PathBuf,
    /// containers-storage for CRI-O, as skopeo writes it: `[driver@root+runroot]` (default:
    /// the system's storage.conf).
    #[arg(long, value_name = "SPEC", default_value = "")]
    pub storage: String,
    /// Where the CRI-O pinning drop-in goes.
    #[arg(long, value_name = "DIR", default_value = "/etc/crio/crio.conf.d")]
    pub crio_conf_dir: PathBuf,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
    /// containerd imports to run side by side, each with images sharing no blob with the
    /// others' (default: one per core, at most 4).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub jobs: usize,
    #[command(flatten)]
    pub from: super::restore_from::FromArgs,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Runs `ferry restore`.
pub fn run(args: RestoreArgs) -> Result<Exit, Failure> {
    if args.list_pinned {
        let options = options(&args, pick_runtime(&args)?, None);
        return super::pins::list(&options, args.json);
    }
    if let Some(url) = &args.from.from {
        return super::restore_from::run(&args, url);
    }
    let bundle = args.bundle.as_deref().expect("clap requires the bundle");
    let layout = super::source_arg::open_bundle(bundle)?;
    let layout = &*layout;
    super::delta_args::refuse_delta_in(
        layout,
        "restore from it (it lacks its base's blobs)",
        "`ferry apply DELTA BASE` onto its base bundle, then restore the base",
    )?;
    if let Some(path) = &args.key {
        check_signatures(bundle, layout, path)?;
    }
    // Read before anything is imported: a bad OLD changes nothing on the node.
    let old = args.replace.as_deref().map(OldBundle::load).transpose()?;
    let runtime = pick_runtime(&args)?;
    if args.verify {
        verify_first(layout)?;
    }
    let id = bundle_id(layout)?;
    if let Some(old) = old.as_ref().filter(|old| old.id == id) {
        return Err(Failure::config(format!(
            "--replace {}: that is this bundle itself (the same ferry.lock)",
            old.path.display()
        )));
    }
    let options = options(&args, runtime, Some(id));
    let signals = super::runtime();
    exit_on_signals(&signals)?;
    let progress = args.progress.progress("asking the runtime what it holds");
    let outcomes = restore(layout, &options, &progress)?;
    progress.finish_copy();
    let left_alone = ferry::restore::left_alone(layout)?;
    let replaced = match &old {
        Some(old) => Some(super::pins::replace(&options, old, &outcomes, args.remove)?),
        None => None,
    };
    if args.json {
        let mut report = report_json(&bundle.display().to_string(), &options, &outcomes);
        if let Some(r) = &replaced {
            report["replaced"] = super::pins::replaced_json(r);
        }
        report["leftAlone"] = left_alone_json(&left_alone);
        output::json(&report);
    }
    print_outcomes(&options, &outcomes, args.progress.quiet);
    for a in left_alone.iter().filter(|_| !args.progress.quiet) {
        output::line(&format!("left alone: {} ({})", a.reference, a.reason));
    }
    if let Some(r) = &replaced {
        super::pins::print_replaced(r);
    }
    let failed = outcomes.iter().any(|o| o.error.is_some())
        || replaced.is_some_and(|r| !r.failed.is_empty());
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

/// The restore options the arguments ask for; `record` is the bundle's identity (pins are
/// recorded under it). `--replace` implies `--pin`.
pub(super) fn options(
    args: &RestoreArgs,
    runtime: Runtime,
    record: Option<Digest>,
) -> RestoreOptions {
    RestoreOptions {
        runtime,
        platform: args.platform.clone().unwrap_or_else(Platform::host),
        namespace: args.namespace.clone(),
        containerd_address: args.address.clone(),
        storage: args.storage.clone(),
        pin: args.pin || args.replace.is_some(),
        record,
        crio_conf_dir: args.crio_conf_dir.clone(),
        jobs: args.jobs,
    }
}

/// `--key`: imports nothing unless every image is signed by the key.
fn check_signatures(bundle: &Path, layout: &dyn BundleSource, key: &Path) -> Result<(), Failure> {
    let verdicts = super::signatures::check(layout, &super::signatures::load_key(key)?)?;
    let failed = super::signatures::report_failures(&verdicts);
    if failed > 0 {
        return Err(Failure::failed(
            Kind::Signature,
            format!(
                "{failed} image(s) of {} fail the signature check with {}; nothing was imported",
                bundle.display(),
                key.display()
            ),
        ));
    }
    Ok(())
}

/// Ctrl-C or SIGTERM during an import: the bars go, then ferry says so and exits 130 (ctr
/// and skopeo, in ferry's process group, stop on Ctrl-C too). A re-run skips what is in.
fn exit_on_signals(runtime: &tokio::runtime::Runtime) -> Result<(), Failure> {
    super::signals::on_each_signal(runtime, || {
        super::progress::take_off_screen();
        output::warning(
            "interrupted: run the same command again to import the rest (images already in are skipped)",
        );
        std::process::exit(Exit::Interrupted as i32);
    })
}

/// The runtime `--runtime` names, or for `auto` the one this node has.
pub(super) fn pick_runtime(args: &RestoreArgs) -> Result<Runtime, Failure> {
    match args.runtime {
        RuntimeArg::Containerd => Ok(Runtime::Containerd),
        RuntimeArg::CriO => Ok(Runtime::CriO),
        RuntimeArg::Auto if on_path("ctr") && args.address.exists() => Ok(Runtime::Containerd),
        RuntimeArg::Auto
            if on_path("skopeo")
                && (!args.storage.is_empty() || Path::new("/etc/crio").exists()) =>
        {
            Ok(Runtime::CriO)
        }
        RuntimeArg::Auto => Err(Failure::config(format!(
            "found neither containerd (ctr and {}) nor CRI-O (skopeo and /etc/crio)",
            args.address.display()
        ))
        .with_hint("pass --address, or --runtime containerd|cri-o")),
    }
}

/// `--verify`: imports nothing from a bundle that is not sound.
fn verify_first(layout: &dyn BundleSource) -> Result<(), Failure> {
    let report = verify::verify(layout, &|_| {})?;
    if report.ok() {
        return Ok(());
    }
    Err(Failure::failed(
        Kind::Bundle,
        format!(
            "the bundle is not sound; nothing was imported:\n{}",
            report
                .problems
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    ))
}

/// An image's status word: `restored`, `present` (there already, skipped) or `failed`.
fn status(o: &Restored) -> &'static str {
    match (&o.error, o.already_present) {
        (Some(_), _) => "failed",
        (None, true) => "present",
        (None, false) => "restored",
    }
}

/// The `--json` document (README: "JSON output").
pub(super) fn report_json(
    bundle: &str,
    options: &RestoreOptions,
    outcomes: &[Restored],
) -> serde_json::Value {
    let count = |word: &str| outcomes.iter().filter(|o| status(o) == word).count();
    serde_json::json!({
        "version": 1,
        "bundle": bundle,
        "runtime": match options.runtime { Runtime::Containerd => "containerd", Runtime::CriO => "cri-o" },
        "platform": options.platform.to_string(),
        "pin": options.pin,
        "images": outcomes.iter().map(|o| serde_json::json!({
            "reference": o.reference,
            "digest": o.digest,
            "status": status(o),
            "names": o.names,
            "pinned": o.pinned,
            "alreadyPresent": o.already_present,
            "error": o.error.as_ref().map(output::error_json),
        })).collect::<Vec<_>>(),
        "totals": {
            "images": outcomes.len(),
            "restored": count("restored"),
            "present": count("present"),
            "failed": count("failed"),
            "pinned": outcomes.iter().filter(|o| o.pinned).count(),
        },
    })
}

/// The charts and artifacts not imported, for `--json` (README: "JSON output").
fn left_alone_json(list: &[ferry::restore::LeftAlone]) -> serde_json::Value {
    list.iter()
        .map(|a| {
            serde_json::json!({
                "reference": a.reference,
                "digest": a.digest,
                "kind": a.kind.as_str(),
                "artifactType": a.kind.artifact_type(),
                "reason": a.reason,
            })
        })
        .collect()
}

/// One line per image on stderr, then the totals; with `quiet`, only the images that failed.
pub(super) fn print_outcomes(options: &RestoreOptions, outcomes: &[Restored], quiet: bool) {
    if quiet {
        for o in outcomes {
            if let Some(e) = &o.error {
                output::image_failure(&o.reference, e);
            }
        }
        return;
    }
    for o in outcomes {
        match &o.error {
            None => output::line(&format!(
                "{} {} ({}){}{}",
                if o.already_present {
                    "already present:"
                } else {
                    "restored"
                },
                o.reference,
                o.digest,
                match o.names.iter().find(|n| **n != o.reference) {
                    Some(twin) => format!(", also as {twin}"),
                    None => String::new(),
                },
                if o.pinned { ", pinned" } else { "" }
            )),
            Some(e) => output::image_failure(&o.reference, e),
        }
    }
    if options.pin && options.runtime == Runtime::CriO {
        output::hint("apply the pinning drop-in with: systemctl reload crio");
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let present = outcomes.iter().filter(|o| o.already_present).count();
    eprintln!(
        "{} of {} image(s) restored for {}{}",
        outcomes.len() - failed - present,
        outcomes.len(),
        options.platform,
        if present > 0 {
            format!(", {present} already present")
        } else {
            String::new()
        }
    );
}
