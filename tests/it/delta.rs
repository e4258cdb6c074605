//! Delta bundles (`bundle --since`, `apply`), `diff`, `rm` and `gc` against the real
//! docker-registry, with tags moved by skopeo and bundles read back by skopeo.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A registry with v1 and v2 image sets: v1 = hello, zstd, app/moving:1 (= world);
/// then app/moving:1 is moved (to a copy of raw) and v2 = hello, app/moving:1, world, multi.
struct Sets {
    reg: Registry,
    v1: Vec<String>,
    v2: Vec<String>,
    /// The blobs each set needs for linux/amd64, by the registry's manifests (not ferry's).
    v1_blobs: BTreeMap<String, u64>,
    v2_blobs: BTreeMap<String, u64>,
}

/// The blobs `tags` need for linux/amd64, walked in the registry's manifests.
fn registry_blobs(reg: &Registry, tags: &[&str]) -> BTreeMap<String, u64> {
    tags.iter()
        .flat_map(|t| reg.blobs_of(t, "linux/amd64"))
        .collect()
}

/// Bundles `refs` into `dir` (linux/amd64), with extra arguments; panics on failure.
fn bundle(dir: &Path, refs: &[String], extra: &[&str]) {
    let mut args = vec![
        "bundle",
        "-o",
        dir.to_str().unwrap(),
        "--platform",
        "linux/amd64",
    ];
    args.extend(extra);
    args.extend(refs.iter().map(String::as_str));
    let (code, _, stderr) = ferry_out(&args);
    assert_eq!(code, 0, "{stderr}");
}

/// Builds v1 (before the tag moves) and returns the sets.
fn sets(work: &Path) -> Sets {
    let reg = Registry::seeded();
    reg.copy_within("sample/world:1.0", "app/moving:1", &[]);
    let v1_tags = ["sample/hello:1.0", "sample/zstd:1.0", "app/moving:1"];
    let v1: Vec<String> = v1_tags.iter().map(|t| reg.image(t)).collect();
    bundle(&work.join("v1"), &v1, &[]);
    let v1_blobs = registry_blobs(&reg, &v1_tags);
    reg.copy_within("sample/raw:1.0", "app/moving:1", &[]);
    let v2_tags = [
        "sample/hello:1.0",
        "app/moving:1",
        "sample/world:1.0",
        "sample/multi:1.0",
    ];
    let v2: Vec<String> = v2_tags.iter().map(|t| reg.image(t)).collect();
    bundle(&work.join("v2"), &v2, &[]);
    let v2_blobs = registry_blobs(&reg, &v2_tags);
    Sets {
        reg,
        v1,
        v2,
        v1_blobs,
        v2_blobs,
    }
}

/// The blob files of a folder: digest -> size.
fn blobs(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir.join("blobs/sha256")) else {
        return out;
    };
    for e in entries {
        let e = e.unwrap();
        out.insert(
            format!("sha256:{}", e.file_name().to_str().unwrap()),
            e.metadata().unwrap().len(),
        );
    }
    out
}

