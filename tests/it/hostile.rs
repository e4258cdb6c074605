//! Trust nothing a registry or a bundle says: a lying registry (newlines in platform fields
//! and media types), a tampered index.json, unfinished bundle folders. The hostile images fail
//! alone; nothing they say reaches index.json, the lock or restore.sh; restore.sh into a real
//! containerd imports only the named good image and runs nothing.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::fake::{Fake, OCI_MANIFEST, TestImage, index_of};
use common::*;

/// A line that would add a spoofed image to restore.sh, then shell that would run as root
/// had the old here-document delimiter been closed early.
fn payload(marker: &Path) -> String {
    format!(
        "v1\ndocker.io/library/nginx:latest sha256:{} {OCI_MANIFEST} 500 linux/amd64\n\
         FERRY_IMAGES\ntouch {}\ncat <<'FERRY_IMAGES'",
        "a".repeat(64),
        marker.display()
    )
}

/// Serves the hostile images on a fake registry; returns (repository, expected message) pairs.
fn serve_lies(fake: &Fake, marker: &Path) -> Vec<(&'static str, &'static str)> {
    let lie = payload(marker);
    let child = TestImage::random(1, &[100]);
    fake.serve_child("evil/variant", &child);
    fake.serve_child("evil/os", &child);
    fake.serve_child("evil/arch", &child);
    let platform = |os: &str, arch: &str, variant: Option<&str>| {
        let mut p = serde_json::json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            p["variant"] = v.into();
        }
        p
    };
    let index = |p| index_of(&[(&child, p)]);
    let idx = common::fake::OCI_INDEX;
    fake.serve_manifest(
        "evil/variant",
        "1",
        index(platform("linux", "amd64", Some(&lie))),
        idx,
    );
    let os = format!("linux\n{lie}");
    fake.serve_manifest("evil/os", "1", index(platform(&os, "amd64", None)), idx);
    let arch = format!("amd64\n{lie}");
    fake.serve_manifest("evil/arch", "1", index(platform("linux", &arch, None)), idx);

    // A single image whose config lies about its variant.
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "variant": lie,
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    let image = TestImage::from_parts(config, vec![b"layer".to_vec()], OCI_MANIFEST);
    fake.serve_image("evil/config", "1", &image);

    // A manifest whose mediaType carries the spoofed line.
    let media = format!("{OCI_MANIFEST}\n{lie}");
    let image = TestImage::from_parts(
        br#"{"architecture":"amd64","os":"linux","rootfs":{}}"#.to_vec(),
        vec![b"layer2".to_vec()],
        &media,
    );
    fake.serve_manifest("evil/media", "1", image.manifest.clone(), OCI_MANIFEST);
    vec![
        ("evil/variant", "invalid platform variant"),
        ("evil/os", "invalid platform os"),
        ("evil/arch", "invalid platform architecture"),
        ("evil/config", "invalid platform variant"),
        ("evil/media", "invalid media type"),
    ]
}

