//! `helm pull oci://SERVE/NAME --version V` from `ferry serve` (#23). helm is not installable
//! here (not in Debian, and it needs a newer Go than the machine has), so its requests are made
//! as helm 3 (oras-go v2) makes them, with its Accept headers, by curl, and the chart is pulled
//! by a real OCI client, skopeo; the bytes are compared with the chart's `.tgz` (sha256sum's
//! word, not ferry's) and with the digests the server announces.

use crate::charts::{HelmRepo, Setup, bundle};
use crate::common;
use crate::served::{Served, curl};

use std::process::Command;

use common::*;

/// What helm 3's registry client (oras-go v2) sends to resolve a tag: every manifest type.
const HELM_ACCEPT: &str = "Accept: application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.artifact.manifest.v1+json";

#[test]
fn a_chart_from_an_http_repository_is_pulled_from_serve_as_helm_pull_asks() {
    let s = Setup::new();
    let repo = HelmRepo::start(&s.path("charts"), None);
    let b = s.path("b");
    let spec = format!("http://{}/mychart:0.1.0", repo.addr);
    let (code, stderr) = bundle(&b, &["--chart", &spec]);
    assert_eq!(code, 0, "{stderr}");
    let tgz = s.tgz();
    let layer = sha256(&tgz);
    let served = Served::start(&b, &[]);

    // The names helm pull takes: oci://SERVE/mychart, and with the repository's host (a
    // port written _PORT, as a repository path cannot hold a colon).
    let host = repo.addr.replace(':', "_");
    for name in ["mychart".to_owned(), format!("{host}/mychart")] {
        // helm lists the tags to match --version, then resolves the tag with HEAD.
        let tags = curl("GET", &served.url(&format!("/v2/{name}/tags/list")), &[]);
        assert_eq!(tags.status, 200, "{name}");
        let tags: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
        assert_eq!(tags["tags"], serde_json::json!(["0.1.0"]), "{name}");
        let head = curl(
            "HEAD",
            &served.url(&format!("/v2/{name}/manifests/0.1.0")),
            &[HELM_ACCEPT],
        );
        assert_eq!(head.status, 200, "{name}");
        let digest = head.headers["docker-content-digest"].clone();
        assert_eq!(
            head.headers["content-type"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        // Then the manifest by digest, asking for exactly that type, checked as helm does.
        let manifest = curl(
            "GET",
            &served.url(&format!("/v2/{name}/manifests/{digest}")),
            &["Accept: application/vnd.oci.image.manifest.v1+json"],
        );
        assert_eq!(manifest.status, 200, "{name}");
        assert_eq!(sha256(&manifest.body), digest);
        assert_eq!(
            head.headers["content-length"],
            manifest.body.len().to_string()
        );
        let m: serde_json::Value = serde_json::from_slice(&manifest.body).unwrap();
        assert_eq!(
            m["config"]["mediaType"],
            "application/vnd.cncf.helm.config.v1+json"
        );
        assert_eq!(
            m["layers"][0]["mediaType"],
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
        );
        assert_eq!(m["layers"][0]["digest"], layer);
        // The config and the chart layer: the .tgz as the HTTP repository served it.
        let config = m["config"]["digest"].as_str().unwrap();
        let got = curl(
            "GET",
            &served.url(&format!("/v2/{name}/blobs/{config}")),
            &[],
        );
        assert_eq!(sha256(&got.body), config);
        let got = curl(
            "GET",
            &served.url(&format!("/v2/{name}/blobs/{layer}")),
            &[],
        );
        assert_eq!(got.status, 200);
        assert!(got.body == tgz, "{name}: the chart .tgz byte for byte");
    }

    // A real client pulls it whole: skopeo into a dir: copy, every file byte-exact.
    let out = s.path("pulled");
    let pulled = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/mychart:0.1.0", served.addr))
        .arg(format!("dir:{}", out.display()))
        .env("TMPDIR", s.path(""))
        .output()
        .unwrap();
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let entry = index_entry(&b, &format!("{}/mychart:0.1.0", repo.addr)).unwrap();
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    assert_eq!(sha256(&manifest), entry["digest"], "the manifest as stored");
    let hex = layer.strip_prefix("sha256:").unwrap();
    assert!(
        std::fs::read(out.join(hex)).unwrap() == tgz,
        "skopeo got the chart .tgz byte for byte"
    );
}
