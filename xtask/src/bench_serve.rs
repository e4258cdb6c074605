//! The serve case of `cargo xtask bench`: skopeo pulls a large image from `ferry serve` and
//! from docker-registry serving the same image, alternating, same run; then the boot cost of
//! `restore.sh --mirror` against an import with `restore.sh`, for the same bundle, into a
//! private containerd.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Measured, measure, root, sh};

pub(crate) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Waits (30 s at most) until `addr` answers `/v2/`.
pub(crate) fn wait_ready(addr: &str) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let ok = Command::new("curl")
            .args(["-fs", "-o", "/dev/null", &format!("http://{addr}/v2/")])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("nothing answers on {addr}"))
}

pub(crate) fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

pub(crate) fn stop(child: &mut Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

pub(crate) fn pull(from: &str, image: &str, out: &Path) -> Measured {
    let _ = std::fs::remove_dir_all(out);
    let _ = std::fs::remove_file("/var/lib/containers/cache/blob-info-cache-v1.boltdb");
    let (m, _, ok) = measure(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{from}/{image}"),
        &format!("dir:{}", out.display()),
    ]));
    if let Err(e) = ok {
        eprintln!("  skopeo copy from {from} failed: {e}");
    }
    m
}

/// Runs the serve case: bundles `refs` (the images `names` of `registry`), serves the bundle.
pub fn run(
    ferry: &Path,
    registry: &str,
    refs: &[String],
    names: &[String],
    runs: usize,
    mib_unique: f64,
) -> Result<(), String> {
    let keep = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bundle = &keep.path().join("bundle");
    eprintln!("bundling the images for the serve case...");
    sh(Command::new(ferry)
        .args(["bundle", "-q", "-o"])
        .arg(bundle)
        .args(refs))?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut server = Command::new(ferry)
        .arg("serve")
        .arg(bundle)
        .args(["--addr", &addr])
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start ferry serve: {e}"))?;
    wait_ready(&addr)?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = work.path().join("pulled");
    let image = &names[0];
    let (mut f, mut r) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        f.push(pull(&addr, image, &out).wall);
        r.push(pull(registry, image, &out).wall);
    }
    let size = crate::bench::dir_bytes(&out);
    let rss = peak_rss_mib(server.id());
    stop(&mut server);
    f.sort();
    r.sort();
    let (fm, rm) = (f[f.len() / 2], r[r.len() / 2]);
    println!();
    println!(
        "serve: skopeo copy of {image} ({:.0} MiB) to dir:, {runs} runs (median)",
        size as f64 / (1024.0 * 1024.0)
    );
    println!("  from ferry serve:      {:6.2} s", fm.as_secs_f64());
    println!("  from docker-registry:  {:6.2} s", rm.as_secs_f64());
    println!(
        "  ratio ferry/registry:  {:.2} (target <= 1.0); ferry serve peak RSS {rss:.1} MiB",
        fm.as_secs_f64() / rm.as_secs_f64()
    );
    boot_cost(ferry, bundle, names.len(), mib_unique)
}

/// restore.sh (import) against restore.sh --mirror, each into a fresh private containerd.
/// The mirror runs this `ferry` (FERRY_BIN): a release build is no static one that
/// `--with-binary` would place.
fn boot_cost(ferry: &Path, bundle: &Path, images: usize, mib_unique: f64) -> Result<(), String> {
    let script = bundle.join("restore.sh");
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let socket = sh(Command::new(root().join("scripts/containerd.sh"))
        .arg("start")
        .arg(state.path()))?
    .trim()
    .to_owned();
    let (import, _, ok) = measure(Command::new(&script).env("CONTAINERD_ADDRESS", &socket));
    let _ = sh(Command::new(root().join("scripts/containerd.sh"))
        .arg("stop")
        .arg(state.path()));
    ok.map_err(|e| format!("restore.sh: {e}"))?;
    let node = tempfile::tempdir().map_err(|e| e.to_string())?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let (mirror, _, ok) = measure(
        Command::new(&script)
            .arg("--mirror")
            .env("FERRY_BIN", ferry)
            .env("FERRY_MIRROR_ADDR", &addr)
            .env("FERRY_HOSTS_DIR", node.path().join("certs.d"))
            .env("FERRY_REGISTRIES_CONF", node.path().join("ferry.conf"))
            .env("FERRY_CONTAINERD_CONFIG", node.path().join("config.toml"))
            .env("FERRY_SERVICE", "background")
            .env("FERRY_STATE_DIR", node.path()),
    );
    if let Ok(pid) = std::fs::read_to_string(node.path().join("serve.pid"))
        && let Ok(pid) = pid.trim().parse::<i32>()
    {
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    ok.map_err(|e| format!("restore.sh --mirror: {e}"))?;
    println!();
    println!(
        "boot cost, {images} images, {mib_unique:.0} MiB: restore.sh (import) against restore.sh --mirror"
    );
    println!("  import:   {:6.2} s", import.wall.as_secs_f64());
    println!(
        "  --mirror: {:6.2} s (until the server answers; images are unpacked at first pull)",
        mirror.wall.as_secs_f64()
    );
    Ok(())
}
