//! Charts and other OCI artifacts (#23): a Helm chart and an oras-style file artifact, made and
//! pushed into the real docker-registry by testdata/push_artifacts.py the way `helm push` and
//! `oras push` store them (not by ferry), carried byte-exact by bundle, verify, serve, push and
//! delta/apply, shown by kind in `ls`, and left alone (with a note) by restore and restore.sh.

use crate::common;
use crate::served::{Served, curl};

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const CHART: &str = "charts/mychart:0.1.0";
const FILE: &str = "files/model:v1";
const MODEL_TYPE: &str = "application/vnd.example.model.v1";
const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";

/// A seeded registry with the chart and the file artifact pushed by python.
struct Pushed {
    reg: Registry,
    dir: tempfile::TempDir,
    /// What the script pushed: per artifact its manifest, config and layer digests.
    fx: serde_json::Value,
}

impl Pushed {
    fn new() -> Pushed {
        let reg = Registry::seeded();
        let dir = tempfile::tempdir().unwrap();
        let fx = push_artifacts(&reg, &dir.path().join("fx"));
        Pushed { reg, dir, fx }
    }

    /// `ferry bundle -o DIR/NAME` of the tags (registry-relative) with `extra` flags.
    fn bundle(&self, name: &str, tags: &[&str], extra: &[&str]) -> PathBuf {
        let out = self.dir.path().join(name);
        let refs: Vec<String> = tags.iter().map(|t| self.reg.image(t)).collect();
        let mut args = vec!["bundle", "--no-progress", "-o", out.to_str().unwrap()];
        args.extend(extra);
        args.extend(refs.iter().map(String::as_str));
        let (code, _, stderr) = ferry_out(&args);
        assert_eq!(code, 0, "{stderr}");
        out
    }

    /// The digests python computed for `what` ("chart" or "file"): manifest, config, layer.
    fn digests(&self, what: &str) -> [String; 3] {
        ["manifest", "config", "layer"].map(|k| self.fx[what][k].as_str().unwrap().to_owned())
    }
}

/// sha256 of the bundle's blob file: the bytes it holds, hashed here.
fn blob_sha(bundle: &Path, digest: &str) -> String {
    sha256(&std::fs::read(blob_path(bundle, digest)).unwrap())
}

fn ls_json(bundle: &Path) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = ferry_out(&["ls", "--json", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    doc["images"].as_array().unwrap().clone()
}

fn entry<'a>(rows: &'a [serde_json::Value], reference: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["reference"] == reference)
        .unwrap_or_else(|| panic!("{reference} in {rows:?}"))
}

#[test]
fn ls_shows_kinds_and_a_platform_filter_keeps_artifacts() {
    let p = Pushed::new();
    // Only arm64 of the index is wanted: the chart and the file declare no platform, and stay.
    let b = p.bundle(
        "b",
        &["sample/multi:1.0", CHART, FILE],
        &["--platform", "linux/arm64"],
    );
    for what in ["chart", "file"] {
        for d in p.digests(what) {
            assert_eq!(blob_sha(&b, &d), d, "{what}: {d} byte-exact in the bundle");
        }
    }
    let rows = ls_json(&b);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let multi = entry(&rows, &p.reg.image("sample/multi:1.0"));
    assert_eq!(multi["kind"], "index");
    assert_eq!(multi["artifactType"], serde_json::Value::Null);
    let chart = entry(&rows, &p.reg.image(CHART));
    assert_eq!(chart["kind"], "helm-chart");
    assert_eq!(chart["artifactType"], HELM_CONFIG);
    assert_eq!(chart["digest"], p.fx["chart"]["manifest"]);
    assert_eq!(chart["complete"], true);
    let file = entry(&rows, &p.reg.image(FILE));
    assert_eq!(file["kind"], "artifact");
    assert_eq!(file["artifactType"], MODEL_TYPE);
    // index.json says so too (OCI 1.1 artifactType), for tools that read the layout.
    let e = index_entry(&b, &p.reg.image(FILE)).unwrap();
    assert_eq!(e["artifactType"], MODEL_TYPE);
    assert!(index_entry(&b, &p.reg.image("sample/multi:1.0")).unwrap()["artifactType"].is_null());

    let (code, stdout, stderr) = ferry_out(&["ls", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("REFERENCE"), "{stdout}");
    let line = |r: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(r))
            .unwrap()
            .to_owned()
    };
    assert!(
        line(&p.reg.image(CHART)).contains(" helm-chart "),
        "{stdout}"
    );
    assert!(
        line(&p.reg.image(FILE)).contains(&format!(" artifact ({MODEL_TYPE}) ")),
        "{stdout}"
    );
    assert!(
        line(&p.reg.image("sample/multi:1.0")).contains(" index "),
        "{stdout}"
    );

    let (code, stdout, stderr) = ferry_out(&["verify", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // A damaged chart layer is found like any other blob.
    let layer = blob_path(&b, &p.digests("chart")[2]);
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&layer, bytes).unwrap();
    let (code, _, _) = ferry_out(&["verify", b.to_str().unwrap()]);
    assert_eq!(code, 1);
}

