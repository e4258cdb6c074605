//! `ferry bundle`: pull images into one OCI layout.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use ferry::bundle::{BundleOptions, BundleSummary, ImageStatus, bundle};
use ferry::error::Error;
use ferry::restore::binaries::Binaries;
use ferry::store::{Layout, StoreError};
use ferry::supply::is_referrer_name;

use super::progress::{BundleProgress, Style};
use super::registry_args::RegistryArgs;
use super::sources::{PlatformArgs, SourceArgs};
use super::{Exit, Failure, output};

/// Pull images from registries into one deduplicated, verified OCI image layout.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry bundle docker.io/library/alpine:3.20 quay.io/org/app@sha256:... -o ./bundle
  ferry bundle -f images.txt -o /mnt/pvc/bundle --platform linux/amd64 --platform linux/arm64
  ferry bundle -f - -o ./bundle --all-platforms < images.txt")]
pub struct BundleArgs {
    #[command(flatten)]
    pub sources: SourceArgs,

    #[command(flatten)]
    pub platforms: PlatformArgs,

    /// Fetch exactly what this lock file records (`ferry lock`, or a bundle's ferry.lock),
    /// under its references, whatever the tags say today.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["platforms", "all_platforms"])]
    pub lock: Option<PathBuf>,

    /// With --lock: first check that no tag moved since the lock was made; fail, naming the
    /// references, when one did.
    #[arg(long, requires = "lock")]
    pub locked: bool,

    /// Also store each image's supply chain: cosign signatures, attestations and SBOMs
    /// (`sha256-<hex>.sig/.att/.sbom`) and OCI referrers (the referrers API, else the fallback
    /// tag), for the image and each kept platform, under the fallback-tag names.
    #[arg(long)]
    pub referrers: bool,

    /// With --referrers: the most referrer manifests (signatures, SBOMs, attestations) stored
    /// per image; a registry listing more fails that referrer entry, fetching none of it.
    #[arg(long, value_name = "N", default_value_t = ferry::supply::MAX_REFERRERS)]
    pub max_referrers: usize,

    /// Refuse (fail) each image without a cosign signature that --key verifies; the others are
    /// bundled. Implies --referrers.
    #[arg(long, requires = "key")]
    pub require_signatures: bool,

    /// Fail each image that lacks a wanted --platform (a single-platform image serving only
    /// some of them) instead of bundling it for the platforms it has, with a warning.
    #[arg(long)]
    pub require_platforms: bool,

    /// The public key (PEM: ECDSA P-256, RSA or Ed25519) for --require-signatures.
    #[arg(long, value_name = "FILE", requires = "require_signatures")]
    pub key: Option<PathBuf>,

    /// Also a Helm chart from a classic chart repository (index.yaml + .tgz; its sha256
    /// checked), stored as `helm push` stores it, under the repository's host and path:
    /// `https://charts.example.com/stable/nginx:15.4.2` is
    /// `charts.example.com/stable/nginx:15.4.2`. Repeatable. (An OCI chart is named like any image.)
    #[arg(long, value_name = "REPO_URL/NAME:VERSION")]
    pub chart: Vec<String>,

    /// With --chart: also bundle the images each chart names without rendering (as
    /// `ferry images --from-chart` lists them).
    #[arg(long, requires = "chart")]
    pub with_chart_images: bool,

    /// Also a local file, stored as `oras push` stores one (empty config, one layer titled
    /// with the file's name, byte for byte) under the --as of the same position. Repeatable.
    /// (`--file`/`-f` is the list file of references.)
    #[arg(long, value_name = "PATH", requires = "as_reference")]
    pub add_file: Vec<PathBuf>,

    /// The reference each --add-file is stored under (`registry.example/tools/licence:1`).
    #[arg(long = "as", value_name = "NAME:TAG", requires = "add_file")]
    pub as_reference: Vec<String>,

    /// The bundle folder (created if absent; an existing bundle is added to).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,

    /// Write a delta of BASE (a bundle folder or its ferry.lock) into -o: the full set's
    /// index.json, ferry.lock and restore.sh, but only the blobs BASE lacks. `ferry apply`
    /// turns BASE into the new bundle on the far side.
    #[arg(long, value_name = "BASE")]
    pub since: Option<PathBuf>,

    /// With --since BASE (a bundle folder or archive): store each changed layer as a binary
    /// patch against the most similar layer of BASE when it rebuilds exactly and is at most
    /// half the layer (else the layer ships whole); `ferry apply` rebuilds it. Costs CPU on
    /// both sides (README: Binary deltas).
    #[arg(long, requires = "since")]
    pub binary_deltas: bool,