/// restore.sh (with --pin) into a real containerd: the good image under its two names,
/// nothing else, and no payload run.
fn restore_only_good(script: &Path, reg: &Registry, good: &str, marker: &Path) {
    let node = Containerd::start();
    let out = Command::new(script)
        .args(["--pin"])
        .env("CONTAINERD_ADDRESS", &node.socket)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let served = sha256(&reg.manifest("sample/hello", "1.0").0);
    let mut in_containerd: Vec<String> =
        String::from_utf8(node.ctr(&["images", "ls", "-q"]).stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
    in_containerd.sort();
    let mut expected = vec![
        good.to_owned(),
        format!("{}/sample/hello@{served}", reg.addr),
    ];
    expected.sort();
    assert_eq!(in_containerd, expected, "{log}");
    assert!(!marker.exists(), "restore.sh ran the registry's payload");
}

#[test]
fn a_lying_registry_fails_alone_and_reaches_no_node() {
    require("shellcheck", "shellcheck");
    let reg = Registry::seeded();
    let fake = Fake::start();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let lies = serve_lies(&fake, &marker);
    let good = reg.image("sample/hello:1.0");
    let bundle = dir.path().join("bundle");
    let mut args = vec![
        "bundle".to_owned(),
        "-o".to_owned(),
        bundle.to_str().unwrap().to_owned(),
        good.clone(),
    ];
    args.extend(
        lies.iter()
            .map(|(repo, _)| format!("{}/{repo}:1", fake.addr)),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, stderr) = ferry_out(&args);
    assert_eq!(code, 1, "{stderr}");
    for (repo, message) in &lies {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&format!("error: {}/{repo}:1: ", fake.addr)))
            .unwrap_or_else(|| panic!("no error for {repo}: {stderr}"));
        assert!(line.contains(message), "{repo}: {line}");
    }
    // The lies are shown escaped, on the line of their image: no line of their own.
    assert!(
        !stderr.lines().any(|l| l.starts_with("touch")
            || l.contains("docker.io/library/nginx:latest sha") && !l.contains("\\n")),
        "{stderr}"
    );
    assert!(stderr.contains("bundled only 1 of 6 images"), "{stderr}");

    let names = index_names(&bundle);
    assert_eq!(names, std::slice::from_ref(&good));
    let lock = std::fs::read_to_string(bundle.join("ferry.lock")).unwrap();
    assert!(!lock.contains("evil") && !lock.contains("nginx"), "{lock}");
    let (code, stdout, stderr) = ferry_out(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    let script_path = bundle.join("restore.sh");
    let script = std::fs::read_to_string(&script_path).unwrap();
    let listed = script_images(&script);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].starts_with(&format!("{good} sha256:")),
        "{listed:?}"
    );
    run(Command::new("shellcheck").arg(&script_path));

    restore_only_good(&script_path, &reg, &good, &marker);

    // The bundle takes further runs.
    let (code, _, stderr) = ferry_out(&["bundle", "-o", bundle.to_str().unwrap(), &good]);
    assert_eq!(code, 0, "{stderr}");
}

/// A bundle of one good image, then an index.json entry added as another tool (or an
/// attacker with write access to the bundle) would.
fn tampered_bundle(reg: &Registry, dir: &Path, name: &str) -> std::path::PathBuf {
    let bundle = dir.join("bundle");
    let good = reg.image("sample/hello:1.0");
    let (code, _, stderr) = ferry_out(&["bundle", "-o", bundle.to_str().unwrap(), &good]);
    assert_eq!(code, 0, "{stderr}");
    let mut index = index_json(&bundle);
    let mut entry = index["manifests"][0].clone();
    entry["annotations"]["org.opencontainers.image.ref.name"] = name.into();
    entry["annotations"]["io.containerd.image.name"] = name.into();
    index["manifests"].as_array_mut().unwrap().push(entry);
    std::fs::write(
        bundle.join("index.json"),
        serde_json::to_vec_pretty(&index).unwrap(),
    )
    .unwrap();
    bundle
}

