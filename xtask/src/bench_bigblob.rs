//! The big-blob case of `cargo xtask bench` (`--bigblob-only` runs it alone, `--bigblob-gib N`
//! sets the layer's size, default 4): one incompressible layer (random bytes in a tar, made by
//! python, pushed with curl) in a local docker-registry.
//!
//! 1. Hash speed on this CPU: SHA-256 and SHA-512 by sha2 and by ring (ferry uses ring).
//! 2. Clean link: `ferry bundle` of the image against `curl` of the blob into a file plus
//!    `sync`, alternating (target: ferry at most 1.0x).
//! 3. Capped link: the fault proxy caps each connection at 50 MB/s; `ferry bundle` against one
//!    curl stream through the same proxy (target: ferry at most 0.3x).
//! 4. `ferry verify` of a bundle holding the blob (target: at least 1.5 GB/s).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use faultproxy::{Faults, Proxy};

use crate::bench::{Registry, dir, median, mib};
use crate::{Measured, measure, sh};

/// The per-connection cap of the capped case, in bytes per second.
const CAP: u64 = 50_000_000;

/// Runs the case; `runs` applies to the clean link and to verify (the capped link runs once:
/// one capped stream of 4 GiB takes some 90 s).
pub fn run(ferry: &Path, runs: usize, gib: f64) -> Result<(), String> {
    let size = (gib * f64::from(1u32 << 30)) as u64;
    let work = dir("bigblob");
    check_space(work.path(), size)?;
    let registry = Registry::start()?;
    eprintln!("making a {gib} GiB layer of random bytes and pushing it...");
    let digest = push_layer(&registry.addr, work.path(), size)?;
    let image = format!("{}/bench/big:1.0", registry.addr);
    let url = format!("http://{}/v2/bench/big/blobs/{digest}", registry.addr);
    println!();
    println!(
        "big blob: one {:.0} MiB layer (random), local docker-registry on loopback, {runs} runs \
         (median wall, max peak RSS); the machine may be shared: compare the ratios",
        mib(size)
    );

    let verify_bundle = work.path().join("kept");
    let (mut f_runs, mut c_runs) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let out = work.path().join("ferry");
        let f = ferry_bundle(ferry, &image, &out)?;
        if run == 1 {
            std::fs::rename(&out, &verify_bundle).map_err(|e| e.to_string())?;
        } else {
            let _ = std::fs::remove_dir_all(&out);
        }
        let c = curl_and_sync(&url, &work.path().join("curl.bin"))?;
        eprintln!(
            "  run {run}: ferry {:6.2} s {:6.1} MiB peak; curl + sync {:6.2} s",
            f.wall.as_secs_f64(),
            mib(f.peak_rss),
            c.wall.as_secs_f64()
        );
        f_runs.push(f);
        c_runs.push(c);
    }
    let (f, c) = (median(f_runs), median(c_runs));
    let out = work.path().join("one-stream");
    let one = ferry_bundle_with(ferry, &image, &out, &["--range-parts", "1"])?;
    let _ = std::fs::remove_dir_all(&out);
    println!(
        "clean link: ferry {:.2} s ({:.0} MiB/s, {:.1} MiB peak RSS, {:.2} s CPU), curl + sync {:.2} s ({:.0} MiB/s): ferry/curl {:.2} (target <= 1.0)",
        f.wall.as_secs_f64(),
        mib(size) / f.wall.as_secs_f64(),
        mib(f.peak_rss),
        f.cpu.as_secs_f64(),
        c.wall.as_secs_f64(),
        mib(size) / c.wall.as_secs_f64(),
        f.wall.as_secs_f64() / c.wall.as_secs_f64()
    );
    println!(
        "  the same as one stream (--range-parts 1, one run): {:.2} s, {:.1} MiB peak RSS, {:.2} s CPU",
        one.wall.as_secs_f64(),
        mib(one.peak_rss),
        one.cpu.as_secs_f64()
    );

    capped_case(ferry, &registry.addr, &digest, work.path())?;
    verify_case(ferry, &verify_bundle, runs, size)?;
    // Last: its 64 MiB buffer would count in the peak RSS of every child forked after it.
    hash_speed();
    Ok(())
}

