//! What people and pipelines read: `--help`, the text and the `--json` of ls, verify, diff,
//! images and lock, as insta snapshots (tests/it/snapshots/). Inputs come from the real registry
//! seeded by skopeo with testdata/make_fixtures.py's images, and from hand-written manifests;
//! filters replace what differs run to run (the registry's port, temporary folders, times).
//! On CI (`CI=true`) insta writes no snapshot: a changed output fails the test; locally
//! `INSTA_UPDATE=always cargo test --test cli_output` rewrites them after a deliberate change.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::snapshots::settings;
use common::*;

/// Runs ferry, asserting its exit code; returns (stdout, stderr).
fn ferry_ok(args: &[&str], code: i32) -> (String, String) {
    let (got, stdout, stderr) = ferry_out(args);
    assert_eq!(got, code, "ferry {args:?}:\n{stdout}{stderr}");
    (stdout, stderr)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A bundle of the sample images hello and multi (amd64 and arm64/v8) from the registry.
fn sample_bundle(reg: &Registry, dir: &Path, name: &str, tags: &[&str]) -> std::path::PathBuf {
    sample_bundle_with(reg, dir, name, tags, &[])
}

fn sample_bundle_with(
    reg: &Registry,
    dir: &Path,
    name: &str,
    tags: &[&str],
    extra: &[&str],
) -> std::path::PathBuf {
    let b = dir.join(name);
    let mut args = vec![
        "bundle",
        "--no-progress",
        "-o",
        b.to_str().unwrap(),
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
    ];
    args.extend(extra);
    let refs: Vec<String> = tags.iter().map(|t| reg.image(t)).collect();
    args.extend(refs.iter().map(String::as_str));
    ferry_ok(&args, 0);
    b
}

/// `--help`, wrapped at 100 columns whatever the terminal (clap reads COLUMNS first).
fn help(args: &[&str]) -> String {
    let out = ferry().args(args).env("COLUMNS", "100").output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_of_the_main_commands() {
    let s = settings(None, &[]);
    s.bind(|| {
        insta::assert_snapshot!("help", help(&["--help"]));
        for command in [
            "bundle", "lock", "images", "ls", "verify", "diff", "restore", "export", "push",
            "login",
        ] {
            insta::assert_snapshot!(format!("help_{command}"), help(&[command, "--help"]));
        }
    });
}

#[test]
fn ls_verify_diff_text_and_json() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let one = sample_bundle(&reg, dir.path(), "one", &["sample/hello:1.0"]);
    let two = sample_bundle(
        &reg,
        dir.path(),
        "two",
        &["sample/hello:1.0", "sample/multi:1.0"],
    );
    let (o, t) = (one.to_str().unwrap(), two.to_str().unwrap());
    let s = settings(
        Some(&reg),
        &[(&one, "[BUNDLE-ONE]"), (&two, "[BUNDLE-TWO]")],
    );
    s.bind(|| {
        insta::assert_snapshot!("ls_text", ferry_ok(&["ls", t], 0).0);
        insta::assert_json_snapshot!("ls_json", json(&ferry_ok(&["ls", "--json", t], 0).0));
        insta::assert_snapshot!("verify_text", ferry_ok(&["verify", t], 0).0);
        insta::assert_json_snapshot!(
            "verify_json",
            json(&ferry_ok(&["verify", "--json", t], 0).0)
        );
        insta::assert_snapshot!("diff_text", ferry_ok(&["diff", o, t], 0).0);
        insta::assert_json_snapshot!("diff_json", json(&ferry_ok(&["diff", o, t, "--json"], 0).0));
        insta::assert_json_snapshot!(
            "gc_json",
            json(&ferry_ok(&["gc", t, "--dry-run", "--json"], 0).0)
        );
    });

    // What the snapshots say is checked against the registry too: each platform's manifest
    // digest is the one the registry's index lists for it.
    let listed = json(&ferry_ok(&["ls", "--json", t], 0).0);
    let multi = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == reg.image("sample/multi:1.0"))
        .unwrap();
    let index = json(&String::from_utf8(reg.manifest("sample/multi", "1.0").0).unwrap());
    for m in multi["manifests"].as_array().unwrap() {
        let served = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["digest"] == m["digest"])
            .unwrap_or_else(|| panic!("{m} is not a child of {index}"));
        assert_eq!(served["platform"]["architecture"], m["architecture"]);
        assert_eq!(served["platform"]["os"], m["os"]);
    }
    assert_eq!(multi["manifests"].as_array().unwrap().len(), 2, "{multi}");

    // Digests and sizes by the registry's manifests (sha256sum of what it serves, the sizes
    // its descriptors give): an image's size is all its blobs, a platform's its own.
    for (tag, image) in ["sample/hello:1.0", "sample/multi:1.0"]
        .iter()
        .zip(listed["images"].as_array().unwrap())
    {
        assert_eq!(image["reference"], reg.image(tag));
        let top = reg.digest(tag);
        assert_eq!(image["digest"], top.as_str());
        let mut all = BTreeMap::new();
        for m in image["manifests"].as_array().unwrap() {
            let mut own = reg.blobs_of(tag, m["platform"].as_str().unwrap());
            all.extend(own.clone());
            if m["digest"] != top.as_str() {
                own.remove(&top);
            }
            assert_eq!(m["size"], own.values().sum::<u64>(), "{tag} {m}");
        }
        assert_eq!(image["size"], all.values().sum::<u64>(), "{tag}");
    }
    // verify's figures are the blob files' (by the filesystem).
    let verified = json(&ferry_ok(&["verify", "--json", t], 0).0);
    let (files, bytes) = blob_files(&two);
    assert_eq!(
        (verified["blobs"].as_u64(), verified["bytes"].as_u64()),
        (Some(files as u64), Some(bytes))
    );
}

