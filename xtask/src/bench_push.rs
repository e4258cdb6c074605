//! The push case of `cargo xtask bench`: one bundle (made by ferry from the seeded registry)
//! pushed into a fresh docker-registry by `ferry push`, and image after image by
//! `skopeo copy oci:BUNDLE:REF docker://...` into another fresh one, alternating, same run.

use std::path::Path;
use std::process::Command;

use crate::bench::{Registry, dir, median, mib};
use crate::{Measured, measure};

fn fresh_registry() -> Result<Registry, String> {
    Registry::start()
}

fn ferry_push(ferry: &Path, bundle: &Path) -> Result<Measured, String> {
    let target = fresh_registry()?;
    let mut cmd = Command::new(ferry);
    cmd.args(["push", "-q"]).arg(bundle).arg(&target.addr);
    let (m, _, ok) = measure(&mut cmd);
    ok.map(|()| m)
}

fn skopeo_push(bundle: &Path, refs: &[String], names: &[String]) -> Result<Measured, String> {
    // skopeo remembers blobs it saw in a cache that would favour later runs: start clean.
    let _ = std::fs::remove_file("/var/lib/containers/cache/blob-info-cache-v1.boltdb");
    let target = fresh_registry()?;
    let mut sum = Measured::default();
    for (r, name) in refs.iter().zip(names) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{r}", bundle.display()))
            .arg(format!("docker://{}/{name}", target.addr));
        let (m, _, ok) = measure(&mut cmd);
        ok?;
        sum.wall += m.wall;
        sum.cpu += m.cpu;
        sum.peak_rss = sum.peak_rss.max(m.peak_rss);
    }
    Ok(sum)
}

/// Bundles `refs` once, then pushes the bundle `runs` times with each tool.
pub fn run(
    ferry: &Path,
    refs: &[String],
    names: &[String],
    runs: usize,
    unique: u64,
) -> Result<(), String> {
    let work = dir("push-bundle");
    let bundle = work.path().join("bundle");
    let (_, _, ok) = measure(
        Command::new(ferry)
            .args(["bundle", "-q", "-o"])
            .arg(&bundle)
            .args(refs),
    );
    ok?;
    let (mut f_runs, mut s_runs) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let f = ferry_push(ferry, &bundle)?;
        eprintln!(
            "  push run {run}: ferry  {:6.2} s  {:6.1} MiB peak",
            f.wall.as_secs_f64(),
            mib(f.peak_rss)
        );
        let s = skopeo_push(&bundle, refs, names)?;
        eprintln!(
            "  push run {run}: skopeo {:6.2} s  {:6.1} MiB peak",
            s.wall.as_secs_f64(),
            mib(s.peak_rss)
        );
        f_runs.push(f);
        s_runs.push(s);
    }
    let (f, s) = (median(f_runs), median(s_runs));
    println!();
    println!(
        "push: the bundle ({} images, {:.0} MiB of unique blobs) into a fresh local docker-registry, \
         {runs} runs (median wall, max peak RSS); skopeo copies image after image",
        refs.len(),
        mib(unique)
    );
    println!("{:10} {:>10} {:>14}", "tool", "wall (s)", "peak RSS (MiB)");
    for (name, m) in [("ferry", f), ("skopeo", s)] {
        println!(
            "{name:10} {:>10.2} {:>14.1}",
            m.wall.as_secs_f64(),
            mib(m.peak_rss)
        );
    }
    println!(
        "ratio: ferry push is {:.2}x faster than skopeo copy",
        s.wall.as_secs_f64() / f.wall.as_secs_f64()
    );
    Ok(())
}
