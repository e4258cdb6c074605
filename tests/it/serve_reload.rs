//! #22: a running `ferry serve` follows the bundle under it. After `ferry apply` changes the
//! served folder, a moved tag answers the new digest and a removed one 404s, with no restart,
//! while a download started before the apply finishes whole; a delta is refused with a hint.

use crate::common;
use crate::served;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;
use served::*;

use crate::serve_fleet::{head_fields, largest_layer};

const ACCEPT: &str = "Accept: application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// A blob download left in the middle: the response head and some bytes read, the rest not.
struct InFlight {
    conn: TcpStream,
    length: u64,
    body: Vec<u8>,
}

impl InFlight {
    fn start(addr: &str, path: &str) -> InFlight {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            let n = conn.read(&mut chunk).unwrap();
            assert!(n > 0, "the response head");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let (status, length) = head_fields(&String::from_utf8_lossy(&buf[..end]));
        assert_eq!(status, 200);
        InFlight {
            conn,
            length,
            body: buf[end..].to_vec(),
        }
    }

    /// Reads the rest of the body (until Content-Length or the end of the connection).
    fn finish(mut self) -> Vec<u8> {
        let mut chunk = vec![0u8; 64 * 1024];
        while (self.body.len() as u64) < self.length {
            match self.conn.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.body.extend_from_slice(&chunk[..n]),
            }
        }
        self.body
    }
}

#[test]
fn after_apply_a_moved_tag_answers_its_new_digest_a_removed_one_404s_and_a_download_finishes() {
    let samples = Registry::seeded();
    let (reg, big) = big_image_registry(16);
    samples.copy_to("sample/world:1.0", &reg, "app/moving:1");
    samples.copy_to("sample/hello:1.0", &reg, "app/gone:1");
    let dir = tempfile::tempdir().unwrap();
    let base = bundle(
        &reg,
        &dir.path().join("base"),
        &[&big, "app/moving:1", "app/gone:1"],
        &[],
    );
    let old = reg.digest("app/moving:1");
    samples.copy_to("sample/raw:1.0", &reg, "app/moving:1");
    let new = reg.digest("app/moving:1");
    assert_ne!(old, new);
    let delta = bundle(
        &reg,
        &dir.path().join("delta"),
        &[&big, "app/moving:1"],
        &["--since", base.to_str().unwrap()],
    );

    let served = Served::start(&base, &[]);
    let digest_of = |path: &str| {
        let reply = curl("HEAD", &served.url(path), &[ACCEPT]);
        (
            reply.status,
            reply.headers.get("docker-content-digest").cloned(),
        )
    };
    assert_eq!(
        digest_of("/v2/app/moving/manifests/1"),
        (200, Some(old.clone()))
    );
    assert_eq!(digest_of("/v2/app/gone/manifests/1").0, 200);
    let (layer, size) = largest_layer(&base, &reg.image(&big));
    let repo = big.split(':').next().unwrap();
    let download = InFlight::start(&served.addr, &format!("/v2/{repo}/blobs/{layer}"));
    assert_eq!(download.length, size);
    assert!(
        (download.body.len() as u64) < size,
        "the download is still in flight"
    );
    // Logged only when its body ends: it has not.
    assert!(
        !served.log().contains(&format!("/blobs/{layer} ")),
        "{}",
        served.log()
    );

    let (code, _, stderr) = ferry_out(&["apply", delta.to_str().unwrap(), base.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");

    // The first request after the apply is answered from the new state: no window of 404s.
    assert_eq!(digest_of("/v2/app/moving/manifests/1"), (200, Some(new)));
    assert_eq!(digest_of("/v2/app/gone/manifests/1").0, 404);
    let body = curl("GET", &served.url("/v2/_catalog"), &[]).body;
    let catalog: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(!catalog.to_string().contains("app/gone"), "{catalog}");
    // The download begun before the apply ends whole, its bytes as the registry made them.
    let got = download.finish();
    assert_eq!(got.len() as u64, size);
    assert_eq!(sha256(&got), layer);
    let log = served.log();
    assert!(log.contains("changed: now serving"), "{log}");
    assert_eq!(
        served.complete_gets(&format!("/v2/{repo}/blobs/{layer}"), 1),
        1,
        "{log}"
    );
}

#[test]
fn a_delta_is_refused_with_the_hint_to_apply_it_first() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let base = bundle(&reg, &dir.path().join("base"), &["sample/hello:1.0"], &[]);
    let delta = bundle(
        &reg,
        &dir.path().join("delta"),
        &["sample/hello:1.0", "sample/world:1.0"],
        &["--since", base.to_str().unwrap()],
    );
    let (code, _, stderr) = ferry_out(&["serve", delta.to_str().unwrap(), "--addr", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("delta"), "{stderr}");
    assert!(
        stderr.contains(&format!("ferry apply {}", delta.display())),
        "the hint says to apply it first: {stderr}"
    );
}

#[test]
fn an_image_missing_a_blob_is_not_advertised_and_the_log_says_why() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let tags = ["sample/hello:1.0", "sample/world:1.0"];
    let b = bundle(&reg, &dir.path().join("b"), &tags, &[]);
    // A layer of world only (by the registry's manifests), removed from the bundle.
    let hello = reg.blobs_of(tags[0], "linux/amd64");
    let gone = reg
        .blobs_of(tags[1], "linux/amd64")
        .into_keys()
        .find(|d| !hello.contains_key(d) && *d != reg.digest(tags[1]))
        .unwrap();
    std::fs::remove_file(blob_path(&b, &gone)).unwrap();
    let served = Served::start(&b, &[]);
    let log = served.log();
    assert!(
        log.lines().any(|l| l.contains("not served")
            && l.contains(&reg.image(tags[1]))
            && l.contains(&gone)),
        "{log}"
    );
    assert_eq!(
        curl(
            "HEAD",
            &served.url("/v2/sample/world/manifests/1.0"),
            &[ACCEPT]
        )
        .status,
        404
    );
    assert_eq!(
        curl(
            "HEAD",
            &served.url("/v2/sample/hello/manifests/1.0"),
            &[ACCEPT]
        )
        .status,
        200
    );
    let body = curl("GET", &served.url("/v2/_catalog"), &[]).body;
    let catalog: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!(["sample/hello"]));
}

#[test]
fn a_new_archive_renamed_over_the_served_one_is_served_at_once() {
    let reg = Registry::seeded();
    reg.copy_within("sample/world:1.0", "app/moving:1", &[]);
    let dir = tempfile::tempdir().unwrap();
    let v1 = bundle(&reg, &dir.path().join("v1"), &["app/moving:1"], &[]);
    let old = reg.digest("app/moving:1");
    reg.copy_within("sample/hello:1.0", "app/moving:1", &[]);
    let new = reg.digest("app/moving:1");
    let v2 = bundle(&reg, &dir.path().join("v2"), &["app/moving:1"], &[]);
    let served_tar = dir.path().join("served.tar.zst");
    export_tar(&v1, &served_tar);
    let next = dir.path().join("next.tar.zst");
    export_tar(&v2, &next);
    let served = Served::start(&served_tar, &[]);
    let digest_of = || {
        curl("HEAD", &served.url("/v2/app/moving/manifests/1"), &[ACCEPT])
            .headers
            .get("docker-content-digest")
            .cloned()
    };
    assert_eq!(digest_of(), Some(old));
    std::fs::rename(&next, &served_tar).unwrap();
    assert_eq!(digest_of(), Some(new));
    assert!(
        served.log().contains("changed: now serving"),
        "{}",
        served.log()
    );
}
