//! `ferry restore --from URL`: a bundle served by `ferry serve` goes straight into a real
//! containerd, pulled by digest (the registry's digests, witnessed by sha256sum), named and
//! pinned as the bundle says; a second run pulls nothing; an image the served bundle lacks
//! (listed by `--lock`) fails by name. Also the read-only `/ferry/v1/` routes of serve.

use crate::common;
use crate::served;

use common::*;
use served::*;

/// `ferry restore --from URL --runtime containerd --address SOCKET --json EXTRA...`.
fn restore_from(url: &str, node: &Containerd, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec![
        "restore",
        "--from",
        url,
        "--runtime",
        "containerd",
        "--address",
        &node.socket,
        "--json",
    ];
    args.extend(extra);
    let (code, stdout, stderr) = ferry_out(&args);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
    (code, report, stderr)
}

/// Lines of the serve log that fetched a blob or a manifest.
fn pulls(served: &Served) -> usize {
    served
        .log()
        .lines()
        .filter(|l| l.contains("/blobs/") || l.contains("/manifests/"))
        .count()
}

#[test]
fn every_image_comes_with_the_bundles_digests_pinned_and_a_second_run_pulls_nothing() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), SAMPLES, &[]);
    let names: Vec<String> = SAMPLES.iter().map(|t| reg.image(t)).collect();
    // The registry's word for each digest (sha256sum of what it serves), then it stops: the
    // node reaches nothing but ferry serve.
    let digests: Vec<String> = SAMPLES.iter().map(|t| reg.digest(t)).collect();
    drop(reg);
    let served = Served::start(&b, &[]);
    let node = Containerd::start();

    let (code, report, stderr) = restore_from(&served.url(""), &node, &["--pin"]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["bundle"], served.url("/"), "{report}");
    assert_eq!(report["totals"]["restored"], SAMPLES.len(), "{report}");
    assert_eq!(report["totals"]["pinned"], SAMPLES.len(), "{report}");
    let listed = containerd_images(&node);
    for (name, digest) in names.iter().zip(&digests) {
        let twin = format!("{}@{digest}", name.rsplit_once(':').unwrap().0);
        for n in [name, &twin] {
            assert_pinned(&listed, n, digest);
        }
        let check = String::from_utf8(node.ctr(&["images", "check"]).stdout).unwrap();
        let line = check
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not checked: {check}"));
        assert!(line.contains(" complete "), "{line}");
    }
    // Only the bundle's names: the names pulled from ferry serve are gone.
    assert_eq!(listed.len(), 2 * SAMPLES.len(), "{listed:?}");
    assert!(
        !listed.iter().any(|r| r.0.starts_with(&served.addr)),
        "{listed:?}"
    );

    let before = pulls(&served);
    let (code, report, stderr) = restore_from(&served.url(""), &node, &["--pin"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["totals"]["present"], SAMPLES.len(), "{report}");
    assert_eq!(report["totals"]["restored"], 0, "{report}");
    assert_eq!(pulls(&served), before, "{}", served.log());
    assert_eq!(containerd_images(&node), listed);
}

