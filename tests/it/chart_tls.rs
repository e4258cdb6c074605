//! A classic Helm repository over HTTPS (#23, #27): its certificate checked as a registry's
//! (`--ca-file`), and a refused one reported as the `certificate` kind with its hint, as for
//! registries. The repository is testdata/helm_repo.py with the run's openssl-made CA.

use crate::charts::{HelmRepo, Setup, bundle};
use crate::common;

use common::*;

#[test]
fn a_chart_repository_over_https_is_trusted_with_its_ca_and_refused_without() {
    let tls = Tls::new();
    let s = Setup::new();
    let repo = HelmRepo::with_args(
        &s.path("charts"),
        &["--tls", &tls.path("server.crt"), &tls.path("server.key")],
    );
    let spec = format!("https://{}/mychart:0.1.0", repo.addr);

    // Without its CA: refused as a certificate problem, with what to do.
    let untrusted = s.path("untrusted");
    let (code, stdout, stderr) = ferry_out(&[
        "bundle",
        "--json",
        "--no-progress",
        "-o",
        untrusted.to_str().unwrap(),
        "--chart",
        &spec,
    ]);
    assert_eq!(code, 1, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let error = &report["images"][0]["error"];
    assert_eq!(error["kind"], "certificate", "{report}");
    assert!(
        error["hint"].as_str().unwrap().contains("--ca-file"),
        "{report}"
    );

    // With it: the chart, its .tgz byte for byte.
    let b = s.path("b");
    let (code, stderr) = bundle(&b, &["--chart", &spec, "--ca-file", &tls.path("ca.crt")]);
    assert_eq!(code, 0, "{stderr}");
    let layer = sha256(&s.tgz());
    assert_eq!(std::fs::read(blob_path(&b, &layer)).unwrap(), s.tgz());
}
