//! `ferry verify` catches what is wrong with a bundle, and `ferry ls` shows what is in it.

use crate::common;

use common::*;

fn bundle_hello(reg: &Registry, dir: &std::path::Path) -> (std::path::PathBuf, serde_json::Value) {
    let bundle = dir.join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        bundle.to_str().unwrap(),
        &reg.image("sample/hello:1.0"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&reg.manifest("sample/hello", "1.0").0).unwrap();
    (bundle, manifest)
}

#[test]
fn a_flipped_byte_is_named() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let (bundle, manifest) = bundle_hello(&reg, dir.path());
    let layer = manifest["layers"][1]["digest"].as_str().unwrap();
    let path = blob_path(&bundle, layer);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let (code, stdout, stderr) = ferry_out(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains(&format!("blob {layer} is corrupt")),
        "{stderr}"
    );
    assert!(stdout.starts_with("FAILED"), "{stdout}");
    let (_, json, _) = ferry_out(&["verify", "--json", bundle.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["problems"].as_array().unwrap().len(), 1);
    assert!(stderr.contains("ferry verify --repair"), "{stderr}");

    // --repair removes the corrupt blob; the bundle command then fetches it again.
    let (code, _, stderr) = ferry_out(&["verify", "--repair", bundle.to_str().unwrap()]);
    assert_eq!(code, 1, "the bundle was not sound when checked");
    assert!(stderr.contains("removed 1 corrupt blob(s)"), "{stderr}");
    assert!(!path.exists());
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        bundle.to_str().unwrap(),
        &reg.image("sample/hello:1.0"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ferry_out(&["verify", bundle.to_str().unwrap()]).0, 0);
}

#[test]
fn a_missing_blob_names_the_image() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let (bundle, manifest) = bundle_hello(&reg, dir.path());
    let config = manifest["config"]["digest"].as_str().unwrap();
    std::fs::remove_file(blob_path(&bundle, config)).unwrap();
    let (code, _, stderr) = ferry_out(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "{}: {config}: missing",
            reg.image("sample/hello:1.0")
        )),
        "{stderr}"
    );

    // ls marks it incomplete; a re-run of bundle repairs it.
    let (_, ls, _) = ferry_out(&["ls", bundle.to_str().unwrap()]);
    assert!(ls.contains("incomplete"), "{ls}");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        bundle.to_str().unwrap(),
        &reg.image("sample/hello:1.0"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ferry_out(&["verify", bundle.to_str().unwrap()]).0, 0);
}

#[test]
fn a_missing_manifest_and_a_stale_lock() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let (bundle, _) = bundle_hello(&reg, dir.path());
    let entry = index_entry(&bundle, &reg.image("sample/hello:1.0")).unwrap();
    std::fs::remove_file(blob_path(&bundle, entry["digest"].as_str().unwrap())).unwrap();
    std::fs::write(
        bundle.join("ferry.lock"),
        r#"{"lockVersion":1,"images":[]}"#,
    )
    .unwrap();
    let (code, _, stderr) = ferry_out(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("missing"), "{stderr}");
    assert!(stderr.contains("ferry.lock has no entry"), "{stderr}");
}

#[test]
fn not_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    // A folder without oci-layout, like a path that is no folder and no bundle file, is no
    // bundle at all: the user's mistake (exit 2), said plainly.
    let (code, _, stderr) = ferry_out(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is not an OCI image layout: no oci-layout file"),
        "{stderr}"
    );
    let (code, _, stderr) = ferry_out(&["ls", "/nonexistent/bundle"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no such folder or archive file"),
        "{stderr}"
    );
}

#[test]
fn ls_lists_reference_digest_platforms_size() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let (bundle, manifest) = bundle_hello(&reg, dir.path());
    let (code, stdout, _) = ferry_out(&["ls", "--json", bundle.to_str().unwrap()]);
    assert_eq!(code, 0);
    let ls: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(ls["version"], 1);
    let ls = &ls["images"];
    let served = reg.manifest("sample/hello", "1.0").0;
    let expected_size = served.len() as u64
        + manifest["config"]["size"].as_u64().unwrap()
        + manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["size"].as_u64().unwrap())
            .sum::<u64>();
    assert_eq!(ls[0]["reference"], reg.image("sample/hello:1.0"));
    assert_eq!(ls[0]["digest"], sha256(&served));
    assert_eq!(ls[0]["platforms"], serde_json::json!(["linux/amd64"]));
    assert_eq!(ls[0]["size"], expected_size);
    let platform = &ls[0]["manifests"][0];
    assert_eq!(
        platform["digest"],
        sha256(&served),
        "a single manifest is its own"
    );
    assert_eq!(
        (&platform["os"], &platform["architecture"]),
        (&serde_json::json!("linux"), &serde_json::json!("amd64"))
    );
    assert_eq!(platform["size"], expected_size);
    let (_, table, _) = ferry_out(&["ls", bundle.to_str().unwrap()]);
    assert!(table.starts_with("REFERENCE"), "{table}");
    assert!(
        table.contains(&reg.image("sample/hello:1.0")) && table.contains("linux/amd64"),
        "{table}"
    );
}
