//! `ferry bundle` against the real docker-registry, read back with skopeo.

use crate::common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;

const OCI_TYPED: &[&str] = &[
    "sample/hello:1.0",
    "sample/world:1.0",
    "sample/multi:1.0",
    "sample/zstd:1.0",
    "sample/raw:1.0",
];
const DOCKER_TYPED: &[&str] = &["sample/hello-docker:1.0", "sample/multi-docker:1.0"];

fn split(tag: &str) -> (&str, &str) {
    tag.rsplit_once(':').unwrap()
}

/// Every blob a registry manifest reaches for the given platforms, computed from the registry's
/// own documents (not from ferry's bundle): digest -> size.
fn registry_blobs(
    reg: &Registry,
    repo: &str,
    reference: &str,
    platforms: &[&str],
    out: &mut BTreeMap<String, u64>,
) {
    let (bytes, _) = reg.manifest(repo, reference);
    out.insert(sha256(&bytes), bytes.len() as u64);
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    if let Some(children) = doc["manifests"].as_array() {
        for child in children {
            let p = &child["platform"];
            let mut name = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                name = format!("{name}/{v}");
            }
            if platforms.contains(&name.as_str()) {
                registry_blobs(reg, repo, child["digest"].as_str().unwrap(), platforms, out);
            }
        }
    } else {
        for d in std::iter::once(&doc["config"]).chain(doc["layers"].as_array().unwrap()) {
            out.insert(
                d["digest"].as_str().unwrap().to_owned(),
                d["size"].as_u64().unwrap(),
            );
        }
    }
}

#[test]
fn bundles_every_sample_byte_exact_and_deduplicated() {
    let reg = Registry::seeded();
    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("bundle");
    let refs: Vec<String> = OCI_TYPED
        .iter()
        .chain(DOCKER_TYPED)
        .map(|t| reg.image(t))
        .collect();
    let mut args = vec![
        "bundle",
        "-o",
        bundle.to_str().unwrap(),
        "--platform",
        "linux/amd64",
    ];
    args.extend(refs.iter().map(String::as_str));
    let (code, _, stderr) = ferry_out(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("bundled 7 of 7 images"), "{stderr}");

    // Each reference resolves to exactly what the registry serves, under its full name.
    let mut expected_blobs = BTreeMap::new();
    for tag in OCI_TYPED.iter().chain(DOCKER_TYPED) {
        let (repo, t) = split(tag);
        let (served, content_type) = reg.manifest(repo, t);
        let name = reg.image(tag);
        let entry =
            index_entry(&bundle, &name).unwrap_or_else(|| panic!("{name} missing from index.json"));
        assert_eq!(entry["digest"], sha256(&served), "{name}");
        assert_eq!(
            entry["mediaType"], content_type,
            "{name}: media type kept as served"
        );
        assert_eq!(entry["annotations"]["io.containerd.image.name"], name);
        assert_eq!(
            std::fs::read(blob_path(&bundle, &sha256(&served))).unwrap(),
            served,
            "{name}: bytes as served"
        );
        registry_blobs(&reg, repo, t, &["linux/amd64"], &mut expected_blobs);
    }
    // Bytes on disk are the unique blobs, each once (the base layer is shared by six images).
    let (files, bytes) = blob_files(&bundle);
    assert_eq!(files, expected_blobs.len());
    assert_eq!(bytes, expected_blobs.values().sum::<u64>());

    // Only linux/amd64 of the index: the arm64 child and the attestation are not fetched.
    let multi = index_entry(&bundle, &reg.image("sample/multi:1.0")).unwrap();
    assert_eq!(multi["annotations"]["io.ferry.platforms"], "linux/amd64");
    let index: serde_json::Value =
        serde_json::from_slice(&reg.manifest("sample/multi", "1.0").0).unwrap();
    for child in index["manifests"].as_array().unwrap() {
        let present = blob_path(&bundle, child["digest"].as_str().unwrap()).exists();
        assert_eq!(
            present,
            child["platform"]["architecture"] == "amd64",
            "{child}"
        );
    }

    // skopeo reads every OCI-typed image back by its full name, with the registry's digest.
    // (skopeo 1.9's oci: transport ignores index.json entries with Docker media types.)
    for tag in OCI_TYPED {
        let name = reg.image(tag);
        let out =
            run(Command::new("skopeo")
                .args(["inspect", &format!("oci:{}:{name}", bundle.display())]));
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (repo, t) = split(tag);
        assert_eq!(info["Digest"], sha256(&reg.manifest(repo, t).0), "{name}");
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("skopeo").args([
            "copy",
            "--quiet",
            &format!("oci:{}:{name}", bundle.display()),
            &format!("dir:{}", dir.path().join("img").display()),
        ]));
    }

    // Layers are never recompressed: the fixture's zstd and uncompressed layers are there as built.
    let fixtures = fixture_tags();
    for tag in ["sample/zstd:1.0", "sample/raw:1.0"] {
        let m: serde_json::Value =
            serde_json::from_slice(&reg.manifest(split(tag).0, "1.0").0).unwrap();
        let types: Vec<&str> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap())
            .collect();
        assert_eq!(serde_json::json!(types), fixtures[tag]["layers"], "{tag}");
        let last = m["layers"].as_array().unwrap().last().unwrap()["digest"]
            .as_str()
            .unwrap();
        let fixture_blob = sample_layout().join("blobs/sha256").join(&last[7..]);
        assert_eq!(
            std::fs::read(blob_path(&bundle, last)).unwrap(),
            std::fs::read(fixture_blob).unwrap()
        );
    }

    // The lock file records each reference with the digest and the platforms kept.
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("ferry.lock")).unwrap()).unwrap();
    let images = lock["images"].as_array().unwrap();
    assert_eq!(images.len(), 7);
    let names: Vec<&str> = images
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "lock entries are sorted");
    let multi_lock = images
        .iter()
        .find(|i| i["reference"] == reg.image("sample/multi:1.0"))
        .unwrap();
    assert_eq!(multi_lock["digest"], multi["digest"]);
    assert_eq!(multi_lock["platforms"].as_array().unwrap().len(), 1);
    assert_eq!(multi_lock["platforms"][0]["platform"], "linux/amd64");

    let (code, stdout, stderr) = ferry_out(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("ok: 7 images"), "{stdout}");
    assert!(
        !bundle.join(".ferry").exists(),
        "the working folder is removed after a complete run"
    );
}

