//! `ferry diff`: how two bundles or lock files differ.

use std::path::PathBuf;

use clap::Args;

use ferry::delta::diff::diff;
use ferry::delta::load_side;

use super::stdout::outln;
use super::{Exit, Failure, output};

/// Compare two bundles or lock files: references added, removed and moved, and the bytes B
/// needs beyond A (what a delta of B since A holds).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry diff ./bundle-v1 ./bundle-v2
  ferry diff v1/ferry.lock ferry.lock --json")]
pub struct DiffArgs {
    /// The old side: a bundle folder or a lock file.
    pub a: PathBuf,
    /// The new side: a bundle folder or a lock file.
    pub b: PathBuf,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn load(path: &std::path::Path) -> Result<ferry::delta::Side, Failure> {
    Ok(load_side(path)?)
}

/// Runs `ferry diff`.
pub fn run(args: DiffArgs) -> Result<Exit, Failure> {
    let (a, b) = (load(&args.a)?, load(&args.b)?);
    let d = diff(&a, &b);
    // B a delta made with --binary-deltas: what it ships per patched layer.
    let marker = super::bindelta::marker_of(&args.b).filter(|m| !m.patched.is_empty());
    if args.json {
        let refs = |v: &[(String, ferry::digest::Digest)]| {
            v.iter()
                .map(|(r, d)| serde_json::json!({"reference": r, "digest": d.to_string()}))
                .collect::<Vec<_>>()
        };
        let mut report = serde_json::json!({
            "version": 1,
            "a": args.a.display().to_string(),
            "b": args.b.display().to_string(),
            "added": refs(&d.added),
            "removed": refs(&d.removed),
            "moved": d.moved.iter().map(|(r, o, n)| serde_json::json!({"reference": r, "from": o.to_string(), "to": n.to_string()})).collect::<Vec<_>>(),
            "unchanged": d.unchanged,
            "newBlobs": d.new_blobs.as_ref().map(|b| b.len()),
            "newBytes": d.new_bytes(),
        });
        if let Some(m) = &marker {
            report["patched"] = super::bindelta::patched_json(m);
        }
        output::json(&report);
        return Ok(Exit::Ok);
    }
    for (r, digest) in &d.added {
        outln!("+ {r} {digest}");
    }
    for (r, digest) in &d.removed {
        outln!("- {r} {digest}");
    }
    for (r, old, new) in &d.moved {
        outln!("~ {r} {old} -> {new}");
    }
    let summary = format!(
        "{} added, {} removed, {} moved, {} unchanged",
        d.added.len(),
        d.removed.len(),
        d.moved.len(),
        d.unchanged
    );
    match &d.new_blobs {
        Some(blobs) => outln!(
            "{summary}; B needs {} blob(s), {} ({} bytes) beyond A",
            blobs.len(),
            output::bytes(d.new_bytes().unwrap_or(0)),
            d.new_bytes().unwrap_or(0)
        ),
        None => {
            outln!("{summary}");
            output::warning(
                "bytes unknown: a lock file made by an older ferry records no blob digests; compare the bundle folders instead",
            );
        }
    }
    for line in marker.iter().flat_map(super::bindelta::patched_lines) {
        outln!("{line}");
    }
    Ok(Exit::Ok)
}
