//! Inputs that used to be taken and must not be: a zero `--timeout` (the README says zero
//! timeouts are usage errors: exit 2, nothing written), and an HTTP request framed both by
//! Content-Length and Transfer-Encoding, which `ferry serve` answers with 400 and closes (raw
//! TCP, so that nothing between the test and the server fixes the request up).

use crate::common;
use crate::served;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use served::Served;

#[test]
fn a_zero_timeout_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let o = out.to_str().unwrap();
    let lock = dir.path().join("lock.json");
    for args in [
        vec!["bundle", "--timeout", "0s", "-o", o, "127.0.0.1:9/a/b:1"],
        vec![
            "lock",
            "--timeout",
            "0s",
            "-o",
            lock.to_str().unwrap(),
            "127.0.0.1:9/a/b:1",
        ],
        vec!["push", "--timeout", "0s", o, "127.0.0.1:9"],
        vec![
            "snapshot",
            "--timeout",
            "0s",
            "--pvc",
            "p",
            "--class",
            "c",
            "--name",
            "n",
        ],
    ] {
        let (code, _, stderr) = ferry_out(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("more than 0"), "{args:?}: {stderr}");
    }
    assert!(!out.exists() && !lock.exists(), "nothing was written");
}

/// Sends `request` on a fresh connection; returns everything the server sent until it closed
/// (a server that keeps the connection open fails the test after a long read timeout).
fn exchange(addr: &str, request: &str) -> String {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "the server kept the connection open ({e}); it sent:\n{}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn serve_answers_a_doubly_framed_request_with_400_and_closes() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&sample_bundle(dir.path(), "b"), &[]);
    // Sanity: the same request framed once is answered (and the connection closed on request).
    let plain = exchange(
        &served.addr,
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    // Content-Length says the body is 5 bytes ("0\r\n\r\n"); chunked framing says it ended at
    // once, so a second request follows. A smuggler relies on the two readings differing.
    let smuggled = "GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v2/_catalog HTTP/1.1\r\nHost: x\r\n\r\n";
    let answer = exchange(&served.addr, smuggled);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "one answer, then the connection closed: {answer}"
    );
    assert!(!answer.contains("repositories"), "{answer}");
    // Transfer-Encoding then Content-Length: the same.
    let reversed = smuggled.replace(
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
    );
    let answer = exchange(&served.addr, &reversed);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
}
