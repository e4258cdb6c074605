//! The node side beyond plain containerd: k3s and RKE2 (their own containerd socket and
//! `k3s ctr`), and the docker-archive their agent/images folder imports.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A folder of links to every command on the usual PATH but ctr (and k3s).
fn path_without_ctr(dir: &Path) -> std::path::PathBuf {
    path_without(dir, &["ctr", "k3s"])
}

/// k3s and RKE2 run their own containerd at /run/k3s/containerd/containerd.sock and ship
/// `k3s ctr` rather than a ctr on PATH: restore.sh finds both. The socket is a link to a
/// private containerd's, and PATH holds every command but ctr, plus a `k3s` that runs it.
#[test]
fn restore_sh_finds_k3s_containerd_and_ctr() {
    let _machine = machine_wide();
    let k3s_dir = Path::new("/run/k3s/containerd");
    assert!(
        !Path::new("/run/containerd/containerd.sock").exists() && !k3s_dir.exists(),
        "this test needs a machine with no system containerd and no k3s"
    );
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_tags(&reg, dir.path(), &["sample/hello:1.0"], &[]);
    let node = Containerd::start();
    std::fs::create_dir_all(k3s_dir).unwrap();
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all("/run/k3s");
        }
    }
    let _cleanup = Cleanup;
    std::os::unix::fs::symlink(&node.socket, k3s_dir.join("containerd.sock")).unwrap();
    let bin = path_without_ctr(dir.path());
    let k3s = bin.join("k3s");
    std::fs::write(
        &k3s,
        format!(
            "#!/bin/sh\n[ \"$1\" = ctr ] || exit 2\nshift\nexec {} \"$@\"\n",
            which("ctr").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&k3s, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new(b.join("restore.sh"))
        .env_remove("CONTAINERD_ADDRESS")
        .env("PATH", &bin)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("restored"), "{log}");
    assert!(
        containerd_images(&node)
            .iter()
            .any(|r| r.0 == reg.image("sample/hello:1.0")),
        "{:?}",
        containerd_images(&node)
    );
}

/// RKE2 ships ctr at /var/lib/rancher/rke2/bin/ctr, on no PATH: restore.sh finds it there.
/// Here it is a script that records its use and runs the real ctr.
#[test]
fn restore_sh_finds_rke2s_ctr() {
    let _machine = machine_wide();
    let rancher = Path::new("/var/lib/rancher");
    assert!(
        !rancher.exists() && !Path::new("/run/k3s").exists(),
        "this test needs a machine with no RKE2 or k3s"
    );
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_tags(&reg, dir.path(), &["sample/hello:1.0"], &[]);
    let node = Containerd::start();
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all("/var/lib/rancher");
        }
    }
    let _cleanup = Cleanup;
    let rke2_bin = rancher.join("rke2/bin");
    std::fs::create_dir_all(&rke2_bin).unwrap();
    let used = dir.path().join("rke2-ctr-used");
    std::fs::write(
        rke2_bin.join("ctr"),
        format!(
            "#!/bin/sh\ntouch '{}'\nexec {} \"$@\"\n",
            used.display(),
            which("ctr").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        rke2_bin.join("ctr"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bin = path_without_ctr(dir.path());
    let out = Command::new(b.join("restore.sh"))
        .env("CONTAINERD_ADDRESS", &node.socket)
        .env("PATH", &bin)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(used.exists(), "RKE2's ctr was not the one run: {log}");
    assert!(
        containerd_images(&node)
            .iter()
            .any(|r| r.0 == reg.image("sample/hello:1.0")),
        "{:?}",
        containerd_images(&node)
    );
}

#[test]
fn a_docker_archive_imported_by_ctr_keeps_every_name() {
    // What k3s and RKE2 do with the tars in their agent/images folder.
    let reg = Registry::seeded();
    reg.copy_within("sample/hello:1.0", "sample/hello:again", &[]);
    let dir = tempfile::tempdir().unwrap();
    let tags = ["sample/hello:1.0", "sample/hello:again", "sample/multi:1.0"];
    let b = bundle_tags(&reg, dir.path(), &tags, &[]);
    let tar = dir.path().join("images.tar");
    let (code, _, stderr) = ferry_out(&[
        "export",
        b.to_str().unwrap(),
        "--docker-archive",
        tar.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let node = Containerd::start();
    node.ctr(&["images", "import", tar.to_str().unwrap()]);
    let listed: Vec<String> = containerd_images(&node).into_iter().map(|i| i.0).collect();
    for tag in tags {
        assert!(listed.contains(&reg.image(tag)), "{tag}: {listed:?}");
    }
}
