//! `ferry apply`: turn a bundle into the one a delta describes.

use std::path::PathBuf;

use clap::Args;

use ferry::delta::apply::apply;

use super::{Exit, Failure, output};

/// Apply a delta (made by `ferry bundle --since BASE`) to BASE, in place: afterwards BASE is
/// the new bundle. Crash-safe: re-run the same command after an interruption to finish.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry apply /media/usb/delta /srv/bundle
  ferry verify /srv/bundle")]
pub struct ApplyArgs {
    /// The delta folder.
    pub delta: PathBuf,
    /// The bundle it was made against; changed in place.
    pub base: PathBuf,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ferry apply`.
pub fn run(args: ApplyArgs) -> Result<Exit, Failure> {
    let report = apply(&args.delta, &args.base)?;
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
            "blobsRemoved": report.blobs_removed,
            "bytesRemoved": report.bytes_removed,
        }));
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
    Ok(Exit::Ok)
}
