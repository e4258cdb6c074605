//! Running an external tool (ctr, skopeo, mkfs.ext4) to its end or until the caller stops it:
//! both pipes drained by threads, so a chatty tool never blocks on a full pipe while it is
//! polled (std has no wait with a timeout or a cancellation).

use std::io::{self, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// How a tool's run ended.
#[derive(Debug)]
pub struct Ran {
    /// Its exit status; `None` when `stop` said so and the tool was killed.
    pub status: Option<ExitStatus>,
    /// What it wrote on stdout.
    pub stdout: String,
    /// What it wrote on stderr.
    pub stderr: String,
}

/// Spawns `cmd` (stdin closed, both outputs captured) and waits for it, polling every 50 ms
/// (nothing beside a pull or a mkfs); kills it when `stop()` turns true. The error is the
/// spawn's or the wait's.
pub fn run_until(cmd: &mut Command, stop: impl Fn() -> bool) -> io::Result<Ran> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        if stop() {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        match child.try_wait()? {
            Some(status) => break Some(status),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    Ok(Ran {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}
