//! Redirects a registry sends to its storage, from the in-process fake: followed without
//! credentials, a 401 re-authenticating once, and pre-signed URLs that expired.

use crate::common;
use crate::faults::bundle;

use common::fake::{Fake, Reply, TestImage, ranged};
use common::*;

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

#[test]
fn an_expired_presigned_url_is_retried_and_never_printed() {
    // A 403 (S3's AccessDenied) and a 401 (what some storage answers) alike.
    for status in [403, 401] {
        expired_presigned_url(status);
    }
}

fn expired_presigned_url(status: u16) {
    let (storage, registry) = (Fake::start(), Fake::start());
    let image = TestImage::random(34, &[20_000]);
    registry.serve_image("app", "1", &image);
    let digest = image.layer_digest(0);
    let layer = image.layers[0].clone();
    storage.route(&format!("/bucket/{digest}"), move |req, hit| {
        if hit == 1 {
            return Reply::new(status, "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>");
        }
        ranged(req, &layer)
    });
    let location = format!(
        "http://{}/bucket/{digest}?X-Amz-Signature=topsecret",
        storage.addr
    );
    registry.route(&format!("/v2/app/blobs/{digest}"), move |_, _| {
        Reply::new(307, "").header("Location", &location)
    });
    let (code, report, stderr, _dir) = bundle(&registry, "app:1", &[]);
    assert_eq!(code, 0, "{status}: {stderr}");
    assert_eq!(report["totals"]["retries"], 1, "{status}");
    assert!(
        stderr.contains("AccessDenied: Request has expired"),
        "the storage's own words: {stderr}"
    );
    assert!(
        stderr.contains(&format!("/bucket/{digest}?…")),
        "the URL, without its query: {stderr}"
    );
    assert!(!stderr.contains("topsecret"), "{stderr}");
}
