//! `cargo xtask bench restore`: importing the sample bench bundle into a fresh private
//! containerd three ways, same machine, same run: `ferry restore`, the bundle's `restore.sh`,
//! and one `ctr images import` per image (each image's own tar, made beforehand and not
//! timed), which is what users without ferry do. Also the second `ferry restore` on the same
//! node, which finds everything present.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{root, sh};

struct Node {
    state: tempfile::TempDir,
    socket: String,
}

impl Node {
    fn start() -> Result<Node, String> {
        let state = tempfile::Builder::new()
            .prefix("ferry-bench-node")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let socket = sh(Command::new(root().join("scripts/containerd.sh"))
            .arg("start")
            .arg(state.path()))?
        .trim()
        .to_owned();
        Ok(Node { state, socket })
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

fn timed(cmd: &mut Command) -> Result<Duration, String> {
    let start = Instant::now();
    sh(cmd.stdout(std::process::Stdio::null()))?;
    Ok(start.elapsed())
}

/// One tar per image of the bundle (index.json naming only that image), for the baseline.
fn per_image_tars(bundle: &Path, names: &[String], out: &Path) -> Result<Vec<PathBuf>, String> {
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(bundle.join("index.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mut tars = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let entry = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name.as_str())
            .ok_or(format!("{name} is not in the bundle"))?;
        let dir = out.join(format!("img{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let one = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
        std::fs::write(dir.join("index.json"), one.to_string()).map_err(|e| e.to_string())?;
        std::fs::copy(bundle.join("oci-layout"), dir.join("oci-layout"))
            .map_err(|e| e.to_string())?;
        let tar = out.join(format!("img{i}.tar"));
        let mut blobs = Vec::new();
        reached(bundle, entry, &mut blobs)?;
        sh(Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&dir)
            .args(["index.json", "oci-layout"])
            .arg("-C")
            .arg(bundle)
            .args(&blobs))?;
        tars.push(tar);
    }
    Ok(tars)
}

/// The blobs (`blobs/sha256/HEX`, present in the bundle) a descriptor reaches.
fn reached(bundle: &Path, d: &serde_json::Value, out: &mut Vec<String>) -> Result<(), String> {
    let digest = d["digest"].as_str().ok_or("a descriptor without digest")?;
    let path = format!("blobs/{}", digest.replace(':', "/"));
    if !bundle.join(&path).exists() || out.contains(&path) {
        return Ok(());
    }
    out.push(path.clone());
    let media = d["mediaType"].as_str().unwrap_or_default();
    if media.contains("manifest") || media.contains("index") {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bundle.join(&path)).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let children = m["manifests"].as_array().into_iter().flatten();
        let config = m.get("config").into_iter();
        let layers = m["layers"].as_array().into_iter().flatten();
        for child in children.chain(config).chain(layers) {
            reached(bundle, child, out)?;
        }
    }
    Ok(())
}

/// Runs the restore case against a bundle of `refs` (full references) at `bundle`.
pub fn run(ferry: &Path, bundle: &Path, refs: &[String], runs: usize) -> Result<(), String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tars = per_image_tars(bundle, refs, work.path())?;
    let (mut f, mut again, mut s, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut one = Vec::new();
    for run in 1..=runs {
        let node = Node::start()?;
        one.push(timed(
            Command::new(ferry).arg("restore").arg(bundle).args([
                "--address",
                &node.socket,
                "--jobs",
                "1",
            ]),
        )?);
        drop(node);
        let node = Node::start()?;
        f.push(timed(
            Command::new(ferry)
                .arg("restore")
                .arg(bundle)
                .args(["--address", &node.socket]),
        )?);
        again.push(timed(
            Command::new(ferry)
                .arg("restore")
                .arg(bundle)
                .args(["--address", &node.socket]),
        )?);
        drop(node);
        let node = Node::start()?;
        s.push(timed(
            Command::new(bundle.join("restore.sh")).env("CONTAINERD_ADDRESS", &node.socket),
        )?);
        drop(node);
        c.push(ctr_import_each(&tars)?);
        eprintln!(
            "  run {run}: ferry restore {:.2} s (--jobs 1 {:.2} s, again {:.2} s), restore.sh {:.2} s, ctr import per image {:.2} s",
            f[run - 1].as_secs_f64(),
            one[run - 1].as_secs_f64(),
            again[run - 1].as_secs_f64(),
            s[run - 1].as_secs_f64(),
            c[run - 1].as_secs_f64()
        );
    }
    print_table(refs.len(), runs, [f, one, again, s, c]);
    Ok(())
}

/// A fresh private containerd importing the per-image tars one `ctr images import` each.
fn ctr_import_each(tars: &[PathBuf]) -> Result<Duration, String> {
    let node = Node::start()?;
    let start = Instant::now();
    for tar in tars {
        sh(Command::new("ctr")
            .args(["-a", &node.socket, "-n", "k8s.io", "images", "import"])
            .arg(tar)
            .stdout(std::process::Stdio::null()))?;
    }
    Ok(start.elapsed())
}

/// Prints the medians: ferry restore, --jobs 1, again, restore.sh, ctr import per image.
fn print_table(images: usize, runs: usize, times: [Vec<Duration>; 5]) {
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let [f, one, again, s, c] = times.map(med);
    println!();
    println!(
        "restore: {} images into a fresh private containerd, {runs} runs (median wall), {} cores",
        images,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{:28} {:>10}", "how", "wall (s)");
    for (name, t) in [
        ("ferry restore", f),
        ("ferry restore --jobs 1", one),
        ("ferry restore, again", again),
        ("restore.sh", s),
        ("ctr images import per image", c),
    ] {
        println!("{name:28} {t:>10.2}");
    }
    println!(
        "ratio: ferry restore is {:.2}x faster than per-image ctr import, restore.sh {:.2}x; a second boot costs {:.0}% of the first",
        c / f,
        c / s,
        100.0 * again / f
    );
}

/// `cargo xtask bench restore [--runs N] [--images N]`: makes the bench images, serves them
/// from a local registry, bundles them with ferry, then runs [`run`].
pub fn main(args: &[String]) -> Result<(), String> {
    let mut runs = 3;
    let mut images = 12;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value: usize = it
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{flag} needs a number"))?;
        match flag.as_str() {
            "--runs" => runs = value.max(1),
            "--images" => images = value.max(1),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let ferry = crate::bench::release_ferry()?;
    let setup = crate::bench::Setup::start(images, 24, 64)?;
    let bundle = setup.work.path().join("bundle");
    sh(Command::new(&ferry)
        .arg("bundle")
        .args(&setup.refs)
        .arg("-o")
        .arg(&bundle)
        .arg("--no-progress"))?;
    run(&ferry, &bundle, &setup.refs, runs)
}
