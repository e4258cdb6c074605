//! The per-image overhead case of `cargo xtask bench`: many small images (a shared 64 KiB base
//! layer and one 1 KiB layer each), so that what is measured is resolving, committing and
//! writing index.json, ferry.lock and restore.sh, not moving bytes. Target: <= 5 ms per image.
//! A warm re-run (nothing changed) must not rewrite any of those files.
//!
//! The registry runs on the same cores, and with tiny blobs it is the larger consumer of CPU
//! (docker-registry allocates a 4 MiB read buffer for every blob GET): the case prints the CPU
//! each side used, so that ferry's own share is visible, and skopeo's time per image on a sample.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::bench::Registry;
use crate::{Measured, measure, root, sh};

/// Images skopeo copies (one process each, as its users do): enough for a per-image figure.
const SKOPEO_SAMPLE: usize = 20;

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn per_image(d: Duration, count: usize) -> f64 {
    d.as_secs_f64() * 1000.0 / count as f64
}

/// Seeds `count` small images into `registry` (testdata/push_oci.py, not ferry).
fn seed(work: &Path, addr: &str, count: usize) -> Result<Vec<String>, String> {
    let layout = work.join("fixtures");
    eprintln!("making and pushing {count} small images (shared 64 KiB base, 1 KiB each)...");
    sh(Command::new("python3")
        .arg(root().join("testdata/make_fixtures.py"))
        .arg(&layout)
        .args(["--small", &count.to_string()]))?;
    sh(Command::new("python3")
        .arg(root().join("testdata/push_oci.py"))
        .arg(&layout)
        .arg("--all")
        .arg(format!("http://{addr}")))?;
    Ok((0..count)
        .map(|i| format!("{addr}/small/app{i:03}:1.0"))
        .collect())
}

/// One cold ferry run into `out`, with the registry's CPU over the same span.
fn cold_run(
    ferry: &Path,
    registry: &Registry,
    refs: &[String],
    out: &Path,
) -> Result<(Measured, Duration), String> {
    let before = registry.cpu().unwrap_or_default();
    let (m, _, ok) = measure(
        Command::new(ferry)
            .args(["bundle", "-q", "-o"])
            .arg(out)
            .args(refs),
    );
    ok?;
    let served = registry.cpu().unwrap_or_default().saturating_sub(before);
    Ok((m, served))
}

/// Seeds `count` small images into `registry`, bundles them `runs` times into fresh folders
/// (skopeo copying a sample after each) and once more warm, and prints the figures.
pub fn run(ferry: &Path, registry: &Registry, count: usize, runs: usize) -> Result<(), String> {
    let work = tempfile::Builder::new()
        .prefix("ferry-bench-small-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let refs = seed(work.path(), &registry.addr, count)?;
    let sample = &refs[..SKOPEO_SAMPLE.min(count)];
    let (mut ferry_runs, mut skopeo_runs) = (Vec::new(), Vec::new());
    let mut last = None;
    for run in 1..=runs {
        let out = work.path().join(format!("bundle{run}"));
        let (m, served) = cold_run(ferry, registry, &refs, &out)?;
        let skopeo = crate::bench::run_skopeo(sample, &[]);
        skopeo.ok?;
        eprintln!(
            "  run {run}: ferry {:6.2} s (registry CPU {:.2} s), skopeo {:.2} s for {}",
            m.wall.as_secs_f64(),
            served.as_secs_f64(),
            skopeo.m.wall.as_secs_f64(),
            sample.len()
        );
        ferry_runs.push((m, served));
        skopeo_runs.push(skopeo.m);
        last = Some(out);
    }
    let warm = warm_run(ferry, &refs, &last.expect("at least one run"))?;
    ferry_runs.sort_by_key(|(m, _)| m.wall);
    let (median, served) = ferry_runs[ferry_runs.len() / 2];
    let skopeo = crate::bench::median(skopeo_runs);
    print_figures(count, runs, median, served, (skopeo, sample.len()), warm);
    Ok(())
}

/// A re-run into the last bundle (nothing changed): its measurement and how many of
/// index.json, ferry.lock and restore.sh it rewrote.
fn warm_run(ferry: &Path, refs: &[String], bundle: &Path) -> Result<(Measured, usize), String> {
    let files = ["index.json", "ferry.lock", "restore.sh"].map(|f| bundle.join(f));
    let before: Vec<_> = files.iter().map(|f| modified(f)).collect();
    std::thread::sleep(Duration::from_millis(20));
    let (warm, _, ok) = measure(
        Command::new(ferry)
            .args(["bundle", "-q", "-o"])
            .arg(bundle)
            .args(refs),
    );
    ok?;
    let rewritten = files
        .iter()
        .zip(&before)
        .filter(|(f, b)| modified(f) != **b)
        .count();
    Ok((warm, rewritten))
}

fn print_figures(
    count: usize,
    runs: usize,
    ferry: Measured,
    served: Duration,
    (skopeo, sampled): (Measured, usize),
    (warm, rewritten): (Measured, usize),
) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!();
    println!(
        "small images: {count} images, local docker-registry on loopback, {runs} runs (median)"
    );
    println!(
        "ferry: {:.2} s, {:.2} ms per image (target <= 5 ms), {:.1} MiB peak RSS",
        ferry.wall.as_secs_f64(),
        per_image(ferry.wall, count),
        ferry.peak_rss as f64 / (1024.0 * 1024.0)
    );
    println!(
        "  CPU per image: ferry {:.2} ms, docker-registry {:.2} ms; the registry's CPU alone \
         spread over all {cores} cores takes {:.2} ms per image",
        per_image(ferry.cpu, count),
        per_image(served, count),
        per_image(served, count) / cores as f64
    );
    let skopeo_each = per_image(skopeo.wall, sampled);
    println!(
        "skopeo copy (one image per process, {sampled} sampled): {skopeo_each:.1} ms per image; \
         ferry/skopeo = {:.3}",
        per_image(ferry.wall, count) / skopeo_each
    );
    println!(
        "warm re-run (nothing changed): {:.2} s, {:.2} ms per image, ferry CPU {:.2} ms per \
         image; {rewritten} of index.json, ferry.lock, restore.sh rewritten (target 0)",
        warm.wall.as_secs_f64(),
        per_image(warm.wall, count),
        per_image(warm.cpu, count)
    );
}
