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
