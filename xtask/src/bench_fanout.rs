//! The fan-out case of `cargo xtask bench` (#22): a fleet booting at once. 8 private containerd
//! instances pull every image of the bench set at the same time through ferry serve (the
//! hosts.toml files it writes), then the same from docker-registry holding the same images,
//! alternating; every node must end with every digest the registry serves. Then 64 concurrent
//! transfers fetch every blob (each 8 times) from ferry serve, docker-registry and nginx
//! serving the bundle's blobs folder with sendfile (the machine's limit). Ratios in the same
//! run, and the peak RSS of each server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::{Registry, dir, mib};
use crate::bench_serve::{free_port, peak_rss_mib, stop, wait_ready};
use crate::{root, sh};

/// containerd instances pulling at once.
const NODES: usize = 8;
/// Concurrent transfers of the blob case.
const CLIENTS: usize = 64;
/// How many times each blob is fetched in the blob case.
const REPEAT: usize = 8;

const ACCEPT: &str = "Accept: application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// Runs the case for `refs` (the images `names` of `registry`).
pub fn run(
    ferry: &Path,
    registry: &Registry,
    refs: &[String],
    names: &[String],
    runs: usize,
) -> Result<(), String> {
    let work = dir("fanout");
    let bundle = work.path().join("bundle");
    eprintln!("bundling the images for the fan-out case...");
    sh(Command::new(ferry)
        .args(["bundle", "-q", "-o"])
        .arg(&bundle)
        .args(refs))?;
    let hosts = work.path().join("certs.d");
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut server = Command::new(ferry)
        .arg("serve")
        .arg(&bundle)
        .args(["--addr", &addr, "--hosts-dir"])
        .arg(&hosts)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start ferry serve: {e}"))?;
    let result = (|| {
        wait_ready(&addr)?;
        let expected: Vec<(String, String)> = names
            .iter()
            .zip(refs)
            .map(|(n, r)| Ok((r.clone(), registry_digest(&registry.addr, n)?)))
            .collect::<Result<_, String>>()?;
        let (mut f, mut r) = (Vec::new(), Vec::new());
        for run in 1..=runs {
            f.push(fan_out(work.path(), &expected, Some(&hosts))?);
            r.push(fan_out(work.path(), &expected, None)?);
            eprintln!(
                "  run {run}: {NODES} nodes from ferry serve {:6.2} s, from docker-registry {:6.2} s",
                f[run - 1].as_secs_f64(),
                r[run - 1].as_secs_f64()
            );
        }
        let (fm, rm) = (median(f), median(r));
        println!();
        println!(
            "fan-out: {NODES} containerd instances pull {} images at once, {runs} runs (median)",
            refs.len()
        );
        println!("  through ferry serve:   {:6.2} s", fm.as_secs_f64());
        println!("  from docker-registry:  {:6.2} s", rm.as_secs_f64());
        println!(
            "  ratio ferry/registry:  {:.2} (target <= 1.0); every node holds every digest",
            fm.as_secs_f64() / rm.as_secs_f64()
        );
        blob_case(&bundle, &addr, registry, names, runs, server.id())
    })();
    stop(&mut server);
    result
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The manifest digest docker-registry serves for `name` (`repo:tag`): the witness.
fn registry_digest(registry: &str, name: &str) -> Result<String, String> {
    let (repo, tag) = name.rsplit_once(':').ok_or("a name without a tag")?;
    let head = sh(Command::new("curl").args([
        "-sfI",
        "-H",
        ACCEPT,
        &format!("http://{registry}/v2/{repo}/manifests/{tag}"),
    ]))?;
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_owned())
        })
        .ok_or(format!("no digest for {name}"))
}

/// A private containerd (scripts/containerd.sh), stopped on drop.
struct Node {
    state: tempfile::TempDir,
    socket: String,
}

impl Node {
    fn start(work: &Path) -> Result<Node, String> {
        let state = tempfile::tempdir_in(work).map_err(|e| e.to_string())?;
        let socket = sh(Command::new(root().join("scripts/containerd.sh"))
            .arg("start")
            .arg(state.path()))?
        .trim()
        .to_owned();
        Ok(Node { state, socket })
    }

    fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.args(["-a", &self.socket, "-n", "k8s.io"]);
        c
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/containerd.sh"))
            .arg("stop")
            .arg(self.state.path())
            .output();
    }
}

