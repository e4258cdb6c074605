//! Referrers are bounded: a registry listing more referrer manifests for an image than
//! `--max-referrers` (default 100) allows fails that referrer entry without fetching any of
//! them (20,000 referrers used to cost 60,008 requests and a lock ferry then refused to read);
//! the image itself is bundled. Through the referrers API and through the fallback tag. A fake
//! registry, because a real one will not list 101 referrers on demand.

use crate::common;

use common::fake::{Fake, OCI_INDEX, OCI_MANIFEST, Reply, TestImage};
use common::*;

/// An OCI index listing `n` referrer manifests (which the registry never serves).
fn referrers_index(n: usize) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.example.sbom",
                "digest": format!("sha256:{i:064x}"),
                "size": 300,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap()
}

/// Bundles `app:1` with `--referrers`; returns (exit, report, stderr).
fn bundle(fake: &Fake, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let image = format!("{}/app:1", fake.addr);
    let mut args = vec![
        "bundle",
        "--json",
        "--referrers",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    args.push(&image);
    let (code, stdout, stderr) = ferry_out(&args);
    (code, serde_json::from_str(&stdout).unwrap(), stderr)
}

fn children_fetched(fake: &Fake) -> usize {
    fake.seen("/v2/app/manifests/sha256:").len()
}

fn check_refused(report: &serde_json::Value, listed: usize, cap: usize) {
    let images = report["images"].as_array().unwrap();
    let app = images.iter().find(|i| i["referrer"] == false).unwrap();
    assert_eq!(app["status"], "ok", "{report}");
    let referrer = images
        .iter()
        .find(|i| i["referrer"] == true)
        .unwrap_or_else(|| panic!("a referrer entry: {report}"));
    assert_eq!(referrer["status"], "failed", "{report}");
    let message = referrer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{listed} referrers are listed"))
            && message.contains(&format!("more than the {cap} per image"))
            && message.contains("--max-referrers"),
        "{message}"
    );
}

#[test]
fn more_referrers_than_the_cap_are_refused_unfetched() {
    let image = TestImage::random(41, &[2000]);
    let subject = image.digest.clone();

    // The referrers API lists 101: over the default of 100.
    let fake = Fake::start();
    fake.serve_image("app", "1", &image);
    let body = referrers_index(101);
    fake.route(&format!("/v2/app/referrers/{subject}"), move |_, _| {
        Reply::new(200, body.clone()).header("Content-Type", OCI_INDEX)
    });
    let (code, report, stderr) = bundle(&fake, &[]);
    assert_eq!(code, 1, "{stderr}");
    check_refused(&report, 101, 100);
    assert_eq!(children_fetched(&fake), 0, "none of them was fetched");

    // A lower cap, three listed.
    let fake = Fake::start();
    fake.serve_image("app", "1", &image);
    let body = referrers_index(3);
    fake.route(&format!("/v2/app/referrers/{subject}"), move |_, _| {
        Reply::new(200, body.clone()).header("Content-Type", OCI_INDEX)
    });
    let (code, report, stderr) = bundle(&fake, &["--max-referrers", "2"]);
    assert_eq!(code, 1, "{stderr}");
    check_refused(&report, 3, 2);
    assert_eq!(children_fetched(&fake), 0);

    // No referrers API: the fallback tag's index is counted the same way.
    let fake = Fake::start();
    fake.serve_image("app", "1", &image);
    let tag = format!("sha256-{}", &subject["sha256:".len()..]);
    let body = referrers_index(101);
    fake.route(&format!("/v2/app/manifests/{tag}"), move |_, _| {
        Reply::new(200, body.clone()).header("Content-Type", OCI_INDEX)
    });
    let (code, report, stderr) = bundle(&fake, &[]);
    assert_eq!(code, 1, "{stderr}");
    check_refused(&report, 101, 100);
    assert_eq!(children_fetched(&fake), 0);
}