#[test]
fn delta_apply_and_rm_json() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let tags = ["sample/hello:1.0", "sample/multi:1.0"];
    let base = sample_bundle(&reg, dir.path(), "base", &tags[..1]);
    let b = base.to_str().unwrap();
    let delta = sample_bundle_with(&reg, dir.path(), "delta", &tags, &["--since", b]);
    let d = delta.to_str().unwrap();
    let s = settings(Some(&reg), &[(&base, "[BASE]"), (&delta, "[DELTA]")]);
    s.bind(|| {
        insta::assert_json_snapshot!("ls_json_delta", json(&ferry_ok(&["ls", "--json", d], 0).0));
        insta::assert_json_snapshot!(
            "verify_json_delta",
            json(&ferry_ok(&["verify", "--json", d], 0).0)
        );
        insta::assert_json_snapshot!(
            "apply_json",
            json(&ferry_ok(&["apply", d, b, "--json"], 0).0)
        );
        let multi = reg.image("sample/multi:1.0");
        insta::assert_json_snapshot!(
            "rm_json",
            json(&ferry_ok(&["rm", b, &multi, "--json"], 0).0)
        );
    });
    let left = json(&ferry_ok(&["ls", "--json", b], 0).0);
    assert_eq!(left["images"].as_array().unwrap().len(), 1, "{left}");
}

#[test]
fn images_and_lock_text_and_json() {
    let manifests = root().join("testdata/manifests");
    let m = manifests.to_str().unwrap();
    let reg = Registry::seeded();
    let s = settings(Some(&reg), &[]);
    s.bind(|| {
        insta::assert_snapshot!(
            "images_text",
            ferry_ok(&["images", "--from-manifests", m], 0).0
        );
        insta::assert_json_snapshot!(
            "images_json",
            json(&ferry_ok(&["images", "--json", "--from-manifests", m], 0).0)
        );
        let hello = reg.image("sample/hello:1.0");
        let multi = reg.image("sample/multi:1.0");
        let (lock, _) = ferry_ok(&["lock", "--platform", "linux/amd64", &hello, &multi], 0);
        insta::assert_json_snapshot!("lock_stdout", json(&lock));
        insta::assert_json_snapshot!("version_json", json(&ferry_ok(&["version", "--json"], 0).0));
    });
}

/// The configs and layers an index.json reaches (manifests left out), walked from the files.
fn configs_and_layers(bundle: &Path) -> BTreeSet<String> {
    let read = |digest: &str| -> Option<serde_json::Value> {
        let bytes = std::fs::read(blob_path(bundle, digest)).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let mut out = BTreeSet::new();
    for entry in index_json(bundle)["manifests"].as_array().unwrap() {
        let root = read(entry["digest"].as_str().unwrap()).unwrap();
        let children: Vec<serde_json::Value> = match root["manifests"].as_array() {
            Some(list) => list
                .iter()
                .filter_map(|c| read(c["digest"].as_str()?))
                .collect(),
            None => vec![root],
        };
        for m in children {
            out.insert(m["config"]["digest"].as_str().unwrap().to_owned());
            for l in m["layers"].as_array().unwrap() {
                out.insert(l["digest"].as_str().unwrap().to_owned());
            }
        }
    }
    out
}

#[test]
fn blob_counts_are_distinct_and_the_same_run_to_run() {
    let reg = Registry::seeded();
    // sample/single is multi's amd64 image on its own (skopeo picks it from the index): its
    // config, which ferry reads while resolving, is also the config the index's child names.
    let amd64 = [
        "--override-os",
        "linux",
        "--override-arch",
        "amd64",
        "--preserve-digests",
    ];
    reg.copy_within("sample/multi:1.0", "sample/single:1", &amd64);
    let tags = [
        "sample/single:1",
        "sample/multi:1.0",
        "sample/multi-docker:1.0",
    ];
    let refs: Vec<String> = tags.iter().map(|t| reg.image(t)).collect();
    let dir = tempfile::tempdir().unwrap();
    let totals = |b: &Path| -> serde_json::Value {
        let mut args = vec![
            "bundle",
            "--json",
            "--no-progress",
            "-o",
            b.to_str().unwrap(),
        ];
        args.extend(refs.iter().map(String::as_str));
        json(&ferry_ok(&args, 0).0)["totals"].clone()
    };
    let first = dir.path().join("first");
    let runs: Vec<serde_json::Value> = (0..3)
        .map(|i| totals(&dir.path().join(format!("run{i}"))))
        .chain([totals(&first)])
        .collect();
    let distinct = configs_and_layers(&first);
    assert_eq!(distinct.len(), 3, "one config and two layers: {distinct:?}");
    for t in &runs {
        assert_eq!(t["blobsFetched"], distinct.len(), "{runs:?}");
        assert_eq!(t["blobsPresent"], 0, "{runs:?}");
        assert_eq!(t["bytesFetched"], runs[0]["bytesFetched"], "{runs:?}");
    }
    let again = totals(&first);
    assert_eq!(again["blobsFetched"], 0, "{again}");
    assert_eq!(again["blobsPresent"], distinct.len(), "{again}");
    assert_eq!(again["bytesPresent"], runs[0]["bytesFetched"], "{again}");
}
