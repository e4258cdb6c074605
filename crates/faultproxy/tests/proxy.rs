//! The fault proxy against a small HTTP/1.1 server of these tests: each fault does what it
//! says, and the counters count what crossed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultproxy::{Faults, Proxy};

/// A keep-alive HTTP/1.1 server answering every request with `body_len` bytes; it records the
/// request heads it receives.
struct Upstream {
    addr: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    fn start(body_len: usize) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let body = vec![b'x'; body_len];
                    while let Some(head) = read_head(&mut conn) {
                        seen.lock().unwrap().push(head);
                        let reply =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {body_len}\r\n\r\n");
                        if conn.write_all(reply.as_bytes()).is_err()
                            || conn.write_all(&body).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Upstream { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn read_head(conn: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

/// Sends a GET (with `range` when given) and reads the answer until the connection ends or the
/// whole response (head + `body_len`) arrived; returns the bytes read.
fn get(conn: &mut TcpStream, range: Option<&str>, body_len: usize) -> usize {
    let range = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
    let request = format!("GET /blob HTTP/1.1\r\nHost: test\r\n{range}\r\n");
    conn.write_all(request.as_bytes()).unwrap();
    let want = format!("HTTP/1.1 200 OK\r\nContent-Length: {body_len}\r\n\r\n").len() + body_len;
    let mut got = 0;
    let mut buf = vec![0u8; 64 << 10];
    while got < want {
        match conn.read(&mut buf[..(want - got).min(64 << 10)]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

fn connect(proxy: &Proxy) -> TcpStream {
    TcpStream::connect(&proxy.addr).unwrap()
}

#[test]
fn a_connection_is_cut_after_n_bytes_and_the_counters_agree() {
    let up = Upstream::start(1 << 20);
    let proxy = Proxy::start(
        &up.addr,
        Faults {
            cut_after: Some(100_000),
            ..Faults::default()
        },
    );
    let got = get(&mut connect(&proxy), None, 1 << 20);
    assert_eq!(got, 100_000);
    assert_eq!((proxy.cuts(), proxy.bytes_down()), (1, 100_000));
    assert_eq!(
        proxy.bytes_delivered(),
        100_000,
        "a clean close delivers everything"
    );
    // Healed: new connections pass untouched.
    proxy.heal();
    let whole = get(&mut connect(&proxy), None, 1 << 20);
    assert!(whole > 1 << 20);
    assert_eq!(proxy.cuts(), 1);
}

#[test]
fn range_is_hidden_from_the_server_and_every_request_is_logged() {
    let up = Upstream::start(10);
    let proxy = Proxy::start(
        &up.addr,
        Faults {
            strip_range: true,
            ..Faults::default()
        },
    );
    let mut conn = connect(&proxy);
    get(&mut conn, Some("bytes=5-9"), 10);
    get(&mut conn, None, 10);
    let heads = up.heads();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(
        heads
            .iter()
            .all(|h| h.starts_with("GET /blob HTTP/1.1\r\nHost: test\r\n"))
    );
    assert!(
        !heads
            .iter()
            .any(|h| h.to_ascii_lowercase().contains("range")),
        "{heads:?}"
    );
    let requests = proxy.requests();
    let ranges: Vec<_> = requests.iter().map(|r| r.range.clone()).collect();
    assert_eq!(ranges, [Some("bytes=5-9".to_owned()), None]);
    assert_eq!(requests[0].range_start(), Some(5));
    assert_eq!((requests[0].connection, requests[1].connection), (0, 0));
}

#[test]
fn only_the_first_response_to_the_named_range_is_cut() {
    let up = Upstream::start(200_000);
    let faults = Faults {
        cut_range: Some((500, 1000)),
        ..Faults::default()
    };
    let proxy = Proxy::start(&up.addr, faults);
    let mut conn = connect(&proxy);
    let full = get(&mut conn, Some("bytes=0-"), 200_000);
    // The cut counts from the start of that request's response, on a reused connection too.
    assert_eq!(get(&mut conn, Some("bytes=500-"), 200_000), 1000);
    assert_eq!(get(&mut connect(&proxy), Some("bytes=500-"), 200_000), full);
    assert_eq!(proxy.cuts(), 1);
    // The proxy counts a write once it returned: the client may read the bytes first.
    wait_for(|| proxy.bytes_down() == 2 * full as u64 + 1000);
}

/// Polls `cond` (for at most a minute).
fn wait_for(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn each_connection_is_capped_at_its_rate() {
    let up = Upstream::start(256 << 10);
    let proxy = Proxy::start(
        &up.addr,
        Faults {
            throttle: Some(1 << 20),
            ..Faults::default()
        },
    );
    let started = Instant::now();
    let both: Vec<_> = (0..2)
        .map(|_| {
            let mut conn = connect(&proxy);
            std::thread::spawn(move || {
                let t = Instant::now();
                (get(&mut conn, None, 256 << 10), t.elapsed())
            })
        })
        .collect();
    for t in both {
        let (got, took) = t.join().unwrap();
        assert!(got > 256 << 10);
        // 256 KiB at 1 MiB/s: a quarter of a second at least, each (a lower bound only: a
        // busy machine makes it slower, never faster).
        assert!(took >= Duration::from_millis(240), "{took:?}");
    }
    assert!(started.elapsed() >= Duration::from_millis(240));
}

#[test]
fn a_reset_counts_as_delivered_only_what_left_the_proxy() {
    let up = Upstream::start(16 << 20);
    let faults = Faults {
        cut_after: Some(1 << 20),
        reset: true,
        ..Faults::default()
    };
    let proxy = Proxy::start(&up.addr, faults);
    let mut conn = connect(&proxy);
    conn.write_all(b"GET /blob HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    // Reading far slower than the proxy sends (16 KiB every 20 ms, until well after the cut):
    // its socket buffers stay full, and the reset throws away what they hold.
    let mut got = 0u64;
    let mut buf = vec![0u8; 16 << 10];
    let mut slow = 0;
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        got += n as u64;
        if slow < 100 {
            slow += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!((proxy.cuts(), proxy.bytes_down()), (1, 1 << 20));
    assert!(
        proxy.bytes_delivered() < proxy.bytes_down(),
        "the reset destroyed nothing?"
    );
    assert_eq!(
        got,
        proxy.bytes_delivered(),
        "what left the proxy is what arrived"
    );
}