#[test]
fn an_image_the_served_bundle_lacks_fails_by_name_and_the_others_come() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let small = bundle(&reg, &dir.path().join("small"), &SAMPLES[..2], &[]);
    // The lock of a bigger bundle lists one image the served one does not have.
    let big = bundle(&reg, &dir.path().join("big"), &SAMPLES[..3], &[]);
    let missing = reg.image(SAMPLES[2]);
    drop(reg);
    let served = Served::start(&small, &[]);
    let node = Containerd::start();
    let lock = big.join("ferry.lock");
    let (code, report, stderr) =
        restore_from(&served.url(""), &node, &["--lock", lock.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}\n{report}");
    let images = report["images"].as_array().unwrap();
    let failed: Vec<&serde_json::Value> =
        images.iter().filter(|i| i["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["reference"], missing.as_str(), "{report}");
    assert_eq!(report["totals"]["restored"], 2, "{report}");
    assert!(stderr.contains(&missing), "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
    assert!(
        !stderr.contains("level=info"),
        "ctr's log lines are left out: {stderr}"
    );
    assert_eq!(
        containerd_images(&node)
            .iter()
            .filter(|r| r.0 == missing)
            .count(),
        0
    );
}

#[test]
fn serve_shows_the_bundles_index_and_lock_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample_bundle(dir.path(), "b");
    if !b.join("ferry.lock").exists() {
        // The bytes are served as stored, whatever they hold.
        std::fs::write(b.join("ferry.lock"), "{\"lockVersion\":1,\"images\":[]}\n").unwrap();
    }
    let served = Served::start(&b, &[]);
    for (route, file) in [("index.json", "index.json"), ("lock", "ferry.lock")] {
        let reply = curl("GET", &served.url(&format!("/ferry/v1/{route}")), &[]);
        assert_eq!(reply.status, 200, "{route}");
        assert_eq!(
            sha256(&reply.body),
            sha256(&std::fs::read(b.join(file)).unwrap()),
            "{route}"
        );
        let head = curl("HEAD", &served.url(&format!("/ferry/v1/{route}")), &[]);
        assert_eq!(head.status, 200, "{route}");
        assert_eq!(
            head.headers["content-length"],
            reply.body.len().to_string(),
            "{route}"
        );
        let put = curl("PUT", &served.url(&format!("/ferry/v1/{route}")), &[]);
        assert_eq!(put.status, 405, "{route}");
    }
    for other in [
        "/ferry/v1/restore.sh",
        "/ferry/v1/blobs/sha256/00",
        "/ferry/v1/",
    ] {
        assert_eq!(curl("GET", &served.url(other), &[]).status, 404, "{other}");
    }
}

/// CRI-O's side: skopeo copies each image from ferry serve into containers-storage (a private
/// vfs store here) with the registry's manifest bytes, and both names go into ferry's
/// pinned_images drop-in under the served bundle's lock digest.
#[test]
fn cri_o_gets_the_same_bytes_and_the_pinning_drop_in() {
    require("skopeo", "skopeo");
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let tags = ["sample/hello:1.0", "sample/hello-docker:1.0"];
    let b = bundle(&reg, &dir.path().join("b"), &tags, &[]);
    let expected: Vec<(String, String)> =
        tags.iter().map(|t| (reg.image(t), reg.digest(t))).collect();
    drop(reg);
    let lock_id = sha256(&std::fs::read(b.join("ferry.lock")).unwrap());
    let served = Served::start(&b, &[]);
    let storage = format!(
        "[vfs@{}+{}]",
        dir.path().join("cs").display(),
        dir.path().join("csrun").display()
    );
    let conf = dir.path().join("crio.conf.d");
    let restore = || {
        ferry_out(&[
            "restore",
            "--from",
            &served.url(""),
            "--runtime",
            "cri-o",
            "--storage",
            &storage,
            "--crio-conf-dir",
            conf.to_str().unwrap(),
            "--pin",
            "--json",
        ])
    };
    let (code, stdout, stderr) = restore();
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["totals"]["restored"], tags.len(), "{report}");
    let drop_in = std::fs::read_to_string(conf.join("50-ferry-pinned.conf")).unwrap();
    for (name, digest) in &expected {
        // containers-storage keeps one image per config (hello and hello-docker share one) with
        // every manifest it came with: looked up by digest, the registry's very bytes.
        let twin = format!("{}@{digest}", name.rsplit_once(':').unwrap().0);
        let raw = run(std::process::Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("containers-storage:{storage}{twin}"),
        ]));
        assert_eq!(&sha256(&raw.stdout), digest, "{name}");
        run(std::process::Command::new("skopeo")
            .args(["inspect", &format!("containers-storage:{storage}{name}")]));
        for n in [name, &twin] {
            let line = drop_in
                .lines()
                .find(|l| l.contains(&format!("\"{n}\"")))
                .unwrap_or_else(|| panic!("{n} not pinned: {drop_in}"));
            assert!(
                line.contains(lock_id.trim_start_matches("sha256:")),
                "{line}"
            );
        }
    }
    // Again: each name is the image holding its very manifest (hello and hello-docker share
    // one image in containers-storage, with both manifests): nothing is copied again.
    let (code, stdout, stderr) = restore();
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["totals"]["present"], tags.len(), "{report}");
    assert_eq!(
        std::fs::read_to_string(conf.join("50-ferry-pinned.conf")).unwrap(),
        drop_in
    );
}

