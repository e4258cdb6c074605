//! Killed at each write step (SIGKILL at ferry's crash points, as a power cut would): `rm`,
//! `gc` and `bundle` leave a bundle `verify` accepts, written in the README's order, and a
//! re-run ends exactly where an uninterrupted run does. (`apply`'s points: delta.rs.)

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

/// Runs ferry with `FERRY_TEST_CRASH_AT=point` and checks it was killed there.
fn killed_at(point: &str, args: &[&str]) {
    let out = ferry()
        .args(args)
        .env("FERRY_TEST_CRASH_AT", point)
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{point}: not killed there: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ok(args: &[&str]) {
    let (code, stdout, stderr) = ferry_out(args);
    assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
}

/// `verify` of a bundle whose ferry.lock and restore.sh were not yet rewritten after its
/// index.json: it fails, names each stale file and says which command rewrites them.
fn verify_finds_stale_derived_files(s: &str) {
    let (code, stdout, stderr) = ferry_out(&["verify", s]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    for derived in ["ferry.lock", "restore.sh"] {
        assert!(
            stderr.contains(derived) && stderr.contains("rewrites it from index.json"),
            "{derived} not named: {stderr}"
        );
    }
}

/// The blob files of a bundle.
fn blob_names(b: &Path) -> BTreeSet<String> {
    std::fs::read_dir(b.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// What describes a bundle (index.json, ferry.lock, restore.sh) and its blob set.
fn state(b: &Path) -> (Vec<Vec<u8>>, BTreeSet<String>) {
    let files = ["index.json", "ferry.lock", "restore.sh"]
        .iter()
        .map(|f| std::fs::read(b.join(f)).unwrap())
        .collect();
    (files, blob_names(b))
}

/// The references index.json names.
fn indexed(b: &Path) -> BTreeSet<String> {
    index_names(b).into_iter().collect()
}

#[test]
fn rm_and_gc_killed_at_each_step_leave_a_valid_bundle_a_rerun_finishes() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    // world shares hello's base layer; zstd shares nothing.
    let tags = ["sample/hello:1.0", "sample/world:1.0", "sample/zstd:1.0"];
    let full = bundle_tags(&reg, &w.join("full"), &tags, &[]);
    let gone = [reg.image("sample/world:1.0"), reg.image("sample/zstd:1.0")];
    let clean = w.join("clean");
    copy_dir(&full, &clean);
    ok(&["rm", clean.to_str().unwrap(), &gone[0], &gone[1]]);
    let want = state(&clean);

    for point in ["after-index", "remove-blob"] {
        let b = w.join(point);
        copy_dir(&full, &b);
        let s = b.to_str().unwrap();
        killed_at(point, &["rm", s, &gone[0], &gone[1]]);
        // index.json went first: the images are out, their blobs (some or all) still there.
        assert_eq!(
            indexed(&b),
            BTreeSet::from([reg.image("sample/hello:1.0")]),
            "{point}"
        );
        assert!(blob_names(&b).is_superset(&want.1), "{point}");
        assert!(
            blob_names(&b).len() > want.1.len(),
            "{point}: killed before any blob went"
        );
        if point == "after-index" {
            // ferry.lock and restore.sh still name the removed images: verify says so.
            verify_finds_stale_derived_files(s);
        } else {
            ok(&["verify", s]);
        }
        // gc, like any writing command, rewrites the derived files and removes what nothing
        // names: the bundle an uninterrupted rm leaves, byte for byte.
        ok(&["gc", s]);
        let (files, blobs) = state(&b);
        assert_eq!(blobs, want.1, "{point}");
        assert!(
            files == want.0,
            "{point}: not the bundle an uninterrupted rm leaves"
        );
        ok(&["verify", s]);
    }

    // gc itself killed after its first removal: verify accepts, a second gc finishes.
    let b = w.join("gc");
    copy_dir(&clean, &b);
    let s = b.to_str().unwrap();
    for junk in ["one orphan", "another orphan"] {
        let digest = sha256(junk.as_bytes());
        std::fs::write(blob_path(&b, &digest), junk).unwrap();
    }
    killed_at("remove-blob", &["gc", s]);
    assert_eq!(blob_names(&b).len(), want.1.len() + 1, "one orphan removed");
    ok(&["verify", s]);
    ok(&["gc", s]);
    assert!(state(&b) == want);
}

/// The write order: oci-layout first; index.json names only blobs already stored; ferry.lock
/// and restore.sh follow index.json, so killed right after index.json they name no image it
/// does not (here: they are not written yet, and verify says they lag).
#[test]
fn a_bundle_killed_after_its_index_is_valid_and_a_rerun_finishes() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let tags = ["sample/hello:1.0", "sample/world:1.0"];
    let refs: Vec<String> = tags.iter().map(|t| reg.image(t)).collect();
    let clean = bundle_tags(&reg, &dir.path().join("clean"), &tags, &[]);

    let b = dir.path().join("b");
    let s = b.to_str().unwrap();
    killed_at(
        "after-index",
        &["bundle", "-q", "-o", s, &refs[0], &refs[1]],
    );
    assert_eq!(
        std::fs::read_to_string(b.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let named = indexed(&b);
    assert!(!named.is_empty(), "killed after index.json named an image");
    for derived in ["ferry.lock", "restore.sh"] {
        let Ok(text) = std::fs::read_to_string(b.join(derived)) else {
            continue;
        };
        for r in &refs {
            if !named.contains(r) {
                assert!(
                    !text.contains(r.as_str()),
                    "{derived} names {r} before index.json"
                );
            }
        }
    }
    if let Ok(script) = std::fs::read_to_string(b.join("restore.sh")) {
        for line in script_images(&script).iter().filter(|l| !l.is_empty()) {
            let r = line.split(' ').next().unwrap();
            assert!(named.contains(r), "restore.sh lists {r} before index.json");
        }
    }
    verify_finds_stale_derived_files(s);
    ok(&["bundle", "-q", "-o", s, &refs[0], &refs[1]]);
    ok(&["verify", s]);
    assert!(
        state(&b) == state(&clean),
        "not the bundle an uninterrupted run makes"
    );
}

/// Killed after an image's blobs are stored but before index.json names it: the re-run names
/// it without fetching a layer again (the registry's access log says so).
#[test]
fn an_image_killed_before_it_was_named_is_named_by_a_rerun_without_fetching() {
    let reg = Registry::seeded_with(&["--accesslog"]);
    let dir = tempfile::tempdir().unwrap();
    let hello = reg.image("sample/hello:1.0");
    let b = dir.path().join("b");
    let s = b.to_str().unwrap();
    killed_at("before-index", &["bundle", "-q", "-o", s, &hello]);
    assert!(index_entry(&b, &hello).is_none(), "named before the kill");
    let layers = |reg: &Registry| {
        reg.requests_by_others()
            .iter()
            .filter(|l| l.contains("\"GET /v2/sample/hello/blobs/"))
            .count()
    };
    let fetched = layers(&reg);
    assert!(
        fetched >= 2,
        "the blobs were fetched before the kill: {}",
        reg.log()
    );
    ok(&["bundle", "-q", "-o", s, &hello]);
    assert!(index_entry(&b, &hello).is_some());
    // At most the config again (resolving reads it); no layer.
    assert!(layers(&reg) - fetched <= 1, "{}", reg.log());
    ok(&["verify", s]);
}
