//! `ferry push`: a bundle's images into a registry, byte-exact.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use ferry::error::{Error, Kind, ResultExt};
use ferry::push::mirror::{self, MirrorSettings};
use ferry::push::{ImageOutcome, PushOptions, PushStatus, PushSummary, Target, push};
use ferry::reference::ImageRef;

use super::progress::{BundleProgress, Style};
use super::registry_args::TargetArgs;
use super::{Exit, Failure, output};

/// Push a bundle's images into a registry (distribution, Harbor, zot...), byte-exact: the same
/// manifest and index digests, every platform the bundle holds.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry push ./bundle registry.corp:5000/airgap
  ferry push ./bundle registry.corp --ref docker.io/library/alpine:3.20 --ca-file corp-ca.pem
  ferry push ./bundle registry.corp/mirror --keep-registry --mirror-config ./node-config

Names: SRC_REGISTRY/REPO:TAG goes to TARGET[/PREFIX]/REPO:TAG (with --keep-registry:
TARGET[/PREFIX]/SRC_REGISTRY/REPO:TAG, a port written as _PORT); references pinned by
digest only are pushed by digest.")]
pub struct PushArgs {
    /// The bundle: a folder, or an archive (`.tar`, `.tar.zst`) read in place.
    pub bundle: PathBuf,

    /// Where to: HOST[:PORT][/PREFIX].
    pub target: String,

    /// Push only this image (its full reference as `ferry ls` shows it; repeatable).
    #[arg(long = "ref", value_name = "REF")]
    pub refs: Vec<String>,

    /// Keep the source registry in the name: TARGET[/PREFIX]/SRC_REGISTRY/REPO:TAG.
    #[arg(long)]
    pub keep_registry: bool,

    /// For an index of which the bundle holds exactly one platform: tag that platform's
    /// manifest (the tag's digest then differs from the source's), instead of leaving the
    /// tag unset.
    #[arg(long)]
    pub tag_single_platform: bool,

    /// Write what nodes need to pull the original names from the target:
    /// DIR/certs.d/<SRC_HOST>/hosts.toml (containerd) and DIR/registries.conf.d/ferry.conf
    /// (CRI-O, podman, skopeo).
    #[arg(long, value_name = "DIR")]
    pub mirror_config: Option<PathBuf>,

    /// With --mirror-config: a mirror nodes try before the target, such as a P2P engine's
    /// node-local endpoint (Spegel: http://127.0.0.1:30020); repeatable, tried in the order
    /// given. URL: http[s]://HOST[:PORT][/PREFIX].
    #[arg(long = "prefer-mirror", value_name = "URL", requires = "mirror_config", value_parser = ferry::node::mirror_config::parse_mirror)]
    pub prefer_mirrors: Vec<ferry::node::mirror_config::Mirror>,

    /// With --mirror-config and --ca-file: where the nodes will hold the target's CA, written
    /// as hosts.toml's `ca` (the CA itself is copied to DIR/certs.d/<TARGET>/ca.crt). Default:
    /// /etc/containerd/certs.d/<TARGET>/ca.crt, where that copy lands when DIR/certs.d is
    /// installed as /etc/containerd/certs.d.
    #[arg(long, value_name = "PATH", requires = "mirror_config")]
    pub node_ca_path: Option<PathBuf>,

    /// Blob transfers in flight at once.
    #[arg(short, long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,

    #[command(flatten)]
    pub registry: TargetArgs,

    /// Print a machine-readable report on stdout.
    #[arg(long)]
    pub json: bool,

    /// No progress bars, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,

