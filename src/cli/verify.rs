//! `ferry verify`: re-hash every blob and check every reference resolves.

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use ferry::store::verify::VerifyReport;
use ferry::store::{BundleSource, Layout, verify};

use super::stdout::outln;
use super::{Exit, Failure, output};

/// Re-hash every blob of a bundle and check that every image in it is complete.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle: a folder, or an archive (`.tar`, `.tar.zst`) read in place.
    pub bundle: PathBuf,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Remove the corrupt blobs found, so that re-running `ferry bundle` fetches them again.
    #[arg(long)]
    pub repair: bool,
    /// Also check every image's cosign signature with this public key (PEM: ECDSA P-256, RSA
    /// or Ed25519), offline; names each image unsigned, signed by another key, or whose
    /// signature names another digest. Keyless (Fulcio/Rekor) signatures are not verified.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// Runs `ferry verify`; exits 1 when anything is wrong.
pub fn run(args: VerifyArgs) -> Result<Exit, Failure> {
    let source = super::source_arg::open_bundle(&args.bundle)?;
    if let Some(marker) = ferry::delta::Marker::of(&*source)? {
        if args.repair {
            super::delta_args::refuse_delta_in(&*source, "repair it", "make the delta again")?;
        }
        return verify_delta(&args, &*source, &marker);
    }
    if args.repair && source.kind().is_archive() {
        return Err(Failure::usage(format!(
            "--repair removes corrupt blobs from a bundle folder; {} is an archive",
            args.bundle.display()
        ))
        .with_hint("export the archive again from a sound bundle"));
    }
    let key = args
        .key
        .as_deref()
        .map(super::signatures::load_key)
        .transpose()?;
    // Repairing writes: take the bundle's lock, as a bundle run would.
    let writer = match args.repair {
        true => Some(Layout::open_for_write(&args.bundle)?),
        false => None,
    };
    let layout: &dyn BundleSource = match &writer {
        Some(w) => w,
        None => &*source,
    };
    let report = rehash(layout, progress_bar(&args, layout)?)?;
    let signatures = match &key {
        Some(key) => Some(super::signatures::check(layout, key)?),
        None => None,
    };
    let unsigned = signatures.as_deref().map_or(0, |v| {
        if args.json {
            v.iter().filter(|v| !v.verdict.ok()).count()
        } else {
            super::signatures::report_failures(v)
        }
    });
    if args.json {
        output::json(&report_json(&args.bundle, &report, signatures.as_deref()));
    } else {
        if let Some(v) = &signatures {
            signatures_line(&args, v, unsigned);
        }
        print_report(&args.bundle, &report, unsigned);
    }
    repair_or_hint(&args, writer.as_ref(), &report)?;
    Ok(if report.ok() && unsigned == 0 {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// A bar over the bytes to re-hash, on a terminal unless `--no-progress`; hidden otherwise.
fn progress_bar(args: &VerifyArgs, layout: &dyn BundleSource) -> Result<ProgressBar, Failure> {
    if !output::stderr_is_terminal() || args.no_progress {
        return Ok(ProgressBar::hidden());
    }
    let total: u64 = layout.blobs()?.iter().map(|(_, size)| size).sum();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10));
    bar.set_style(
        ProgressStyle::with_template(
            "verifying {wide_bar:.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("valid template"),
    );
    Ok(bar)
}

/// Re-hashes every blob and walks every image.
fn rehash(layout: &dyn BundleSource, bar: ProgressBar) -> Result<VerifyReport, Failure> {
    let mut report = verify::verify(layout, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    report
        .problems
        .extend(ferry::bundle::derived::disagreements(layout)?);
    Ok(report)
}

/// The `--json` document (README: "JSON output").
fn report_json(
    bundle: &Path,
    report: &VerifyReport,
    signatures: Option<&[ferry::supply::cosign::ImageVerdict]>,
) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "bundle": bundle.display().to_string(),
        "ok": report.ok(),
        "delta": false,
        "images": report.images,
        "referrers": report.referrers,
        "blobs": report.blobs,
        "bytes": report.bytes,
        "problems": report.problems,
        "warnings": report.warnings,
        "corrupt": report.corrupt.iter().map(|(d, _)| d.to_string()).collect::<Vec<_>>(),
        "signatures": signatures.map(super::signatures::json),
    })
}

