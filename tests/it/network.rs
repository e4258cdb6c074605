//! Slow and unreliable networks, made by the fault proxy in front of the real docker-registry.

use crate::common;

use common::proxy::{Faults, Proxy};
use common::*;

fn report(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn every_connection_cut_after_8_mib_still_completes_by_resuming() {
    // The 48 MiB image interrupt.rs uses too (one seeding per run); the reset case below also
    // covers what a plain throttled transfer would (it completes, through cuts).
    let (reg, image) = big_image_registry(48);
    for reset in [false, true] {
        // A clean close delivers every byte the proxy sent, so the proxy's count is the
        // independent measure. A reset destroys whatever sits in kernel buffers (the proxy's
        // send buffer, ferry's receive buffer) by definition of TCP: there the measure is what
        // reached ferry, and the proxy's count only gets a looser bound. The reset case runs at
        // a real link's pace (32 MiB/s): unthrottled loopback keeps those buffers full.
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
        let received = r["totals"]["bytesReceived"].as_u64().unwrap();
        let (measured, bound) = if reset {
            (received, 1.1)
        } else {
            (crossed, 1.1)
        };
        assert!(
            (measured as f64) <= bound * blob_bytes as f64,
            "reset={reset}: {measured} bytes for {blob_bytes} bytes of blobs"
        );
        assert!(
            (crossed as f64) <= 1.5 * blob_bytes as f64,
            "reset={reset}: {crossed} crossed the proxy"
        );
        assert!(r["totals"]["resumes"].as_u64().unwrap() >= 4, "{r}");
        assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 0);
    }
}

#[test]
fn a_stalled_connection_is_cut_and_resumed_within_the_stall_timeout() {
    let (reg, image) = big_image_registry(8);
    // The first connection to carry 1 MiB (the layer's) goes silent; later ones flow.
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            stall_after: Some(1 << 20),
            stall_once: true,
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let name = format!("{}/{image}", proxy.addr);
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
    assert_eq!(code, 0, "{stderr}");
    // Cut by the stall timer (its message names the 2 s), not by the 30 s attempt timeout.
    assert!(
        stderr.contains("stalled") && stderr.contains("no data for 2 s"),
        "{stderr}"
    );
    assert!(report(&stdout)["totals"]["resumes"].as_u64().unwrap() >= 1);
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
    // 16 MiB at 2 MiB/s takes 8 s: a run that ends at 2 s with the image unfinished and
    // exit 1 was stopped by --timeout (a finished run would exit 0 with the image ok).
    let (code, stdout, stderr) = ferry_out(&[
        "bundle",
        "--json",
        "--timeout",
        "2s",
        "-o",
        b.to_str().unwrap(),
        &name,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--timeout reached"), "{stderr}");
    assert_eq!(report(&stdout)["images"][0]["status"], "unfinished");
    // What arrived is kept for the next run: all the proxy carried but headers, manifests and
    // what sat in socket buffers when the run stopped (under 1 MiB), however much that was.
    let kept: u64 = std::fs::read_dir(b.join(".ferry/partial"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum::<u64>()
        + blob_files(&b).1;
    let carried = proxy.bytes_down();
    assert!(
        kept > 0 && kept + (1 << 20) >= carried,
        "{kept} bytes kept of {carried} carried"
    );
    assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 0);
}
