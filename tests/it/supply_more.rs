//! cosign's other tags and a signature that cannot be fetched, with tags made by skopeo on the
//! real docker-registry (what ferry carries is not checked for content: any manifest will do).

use crate::common;

use common::*;

/// `sha256-<hex>` of the digest the registry gives `tag`.
fn cosign_tag(reg: &Registry, tag: &str) -> String {
    reg.digest(tag).replace(':', "-")
}

/// The registry's file for a blob (distribution's filesystem layout).
fn stored_blob(reg: &Registry, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    reg.storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

#[test]
fn att_and_sbom_tags_are_carried_and_a_signature_that_cannot_be_fetched_fails_alone() {
    let reg = Registry::seeded();
    let hello = cosign_tag(&reg, "sample/hello:1.0");
    reg.copy_within(
        "sample/world:1.0",
        &format!("sample/hello:{hello}.att"),
        &[],
    );
    reg.copy_within(
        "sample/zstd:1.0",
        &format!("sample/hello:{hello}.sbom"),
        &[],
    );
    // world's signature names a layer the registry has lost.
    let world = cosign_tag(&reg, "sample/world:1.0");
    let sig = format!("sample/world:{world}.sig");
    reg.copy_within("sample/raw:1.0", &sig, &[]);
    let (raw, _) = reg.manifest("sample/raw", "1.0");
    let raw: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let lost = raw["config"]["digest"].as_str().unwrap();
    for image in ["sample/hello:1.0", "sample/world:1.0"] {
        assert!(
            !reg.blobs_of(image, "linux/amd64").contains_key(lost),
            "{image} uses {lost}"
        );
    }
    std::fs::remove_file(stored_blob(&reg, lost)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (code, stdout, stderr) = ferry_out(&[
        "bundle",
        "--json",
        "--referrers",
        "-o",
        b.to_str().unwrap(),
        &reg.image("sample/hello:1.0"),
        &reg.image("sample/world:1.0"),
    ]);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let status = |name: &str| {
        report["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["reference"] == name)
            .map(|i| i["status"].as_str().unwrap().to_owned())
    };
    // The images themselves are fine; the signature is a failed entry of its own.
    assert_eq!(
        status(&reg.image("sample/hello:1.0")).as_deref(),
        Some("ok"),
        "{report}"
    );
    assert_eq!(
        status(&reg.image("sample/world:1.0")).as_deref(),
        Some("ok"),
        "{report}"
    );
    assert_eq!(
        status(&reg.image(&sig)).as_deref(),
        Some("failed"),
        "{report}"
    );
    assert_eq!(code, 1, "{stderr}");
    // .att and .sbom are stored byte-exact under their tag names.
    for suffix in ["att", "sbom"] {
        let tag = format!("sample/hello:{hello}.{suffix}");
        let entry = index_entry(&b, &reg.image(&tag)).unwrap_or_else(|| panic!("{tag}: {report}"));
        assert_eq!(entry["digest"], reg.digest(&tag));
    }
    assert!(index_entry(&b, &reg.image(&sig)).is_none());
    let (code, listed, stderr) = ferry_out(&["ls", "--json", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let text = listed.to_string();
    assert!(text.contains(".att") && text.contains(".sbom"), "{listed}");
    assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 0);
}