#[test]
fn rerun_fetches_nothing_and_a_second_run_adds_images() {
    let reg = Registry::seeded_with(&["--accesslog"]);
    // Layer downloads as the registry saw them (its access log), run by run. Configs are left
    // out: resolving a single-platform image reads its config for the platform, each run.
    let configs: Vec<String> = ["hello", "world"]
        .iter()
        .map(|repo| {
            let (m, _) = reg.manifest(&format!("sample/{repo}"), "1.0");
            let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
            m["config"]["digest"].as_str().unwrap().to_owned()
        })
        .collect();
    let blob_gets = || {
        reg.requests_by_others()
            .iter()
            .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/"))
            .filter(|l| !configs.iter().any(|c| l.contains(c.as_str())))
            .count()
    };
    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("b");
    let b = bundle.to_str().unwrap();
    let (code, stdout, stderr) =
        ferry_out(&["bundle", "--json", "-o", b, &reg.image("sample/hello:1.0")]);
    assert_eq!(code, 0, "{stderr}");
    let first: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(first["totals"]["blobsFetched"], 3, "config and two layers");
    assert_eq!(first["images"][0]["status"], "ok");
    assert_eq!(blob_gets(), 2);

    // world shares the base layer: only its config and own layer are fetched.
    let (code, stdout, stderr) = ferry_out(&[
        "bundle",
        "--json",
        "-o",
        b,
        &reg.image("sample/hello:1.0"),
        &reg.image("sample/world:1.0"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let second: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(second["totals"]["blobsFetched"], 2);
    assert_eq!(
        second["totals"]["blobsPresent"], 3,
        "hello's config and layers"
    );
    assert_eq!(blob_gets(), 2 + 1, "{}", reg.log());

    // Nothing new: nothing fetched, index.json unchanged, both images still there.
    let before = std::fs::read(bundle.join("index.json")).unwrap();
    let (code, stdout, _) =
        ferry_out(&["bundle", "--json", "-o", b, &reg.image("sample/world:1.0")]);
    assert_eq!(code, 0);
    let third: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(third["totals"]["blobsFetched"], 0);
    assert_eq!(third["totals"]["bytesReceived"], 0);
    assert_eq!(
        blob_gets(),
        2 + 1,
        "the registry was asked for no layer: {}",
        reg.log()
    );
    assert_eq!(std::fs::read(bundle.join("index.json")).unwrap(), before);
    assert_eq!(
        index_json(&bundle)["manifests"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn platforms_are_filtered_and_missing_ones_fail_clearly() {
    let reg = Registry::seeded();
    let out = tempfile::tempdir().unwrap();
    let multi = reg.image("sample/multi:1.0");
    let index: serde_json::Value =
        serde_json::from_slice(&reg.manifest("sample/multi", "1.0").0).unwrap();
    let children: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["digest"].as_str().unwrap())
        .collect();

    let two = out.path().join("two");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        two.to_str().unwrap(),
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        &multi,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(blob_path(&two, children[0]).exists() && blob_path(&two, children[1]).exists());
    assert!(
        !blob_path(&two, children[2]).exists(),
        "attestation skipped"
    );
    let entry = index_entry(&two, &multi).unwrap();
    assert_eq!(
        entry["annotations"]["io.ferry.platforms"],
        "linux/amd64,linux/arm64/v8"
    );
    let (_, ls, _) = ferry_out(&["ls", "--json", two.to_str().unwrap()]);
    let ls: serde_json::Value = serde_json::from_str(&ls).unwrap();
    assert_eq!(
        ls["images"][0]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64/v8"])
    );

    let all = out.path().join("all");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        all.to_str().unwrap(),
        "--all-platforms",
        &multi,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        children.iter().all(|c| blob_path(&all, c).exists()),
        "every child with --all-platforms"
    );

    // A platform the index lacks fails that image and names what it has; the folder the run
    // created for nothing is removed.
    let bad = out.path().join("bad");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        bad.to_str().unwrap(),
        "--platform",
        "linux/s390x",
        &multi,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&multi)
            && stderr.contains("no linux/s390x image: it has linux/amd64, linux/arm64/v8"),
        "{stderr}"
    );
    assert!(!bad.exists(), "{stderr}");

    // A single-platform image is kept when it serves one of the wanted platforms (its platform
    // is recorded), and fails when it serves none.
    let mixed = out.path().join("mixed");
    let (hello, arm) = (
        reg.image("sample/hello:1.0"),
        reg.image("sample/arm-only:1.0"),
    );
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        mixed.to_str().unwrap(),
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        &hello,
        &arm,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        index_entry(&mixed, &hello).unwrap()["platform"]["architecture"],
        "amd64"
    );
    assert_eq!(
        index_entry(&mixed, &arm).unwrap()["platform"]["variant"],
        "v8"
    );
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        bad.to_str().unwrap(),
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/s390x",
        &arm,
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no linux/amd64 or linux/s390x image: it has linux/arm64/v8 only"),
        "{stderr}"
    );
}

