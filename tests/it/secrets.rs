//! A password typed inside a reference (`https://user:pw@host/repo:tag`) or a mirror, wherever
//! it comes from (arguments, list files, manifests, --mirror, registries.conf), never reaches
//! stdout or stderr: every message showing one goes through ferry's redaction.

use crate::common;

use common::*;

const PASS: &str = "pa55-Word-xyzzy";

fn assert_hidden(args: &[&str], env: &[(&str, &str)]) -> String {
    let (code, stdout, stderr) = ferry_env(args, env);
    let all = format!("{stdout}{stderr}");
    assert_eq!(code, 2, "{args:?}: {all}");
    assert!(!all.contains(PASS), "{args:?} printed the password: {all}");
    assert!(all.contains("***@"), "{args:?} says where: {all}");
    all
}

#[test]
fn passwords_in_references_and_mirrors_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let out = b.to_str().unwrap();
    let with_scheme = format!("https://me:{PASS}@127.0.0.1:5000/app:1");
    let without = format!("me:{PASS}@127.0.0.1:5000/app:1");

    // Arguments, to bundle and to images.
    for r in [&with_scheme, &without] {
        let all = assert_hidden(&["bundle", "-o", out, r], &[]);
        assert!(all.contains("argument 1"), "{all}");
        assert_hidden(&["images", "--json", r], &[]);
    }

    // A list file.
    let list = dir.path().join("images.txt");
    std::fs::write(&list, format!("alpine:3.20\n{without}\n")).unwrap();
    let all = assert_hidden(&["bundle", "-o", out, "-f", list.to_str().unwrap()], &[]);
    assert!(all.contains("images.txt:2"), "{all}");

    // A manifest.
    let manifest = dir.path().join("deploy.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: \"{with_scheme}\"\n"
        ),
    )
    .unwrap();
    let all = assert_hidden(
        &["images", "--from-manifests", manifest.to_str().unwrap()],
        &[],
    );
    assert!(all.contains("Deployment web"), "{all}");

    // --mirror, with and without a scheme.
    for m in [
        format!("docker.io=https://me:{PASS}@mirror.example"),
        format!("docker.io=me:{PASS}@mirror.example:5000"),
    ] {
        assert_hidden(&["bundle", "-o", out, "--mirror", &m, "alpine"], &[]);
    }

    assert!(!b.exists(), "usage errors write nothing");

    // A registries.conf mirror.
    let conf = dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"me:{PASS}@mirror.example\"\n"
        ),
    )
    .unwrap();
    let all = assert_hidden(
        &["bundle", "-o", out, "alpine"],
        &[("CONTAINERS_REGISTRIES_CONF", conf.to_str().unwrap())],
    );
    assert!(all.contains("registries.conf"), "{all}");
}
