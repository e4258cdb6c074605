//! #22: `ferry serve` for a fleet. 400 clients download a large layer at once (held together
//! at a barrier, then paced so they really overlap) while the server stays under 64 MiB;
//! slow, silent and stalled clients are closed by the header and idle timeouts; the connection
//! cap holds; HTTP/1.1 keep-alive, cleartext HTTP/2 and HTTP/2 over TLS serve many clients;
//! each response is logged with how it ended.

use crate::common;
use crate::served;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use common::*;
use served::*;

/// The largest layer of `image` in bundle `b`: (digest, size).
pub(crate) fn largest_layer(b: &Path, reference: &str) -> (String, u64) {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob_path(b, &bundled_digest(b, reference))).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .unwrap()
        .clone();
    (
        layer["digest"].as_str().unwrap().to_owned(),
        layer["size"].as_u64().unwrap(),
    )
}

/// What one download saw: status, Content-Length, body bytes received.
#[derive(Debug)]
struct Got {
    status: u16,
    length: u64,
    received: u64,
}

/// The head of an HTTP/1.1 response read from `conn`, and the body bytes read past it.
pub(crate) async fn read_head(conn: &mut TcpStream) -> std::io::Result<(u16, u64, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let (status, length) = head_fields(&String::from_utf8_lossy(&buf[..end]));
    Ok((status, length, buf[end..].to_vec()))
}

/// Status and Content-Length (0 when absent) of an HTTP/1.1 response head.
pub(crate) fn head_fields(head: &str) -> (u16, u64) {
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    (status, length)
}

/// One client: GET `path`, wait at `barrier` once the body has started (so every client is in
/// the middle of its download at once), then read the rest at about `rate` bytes a second.
/// The first client keeps the body in `keep`.
async fn download(
    addr: String,
    path: String,
    barrier: Arc<Barrier>,
    rate: u64,
    keep: Option<std::path::PathBuf>,
) -> std::io::Result<Got> {
    let mut conn = TcpStream::connect(&addr).await?;
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let (status, length, first) = read_head(&mut conn).await?;
    let mut received = first.len() as u64;
    let mut body = first;
    barrier.wait().await;
    let start = tokio::time::Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    while received < length {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        received += n as u64;
        if keep.is_some() {
            body.extend_from_slice(&buf[..n]);
        }
        // Paced: never ahead of `rate`.
        let due = Duration::from_secs_f64(received as f64 / rate as f64);
        tokio::time::sleep_until(start + due).await;
    }
    if let Some(p) = keep {
        std::fs::write(p, &body)?;
    }
    Ok(Got {
        status,
        length,
        received,
    })
}

#[test]
fn four_hundred_overlapping_downloads_of_a_large_layer_stay_under_64_mib() {
    const CLIENTS: usize = 400;
    let (reg, image) = big_image_registry(16);
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), &[&image], &[]);
    let (digest, size) = largest_layer(&b, &reg.image(&image));
    assert!(size >= 7 << 20, "a large layer: {size}");
    let served = Served::start(&b, &[]);
    let repo = image.split(':').next().unwrap();
    let path = format!("/v2/{repo}/blobs/{digest}");
    let kept = dir.path().join("first-body");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let results: Vec<std::io::Result<Got>> = rt.block_on(async {
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let keep = (i == 0).then(|| kept.clone());
                tokio::spawn(download(
                    served.addr.clone(),
                    path.clone(),
                    barrier.clone(),
                    // 2 MiB/s each: 800 MiB/s together, the downloads last a few seconds.
                    2 << 20,
                    keep,
                ))
            })
            .collect();
        // Self-stopping: a load that does not finish in time fails the test.
        let all = futures_join(tasks);
        tokio::time::timeout(Duration::from_secs(600), all)
            .await
            .expect("the downloads finish")
    });
    for (i, r) in results.iter().enumerate() {
        let got = r.as_ref().unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(got.status, 200, "client {i}: {got:?}");
        assert_eq!((got.length, got.received), (size, size), "client {i}");
    }
    // An independent witness for the bytes: sha256sum over what the first client received.
    assert_eq!(sha256(&std::fs::read(&kept).unwrap()), digest);
    let peak = peak_rss_mib(served.child.id());
    eprintln!("ferry serve peak RSS: {peak:.1} MiB");
    assert_eq!(
        served.complete_gets(&path, CLIENTS),
        CLIENTS,
        "every response logged as complete:\n{}",
        served.log()
    );
    assert!(
        peak < 64.0,
        "ferry serve peaked at {peak:.1} MiB with {CLIENTS} concurrent downloads"
    );
}

/// Awaits every task, in order.
async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("a client task"));
    }
    out
}

/// Reads from `conn` until the server closes it (EOF or reset); the bytes read. Self-stopping:
/// a connection the server never closes fails the test after `guard`.
async fn read_until_closed(conn: &mut TcpStream, guard: Duration) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let outcome = tokio::time::timeout(guard, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n as u64,
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "the server never closed the connection");
    total
}

