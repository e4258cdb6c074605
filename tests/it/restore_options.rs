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
