//! `cargo xtask bench`: bundles a set of large images from a local registry with ferry and with
//! `skopeo copy` (one image at a time into one OCI layout, as skopeo users do), alternating the
//! tools, and prints median wall time, peak memory and the ratios. A second case runs both
//! through the fault proxy (a throttled link whose connections drop at random offsets).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use faultproxy::{Faults, Proxy};

use crate::{Measured, measure, root, sh};

struct Options {
    runs: usize,
    images: usize,
    mib_per_image: usize,
    shared_mib: usize,
    bad_network: bool,
    serve_only: bool,
    fanout: Fanout,
    small_images: usize,
    small_only: bool,
    archive_only: bool,
    bigblob: bool,
    bigblob_only: bool,
    bigblob_gib: f64,
    bindelta_only: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        runs: 3,
        images: 12,
        mib_per_image: 24,
        shared_mib: 64,
        bad_network: true,
        serve_only: false,
        fanout: Fanout::Also,
        small_images: 400,
        small_only: false,
        archive_only: false,
        bigblob: true,
        bigblob_only: false,
        bigblob_gib: 4.0,
        bindelta_only: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--no-bad-network" {
            o.bad_network = false;
            continue;
        }
        if flag == "--serve-only" {
            o.serve_only = true;
            continue;
        }
        if let Some(f) = Fanout::flag(flag) {
            o.fanout = f;
            continue;
        }
        if flag == "--archive-only" {
            o.archive_only = true;
            continue;
        }
        if flag == "--bindelta-only" {
            o.bindelta_only = true;
            continue;
        }
        if flag == "--small-only" {
            o.small_only = true;
            continue;
        }
        if let Some(only) = bigblob_flag(flag, &mut it, &mut o)? {
            o.bigblob_only |= only;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let n: usize = value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))?;
        match flag.as_str() {
            "--runs" => o.runs = n.max(1),
            "--images" => o.images = n.max(1),
            "--mib-per-image" => o.mib_per_image = n.max(1),
            "--shared-mib" => o.shared_mib = n.max(1),
            "--small-images" => o.small_images = n,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

/// `--bigblob-only`, `--no-bigblob`, `--bigblob-gib N`: Some(is it --bigblob-only) when `flag` is
/// one of them.
fn bigblob_flag<'a>(
    flag: &str,
    it: &mut impl Iterator<Item = &'a String>,
    o: &mut Options,
) -> Result<Option<bool>, String> {
    match flag {
        "--bigblob-only" => Ok(Some(true)),
        "--no-bigblob" => {
            o.bigblob = false;
            Ok(Some(false))
        }
        "--bigblob-gib" => {
            let v = it.next().ok_or("--bigblob-gib needs a value")?;
            o.bigblob_gib = v
                .parse::<f64>()
                .ok()
                .filter(|g| *g > 0.0)
                .ok_or(format!("--bigblob-gib: not a size in GiB: {v}"))?;
            Ok(Some(false))
        }
        _ => Ok(None),
    }
}

/// Whether the fan-out case runs: `--fanout-only`, `--no-fanout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fanout {
    Also,
    Only,
    Not,
}

impl Fanout {
    fn flag(flag: &str) -> Option<Fanout> {
        match flag {
            "--fanout-only" => Some(Fanout::Only),
            "--no-fanout" => Some(Fanout::Not),
            _ => None,
        }
    }
}

/// A folder removed on drop.
pub(crate) fn dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ferry-bench-{name}-"))
        .tempdir()
        .expect("a temporary folder")
}

/// A local docker-registry, stopped on drop.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub(crate) state: tempfile::TempDir,
}

impl Registry {
    /// Starts an empty one (scripts/registry.sh).
    pub fn start() -> Result<Registry, String> {
        let state = dir("registry");
        let addr = sh(Command::new(root().join("scripts/registry.sh"))
            .arg("start")
            .arg(state.path()))?
        .trim()
        .to_owned();
        Ok(Registry { addr, state })
    }

