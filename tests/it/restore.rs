//! The other half of the mission, end to end on one machine: bundle from the real registry,
//! export an ext4 image, mount it read-only, restore into the real containerd with restore.sh,
//! run an image; ferry restore; CRI-O's containers-storage through skopeo; archives.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const SAMPLES: &[&str] = &[
    "sample/hello:1.0",
    "sample/world:1.0",
    "sample/multi:1.0",
    "sample/multi-docker:1.0",
    "sample/zstd:1.0",
    "sample/raw:1.0",
    "sample/hello-docker:1.0",
];

/// A read-only loop mount, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn ro(image: &Path, at: &Path) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        run(Command::new("mount")
            .args(["-o", "loop,ro"])
            .arg(image)
            .arg(at));
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn restore_sh(script: &Path, node: &Containerd, args: &[&str]) -> (i32, String) {
    let out = Command::new(script)
        .args(args)
        .env("CONTAINERD_ADDRESS", &node.socket)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn snapshot_workflow_ext4_read_only_mount_restore_sh_containerd() {
    require("shellcheck", "shellcheck");
    require("mkfs.ext4", "e2fsprogs");
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_tags(&reg, dir.path(), SAMPLES, &[]);
    run(Command::new("shellcheck").arg(b.join("restore.sh")));

    let img = dir.path().join("preload.img");
    let (code, _, stderr) = ferry_out(&[
        "export",
        b.to_str().unwrap(),
        "--ext4",
        img.to_str().unwrap(),
        "--label",
        "preload",
    ]);
    assert_eq!(code, 0, "{stderr}");
    run(Command::new("e2fsck").args(["-f", "-n"]).arg(&img));
    let mount = Mount::ro(&img, &dir.path().join("preload"));
    let script = mount.0.join("restore.sh");

    let node = Containerd::start();
    let (code, log) = restore_sh(&script, &node, &[]);
    assert_eq!(code, 0, "{log}");
    let listed = containerd_images(&node);
    for tag in SAMPLES {
        let name = reg.image(tag);
        let (repo, t) = tag.rsplit_once(':').unwrap();
        let served = sha256(&reg.manifest(repo, t).0);
        let twin = format!("{}/{repo}@{served}", reg.addr);
        for n in [&name, &twin] {
            let row = listed
                .iter()
                .find(|r| &r.0 == n)
                .unwrap_or_else(|| panic!("{n} not in containerd: {listed:?}"));
            assert_eq!(row.1, served, "{n}: the digest the registry served");
        }
        assert!(
            log.contains(&format!("{name} ({served}) restored")),
            "{log}"
        );
    }
    let check = String::from_utf8(node.ctr(&["images", "check"]).stdout).unwrap();
    assert!(!check.contains("incomplete"), "{check}");

    // A second run (the next boot) finds every image present and imports nothing.
    let (code, log) = restore_sh(&script, &node, &[]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(containerd_images(&node), listed);
    assert!(!log.contains("importing"), "{log}");
    for tag in SAMPLES {
        assert!(
            log.contains(&format!("{} (", reg.image(tag))) && log.contains("already present"),
            "{log}"
        );
    }

    // --pin (or FERRY_PIN=1 from cloud-init) labels both names, without importing again.
    let (code, log) = restore_sh(&script, &node, &["--pin"]);
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("importing"), "{log}");
    for row in containerd_images(&node) {
        assert!(row.2.contains("io.cri-containerd.pinned=pinned"), "{row:?}");
    }
    let (code, log) = restore_sh(&script, &node, &["--pin"]);
    assert_eq!(code, 0, "{log}");
    let n = SAMPLES.len();
    assert!(
        log.contains(&format!("done: {n} image(s), {n} already present")),
        "{log}"
    );

    // The restored image runs.
    let out = node.ctr(&[
        "run",
        "--rm",
        &reg.image("sample/hello:1.0"),
        "ferry-test-run",
    ]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "hello.txt from ferry's fixtures\n"
    );
}

#[test]
fn ferry_restore_and_a_bundle_for_another_platform() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_tags(
        &reg,
        dir.path(),
        &["sample/hello:1.0", "sample/multi:1.0"],
        &["--platform", "linux/amd64"],
    );
    let node = Containerd::start();
    let restore = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["restore", b.to_str().unwrap(), "--address", &node.socket];
        args.extend_from_slice(extra);
        ferry_env(&args, env)
    };
    let (code, stdout, stderr) = restore(&["--verify", "--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["version"], 1);
    assert_eq!(report["images"].as_array().unwrap().len(), 2);
    for image in report["images"].as_array().unwrap() {
        assert_eq!(image["status"], "restored", "{image}");
        assert_eq!(image["pinned"], false, "{image}");
        assert_eq!(image["names"].as_array().unwrap().len(), 2, "{image}");
    }

    // Again, with --pin, through a ctr that logs what it is asked: the images are there and
    // complete, so they are only pinned, never imported again; a third run does nothing.
    let wrap = tempfile::tempdir().unwrap();
    let log = wrap.path().join("ctr.log");
    let ctr = wrap.path().join("ctr");
    std::fs::write(
        &ctr,
        format!(
            "#!/bin/sh\necho \"$*\" >>'{}'\nexec {} \"$@\"\n",
            log.display(),
            which("ctr").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&ctr, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        wrap.path().display(),
        std::env::var("PATH").unwrap()
    );
    let (code, stdout, stderr) = restore(&["--pin", "--json"], &[("PATH", &path)]);
    assert_eq!(code, 0, "{stderr}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(!calls.contains("import"), "{calls}");
    assert!(calls.contains("io.cri-containerd.pinned=pinned"), "{calls}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let images = report["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{report}");
    assert!(images.iter().all(|i| i["pinned"] == true), "{report}");
    std::fs::remove_file(&log).unwrap();
    let (code, stdout, stderr) = restore(&["--pin", "--json"], &[("PATH", &path)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("already present: "), "{stderr}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        !calls.contains("import") && !calls.contains("label"),
        "{calls}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let images = report["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{report}");
    assert!(images.iter().all(|i| i["status"] == "present"), "{report}");
    // Without --pin: skipped as present, and reported pinned as containerd holds them.
    let (code, stdout, stderr) = restore(&["--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["pin"], false, "{report}");
    for image in report["images"].as_array().unwrap() {
        assert_eq!(image["status"], "present", "{image}");
        assert_eq!(image["alreadyPresent"], true, "{image}");
        assert_eq!(image["pinned"], true, "pinned by the run before: {image}");
    }
    assert_eq!(
        report["totals"],
        serde_json::json!({"images": 2, "restored": 0, "present": 2, "failed": 0, "pinned": 2})
    );
    let listed = containerd_images(&node);
    let multi = sha256(&reg.manifest("sample/multi", "1.0").0);
    assert!(
        listed
            .iter()
            .any(|r| r.0 == format!("{}/sample/multi@{multi}", reg.addr) && r.2.contains("pinned")),
        "{listed:?}"
    );

    // A bundle made for linux/arm64 only, on this amd64 node: refused, saying so.
    let arm_dir = tempfile::tempdir().unwrap();
    let arm = bundle_tags(
        &reg,
        arm_dir.path(),
        &["sample/arm-only:1.0", "sample/multi:1.0"],
        &["--platform", "linux/arm64"],
    );
    let (code, _, stderr) = ferry_out(&[
        "restore",
        arm.to_str().unwrap(),
        "--address",
        &node.socket,
        "--platform",
        "linux/amd64",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no image in") && stderr.contains("runs on linux/amd64"),
        "{stderr}"
    );
    assert!(stderr.contains("linux/arm64/v8"), "{stderr}");
    let (code, log) = restore_sh(&arm.join("restore.sh"), &node, &[]);
    assert_eq!(code, 1);
    assert!(
        log.contains("no image in this bundle runs on linux/amd64"),
        "{log}"
    );
    assert!(
        !containerd_images(&node)
            .iter()
            .any(|r| r.0.contains("arm-only")),
        "no record without content"
    );
}

#[test]
fn cri_o_containers_storage_through_skopeo() {
    require("podman", "podman");
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let tags = ["sample/hello:1.0", "sample/multi-docker:1.0"];
    let b = bundle_tags(&reg, dir.path(), &tags, &[]);
    let (root, runroot) = (dir.path().join("cs"), dir.path().join("csrun"));
    let storage = format!("[vfs@{}+{}]", root.display(), runroot.display());
    let conf = dir.path().join("crio.conf.d");
    let (code, _, stderr) = ferry_out(&[
        "restore",
        b.to_str().unwrap(),
        "--runtime",
        "cri-o",
        "--storage",
        &storage,
        "--pin",
        "--crio-conf-dir",
        conf.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let podman = |root: &Path, runroot: &Path| {
        let out = run(Command::new("podman")
            .args(["--storage-driver", "vfs", "--root"])
            .arg(root)
            .arg("--runroot")
            .arg(runroot)
            .args([
                "images",
                "--digests",
                "--format",
                "{{.Repository}}:{{.Tag}} {{.Digest}}",
            ]));
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = podman(&root, &runroot);
    for tag in tags {
        let (repo, t) = tag.rsplit_once(':').unwrap();
        let served = sha256(&reg.manifest(repo, t).0);
        assert!(
            listed.contains(&format!("{} {served}", reg.image(tag))),
            "{tag}: {listed}"
        );
    }
    let dropin = std::fs::read_to_string(conf.join("50-ferry-pinned.conf")).unwrap();
    assert!(
        dropin.contains("[crio.image]")
            && dropin.contains(&format!("\"{}\"", reg.image("sample/hello:1.0"))),
        "{dropin}"
    );

    // Pinning a second bundle keeps the first one's pins (a later drop-in replaces the list).
    let second = tempfile::tempdir().unwrap();
    let other = bundle_tags(&reg, second.path(), &["sample/world:1.0"], &[]);
    let (code, _, stderr) = ferry_out(&[
        "restore",
        other.to_str().unwrap(),
        "--runtime",
        "cri-o",
        "--storage",
        &storage,
        "--pin",
        "--crio-conf-dir",
        conf.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let dropin = std::fs::read_to_string(conf.join("50-ferry-pinned.conf")).unwrap();
    for tag in ["sample/hello:1.0", "sample/world:1.0"] {
        assert!(
            dropin.contains(&format!("\"{}\"", reg.image(tag))),
            "{tag}: {dropin}"
        );
    }

    // restore.sh does the same with skopeo alone.
    let (root2, runroot2) = (dir.path().join("cs2"), dir.path().join("csrun2"));
    let out = Command::new(b.join("restore.sh"))
        .env("FERRY_RUNTIME", "cri-o")
        .env(
            "FERRY_CONTAINERS_STORAGE",
            format!("[vfs@{}+{}]", root2.display(), runroot2.display()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(podman(&root2, &runroot2), listed);
}

#[test]
fn archives_are_deterministic_and_read_by_other_tools() {
    require("podman", "podman");
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_tags(
        &reg,
        dir.path(),
        &["sample/hello:1.0", "sample/multi:1.0", "sample/zstd:1.0"],
        &[],
    );
    let export = |flag: &str, name: &str| {
        let out = dir.path().join(name);
        let (code, _, stderr) =
            ferry_out(&["export", b.to_str().unwrap(), flag, out.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
        std::fs::read(out).unwrap()
    };
    assert_eq!(
        export("--oci-archive", "a.tar"),
        export("--oci-archive", "a2.tar"),
        "same bundle, same bytes"
    );
    assert_eq!(
        export("--oci-archive", "a.tar.zst"),
        export("--oci-archive", "a2.tar.zst")
    );
    let unpacked = run(Command::new("zstd")
        .args(["-d", "-c"])
        .arg(dir.path().join("a.tar.zst")));
    assert_eq!(
        unpacked.stdout,
        std::fs::read(dir.path().join("a.tar")).unwrap(),
        "the .zst holds the same tar"
    );

    // skopeo reads the oci-archive; ctr imports it.
    let multi = reg.image("sample/multi:1.0");
    let inspect = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}:{multi}", dir.path().join("a.tar").display()),
    ]));
    assert_eq!(
        sha256(&inspect.stdout),
        sha256(&reg.manifest("sample/multi", "1.0").0)
    );
    let node = Containerd::start();
    node.ctr(&[
        "images",
        "import",
        dir.path().join("a.tar").to_str().unwrap(),
    ]);
    assert!(
        containerd_images(&node).iter().any(|r| r.0 == multi),
        "{:?}",
        containerd_images(&node)
    );

    // podman loads the docker-archive, names and all.
    assert_eq!(
        export("--docker-archive", "d.tar"),
        export("--docker-archive", "d2.tar")
    );
    let (root, runroot) = (dir.path().join("cs"), dir.path().join("csrun"));
    let podman = |args: &[&str]| {
        run(Command::new("podman")
            .args(["--storage-driver", "vfs", "--root"])
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .args(args))
    };
    podman(&[
        "load",
        "-q",
        "-i",
        dir.path().join("d.tar").to_str().unwrap(),
    ]);
    let listed =
        String::from_utf8(podman(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout)
            .unwrap();
    for tag in ["sample/hello:1.0", "sample/multi:1.0", "sample/zstd:1.0"] {
        assert!(
            listed.lines().any(|l| l == reg.image(tag)),
            "{tag}: {listed}"
        );
    }

    // An ext4 image that is too small says so.
    let (code, _, stderr) = ferry_out(&[
        "export",
        b.to_str().unwrap(),
        "--ext4",
        dir.path().join("tiny.img").to_str().unwrap(),
        "--size",
        "1M",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("mkfs.ext4 failed"), "{stderr}");
}

#[test]
fn an_ext4_image_gets_inodes_for_every_file_whatever_its_size() {
    // Made by hand, not by ferry: export --ext4 copies the folder as it is (after re-hashing
    // every blob, so each is named by its sha256sum). Above 512 MiB, mkfs.ext4 gives one inode
    // per 16 KiB by default: a bundle of many small blobs ran out. ferry passes -N for the
    // files it has: here about a hundred, where the default for 600 MiB would be 38,400,
    // which proves the count is ferry's.
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("bundle");
    std::fs::create_dir_all(b.join("blobs/sha256")).unwrap();
    std::fs::write(b.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        b.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    let script = "for i in $(seq 0 99); do printf 'blob %s' $i > x; \
                  mv x blobs/sha256/$(sha256sum x | cut -c1-64); done";
    run(Command::new("sh").args(["-c", script]).current_dir(&b));
    let img = dir.path().join("many.img");
    let (code, _, stderr) = ferry_out(&[
        "export",
        b.to_str().unwrap(),
        "--ext4",
        img.to_str().unwrap(),
        "--size",
        "600M",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let header =
        String::from_utf8(run(Command::new("dumpe2fs").arg("-h").arg(&img)).stdout).unwrap();
    let inodes: u64 = header
        .lines()
        .find_map(|l| l.strip_prefix("Inode count:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((105..10_000).contains(&inodes), "{inodes} inodes");
}

#[test]
fn an_empty_bundle_still_carries_restore_sh_and_says_it_is_empty() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    // Made first: a run that bundles nothing removes only a folder it created.
    std::fs::create_dir(&b).unwrap();
    let (code, _, _) = ferry_out(&[
        "bundle",
        "-o",
        b.to_str().unwrap(),
        &reg.image("sample/missing:1"),
    ]);
    assert_eq!(code, 1);
    assert!(
        b.join("restore.sh").is_file(),
        "every bundle carries restore.sh"
    );
    let (code, _, stderr) = ferry_out(&["restore", b.to_str().unwrap(), "--runtime", "containerd"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("holds no images"), "{stderr}");
}
