//! The binary-delta case of `cargo xtask bench` (`--bindelta-only` runs it alone): v1 and v2
//! of an image of a real Debian rootfs (this machine's /usr/bin programs and dpkg's status,
//! made by tests/it/data/rootfs_image.py, gzip by zlib; v2 changes 12 programs and the status),
//! pushed with skopeo. Measured in the same run:
//! - the `bundle --since v1 --binary-deltas` delta against the layer-level delta
//!   (`bundle --since v1`): target <= 5% (stretch 1%), and against the content-delta reference
//!   `zstd --patch-from=v1.tar v2.tar --long=31` of the plain tars;
//! - building: the extra time `--binary-deltas` takes over the layer-level delta, as MB/s of
//!   new layer (target >= 50), next to `zstd --patch-from` on the plain tars (the peer);
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
    let layer_size = std::fs::metadata(layer_of(&w.join("oci2"))?)
        .map_err(|e| e.to_string())?
        .len();
    let tar_size = std::fs::metadata(&tars[1])
        .map_err(|e| e.to_string())?
        .len();
    let image = |v: &str| format!("{}/bench/debian:{v}", registry.addr);
    let base = w.join("base");
    sh(Command::new(ferry)
        .args(["bundle", "-q", "-o"])
        .arg(&base)
        .arg(image("1")))?;

    let (mut plain, mut binary, mut apply, mut peer_make, mut peer_apply) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut layer_delta, mut binary_delta, mut peer_delta) = (0, 0, 0);
    let patch = w.join("peer.patch");
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
        peer_make.push(timed(
            Command::new("zstd")
                .args(["-q", "-f", "--long=31", "-3"])
                .arg(format!("--patch-from={}", tars[0].display()))
                .arg(&tars[1])
                .arg("-o")
                .arg(&patch),
        )?);
        peer_delta = std::fs::metadata(&patch).map_err(|e| e.to_string())?.len();
        peer_apply.push(timed(
            Command::new("zstd")
                .args(["-q", "-d", "-f", "--long=31"])
                .arg(format!("--patch-from={}", tars[0].display()))
                .arg(&patch)
                .arg("-o")
                .arg(w.join("peer.tar")),
        )?);
        for d in [&d1, &d2, &applied] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    let (plain, binary, apply) = (median(plain), median(binary), median(apply));
    let (peer_make, peer_apply) = (median(peer_make), median(peer_apply));
    let mb = |bytes: u64, secs: f64| bytes as f64 / 1e6 / secs.max(1e-9);
    let build_secs = (binary.wall.as_secs_f64() - plain.wall.as_secs_f64()).max(1e-3);
    let size_ratio = binary_delta as f64 / layer_delta as f64;
    println!();
    println!(
        "binary deltas: a {:.1} MiB gzip layer ({:.1} MiB of tar), 12 programs and dpkg's status changed; {runs} runs (median); machine shared",
        mib(layer_size),
        mib(tar_size)
    );
    println!(
        "  delta size                         binary {:.1} KiB vs layer-level {:.1} MiB: {:.2}% (target <= 5%, stretch 1%){}; zstd --patch-from of the tars {:.1} KiB",
        binary_delta as f64 / 1024.0,
        mib(layer_delta),
        size_ratio * 100.0,
        if size_ratio <= 0.05 { "" } else { "  OVER" },
        peer_delta as f64 / 1024.0
    );
    let build = mb(layer_size, build_secs);
    println!(
        "  build (--binary-deltas extra time) {build:.1} MB/s of layer (target >= 50){}; {:.2} s vs zstd --patch-from {:.2} s, ratio {:.2}; peak RSS {:.0} MiB",
        if build >= 50.0 { "" } else { "  UNDER" },
        build_secs,
        peer_make.wall.as_secs_f64(),
        build_secs / peer_make.wall.as_secs_f64(),
        mib(binary.peak_rss)
    );
    let applied = mb(layer_size, apply.wall.as_secs_f64());
    println!(
        "  apply                              {applied:.1} MB/s of layer (target >= 100){}; {:.2} s vs zstd -d --patch-from {:.2} s, ratio {:.2}; peak RSS {:.0} MiB",
        if applied >= 100.0 { "" } else { "  UNDER" },
        apply.wall.as_secs_f64(),
        peer_apply.wall.as_secs_f64(),
        apply.wall.as_secs_f64() / peer_apply.wall.as_secs_f64(),
        mib(apply.peak_rss)
    );
    Ok(())
}
