//! Registry faults a real registry will not produce on demand, from the in-process fake:
//! rate limits, server errors, lies about content, redirects, oversized and schema 1 manifests.

mod common;

use std::time::Instant;

use common::fake::{Fake, Reply, TestImage, ranged};
use common::*;

fn bundle(
    fake: &Fake,
    image: &str,
    extra: &[&str],
) -> (i32, serde_json::Value, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let name = format!("{}/{image}", fake.addr);
    let mut args = vec!["bundle", "--json", "-o", b.to_str().unwrap(), &name];
    args.extend(extra);
    let (code, stdout, stderr) = ferry_out(&args);
    let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (code, report, stderr, dir)
}

#[test]
fn retry_after_on_429_is_honoured() {
    let fake = Fake::start();
    let image = TestImage::random(1, &[1000]);
    fake.serve_image("app", "1", &image);
    let m = image.manifest.clone();
    fake.route("/v2/app/manifests/1", move |_, hit| match hit {
        1 => Reply::new(
            429,
            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
        )
        .header("Retry-After", "2"),
        _ => Reply::new(200, m.clone())
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
    });
    let start = Instant::now();
    let (code, report, stderr, _dir) = bundle(&fake, "app:1", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["totals"]["ok"], 1);
    assert!(
        start.elapsed().as_secs_f64() >= 2.0,
        "waited for Retry-After"
    );
    assert!(
        stderr.contains("is rate limiting (429)") && stderr.contains("retrying in 2.0 s"),
        "{stderr}"
    );
}

#[test]
fn server_errors_then_success() {
    let fake = Fake::start();
    let image = TestImage::random(2, &[50_000]);
    fake.serve_image("app", "1", &image);
    let layer = image.layers[0].clone();
    fake.route(
        &format!("/v2/app/blobs/{}", image.layer_digest(0)),
        move |req, hit| {
            if hit <= 2 {
                Reply::new(500 + hit as u16, "oops")
            } else {
                ranged(req, &layer)
            }
        },
    );
    let (code, report, stderr, _dir) = bundle(&fake, "app:1", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["totals"]["retries"], 2);
    assert_eq!(report["images"][0]["retries"], 2);
    assert_eq!(
        fake.seen(&format!("/v2/app/blobs/{}", image.layer_digest(0)))
            .len(),
        3
    );
}

#[test]
fn a_lying_blob_is_discarded_retried_and_reported_with_both_digests() {
    let fake = Fake::start();
    let image = TestImage::random(3, &[40_000]);
    fake.serve_image("app", "1", &image);
    let layer_path = format!("/v2/app/blobs/{}", image.layer_digest(0));
    let good = image.layers[0].clone();
    // Wrong content of the right size on the first attempt, then the truth.
    fake.route(&layer_path, move |req, hit| {
        if hit == 1 {
            Reply::new(200, vec![0u8; good.len()])
        } else {
            ranged(req, &good)
        }
    });
    let (code, report, stderr, dir) = bundle(&fake, "app:1", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["totals"]["retries"], 1);
    assert!(stderr.contains("digest mismatch"), "{stderr}");
    assert_eq!(
        ferry_out(&["verify", dir.path().join("b").to_str().unwrap()]).0,
        0
    );

    // Always wrong: the image fails naming expected and actual digests; nothing bad is stored.
    let zeros = vec![0u8; image.layers[0].len()];
    let actual = ferry::digest::Digest::sha256_of(&zeros).to_string();
    fake.route(&layer_path, move |_, _| Reply::new(200, zeros.clone()));
    let (code, report, stderr, dir) = bundle(&fake, "app:1", &["--retries", "2"]);
    assert_eq!(code, 1);
    let error = report["images"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("expected {}, got {actual}", image.layer_digest(0))),
        "{error}"
    );
    assert!(stderr.contains("failed after 3 attempts"), "{stderr}");
    let b = dir.path().join("b");
    assert!(!blob_path(&b, &image.layer_digest(0)).exists());
    assert!(!blob_path(&b, &actual).exists());
    assert_eq!(
        partial_bytes(&b),
        0,
        "the wrong bytes are not kept for resume"
    );
}