/// With `--key`: how many images the key signs, on stdout, and a hint on stderr when the
/// bundle holds no signature at all (the usual cause: bundled without `--referrers`).
fn signatures_line(
    args: &VerifyArgs,
    verdicts: &[ferry::supply::cosign::ImageVerdict],
    unsigned: usize,
) {
    let key = args.key.as_deref().unwrap_or(Path::new("-"));
    outln!(
        "signatures: {} of {} images signed by {}",
        verdicts.len() - unsigned,
        verdicts.len(),
        key.display()
    );
    let none = verdicts
        .iter()
        .all(|v| v.verdict == ferry::supply::cosign::Verdict::Unsigned);
    if !verdicts.is_empty() && none {
        output::hint(&format!(
            "no signatures found in {}; did you bundle with --referrers?",
            args.bundle.display()
        ));
    }
}

/// Warnings and problems on stderr, then one verdict line on stdout, last: `ok` only when the
/// blobs, the images and (with `--key`) every signature are sound.
fn print_report(bundle: &Path, report: &VerifyReport, unsigned: usize) {
    for w in &report.warnings {
        output::warning(w);
    }
    for p in &report.problems {
        output::error(p);
    }
    let problems = report.problems.len() + unsigned;
    let referrers = match report.referrers {
        0 => String::new(),
        n => format!(" (and {n} signatures/SBOMs)"),
    };
    outln!(
        "{}: {} images{referrers}, {} blobs, {} verified in {}{}",
        if problems == 0 { "ok" } else { "FAILED" },
        report.images,
        report.blobs,
        output::bytes(report.bytes),
        bundle.display(),
        match problems {
            0 => String::new(),
            n => format!("; {n} problem(s)"),
        }
    );
}

/// With `--repair`, removes the corrupt blobs; otherwise says how to mend what is wrong.
fn repair_or_hint(
    args: &VerifyArgs,
    writer: Option<&Layout>,
    report: &VerifyReport,
) -> Result<(), Failure> {
    if let Some(layout) = writer {
        let removed = verify::remove_corrupt(layout, report)?;
        layout.tidy();
        if removed > 0 {
            eprintln!(
                "removed {removed} corrupt blob(s); run the ferry bundle command that made this bundle again to fetch them"
            );
        }
    } else if !report.corrupt.is_empty() && !args.json {
        output::hint(&format!(
            "`ferry verify --repair {}` removes the corrupt blobs; the ferry bundle command that made it then fetches them again",
            args.bundle.display()
        ));
    } else if !report.ok() && !args.json {
        output::hint(
            "re-run the ferry bundle command that made this bundle: it fetches what is missing",
        );
    }
    Ok(())
}

/// `ferry verify` of a delta: its blobs re-hashed, and every blob it lacks claimed by its base.
fn verify_delta(
    args: &VerifyArgs,
    layout: &dyn BundleSource,
    marker: &ferry::delta::Marker,
) -> Result<Exit, Failure> {
    let report = ferry::delta::verify::verify_delta(layout, marker, &|_| {})?;
    if args.json {
        output::json(&serde_json::json!({
            "version": 1,
            "bundle": args.bundle.display().to_string(),
            "ok": report.ok(),
            "delta": true,
            "baseLock": marker.base_lock.to_string(),
            "images": report.images,
            "blobs": report.blobs,
            "bytes": report.bytes,
            "fromBase": report.from_base,
            "patched": report.patched,
            "problems": report.problems,
            "warnings": [],
        }));
    } else {
        for p in &report.problems {
            output::error(p);
        }
        outln!(
            "{}: delta of base lock {}: {} images, {} blobs, {} verified, {} blob(s) from the base{} in {}{}",
            if report.ok() { "ok" } else { "FAILED" },
            marker.base_lock,
            report.images,
            report.blobs,
            output::bytes(report.bytes),
            report.from_base,
            if report.patched > 0 {
                format!(", {} layer(s) as binary patches", report.patched)
            } else {
                String::new()
            },
            args.bundle.display(),
            if report.ok() {
                String::new()
            } else {
                format!("; {} problem(s)", report.problems.len())
            }
        );
    }
    Ok(if report.ok() { Exit::Ok } else { Exit::Failed })
}
