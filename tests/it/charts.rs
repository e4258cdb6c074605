//! `ferry bundle --chart REPO_URL/NAME:VERSION` (#23.2): a classic Helm repository (a python
//! http.server fake: index.yaml + .tgz, with basic auth), the chart stored as `helm push`
//! stores it, its layer the same blob as the chart pushed as OCI by testdata/push_artifacts.py.

use crate::common;
use crate::served::{Served, curl};

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

/// testdata/helm_repo.py serving a folder, killed on drop.
pub(crate) struct HelmRepo {
    pub(crate) addr: String,
    child: Child,
}

impl HelmRepo {
    pub(crate) fn start(dir: &Path, user: Option<&str>) -> HelmRepo {
        match user {
            Some(u) => HelmRepo::with_args(dir, &["--user", u]),
            None => HelmRepo::with_args(dir, &[]),
        }
    }

    /// The repository with helm_repo.py's options (`--user U:P`, `--tls CERT KEY`).
    pub(crate) fn with_args(dir: &Path, args: &[&str]) -> HelmRepo {
        let mut cmd = Command::new("python3");
        cmd.arg(root().join("testdata/helm_repo.py"))
            .arg(dir)
            .args(args);
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        HelmRepo {
            addr: line.trim().to_owned(),
            child,
        }
    }
}

impl Drop for HelmRepo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry holding the chart pushed as OCI, and the same .tgz in a chart folder.
pub(crate) struct Setup {
    reg: Registry,
    dir: tempfile::TempDir,
    fx: serde_json::Value,
}

impl Setup {
    pub(crate) fn new() -> Setup {
        let reg = Registry::start();
        let dir = tempfile::tempdir().unwrap();
        let fx = push_artifacts(&reg, &dir.path().join("fx"));
        let charts = dir.path().join("charts");
        std::fs::create_dir(&charts).unwrap();
        std::fs::copy(
            dir.path().join("fx/mychart-0.1.0.tgz"),
            charts.join("mychart-0.1.0.tgz"),
        )
        .unwrap();
        Setup { reg, dir, fx }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn tgz(&self) -> Vec<u8> {
        std::fs::read(self.path("fx/mychart-0.1.0.tgz")).unwrap()
    }
}

/// `ferry bundle --no-progress -o OUT ARGS...`: its exit code and stderr.
pub(crate) fn bundle(out: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["bundle", "--no-progress", "-o", out.to_str().unwrap()];
    all.extend(args);
    let (code, _, stderr) = ferry_out(&all);
    (code, stderr)
}

fn manifest_of(bundle: &Path, reference: &str) -> serde_json::Value {
    let entry = index_entry(bundle, reference).unwrap_or_else(|| panic!("{reference}"));
    let digest = entry["digest"].as_str().unwrap();
    serde_json::from_slice(&std::fs::read(blob_path(bundle, digest)).unwrap()).unwrap()
}

#[test]
fn a_chart_from_an_http_repository_is_the_oci_chart_helm_push_makes() {
    let s = Setup::new();
    let repo = HelmRepo::start(&s.path("charts"), Some("alice:s3cret"));
    let spec = format!("http://{}/mychart:0.1.0", repo.addr);
    let b = s.path("b");

    // Without credentials: a 401, said, and nothing bundled.
    let (code, stderr) = bundle(&b, &["--chart", &spec]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    // With them, beside the chart pushed as OCI: one layer blob for both.
    let oci = s.reg.image("charts/mychart:0.1.0");
    let (code, stderr) = bundle(&b, &["--chart", &spec, "--creds", "alice:s3cret", &oci]);
    assert_eq!(code, 0, "{stderr}");
    let reference = format!("{}/mychart:0.1.0", repo.addr);
    let m = manifest_of(&b, &reference);
    let layer = s.fx["chart"]["layer"].as_str().unwrap();
    assert_eq!(m["layers"][0]["digest"], layer, "{m}");
    assert_eq!(m["layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.cncf.helm.config.v1+json"
    );
    assert_eq!(manifest_of(&b, &oci)["layers"][0]["digest"], layer);
    assert_eq!(
        std::fs::read(blob_path(&b, layer)).unwrap(),
        s.tgz(),
        "the .tgz byte for byte"
    );
    // The config is Chart.yaml as JSON.
    let config_digest = m["config"]["digest"].as_str().unwrap();
    let config_bytes = std::fs::read(blob_path(&b, config_digest)).unwrap();
    assert_eq!(sha256(&config_bytes), config_digest);
    let config: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap();
    assert_eq!(config["name"], "mychart");
    assert_eq!(config["version"], "0.1.0");
    assert_eq!(config["appVersion"], "1.27.0");
    assert!(
        config["annotations"]["artifacthub.io/images"]
            .as_str()
            .unwrap()
            .contains("bitnami/nginx")
    );

    // The same from a list file: a chart line beside an image line.
    let list = s.path("list.txt");
    std::fs::write(&list, format!("# charts and images\n{spec}\n{oci}\n")).unwrap();
    let from_list = s.path("from-list");
    let (code, stderr) = bundle(
        &from_list,
        &["-f", list.to_str().unwrap(), "--creds", "alice:s3cret"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read(from_list.join("index.json")).unwrap(),
        std::fs::read(b.join("index.json")).unwrap()
    );
    let (code, stdout, stderr) = ferry_out(&["images", "-f", list.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), oci, "images lists the image line only");
    assert!(stderr.contains("1 chart line(s)"), "{stderr}");

    let (code, stdout, stderr) = ferry_out(&["ls", "--json", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let ls: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let kinds: Vec<&str> = ls["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["helm-chart", "helm-chart"]);
    let (code, stdout, stderr) = ferry_out(&["verify", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // Served back: the manifest as stored, the layer as the repository had it.
    let served = Served::start(&b, &[]);
    let path = format!("/v2/{}/mychart", repo.addr);
    let got = curl(
        "GET",
        &served.url(&format!("{path}/manifests/0.1.0")),
        &["Accept: application/vnd.oci.image.manifest.v1+json"],
    );
    assert_eq!(got.status, 200);
    assert_eq!(
        sha256(&got.body),
        index_entry(&b, &reference).unwrap()["digest"]
    );
    let got = curl("GET", &served.url(&format!("{path}/blobs/{layer}")), &[]);
    assert_eq!(got.body, s.tgz());
}

#[test]
fn a_chart_whose_digest_or_version_is_wrong_is_refused_and_nothing_is_stored() {
    let s = Setup::new();
    let repo = HelmRepo::start(&s.path("charts"), None);
    let b = s.path("b");
    // `liar` names the chart's file with another digest in index.yaml.
    let liar = format!("http://{}/liar:0.1.0", repo.addr);
    let ok = s.reg.image("files/model:v1");
    let (code, stderr) = bundle(&b, &["--chart", &liar, &ok]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("but index.yaml says sha256:0000"),
        "{stderr}"
    );
    assert_eq!(index_names(&b), [ok], "the other image is bundled");
    let layer = s.fx["chart"]["layer"].as_str().unwrap();
    assert!(!blob_path(&b, layer).exists(), "no byte of the lying chart");

    let missing = format!("http://{}/mychart:9.9.9", repo.addr);
    let (code, stderr) = bundle(&b, &["--chart", &missing]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("no chart mychart version 9.9.9"),
        "{stderr}"
    );
    assert!(
        stderr.contains("0.1.0"),
        "it names the versions there: {stderr}"
    );

    let (code, stderr) = bundle(&b, &["--chart", "nginx:1.0"]);
    assert_eq!(code, 2, "{stderr}");
}
