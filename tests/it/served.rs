//! Helpers for the `ferry serve` tests: a running server, curl requests, bundles.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::common::*;

pub const SAMPLES: &[&str] = &[
    "sample/hello:1.0",
    "sample/world:1.0",
    "sample/multi:1.0",
    "sample/multi-docker:1.0",
    "sample/zstd:1.0",
    "sample/raw:1.0",
    "sample/hello-docker:1.0",
];

/// A running `ferry serve`, stopped with SIGTERM on drop.
pub struct Served {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// `ferry serve BUNDLE --addr 127.0.0.1:0 -v EXTRA...`, once it listens.
    pub fn start(bundle: &Path, extra: &[&str]) -> Served {
        let mut args = vec![
            "serve",
            bundle.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
            "-v",
        ];
        args.extend(extra);
        Served::spawn(&args)
    }

    /// `ferry ARGS...` (a serve command listening on a port of its choosing), once it listens.
    pub fn spawn(args: &[&str]) -> Served {
        let mut child = ferry().args(args).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let mut addr = None;
        wait_for(30, "ferry serve to listen", || {
            let lines = log.lock().unwrap();
            addr = lines.iter().find_map(|l| {
                let rest = l.split(" at http").nth(1)?;
                Some(
                    rest.trim_start_matches('s')
                        .trim_start_matches("://")
                        .to_owned(),
                )
            });
            if addr.is_none()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("ferry serve exited ({status}): {lines:?}");
            }
            addr.is_some()
        });
        Served {
            addr: addr.unwrap(),
            child,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// How many responses to `GET {path} 200` the log calls complete, once at least `n` are
    /// there (within 30 s). serve logs a response when its connection has sent the last byte,
    /// which may come a moment after the client has read it.
    pub fn complete_gets(&self, path: &str, n: usize) -> usize {
        let count = || {
            self.log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(&format!("GET {path} 200")) && l.contains(" complete "))
                .count()
        };
        wait_for(30, "serve's log line for every response", || count() >= n);
        count()
    }

    /// Stops it with SIGTERM; returns its exit code.
    pub fn stop(&mut self) -> i32 {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// A response seen by curl: status, headers (lowercase names), body, curl's exit code.
pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub curl_exit: i32,
}

pub fn curl(method: &str, url: &str, headers: &[&str]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", b.to_str().unwrap(), "-D", h.to_str().unwrap()]);
    match method {
        "HEAD" => cmd.arg("-I"),
        m => cmd.args(["-X", m]),
    };
    for header in headers {
        cmd.args(["-H", header]);
    }
    let out = cmd.arg(url).output().unwrap();
    let head = std::fs::read_to_string(&h).unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: std::fs::read(&b).unwrap_or_default(),
        curl_exit: out.status.code().unwrap_or(-1),
    }
}

pub fn error_code(reply: &Reply) -> String {
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub fn bundle(reg: &Registry, out: &Path, tags: &[&str], extra: &[&str]) -> PathBuf {
    let refs: Vec<String> = tags.iter().map(|t| reg.image(t)).collect();
    let mut args = vec!["bundle", "-o", out.to_str().unwrap()];
    args.extend(extra);
    args.extend(refs.iter().map(String::as_str));
    let (code, _, stderr) = ferry_out(&args);
    assert_eq!(code, 0, "{stderr}");
    out.to_path_buf()
}

pub fn export_tar(b: &Path, out: &Path) {
    let (code, _, stderr) = ferry_out(&[
        "export",
        b.to_str().unwrap(),
        "--oci-archive",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
}

/// The digest index.json records for a reference.
pub fn bundled_digest(b: &Path, reference: &str) -> String {
    index_entry(b, reference).unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A read-only loop mount, unmounted on drop.
pub struct Mount(pub PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Peak resident memory of a process, in MiB (VmHWM).
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib / 1024.0
}