/// Every file under a folder with its bytes (to show that nothing changed).
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// index.json, ferry.lock, restore.sh and the blob set are those of the full bundle.
pub(crate) fn assert_same_bundle(got: &Path, want: &Path) {
    for f in ["index.json", "ferry.lock", "restore.sh", "oci-layout"] {
        assert_eq!(
            std::fs::read(got.join(f)).unwrap(),
            std::fs::read(want.join(f)).unwrap(),
            "{f} differs from the full bundle's"
        );
    }
    assert_eq!(
        blobs(got),
        blobs(want),
        "blob set differs from the full bundle's"
    );
    assert!(!got.join(".ferry").exists(), "no working folder left");
    assert!(!got.join("ferry-delta.json").exists());
    let (code, stdout, stderr) = ferry_out(&["verify", got.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

/// restore.sh in a delta refuses to run, naming ferry-delta.json and `ferry apply`, before it
/// looks for any runtime: a `ctr` first on PATH records whether it was ever called.
fn restore_sh_refuses_a_delta(delta: &Path, work: &Path) {
    let bin = work.join("tripwire-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let called = work.join("ctr-was-called");
    let ctr = bin.join("ctr");
    std::fs::write(
        &ctr,
        format!("#!/bin/sh\ntouch '{}'\nexit 1\n", called.display()),
    )
    .unwrap();
    std::fs::set_permissions(&ctr, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for args in [&["--runtime", "containerd"][..], &[], &["--mirror"]] {
        let out = Command::new("sh")
            .arg(delta.join("restore.sh"))
            .args(args)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("ferry-delta.json") && stderr.contains("ferry apply"),
            "{args:?}: {stderr}"
        );
        assert!(!called.exists(), "{args:?}: ctr was run");
    }
}

fn manifest_digest(reg: &Registry, repo: &str, tag: &str) -> String {
    sha256(&reg.manifest(repo, tag).0)
}

#[test]
fn delta_holds_what_the_base_lacks_and_apply_makes_the_full_bundle() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let s = sets(w);
    let (v1, v2) = (w.join("v1"), w.join("v2"));
    // The full bundles hold what the registry's manifests name, and the delta what v2 needs
    // that v1 holds not: both worked out from the registry, not from ferry's bundles.
    assert_eq!(blobs(&v1), s.v1_blobs);
    assert_eq!(blobs(&v2), s.v2_blobs);
    let expected: BTreeMap<String, u64> = s
        .v2_blobs
        .iter()
        .filter(|(d, _)| !s.v1_blobs.contains_key(*d))
        .map(|(d, n)| (d.clone(), *n))
        .collect();
    assert!(!expected.is_empty());

    // --since a folder, and --since its lock file copied elsewhere: the same delta.
    let lock_copy = w.join("v1.lock");
    std::fs::copy(v1.join("ferry.lock"), &lock_copy).unwrap();
    for (name, base) in [("d-folder", &v1), ("d-lock", &lock_copy)] {
        let delta = w.join(name);
        bundle(&delta, &s.v2, &["--since", base.to_str().unwrap()]);
        assert_eq!(
            blobs(&delta),
            expected,
            "{name}: exactly the blobs v1 lacks"
        );
        for f in ["index.json", "ferry.lock", "restore.sh"] {
            assert_eq!(
                std::fs::read(delta.join(f)).unwrap(),
                std::fs::read(v2.join(f)).unwrap(),
                "{name}: {f} describes the full set"
            );
        }
        let marker: serde_json::Value =
            serde_json::from_slice(&std::fs::read(delta.join("ferry-delta.json")).unwrap())
                .unwrap();
        assert_eq!(
            marker["baseLock"],
            sha256(&std::fs::read(v1.join("ferry.lock")).unwrap())
        );
    }
    let delta = w.join("d-folder");
    let d = delta.to_str().unwrap();

    // ls, verify and restore know it is a delta; a full run cannot be added to it.
    let (code, stdout, stderr) = ferry_out(&["ls", d]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("is a delta"), "{stderr}");
    let images = stdout.lines().filter(|l| !l.starts_with(' ')).count();
    assert_eq!(
        images, 5,
        "a header and 4 images (platform lines indented): {stdout}"
    );
    let (code, stdout, stderr) = ferry_out(&["verify", d]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("ok: delta of base lock"), "{stdout}");
    let (code, _, stderr) = ferry_out(&["restore", d, "--runtime", "containerd"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is a delta") && stderr.contains("ferry apply"),
        "{stderr}"
    );
    let (code, _, stderr) = ferry_out(&["bundle", "-o", d, &s.v1[0]]);
    assert_eq!(code, 2, "{stderr}");
    restore_sh_refuses_a_delta(&delta, w);
    // A blob the delta needs and lacks, not claimed by the base: verify fails.
    let victim = expected.keys().next().unwrap();
    let moved_away = w.join("victim");
    std::fs::rename(blob_path(&delta, victim), &moved_away).unwrap();
    let (code, _, stderr) = ferry_out(&["verify", d]);
    assert_eq!(code, 1);
    assert!(stderr.contains(victim.as_str()), "{stderr}");
    std::fs::rename(&moved_away, blob_path(&delta, victim)).unwrap();

    // Exported as an oci-archive: the description and exactly the delta's blobs.
    let tar = w.join("delta.tar");
    let (code, _, stderr) = ferry_out(&["export", d, "--oci-archive", tar.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let listing = String::from_utf8(run(Command::new("tar").arg("-tf").arg(&tar)).stdout).unwrap();
    let in_tar: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("blobs/sha256/"))
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(in_tar.len(), expected.len(), "{listing}");
    for f in ["index.json", "ferry.lock", "ferry-delta.json", "oci-layout"] {
        assert!(listing.lines().any(|l| l == f), "{f} in {listing}");
    }

    // Far side: the archive unpacked by tar, applied onto a copy of v1.
    let far = w.join("far-delta");
    std::fs::create_dir(&far).unwrap();
    run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&far));
    let base = w.join("base");
    copy_dir(&v1, &base);
    let (code, _, stderr) = ferry_out(&["apply", far.to_str().unwrap(), base.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_same_bundle(&base, &v2);
    // Or the archive itself, plain or zstd-compressed, applied without unpacking it.
    let zst = w.join("delta.tar.zst");
    let (code, _, stderr) = ferry_out(&["export", d, "--oci-archive", zst.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    for (i, archive) in [&tar, &zst].into_iter().enumerate() {
        let other = w.join(format!("base-archive-{i}"));
        copy_dir(&v1, &other);
        let (code, _, stderr) =
            ferry_out(&["apply", archive.to_str().unwrap(), other.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {stderr}", archive.display());
        assert_same_bundle(&other, &v2);
    }
    let (code, _, stderr) = ferry_out(&["apply", d, base.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("already"), "{stderr}");
    // skopeo reads the applied bundle.
    let moving = s.reg.image("app/moving:1");
    let out =
        run(Command::new("skopeo").args(["inspect", &format!("oci:{}:{moving}", base.display())]));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Digest"], manifest_digest(&s.reg, "app/moving", "1"));
}

#[test]
fn diff_names_added_removed_moved_and_the_bytes() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let s = sets(w);
    let (v1, v2) = (w.join("v1"), w.join("v2"));
    let r = |t: &str| s.reg.image(t);
    let dg = |repo: &str| match repo {
        // skopeo recompressed raw's uncompressed layer when it moved the tag: what the
        // registry serves under the moved tag is the new side.
        "moved" => manifest_digest(&s.reg, "app/moving", "1"),
        _ => manifest_digest(&s.reg, repo, "1.0"),
    };
    assert_ne!(dg("moved"), dg("sample/world"));
    let new_bytes: u64 = blobs(&v2)
        .iter()
        .filter(|(d, _)| !blobs(&v1).contains_key(*d))
        .map(|(_, n)| n)
        .sum();
    let want = serde_json::json!({
        "added": [
            {"reference": r("sample/multi:1.0"), "digest": dg("sample/multi")},
            {"reference": r("sample/world:1.0"), "digest": dg("sample/world")},
        ],
        "removed": [{"reference": r("sample/zstd:1.0"), "digest": dg("sample/zstd")}],
        "moved": [{"reference": r("app/moving:1"), "from": dg("sample/world"), "to": dg("moved")}],
        "unchanged": 1,
        "newBlobs": blobs(&v2).keys().filter(|d| !blobs(&v1).contains_key(*d)).count(),
        "newBytes": new_bytes,
    });
    for (a, b) in [
        (v1.clone(), v2.clone()),
        (v1.join("ferry.lock"), v2.join("ferry.lock")),
    ] {
        let (code, stdout, stderr) =
            ferry_out(&["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
        assert_eq!(code, 0, "{stderr}");
        let mut want = want.clone();
        want["version"] = 1.into();
        want["ok"] = true.into();
        want["a"] = a.display().to_string().into();
        want["b"] = b.display().to_string().into();
        let got: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(got, want, "{}", a.display());
    }
    let (code, stdout, _) = ferry_out(&["diff", v1.to_str().unwrap(), v2.to_str().unwrap()]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("+ {} {}", r("sample/multi:1.0"), dg("sample/multi"))
    );
    assert_eq!(
        lines[2],
        format!("- {} {}", r("sample/zstd:1.0"), dg("sample/zstd"))
    );
    assert_eq!(
        lines[3],
        format!(
            "~ {} {} -> {}",
            r("app/moving:1"),
            dg("sample/world"),
            dg("moved")
        )
    );
    assert!(
        lines[4].starts_with("2 added, 1 removed, 1 moved, 1 unchanged; B needs")
            && lines[4].ends_with(&format!("({new_bytes} bytes) beyond A")),
        "{stdout}"
    );
    let (code, _, stderr) = ferry_out(&[
        "diff",
        v1.to_str().unwrap(),
        w.join("nope").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn apply_refuses_a_damaged_or_other_base_before_changing_anything() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let s = sets(w);
    let (v1, delta) = (w.join("v1"), w.join("delta"));
    bundle(&delta, &s.v2, &["--since", v1.to_str().unwrap()]);

    // A blob the delta relies on (hello's, in v1 and v2 both) removed from the base.
    let damaged = w.join("damaged");
    copy_dir(&v1, &damaged);
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v1.join("ferry.lock")).unwrap()).unwrap();
    let hello = lock["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == s.reg.image("sample/hello:1.0"))
        .unwrap();
    let config = hello["blobs"]
        .as_object()
        .unwrap()
        .keys()
        .find(|d| !blobs(&delta).contains_key(*d) && **d != hello["digest"])
        .unwrap()
        .clone();
    std::fs::remove_file(blob_path(&damaged, &config)).unwrap();
    let before = snapshot(&damaged);
    let (code, _, stderr) =
        ferry_out(&["apply", delta.to_str().unwrap(), damaged.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&config) && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&s.reg.image("sample/hello:1.0")),
        "names the image: {stderr}"
    );
    assert_eq!(snapshot(&damaged), before, "the damaged base is unchanged");

    // A delta made against another base.
    let other = w.join("other");
    bundle(&other, &s.v1[..1], &[]);
    let before = snapshot(&other);
    let (code, _, stderr) = ferry_out(&["apply", delta.to_str().unwrap(), other.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("another base"), "{stderr}");
    assert_eq!(snapshot(&other), before);
    // A full bundle is not a delta.
    let (code, _, stderr) = ferry_out(&["apply", v1.to_str().unwrap(), other.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a delta"), "{stderr}");
}

#[test]
fn a_killed_apply_is_finished_by_a_rerun() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let s = sets(w);
    let (v1, v2, delta) = (w.join("v1"), w.join("v2"), w.join("delta"));
    bundle(&delta, &s.v2, &["--since", v1.to_str().unwrap()]);
    for point in ["after-blob", "after-index", "after-publish", "remove-blob"] {
        let base = w.join(format!("base-{point}"));
        copy_dir(&v1, &base);
        let b = base.to_str().unwrap();
        let out = ferry()
            .args(["apply", delta.to_str().unwrap(), b])
            .env("FERRY_TEST_CRASH_AT", point)
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(9), "{point}: killed there");
        assert!(base.join(".ferry/apply.json").exists(), "{point}");
        // Killed at any of these points, the base is a bundle verify accepts, but for the
        // instant between index.json and ferry.lock: verify then names the lock entries that
        // disagree, and the re-run sets them right.
        let (code, stdout, stderr) = ferry_out(&["verify", b]);
        if point == "after-index" {
            assert_eq!(code, 1, "{point}: {stdout}{stderr}");
            assert!(stderr.contains("ferry.lock"), "{stderr}");
        } else {
            assert_eq!(code, 0, "{point}: {stdout}{stderr}");
        }
        let (code, _, stderr) = ferry_out(&["apply", delta.to_str().unwrap(), b]);
        assert_eq!(code, 0, "{point}: {stderr}");
        assert!(stderr.contains("finished an interrupted apply"), "{stderr}");
        assert_same_bundle(&base, &v2);
    }
}

#[test]
fn rm_and_gc_leave_a_bundle_verify_accepts_and_skopeo_reads() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let reg = Registry::seeded();
    let tags = [
        "sample/hello:1.0",
        "sample/world:1.0",
        "sample/zstd:1.0",
        "sample/multi:1.0",
    ];
    let all: Vec<String> = tags.iter().map(|t| reg.image(t)).collect();
    let (full, kept) = (w.join("full"), w.join("kept"));
    bundle(&full, &all, &[]);
    let remaining: Vec<String> = vec![all[0].clone(), all[3].clone()];
    bundle(&kept, &remaining, &[]);
    let f = full.to_str().unwrap();

    // Unknown references: refused, nothing changed.
    let before = snapshot(&full);
    let (code, _, stderr) = ferry_out(&["rm", f, &all[1], &reg.image("sample/nope:1")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("sample/nope:1"), "{stderr}");
    assert_eq!(snapshot(&full), before);

    // world (shares hello's base layer) and zstd out: the result is a bundle of the other two.
    let (code, _, stderr) = ferry_out(&["rm", f, &all[1], &all[2]]);
    assert_eq!(code, 0, "{stderr}");
    assert_same_bundle(&full, &kept);
    for r in &remaining[..1] {
        run(Command::new("skopeo").args(["inspect", &format!("oci:{f}:{r}")]));
    }

    // gc: an orphan blob and a stale partial download go; nothing else does.
    let orphan = b"an orphan blob nothing names";
    let orphan_digest = sha256(orphan);
    std::fs::write(blob_path(&full, &orphan_digest), orphan).unwrap();
    std::fs::create_dir_all(full.join(".ferry/partial")).unwrap();
    std::fs::write(full.join(".ferry/partial/sha256-0123"), b"half a layer").unwrap();
    let (code, stdout, stderr) = ferry_out(&["gc", f, "--dry-run", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let dry: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (dry["blobs"].as_u64(), dry["partials"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(blob_path(&full, &orphan_digest).exists());
    let (code, _, stderr) = ferry_out(&["gc", f]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("removed 1 unused blob(s)"), "{stderr}");
    assert_same_bundle(&full, &kept);
    for r in &remaining {
        // skopeo 1.9's oci: transport needs OCI media types: hello and multi are both OCI.
        run(Command::new("skopeo").args(["inspect", &format!("oci:{f}:{r}")]));
    }
    // A bundle missing a blob an image needs: gc removes nothing.
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(full.join("ferry.lock")).unwrap()).unwrap();
    let manifest = lock["images"][0]["digest"].as_str().unwrap().to_owned();
    std::fs::remove_file(blob_path(&full, &manifest)).unwrap();
    std::fs::write(blob_path(&full, &orphan_digest), orphan).unwrap();
    let (code, _, stderr) = ferry_out(&["gc", f]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("nothing was removed"), "{stderr}");
    assert!(blob_path(&full, &orphan_digest).exists());
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn apply_preflight_refuses_a_delta_that_does_not_fit() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (big, image) = big_image_registry(8);
    let small = Registry::seeded();
    let hello = small.image("sample/hello:1.0");
    let base = w.join("base");
    bundle(&base, std::slice::from_ref(&hello), &[]);
    let delta = w.join("delta");
    bundle(
        &delta,
        &[hello, big.image(&image)],
        &["--since", base.to_str().unwrap()],
    );

    let mnt = w.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt));
    let _guard = Tmpfs(mnt.clone());
    let far = mnt.join("base");
    copy_dir(&base, &far);
    let before = snapshot(&far);
    let (code, _, stderr) = ferry_out(&["apply", delta.to_str().unwrap(), far.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("more bytes but its filesystem has") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert_eq!(snapshot(&far), before, "nothing written");
}
