//! `ferry restore` options the other restore tests do not take: `-n` (containerd namespace).

use crate::common;

use std::process::Command;

use common::*;

/// The image names containerd lists in `namespace`.
fn names_in(node: &Containerd, namespace: &str) -> Vec<String> {
    let out =
        run(Command::new("ctr").args(["-a", &node.socket, "-n", namespace, "images", "ls", "-q"]));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn restore_n_imports_into_that_namespace_only() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_tags(&reg, dir.path(), &["sample/hello:1.0"], &[]);
    let node = Containerd::start();
    let (code, _, stderr) = ferry_out(&[
        "restore",
        b.to_str().unwrap(),
        "--address",
        &node.socket,
        "-n",
        "ferry-test",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let hello = reg.image("sample/hello:1.0");
    assert!(names_in(&node, "ferry-test").contains(&hello), "{stderr}");
    assert!(
        names_in(&node, "k8s.io").is_empty(),
        "k8s.io was written to"
    );
}

/// A bundle where one image has a build for this node and another has none: restore.sh
/// imports the one, then exits non-zero naming the other.
#[test]
fn restore_sh_names_each_image_with_no_build_for_the_node() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_tags(
        &reg,
        dir.path(),
        &["sample/hello:1.0", "sample/arm-only:1.0"],
        &["--platform", "linux/amd64", "--platform", "linux/arm64"],
    );
    let node = Containerd::start();
    let out = Command::new(b.join("restore.sh"))
        .env("CONTAINERD_ADDRESS", &node.socket)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{log}");
    let arm_only = reg.image("sample/arm-only:1.0");
    let named: Vec<&str> = log.lines().filter(|l| l.contains(&arm_only)).collect();
    assert!(!named.is_empty(), "{log}");
    assert!(
        names_in(&node, "k8s.io").contains(&reg.image("sample/hello:1.0")),
        "{log}"
    );
    assert!(
        !names_in(&node, "k8s.io")
            .iter()
            .any(|n| n.contains("arm-only")),
        "{log}"
    );
}

/// `--jobs 2` imports two images that share no blob side by side: a ctr first on PATH holds
/// each import until a second one has started (or 20 s), and records whether one had.
#[test]
fn restore_jobs_imports_independent_images_side_by_side() {
    // A sample image and a bench image: they share no blob (by the registries' manifests).
    let reg = Registry::seeded();
    let (big, bench) = big_image_registry(8);
    let (hello, bench_ref) = (reg.image("sample/hello:1.0"), big.image(&bench));
    let blobs = big.blobs_of(&bench, "linux/amd64");
    assert!(
        reg.blobs_of("sample/hello:1.0", "linux/amd64")
            .keys()
            .all(|d| !blobs.contains_key(d)),
        "the two images share a blob"
    );
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (code, _, stderr) = ferry_out(&["bundle", "-o", b.to_str().unwrap(), &hello, &bench_ref]);
    assert_eq!(code, 0, "{stderr}");
    let node = Containerd::start();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let script = format!(
        r#"#!/bin/sh
for a in "$@"; do [ "$a" = import ] && importing=1; done
if [ -n "${{importing:-}}" ]; then
  touch '{m}/started.'$$
  i=0
  while [ "$(ls '{m}' | grep -c '^started')" -lt 2 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
  [ "$(ls '{m}' | grep -c '^started')" -ge 2 ] && touch '{m}/overlapped'
fi
exec {ctr} "$@"
"#,
        m = marks.display(),
        ctr = which("ctr").display()
    );
    std::fs::write(bin.join("ctr"), script).unwrap();
    std::fs::set_permissions(
        bin.join("ctr"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (code, _, stderr) = ferry_env(
        &[
            "restore",
            b.to_str().unwrap(),
            "--address",
            &node.socket,
            "--jobs",
            "2",
        ],
        &[("PATH", &path_with(&bin))],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        marks.join("overlapped").exists(),
        "the imports ran one after the other"
    );
    for name in [hello, bench_ref] {
        assert!(names_in(&node, "k8s.io").contains(&name), "{name}");
    }
}
