//! `ferry push` against a fake target that lies or refuses: a `Docker-Content-Digest` other
//! than the bundle's, 403s and a quota, Ctrl-C mid-upload, and the transfer caps.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::fake::{Fake, Reply, Seen, TestImage};
use common::*;

/// A bundle of one image with `layers` random layers of 20 kB, made from a fake source.
fn bundle_of(dir: &Path, layers: usize) -> PathBuf {
    let source = Fake::start();
    let image = TestImage::random(90 + layers as u64, &vec![20_000; layers]);
    source.serve_image("team/app", "1", &image);
    let b = dir.join("b");
    let name = format!("{}/team/app:1", source.addr);
    let (code, _, stderr) = ferry_out(&["bundle", "-q", "-o", b.to_str().unwrap(), &name]);
    assert_eq!(code, 0, "{stderr}");
    b
}

/// The query parameter `key` of a request path.
fn query(path: &str, key: &str) -> Option<String> {
    let q = path.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Makes `fake` a push target: no blob or manifest present, uploads accepted (`upload` may
/// answer a blob's upload instead), manifests answered by `manifest`; a manifest it accepted
/// (2xx) is served back by tag and by digest, as push's read-back asks.
fn push_target(
    fake: &Fake,
    upload: impl Fn(&Seen) -> Option<Reply> + Send + Sync + 'static,
    manifest: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
) {
    // What was accepted: path (by tag or digest) -> (digest, body).
    type Stored = std::collections::HashMap<String, (String, Vec<u8>)>;
    let stored = std::sync::Arc::new(std::sync::Mutex::new(Stored::new()));
    let keep = stored.clone();
    let accept = move |req: &Seen, path: &str| {
        let reply = manifest(req);
        if (200..300).contains(&reply.status) {
            let entry = (sha256(req.body.as_bytes()), req.body.clone().into_bytes());
            let repo = path.rsplit_once("/manifests/").unwrap().0;
            let mut keep = keep.lock().unwrap();
            keep.insert(format!("{repo}/manifests/{}", entry.0), entry.clone());
            keep.insert(path.to_owned(), entry);
        }
        reply
    };
    let served = move |req: &Seen, path: &str| {
        let Some((digest, body)) = stored.lock().unwrap().get(path).cloned() else {
            return Reply::new(
                404,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}"#,
            );
        };
        let len = body.len();
        let mut r = Reply::new(
            200,
            if req.method == "HEAD" {
                Vec::new()
            } else {
                body
            },
        )
        .header("Docker-Content-Digest", &digest)
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json");
        r.declared_len = Some(len);
        r
    };
    fake.guard(move |req| {
        let path = req.path.split('?').next().unwrap();
        let reply = match req.method.as_str() {
            "GET" if path == "/v2/" => Reply::new(200, "{}"),
            "POST" if path.ends_with("/blobs/uploads/") => {
                let session = format!("{path}session-{}", req.body.len());
                upload(req).unwrap_or_else(|| Reply::new(202, "").header("Location", &session))
            }
            "PUT" if path.contains("/blobs/uploads/") => {
                let digest = query(&req.path, "digest").unwrap_or_default();
                upload(req)
                    .unwrap_or_else(|| Reply::new(201, "").header("Docker-Content-Digest", &digest))
            }
            "PUT" if path.contains("/manifests/") => accept(req, path),
            "HEAD" | "GET" if path.contains("/manifests/") => served(req, path),
            _ => Reply::new(404, r#"{"errors":[{"code":"NOT_FOUND","message":"no"}]}"#),
        };
        Some(reply)
    });
}

/// The paths of the manifest PUTs the target saw.
fn manifest_puts(fake: &Fake) -> Vec<String> {
    fake.seen("/")
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/manifests/"))
        .map(|r| r.path)
        .collect()
}

fn push(bundle: &Path, target: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["push", bundle.to_str().unwrap(), target, "--json"];
    args.extend(extra);
    let (code, stdout, stderr) = ferry_out(&args);
    let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (code, report, stderr)
}

#[test]
fn a_registry_digest_other_than_the_bundles_fails_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_of(dir.path(), 1);
    let target = Fake::start();
    let lie = format!("sha256:{}", "0".repeat(64));
    let l = lie.clone();
    push_target(
        &target,
        |_| None,
        move |_| Reply::new(201, "").header("Docker-Content-Digest", &l),
    );
    let (code, report, stderr) = push(&b, &target.addr, &[]);
    assert_eq!(code, 1, "{stderr}");
    let image = &report["images"][0];
    assert_eq!(image["status"], "failed", "{report}");
    let message = image["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&lie), "{report}");
    // The manifest went up once (by tag: a single manifest is its own tag's content); the lie
    // is caught on that answer and nothing else is put.
    assert_eq!(
        manifest_puts(&target).len(),
        1,
        "{:?}",
        manifest_puts(&target)
    );
}

#[test]
fn refusals_403_and_a_quota_fail_their_image_with_the_registrys_words() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_of(dir.path(), 1);
    for (status, code, message) in [
        (403, "DENIED", "requested access to the resource is denied"),
        (
            403,
            "DENIED",
            "adding 20.0 KiB of storage resource, which when updated to current usage of \
             1.0 GiB will exceed the configured upper limit of 1.0 GiB",
        ),
        (413, "SIZE_INVALID", "quota exceeded"),
    ] {
        let target = Fake::start();
        let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#);
        push_target(
            &target,
            move |req| (req.method == "POST").then(|| Reply::new(status, body.clone())),
            |_| Reply::new(500, "not reached"),
        );
        let (exit, report, stderr) = push(&b, &target.addr, &["--retries", "0"]);
        assert_eq!(exit, 1, "{status}: {stderr}");
        assert_eq!(report["images"][0]["status"], "failed", "{report}");
        assert!(
            stderr.contains(&format!("{code}: {message}")),
            "{status}: {stderr}"
        );
        assert!(stderr.contains("hint: "), "{status}: {stderr}");
        // The next step, and the failed image's own digest (the bundle's, from index.json).
        assert!(
            stderr.contains("then run the same command again")
                && stderr.contains(&format!(
                    "--ref {}/team/app:1",
                    report["images"][0]["source"]
                        .as_str()
                        .unwrap()
                        .split('/')
                        .next()
                        .unwrap()
                )),
            "{stderr}"
        );
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(b.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            report["images"][0]["digest"], index["manifests"][0]["digest"],
            "{report}"
        );
        assert!(manifest_puts(&target).is_empty(), "nothing tagged");
    }
}

#[test]
fn ctrl_c_during_a_push_exits_130_and_tags_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_of(dir.path(), 2);
    let target = Fake::start();
    // Blob bodies are taken but never answered: the push is mid-upload for as long as needed.
    push_target(
        &target,
        |req| {
            (req.method == "PUT").then(|| {
                let mut r = Reply::new(201, "");
                r.delay = Some(Duration::from_secs(600));
                r
            })
        },
        |_| Reply::new(500, "not reached"),
    );
    let mut child = Reaped(
        ferry()
            .args(["push", b.to_str().unwrap(), &target.addr, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for(60, "a blob upload in flight", || {
        target
            .seen("/")
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"))
    });
    unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) };
    let mut code = None;
    wait_for(60, "ferry push to stop", || {
        code = child.0.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut stdout).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, Some(Some(130)), "{stderr}");
    assert!(stderr.contains("no tag is set"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["images"][0]["status"], "unfinished", "{report}");
    assert!(manifest_puts(&target).is_empty(), "a tag was set");
}

#[test]
fn push_keeps_to_the_per_registry_cap() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_of(dir.path(), 12);
    for (cap, must_exceed) in [(2usize, false), (6, true)] {
        let target = Fake::start();
        // Each upload answered slowly, so that they overlap.
        push_target(
            &target,
            |req| {
                (req.method == "PUT").then(|| {
                    let digest = query(&req.path, "digest").unwrap_or_default();
                    let mut r = Reply::new(201, "").header("Docker-Content-Digest", &digest);
                    r.delay = Some(Duration::from_millis(150));
                    r
                })
            },
            |req| Reply::new(201, "").header("Docker-Content-Digest", &sha256(req.body.as_bytes())),
        );
        let cap_s = cap.to_string();
        let (code, report, stderr) = push(
            &b,
            &target.addr,
            &["--jobs", "16", "--jobs-per-registry", &cap_s],
        );
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(report["totals"]["blobsUploaded"], 13, "{report}");
        let max = target
            .in_flight
            .max
            .load(std::sync::atomic::Ordering::SeqCst);
        if must_exceed {
            assert!(max > 2, "cap {cap}: only {max} at once");
        }
        assert!(max <= cap, "cap {cap}: {max} requests in flight at once");
    }
}
