//! `ferry serve` promises beyond pulls: `_catalog` and its pagination, cleartext HTTP/2, the
//! request log, a graceful SIGTERM with a pull in flight, Ctrl-C, and a bad `--addr`.

use crate::common;
use crate::served;

use std::process::{Command, Stdio};

use common::*;
use served::*;

#[test]
fn catalog_lists_every_repository_and_pages_with_n_and_last() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), SAMPLES, &[]);
    let served = Served::start(&b, &[]);
    let mut want: Vec<String> = SAMPLES
        .iter()
        .map(|t| t.split(':').next().unwrap().to_owned())
        .collect();
    want.sort();
    want.dedup();
    let repositories = |reply: &Reply| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        serde_json::from_value(v["repositories"].clone()).unwrap()
    };
    let all = curl("GET", &served.url("/v2/_catalog"), &[]);
    assert_eq!(all.status, 200);
    assert_eq!(repositories(&all), want);

    // Pages of 3, each pointing at the next with a Link header, as the distribution spec says.
    let mut got = Vec::new();
    let mut next = Some("/v2/_catalog?n=3".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let page = curl("GET", &served.url(&path), &[]);
        assert_eq!(page.status, 200, "{path}");
        let names = repositories(&page);
        assert!(names.len() <= 3, "{path}: {names:?}");
        got.extend(names);
        pages += 1;
        next = page.headers.get("link").map(|link| {
            assert!(link.ends_with(r#">; rel="next""#), "{link}");
            link.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_owned()
        });
        assert!(pages <= want.len(), "the pages never end: {got:?}");
    }
    assert_eq!(got, want);
    assert_eq!(pages, want.len().div_ceil(3));
    // `last` alone: what sorts after it.
    let after = curl(
        "GET",
        &served.url(&format!("/v2/_catalog?last={}", want[1])),
        &[],
    );
    assert_eq!(repositories(&after), want[2..]);
}

#[test]
fn cleartext_http2_and_a_log_line_per_request() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), &["sample/hello:1.0"], &[]);
    let served = Served::start(&b, &[]);
    let out = run(Command::new("curl").args([
        "-sf",
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        &served.url("/v2/sample/hello/tags/list"),
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2");
    // The request log: method, path without the query, status, bytes; a whole answer is not
    // called cut.
    curl("GET", &served.url("/v2/_catalog?n=1"), &[]);
    wait_for(10, "the request log lines", || {
        served.log().contains("GET /v2/_catalog 200")
    });
    let log = served.log();
    let line = log
        .lines()
        .find(|l| l.starts_with("GET /v2/_catalog 200"))
        .unwrap();
    assert!(!line.contains('?') && !line.contains("cut"), "{line}");
    assert!(log.contains("GET /v2/sample/hello/tags/list 200"), "{log}");
}

#[test]
fn sigterm_lets_a_pull_in_flight_finish_and_ctrl_c_exits_130() {
    let (reg, image) = big_image_registry(8);
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), &[&image], &[]);
    let digest = bundled_digest(&b, &reg.image(&image));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_path(&b, &digest)).unwrap()).unwrap();
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .unwrap();
    let size = layer["size"].as_u64().unwrap();
    let repo = image.split(':').next().unwrap();

    let mut served = Served::start(&b, &[]);
    let url = served.url(&format!(
        "/v2/{repo}/blobs/{}",
        layer["digest"].as_str().unwrap()
    ));
    let got = dir.path().join("layer");
    // A client at 2 MiB/s: the pull lasts a few seconds; SIGTERM comes once bytes flow.
    let mut pull = Reaped(
        Command::new("curl")
            .args([
                "-sf",
                "--limit-rate",
                "2M",
                "-o",
                got.to_str().unwrap(),
                &url,
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for(30, "the pull to start", || {
        std::fs::metadata(&got).is_ok_and(|m| m.len() > 0)
    });
    unsafe { libc::kill(served.child.id() as i32, libc::SIGTERM) };
    let status = pull.0.wait().unwrap();
    assert!(status.success(), "the pull in flight was cut: {status}");
    assert_eq!(std::fs::metadata(&got).unwrap().len(), size);
    assert_eq!(sha256(&std::fs::read(&got).unwrap()), layer["digest"]);
    assert_eq!(
        served.child.wait().unwrap().code(),
        Some(0),
        "{}",
        served.log()
    );

    let mut served = Served::start(&b, &[]);
    unsafe { libc::kill(served.child.id() as i32, libc::SIGINT) };
    assert_eq!(
        served.child.wait().unwrap().code(),
        Some(130),
        "{}",
        served.log()
    );
}

#[test]
fn a_bad_addr_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::seeded();
    let b = bundle(&reg, &dir.path().join("b"), &["sample/hello:1.0"], &[]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    for (addr, says) in [
        ("nonsense", "invalid value 'nonsense' for '--addr"),
        (taken.as_str(), "cannot listen on"),
        ("192.0.2.1:5000", "cannot listen on 192.0.2.1:5000"),
    ] {
        let (code, _, stderr) = ferry_out(&["serve", b.to_str().unwrap(), "--addr", addr]);
        assert_eq!(code, 2, "{addr}: {stderr}");
        assert!(stderr.contains(says), "{addr}: {stderr}");
    }
}
