//! `ferry apply`: turn a bundle into the one a delta describes.

use std::path::{Path, PathBuf};

use clap::Args;
use tokio_util::sync::CancellationToken;

use ferry::delta::apply::apply;
use ferry::delta::apply_to_archive;
use ferry::export::Target;

use super::progress::ProgressArgs;
use super::{Exit, Failure, output};

/// Apply a delta (made by `ferry bundle --since BASE`) to BASE, in place: afterwards BASE is
/// the new bundle. Crash-safe: re-run the same command after an interruption to finish.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry apply /media/usb/delta.tar.zst /srv/bundle
  ferry verify /srv/bundle
  ferry apply delta.tar.zst bundle-v1.tar.zst -o bundle-v2.tar.zst   # archives only")]
pub struct ApplyArgs {
    /// The delta: a folder, or an archive (`.tar`, `.tar.zst`) read in place.
    pub delta: PathBuf,
    /// The bundle it was made against: a folder, changed in place; or, with -o, a folder or
    /// an archive left unchanged.
    pub base: PathBuf,
    /// Write the new bundle as an oci-archive here (`.tar` or `.tar.zst`) instead of changing
    /// BASE: byte for byte what `ferry export --oci-archive` writes for it.
    #[arg(short, long, value_name = "NEW.tar.zst")]
    pub output: Option<PathBuf>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

/// Runs `ferry apply`.
pub fn run(args: ApplyArgs) -> Result<Exit, Failure> {
    if let Some(out) = &args.output {
        return to_archive(&args, out);
    }
    if args.base.is_file() {
        return Err(Failure::usage(format!(
            "{} is an archive: apply changes a bundle folder in place",
            args.base.display()
        ))
        .with_hint("pass -o NEW.tar.zst to write the new bundle as an archive"));
    }
    let progress = args.progress.progress("checking the delta and its base");
    let report = apply(&args.delta, &args.base, &progress)?;
    progress.finish_copy();
    if args.json {
        output::json(&serde_json::json!({
            "version": 1,
            "delta": args.delta.display().to_string(),
            "base": args.base.display().to_string(),
            "alreadyApplied": report.already_applied,
            "resumed": report.resumed,
            "images": report.images,
            "blobsAdded": report.blobs_added,
            "bytesAdded": report.bytes_added,
            "layersRebuilt": report.blobs_rebuilt,
            "bytesRebuilt": report.bytes_rebuilt,
            "blobsRemoved": report.blobs_removed,
            "bytesRemoved": report.bytes_removed,
        }));
    }
    if args.progress.quiet {
        return Ok(Exit::Ok);
    }
    if report.already_applied {
        eprintln!(
            "{} already is the bundle {} describes; nothing to do",
            args.base.display(),
            args.delta.display()
        );
        return Ok(Exit::Ok);
    }
    eprintln!(
        "{}applied {} to {}: {} image(s); {} blob(s) added ({}), {} no longer used removed ({})",
        if report.resumed {
            "finished an interrupted apply: "
        } else {
            ""
        },
        args.delta.display(),
        args.base.display(),
        report.images,
        report.blobs_added,
        output::bytes(report.bytes_added),
        report.blobs_removed,
        output::bytes(report.bytes_removed)
    );
    if report.blobs_rebuilt > 0 {
        eprintln!(
            "  {} layer(s) rebuilt from binary patches ({}), each checked against its digest",
            report.blobs_rebuilt,
            output::bytes(report.bytes_rebuilt)
        );
    }
    Ok(Exit::Ok)
}

/// `apply DELTA BASE -o NEW`: the new bundle written as an archive; BASE is left unchanged.
fn to_archive(args: &ApplyArgs, out: &Path) -> Result<Exit, Failure> {
    let target = Target::parse(out)?;
    let runtime = super::runtime();
    let cancel = CancellationToken::new();
    super::export::stop_on_signals(&runtime, cancel.clone())?;
    let progress = args.progress.progress("checking the delta and its base");
    let done = apply_to_archive(&args.delta, &args.base, &target, &cancel, &progress)?;
    progress.finish_copy();
    if args.json {
        output::json(&serde_json::json!({
            "version": 1,
            "delta": args.delta.display().to_string(),
            "base": args.base.display().to_string(),
            "output": target.to_string(),
            "images": done.images,
            "blobs": done.blobs,
            "blobsFromDelta": done.from_delta,
        }));
    }
    if args.progress.quiet {
        return Ok(Exit::Ok);
    }
    eprintln!(
        "wrote {target}: {} image(s), {} blob(s) ({} from the delta); {} is unchanged",
        done.images,
        done.blobs,
        done.from_delta,
        args.base.display()
    );
    Ok(Exit::Ok)
}
