//! The archive case of `cargo xtask bench` (`--archive-only` runs it alone): the bench set
//! bundled once, then, alternating with the peer in the same run (medians, ratios printed):
//! - `ferry export --oci-archive x.tar.zst` against `tar -c DIR | zstd -T0 -3` (target <= 1.2;
//!   ferry's time includes the fsync before its rename, the peer writes without one), and
//!   against the same pipeline followed by `sync FILE`, the same durability: the machine's limit
//!   for an archive that survives a power cut;
//! - `ferry verify x.tar.zst` against `zstd -dc x.tar.zst | sha256sum` (target <= 1.2);
//! - skopeo pulling every image from `ferry serve x.tar.zst` against from `ferry serve DIR`
//!   (target <= 1.15);
//! - `ferry ls` of a 1 GiB `.tar.zst` (4 images of 256 MiB; target < 0.3 s).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::bench::{Setup, dir, median};
use crate::bench_serve::{free_port, pull, stop, wait_ready};
use crate::{Measured, measure, sh};

fn secs(m: &Measured) -> f64 {
    m.wall.as_secs_f64()
}

/// Wall times and their ratio, and CPU (user + system) where both sides measured it: on a
/// loaded machine the CPU ratio says more than the wall ratio.
fn ratio_line(what: &str, ferry: &Measured, peer: &Measured, target: f64) {
    let r = secs(ferry) / secs(peer);
    let cpu = if peer.cpu.is_zero() {
        String::new()
    } else {
        format!(
            "; CPU {:.2} s vs {:.2} s, ratio {:.2}",
            ferry.cpu.as_secs_f64(),
            peer.cpu.as_secs_f64(),
            ferry.cpu.as_secs_f64() / peer.cpu.as_secs_f64()
        )
    };
    println!(
        "  {what:<34} ferry {:6.2} s, peer {:6.2} s, ratio {r:.2} (target <= {target}){}{cpu}",
        secs(ferry),
        secs(peer),
        if r <= target { "" } else { "  OVER" }
    );
}

fn timed(cmd: &mut Command) -> Result<Measured, String> {
    let (m, _, ok) = measure(cmd);
    ok.map(|()| m)
}

fn shell(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// Runs the case over the bench set already in the registry (`refs`, `names`).
pub fn run(ferry: &Path, refs: &[String], names: &[String], runs: usize) -> Result<(), String> {
    let work = dir("archive");
    let bundle = work.path().join("bundle");
    eprintln!("bundling the bench set for the archive case...");
    sh(Command::new(ferry)
        .args(["bundle", "-q", "-o"])
        .arg(&bundle)
        .args(refs))?;
    let zst = work.path().join("x.tar.zst");
    let peer = work.path().join("peer.tar.zst");
    let (mut fe, mut pe, mut fv, mut pv) = (vec![], vec![], vec![], vec![]);
    let mut durable = vec![];
    for _ in 0..runs {
        let _ = std::fs::remove_file(&zst);
        fe.push(timed(
            Command::new(ferry)
                .arg("export")
                .arg(&bundle)
                .arg("--oci-archive")
                .arg(&zst),
        )?);
        pe.push(timed(&mut shell(&format!(
            "tar -C '{}' -cf - . | zstd -T0 -3 -q -f -o '{}'",
            bundle.display(),
            peer.display()
        )))?);
        durable.push(timed(&mut shell(&format!(
            "tar -C '{0}' -cf - . | zstd -T0 -3 -q -f -o '{1}' && sync '{1}'",
            bundle.display(),
            peer.display()
        )))?);
        fv.push(timed(Command::new(ferry).arg("verify").arg(&zst))?);
        pv.push(timed(&mut shell(&format!(
            "zstd -dc '{}' | sha256sum",
            zst.display()
        )))?);
    }
    let size = std::fs::metadata(&zst).map_or(0, |m| m.len());
    println!();
    println!(
        "archive: the bench set as one .tar.zst ({:.0} MiB), {runs} runs (median); machine shared",
        crate::bench::mib(size)
    );
    let fe = median(fe);
    ratio_line("export vs tar | zstd -T0 -3", &fe, &median(pe), 1.2);
    ratio_line("export vs the same, then sync", &fe, &median(durable), 1.2);
    ratio_line(
        "verify vs zstd -dc | sha256sum",
        &median(fv),
        &median(pv),
        1.2,
    );
    serve_case(ferry, &bundle, &zst, names, runs)?;
    ls_case(ferry, runs)
}

/// skopeo pulls every image from `ferry serve x.tar.zst` and from `ferry serve DIR`.
fn serve_case(
    ferry: &Path,
    bundle: &Path,
    zst: &Path,
    names: &[String],
    runs: usize,
) -> Result<(), String> {
    let pulls = tempfile::tempdir().map_err(|e| e.to_string())?;
    let pull_all = |served: &Path| -> Result<Measured, String> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut server = Command::new(ferry)
            .arg("serve")
            .arg(served)
            .args(["--addr", &addr])
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start ferry serve: {e}"))?;
        wait_ready(&addr)?;
        let mut wall = Duration::ZERO;
        for (i, image) in names.iter().enumerate() {
            wall += pull(&addr, image, &pulls.path().join(i.to_string())).wall;
        }
        stop(&mut server);
        Ok(Measured {
            wall,
            peak_rss: 0,
            cpu: Duration::ZERO,
        })
    };
    let (mut z, mut f) = (vec![], vec![]);
    for _ in 0..runs {
        z.push(pull_all(zst)?);
        f.push(pull_all(bundle)?);
    }
    ratio_line(
        "serve .tar.zst vs serve folder",
        &median(z),
        &median(f),
        1.15,
    );
    Ok(())
}

/// `ferry ls` of a 1 GiB .tar.zst (its own images: 4 of 256 MiB).
fn ls_case(ferry: &Path, runs: usize) -> Result<(), String> {
    let setup = Setup::start(4, 256, 1)?;
    let work = dir("ls");
    let bundle = work.path().join("bundle");
    sh(Command::new(ferry)
        .args(["bundle", "-q", "-o"])
        .arg(&bundle)
        .args(&setup.refs))?;
    let zst = work.path().join("big.tar.zst");
    sh(Command::new(ferry)
        .arg("export")
        .arg(&bundle)
        .arg("--oci-archive")
        .arg(&zst))?;
    let mut ls = Vec::new();
    for _ in 0..runs.max(3) {
        ls.push(timed(Command::new(ferry).arg("ls").arg(&zst))?);
    }
    let m = median(ls);
    let size = std::fs::metadata(&zst).map_or(0, |m| m.len());
    println!(
        "  ls of a {:.0} MiB .tar.zst:            {:6.3} s (target < 0.3 s){}",
        crate::bench::mib(size),
        secs(&m),
        if secs(&m) < 0.3 { "" } else { "  OVER" }
    );
    Ok(())
}
