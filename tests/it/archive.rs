//! The archive is the bundle: one `.tar.zst` crosses the gap and every command reads it in
//! place. Near side: bundle v1 from the real registry, export it. Far side, from the file only:
//! ls, verify, push (digests read back from the registry), restore into a real containerd.
//! Next month: a delta `.tar.zst`, applied to the base folder and, separately, archive to
//! archive; both equal a full v2 bundle and its fresh export. Other tools (zstd, tar, skopeo,
//! ctr, podman, umoci) read the new archives.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// `ferry ARGS`, asserting exit 0; returns stdout.
fn ferry_ok(args: &[&str]) -> String {
    let (code, stdout, stderr) = ferry_out(args);
    assert_eq!(code, 0, "ferry {args:?}: {stderr}");
    stdout
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn bundle(dir: &Path, refs: &[String], extra: &[&str]) -> PathBuf {
    let mut args = vec!["bundle", "-q", "-o", s(dir), "--platform", "linux/amd64"];
    args.extend(extra);
    args.extend(refs.iter().map(String::as_str));
    ferry_ok(&args);
    dir.to_path_buf()
}

fn export(from: &Path, to: &Path) {
    ferry_ok(&["export", s(from), "--oci-archive", s(to)]);
}

/// The member names of a `.tar.zst`, as `zstd -dc | tar -t` lists them.
fn members(archive: &Path) -> Vec<String> {
    let out = run(Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | tar -t", archive.display())));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `ls --json` without the path it names.
fn listing(bundle: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&ferry_ok(&["ls", s(bundle), "--json"])).unwrap();
    v["bundle"] = serde_json::Value::Null;
    v
}

#[test]
fn one_file_crosses_the_gap_and_every_command_reads_it() {
    require("zstd", "zstd");
    let reg = Registry::seeded();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let v1_refs: Vec<String> = ["sample/hello:1.0", "sample/zstd:1.0"]
        .iter()
        .map(|t| reg.image(t))
        .collect();
    let v1 = bundle(&w.join("v1"), &v1_refs, &[]);
    let zst = w.join("v1.tar.zst");
    export(&v1, &zst);

    // Self-contained, small files first, and readable by zstd and tar.
    let names = members(&zst);
    assert_eq!(
        &names[..4],
        ["ferry.lock", "index.json", "oci-layout", "restore.sh"],
        "{names:?}"
    );
    // Deterministic: the same bundle gives the same bytes.
    let again = w.join("again.tar.zst");
    export(&v1, &again);
    assert_eq!(std::fs::read(&zst).unwrap(), std::fs::read(&again).unwrap());
    // A seekable file: the seek table's magic ends it.
    let bytes = std::fs::read(&zst).unwrap();
    assert_eq!(bytes[bytes.len() - 4..], 0x8F92_EAB1u32.to_le_bytes());

    // .tar.gz is refused before anything is written (never a plain tar under a .gz name).
    let gz = w.join("out.tar.gz");
    let (code, _, stderr) = ferry_out(&["export", s(&v1), "--oci-archive", s(&gz)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(".tar.zst"), "{stderr}");
    assert!(!gz.exists());
    // A bundle without a lock: one warning, not one per image.
    let lockless = w.join("lockless");
    run(Command::new("cp").arg("-a").arg(&v1).arg(&lockless));
    std::fs::remove_file(lockless.join("ferry.lock")).unwrap();
    let (code, _, stderr) = ferry_out(&["verify", s(&lockless)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.matches("ferry.lock").count(), 1, "{stderr}");

    // ls and verify read the file in place and say what the folder says.
    assert_eq!(listing(&zst), listing(&v1));
    let out = ferry_ok(&["verify", s(&zst)]);
    assert!(out.starts_with("ok: 2 images"), "{out}");

    // A damaged byte in a layer: verify fails (exit 1), naming the blob.
    let tar = w.join("v1.tar");
    export(&v1, &tar);
    let mut damaged = std::fs::read(&tar).unwrap();
    let (layer, _) = first_layer(&v1);
    let at = find(&damaged, layer.as_bytes()) + 512 + 10;
    damaged[at] ^= 0xff;
    let bad = w.join("bad.tar");
    std::fs::write(&bad, &damaged).unwrap();
    let (code, stdout, _) = ferry_out(&["verify", s(&bad)]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");

    // push from the file: the registry holds the bundle's digests.
    ferry_ok(&["push", s(&zst), &format!("{}/far", reg.addr)]);
    for r in &v1_refs {
        let path = r.split_once('/').unwrap().1;
        let (repo, tag) = path.rsplit_once(':').unwrap();
        let (raw, _) = reg.manifest(&format!("far/{repo}"), tag);
        assert_eq!(sha256(&raw), digest_in(&v1, r), "{r}");
    }

    // restore from the file into a real containerd.
    let node = Containerd::start();
    ferry_ok(&["restore", s(&zst), "--address", &node.socket]);
    let images = containerd_images(&node);
    for r in &v1_refs {
        assert!(
            images
                .iter()
                .any(|(n, d, _)| n == r && *d == digest_in(&v1, r)),
            "{r} not restored: {images:?}"
        );
    }
}

/// The digest index.json records for a reference.
fn digest_in(bundle: &Path, reference: &str) -> String {
    index_entry(bundle, reference).unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The first layer of the first image (digest, size), from the bundle's files.
fn first_layer(bundle: &Path) -> (String, u64) {
    let index = index_json(bundle);
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_path(bundle, manifest)).unwrap()).unwrap();
    let layer = &m["layers"][0];
    let digest = layer["digest"].as_str().unwrap();
    (
        digest.trim_start_matches("sha256:").to_owned(),
        layer["size"].as_u64().unwrap(),
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("present")
}

#[test]
fn next_month_a_delta_file_applies_to_the_folder_and_archive_to_archive() {
    require("zstd", "zstd");
    let reg = Registry::seeded();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let refs = |tags: &[&str]| -> Vec<String> { tags.iter().map(|t| reg.image(t)).collect() };
    let v1 = bundle(
        &w.join("v1"),
        &refs(&["sample/hello:1.0", "sample/zstd:1.0"]),
        &[],
    );
    let v1_zst = w.join("v1.tar.zst");
    export(&v1, &v1_zst);
    let v2_refs = refs(&["sample/hello:1.0", "sample/world:1.0", "sample/multi:1.0"]);
    let full = bundle(&w.join("v2"), &v2_refs, &[]);
    let full_zst = w.join("v2-full.tar.zst");
    export(&full, &full_zst);

    // The near side knows only last month's file.
    let delta = bundle(&w.join("delta"), &v2_refs, &["--since", s(&v1_zst)]);
    let delta_zst = w.join("delta.tar.zst");
    export(&delta, &delta_zst);
    assert!(members(&delta_zst).contains(&"ferry-delta.json".to_owned()));
    let (code, stdout, _) = ferry_out(&["verify", s(&delta_zst)]);
    assert_eq!(code, 0, "{stdout}");

    // A base whose reused layer is already corrupt (same size): apply refuses, naming it,
    // and changes nothing.
    let damaged = w.join("damaged");
    run(Command::new("cp").arg("-a").arg(&v1).arg(&damaged));
    let (layer, _) = first_layer(&damaged);
    let path = blob_path(&damaged, &format!("sha256:{layer}"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let index_before = std::fs::read(damaged.join("index.json")).unwrap();
    let (code, _, stderr) = ferry_out(&["apply", s(&delta_zst), s(&damaged)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&layer), "{stderr}");
    assert_eq!(
        std::fs::read(damaged.join("index.json")).unwrap(),
        index_before
    );

    // What an older ferry left in the temp folder when an apply was killed is removed; this
    // one unpacks nothing there.
    let dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    drop(dead.wait_with_output());
    let stale = std::env::temp_dir().join(format!("ferry-delta-{pid}-7"));
    std::fs::create_dir_all(stale.join("blobs")).unwrap();

    // Applied to the base folder: the full v2 bundle.
    let base = w.join("base");
    run(Command::new("cp").arg("-a").arg(&v1).arg(&base));
    ferry_ok(&["apply", s(&delta_zst), s(&base)]);
    assert!(!stale.exists(), "a stale ferry-delta folder was left");
    for f in ["index.json", "ferry.lock", "restore.sh", "oci-layout"] {
        assert_eq!(
            std::fs::read(base.join(f)).unwrap(),
            std::fs::read(full.join(f)).unwrap(),
            "{f}"
        );
    }
    let (code, stdout, stderr) = ferry_out(&["verify", s(&base)]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // Archive to archive: byte for byte the fresh export of the full v2 bundle.
    let v2_zst = w.join("v2.tar.zst");
    ferry_ok(&["apply", s(&delta_zst), s(&v1_zst), "-o", s(&v2_zst)]);
    assert_eq!(
        std::fs::read(&v2_zst).unwrap(),
        std::fs::read(&full_zst).unwrap(),
        "archive-to-archive differs from a fresh export of the full bundle"
    );
    // The same from the plain-tar delta, and nothing left in the temp folder.
    let delta_tar = w.join("delta.tar");
    export(&delta, &delta_tar);
    let v2b = w.join("v2b.tar.zst");
    ferry_ok(&["apply", s(&delta_tar), s(&v1_zst), "-o", s(&v2b)]);
    assert_eq!(
        std::fs::read(&v2b).unwrap(),
        std::fs::read(&full_zst).unwrap()
    );

    // diff reads archives too, and says nothing is missing.
    let out = ferry_ok(&["diff", s(&v2_zst), s(&full), "--json"]);
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["newBytes"], 0, "{out}");
}

#[test]
fn other_tools_read_the_new_archives() {
    require("zstd", "zstd");
    require("skopeo", "skopeo");
    require("podman", "podman");
    require("umoci", "umoci");
    let reg = Registry::seeded();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let hello = reg.image("sample/hello:1.0");
    let b = bundle(&w.join("b"), std::slice::from_ref(&hello), &[]);
    let zst = w.join("b.tar.zst");
    export(&b, &zst);
    let tar = w.join("b.tar");
    export(&b, &tar);
    let want = digest_in(&b, &hello);

    // skopeo: oci-archive: of the plain tar and of the .tar.zst.
    for archive in [&tar, &zst] {
        let out = run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("oci-archive:{}:{hello}", archive.display()),
        ]));
        assert_eq!(sha256(&out.stdout), want, "{}", archive.display());
    }
    // ctr imports the plain tar, and the .tar.zst through zstd -dc (as the README says).
    let node = Containerd::start();
    node.ctr(&["images", "import", s(&tar)]);
    let sh = format!(
        "zstd -dc '{}' | ctr -a '{}' -n k8s.io images import -",
        zst.display(),
        node.socket
    );
    run(Command::new("sh").arg("-c").arg(sh));
    assert!(
        containerd_images(&node)
            .iter()
            .any(|(n, d, _)| *n == hello && *d == want)
    );
    // umoci reads the layout the plain tar unpacks to, extra files and all.
    let unpacked = w.join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&unpacked));
    let out = run(Command::new("umoci")
        .args(["ls", "--layout"])
        .arg(&unpacked));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hello);
    // podman loads a docker-archive exported from the .tar.zst.
    let docker = w.join("docker.tar");
    ferry_ok(&["export", s(&zst), "--docker-archive", s(&docker)]);
    let root = w.join("podman");
    let out = run(Command::new("podman")
        .args(["--storage-driver", "vfs", "--root"])
        .arg(root.join("root"))
        .arg("--runroot")
        .arg(root.join("run"))
        .arg("load")
        .arg("-i")
        .arg(&docker));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sample/hello"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn refusals_at_the_seam() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // A file that is no bundle says so, exit 2.
    let notes = w.join("notes.txt");
    std::fs::write(&notes, "not a bundle\n".repeat(100)).unwrap();
    for cmd in ["ls", "verify"] {
        let (code, _, stderr) = ferry_out(&[cmd, s(&notes)]);
        assert_eq!(code, 2, "{cmd}: {stderr}");
        assert!(!stderr.contains("no such folder"), "{stderr}");
        assert!(
            stderr.contains("neither a bundle folder nor an oci-archive"),
            "{stderr}"
        );
    }
    // A folder a running `ferry bundle` holds (its lock, taken here by flock(1)) is refused by
    // the readers as bundle and gc refuse it.
    let b = w.join("busy");
    std::fs::create_dir(&b).unwrap();
    std::fs::write(b.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        b.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    // -o: flock itself holds the lock (not the sleep), so killing it frees the folder.
    let mut holder = Command::new("flock")
        .args(["-x", "-o"])
        .arg(&b)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    wait_for(10, "flock to hold the folder", || {
        ferry_out(&["ls", s(&b)]).0 != 0
    });
    for args in [
        vec!["ls", s(&b)],
        vec!["verify", s(&b)],
        vec!["export", s(&b), "--oci-archive", "-"],
    ] {
        let (code, _, stderr) = ferry_out(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(
            stderr.contains("in use by another ferry process"),
            "{args:?}: {stderr}"
        );
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    let (code, _, stderr) = ferry_out(&["ls", s(&b)]);
    assert_eq!(code, 0, "{stderr}");
}
