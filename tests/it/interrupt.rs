//! Killing ferry mid-blob (SIGKILL) or stopping it (Ctrl-C) leaves a valid bundle that a re-run
//! completes, resuming the partial download instead of starting over.

use crate::common;

use std::process::Stdio;

use common::proxy::{Faults, Proxy};
use common::*;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Bytes of blobs a bundle holds, finished or partial.
fn bytes_on_disk(bundle: &std::path::Path) -> u64 {
    let partial: u64 = std::fs::read_dir(bundle.join(".ferry/partial"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let done = if bundle.join("blobs").exists() {
        blob_files(bundle).1
    } else {
        0
    };
    partial + done
}

/// Re-runs the bundle through the healed proxy and checks, by the proxy's own count of the
/// bytes it carried, that the partial downloads were resumed, not fetched again: what crosses
/// is what the bundle lacked, plus manifests and headers (under 1 MiB).
fn rerun_resumes(proxy: &Proxy, bundle: &std::path::Path, name: &str) -> serde_json::Value {
    let before = bytes_on_disk(bundle);
    let crossed_before = proxy.bytes_down();
    proxy.heal();
    let b = bundle.to_str().unwrap();
    let (code, stdout, stderr) = ferry_out(&["bundle", "--json", "-o", b, name]);
    assert_eq!(code, 0, "{stderr}");
    let lacking = blob_files(bundle).1 - before;
    let crossed = proxy.bytes_down() - crossed_before;
    assert!(
        crossed <= lacking + (1 << 20) && crossed >= lacking,
        "resumed, not restarted: {crossed} bytes crossed the proxy, the bundle lacked {lacking}"
    );
    json(&stdout)
}

#[test]
fn sigkill_mid_blob_then_rerun_resumes() {
    let (reg, image) = big_image_registry(48);
    // Throttled so that the kill lands in the middle of the big layer.
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            throttle: Some(8 << 20),
            ..Faults::default()
        },
    );
    let name = format!("{}/{image}", proxy.addr);
    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("b");
    let b = bundle.to_str().unwrap();

    let mut child = ferry()
        .args(["bundle", "-q", "-o", b, &name])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(60, "a partial download of 4 MiB", || {
        partial_bytes(&bundle) > 4 << 20
    });
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let kept = partial_bytes(&bundle);
    assert!(kept > 4 << 20, "the partial download is kept");

    let (code, stdout, stderr) = ferry_out(&["verify", b]);
    assert_eq!(
        code, 0,
        "a killed run leaves a bundle verify accepts:\n{stdout}{stderr}"
    );

    let report = rerun_resumes(&proxy, &bundle, &name);
    assert!(
        report["totals"]["resumes"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let (code, stdout, _) = ferry_out(&["verify", b]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.starts_with("ok: 1 images"), "{stdout}");
}

#[test]
fn ctrl_c_stops_cleanly_and_says_how_to_continue() {
    let (reg, image) = big_image_registry(48);
    let proxy = Proxy::start(
        &reg.addr,
        Faults {
            throttle: Some(8 << 20),
            ..Faults::default()
        },
    );
    let name = format!("{}/{image}", proxy.addr);
    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("b");
    let b = bundle.to_str().unwrap();

    let child = ferry()
        .args(["bundle", "-o", b, &name])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(60, "a partial download", || {
        partial_bytes(&bundle) > 2 << 20
    });
    let pid = child.id().to_string();
    run(std::process::Command::new("kill").args(["-INT", &pid]));
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("run the same command again to continue"),
        "{stderr}"
    );
    assert!(partial_bytes(&bundle) > 2 << 20, "partial kept for resume");
    let (code, _, _) = ferry_out(&["verify", b]);
    assert_eq!(code, 0);

    let report = rerun_resumes(&proxy, &bundle, &name);
    assert!(report["totals"]["resumes"].as_u64().unwrap() >= 1);
}
