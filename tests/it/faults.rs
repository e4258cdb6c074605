//! Registry faults a real registry will not produce on demand, from the in-process fake:
//! rate limits, server errors, lies about content, redirects, oversized and schema 1 manifests.

use crate::common;

use common::fake::{Fake, Reply, TestImage, ranged};
use common::*;

pub(crate) fn bundle(
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
    let (code, report, stderr, _dir) = bundle(&fake, "app:1", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["totals"]["ok"], 1);
    // Waited: the registry saw the retry at least 2 s after the 429 (a gap a busy machine can
    // only lengthen).
    let asked = fake.seen("/v2/app/manifests/1");
    assert_eq!(asked.len(), 2);
    assert!(
        asked[1].at - asked[0].at >= std::time::Duration::from_secs(2),
        "the retry came {:?} after the 429",
        asked[1].at - asked[0].at
    );
    assert!(
        stderr.contains("is rate limiting (429)") && stderr.contains("retrying in 2.0 s"),
        "{stderr}"
    );
    assert_eq!(
        report["totals"]["retries"], 1,
        "manifest retries count too: {report}"
    );
}

/// 408 Request Timeout is retried like a 5xx, on manifests and blobs alike.
#[test]
fn request_timeouts_are_retried() {
    let fake = Fake::start();
    let image = TestImage::random(3, &[20_000]);
    fake.serve_image("app", "1", &image);
    let (manifest, layer) = (image.manifest.clone(), image.layers[0].clone());
    let timeout = || Reply::new(408, r#"{"errors":[{"code":"TIMEOUT","message":"slow"}]}"#);
    fake.route("/v2/app/manifests/1", move |_, hit| match hit {
        1 => timeout(),
        _ => Reply::new(200, manifest.clone())
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
    });
    let layer_path = format!("/v2/app/blobs/{}", image.layer_digest(0));
    fake.route(&layer_path, move |req, hit| match hit {
        1 => timeout(),
        _ => ranged(req, &layer),
    });
    let (code, report, stderr, _dir) = bundle(&fake, "app:1", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["totals"]["retries"], 2, "{report}");
    assert_eq!(fake.seen("/v2/app/manifests/1").len(), 2);
    assert_eq!(fake.seen(&layer_path).len(), 2);
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
    let actual = sha256(&zeros);
    fake.route(&layer_path, move |_, _| Reply::new(200, zeros.clone()));
    let (code, report, stderr, dir) = bundle(&fake, "app:1", &["--retries", "2"]);
    assert_eq!(code, 1);
    let error = report["images"][0]["error"]["message"].as_str().unwrap();
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
    let error = report["images"][0]["error"]["message"].as_str().unwrap();
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
        report["images"][0]["error"]["message"]
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
fn no_more_requests_in_flight_than_the_per_registry_cap() {
    let fake = Fake::start();
    // 12 layers, each answered slowly, so that downloads overlap.
    let image = TestImage::random(30, &[20_000; 12]);
    fake.serve_image("app", "1", &image);
    for (digest, bytes) in image.blobs() {
        fake.route(&format!("/v2/app/blobs/{digest}"), move |req, _| {
            let mut r = ranged(req, &bytes);
            r.delay = Some(std::time::Duration::from_millis(150));
            r
        });
    }
    for (cap, must_exceed) in [(3usize, false), (8, true)] {
        fake.in_flight
            .max
            .store(0, std::sync::atomic::Ordering::SeqCst);
        let cap_s = cap.to_string();
        let (code, _, stderr, _dir) = bundle(
            &fake,
            "app:1",
            &["--jobs", "16", "--jobs-per-registry", &cap_s],
        );
        assert_eq!(code, 0, "{stderr}");
        let max = fake.in_flight.max.load(std::sync::atomic::Ordering::SeqCst);
        if must_exceed {
            assert!(
                max > 3,
                "cap {cap}: only {max} at once; the measure must be able to see more than 3"
            );
        } else {
            assert!(
                max <= cap,
                "cap {cap}: {max} requests were in flight at once"
            );
        }
    }
}

#[test]
fn a_registry_that_ignores_range_and_keeps_breaking_off_runs_out_of_retries() {
    let fake = Fake::start();
    let image = TestImage::random(31, &[200_000]);
    fake.serve_image("app", "1", &image);
    let layer_path = format!("/v2/app/blobs/{}", image.layer_digest(0));
    let good = image.layers[0].clone();
    // Always the whole blob from byte 0, whatever the Range, cut after 50 KB.
    fake.route(&layer_path, move |_, _| {
        let mut r = Reply::new(200, good[..50_000].to_vec());
        r.declared_len = Some(good.len());
        r
    });
    let (code, report, stderr, _dir) = bundle(&fake, "app:1", &["--retries", "2"]);
    assert_eq!(code, 1, "{stderr}");
    // The first attempt got 50 KB (progress); then three in a row got no further.
    assert_eq!(
        fake.seen(&layer_path).len(),
        4,
        "--retries 2 after the last progress"
    );
    assert_eq!(report["totals"]["retries"], 3, "{report}");
    assert!(
        report["images"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broke off"),
        "{report}"
    );
}

#[test]
fn a_blob_shared_by_two_registries_comes_from_the_one_that_serves_it() {
    // Two images sharing a base layer, which one registry refuses to serve. The refusing one
    // is the one whose reference sorts first: the one the plan asks first for the shared blob
    // (the first image that uses it), so the fallback is what runs.
    let (one, two) = (Fake::start(), Fake::start());
    let (refusing, healthy) = if format!("{}/app:1", one.addr) < format!("{}/app:1", two.addr) {
        (one, two)
    } else {
        (two, one)
    };
    let base = TestImage::random(32, &[30_000]).layers[0].clone();
    let mine = TestImage::random(36, &[1_000]).layers[0].clone();
    let theirs = TestImage::random(37, &[2_000]).layers[0].clone();
    let a = TestImage::from_layers(vec![base.clone(), mine]);
    let b = TestImage::from_layers(vec![base.clone(), theirs]);
    refusing.serve_image("app", "1", &a);
    healthy.serve_image("app", "1", &b);
    refusing.route(&format!("/v2/app/blobs/{}", a.layer_digest(0)), |_, _| {
        Reply::new(403, r#"{"errors":[{"code":"DENIED","message":"no"}]}"#)
    });
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (a, h) = (
        format!("{}/app:1", refusing.addr),
        format!("{}/app:1", healthy.addr),
    );
    let (code, _, stderr) = ferry_out(&["bundle", "-o", b.to_str().unwrap(), &a, &h]);
    assert_eq!(code, 0, "{stderr}");
    assert!(index_entry(&b, &a).is_some() && index_entry(&b, &h).is_some());
    // The refusing registry was asked for the shared blob, and the healthy one served it.
    let base_path = format!("/v2/app/blobs/{}", sha256(&base));
    assert!(
        !refusing.seen(&base_path).is_empty(),
        "the refusal never ran"
    );
    assert!(!healthy.seen(&base_path).is_empty());
}

#[test]
fn a_registry_silent_before_the_headers_is_cut_at_the_response_timeout() {
    let fake = Fake::start();
    let image = TestImage::random(33, &[10_000]);
    fake.serve_image("app", "1", &image);
    let layer_path = format!("/v2/app/blobs/{}", image.layer_digest(0));
    let good = image.layers[0].clone();
    fake.route(&layer_path, move |req, hit| {
        let mut r = ranged(req, &good);
        if hit == 1 {
            r.delay = Some(std::time::Duration::from_secs(600));
        }
        r
    });
    let (code, report, stderr, _dir) = bundle(&fake, "app:1", &["--response-timeout", "1s"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("no response in 1 s"), "{stderr}");
    assert_eq!(report["totals"]["retries"], 1);
}

#[test]
fn the_largest_blobs_start_first() {
    let fake = Fake::start();
    let image = TestImage::random(35, &[10_000, 300_000, 50_000, 200_000]);
    fake.serve_image("app", "1", &image);
    let (code, _, stderr, _dir) = bundle(&fake, "app:1", &["--jobs", "1"]);
    assert_eq!(code, 0, "{stderr}");
    let order: Vec<String> = fake
        .seen("/v2/app/blobs/")
        .iter()
        .map(|s| s.path.rsplit('/').next().unwrap().to_owned())
        .filter(|d| {
            image
                .layers
                .iter()
                .any(|l| common::fake::digest_of(l) == *d)
        })
        .collect();
    let expected: Vec<String> = [1, 3, 2, 0]
        .iter()
        .map(|&i| image.layer_digest(i))
        .collect();
    assert_eq!(order, expected);
}

#[test]
fn an_unsupported_digest_fails_that_image_only() {
    let fake = Fake::start();
    let good = TestImage::random(40, &[1000]);
    fake.serve_image("good", "1", &good);
    // A layer descriptor with a sha384 digest: oci-spec accepts it, ferry cannot verify it.
    let odd = TestImage::random(41, &[1000]);
    let mut doc: serde_json::Value = serde_json::from_slice(&odd.manifest).unwrap();
    doc["layers"][0]["digest"] = format!("sha384:{}", "a".repeat(96)).into();
    let bytes = serde_json::to_vec(&doc).unwrap();
    fake.serve_image("odd", "1", &odd);
    fake.route("/v2/odd/manifests/1", move |_, _| {
        Reply::new(200, bytes.clone())
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
    });
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        b.to_str().unwrap(),
        &format!("{}/odd:1", fake.addr),
        &format!("{}/good:1", fake.addr),
    ]);
    assert_eq!(code, 1, "a failure, not a crash: {stderr}");
    assert!(stderr.contains("unsupported algorithm"), "{stderr}");
    assert!(
        index_entry(&b, &format!("{}/good:1", fake.addr)).is_some(),
        "the other image is bundled"
    );
}

#[test]
fn an_index_listing_a_platform_twice_verifies() {
    // podman's --add-compression writes gzip and zstd variants of one platform.
    let fake = Fake::start();
    let (gzip, zstd) = (
        TestImage::random(42, &[1000]),
        TestImage::random(43, &[1000]),
    );
    fake.serve_image("app", "gzip", &gzip);
    fake.serve_image("app", "zstd", &zstd);
    let entry = |i: &TestImage| serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": i.digest, "size": i.manifest.len(), "platform": {"os": "linux", "architecture": "amd64"}});
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [entry(&gzip), entry(&zstd)]})).unwrap();
    fake.route("/v2/app/manifests/1", move |_, _| {
        Reply::new(200, index.clone())
            .header("Content-Type", "application/vnd.oci.image.index.v1+json")
    });
    let (code, _, stderr, dir) = bundle(&fake, "app:1", &["--platform", "linux/amd64"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = ferry_out(&["verify", dir.path().join("b").to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}
