//! `ferry verify`: re-hash every blob and check every reference resolves.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use ferry::store::{Layout, verify};

use super::{Exit, output};

/// Re-hash every blob of a bundle and check that every image in it is complete.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

/// Runs `ferry verify`; exits 1 when anything is wrong.
pub fn run(args: VerifyArgs) -> Result<Exit, String> {
    let layout = Layout::open_read(&args.bundle).map_err(|e| e.to_string())?;
    let total: u64 = layout
        .list_blobs()
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = if output::stderr_is_terminal() && !args.no_progress {
        let bar =
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10));
        bar.set_style(
            ProgressStyle::with_template(
                "verifying {wide_bar:.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let report = verify::verify(&layout, &|n| bar.inc(n)).map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if args.json {
        output::json(&serde_json::json!({
            "bundle": args.bundle.display().to_string(),
            "ok": report.ok(),
            "images": report.images,
            "blobs": report.blobs,
            "bytes": report.bytes,
            "problems": report.problems,
            "warnings": report.warnings,
        }));
    } else {
        for w in &report.warnings {
            output::warning(w);
        }
        for p in &report.problems {
            output::error(p);
        }
        let verdict = if report.ok() { "ok" } else { "FAILED" };
        println!(
            "{verdict}: {} images, {} blobs, {} verified in {}{}",
            report.images,
            report.blobs,
            output::bytes(report.bytes),
            args.bundle.display(),
            if report.ok() {
                String::new()
            } else {
                format!("; {} problem(s)", report.problems.len())
            }
        );
    }
    if !report.ok() && !args.json {
        eprintln!(
            "hint: re-run the ferry bundle command that made it: corrupt blobs are fetched again once removed (ferry never overwrites a blob it believes good)"
        );
    }
    Ok(if report.ok() { Exit::Ok } else { Exit::Failed })
}
