//! Slow, stubborn and hostile peers from the in-process fake, scaled down to run fast: headers
//! slower than the stall timeout, bodies that drip, redirect loops, absurd Retry-After dates,
//! oversized tokens and error bodies, a plain-HTTP server silent on a TLS hello, malformed
//! --mirror and timeouts. Each test asserts what ferry does, not how long it took.

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::fake::{Fake, Reply, TestImage, ranged};
use common::*;

fn bundle(fake_addr: &str, image: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let name = format!("{fake_addr}/{image}");
    let mut args = vec!["bundle", "--json", "-o", b.to_str().unwrap(), &name];
    args.extend(extra);
    let (code, stdout, stderr) = ferry_out(&args);
    let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (code, report, stderr)
}

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn headers_slower_than_the_stall_timeout_arrive_within_the_response_timeout() {
    let fake = Fake::start();
    let image = TestImage::random(61, &[2000]);
    fake.serve_image("app", "1", &image);
    let m = image.manifest.clone();
    // Every answer takes longer than --stall-timeout to begin: capping the wait for headers at
    // the stall timeout would never succeed.
    fake.route("/v2/app/manifests/1", move |_, _| {
        let mut r = Reply::new(200, m.clone()).header("Content-Type", MANIFEST_TYPE);
        r.delay = Some(Duration::from_millis(2500));
        r
    });
    let (code, report, stderr) = bundle(
        &fake.addr,
        "app:1",
        &["--stall-timeout", "1s", "--response-timeout", "20s"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["totals"]["retries"], 0, "{report}");
    assert_eq!(fake.seen("/v2/app/manifests/1").len(), 1);
}

#[test]
fn a_dripping_body_is_cut_and_resumed() {
    let fake = Fake::start();
    let image = TestImage::random(62, &[5000]);
    fake.serve_image("app", "1", &image);
    let layer_path = format!("/v2/app/blobs/{}", image.layer_digest(0));
    let layer = image.layers[0].clone();
    fake.route(&layer_path, move |req, hit| {
        let mut r = ranged(req, &layer);
        if hit == 1 {
            // 20 bytes a second: never silent for a whole second, far under 1 KiB/s.
            r.drip = Some(Duration::from_millis(50));
        }
        r
    });
    let (code, report, stderr) = bundle(&fake.addr, "app:1", &["--stall-timeout", "1s"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("too slow") && stderr.contains("--min-rate"),
        "{stderr}"
    );
    let seen = fake.seen(&layer_path);
    assert_eq!(seen.len(), 2, "cut once, then fetched again");
    assert!(
        seen[1].headers.contains_key("range"),
        "the bytes that dripped in are kept: {:?}",
        seen[1].headers
    );
    assert_eq!(report["totals"]["ok"], 1);
}

#[test]
fn a_body_that_always_drips_fails_once_its_retries_are_spent() {
    let fake = Fake::start();
    let image = TestImage::random(63, &[5000]);
    fake.serve_image("app", "1", &image);
    let layer_path = format!("/v2/app/blobs/{}", image.layer_digest(0));
    let layer = image.layers[0].clone();
    fake.route(&layer_path, move |req, _| {
        let mut r = ranged(req, &layer);
        r.drip = Some(Duration::from_millis(50));
        r
    });
    let (code, _, stderr) = bundle(
        &fake.addr,
        "app:1",
        &["--stall-timeout", "1s", "--retries", "1"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("too slow") && stderr.contains("failed after 2 attempts"),
        "the trickle is no progress that resets the retries: {stderr}"
    );
    assert_eq!(fake.seen(&layer_path).len(), 2);
}

#[test]
fn min_rate_0_lets_a_slow_body_finish() {
    let fake = Fake::start();
    let image = TestImage::random(64, &[40]);
    fake.serve_image("app", "1", &image);
    let layer_path = format!("/v2/app/blobs/{}", image.layer_digest(0));
    let layer = image.layers[0].clone();
    fake.route(&layer_path, move |req, _| {
        let mut r = ranged(req, &layer);
        r.drip = Some(Duration::from_millis(50));
        r
    });
    let (code, report, stderr) = bundle(
        &fake.addr,
        "app:1",
        &["--stall-timeout", "1s", "--min-rate", "0"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["totals"]["ok"], 1, "{report}");
    // Never cut for its rate (a scheduling gap of over 1 s on a loaded machine may still cut
    // it as stalled, which is another check's business).
    assert!(!stderr.contains("too slow"), "{stderr}");
}

#[test]
fn zero_timeouts_and_malformed_mirrors_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let out = b.to_str().unwrap();
    for (flag, value, says) in [
        ("--stall-timeout", "0s", "must be more than 0"),
        ("--response-timeout", "0s", "must be more than 0"),
        ("--mirror", "https", "expected SOURCE=MIRROR"),
        ("--mirror", "docker.io=", "expected SOURCE=MIRROR"),
        (
            "--mirror",
            "docker.io=https://mirror.example",
            "https:// scheme",
        ),
        ("--mirror", "docker.io=mirror.example:70000", "bad port"),
        (
            "--mirror",
            "docker.io=me:pw-xyzzy@mirror.example",
            "holds credentials",
        ),
    ] {
        let (code, stdout, stderr) =
            ferry_out(&["bundle", "-o", out, flag, value, "127.0.0.1:9/app:1"]);
        assert_eq!(code, 2, "{flag} {value}: {stderr}");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
        assert!(!stderr.contains("cannot reach"), "{stderr}");
        assert!(
            !format!("{stdout}{stderr}").contains("pw-xyzzy"),
            "{stderr}"
        );
        assert!(!b.exists(), "nothing written for a usage error");
    }
}

#[test]
fn a_redirect_loop_fails_at_once_without_showing_the_signature() {
    let fake = Fake::start();
    fake.route("/v2/app/manifests/1", |req, _| {
        Reply::new(302, "").header(
            "Location",
            &format!(
                "{}?X-Amz-Signature=s3cr3t-sig",
                req.path.split('?').next().unwrap()
            ),
        )
    });
    let (code, _, stderr) = bundle(&fake.addr, "app:1", &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("too many redirects"), "{stderr}");
    assert!(!stderr.contains("s3cr3t-sig"), "{stderr}");
    assert!(
        !stderr.contains("retrying"),
        "a loop is not retried: {stderr}"
    );
    assert!(
        fake.seen("/v2/app/manifests/1").len() <= 11,
        "one attempt's redirects only"
    );
}

#[test]
fn an_absurd_retry_after_date_is_ignored_not_a_crash() {
    let fake = Fake::start();
    let image = TestImage::random(65, &[1000]);
    fake.serve_image("app", "1", &image);
    let m = image.manifest.clone();
    fake.route("/v2/app/manifests/1", move |_, hit| match hit {
        1 => Reply::new(429, "{}").header("Retry-After", "Sun, 06 Nov 292277026596 08:49:37 GMT"),
        _ => Reply::new(200, m.clone()).header("Content-Type", MANIFEST_TYPE),
    });
    let (code, report, stderr) = bundle(&fake.addr, "app:1", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["totals"]["retries"], 1, "{report}");
    // Ignored: the wait is the ordinary backoff (10 ms base in tests), not the date nor the
    // 5-minute cap a parsed date would hit.
    let waits: Vec<f64> = stderr
        .split("retrying in ")
        .skip(1)
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(waits.len(), 1, "{stderr}");
    assert!(waits[0] < 1.0, "{stderr}");
}

/// A fake whose every repository wants a token from its own `/token`.
fn token_fake(token_reply: impl Fn() -> Reply + Send + Sync + 'static) -> Fake {
    let fake = Fake::start();
    let challenge = format!(
        r#"Bearer realm="http://{}/token",service="fake""#,
        fake.addr
    );
    fake.guard(move |req| {
        (req.path.starts_with("/v2/") && !req.headers.contains_key("authorization"))
            .then(|| Reply::new(401, "{}").header("WWW-Authenticate", &challenge))
    });
    fake.route("/token", move |_, _| token_reply());
    fake
}

#[test]
fn a_token_response_over_1_mib_is_refused() {
    let fake = token_fake(|| {
        let token = "a".repeat(2 << 20);
        Reply::new(200, format!(r#"{{"token":"{token}"}}"#))
    });
    let (code, _, stderr) = bundle(&fake.addr, "app:1", &["--retries", "0"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the token server of {} sent a response over 1024 KiB",
            fake.addr
        )),
        "{stderr}"
    );
}

#[test]
fn a_huge_error_body_gives_its_message() {
    let fake = Fake::start();
    fake.route("/v2/app/manifests/1", |_, _| {
        let mut body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"gone"}]}"#.to_vec();
        body.resize(32 << 20, b' ');
        Reply::new(404, body)
    });
    let (code, _, stderr) = bundle(&fake.addr, "app:1", &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("MANIFEST_UNKNOWN: gone"), "{stderr}");
}

/// A plain-HTTP front for `upstream` that, like many small HTTP servers, reads a TLS hello as
/// the start of a request line and waits for the rest: the connection stays open and silent.
/// It records whether the first plain-HTTP request came while a TLS probe was still open.
struct SilentOnTls {
    addr: String,
    http_while_tls_open: Arc<AtomicBool>,
    http_seen: Arc<AtomicBool>,
    /// Whether a TLS probe had arrived when the first plain-HTTP request did (within 10 s).
    tls_seen_first: Arc<AtomicBool>,
}

fn silent_on_tls(upstream: String) -> SilentOnTls {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let tls_seen = Arc::new(AtomicUsize::new(0));
    let tls_closed = Arc::new(AtomicUsize::new(0));
    let http_seen = Arc::new(AtomicBool::new(false));
    let http_while_tls_open = Arc::new(AtomicBool::new(false));
    let tls_seen_first = Arc::new(AtomicBool::new(false));
    let (hs, hw, first_tls) = (
        http_seen.clone(),
        http_while_tls_open.clone(),
        tls_seen_first.clone(),
    );
    std::thread::spawn(move || {
        for conn in listener.incoming().take(64) {
            let Ok(mut conn) = conn else { break };
            let (tls_seen, tls_closed) = (tls_seen.clone(), tls_closed.clone());
            let (hs, hw, upstream) = (hs.clone(), hw.clone(), upstream.clone());
            let first_tls = first_tls.clone();
            std::thread::spawn(move || {
                let mut first = [0u8; 1];
                if conn.read_exact(&mut first).is_err() {
                    return;
                }
                if first[0] == 0x16 {
                    tls_seen.fetch_add(1, Ordering::SeqCst);
                    let mut sink = [0u8; 4096];
                    conn.set_read_timeout(Some(Duration::from_secs(60)))
                        .unwrap();
                    while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
                    tls_closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                if !hs.swap(true, Ordering::SeqCst) {
                    // Both probes leave at once; give the TLS one a moment to be seen. (No
                    // panic here: this thread's would go unseen; the test reads the flags.)
                    let seen = (0..500).any(|_| {
                        let seen = tls_seen.load(Ordering::SeqCst) > 0;
                        if !seen {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        seen
                    });
                    first_tls.store(seen, Ordering::SeqCst);
                    hw.store(tls_closed.load(Ordering::SeqCst) == 0, Ordering::SeqCst);
                }
                let mut up = TcpStream::connect(&upstream).unwrap();
                up.write_all(&first).unwrap();
                let (mut c2, mut u2) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
                let t = std::thread::spawn(move || std::io::copy(&mut c2, &mut u2));
                let _ = std::io::copy(&mut up, &mut conn);
                let _ = conn.shutdown(std::net::Shutdown::Both);
                let _ = t.join();
            });
        }
    });
    SilentOnTls {
        addr,
        http_while_tls_open,
        http_seen,
        tls_seen_first,
    }
}

#[test]
fn a_plain_http_server_silent_on_tls_is_used_without_waiting_for_the_tls_probe() {
    let fake = Fake::start();
    let image = TestImage::random(66, &[1000]);
    fake.serve_image("app", "1", &image);
    let front = silent_on_tls(fake.addr.clone());
    let (code, report, stderr) = bundle(&front.addr, "app:1", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["totals"]["ok"], 1);
    assert!(front.http_seen.load(Ordering::SeqCst));
    assert!(
        front.tls_seen_first.load(Ordering::SeqCst),
        "no TLS probe reached the server by the first plain-HTTP request"
    );
    assert!(
        front.http_while_tls_open.load(Ordering::SeqCst),
        "plain HTTP was tried while the TLS probe was still unanswered"
    );
}
