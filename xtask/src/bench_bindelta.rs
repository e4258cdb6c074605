//! The binary-delta case of `cargo xtask bench` (`--bindelta-only` runs it alone): v1 and v2
//! of an image of a real Debian rootfs (this machine's /usr/bin programs and dpkg's status,
//! made by tests/it/data/rootfs_image.py, gzip by zlib; v2 changes 12 programs and the status),
//! pushed with skopeo, and the same two images built by buildah (gzip by Go's compressor, as
//! registries hold most layers). Measured in the same run, for each:
//! - the `bundle --since v1 --binary-deltas` delta against the layer-level delta
//!   (`bundle --since v1`): target <= 5% (stretch 1%), and against the content-delta reference
//!   `zstd --patch-from=v1.tar v2.tar --long=31` of the plain tars;
//! - building: the extra time `--binary-deltas` takes over the layer-level delta, as MB/s of
//!   new layer (target >= 50) by the clock and per CPU-second (the machine is shared: the CPU
//!   figures hold under load), next to `zstd --patch-from` on the plain tars (the peer);
//! - `ferry apply` of the binary delta as MB/s of rebuilt layer (target >= 100), next to
//!   `zstd -d --patch-from` (the peer).

use std::path::Path;
use std::process::Command;

use crate::bench::{Registry, dir, median, mib};
use crate::{Measured, measure, root, sh};

/// Bytes of /usr/bin programs in the image.
const ROOTFS_BYTES: u64 = 120_000_000;

fn timed(cmd: &mut Command) -> Result<Measured, String> {
    let (m, _, ok) = measure(cmd);
    ok.map(|()| m)
}

fn blob_bytes(bundle: &Path) -> u64 {
    crate::bench::dir_bytes(&bundle.join("blobs"))
}

/// The single layer of the image in an OCI layout made by the script: (path, size).
fn layer_of(oci: &Path) -> Result<std::path::PathBuf, String> {
    let read = |p: &Path| -> Result<serde_json::Value, String> {
        let bytes = std::fs::read(p).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let blob = |d: &serde_json::Value| {
        let d = d.as_str().unwrap_or_default();
        oci.join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap_or(d))
    };
    let index = read(&oci.join("index.json"))?;
    let manifest = read(&blob(&index["manifests"][0]["digest"]))?;
    Ok(blob(&manifest["layers"][0]["digest"]))
}