    /// Blob downloads in flight at once.
    #[arg(short, long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,

    /// Fetch each blob of at least --range-threshold over this many connections at once, as
    /// closed byte ranges of 8 to 64 MiB written at their offsets (at most --jobs-per-registry;
    /// 1 fetches every blob as one stream). A registry that ignores Range gets one stream (`-v`
    /// says so).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub range_parts: u16,

    /// The size from which a blob is fetched in parts (`64MiB`, `1G`, or bytes).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", env = "FERRY_RANGE_THRESHOLD", value_parser = super::export::parse_bytes)]
    pub range_threshold: u64,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Print a machine-readable report on stdout.
    #[arg(long)]
    pub json: bool,

    /// No progress bars, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,

    /// Only errors on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// Also put a static ferry binary into the bundle for each Linux architecture it serves
    /// (`ferry-linux-amd64`, `ferry-linux-arm64`, mode 0755), so that `restore.sh --mirror` can
    /// run `ferry serve` on nodes that do not have ferry. A platform without one is named.
    #[arg(long)]
    pub with_binary: bool,

    /// With --with-binary: the folder holding `ferry-linux-<arch>` (what `cargo xtask dist`
    /// writes to target/dist). Default: beside this ferry, its ../dist, then this ferry itself
    /// when it is a static build.
    #[arg(long, value_name = "DIR", env = "FERRY_BINARIES")]
    pub binaries: Option<PathBuf>,
}

/// Runs `ferry bundle`. With `--json`, a failure of the whole run (a busy folder, a bad lock
/// file) still prints the JSON report, with its `error`.
pub async fn run(args: BundleArgs) -> Result<Exit, Failure> {
    let result = run_inner(&args).await;
    if let (Err(failure), true) = (&result, args.json) {
        output::json(&json_report(
            &args.output,
            &BundleSummary::default(),
            Some(&failure.0),
        ));
    }
    result
}

/// Everything local (references, key, registries, --since) is checked before the output
/// folder is created: a usage or configuration error leaves no folder behind.
async fn run_inner(args: &BundleArgs) -> Result<Exit, Failure> {
    let mut charts = super::charts::parse(&args.chart)?;
    let files = super::charts::file_names(&args.add_file, &args.as_reference)?;
    let mut wanted =
        super::bundle_lock::wanted(args, !charts.is_empty() || !files.is_empty()).await?;
    charts.extend(super::charts::parse(&wanted.charts)?);
    let mut refs = std::mem::take(&mut wanted.refs);
    let require_signatures = match &args.key {
        Some(path) => Some(Arc::new(super::signatures::load_key(path)?)),
        None => None,
    };
    if let Some(base) = &args.since
        && !base.exists()
    {
        return Err(Failure::config(format!(
            "--since {}: no such bundle folder or lock file",
            base.display()
        )));
    }
    let binary_base = match (&args.since, args.binary_deltas) {
        (Some(base), true) => Some(super::bindelta::open_base(base)?),
        _ => None,
    };
    let progress = Arc::new(BundleProgress::new(
        Style::pick(args.no_progress, args.quiet),
        refs.len(),
    ));
    let registries = Arc::new(args.registry.registries(progress.clone())?);
    let fetched = super::charts::fetch_all(&registries, &charts, &wanted.sourced).await;
    if args.with_chart_images {
        refs.extend(super::charts::images_of(&fetched));
    }
    let created = !args.output.exists();
    let (layout, since) = match open_output(args) {
        Ok(opened) => opened,
        Err(failure) => {
            if created && failure.exit() == Exit::Usage {
                // Made by this run a moment ago, with nothing in it yet.
                let _ = std::fs::remove_dir_all(&args.output);
            }
            return Err(failure);
        }
    };
    let cancel = CancellationToken::new();
    let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(super::signals::stop_on_signals(
        cancel.clone(),
        args.registry.transfer.timeout,
        timed_out.clone(),
        "stopping: finished blobs and partial downloads are kept; press Ctrl-C again to quit at once",
    ));
    if args.locked {
        super::bundle_lock::check_locked(&registries, &wanted).await?;
    }
    let mut prepared = super::charts::store_layers(&layout, fetched, &since)?;
    prepared.extend(super::charts::store_files(&layout, files));
    let prepared = ferry::lock::sources::check(prepared, &wanted.sourced);
    progress.set_images(distinct(&refs) + prepared.len());
    let options = BundleOptions {
        platforms: args.platforms.filter(),
        jobs: args.jobs.into(),
        ranges: ferry::fetch::RangePolicy {
            parts: args.range_parts.into(),
            threshold: args.range_threshold,
        },
        pins: std::mem::take(&mut wanted.pins),
        referrers: args.referrers,
        require_signatures,
        since,
        require_platforms: args.require_platforms,
        prepared,
        max_referrers: args.max_referrers,
    };
    let summary = bundle(
        registries,
        layout.clone(),
        refs,
        &options,
        progress.clone(),
        cancel,
    )
    .await
    .map_err(run_failure)?;
    progress.finish();
    let timed_out = timed_out.load(std::sync::atomic::Ordering::SeqCst);
    if let Some(base) = binary_base.filter(|_| !summary.cancelled && !timed_out) {
        super::bindelta::patch_layers(layout.clone(), base, args.quiet).await?;
    }
    finish_output(
        args,
        &layout,
        &summary,
        created && bundled_nothing(&summary, timed_out),
    )?;
    Ok(exit_code(&summary, timed_out))
}