#[test]
fn a_hostile_index_json_name_is_refused() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let hostile = "evil\nFERRY_IMAGES\ntouch /tmp/x\ncat <<'FERRY_IMAGES'";
    let bundle = tampered_bundle(&reg, dir.path(), hostile);
    let b = bundle.to_str().unwrap();

    let (code, stdout, stderr) = ferry_out(&["verify", b]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("index.json: entry 2 of 2: invalid reference name \"evil\\nFERRY_IMAGES"),
        "{stderr}"
    );
    assert!(!stderr.lines().any(|l| l.starts_with("touch")), "{stderr}");
    let (_, json, _) = ferry_out(&["verify", "--json", b]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["ok"], false);
    assert!(
        json["problems"][0].as_str().unwrap().contains("index.json"),
        "{json}"
    );

    // bundle refuses the folder before fetching anything, and writes no restore.sh from it.
    let (code, _, stderr) = ferry_out(&["bundle", "-o", b, &reg.image("sample/world:1.0")]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("index.json: entry 2 of 2"), "{stderr}");
    let script = std::fs::read_to_string(bundle.join("restore.sh")).unwrap();
    assert!(
        !script.contains("evil") && !script.contains("touch"),
        "{script}"
    );
    assert_eq!(script_images(&script).len(), 1);

    // Nor do the readers carry it anywhere.
    let (code, _, stderr) = ferry_out(&["ls", b]);
    assert_ne!(code, 0);
    assert!(stderr.contains("index.json"), "{stderr}");
    let tar = dir.path().join("out.tar");
    let (code, _, stderr) = ferry_out(&["export", b, "--oci-archive", tar.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(stderr.contains("index.json"), "{stderr}");
    // ferry restore refuses it before it asks any runtime (this socket does not exist).
    let (code, _, stderr) = ferry_out(&[
        "restore",
        b,
        "--runtime",
        "containerd",
        "--address",
        "/nonexistent/containerd.sock",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("index.json: entry 2 of 2"), "{stderr}");

    // A short name (what skopeo writes into ref.name) is no full reference either.
    let dir = tempfile::tempdir().unwrap();
    let bundle = tampered_bundle(&reg, dir.path(), "1.0");
    let (code, _, stderr) = ferry_out(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("invalid reference name \"1.0\""),
        "{stderr}"
    );
}

#[test]
fn verify_needs_oci_layout_and_index_json() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    std::fs::create_dir_all(b.join("blobs/sha256")).unwrap();
    std::fs::write(b.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        b.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    let (code, stdout, _) = ferry_out(&["verify", b.to_str().unwrap()]);
    assert_eq!(code, 0, "an empty layout is a valid one: {stdout}");

    std::fs::remove_file(b.join("index.json")).unwrap();
    let (code, stdout, stderr) = ferry_out(&["verify", b.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stderr.contains("no index.json file"), "{stderr}");

    std::fs::write(
        b.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    std::fs::remove_file(b.join("oci-layout")).unwrap();
    let (code, stdout, stderr) = ferry_out(&["verify", b.to_str().unwrap()]);
    // No oci-layout: no bundle at all (exit 2); a layout without index.json is damaged (1).
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("no oci-layout file"), "{stderr}");
}

#[test]
fn bundle_json_reports_a_busy_folder() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    // Held as another ferry holds it: an exclusive flock on the folder.
    let held = std::fs::File::open(&b).unwrap();
    held.try_lock().unwrap();
    let (code, stdout, stderr) = ferry_out(&[
        "bundle",
        "--json",
        "-o",
        b.to_str().unwrap(),
        "127.0.0.1:9/never/fetched:1",
    ]);
    assert_eq!(code, 2, "a folder in use is a local condition: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout:?} {stderr}"));
    assert_eq!(report["success"], false);
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in use by another ferry"),
        "{report}"
    );
    assert!(stderr.contains("in use by another ferry"), "{stderr}");
}

#[test]
fn restore_sh_checks_each_line_again() {
    // An empty bundle (the only reference fails) still carries restore.sh. (The folder is
    // made first: a run that bundles nothing removes a folder only when it created it.)
    let fake = Fake::start();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    std::fs::create_dir(&b).unwrap();
    let missing = format!("{}/not/there:1", fake.addr);
    let (code, _, stderr) = ferry_out(&["bundle", "-o", b.to_str().unwrap(), &missing]);
    assert_eq!(code, 1, "{stderr}");
    // Lines ferry would never write, put in by hand (as whoever can write the bundle could).
    let marker = dir.path().join("pwned");
    let script_path = b.join("restore.sh");
    let script = std::fs::read_to_string(&script_path).unwrap();
    let digest = format!("sha256:{}", "a".repeat(64));
    let bad = [
        format!("docker.io/library/a:1 {digest} application/vnd.oci\"x 5 -"),
        format!(
            "docker.io/library/$(touch {}) {digest} {OCI_MANIFEST} 5 -",
            marker.display()
        ),
        format!("-x {digest} {OCI_MANIFEST} 5 -"),
        format!("docker.io/library/b:1 {digest} {OCI_MANIFEST} 5e3 -"),
    ];
    let script = script.replacen(
        "cat <<'FERRY%IMAGES'\n",
        &format!("cat <<'FERRY%IMAGES'\n{}\n", bad.join("\n")),
        1,
    );
    let listed = script_images(&script);
    assert_eq!(
        listed.iter().filter(|l| !l.is_empty()).count(),
        bad.len(),
        "{script}"
    );
    std::fs::write(&script_path, script).unwrap();
    let out = Command::new(&script_path)
        .args(["--runtime", "containerd"])
        .env("FERRY_PLATFORM", "linux/amd64")
        .env("CONTAINERD_ADDRESS", dir.path().join("no.sock"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert_eq!(
        log.matches("skipping a malformed image line").count(),
        bad.len(),
        "{log}"
    );
    assert!(
        log.contains("no image in this bundle runs on linux/amd64"),
        "{log}"
    );
    assert!(!marker.exists());
}