#[test]
fn lists_from_files_and_stdin_with_comments_and_duplicates() {
    let reg = Registry::seeded();
    let out = tempfile::tempdir().unwrap();
    let list = out.path().join("images.txt");
    std::fs::write(
        &list,
        format!(
            "# sample images\n{}\n\n{}   # again, same image\n{}\n",
            reg.image("sample/hello:1.0"),
            reg.image("sample/hello:1.0"),
            reg.image("sample/world:1.0")
        ),
    )
    .unwrap();
    let bundle = out.path().join("b");
    let (code, stdout, stderr) = ferry_out(&[
        "bundle",
        "--json",
        "-f",
        list.to_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["totals"]["images"], 2, "duplicates fetched once");

    let bundle2 = out.path().join("b2");
    let mut child = ferry()
        .args(["bundle", "-f", "-", "-o", bundle2.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(std::fs::read(&list).unwrap().as_slice())
        .unwrap();
    let status = child.wait_with_output().unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(
        std::fs::read(bundle.join("index.json")).unwrap(),
        std::fs::read(bundle2.join("index.json")).unwrap(),
        "same list, same index"
    );

    // A bad line is named with its file and line number, and nothing is fetched.
    std::fs::write(&list, "alpine:3.20\nNot/Valid:x\n").unwrap();
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-f",
        list.to_str().unwrap(),
        "-o",
        out.path().join("c").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("images.txt:2:"), "{stderr}");
}

#[test]
fn by_digest_references_and_tag_at_digest() {
    let reg = Registry::seeded();
    let out = tempfile::tempdir().unwrap();
    let (served, _) = reg.manifest("sample/world", "1.0");
    let digest = sha256(&served);
    let by_digest = format!("{}/sample/world@{digest}", reg.addr);
    // tag@digest: the digest wins (world's content under a tag that does not exist).
    let pinned = format!("{}/sample/world:not-a-tag@{digest}", reg.addr);
    let bundle = out.path().join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        bundle.to_str().unwrap(),
        &by_digest,
        &pinned,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        index_entry(&bundle, &by_digest).unwrap()["digest"],
        digest.as_str()
    );
    assert_eq!(
        index_entry(&bundle, &pinned).unwrap()["digest"],
        digest.as_str()
    );
}
