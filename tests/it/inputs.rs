//! Image lists from Kubernetes manifests: every kind that holds a pod spec, multi-document
//! YAML, Lists, JSON, custom resources, excludes. The expected lists are written by hand.

use crate::common;

use std::io::Write;
use std::process::Stdio;

use common::*;

fn manifests() -> String {
    root()
        .join("testdata/manifests")
        .to_str()
        .unwrap()
        .to_owned()
}

fn images(args: &[&str]) -> Vec<String> {
    let mut all = vec!["images"];
    all.extend(args);
    let (code, stdout, stderr) = ferry_out(&all);
    assert_eq!(code, 0, "{stderr}");
    stdout.lines().map(str::to_owned).collect()
}

const AGENT: &str =
    "quay.io/org/agent@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const API: &str =
    "ghcr.io/shop/api:3.0@sha256:abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd";

fn expected_default() -> Vec<String> {
    [
        "docker.io/legacy/app:0.9",
        "docker.io/library/alpine:latest",
        "docker.io/library/busybox:1.36",
        "docker.io/library/nginx:1.27",
        "docker.io/library/postgres:16",
        API,
        "ghcr.io/shop/migrate:1.4.2",
        "ghcr.io/shop/web:1.4.1",
        "ghcr.io/shop/web:1.4.2",
        "localhost:5000/shop/report:7",
        AGENT,
        "registry.example:5000/tools/shell:2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn every_workload_kind_in_a_folder_of_yaml_and_json() {
    assert_eq!(
        images(&["--from-manifests", &manifests()]),
        expected_default()
    );
}

#[test]
fn custom_resources_only_when_asked_and_never_text_that_mentions_image() {
    let all = images(&["--from-manifests", &manifests(), "--scan-all-image-fields"]);
    let mut expected = expected_default();
    expected.extend([
        "ghcr.io/operators/backup:2".to_owned(),
        "ghcr.io/operators/postgres:15".to_owned(),
    ]);
    expected.sort();
    assert_eq!(all, expected);
    assert!(
        !all.iter().any(|i| i.contains("should/not-be-taken")),
        "{all:?}"
    );
    // Without the flag, what was left unread is said once, with the flag that takes it.
    let (code, stdout, stderr) = ferry_out(&["images", "--from-manifests", &manifests()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("operators/"), "{stdout}");
    assert_eq!(
        stderr.matches("--scan-all-image-fields").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("left out 2 image field(s) of Database"),
        "{stderr}"
    );
}

#[test]
fn excludes_by_normalized_prefix_and_json_output() {
    let kept = images(&[
        "--from-manifests",
        &manifests(),
        "--exclude",
        "docker.io/library",
        "--exclude",
        "ghcr.io/shop/web:1.4.1",
    ]);
    let expected: Vec<String> = expected_default()
        .into_iter()
        .filter(|i| !i.starts_with("docker.io/library/") && i != "ghcr.io/shop/web:1.4.1")
        .collect();
    assert_eq!(kept, expected);
    // `busybox` means docker.io/library/busybox, as a reference would; what was left out is
    // named on stderr.
    let (code, stdout, stderr) = ferry_out(&[
        "images",
        "--from-manifests",
        &manifests(),
        "--exclude",
        "busybox",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let kept: Vec<&str> = stdout.lines().collect();
    assert!(
        !kept.iter().any(|i| i.contains("busybox")) && kept.len() == expected_default().len() - 1,
        "{kept:?}"
    );
    let busybox = expected_default()
        .into_iter()
        .find(|i| i.contains("busybox"))
        .unwrap();
    assert!(
        stderr.contains(&format!("--exclude left out 1 reference(s): {busybox}")),
        "{stderr}"
    );

    let (code, stdout, _) = ferry_out(&["images", "--json", "--from-manifests", &manifests()]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["version"], 1);
    let json: Vec<String> = serde_json::from_value(json["references"].clone()).unwrap();
    assert_eq!(json, expected_default());
}

#[test]
fn manifests_on_stdin_mixed_with_arguments() {
    let text = std::fs::read(root().join("testdata/manifests/workloads.yaml")).unwrap();
    let mut child = ferry()
        .args(["images", "--from-manifests", "-", "alpine", "redis:7"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut expected: Vec<String> = expected_default()
        .into_iter()
        .filter(|i| i != API)
        .collect();
    expected.push("docker.io/library/redis:7".into());
    expected.sort();
    assert_eq!(
        got, expected,
        "alpine from the arguments and the PodTemplate is listed once"
    );
}

#[test]
fn a_bad_image_names_the_file_document_and_object() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "kind: Pod\nmetadata: {name: ok}\nspec: {containers: [{image: alpine}]}\n---\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{image: 'My Registry/app'}]\n").unwrap();
    let (code, _, stderr) = ferry_out(&["images", "--from-manifests", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: document 2 (CronJob nightly): invalid image reference",
            bad.display()
        )),
        "{stderr}"
    );
    let (code, _, stderr) = ferry_out(&["images", "--from-manifests", "/nonexistent/dir"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/dir"), "{stderr}");
    let (code, _, stderr) = ferry_out(&["images"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no images to list"), "{stderr}");
}

#[test]
fn bundle_takes_the_same_sources() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app}}\nspec:\n  template:\n    spec:\n      initContainers: [{{image: '{}'}}]\n      containers: [{{image: '{}'}}, {{image: '{}'}}]\n",
            reg.image("sample/world:1.0"),
            reg.image("sample/hello:1.0"),
            reg.image("sample/world:1.0")
        ),
    )
    .unwrap();
    let b = dir.path().join("b");
    let (code, stdout, stderr) = ferry_out(&[
        "bundle",
        "--json",
        "-o",
        b.to_str().unwrap(),
        "--from-manifests",
        manifest.to_str().unwrap(),
        "--exclude",
        &reg.image("sample/world"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["totals"]["images"], 1);
    assert_eq!(
        report["images"][0]["reference"],
        reg.image("sample/hello:1.0")
    );
}

#[test]
fn a_list_with_several_bad_lines_names_them_all_before_any_registry() {
    let reg = Registry::start_with(&["--accesslog"]);
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("images.txt");
    std::fs::write(
        &list,
        format!(
            "# base\n{}\nNot Valid:1\n\nalpine:3.20 # ok\nbad@sha256:zz\n",
            reg.image("sample/hello:1.0")
        ),
    )
    .unwrap();
    let other = dir.path().join("more.txt");
    std::fs::write(&other, "ok/one:1\nhas space\n").unwrap();
    let b = dir.path().join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        b.to_str().unwrap(),
        "-f",
        list.to_str().unwrap(),
        "-f",
        other.to_str().unwrap(),
        "UPPER CASE",
    ]);
    assert_eq!(code, 2, "{stderr}");
    let l = list.display();
    let o = other.display();
    for line in [
        format!("{l}:3: "),
        format!("{l}:6: "),
        format!("{o}:2: "),
        "argument 1: ".to_owned(),
    ] {
        assert!(stderr.contains(&line), "{line} missing from: {stderr}");
    }
    assert!(stderr.contains("4 input problems"), "{stderr}");
    assert!(!b.exists(), "no output folder for a usage error");
    assert_eq!(reg.requests_by_others(), Vec::<String>::new());
}

#[test]
fn a_platform_typo_is_refused_before_any_registry() {
    let reg = Registry::start_with(&["--accesslog"]);
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let hello = reg.image("sample/hello:1.0");
    for (value, expected) in [
        (
            "linux/amd46",
            "unknown architecture \"amd46\" (did you mean amd64?)",
        ),
        (
            "lnux/arm64",
            "unknown operating system \"lnux\" (did you mean linux?)",
        ),
        ("linux", "not of the form os/arch[/variant]"),
    ] {
        for cmd in ["bundle", "lock"] {
            let (code, _, stderr) = ferry_out(&[
                cmd,
                "-o",
                b.to_str().unwrap(),
                "--platform",
                "linux/arm64",
                "--platform",
                value,
                &hello,
            ]);
            assert_eq!(code, 2, "{cmd} {value}: {stderr}");
            assert!(
                stderr.contains(&format!("invalid platform \"{value}\""))
                    && stderr.contains(expected)
                    && stderr.contains("expected os/arch[/variant]")
                    && stderr.contains("`all`"),
                "{cmd} {value}: {stderr}"
            );
        }
    }
    let (code, _, stderr) = ferry_out(&["restore", "/nonexistent", "--platform", "linux/amd46"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did you mean amd64?"), "{stderr}");
    // export's docker-archive takes one platform, never `all`, and is checked the same way.
    let tar = dir.path().join("images.tar");
    let t = tar.to_str().unwrap();
    let export = [
        "export",
        "/nonexistent",
        "--docker-archive",
        t,
        "--platform",
    ];
    let (code, _, stderr) = ferry_out(&[&export[..], &["linux/amd46"]].concat());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("did you mean amd64?") && !stderr.contains("`all`"),
        "{stderr}"
    );
    assert!(!tar.exists() && !b.exists());
    assert_eq!(reg.requests_by_others(), Vec::<String>::new());
}

#[test]
fn platform_all_means_every_platform() {
    let reg = Registry::seeded();
    let multi = reg.image("sample/multi:1.0");
    let (code, all, stderr) = ferry_out(&["lock", "--platform", "all", &multi]);
    assert_eq!(code, 0, "{stderr}");
    let (code, flag, stderr) = ferry_out(&["lock", "--all-platforms", &multi]);
    assert_eq!(code, 0, "{stderr}");
    let (code, one, stderr) = ferry_out(&["lock", "--platform", "linux/arm64", &multi]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(all, flag);
    assert_ne!(all, one, "all keeps more than one platform");
}