/// The capped link: each connection through the proxy at most [`CAP`] bytes per second.
fn capped_case(ferry: &Path, registry: &str, digest: &str, work: &Path) -> Result<(), String> {
    let proxy = Proxy::start(
        registry,
        Faults {
            throttle: Some(CAP),
            ..Faults::default()
        },
    );
    let out = work.join("capped");
    let f = ferry_bundle(ferry, &format!("{}/bench/big:1.0", proxy.addr), &out)?;
    let _ = std::fs::remove_dir_all(&out);
    let url = format!("http://{}/v2/bench/big/blobs/{digest}", proxy.addr);
    let c = curl_and_sync(&url, &work.join("capped.bin"))?;
    let opened = proxy
        .stats
        .max_open
        .load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "capped link ({} MB/s per connection): ferry {:.2} s ({:.1} MiB peak RSS, {opened} connections at most), one curl stream {:.2} s: ferry/curl {:.2} (target <= 0.3)",
        CAP / 1_000_000,
        f.wall.as_secs_f64(),
        mib(f.peak_rss),
        c.wall.as_secs_f64(),
        f.wall.as_secs_f64() / c.wall.as_secs_f64()
    );
    Ok(())
}

/// `ferry verify` of the bundle holding the blob: GB/s over the blob's bytes, with the blob in
/// the page cache (as right after bundling it; a cold read measures the disk).
fn verify_case(ferry: &Path, bundle: &Path, runs: usize, size: u64) -> Result<(), String> {
    sh(Command::new("sh").arg("-c").arg(format!(
        "cat '{}'/blobs/sha256/* > /dev/null",
        bundle.display()
    )))?;
    let mut v_runs = Vec::new();
    for _ in 0..runs {
        let (m, _, ok) = measure(Command::new(ferry).arg("verify").arg(bundle));
        ok?;
        v_runs.push(m);
    }
    let v = median(v_runs);
    println!(
        "verify (blob in the page cache): {:.2} s, {:.2} GB/s (target >= 1.5; {:.2} s CPU), {:.1} MiB peak RSS",
        v.wall.as_secs_f64(),
        size as f64 / v.wall.as_secs_f64() / 1e9,
        v.cpu.as_secs_f64(),
        mib(v.peak_rss)
    );
    Ok(())
}

fn ferry_bundle(ferry: &Path, image: &str, out: &Path) -> Result<Measured, String> {
    ferry_bundle_with(ferry, image, out, &[])
}

fn ferry_bundle_with(
    ferry: &Path,
    image: &str,
    out: &Path,
    extra: &[&str],
) -> Result<Measured, String> {
    let (m, _, ok) = measure(
        Command::new(ferry)
            .args(["bundle", "-q", "-o"])
            .arg(out)
            .args(extra)
            .arg(image),
    );
    ok.map(|()| m)
}

/// curl of the blob into a file, then `sync FILE` (ferry fsyncs a blob before it lands).
fn curl_and_sync(url: &str, file: &Path) -> Result<Measured, String> {
    let f = file.display();
    let (m, _, ok) = measure(
        Command::new("sh")
            .arg("-c")
            .arg(format!("curl -sf -o '{f}' '{url}' && sync '{f}'")),
    );
    let _ = std::fs::remove_file(file);
    ok.map(|()| m)
}

/// The registry's storage, ferry's bundle, a curl copy and one more: 4x the layer, plus 1 GiB.
fn check_space(dir: &Path, size: u64) -> Result<(), String> {
    let path = std::ffi::CString::new(dir.to_str().ok_or("a UTF-8 temp dir")?).unwrap();
    // SAFETY: statvfs fills a plain struct for a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Ok(());
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    let need = 4 * size + (1 << 30);
    if free < need {
        return Err(format!(
            "the big-blob case needs {:.1} GiB free in {} ({:.1} GiB are): pass --bigblob-gib N \
             with a smaller N, point TMPDIR elsewhere, or --no-bigblob",
            need as f64 / f64::from(1u32 << 30),
            dir.display(),
            free as f64 / f64::from(1u32 << 30)
        ));
    }
    Ok(())
}

