//! `ferry gc`: remove what a bundle no longer needs.

use std::path::PathBuf;

use clap::Args;

use ferry::store::Layout;
use ferry::store::gc::gc;

use super::{Exit, Failure, output};

/// Remove blobs no image of the bundle uses, and partial downloads of unfinished runs.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// Only say what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ferry gc`.
pub fn run(args: GcArgs) -> Result<Exit, Failure> {
    Layout::open_read(&args.bundle)?;
    super::delta_args::refuse_delta(
        &args.bundle,
        "collect its blobs (it lacks its base's by design)",
        "apply it to its base first (`ferry apply`)",
    )?;
    let layout = Layout::open_for_write(&args.bundle)?;
    if !args.dry_run && ferry::bundle::derived::has_derived_files(&layout) {
        // What an interrupted run left naming other images than index.json: set right first.
        ferry::bundle::derived::reconcile(&layout)?;
    }
    let removed = gc(&layout, args.dry_run)?;
    if args.json {
        output::json(&serde_json::json!({
            "version": 1,
            "bundle": args.bundle.display().to_string(),
            "dryRun": args.dry_run,
            "blobs": removed.blobs,
            "blobBytes": removed.blob_bytes,
            "partials": removed.partials,
            "partialBytes": removed.partial_bytes,
        }));
    }
    eprintln!(
        "{} {} unused blob(s) ({}) and {} partial download(s) ({}) in {}",
        if args.dry_run {
            "would remove"
        } else {
            "removed"
        },
        removed.blobs,
        output::bytes(removed.blob_bytes),
        removed.partials,
        output::bytes(removed.partial_bytes),
        args.bundle.display()
    );
    Ok(Exit::Ok)
}
