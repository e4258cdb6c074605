//! Big blobs against the real docker-registry: fetched over several connections as closed
//! ranges, resumed part by part, and what crosses the wire for them, counted by the fault
//! proxy itself (never by ferry's own counters).

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::fake::{Fake, Reply, TestImage, ranged};
use common::proxy::{Faults, Proxy, Request};
use common::*;

/// A registry holding `bench/app00:1.0`, whose first layer is `mib` MiB of random bytes (gzip,
/// made by testdata/make_fixtures.py, pushed by skopeo) beside two 1 MiB layers. Returns the
/// registry, the image and the big layer's digest and size as the registry serves them.
fn one_big_layer(mib: u32) -> (Registry, String, String, u64) {
    let reg = bench_image_registry(2, mib);
    let (manifest, _) = reg.manifest("bench/app00", "1.0");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .unwrap();
    let digest = layer["digest"].as_str().unwrap().to_owned();
    let size = layer["size"].as_u64().unwrap();
    assert!(size >= u64::from(mib) << 20);
    (reg, "bench/app00:1.0".into(), digest, size)
}

/// `sha256:<hex>` of a file by the sha256sum tool.
fn sha256sum(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    let hex = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", hex.split_whitespace().next().unwrap())
}

/// The requests for blob `digest` that the proxy saw.
fn blob_requests(proxy: &Proxy, digest: &str) -> Vec<Request> {
    proxy
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(&format!("/blobs/{digest}")))
        .collect()
}

/// The parts of a blob of `size` bytes (under 128 MiB) over 4 connections, as the README
/// documents the split: 8 MiB each, the last one shorter.
fn parts_of(size: u64) -> Vec<(u64, u64)> {
    (0..size.div_ceil(8 << 20))
        .map(|i| (i * (8 << 20), ((i + 1) * (8 << 20)).min(size)))
        .collect()
}

/// `ferry bundle` of `image` through `proxy` into `bundle`, in `parts` parts from 8 MiB up.
fn bundle_in_parts(
    proxy: &Proxy,
    image: &str,
    bundle: &Path,
    parts: &str,
    extra: &[&str],
) -> (i32, String) {
    let name = format!("{}/{image}", proxy.addr);
    let mut args = vec![
        "bundle",
        "-q",
        "--range-parts",
        parts,
        "--range-threshold",
        "8MiB",
        "-o",
        bundle.to_str().unwrap(),
        &name,
    ];
    args.extend(extra);
    let (code, _, stderr) = ferry_out(&args);
    (code, stderr)
}