/// A source that accepts connections and never answers: each attempt is cut at its limit, the
/// limit doubles (1 s, then 2 s), and the image fails as a timeout after its attempts, by name.
#[test]
fn a_stalled_source_is_cut_at_growing_limits_and_the_image_fails_by_name() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Held open, never answered.
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in listener.incoming().take(16) {
            conns.push(c);
        }
    });
    drop(held);
    let dir = tempfile::tempdir().unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let lock = serde_json::json!({
        "lockVersion": 1,
        "images": [{
            "reference": "registry.example/app/api:2.1",
            "digest": digest,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 100,
            "platforms": [],
            "totalSize": 100,
        }],
    });
    let lock_file = dir.path().join("ferry.lock");
    std::fs::write(&lock_file, lock.to_string()).unwrap();
    let node = Containerd::start();
    let (code, report, stderr) = restore_from(
        &format!("http://{addr}"),
        &node,
        &[
            "--lock",
            lock_file.to_str().unwrap(),
            "--attempt-timeout",
            "1s",
            "--retries",
            "1",
        ],
    );
    assert_eq!(code, 1, "{stderr}\n{report}");
    let image = &report["images"][0];
    assert_eq!(
        image["reference"], "registry.example/app/api:2.1",
        "{report}"
    );
    assert_eq!(image["status"], "failed", "{report}");
    assert_eq!(image["error"]["kind"], "timeout", "{report}");
    assert!(
        stderr.contains("took longer than 2s (failed after 2 attempt(s))"),
        "{stderr}"
    );
}

/// Any registry works with the list from `--lock`: a bundle pushed by `ferry push` into a
/// plain docker-registry (names `TARGET/REPO:TAG`) comes into containerd under the bundle's own
/// names with the source registry's digests.
#[test]
fn a_registry_filled_by_ferry_push_serves_the_lock_s_images() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    // Single-platform images: a bundle holding one platform of an index pushes it by digest
    // only (the registry would refuse the index without its other children).
    let tags = [
        "sample/hello:1.0",
        "sample/world:1.0",
        "sample/hello-docker:1.0",
    ];
    let b = bundle(&reg, &dir.path().join("b"), &tags, &[]);
    let expected: Vec<(String, String)> =
        tags.iter().map(|t| (reg.image(t), reg.digest(t))).collect();
    drop(reg);
    let target = Registry::start_with(&["--accesslog"]);
    let (code, _, stderr) = ferry_out(&["push", b.to_str().unwrap(), &target.addr]);
    assert_eq!(code, 0, "{stderr}");
    let node = Containerd::start();
    let lock = b.join("ferry.lock");
    let (code, report, stderr) = restore_from(
        &format!("http://{}", target.addr),
        &node,
        &["--lock", lock.to_str().unwrap(), "--pin"],
    );
    assert_eq!(code, 0, "{stderr}\n{report}");
    let listed = containerd_images(&node);
    for (name, digest) in &expected {
        assert_pinned(&listed, name, digest);
    }
    assert!(
        target.log().contains("/manifests/sha256:"),
        "pulled by digest: {}",
        target.log()
    );
}
