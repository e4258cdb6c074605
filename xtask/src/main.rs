//! Project tasks: `cargo xtask bench` (ferry against skopeo, same machine, same run) and
//! `cargo xtask fixtures DIR` (the sample images as an OCI layout), `cargo xtask dist` (the
//! static node binaries `ferry bundle --with-binary` carries).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

mod bench;
mod bench_archive;
mod bench_bigblob;
mod bench_bindelta;
mod bench_fanout;
mod bench_push;
mod bench_restore;
mod bench_serve;
mod small;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") if args.get(1).is_some_and(|a| a == "restore") => {
            bench_restore::main(&args[2..])
        }
        Some("bench") => bench::run(&args[1..]),
        Some("fixtures") => fixtures(&args[1..]),
        Some("dist") => dist(&args[1..]),
        Some("man") => man(&args[1..]),
        _ => Err("usage: cargo xtask bench [--runs N] [--images N] [--mib-per-image N] [--shared-mib N] [--no-bad-network] [--serve-only] [--fanout-only] [--no-fanout] [--small-images N] [--small-only] [--archive-only] [--bigblob-only] [--no-bigblob] [--bigblob-gib N] [--bindelta-only]\n       \
                  cargo xtask bench restore [--runs N] [--images N]\n       \
                  cargo xtask fixtures DIR\n       \
                  cargo xtask dist [amd64] [arm64]\n       \
                  cargo xtask man [DIR]"
            .into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fixtures(args: &[String]) -> Result<(), String> {
    let dir = args.first().ok_or("usage: cargo xtask fixtures DIR")?;
    sh(Command::new("python3")
        .arg(root().join("testdata/make_fixtures.py"))
        .arg(dir))?;
    Ok(())
}

/// Builds the static, stripped node binaries into target/dist (scripts/dist.sh, which the
/// tests run too).
fn dist(args: &[String]) -> Result<(), String> {
    sh(Command::new(root().join("scripts/dist.sh")).args(args))?;
    Ok(())
}

/// Writes ferry's man pages (clap_mangen, through the binary's hidden `man` command) into DIR
/// (default target/man).
fn man(args: &[String]) -> Result<(), String> {
    let dir = args
        .first()
        .map_or_else(|| root().join("target/man"), PathBuf::from);
    sh(Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--bin", "ferry", "--", "man", "--out"])
        .arg(&dir)
        .current_dir(root()))?;
    Ok(())
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs a command to completion; its stdout on success.
pub fn sh(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Wall time, CPU time and peak resident memory of one child process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    /// Elapsed time.
    pub wall: Duration,
    /// Peak RSS in bytes (getrusage's ru_maxrss).
    pub peak_rss: u64,
    /// User plus system CPU time (getrusage's ru_utime + ru_stime).
    pub cpu: Duration,
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Runs `cmd` and measures it with wait4's rusage (the child's own peak RSS). Returns the
/// measurement, the child's stdout, and whether it succeeded (with its last stderr line).
pub fn measure(cmd: &mut Command) -> (Measured, String, Result<(), String>) {
    use std::io::Read;
    let start = Instant::now();
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                Measured::default(),
                String::new(),
                Err(format!("cannot run {cmd:?}: {e}")),
            );
        }
    };
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child, which we reap here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    let m = Measured {
        wall,
        peak_rss: usage.ru_maxrss as u64 * 1024,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
    };
    let ok = if r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed")
            .to_owned())
    };
    (m, stdout, ok)
}