/// Fresh nodes pull every reference at once (each node one image after another, as kubelet's
/// serial puller does), through the mirrors in `hosts` or from the registry itself; the time
/// until the last node is done. Fails unless every node lists every expected digest.
fn fan_out(
    work: &Path,
    expected: &[(String, String)],
    hosts: Option<&Path>,
) -> Result<Duration, String> {
    let nodes: Vec<Node> = (0..NODES)
        .map(|_| Node::start(work))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let pulled: Vec<Result<(), String>> = std::thread::scope(|s| {
        let tasks: Vec<_> = nodes
            .iter()
            .map(|node| {
                s.spawn(move || {
                    for (reference, _) in expected {
                        let mut pull = node.ctr();
                        pull.args(["images", "pull"]);
                        if let Some(h) = hosts {
                            pull.arg("--hosts-dir").arg(h);
                        } else {
                            pull.arg("--plain-http");
                        }
                        sh(pull.arg(reference).stdout(Stdio::null()))?;
                    }
                    Ok(())
                })
            })
            .collect();
        tasks
            .into_iter()
            .map(|t| t.join().unwrap_or(Err("a pull thread panicked".into())))
            .collect()
    });
    let took = start.elapsed();
    for (i, (node, ok)) in nodes.iter().zip(pulled).enumerate() {
        ok.map_err(|e| format!("node {i}: {e}"))?;
        let listed = sh(node.ctr().args(["images", "ls"]))?;
        for (reference, digest) in expected {
            let found = listed.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.first() == Some(&reference.as_str()) && f.get(2) == Some(&digest.as_str())
            });
            if !found {
                return Err(format!("node {i} lacks {reference} at {digest}:\n{listed}"));
            }
        }
    }
    Ok(took)
}

/// Every blob of `names` as (repository, digest, size), read from docker-registry's manifests.
fn blobs(registry: &str, names: &[String]) -> Result<Vec<(String, String, u64)>, String> {
    let mut out = Vec::new();
    for name in names {
        let (repo, tag) = name.rsplit_once(':').ok_or("a name without a tag")?;
        let body = sh(Command::new("curl").args([
            "-sf",
            "-H",
            ACCEPT,
            &format!("http://{registry}/v2/{repo}/manifests/{tag}"),
        ]))?;
        let manifest: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        for d in layers.iter().chain([&manifest["config"]]) {
            let digest = d["digest"].as_str().ok_or("a descriptor without digest")?;
            out.push((
                repo.to_owned(),
                digest.to_owned(),
                d["size"].as_u64().unwrap_or(0),
            ));
        }
    }
    Ok(out)
}