/// Pushes v1 and v2 of the image of `oci1`/`oci2` as built by buildah (gzip by Go's
/// compressor, as registries hold most layers) to `image:1` and `image:2`.
fn buildah_push(w: &Path, image: &str) -> Result<(), String> {
    let b = |args: &[&str]| -> Result<String, String> {
        let out = sh(Command::new("buildah")
            .arg("--root")
            .arg(w.join("buildah-root"))
            .arg("--runroot")
            .arg(w.join("buildah-run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("TMPDIR", w))?;
        Ok(out.trim().to_owned())
    };
    for v in ["1", "2"] {
        let rootfs = w.join(format!("rootfs{v}"));
        std::fs::create_dir_all(&rootfs).map_err(|e| e.to_string())?;
        sh(Command::new("tar")
            .arg("-xzf")
            .arg(layer_of(&w.join(format!("oci{v}")))?)
            .arg("-C")
            .arg(&rootfs))?;
        let ctr = b(&["from", "scratch"])?;
        b(&["copy", &ctr, rootfs.to_str().unwrap_or_default(), "/"])?;
        b(&["commit", "-q", &ctr, &format!("built{v}")])?;
        b(&[
            "push",
            "-q",
            "--tls-verify=false",
            &format!("built{v}"),
            &format!("docker://{image}:{v}"),
        ])?;
        b(&["rm", &ctr])?;
        let _ = std::fs::remove_dir_all(&rootfs);
    }
    let _ = sh(Command::new("rm")
        .arg("-rf")
        .arg(w.join("buildah-root"))
        .arg(w.join("buildah-run")));
    Ok(())
}

/// The machine's 1-minute load average (shared machines: read the figures with it).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Runs the case.
pub fn run(ferry: &Path, runs: usize) -> Result<(), String> {
    let work = dir("bindelta");
    let w = work.path();
    let registry = Registry::start()?;
    eprintln!(
        "making v1 and v2 of a Debian rootfs image ({} MB of programs)...",
        ROOTFS_BYTES / 1_000_000
    );
    let mut tars = Vec::new();
    for v in ["1", "2"] {
        let oci = w.join(format!("oci{v}"));
        sh(Command::new("python3")
            .arg(root().join("tests/it/data/rootfs_image.py"))
            .arg(&oci)
            .args([v, &ROOTFS_BYTES.to_string()]))?;
        sh(Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{v}", oci.display()))
            .arg(format!("docker://{}/bench/debian:{v}", registry.addr)))?;
        let tar = w.join(format!("v{v}.tar"));
        sh(Command::new("sh").arg("-c").arg(format!(
            "gzip -dc '{}' > '{}'",
            layer_of(&oci)?.display(),
            tar.display()
        )))?;
        tars.push(tar);
    }
    eprintln!("building the same two images with buildah (gzip by Go's compressor)...");
    buildah_push(w, &format!("{}/bench/built", registry.addr))?;
    let peer = peer(w, &tars, runs)?;
    let tar_size = std::fs::metadata(&tars[1])
        .map_err(|e| e.to_string())?
        .len();
    println!();
    println!(
        "binary deltas: v2 of a Debian rootfs image ({:.1} MiB of tar; 12 programs and dpkg's status changed); {runs} runs (median); machine shared, load {} at the start",
        mib(tar_size),
        load()
    );
    println!(
        "  peer: zstd --patch-from of the tars {:.1} KiB, made in {:.2} s CPU, applied in {:.2} s CPU",
        peer.size as f64 / 1024.0,
        peer.make.cpu.as_secs_f64(),
        peer.apply.cpu.as_secs_f64()
    );
    for (what, repo) in [
        ("zlib gzip (python)", "debian"),
        ("Go gzip (buildah)", "built"),
    ] {
        let image = |v: &str| format!("{}/bench/{repo}:{v}", registry.addr);
        one_image(ferry, w, runs, what, &image, &peer)?;
    }
    println!("  (machine load at the end {})", load());
    Ok(())
}

/// `zstd --patch-from` of the plain tars: its size and its CPU time each way.
struct Peer {
    size: u64,
    make: Measured,
    apply: Measured,
}

fn peer(w: &Path, tars: &[std::path::PathBuf], runs: usize) -> Result<Peer, String> {
    let patch = w.join("peer.patch");
    let (mut make, mut apply) = (vec![], vec![]);
    for _ in 0..runs {
        make.push(timed(
            Command::new("zstd")
                .args(["-q", "-f", "--long=31", "-3"])
                .arg(format!("--patch-from={}", tars[0].display()))
                .arg(&tars[1])
                .arg("-o")
                .arg(&patch),
        )?);
        apply.push(timed(
            Command::new("zstd")
                .args(["-q", "-d", "-f", "--long=31"])
                .arg(format!("--patch-from={}", tars[0].display()))
                .arg(&patch)
                .arg("-o")
                .arg(w.join("peer.tar")),
        )?);
    }
    let size = std::fs::metadata(&patch).map_err(|e| e.to_string())?.len();
    let _ = std::fs::remove_file(w.join("peer.tar"));
    Ok(Peer {
        size,
        make: median(make),
        apply: median(apply),
    })
}

/// Bundles v1 as BASE, then v2 since BASE without and with --binary-deltas, applies the
/// binary delta onto a copy of BASE; prints the figures of one image.
fn one_image(
    ferry: &Path,
    w: &Path,
    runs: usize,
    what: &str,
    image: &dyn Fn(&str) -> String,
    peer: &Peer,
) -> Result<(), String> {
    let base = w.join("base");
    let _ = std::fs::remove_dir_all(&base);
    sh(Command::new(ferry)
        .args(["bundle", "-q", "-o"])
        .arg(&base)
        .arg(image("1")))?;
    let (mut plain, mut binary, mut apply) = (vec![], vec![], vec![]);
    let (mut layer_delta, mut binary_delta) = (0, 0);
    for run in 0..runs {
        let (d1, d2, applied) = (
            w.join(format!("plain{run}")),
            w.join(format!("binary{run}")),
            w.join(format!("applied{run}")),
        );
        plain.push(timed(
            Command::new(ferry)
                .args(["bundle", "-q", "-o"])
                .arg(&d1)
                .arg("--since")
                .arg(&base)
                .arg(image("2")),
        )?);
        binary.push(timed(
            Command::new(ferry)
                .args(["bundle", "-q", "-o"])
                .arg(&d2)
                .arg("--since")
                .arg(&base)
                .arg("--binary-deltas")
                .arg(image("2")),
        )?);
        layer_delta = blob_bytes(&d1);
        binary_delta = blob_bytes(&d2);
        sh(Command::new("cp").arg("-a").arg(&base).arg(&applied))?;
        apply.push(timed(
            Command::new(ferry).arg("apply").arg(&d2).arg(&applied),
        )?);
        for d in [&d1, &d2, &applied] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    let (plain, binary, apply) = (median(plain), median(binary), median(apply));
    let mb = |bytes: u64, secs: f64| bytes as f64 / 1e6 / secs.max(1e-9);
    // The layer-level delta is the layer plus its manifest and config: the layer's size.
    let layer_size = layer_delta;
    let build_wall = (binary.wall.as_secs_f64() - plain.wall.as_secs_f64()).max(1e-3);
    let build_cpu = (binary.cpu.as_secs_f64() - plain.cpu.as_secs_f64()).max(1e-3);
    let apply_cpu = apply.cpu.as_secs_f64();
    let size_ratio = binary_delta as f64 / layer_delta as f64;
    println!(
        "  {what}: delta {:.1} KiB vs layer-level {:.1} MiB: {:.2}% (target <= 5%, stretch 1%){}",
        binary_delta as f64 / 1024.0,
        mib(layer_delta),
        size_ratio * 100.0,
        if size_ratio <= 0.05 { "" } else { "  OVER" },
    );
    let build = mb(layer_size, build_wall);
    println!(
        "    build (extra time) {build:.1} MB/s of layer by the clock (target >= 50){}, {:.1} MB/s per CPU-second; {:.2} s CPU vs zstd --patch-from {:.2} s, ratio {:.1}; peak RSS {:.0} MiB",
        if build >= 50.0 { "" } else { "  UNDER" },
        mb(layer_size, build_cpu),
        build_cpu,
        peer.make.cpu.as_secs_f64(),
        build_cpu / peer.make.cpu.as_secs_f64().max(1e-3),
        mib(binary.peak_rss)
    );
    let applied = mb(layer_size, apply.wall.as_secs_f64());
    println!(
        "    apply {applied:.1} MB/s of layer by the clock (target >= 100){}, {:.1} MB/s per CPU-second; {apply_cpu:.2} s CPU vs zstd -d --patch-from {:.2} s, ratio {:.1}; peak RSS {:.0} MiB",
        if applied >= 100.0 { "" } else { "  UNDER" },
        mb(layer_size, apply_cpu),
        peer.apply.cpu.as_secs_f64(),
        apply_cpu / peer.apply.cpu.as_secs_f64().max(1e-3),
        mib(apply.peak_rss)
    );
    Ok(())
}
