//! The per-image overhead case of `cargo xtask bench`: many small images (a shared 64 KiB base
//! layer and one 1 KiB layer each), so that what is measured is resolving, committing and
//! writing index.json, ferry.lock and restore.sh, not moving bytes. Target: <= 5 ms per image.
//! A warm re-run (nothing changed) must not rewrite any of those files.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use crate::{Measured, measure, root, sh};

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Seeds `count` small images into the registry at `addr` (testdata/push_oci.py, not ferry),
/// bundles them `runs` times into fresh folders and once more warm, and prints the figures.
pub fn run(ferry: &Path, addr: &str, count: usize, runs: usize) -> Result<(), String> {
    let work = tempfile::Builder::new()
        .prefix("ferry-bench-small-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let layout = work.path().join("fixtures");
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
    let refs: Vec<String> = (0..count)
        .map(|i| format!("{addr}/small/app{i:03}:1.0"))
        .collect();
    let mut walls = Vec::new();
    let mut last = None;
    for run in 1..=runs {
        let out = work.path().join(format!("bundle{run}"));
        let (m, _, ok) = measure(
            Command::new(ferry)
                .args(["bundle", "-q", "-o"])
                .arg(&out)
                .args(&refs),
        );
        ok?;
        eprintln!("  run {run}: {:6.2} s", m.wall.as_secs_f64());
        walls.push(m);
        last = Some(out);
    }
    let last = last.expect("at least one run");
    let files = ["index.json", "ferry.lock", "restore.sh"].map(|f| last.join(f));
    let before: Vec<_> = files.iter().map(|f| modified(f)).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (warm, _, ok) = measure(
        Command::new(ferry)
            .args(["bundle", "-q", "-o"])
            .arg(&last)
            .args(&refs),
    );
    ok?;
    let rewritten = files
        .iter()
        .zip(&before)
        .filter(|(f, b)| modified(f) != **b)
        .count();
    walls.sort_by_key(|m: &Measured| m.wall);
    let median = walls[walls.len() / 2];
    println!();
    println!(
        "small images: {count} images, local docker-registry on loopback, {runs} runs (median)"
    );
    println!(
        "ferry: {:.2} s, {:.2} ms per image (target <= 5 ms), {:.1} MiB peak RSS",
        median.wall.as_secs_f64(),
        median.wall.as_secs_f64() * 1000.0 / count as f64,
        median.peak_rss as f64 / (1024.0 * 1024.0)
    );
    println!(
        "warm re-run (nothing changed): {:.2} s, {:.2} ms per image; {rewritten} of index.json, ferry.lock, restore.sh rewritten (target 0)",
        warm.wall.as_secs_f64(),
        warm.wall.as_secs_f64() * 1000.0 / count as f64
    );
    Ok(())
}
