//! Export and removal promises the other tests do not reach: a docker-archive of another
//! platform, its warning for digest-only references, a delta refused by rm, gc and the
//! docker-archive and ext4 exports, and `rm` by the short name `ferry ls` shows.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Every file under a folder with its bytes (to show that nothing changed).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let out = run(Command::new("find").arg(dir).args(["-type", "f"]));
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(&n).unwrap();
            (n, bytes)
        })
        .collect()
}

/// A member of a tar, read by GNU tar.
fn member(tar: &Path, name: &str) -> Vec<u8> {
    run(Command::new("tar").arg("-xOf").arg(tar).arg(name)).stdout
}

#[test]
fn a_docker_archive_of_another_platform_and_of_a_digest_only_reference() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let multi = reg.image("sample/multi:1.0");
    let hello_digest = reg.digest("sample/hello:1.0");
    let pinned = reg.image(&format!("sample/hello@{hello_digest}"));
    let b = bundle_tags(
        &reg,
        &dir.path().join("multi"),
        &["sample/multi:1.0"],
        &["--platform", "linux/amd64", "--platform", "linux/arm64"],
    );
    let pinned_tag = format!("sample/hello@{hello_digest}");
    let by_digest = bundle_tags(&reg, &dir.path().join("pinned"), &[&pinned_tag], &[]);

    // The arm64 build of multi: its config (from the registry's manifests) is the one named.
    let (index, _) = reg.manifest("sample/multi", "1.0");
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let child = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap();
    let (child, _) = reg.manifest("sample/multi", child["digest"].as_str().unwrap());
    let child: serde_json::Value = serde_json::from_slice(&child).unwrap();
    let arm64_config = child["config"]["digest"].as_str().unwrap().to_owned();
    let tar = dir.path().join("arm64.tar");
    let (code, _, stderr) = ferry_out(&[
        "export",
        b.to_str().unwrap(),
        "--docker-archive",
        tar.to_str().unwrap(),
        "--platform",
        "linux/arm64",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&member(&tar, "manifest.json")).unwrap();
    let config = manifest[0]["Config"].as_str().unwrap();
    assert!(config.contains(&arm64_config[7..]), "{manifest}");
    let config: serde_json::Value = serde_json::from_slice(&member(&tar, config)).unwrap();
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(manifest[0]["RepoTags"][0], multi.as_str());

    // A reference pinned by digest only has no tag to name it by: said when it is written.
    let tar = dir.path().join("pinned.tar");
    let (code, _, stderr) = ferry_out(&[
        "export",
        by_digest.to_str().unwrap(),
        "--docker-archive",
        tar.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("warning: {pinned}: no tag to name it by")),
        "{stderr}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&member(&tar, "manifest.json")).unwrap();
    assert!(
        manifest[0]["RepoTags"]
            .as_array()
            .is_none_or(|t| t.is_empty()),
        "{manifest}"
    );
}

#[test]
fn a_delta_is_refused_by_rm_gc_and_the_docker_and_ext4_exports() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let base = bundle_tags(&reg, &dir.path().join("base"), &["sample/hello:1.0"], &[]);
    let delta = dir.path().join("delta");
    let (hello, world) = (reg.image("sample/hello:1.0"), reg.image("sample/world:1.0"));
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        delta.to_str().unwrap(),
        "--since",
        base.to_str().unwrap(),
        &hello,
        &world,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let d = delta.to_str().unwrap();
    let before = files(&delta);
    let out = dir.path().join("out");
    for args in [
        vec!["rm", d, &world],
        vec!["gc", d],
        vec!["export", d, "--docker-archive", out.to_str().unwrap()],
        vec!["export", d, "--ext4", out.to_str().unwrap()],
    ] {
        let (code, _, stderr) = ferry_out(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("delta") && stderr.contains("hint:"),
            "{args:?}: {stderr}"
        );
        assert!(!out.exists(), "{args:?}");
    }
    assert!(files(&delta) == before, "the delta changed");
}

/// `ferry rm` takes a reference as `ferry ls` shows it (`docker.io/library/hello:1.0`) or in
/// its short form (`hello:1.0`). The image comes through a mirror for docker.io, so the
/// bundle records the Docker Hub name.
#[test]
fn rm_takes_the_short_name_ls_shows() {
    let reg = Registry::seeded();
    reg.copy_within("sample/hello:1.0", "library/hello:1.0", &[]);
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        b.to_str().unwrap(),
        "--mirror",
        &format!("docker.io={}", reg.addr),
        "hello:1.0",
        "sample/world:1.0",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(index_entry(&b, "docker.io/library/hello:1.0").is_some());
    let (code, listed, stderr) = ferry_out(&["ls", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(listed.contains("docker.io/library/hello:1.0"), "{listed}");
    let (code, _, stderr) = ferry_out(&["rm", b.to_str().unwrap(), "hello:1.0"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(index_entry(&b, "docker.io/library/hello:1.0").is_none());
    assert!(index_entry(&b, "docker.io/sample/world:1.0").is_some());
}