    /// Only errors on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

fn options(args: &PushArgs) -> Result<PushOptions, Failure> {
    let target: Target = args
        .target
        .parse()
        .map_err(|e: ferry::push::NameError| Failure::local(e))?;
    let mut refs = Vec::new();
    for r in &args.refs {
        refs.push(
            r.parse::<ImageRef>()
                .map_err(|e| Error::context(Kind::Usage, format!("--ref {r}"), e))?,
        );
    }
    Ok(PushOptions {
        target,
        refs,
        keep_registry: args.keep_registry,
        jobs: args.jobs.into(),
        tag_single_platform: args.tag_single_platform,
    })
}

/// Runs `ferry push`.
pub async fn run(args: PushArgs) -> Result<Exit, Failure> {
    let options = options(&args)?;
    let layout = super::source_arg::open_bundle(&args.bundle)?;
    // Refusals (unknown --ref, two sources in one repository) come before any connection.
    let selected = ferry::push::select(&*layout, &options).map_err(Failure::local)?;
    if selected.is_empty() {
        return Err(Failure::usage(format!(
            "{} holds no image to push",
            args.bundle.display()
        )));
    }
    let progress = Arc::new(BundleProgress::new(
        Style::pick(args.no_progress, args.quiet),
        selected.len(),
    ));
    let registries = Arc::new(args.registry.registries(progress.clone())?);
    let cancel = CancellationToken::new();
    tokio::spawn(super::signals::stop_on_signals(
        cancel.clone(),
        None,
        Default::default(),
        "stopping: no tag is set for an unfinished image; run the same command again to continue",
    ));
    let quiet = args.quiet;
    let lines = progress.clone();
    let on_image = move |o: &ImageOutcome| {
        lines.count_image(matches!(o.status, PushStatus::Failed | PushStatus::Partial));
        if !quiet {
            lines.line(&image_line(o));
        }
    };
    let summary = push(
        registries.clone(),
        layout,
        selected,
        &options,
        progress.clone(),
        &on_image,
        cancel.clone(),
    )
    .await?;
    progress.finish();
    if let Some(dir) = &args.mirror_config {
        write_mirror_config(&args, &options, &registries, &summary, dir).await?;
    }
    report(&args, &options, &summary);
    let failed = summary
        .images
        .iter()
        .any(|i| matches!(i.status, PushStatus::Failed | PushStatus::Partial));
    Ok(if summary.cancelled && !failed {
        Exit::Interrupted
    } else if summary.success() {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

fn status_word(s: PushStatus) -> &'static str {
    match s {
        PushStatus::Ok => "ok",
        PushStatus::Partial => "partial",
        PushStatus::Failed => "failed",
        PushStatus::Unfinished => "unfinished",
    }
}

fn image_line(o: &ImageOutcome) -> String {
    let counts = format!(
        "{} uploaded ({}), {} mounted, {} present",
        o.uploaded,
        output::bytes(o.bytes),
        o.mounted,
        o.skipped
    );
    let mut line = match o.status {
        PushStatus::Ok => format!("pushed {} -> {}: {counts}", o.source, o.target),
        PushStatus::Partial => format!("partial {} -> {}: {counts}", o.source, o.target),
        // The error itself is shown once, at the end.
        PushStatus::Failed => format!(
            "failed {} -> {} ({}; the error is shown at the end)",
            o.source,
            o.target,
            o.error.as_ref().map_or(Kind::Failed, |e| e.kind())
        ),
        PushStatus::Unfinished => format!("unfinished {} -> {}", o.source, o.target),
    };
    if let Some(n) = &o.note {
        line.push_str(&format!("\n  note: {n}"));
    }
    line
}

async fn write_mirror_config(
    args: &PushArgs,
    options: &PushOptions,
    registries: &ferry::registry::Registries,
    summary: &PushSummary,
    dir: &std::path::Path,
) -> Result<(), Failure> {
    let sources: BTreeSet<String> = summary
        .images
        .iter()
        .filter_map(|i| i.source.parse::<ImageRef>().ok())
        .map(|r| r.registry().to_owned())
        .collect();
    let base = registries.api_base(&options.target.registry).await?;
    // The nodes' path of the CA, never this machine's: the files are written for the nodes.
    let target_host = options.target.registry.clone();
    let ca = match args.registry.access.ca_files.first() {
        Some(p) => Some((
            std::fs::read(p)
                .context(Kind::Configuration, || format!("--ca-file {}", p.display()))?,
            args.node_ca_path.clone().unwrap_or_else(|| {
                std::path::Path::new("/etc/containerd/certs.d")
                    .join(&target_host)
                    .join("ca.crt")
            }),
        )),
        None => None,
    };
    let settings = MirrorSettings {
        origin: base.as_str().trim_end_matches('/').to_owned(),
        ca_file: ca.as_ref().map(|(_, on_node)| on_node.clone()),
        skip_verify: args
            .registry
            .access
            .insecure_registries
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&options.target.registry)),
    };
    let mirrors = mirror::mirrors(&options.target, &sources, options.keep_registry, &settings);
    let config_error = |e: ferry::store::StoreError| {
        Error::from(e)
            .wrap("--mirror-config")
            .with_kind(Kind::Configuration)
    };
    let mut files = mirror::write(dir, &mirrors, &args.prefer_mirrors).map_err(config_error)?;
    if let Some((pem, _)) = &ca {
        let certs = dir.join("certs.d");
        files.push(
            ferry::node::mirror_config::write_ca(&certs, &target_host, pem)
                .map_err(config_error)?,
        );
    }
    if !args.quiet {
        for f in files {
            eprintln!("wrote {}", f.display());
        }
        output::note(&format!(
            "nodes need pull credentials for {target_host} unless it allows anonymous pulls: \
             kubelet's imagePullSecrets (or containerd's CRI registry auth), and for CRI-O and \
             podman /etc/containers/auth.json (`ferry login {target_host} --authfile FILE` \
             writes one)"
        ));
    }
    Ok(())
}

fn report(args: &PushArgs, options: &PushOptions, s: &PushSummary) {
    if args.json {
        output::json(&json_report(args, options, s));
    }
    let failed: Vec<_> = s
        .images
        .iter()
        .filter(|i| i.status == PushStatus::Failed)
        .collect();
    for image in failed.iter().filter(|i| i.error.is_none()) {
        output::error(&format!("{}: failed", image.source));
    }
    output::image_failures(
        failed
            .iter()
            .filter_map(|i| Some((i.source.as_str(), i.error.as_ref()?))),
    );
    if args.quiet {
        return;
    }
    let ok = s.with_status(PushStatus::Ok).count();
    eprintln!(
        "pushed {ok} of {} images to {} in {:.1} s",
        s.images.len(),
        options.target,
        s.elapsed.as_secs_f64()
    );
    eprintln!(
        "  blobs: {} uploaded ({}), {} mounted, {} already there; {} retries",
        s.uploaded,
        output::bytes(s.bytes),
        s.mounted,
        s.skipped,
        s.retries
    );
    if s.cancelled {
        output::warning("interrupted: unfinished images were not tagged");
        output::hint("run the same command again (blobs already sent are not sent again)");
    } else if !s.success() {
        output::hint(&format!(
            "mend what is named above, then run the same command again: what the target holds is \
             not sent again (`--ref {}` pushes one image)",
            s.images
                .iter()
                .find(|i| i.status != PushStatus::Ok)
                .map_or("NAME", |i| i.source.as_str())
        ));
    }
}

fn json_report(args: &PushArgs, options: &PushOptions, s: &PushSummary) -> serde_json::Value {
    let images: Vec<serde_json::Value> = s
        .images
        .iter()
        .map(|i| {
            serde_json::json!({
                "source": i.source,
                "target": i.target,
                "digest": i.digest.as_ref().map(ToString::to_string),
                "status": status_word(i.status),
                "platforms": i.platforms,
                "absent": i.absent,
                "blobsUploaded": i.uploaded,
                "blobsMounted": i.mounted,
                "blobsSkipped": i.skipped,
                "bytesUploaded": i.bytes,
                "note": i.note,
                "error": i.error.as_ref().map(output::error_json),
            })
        })
        .collect();
    serde_json::json!({
        "version": 1,
        "bundle": args.bundle.display().to_string(),
        "target": options.target.to_string(),
        "success": s.success(),
        "cancelled": s.cancelled,
        "images": images,
        "totals": {
            "images": s.images.len(),
            "ok": s.with_status(PushStatus::Ok).count(),
            "partial": s.with_status(PushStatus::Partial).count(),
            "failed": s.with_status(PushStatus::Failed).count(),
            "unfinished": s.with_status(PushStatus::Unfinished).count(),
            "blobsUploaded": s.uploaded,
            "blobsMounted": s.mounted,
            "blobsSkipped": s.skipped,
            "bytesUploaded": s.bytes,
            "retries": s.retries,
            "seconds": (s.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        }
    })
}