/// Makes a tar of `size` random bytes (python, streaming from /dev/urandom), pushes it with
/// curl as the one layer of `bench/big:1.0` with a config and manifest, removes the local
/// copy. Returns the layer's digest (by sha256sum).
fn push_layer(registry: &str, work: &Path, size: u64) -> Result<String, String> {
    let tar = work.join("layer.tar");
    sh(Command::new("python3")
        .arg("-c")
        .arg(MAKE_TAR)
        .arg(&tar)
        .arg(size.to_string()))?;
    let layer = push_blob(registry, &tar)?;
    let _ = std::fs::remove_file(&tar);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        layer.0
    );
    let config_file = work.join("config.json");
    std::fs::write(&config_file, &config).map_err(|e| e.to_string())?;
    let config = push_blob(registry, &config_file)?;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        config.0, config.1, layer.0, layer.1
    );
    let manifest_file = work.join("manifest.json");
    std::fs::write(&manifest_file, manifest).map_err(|e| e.to_string())?;
    sh(Command::new("curl")
        .args(["-sf", "-X", "PUT", "-H"])
        .arg("Content-Type: application/vnd.oci.image.manifest.v1+json")
        .arg("--data-binary")
        .arg(format!("@{}", manifest_file.display()))
        .arg(format!("http://{registry}/v2/bench/big/manifests/1.0")))?;
    Ok(layer.0)
}

/// A streaming tar of one file of N random bytes: big.bin.
const MAKE_TAR: &str = r#"
import sys, tarfile
out, size = sys.argv[1], int(sys.argv[2])
with open("/dev/urandom", "rb") as src, tarfile.open(out, "w", copybufsize=1 << 20) as t:
    info = tarfile.TarInfo("big.bin")
    info.size = size
    info.mode = 0o644
    t.addfile(info, src)
"#;

/// Uploads a file as a blob of `bench/big` (monolithic: POST, then PUT with the digest).
/// Returns its digest and size.
fn push_blob(registry: &str, file: &Path) -> Result<(String, u64), String> {
    let sum = sh(Command::new("sha256sum").arg(file))?;
    let digest = format!(
        "sha256:{}",
        sum.split_whitespace().next().unwrap_or_default()
    );
    let size = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    let headers = sh(Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "-D", "-", "-X", "POST"])
        .arg(format!("http://{registry}/v2/bench/big/blobs/uploads/")))?;
    let location = headers
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_owned())
        })
        .ok_or("the registry gave no upload location")?;
    let location = match location.starts_with('/') {
        true => format!("http://{registry}{location}"),
        false => location,
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    sh(Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-H",
            "Content-Type: application/octet-stream",
            "-T",
        ])
        .arg(file)
        .arg(format!("{location}{sep}digest={digest}")))?;
    Ok((digest, size))
}

/// SHA-256 and SHA-512 by sha2 and by ring: GB/s of CPU time, best of 3 over 256 MiB.
fn hash_speed() {
    let buf = vec![0x5au8; 64 << 20];
    let passes = 4;
    let best = |f: &dyn Fn()| {
        (0..3)
            .map(|_| {
                let t = thread_cpu();
                f();
                (passes * buf.len()) as f64 / (thread_cpu() - t).as_secs_f64().max(1e-9) / 1e9
            })
            .fold(0.0, f64::max)
    };
    use sha2::Digest as _;
    let sha2_256 = best(&|| {
        let mut h = sha2::Sha256::new();
        (0..passes).for_each(|_| h.update(&buf));
        std::hint::black_box(h.finalize());
    });
    let ring_256 = best(&|| {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        (0..passes).for_each(|_| h.update(&buf));
        std::hint::black_box(h.finish());
    });
    let sha2_512 = best(&|| {
        let mut h = sha2::Sha512::new();
        (0..passes).for_each(|_| h.update(&buf));
        std::hint::black_box(h.finalize());
    });
    let ring_512 = best(&|| {
        let mut h = ring::digest::Context::new(&ring::digest::SHA512);
        (0..passes).for_each(|_| h.update(&buf));
        std::hint::black_box(h.finish());
    });
    println!(
        "hash speed on this CPU (GB/s of CPU time, best of 3): SHA-256 sha2 {sha2_256:.2}, ring {ring_256:.2}; SHA-512 sha2 {sha2_512:.2}, ring {ring_512:.2} (ferry hashes with ring)"
    );
}

/// This thread's CPU time: hash speed unaffected by other processes' turns on the CPU.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills a plain struct.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