/// Checks the bundle holds the blob byte for byte (sha256sum as the witness), verifies, and
/// kept nothing in its partial area.
fn assert_stored(bundle: &Path, digest: &str, size: u64) {
    let path = blob_path(bundle, digest);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    assert_eq!(sha256sum(&path), digest);
    let (code, stdout, stderr) = ferry_out(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(partial_bytes(bundle), 0, "nothing left in .ferry/partial");
}

#[test]
fn a_big_blob_fetched_in_ranges_over_four_connections_is_byte_exact() {
    let (reg, image, digest, size) = one_big_layer(40);
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            log_requests: true,
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (code, stderr) = bundle_in_parts(&proxy, &image, &b, "4", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_stored(&b, &digest, size);
    // One closed range per part, each asked for once, together the whole blob, over four
    // connections at once.
    let mut ranges: Vec<(u64, String)> = blob_requests(&proxy, &digest)
        .into_iter()
        .map(|r| (r.range_start().unwrap(), r.range.unwrap()))
        .collect();
    ranges.sort();
    let want: Vec<(u64, String)> = parts_of(size)
        .into_iter()
        .map(|(a, b)| (a, format!("bytes={a}-{}", b - 1)))
        .collect();
    assert_eq!(ranges, want);
    assert!(
        proxy
            .stats
            .max_open
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 4
    );
}

#[test]
fn a_part_cut_midway_resumes_only_that_part() {
    let (reg, image, digest, size) = one_big_layer(40);
    let third = parts_of(size)[2].0;
    // The response for the third part breaks off (a clean close) after 3 MiB.
    let faults = Faults {
        cut_range: Some((third, 3 << 20)),
        ..Faults::default()
    };
    let proxy = Proxy::start(&reg.addr, faults);
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (code, stderr) = bundle_in_parts(&proxy, &image, &b, "4", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_stored(&b, &digest, size);
    assert_eq!(proxy.cuts(), 1);
    let starts: Vec<u64> = blob_requests(&proxy, &digest)
        .iter()
        .map(|r| r.range_start().unwrap())
        .collect();
    let parts = parts_of(size);
    assert_eq!(
        starts.len(),
        parts.len() + 1,
        "each part and one resume: {starts:?}"
    );
    let resumed: Vec<u64> = starts
        .iter()
        .copied()
        .filter(|s| !parts.iter().any(|(a, _)| a == s))
        .collect();
    // It resumes where the bytes that arrived end: 3 MiB in, less the response's head.
    assert!(
        resumed.len() == 1
            && resumed[0] > third + (3 << 20) - 4096
            && resumed[0] < third + (3 << 20),
        "{starts:?}"
    );
    // On the wire: the blobs once, and HTTP heads (the cut part's bytes all arrived).
    let blob_bytes = blob_files(&b).1;
    let wire = proxy.bytes_down();
    assert!(
        wire < blob_bytes + (64 << 10),
        "{wire} bytes on the wire for {blob_bytes}"
    );
}

#[test]
fn a_registry_that_ignores_range_is_fetched_as_one_stream_and_v_says_so() {
    let (reg, image, digest, size) = one_big_layer(16);
    let faults = Faults {
        strip_range: true,
        ..Faults::default()
    };
    let proxy = Proxy::start(&reg.addr, faults);
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (code, stderr) = bundle_in_parts(&proxy, &image, &b, "4", &["-v"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("answered a Range request with the whole blob; fetching it as one stream"),
        "{stderr}"
    );
    assert_stored(&b, &digest, size);
    // The whole blob that answered the first part's request was used: asked for once.
    assert_eq!(blob_requests(&proxy, &digest).len(), 1);
    assert!(proxy.bytes_down() < blob_files(&b).1 + (64 << 10));
}

#[test]
fn parts_under_another_etag_fall_back_to_one_stream() {
    // A real registry keeps its ETag: changing it between requests takes the fake.
    let fake = Fake::start();
    let image = TestImage::random(7, &[20 << 20]);
    fake.serve_image("app", "1", &image);
    let layer = image.layers[0].clone();
    let path = format!("/v2/app/blobs/{}", image.layer_digest(0));
    fake.route(&path, move |req, hit| {
        ranged(req, &layer).header("ETag", &format!("\"v{hit}\""))
    });
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}/app:1", fake.addr);
    // `ferry bundle -v` of the fake's image into `out`, in parts from 1 MiB up: the stored
    // layer must be the right bytes (sha256sum), and stderr says why it fell back.
    let bundle = |out: &Path| {
        let (code, _, stderr) = ferry_out(&[
            "bundle",
            "-v",
            "--range-parts",
            "3",
            "--range-threshold",
            "1MiB",
            "-o",
            out.to_str().unwrap(),
            &name,
        ]);
        assert_eq!(code, 0, "{stderr}");
        let stored = blob_path(out, &image.layer_digest(0));
        assert_eq!(sha256sum(&stored), image.layer_digest(0));
        assert_eq!(ferry_out(&["verify", out.to_str().unwrap()]).0, 0);
        assert!(stderr.contains("fetching it as one stream"), "{stderr}");
        stderr
    };
    let stderr = bundle(&dir.path().join("b"));
    assert!(stderr.contains("the ETag changed from \"v1\""), "{stderr}");
    // A lie that Reply cannot tell: a 206 whose range is not the one asked for.
    let layer = image.layers[0].clone();
    fake.route(&path, move |req, hit| {
        match (hit, req.headers.get("range")) {
            (2, Some(_)) => Reply::new(206, layer[..1000].to_vec())
                .header("Content-Range", &format!("bytes 0-999/{}", layer.len())),
            _ => ranged(req, &layer),
        }
    });
    let stderr = bundle(&dir.path().join("b2"));
    assert!(
        stderr.contains("the registry sent Content-Range \"bytes 0-999/"),
        "{stderr}"
    );
}

/// Issue 21 item 9: through a proxy that resets every connection after 8 MiB, the bytes that
/// left the registry for ferry (the proxy's count of what it forwarded) stay within 1.01x the
/// blob bytes, for one stream and for parts. The proxy lets through what the client reads
/// before it resets (as a middlebox that resets after N bytes passed it); what ferry leaves
/// unread in the proxy's buffers is destroyed and counted, so a ferry that stops reading while
/// it writes or hashes pays for it here (the old one: 1.03x to 1.14x).
#[test]
fn resets_every_8_mib_cost_at_most_one_percent_on_the_wire() {
    let (reg, image, _, _) = one_big_layer(40);
    for parts in ["1", "4"] {
        let faults = Faults {
            cut_after: Some(8 << 20),
            reset: true,
            ..Faults::default()
        };
        let proxy = Proxy::start(&reg.addr, faults);
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("b");
        let (code, stderr) = bundle_in_parts(&proxy, &image, &b, parts, &[]);
        assert_eq!(code, 0, "{stderr}");
        let blob_bytes = blob_files(&b).1;
        let wire = proxy.bytes_down();
        eprintln!(
            "--range-parts {parts}: {wire} bytes forwarded ({} delivered) for {blob_bytes} bytes of blobs ({:.4}x), {} cuts",
            proxy.bytes_delivered(),
            wire as f64 / blob_bytes as f64,
            proxy.cuts()
        );
        assert!(proxy.cuts() >= 4, "{} cuts", proxy.cuts());
        assert!(
            wire as f64 <= 1.01 * blob_bytes as f64,
            "--range-parts {parts}: {wire} bytes on the wire for {blob_bytes}"
        );
        assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 0);
    }
}

#[test]
fn a_sigkill_halfway_then_a_rerun_costs_at_most_2_percent_on_the_wire() {
    let (reg, image, digest, size) = one_big_layer(96);
    // 8 MiB/s per connection: four parts take some three seconds, and the kill lands halfway.
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            throttle: Some(8 << 20),
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let name = format!("{}/{image}", proxy.addr);
    let args = [
        "bundle",
        "-q",
        "--range-parts",
        "4",
        "--range-threshold",
        "8MiB",
        "-o",
        b.to_str().unwrap(),
        &name,
    ];
    let mut child = ferry().args(args).stderr(Stdio::null()).spawn().unwrap();
    wait_for(120, "half the blob on the wire", || {
        proxy.bytes_down() > size / 2
    });
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let first = proxy.bytes_down();
    assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 0);
    assert!(
        !blob_path(&b, &digest).exists(),
        "killed before the blob landed"
    );

    proxy.heal();
    let (code, _, stderr) = ferry_out(&args);
    assert_eq!(code, 0, "{stderr}");
    assert_stored(&b, &digest, size);
    let blob_bytes = blob_files(&b).1;
    let wire = proxy.bytes_down();
    eprintln!(
        "killed at {first} bytes; {wire} on the wire in all for {blob_bytes} ({:.4}x)",
        wire as f64 / blob_bytes as f64
    );
    assert!(
        wire as f64 <= 1.02 * blob_bytes as f64,
        "{wire} bytes on the wire for {blob_bytes} (the kill came at {first})"
    );
}