/// containerd holds the sample image and neither artifact.
fn only_the_image_imported(node: &Containerd, reg: &Registry) {
    let names: Vec<String> = containerd_images(node).into_iter().map(|i| i.0).collect();
    assert!(names.contains(&reg.image("sample/hello:1.0")), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("mychart") || n.contains("model")),
        "{names:?}"
    );
}

#[test]
fn restore_and_restore_sh_import_images_and_leave_artifacts_alone() {
    let p = Pushed::new();
    let b = p.bundle("b", &["sample/hello:1.0", CHART, FILE], &[]);
    let node = Containerd::start();
    let (code, stdout, stderr) = ferry_out(&[
        "restore",
        b.to_str().unwrap(),
        "--address",
        &node.socket,
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["totals"]["images"], 1, "{report}");
    assert_eq!(report["totals"]["restored"], 1, "{report}");
    let left = report["leftAlone"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = left
        .iter()
        .map(|a| {
            (
                a["reference"].as_str().unwrap(),
                a["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (p.reg.image(CHART).as_str(), "helm-chart"),
            (p.reg.image(FILE).as_str(), "artifact")
        ]
    );
    assert!(
        stderr.contains(&format!("left alone: {}", p.reg.image(CHART))),
        "{stderr}"
    );
    only_the_image_imported(&node, &p.reg);

    // restore.sh on another node: the same, in plain sh.
    let other = Containerd::start();
    let out = Command::new(b.join("restore.sh"))
        .env("CONTAINERD_ADDRESS", &other.socket)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    for (r, t) in [(CHART, HELM_CONFIG), (FILE, MODEL_TYPE)] {
        let note = format!("{}: left alone, an artifact of type {t}", p.reg.image(r));
        assert!(log.contains(&note), "{log}");
    }
    only_the_image_imported(&other, &p.reg);

    // A bundle of artifacts only: nothing to import is no failure.
    let only = p.bundle("only", &[CHART], &[]);
    let (code, _, stderr) =
        ferry_out(&["restore", only.to_str().unwrap(), "--address", &node.socket]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("left alone"), "{stderr}");
    let out = Command::new(only.join("restore.sh"))
        .env("CONTAINERD_ADDRESS", &other.socket)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_push_and_delta_carry_artifacts_byte_exact() {
    let p = Pushed::new();
    let full = p.bundle("full", &["sample/hello:1.0", CHART, FILE], &[]);
    let [manifest, config, layer] = p.digests("chart");

    // serve: the manifest and the chart layer come back as python pushed them.
    let served = Served::start(&full, &[]);
    let repo = format!("{}/charts/mychart", p.reg.addr);
    let m = curl(
        "GET",
        &served.url(&format!("/v2/{repo}/manifests/0.1.0")),
        &["Accept: application/vnd.oci.image.manifest.v1+json"],
    );
    assert_eq!(m.status, 200);
    assert_eq!(sha256(&m.body), manifest);
    for d in [&config, &layer] {
        let blob = curl("GET", &served.url(&format!("/v2/{repo}/blobs/{d}")), &[]);
        assert_eq!(blob.status, 200);
        assert_eq!(&sha256(&blob.body), d);
    }
    let chart_tgz = std::fs::read(p.dir.path().join("fx/mychart-0.1.0.tgz")).unwrap();
    let blob = curl(
        "GET",
        &served.url(&format!("/v2/{repo}/blobs/{layer}")),
        &[],
    );
    assert_eq!(blob.body, chart_tgz, "the chart .tgz, byte for byte");
    drop(served);

    // push: the target registry serves the same manifests (its word, sha256'd here).
    let target = Registry::start();
    let dest = format!("{}/mirror", target.addr);
    let (code, _, stderr) = ferry_out(&["push", full.to_str().unwrap(), &dest]);
    assert_eq!(code, 0, "{stderr}");
    // (push drops the source host: README "Name mapping".)
    let pushed = target.manifest("mirror/charts/mychart", "0.1.0").0;
    assert_eq!(sha256(&pushed), manifest);
    let pushed = target.manifest("mirror/files/model", "v1").0;
    assert_eq!(sha256(&pushed), p.fx["file"]["manifest"]);

    // delta: a base with the image only; the delta adds the artifacts; apply makes the full set.
    let base = p.bundle("base", &["sample/hello:1.0"], &[]);
    let delta = p.bundle(
        "delta",
        &["sample/hello:1.0", CHART, FILE],
        &["--since", base.to_str().unwrap()],
    );
    let (code, _, stderr) = ferry_out(&["apply", delta.to_str().unwrap(), base.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    for what in ["chart", "file"] {
        for d in p.digests(what) {
            assert_eq!(blob_sha(&base, &d), d, "{what}: {d} after apply");
        }
    }
    assert_eq!(
        std::fs::read(base.join("index.json")).unwrap(),
        std::fs::read(full.join("index.json")).unwrap()
    );
    let rows = ls_json(&base);
    assert_eq!(entry(&rows, &p.reg.image(CHART))["kind"], "helm-chart");
    let (code, stdout, stderr) = ferry_out(&["verify", base.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}