    /// The CPU time the registry process has used so far (/proc/PID/stat utime + stime), to
    /// show how much of a run's wall time the peer itself needs on this machine.
    pub fn cpu(&self) -> Option<Duration> {
        let pid = std::fs::read_to_string(self.state.path().join("pid")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok()?;
        // Fields after the command name (which may hold spaces) start at `state`, field 3.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Some(Duration::from_millis(ticks * 1000 / hz))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/registry.sh"))
            .arg("stop")
            .arg(self.state.path())
            .output();
    }
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub(crate) fn dir_bytes(dir: &Path) -> u64 {
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

/// One tool's run: its measurement, whether it finished, and (ferry) its JSON report.
pub(crate) struct Outcome {
    pub(crate) m: Measured,
    pub(crate) ok: Result<(), String>,
    report: String,
}

fn run_ferry(ferry: &Path, refs: &[String], extra: &[&str]) -> Outcome {
    let out = dir("ferry");
    let mut cmd = Command::new(ferry);
    cmd.args(["bundle", "-q", "--json", "-o"])
        .arg(out.path().join("bundle"))
        .args(extra)
        .args(refs);
    let (m, report, ok) = measure(&mut cmd);
    Outcome { m, ok, report }
}

/// A number from ferry's JSON report totals, found without a JSON parser.
fn total(report: &str, key: &str) -> String {
    let needle = format!("\"{key}\": ");
    let totals = report.split("\"totals\"").nth(1).unwrap_or_default();
    totals
        .split(&needle)
        .nth(1)
        .and_then(|rest| rest.split([',', '\n', '}']).next())
        .unwrap_or("?")
        .trim()
        .to_owned()
}

/// Copies `refs` one at a time into one OCI layout with skopeo, as skopeo users do.
pub(crate) fn run_skopeo(refs: &[String], extra: &[&str]) -> Outcome {
    // skopeo remembers blobs it saw in a cache that would favour later runs: start clean.
    let _ = std::fs::remove_file("/var/lib/containers/cache/blob-info-cache-v1.boltdb");
    let out = dir("skopeo");
    let dest = out.path().join("layout");
    let mut sum = Measured::default();
    for r in refs {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--src-tls-verify=false"])
            .args(extra)
            .arg(format!("docker://{r}"))
            .arg(format!("oci:{}:{r}", dest.display()));
        let (m, _, ok) = measure(&mut cmd);
        sum.wall += m.wall;
        sum.cpu += m.cpu;
        sum.peak_rss = sum.peak_rss.max(m.peak_rss);
        if ok.is_err() {
            return Outcome {
                m: sum,
                ok,
                report: String::new(),
            };
        }
    }
    Outcome {
        m: sum,
        ok: Ok(()),
        report: String::new(),
    }
}

pub(crate) fn median(mut v: Vec<Measured>) -> Measured {
    v.sort_by_key(|m| m.wall);
    let wall = v[v.len() / 2].wall;
    let peak_rss = v.iter().map(|m| m.peak_rss).max().unwrap_or(0);
    let cpu = v[v.len() / 2].cpu;
    Measured {
        wall,
        peak_rss,
        cpu,
    }
}

/// Installs what the benchmarks need and builds ferry in release mode; returns its path.
pub fn release_ferry() -> Result<std::path::PathBuf, String> {
    sh(&mut Command::new(root().join("scripts/install-deps.sh")))?;
    eprintln!("building ferry (release)...");
    sh(Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "ferry"])
        .current_dir(root()))?;
    Ok(root().join("target/release/ferry"))
}

/// The bench images in a local registry: made by testdata/make_fixtures.py (not by ferry),
/// seeded with skopeo.
pub struct Setup {
    /// Scratch space (the fixtures layout is `fixtures/` in it).
    pub work: tempfile::TempDir,
    /// The registry (stopped on drop).
    pub registry: Registry,
    /// `bench/appNN:1.0`.
    pub names: Vec<String>,
    /// The same with the registry's address.
    pub refs: Vec<String>,
}

impl Setup {
    /// Makes `images` images of `mib_per_image` MiB plus a shared `shared_mib` MiB layer.
    pub fn start(images: usize, mib_per_image: usize, shared_mib: usize) -> Result<Setup, String> {
        let work = dir("work");
        let layout = work.path().join("fixtures");
        eprintln!(
            "making {images} images of {mib_per_image} MiB each plus a shared {shared_mib} MiB base layer (random, incompressible)..."
        );
        sh(Command::new("python3")
            .arg(root().join("testdata/make_fixtures.py"))
            .arg(&layout)
            .args(["--bench", &images.to_string()])
            .env("FERRY_BENCH_MIB_PER_IMAGE", mib_per_image.to_string())
            .env("FERRY_BENCH_SHARED_MIB", shared_mib.to_string()))?;
        let registry = Registry::start()?;
        eprintln!("seeding the registry at {}...", registry.addr);
        sh(Command::new(root().join("scripts/seed-registry.sh"))
            .arg(&registry.addr)
            .arg(&layout))?;
        let names: Vec<String> = (0..images)
            .map(|i| format!("bench/app{i:02}:1.0"))
            .collect();
        let refs = names
            .iter()
            .map(|n| format!("{}/{n}", registry.addr))
            .collect();
        Ok(Setup {
            work,
            registry,
            names,
            refs,
        })
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let ferry = release_ferry()?;
    if o.small_only {
        let registry = Registry::start()?;
        return crate::small::run(&ferry, &registry, o.small_images.max(1), o.runs);
    }
    if o.bigblob_only {
        return crate::bench_bigblob::run(&ferry, o.runs, o.bigblob_gib);
    }
    if o.bindelta_only {
        return crate::bench_bindelta::run(&ferry, o.runs);
    }
    let setup = Setup::start(o.images, o.mib_per_image, o.shared_mib)?;
    let (registry, names, refs) = (&setup.registry, &setup.names, &setup.refs);
    let layout = setup.work.path().join("fixtures");
    let unique = dir_bytes(&layout.join("blobs"));
    let serve_case =
        || crate::bench_serve::run(&ferry, &registry.addr, refs, names, o.runs, mib(unique));
    if o.serve_only {
        return serve_case();
    }
    let fanout_case = || crate::bench_fanout::run(&ferry, registry, refs, names, o.runs);
    if o.fanout == Fanout::Only {
        return fanout_case();
    }
    let archive_case = || crate::bench_archive::run(&ferry, refs, names, o.runs);
    if o.archive_only {
        return archive_case();
    }

    clean_link_case(&ferry, refs, &o, unique)?;
    if o.small_images > 0 {
        crate::small::run(&ferry, registry, o.small_images, o.runs)?;
    }

    serve_case()?;
    if o.fanout == Fanout::Also {
        fanout_case()?;
    }
    // Case 2: the bundle pushed into a fresh registry, ferry push against skopeo copy.
    crate::bench_push::run(&ferry, refs, names, o.runs, unique)?;
    archive_case()?;

    if o.bad_network {
        bad_network_case(&ferry, &registry.addr, names, unique)?;
    }
    if o.bigblob {
        crate::bench_bigblob::run(&ferry, o.runs, o.bigblob_gib)?;
    }
    crate::bench_bindelta::run(&ferry, o.runs)?;
    Ok(())
}

/// Case 1: a clean loopback link, ferry and skopeo alternating.
fn clean_link_case(ferry: &Path, refs: &[String], o: &Options, unique: u64) -> Result<(), String> {
    let (mut f_runs, mut s_runs) = (Vec::new(), Vec::new());
    for run in 1..=o.runs {
        let f = run_ferry(ferry, refs, &[]);
        f.ok.clone()?;
        eprintln!(
            "  run {run}: ferry  {:6.2} s  {:6.1} MiB peak",
            f.m.wall.as_secs_f64(),
            mib(f.m.peak_rss)
        );
        let s = run_skopeo(refs, &[]);
        s.ok.clone()?;
        eprintln!(
            "  run {run}: skopeo {:6.2} s  {:6.1} MiB peak",
            s.m.wall.as_secs_f64(),
            mib(s.m.peak_rss)
        );
        f_runs.push(f.m);
        s_runs.push(s.m);
    }
    let (f, s) = (median(f_runs), median(s_runs));
    println!();
    println!(
        "clean link: {} images, {:.0} MiB of unique blobs, local docker-registry on loopback, {} runs (median wall, max peak RSS)",
        o.images,
        mib(unique),
        o.runs
    );
    println!(
        "{:10} {:>10} {:>14} {:>12}",
        "tool", "wall (s)", "peak RSS (MiB)", "MiB/s"
    );
    for (name, m) in [("ferry", f), ("skopeo", s)] {
        let rate = mib(unique) / m.wall.as_secs_f64();
        println!(
            "{name:10} {:>10.2} {:>14.1} {rate:>12.1}",
            m.wall.as_secs_f64(),
            mib(m.peak_rss)
        );
    }
    println!(
        "ratio: ferry is {:.2}x faster than skopeo; ferry peak memory {:.1} MiB (target < 100 MiB)",
        s.wall.as_secs_f64() / f.wall.as_secs_f64(),
        mib(f.peak_rss)
    );
    Ok(())
}

/// Case 3: a throttled link (per connection) that drops connections at random offsets; the
/// same seeded sequence of drops for both tools.
fn bad_network_case(ferry: &Path, addr: &str, names: &[String], unique: u64) -> Result<(), String> {
    let faults = Faults {
        throttle: Some(48 << 20),
        cut_at_random: Some((8 << 20, 128 << 20, 7)),
        // Resets, not clean closes: skopeo retries a reset, but not a body that ends early.
        reset: true,
        ..Faults::default()
    };
    println!();
    println!(
        "bad network: {} MiB/s per connection, every connection reset after a random 8-128 MiB \
         (seeded); ferry --retries 10, skopeo --retry-times 10",
        48
    );
    println!(
        "{:10} {:>10} {:>16} {:>10}",
        "tool", "wall (s)", "MiB transferred", "finished"
    );
    let proxy = Proxy::start(addr, faults.clone());
    let via: Vec<String> = names
        .iter()
        .map(|n| format!("{}/{n}", proxy.addr))
        .collect();
    let f = run_ferry(ferry, &via, &["--retries", "10"]);
    let f_bytes = proxy.bytes_down();
    drop(proxy);
    let proxy = Proxy::start(addr, faults);
    let via: Vec<String> = names
        .iter()
        .map(|n| format!("{}/{n}", proxy.addr))
        .collect();
    let s = run_skopeo(&via, &["--retry-times", "10"]);
    let s_bytes = proxy.bytes_down();
    for (name, out, bytes) in [("ferry", &f, f_bytes), ("skopeo", &s, s_bytes)] {
        let finished = match &out.ok {
            Ok(()) => "yes".to_owned(),
            Err(e) => format!("no: {e}"),
        };
        println!(
            "{name:10} {:>10.2} {:>16.1} {finished:>10}",
            out.m.wall.as_secs_f64(),
            mib(bytes)
        );
    }
    println!(
        "ferry: {} retries, {} resumed downloads",
        total(&f.report, "retries"),
        total(&f.report, "resumes")
    );
    println!(
        "unique blob bytes: {:.1} MiB; ferry transferred {:.2}x of them, skopeo {:.2}x",
        mib(unique),
        f_bytes as f64 / unique as f64,
        s_bytes as f64 / unique as f64
    );
    Ok(())
}