#[test]
fn wrong_sizes() {
    let fake = Fake::start();
    let image = TestImage::random(4, &[30_000]);
    fake.serve_image("app", "1", &image);
    let layer_path = format!("/v2/app/blobs/{}", image.layer_digest(0));
    // More bytes than the manifest declares: refused before they are written.
    let mut long = image.layers[0].clone();
    long.extend_from_slice(b"trailing garbage");
    fake.route(&layer_path, move |_, _| Reply::new(200, long.clone()));
    let (code, report, _, _dir) = bundle(&fake, "app:1", &["--retries", "1"]);
    assert_eq!(code, 1);
    let error = report["images"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("sends 30016 bytes for a blob of 30000 bytes"),
        "{error}"
    );

    // A body cut short (Content-Length says more): resumed from where it broke off.
    let good = image.layers[0].clone();
    fake.route(&layer_path, move |req, hit| {
        if hit == 1 {
            let mut r = Reply::new(200, good[..12_000].to_vec());
            r.declared_len = Some(good.len());
            r
        } else {
            ranged(req, &good)
        }
    });
    let (code, report, stderr, _dir) = bundle(&fake, "app:1", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["totals"]["resumes"], 1);
    let seen = fake.seen(&layer_path);
    assert_eq!(
        seen.last()
            .unwrap()
            .headers
            .get("range")
            .map(String::as_str),
        Some("bytes=12000-29999")
    );
}

#[test]
fn a_206_with_the_wrong_content_range_starts_over() {
    let fake = Fake::start();
    let image = TestImage::random(5, &[30_000]);
    fake.serve_image("app", "1", &image);
    let layer_path = format!("/v2/app/blobs/{}", image.layer_digest(0));
    let good = image.layers[0].clone();
    fake.route(&layer_path, move |req, hit| match hit {
        1 => {
            let mut r = Reply::new(200, good[..10_000].to_vec());
            r.declared_len = Some(good.len());
            r
        }
        // Asked for 10000-29999, answers from 0: those bytes cannot be placed.
        2 => Reply::new(206, good.clone())
            .header("Content-Range", &format!("bytes 0-29999/{}", good.len())),
        _ => ranged(req, &good),
    });
    let (code, _, stderr, dir) = bundle(&fake, "app:1", &[]);
    assert_eq!(code, 0, "{stderr}");
    let seen = fake.seen(&layer_path);
    assert_eq!(seen.len(), 3);
    assert!(seen[1].headers.contains_key("range"));
    assert!(
        !seen[2].headers.contains_key("range"),
        "started over with a plain GET"
    );
    assert_eq!(
        ferry_out(&["verify", dir.path().join("b").to_str().unwrap()]).0,
        0
    );
}