/// 64 concurrent transfers of every blob, each `REPEAT` times, from each server in turn.
fn blob_case(
    bundle: &Path,
    ferry_addr: &str,
    registry: &Registry,
    names: &[String],
    runs: usize,
    ferry_pid: u32,
) -> Result<(), String> {
    let list = blobs(&registry.addr, names)?;
    let bytes: u64 = list.iter().map(|b| b.2).sum::<u64>() * REPEAT as u64;
    let work = dir("fanout-nginx");
    let nginx_addr = format!("127.0.0.1:{}", free_port()?);
    let mut nginx = Nginx::start(work.path(), &bundle.join("blobs"), &nginx_addr)?;
    let urls = |server: &str| -> Vec<String> {
        let mut v = Vec::new();
        for _ in 0..REPEAT {
            for (repo, digest, _) in &list {
                v.push(match server {
                    "nginx" => format!("http://{nginx_addr}/{}", digest.replace(':', "/")),
                    "ferry" => format!("http://{ferry_addr}/v2/{repo}/blobs/{digest}"),
                    _ => format!("http://{}/v2/{repo}/blobs/{digest}", registry.addr),
                });
            }
        }
        v
    };
    let mut times: [Vec<Duration>; 3] = Default::default();
    for _ in 0..runs {
        for (i, server) in ["ferry", "registry", "nginx"].iter().enumerate() {
            times[i].push(fetch_all(work.path(), &urls(server), bytes)?);
        }
    }
    let rate = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
    let [f, r, n] = times.map(median);
    let registry_pid: u32 = std::fs::read_to_string(registry.state.path().join("pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0);
    println!();
    println!(
        "fan-out blobs: {CLIENTS} concurrent transfers, every blob {REPEAT} times ({:.0} MiB), {runs} runs (median)",
        mib(bytes)
    );
    println!(
        "  ferry serve:      {:5.2} GB/s  peak RSS {:6.1} MiB",
        rate(f),
        peak_rss_mib(ferry_pid)
    );
    println!(
        "  docker-registry:  {:5.2} GB/s  peak RSS {:6.1} MiB",
        rate(r),
        peak_rss_mib(registry_pid)
    );
    println!(
        "  nginx sendfile:   {:5.2} GB/s  peak RSS {:6.1} MiB (workers)",
        rate(n),
        nginx.peak_rss_mib()
    );
    println!(
        "  ratios: ferry/registry {:.2} (target >= 1.0), ferry/nginx {:.2} (target >= 0.8)",
        rate(f) / rate(r),
        rate(f) / rate(n)
    );
    println!("  (peak RSS over the whole case, the fan-out pulls included; machine shared)");
    nginx.stop();
    Ok(())
}

/// Fetches `urls` with one curl, `CLIENTS` transfers at once; the wall time. Fails unless every
/// transfer answered 200 and the bytes add up to `bytes`.
fn fetch_all(work: &Path, urls: &[String], bytes: u64) -> Result<Duration, String> {
    let config = work.join("urls.curl");
    let text: String = urls
        .iter()
        .map(|u| format!("url = \"{u}\"\noutput = \"/dev/null\"\n"))
        .collect();
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let out = sh(Command::new("curl")
        .args([
            "-s",
            "--no-progress-meter",
            "-Z",
            "--parallel-max",
            &CLIENTS.to_string(),
            "-K",
        ])
        .arg(&config)
        .args(["-w", "%{http_code} %{size_download}\\n"]))?;
    let took = start.elapsed();
    let mut got = 0u64;
    for line in out.lines() {
        let (code, size) = line.split_once(' ').ok_or("curl's output")?;
        if code != "200" {
            return Err(format!("a transfer answered {code}"));
        }
        got += size.parse::<u64>().map_err(|e| e.to_string())?;
    }
    if got != bytes {
        return Err(format!("{got} bytes received, {bytes} expected"));
    }
    Ok(took)
}

/// nginx serving a folder with sendfile (Debian's nginx-light), in the foreground.
struct Nginx {
    child: Child,
    prefix: PathBuf,
}

impl Nginx {
    fn start(work: &Path, root_dir: &Path, addr: &str) -> Result<Nginx, String> {
        let nginx = which("nginx").ok_or(
            "nginx is not installed: apt-get install -y nginx-light (scripts/install-deps.sh)",
        )?;
        let prefix = work.join("nginx");
        std::fs::create_dir_all(prefix.join("tmp")).map_err(|e| e.to_string())?;
        let p = prefix.display();
        let conf = format!(
            "user root;\nworker_processes 2;\ndaemon off;\npid {p}/nginx.pid;\n\
             error_log {p}/error.log;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  sendfile on;\n  tcp_nopush on;\n  access_log off;\n\
             client_body_temp_path {p}/tmp;\n  proxy_temp_path {p}/tmp;\n\
             fastcgi_temp_path {p}/tmp;\n  uwsgi_temp_path {p}/tmp;\n  scgi_temp_path {p}/tmp;\n\
             server {{ listen {addr}; root {}; }}\n}}\n",
            root_dir.display()
        );
        std::fs::write(prefix.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start nginx: {e}"))?;
        let mut n = Nginx { child, prefix };
        if let Err(e) = wait_listening(addr) {
            n.stop();
            return Err(format!(
                "nginx: {e}: {}",
                std::fs::read_to_string(n.prefix.join("error.log")).unwrap_or_default()
            ));
        }
        Ok(n)
    }

    /// The workers' peak RSS together.
    fn peak_rss_mib(&self) -> f64 {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
                .unwrap_or_default();
        children
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .map(peak_rss_mib)
            .sum()
    }

    fn stop(&mut self) {
        stop(&mut self.child);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

/// Waits (30 s at most) until something accepts connections on `addr`.
fn wait_listening(addr: &str) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("nothing listens on {addr}"))
}

fn which(command: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(command))
        .find(|p| p.is_file())
}
