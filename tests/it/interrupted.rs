//! A writing command killed between the renames of index.json, ferry.lock and restore.sh
//! (SIGKILL at that instant, through FERRY_TEST_CRASH_AT) leaves derived files that disagree
//! with index.json: `verify` says so (exit 1), and the next run of any writing command (`rm`
//! again, `gc`, `bundle`) makes them agree, removing exactly the blobs no image uses. Before,
//! a killed `rm` left a restore.sh naming removed images, a re-run exited 2 and fixed nothing,
//! `gc` removed their blobs and `verify` passed. Expected blobs come from the registry (curl).

use crate::common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use common::*;

/// The blob files of a bundle.
fn blob_set(bundle: &Path) -> BTreeSet<String> {
    std::fs::read_dir(bundle.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_str().unwrap()))
        .collect()
}

/// The blobs of a single-manifest image as the registry serves it: manifest, config, layers.
fn registry_blobs(reg: &Registry, repo: &str, tag: &str) -> BTreeSet<String> {
    let (bytes, _) = reg.manifest(repo, tag);
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let mut out = BTreeSet::from([
        sha256(&bytes),
        m["config"]["digest"].as_str().unwrap().to_owned(),
    ]);
    for l in m["layers"].as_array().unwrap() {
        out.insert(l["digest"].as_str().unwrap().to_owned());
    }
    out
}

/// The image lines restore.sh would import.
fn script_names(bundle: &Path) -> Vec<String> {
    let script = std::fs::read_to_string(bundle.join("restore.sh")).unwrap();
    let start = script.find("<<'FERRY%IMAGES'\n").unwrap() + "<<'FERRY%IMAGES'\n".len();
    script[start..]
        .lines()
        .take_while(|l| *l != "FERRY%IMAGES")
        .filter(|l| !l.is_empty())
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect()
}

fn lock_names(bundle: &Path) -> Vec<String> {
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("ferry.lock")).unwrap()).unwrap();
    lock["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs ferry, which must be killed by SIGKILL at `point`.
fn killed_at(point: &str, args: &[&str]) {
    let out = ferry()
        .args(args)
        .env("FERRY_TEST_CRASH_AT", point)
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{point}: killed there: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_killed_rm_is_set_right_by_the_next_writing_command() {
    let reg = Registry::seeded();
    let work = tempfile::tempdir().unwrap();
    let (hello, world) = (reg.image("sample/hello:1.0"), reg.image("sample/world:1.0"));
    let template = bundle_tags(
        &reg,
        work.path(),
        &["sample/hello:1.0", "sample/world:1.0"],
        &[],
    );
    let hello_only = registry_blobs(&reg, "sample/hello", "1.0");
    assert!(blob_set(&template).len() > hello_only.len());
    // Finished by: rm again, gc, a bundle run.
    for (point, next) in [
        ("after-index", "rm"),
        ("after-lock", "rm"),
        ("after-index", "gc"),
        ("after-lock", "gc"),
        ("after-index", "bundle"),
    ] {
        let b = work.path().join(format!("{point}-{next}"));
        run(std::process::Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&b));
        let bs = b.to_str().unwrap();
        killed_at(point, &["rm", bs, &world]);
        assert!(
            script_names(&b).contains(&world),
            "{point}: the crash window is real: restore.sh still names it"
        );
        let (code, stdout, stderr) = ferry_out(&["verify", bs]);
        assert_eq!(code, 1, "{point}: verify sees it\n{stdout}{stderr}");
        assert!(
            stderr.contains("restore.sh names") && stderr.contains(&world),
            "{point}: {stderr}"
        );
        if point == "after-index" {
            assert!(stderr.contains("ferry.lock names"), "{stderr}");
        }
        let (code, _, stderr) = match next {
            "rm" => ferry_out(&["rm", bs, &world]),
            "gc" => ferry_out(&["gc", bs]),
            _ => ferry_out(&["bundle", "-o", bs, &hello]),
        };
        assert_eq!(code, 0, "{point} then {next}: {stderr}");
        if next == "rm" {
            assert!(stderr.contains("finishing an interrupted rm"), "{stderr}");
        }
        assert_eq!(
            script_names(&b),
            std::slice::from_ref(&hello),
            "{point} then {next}"
        );
        assert_eq!(
            lock_names(&b),
            std::slice::from_ref(&hello),
            "{point} then {next}"
        );
        if next != "bundle" {
            assert_eq!(
                blob_set(&b),
                hello_only,
                "{point} then {next}: exactly hello's blobs"
            );
        }
        let (code, stdout, stderr) = ferry_out(&["verify", bs]);
        assert_eq!(code, 0, "{point} then {next}: {stdout}{stderr}");
    }
}

#[test]
fn a_killed_bundle_run_gets_its_lock_entry_back() {
    let reg = Registry::seeded();
    let work = tempfile::tempdir().unwrap();
    let b = bundle_tags(&reg, work.path(), &["sample/hello:1.0"], &[]);
    let bs = b.to_str().unwrap();
    let world = reg.image("sample/world:1.0");
    killed_at("after-index", &["bundle", "-o", bs, &world]);
    assert!(!lock_names(&b).contains(&world), "the crash window is real");
    let (code, _, stderr) = ferry_out(&["verify", bs]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("ferry.lock has no entry for {world}")),
        "{stderr}"
    );
    assert!(stderr.contains("restore.sh lacks"), "{stderr}");
    let (code, _, stderr) = ferry_out(&["gc", bs]);
    assert_eq!(code, 0, "{stderr}");
    assert!(lock_names(&b).contains(&world));
    assert!(script_names(&b).contains(&world));
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("ferry.lock")).unwrap()).unwrap();
    let entry = lock["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == world.as_str())
        .unwrap();
    let (manifest, _) = reg.manifest("sample/world", "1.0");
    assert_eq!(entry["digest"], sha256(&manifest).as_str());
    assert_eq!(entry["platforms"][0]["platform"], "linux/amd64");
    let (code, stdout, stderr) = ferry_out(&["verify", bs]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}
