//! Slow and unreliable networks, made by the fault proxy in front of the real docker-registry.

mod common;

use std::time::Instant;

use common::proxy::{Faults, Proxy};
use common::*;

fn report(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn every_connection_cut_after_8_mib_still_completes_by_resuming() {
    let (reg, image) = big_image_registry(40);
    for reset in [false, true] {
        // A reset destroys whatever sits unread in the receiver's kernel buffer. Unthrottled
        // loopback keeps that buffer full whatever the reader does (the sender is infinitely
        // fast), so the reset case runs at a real link's pace (32 MiB/s), where it is not.
        let proxy = Proxy::start(
            &reg.addr,
            Faults {
                cut_after: Some(8 << 20),
                reset,
                throttle: reset.then_some(32 << 20),
                ..Faults::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("b");
        let name = format!("{}/{image}", proxy.addr);
        let (code, stdout, stderr) =
            ferry_out(&["bundle", "--json", "-q", "-o", b.to_str().unwrap(), &name]);
        assert_eq!(code, 0, "reset={reset}: {stderr}");
        let r = report(&stdout);
        let blob_bytes = blob_files(&b).1;
        let crossed = proxy.bytes_down();
        eprintln!(
            "reset={reset}: {crossed} bytes crossed the proxy for {blob_bytes} bytes of blobs ({:.3}x)",
            crossed as f64 / blob_bytes as f64
        );
        assert!(
            (crossed as f64) <= 1.1 * blob_bytes as f64,
            "reset={reset}: {crossed} bytes crossed the proxy for {blob_bytes} bytes of blobs"
        );
        assert!(r["totals"]["resumes"].as_u64().unwrap() >= 4, "{r}");
        assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 0);
    }
}

#[test]
fn a_stalled_connection_is_cut_and_resumed_within_the_stall_timeout() {
    let (reg, image) = big_image_registry(8);
    // The first connections (the HTTPS probe, then the one that carries the manifest, config
    // and the start of the layer) go silent after 1 MiB; later ones are healthy.
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            stall_after: Some(1 << 20),
            first_connections: Some(2),
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let name = format!("{}/{image}", proxy.addr);
    let start = Instant::now();
    // One request at a time, so that everything travels on the one pooled connection.
    let (code, stdout, stderr) = ferry_out(&[
        "bundle",
        "--json",
        "--stall-timeout",
        "2s",
        "--jobs",
        "1",
        "--jobs-per-registry",
        "1",
        "-o",
        b.to_str().unwrap(),
        &name,
    ]);
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("stalled") && stderr.contains("no data for 2 s"),
        "{stderr}"
    );
    assert!(
        elapsed < 2.0 + 5.0,
        "detected within the stall timeout: took {elapsed:.1} s"
    );
    assert!(report(&stdout)["totals"]["resumes"].as_u64().unwrap() >= 1);
}

#[test]
fn a_throttled_transfer_completes() {
    let (reg, image) = big_image_registry(12);
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            throttle: Some(4 << 20),
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        b.to_str().unwrap(),
        &format!("{}/{image}", proxy.addr),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 0);
}

#[test]
fn no_more_connections_than_the_per_registry_cap() {
    // 6 images, 13 distinct blobs, slowed down so that downloads overlap.
    require("skopeo", "skopeo");
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("six");
    run(std::process::Command::new("python3")
        .arg(root().join("testdata/make_fixtures.py"))
        .arg(&layout)
        .args(["--bench", "6"])
        .env("FERRY_BENCH_MIB_PER_IMAGE", "2")
        .env("FERRY_BENCH_SHARED_MIB", "2"));
    let reg = Registry::start();
    run(
        std::process::Command::new(root().join("scripts/seed-registry.sh"))
            .arg(&reg.addr)
            .arg(&layout),
    );
    for (cap, must_exceed) in [(3usize, false), (8, true)] {
        let proxy = Proxy::start(
            &reg.addr,
            Faults {
                throttle: Some(2 << 20),
                ..Faults::default()
            },
        );
        let refs: Vec<String> = (0..6)
            .map(|i| format!("{}/bench/app{i:02}:1.0", proxy.addr))
            .collect();
        let b = dir.path().join(format!("b{cap}"));
        let cap_s = cap.to_string();
        let mut args = vec![
            "bundle",
            "-q",
            "--jobs",
            "16",
            "--jobs-per-registry",
            &cap_s,
            "-o",
            b.to_str().unwrap(),
        ];
        args.extend(refs.iter().map(String::as_str));
        let (code, _, stderr) = ferry_out(&args);
        assert_eq!(code, 0, "{stderr}");
        let max_open = proxy
            .stats
            .max_open
            .load(std::sync::atomic::Ordering::SeqCst);
        if must_exceed {
            // Shows the measurement can see more than 3 when the cap allows it.
            assert!(
                max_open > 3,
                "cap {cap}: only {max_open} connections were ever open at once"
            );
        } else {
            assert!(
                max_open <= cap,
                "cap {cap}: {max_open} connections were open at once"
            );
        }
    }
}

#[test]
fn the_timeout_stops_the_run_as_a_failure_and_keeps_what_arrived() {
    let (reg, image) = big_image_registry(16);
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            throttle: Some(2 << 20),
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let name = format!("{}/{image}", proxy.addr);
    let start = Instant::now();
    let (code, stdout, stderr) = ferry_out(&[
        "bundle",
        "--json",
        "--timeout",
        "2s",
        "-o",
        b.to_str().unwrap(),
        &name,
    ]);
    assert!(start.elapsed().as_secs_f64() < 10.0);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--timeout reached"), "{stderr}");
    assert_eq!(report(&stdout)["images"][0]["status"], "unfinished");
    assert!(
        partial_bytes(&b) > 1 << 20,
        "what arrived is kept for the next run"
    );
    assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 0);
}