#[test]
fn not_found_and_forbidden_are_not_retried() {
    let fake = Fake::start();
    fake.route("/v2/denied/manifests/1", |_, _| {
        Reply::new(403, r#"{"errors":[{"code":"DENIED","message":"no"}]}"#)
    });
    let (code, report, stderr, _dir) = bundle(&fake, "missing:1", &[]);
    assert_eq!(code, 1);
    assert!(
        report["images"][0]["error"]
            .as_str()
            .unwrap()
            .contains("NAME_UNKNOWN"),
        "{report}"
    );
    assert!(!stderr.contains("retry"), "{stderr}");
    assert_eq!(fake.seen("/v2/missing/").len(), 1);
    let (code, _, stderr, _dir) = bundle(&fake, "denied:1", &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("denied access") && stderr.contains("DENIED: no"),
        "{stderr}"
    );
    assert_eq!(fake.seen("/v2/denied/").len(), 1);
}

#[test]
fn oversized_schema1_and_mismatched_manifests_are_refused() {
    let fake = Fake::start();
    fake.route("/v2/big/manifests/1", |_, _| {
        Reply::new(200, vec![b' '; 5 << 20])
    });
    let (code, _, stderr, _dir) = bundle(&fake, "big:1", &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("refuses manifests over 4194304 bytes (4 MiB)"),
        "{stderr}"
    );
    assert_eq!(fake.seen("/v2/big/").len(), 1, "not retried");

    fake.route("/v2/old/manifests/1", |_, _| {
        Reply::new(
            200,
            r#"{"schemaVersion":1,"name":"old","tag":"1","fsLayers":[],"signatures":[]}"#,
        )
        .header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        )
    });
    let (code, _, stderr, _dir) = bundle(&fake, "old:1", &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("Docker schema 1 manifest, which ferry refuses"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: re-push the image"), "{stderr}");

    // A by-digest reference whose manifest hashes to something else.
    let image = TestImage::random(6, &[100]);
    let other = TestImage::random(7, &[100]);
    let m = other.manifest.clone();
    fake.route(
        &format!("/v2/pinned/manifests/{}", image.digest),
        move |_, _| Reply::new(200, m.clone()),
    );
    let (code, _, stderr, _dir) = bundle(&fake, &format!("pinned@{}", image.digest), &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "the reference pins {}, content hashes to {}",
            image.digest, other.digest
        )),
        "{stderr}"
    );
}

#[test]
fn redirects_are_followed_without_credentials_and_401_reauthenticates_once() {
    let storage = Fake::start();
    let registry = Fake::start();
    let image = TestImage::random(8, &[20_000]);
    registry.serve_image("app", "1", &image);
    // Token auth, as Docker Hub, GHCR and Quay do it (anonymous tokens here).
    let realm = format!("http://{}/token", registry.addr);
    registry.route("/v2/", move |_, _| {
        Reply::new(401, "{}").header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="{realm}",service="fake""#),
        )
    });
    registry.route("/token", |_, hit| {
        Reply::new(200, format!(r#"{{"token":"tok{hit}","expires_in":300}}"#))
    });
    // The layer lives in object storage: the registry answers 307.
    let layer = image.layers[0].clone();
    let digest = image.layer_digest(0);
    storage.route(&format!("/bucket/{digest}"), move |req, _| {
        ranged(req, &layer)
    });
    let location = format!(
        "http://{}/bucket/{digest}?X-Amz-Signature=secret",
        storage.addr
    );
    registry.route(&format!("/v2/app/blobs/{digest}"), move |req, hit| {
        // The first blob request finds the token expired.
        if hit == 1
            || !req
                .headers
                .get("authorization")
                .is_some_and(|a| a.starts_with("Bearer tok"))
        {
            return Reply::new(401, "{}");
        }
        Reply::new(307, "").header("Location", &location)
    });
    let (code, _, stderr, dir) = bundle(&registry, "app:1", &[]);
    assert_eq!(code, 0, "{stderr}");
    let fetched = storage.seen("/bucket/");
    assert_eq!(fetched.len(), 1);
    assert!(
        !fetched[0].headers.contains_key("authorization"),
        "credentials never go to the redirected host"
    );
    assert!(
        registry
            .seen("/v2/app/manifests/")
            .iter()
            .all(|r| r.headers.contains_key("authorization"))
    );
    assert_eq!(
        registry.seen("/token").len(),
        2,
        "one token, then one renewal after the 401"
    );
    assert!(
        !stderr.contains("secret"),
        "signed URLs are not printed: {stderr}"
    );
    assert_eq!(
        ferry_out(&["verify", dir.path().join("b").to_str().unwrap()]).0,
        0
    );

    // A 401 that persists after re-authenticating fails (no loop), with a hint.
    registry.route(&format!("/v2/app/blobs/{digest}"), |_, _| {
        Reply::new(401, "{}")
    });
    let (code, _, stderr, _dir) = bundle(&registry, "app:1", &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("requires authentication"), "{stderr}");
    assert_eq!(
        registry.seen(&format!("/v2/app/blobs/{digest}")).len(),
        2 + 2,
        "two more: the request and one re-try"
    );
}
