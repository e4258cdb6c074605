//! `cargo xtask bench`: bundles a set of large images from a local registry with ferry and with
//! `skopeo copy` (one image at a time into one OCI layout, as skopeo users do), alternating the
//! tools, and prints median wall time, peak memory and the ratios.

use std::path::Path;
use std::process::Command;

use crate::{Measured, measure, root, sh};

struct Options {
    runs: usize,
    images: usize,
    mib_per_image: usize,
    shared_mib: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        runs: 3,
        images: 12,
        mib_per_image: 24,
        shared_mib: 64,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let n: usize = value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))?;
        match flag.as_str() {
            "--runs" => o.runs = n.max(1),
            "--images" => o.images = n.max(1),
            "--mib-per-image" => o.mib_per_image = n.max(1),
            "--shared-mib" => o.shared_mib = n.max(1),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

struct Registry {
    addr: String,
    state: tempfile_dir::Dir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/registry.sh"))
            .arg("stop")
            .arg(&self.state.0)
            .output();
    }
}

mod tempfile_dir {
    /// A folder removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("ferry-bench-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn median(mut v: Vec<Measured>) -> Measured {
    v.sort_by_key(|m| m.wall);
    let wall = v[v.len() / 2].wall;
    let peak_rss = v.iter().map(|m| m.peak_rss).max().unwrap_or(0);
    Measured { wall, peak_rss }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// skopeo remembers blobs it saw in a cache that would favour later runs; start each run clean.
fn clear_skopeo_cache() {
    let _ = std::fs::remove_file("/var/lib/containers/cache/blob-info-cache-v1.boltdb");
}

fn dir_bytes(dir: &Path) -> u64 {
    let out = Command::new("du").args(["-sb"]).arg(dir).output().ok();
    out.and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
    .unwrap_or(0)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    sh(&mut Command::new(root().join("scripts/install-deps.sh")))?;
    eprintln!("building ferry (release)...");
    sh(Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "ferry"])
        .current_dir(root()))?;
    let ferry = root().join("target/release/ferry");

    let work = tempfile_dir::Dir::new("work");
    let layout = work.0.join("fixtures");
    eprintln!(
        "making {} images of {} MiB each plus a shared {} MiB base layer (random, incompressible)...",
        o.images, o.mib_per_image, o.shared_mib
    );
    sh(Command::new("python3")
        .arg(root().join("testdata/make_fixtures.py"))
        .arg(&layout)
        .args(["--bench", &o.images.to_string()])
        .env("FERRY_BENCH_MIB_PER_IMAGE", o.mib_per_image.to_string())
        .env("FERRY_BENCH_SHARED_MIB", o.shared_mib.to_string()))?;
    let state = tempfile_dir::Dir::new("registry");
    let addr = sh(Command::new(root().join("scripts/registry.sh"))
        .arg("start")
        .arg(&state.0))?
    .trim()
    .to_owned();
    let registry = Registry { addr, state };
    eprintln!("seeding the registry at {}...", registry.addr);
    sh(Command::new(root().join("scripts/seed-registry.sh"))
        .arg(&registry.addr)
        .arg(&layout))?;
    let refs: Vec<String> = (0..o.images)
        .map(|i| format!("{}/bench/app{i:02}:1.0", registry.addr))
        .collect();

    let mut ferry_runs = Vec::new();
    let mut skopeo_runs = Vec::new();
    let mut bundle_bytes = 0;
    for run in 1..=o.runs {
        let out = tempfile_dir::Dir::new(&format!("ferry-{run}"));
        let bundle = out.0.join("bundle");
        let m = measure(
            Command::new(&ferry)
                .args(["bundle", "-q", "-o"])
                .arg(&bundle)
                .args(&refs),
        )?;
        bundle_bytes = dir_bytes(&bundle.join("blobs"));
        eprintln!(
            "  run {run}: ferry  {:6.2} s  {:6.1} MiB peak",
            m.wall.as_secs_f64(),
            mib(m.peak_rss)
        );
        ferry_runs.push(m);

        clear_skopeo_cache();
        let out = tempfile_dir::Dir::new(&format!("skopeo-{run}"));
        let dest = out.0.join("layout");
        let mut total = Measured {
            wall: std::time::Duration::ZERO,
            peak_rss: 0,
        };
        for r in &refs {
            let m = measure(
                Command::new("skopeo")
                    .args(["copy", "--quiet", "--src-tls-verify=false"])
                    .arg(format!("docker://{r}"))
                    .arg(format!("oci:{}:{r}", dest.display())),
            )?;
            total.wall += m.wall;
            total.peak_rss = total.peak_rss.max(m.peak_rss);
        }
        eprintln!(
            "  run {run}: skopeo {:6.2} s  {:6.1} MiB peak",
            total.wall.as_secs_f64(),
            mib(total.peak_rss)
        );
        skopeo_runs.push(total);
    }
    let (f, s) = (median(ferry_runs), median(skopeo_runs));
    println!();
    println!(
        "bundle: {} images, {:.0} MiB of unique blobs, local docker-registry on loopback, {} runs (median wall, max peak RSS)",
        o.images,
        mib(bundle_bytes),
        o.runs
    );
    println!(
        "{:10} {:>10} {:>14} {:>12}",
        "tool", "wall (s)", "peak RSS (MiB)", "MiB/s"
    );
    for (name, m) in [("ferry", f), ("skopeo", s)] {
        println!(
            "{name:10} {:>10.2} {:>14.1} {:>12.1}",
            m.wall.as_secs_f64(),
            mib(m.peak_rss),
            mib(bundle_bytes) / m.wall.as_secs_f64()
        );
    }
    println!(
        "ratio: ferry is {:.2}x faster than skopeo; peak memory {:.1} MiB (target < 100 MiB)",
        s.wall.as_secs_f64() / f.wall.as_secs_f64(),
        mib(f.peak_rss)
    );
    Ok(())
}