/// After the run: the folder this run created for nothing removed (`discard`), else the
/// binary copied in (`--with-binary`); then the report.
fn finish_output(
    args: &BundleArgs,
    layout: &Layout,
    summary: &BundleSummary,
    discard_it: bool,
) -> Result<(), Failure> {
    let discarded = discard_it && discard(layout);
    let binaries = if args.with_binary && !summary.cancelled && !discarded {
        let dir = args.binaries.clone();
        Some(super::binaries::with_binary(layout, dir, args.quiet)?)
    } else {
        None
    };
    report(args, summary, binaries.as_ref());
    if discarded && !args.quiet {
        eprintln!(
            "removed {}: this run created it and no image made it in",
            args.output.display()
        );
    }
    Ok(())
}

/// Whether the run put no image in the bundle and is over (not stopped: a stopped run's
/// partial downloads are for the next run).
fn bundled_nothing(summary: &BundleSummary, timed_out: bool) -> bool {
    summary.with_status(ImageStatus::Ok).count() == 0
        && !summary.cancelled
        && !summary.disk_full
        && !timed_out
}

/// Removes the folder this run created (only ferry's files in it; see
/// [`ferry::store::discard_created`]); false, with a warning, when it stays.
fn discard(layout: &Layout) -> bool {
    match ferry::store::discard_created(layout) {
        Ok(gone) => gone,
        Err(e) => {
            output::warning(&format!("cannot remove the folder this run created: {e}"));
            false
        }
    }
}

/// How many images `refs` names (the run bundles each once).
fn distinct(refs: &[ferry::reference::ImageRef]) -> usize {
    refs.iter().collect::<std::collections::BTreeSet<_>>().len()
}

/// Opens (creating) the output folder and, with --since, marks it as a delta of the base.
fn open_output(args: &BundleArgs) -> Result<(Arc<Layout>, Since), Failure> {
    // -o naming a file or a folder of other things is the user's to fix (exit 2).
    let layout = Layout::open_for_write(&args.output).map_err(|e| match e {
        StoreError::NotALayout { .. } | StoreError::NotEmpty(_) => Failure::local(e),
        e => Failure::from(e),
    })?;
    let layout = Arc::new(layout);
    let since = super::delta_args::since_base(&layout, args.since.as_deref())?;
    Ok((layout, since))
}

type Since = std::collections::BTreeMap<ferry::digest::Digest, u64>;

/// A store failure that ended the whole run.
fn run_failure(e: ferry::store::StoreError) -> Failure {
    let corrupt = matches!(e, StoreError::Corrupt { .. } | StoreError::Foreign { .. });
    let failure = Failure::from(e);
    if corrupt {
        failure
    } else {
        failure.with_hint(
            "the bundle is unchanged since the last image that completed; re-run to continue",
        )
    }
}

/// 130 when stopped with nothing failed, 1 when anything failed (a deadline that passed is a
/// failure to deliver, not a user's decision to stop), else 0.
fn exit_code(summary: &BundleSummary, timed_out: bool) -> Exit {
    let failed = summary.with_status(ImageStatus::Failed).count();
    if timed_out || summary.disk_full {
        Exit::Failed
    } else if summary.cancelled && failed == 0 {
        Exit::Interrupted
    } else if summary.success() {
        Exit::Ok
    } else {
        Exit::Failed
    }
}

