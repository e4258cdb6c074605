//! `ferry rm`: take references out of a bundle.

use std::path::PathBuf;

use clap::Args;

use ferry::bundle::rm::remove_references;
use ferry::store::Layout;

use super::{Exit, Failure, output};

/// Remove references from a bundle, and exactly the blobs no other image uses.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry rm ./bundle docker.io/library/alpine:3.19
  ferry rm ./bundle alpine:3.19 quay.io/org/app:1.0")]
pub struct RmArgs {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// References to remove (as `ferry ls` shows them, or short forms such as `alpine:3.19`).
    #[arg(required = true, value_name = "REF")]
    pub references: Vec<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ferry rm`.
pub fn run(args: RmArgs) -> Result<Exit, Failure> {
    Layout::open_read(&args.bundle)?;
    super::delta_args::refuse_delta(
        &args.bundle,
        "remove images from it",
        "apply it to its base first (`ferry apply`), then remove from the result",
    )?;
    let layout = Layout::open_for_write(&args.bundle)?;
    let report = remove_references(&layout, &args.references)?;
    if args.json {
        output::json(&serde_json::json!({
            "version": 1,
            "bundle": args.bundle.display().to_string(),
            "references": report.references,
            "blobs": report.removed.blobs,
            "blobBytes": report.removed.blob_bytes,
        }));
    }
    for r in &report.references {
        if report.finished.contains(r) {
            eprintln!("removed {r} (finishing an interrupted rm)");
        } else {
            eprintln!("removed {r}");
        }
    }
    eprintln!(
        "{} reference(s) removed from {}; {} blob(s) no other image uses removed ({})",
        report.references.len(),
        args.bundle.display(),
        report.removed.blobs,
        output::bytes(report.removed.blob_bytes)
    );
    Ok(Exit::Ok)
}