#[test]
fn slow_silent_and_stalled_clients_are_closed_by_the_timeouts() {
    let (reg, image) = big_image_registry(16);
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), &[&image], &[]);
    let (digest, size) = largest_layer(&b, &reg.image(&image));
    let served = Served::start(&b, &["--header-timeout", "1s", "--idle-timeout", "2s"]);
    let repo = image.split(':').next().unwrap();
    let path = format!("/v2/{repo}/blobs/{digest}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let guard = Duration::from_secs(60);
        // Slowloris: half a request line, then nothing.
        let mut slow = TcpStream::connect(&served.addr).await.unwrap();
        slow.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // Silent: connects and never sends a byte.
        let mut silent = TcpStream::connect(&served.addr).await.unwrap();
        // Stalled: asks for the large layer, takes its head, then stops reading.
        let mut stalled = TcpStream::connect(&served.addr).await.unwrap();
        stalled
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (status, length, _) = read_head(&mut stalled).await.unwrap();
        assert_eq!((status, length), (200, size));
        assert_eq!(
            read_until_closed(&mut slow, guard).await,
            0,
            "no answer to half a request"
        );
        assert_eq!(read_until_closed(&mut silent, guard).await, 0);
        // Whatever the socket buffers held when serve gave up, not the whole layer.
        wait_for(60, "serve to close the stalled download", || {
            served.log().contains("cut by serve")
        });
        let got = read_until_closed(&mut stalled, guard).await;
        assert!(
            got < size,
            "the stalled download was cut: {got} of {size} bytes"
        );
    });
    let log = served.log();
    assert!(
        log.contains("no complete request headers within 1s"),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("GET {path} 200")) && l.contains("cut by serve (")),
        "the stalled download is logged as cut by serve:\n{log}"
    );
    // The server still serves.
    let reply = curl("GET", &served.url("/v2/"), &[]);
    assert_eq!(reply.status, 200);
}

/// curl fetching `url` `n` times, `parallel` at once, with `extra` options; one
/// `status size http_version` line per transfer.
fn curl_many(url: &str, n: usize, parallel: usize, extra: &[&str]) -> Vec<String> {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-Z", "--parallel-max", &parallel.to_string()])
        .args(extra)
        .args(["-w", "%{http_code} %{size_download} %{http_version}\\n"]);
    for _ in 0..n {
        cmd.args(["-o", "/dev/null", url]);
    }
    let out = run(&mut cmd);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn keep_alive_http1_h2c_and_h2_over_tls_all_serve_a_layer_to_many_clients() {
    let (reg, image) = big_image_registry(16);
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), &[&image], &[]);
    let (digest, size) = largest_layer(&b, &reg.image(&image));
    let repo = image.split(':').next().unwrap();
    let path = format!("/v2/{repo}/blobs/{digest}");
    let tls = Tls::new();
    let plain = Served::start(&b, &[]);
    let secure = Served::start(
        &b,
        &[
            "--tls-cert",
            &tls.path("server.crt"),
            "--tls-key",
            &tls.path("server.key"),
        ],
    );
    let ca = tls.path("ca.crt");
    // HTTP/1.1: 32 connections at once, each reused (keep-alive) for two transfers; HTTP/2
    // over TLS: the transfers multiplexed on few connections.
    let http1 = curl_many(&plain.url(&path), 64, 32, &["--http1.1"]);
    let h2 = curl_many(
        &format!("https://{}{path}", secure.addr),
        64,
        32,
        &["--cacert", &ca],
    );
    // Cleartext HTTP/2 (prior knowledge): 64 curl processes at once, one transfer each (curl
    // 7.88 fails a reused prior-knowledge connection itself: curl issue 10634).
    let children: Vec<_> = (0..64)
        .map(|_| {
            std::process::Command::new("curl")
                .args(["-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w"])
                .arg("%{http_code} %{size_download} %{http_version}\n")
                .arg(plain.url(&path))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let h2c: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .collect();
    for (what, lines, version) in [
        ("HTTP/1.1 keep-alive", http1, "1.1"),
        ("HTTP/2 over TLS", h2, "2"),
        ("cleartext HTTP/2", h2c, "2"),
    ] {
        assert_eq!(lines.len(), 64, "{what}: {lines:?}");
        for l in &lines {
            assert_eq!(l, &format!("200 {size} {version}"), "{what}");
        }
    }
    // Every transfer complete by serve's own account too.
    for (served, n) in [(&plain, 128), (&secure, 64)] {
        assert_eq!(served.complete_gets(&path, n), n, "{}", served.log());
    }
}

#[test]
fn past_max_connections_a_client_waits_for_a_free_slot() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), &["sample/hello:1.0"], &[]);
    // Timeouts long enough that only the test closes the connections.
    let served = Served::start(
        &b,
        &[
            "--max-connections",
            "2",
            "--header-timeout",
            "10m",
            "--idle-timeout",
            "10m",
        ],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let request = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", served.addr);
        // Two keep-alive connections, each answered once and kept open: every slot taken.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut c = TcpStream::connect(&served.addr).await.unwrap();
            c.write_all(request.as_bytes()).await.unwrap();
            assert_eq!(read_head(&mut c).await.unwrap().0, 200);
            held.push(c);
        }
        wait_for(30, "serve to say every slot is taken", || {
            served.log().contains("all 2 connections are in use")
        });
        // A third waits in the listen queue; it is answered once a slot frees.
        let mut third = TcpStream::connect(&served.addr).await.unwrap();
        third.write_all(request.as_bytes()).await.unwrap();
        drop(held.pop());
        let answered = tokio::time::timeout(Duration::from_secs(60), read_head(&mut third)).await;
        assert_eq!(
            answered.expect("answered once a slot freed").unwrap().0,
            200
        );
    });
}