/// Writes the running binary into the bundle as `ferry` (atomically; unchanged when the same).
fn report(args: &BundleArgs, s: &BundleSummary, binaries: Option<&Binaries>) {
    let bundle = args.output.display();
    if args.json {
        let mut report = json_report(&args.output, s, None);
        if let Some(b) = binaries {
            report["binaries"] = super::binaries::json(b);
        }
        output::json(&report);
    }
    let failed: Vec<_> = s.with_status(ImageStatus::Failed).collect();
    for image in failed.iter().filter(|i| i.error.is_none()) {
        output::error(&format!("{}: failed", image.reference));
    }
    output::image_failures(
        failed
            .iter()
            .filter_map(|i| Some((i.reference.as_str(), i.error.as_ref()?))),
    );
    if args.quiet {
        return;
    }
    let is_image = |i: &&ferry::bundle::ImageReport| !is_referrer_name(&i.reference);
    let done = s.with_status(ImageStatus::Ok).filter(is_image).count();
    eprintln!(
        "{} {done} of {} images into {bundle} in {:.1} s",
        if s.success() {
            "bundled"
        } else {
            "bundled only"
        },
        s.images.iter().filter(is_image).count(),
        s.elapsed.as_secs_f64()
    );
    let referrers = s.images.len() - s.images.iter().filter(is_image).count();
    if referrers > 0 {
        eprintln!(
            "  referrers: {} of {referrers} stored (signatures, attestations, SBOMs)",
            s.with_status(ImageStatus::Ok).count() - done
        );
    }
    eprintln!(
        "  blobs: {} fetched ({}), {} already present ({}); {} retries, {} resumed",
        s.blobs_fetched,
        output::bytes(s.bytes_fetched),
        s.blobs_present,
        output::bytes(s.bytes_present),
        s.retries,
        s.resumes
    );
    if s.disk_full {
        let unfinished = s.with_status(ImageStatus::Unfinished).count();
        let left = if unfinished > 0 {
            format!("; {unfinished} image(s) unfinished")
        } else {
            String::new()
        };
        output::error(&format!(
            "stopped: the filesystem holding {bundle} is full{left}"
        ));
        output::hint(
            "free space or use a larger volume, then run the same command again (finished \
             images and partial downloads are kept)",
        );
    } else if s.cancelled {
        output::warning(&format!(
            "interrupted: {} image(s) unfinished; the bundle is valid",
            s.with_status(ImageStatus::Unfinished).count()
        ));
        output::hint("run the same command again to continue where it stopped");
    } else if !failed.is_empty() && done > 0 {
        output::hint(&format!(
            "the {done} other image(s) are in the bundle; fix the failures above and re-run \
             (nothing is fetched twice)"
        ));
    }
}

fn json_report(
    bundle: &std::path::Path,
    s: &BundleSummary,
    error: Option<&Error>,
) -> serde_json::Value {
    let images: Vec<serde_json::Value> = s
        .images
        .iter()
        .map(|i| {
            serde_json::json!({
                "reference": i.reference,
                "digest": i.digest.as_ref().map(ToString::to_string),
                "status": match i.status {
                    ImageStatus::Ok => "ok",
                    ImageStatus::Failed => "failed",
                    ImageStatus::Unfinished => "unfinished",
                },
                "error": i.error.as_ref().map(output::error_json),
                "bytes": i.bytes,
                "seconds": (i.seconds * 1000.0).round() / 1000.0,
                "retries": i.retries,
                "referrer": is_referrer_name(&i.reference),
                "platformsMissing": i.platforms_missing,
            })
        })
        .collect();
    serde_json::json!({
        "version": 1,
        "bundle": bundle.display().to_string(),
        "success": error.is_none() && s.success(),
        "error": error.map(output::error_json),
        "cancelled": s.cancelled,
        "images": images,
        "totals": {
            "images": s.images.len(),
            "ok": s.with_status(ImageStatus::Ok).count(),
            "failed": s.with_status(ImageStatus::Failed).count(),
            "unfinished": s.with_status(ImageStatus::Unfinished).count(),
            "blobsFetched": s.blobs_fetched,
            "blobsPresent": s.blobs_present,
            "bytesFetched": s.bytes_fetched,
            "bytesPresent": s.bytes_present,
            "bytesReceived": s.bytes_received,
            "retries": s.retries,
            "resumes": s.resumes,
            "seconds": (s.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        }
    })
}
