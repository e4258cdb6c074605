//! `push` does not trust a 201: a target that answers every upload and manifest PUT with 201
//! (and the digest it was sent) but stores nothing fails each image, naming the manifest it
//! does not serve; before, it got "ok". A fake target, because no real registry lies on demand;
//! the bundle is the sample layout made by make_fixtures.py.

use crate::common;

use common::fake::{Fake, Reply};
use common::*;

/// A target that says yes to everything and keeps nothing.
fn forgetful_target() -> Fake {
    let fake = Fake::start();
    fake.guard(|req| {
        let path = req.path.split('?').next().unwrap_or_default().to_owned();
        let query_digest = req
            .path
            .split_once("digest=")
            .map(|(_, d)| d.split('&').next().unwrap().replace("%3A", ":"));
        match req.method.as_str() {
            "POST" if path.ends_with("/blobs/uploads/") => Some(
                Reply::new(202, "")
                    .header("Location", &format!("{path}forgotten"))
                    .header("Range", "0-0"),
            ),
            "PATCH" => Some(Reply::new(202, "").header("Location", &path)),
            "PUT" if path.contains("/blobs/uploads/") => Some(
                Reply::new(201, "")
                    .header("Docker-Content-Digest", &query_digest.unwrap_or_default()),
            ),
            "PUT" if path.contains("/manifests/") => {
                let digest = ferry::digest::Digest::sha256_of(req.body.as_bytes()).to_string();
                Some(Reply::new(201, "").header("Docker-Content-Digest", &digest))
            }
            // HEAD and GET of blobs and manifests: nothing is there.
            _ => None,
        }
    });
    fake
}

#[test]
fn a_target_that_answers_201_and_stores_nothing_fails_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample_bundle(dir.path(), "b");
    let target = forgetful_target();
    let hello = "registry.example/sample/hello:1.0";
    let (code, stdout, stderr) = ferry_out(&[
        "push",
        "--json",
        b.to_str().unwrap(),
        &target.addr,
        "--ref",
        hello,
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let image = &report["images"][0];
    assert_eq!(image["status"], "failed", "{report}");
    let message = image["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("does not serve it under") && message.contains("sample/hello"),
        "{message}"
    );
    // The manifest was PUT (answered 201), then read back by digest: that is what failed.
    let puts = target.seen("/v2/sample/hello/manifests/");
    assert!(puts.iter().any(|r| r.method == "PUT"), "{puts:?}");
    assert!(
        puts.iter()
            .any(|r| r.method == "HEAD" && r.path.contains("/manifests/sha256:")),
        "{puts:?}"
    );
    assert!(!stderr.contains("1 of 1"), "{stderr}");
}
