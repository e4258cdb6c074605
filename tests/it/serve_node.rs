//! `ferry serve` on a node: containerd (`ctr images pull --hosts-dir`) and skopeo with the
//! registries.conf drop-in pull the original names while the source registry is stopped;
//! `restore.sh --mirror` from a read-only mount sets a node up that way, twice.

use crate::common;
use crate::served;

use std::process::Command;

use common::*;
use served::*;

#[test]
fn containerd_and_skopeo_pull_original_names_with_the_source_registry_stopped() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), SAMPLES, &[]);
    let tar = dir.path().join("b.tar");
    export_tar(&b, &tar);
    let zst = dir.path().join("b.tar.zst");
    export_tar(&b, &zst);
    let source = reg.addr.clone();
    let names: Vec<String> = SAMPLES.iter().map(|t| reg.image(t)).collect();
    // The source registry's digests (sha256sum of what it serves), before it stops.
    let digests: std::collections::BTreeMap<&String, String> = names
        .iter()
        .zip(SAMPLES)
        .map(|(name, tag)| (name, reg.digest(tag)))
        .collect();
    drop(reg);
    for (i, bundle_path) in [&b, &tar, &zst].into_iter().enumerate() {
        let hosts = dir.path().join(format!("certs.d-{i}"));
        let conf = dir.path().join(format!("registries-{i}.conf"));
        let served = Served::start(
            bundle_path,
            &[
                "--hosts-dir",
                hosts.to_str().unwrap(),
                "--registries-conf",
                conf.to_str().unwrap(),
                "--containerd-config",
                dir.path().join("absent.toml").to_str().unwrap(),
            ],
        );
        assert!(hosts.join(&source).join("hosts.toml").is_file());
        assert!(served.log().contains("config_path"), "{}", served.log());
        let node = Containerd::start();
        for name in &names {
            node.ctr(&[
                "images",
                "pull",
                "--hosts-dir",
                hosts.to_str().unwrap(),
                name,
            ]);
        }
        let listed = String::from_utf8(node.ctr(&["images", "ls"]).stdout).unwrap();
        for name in &names {
            let row = listed
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("{name} not pulled: {listed}"));
            assert!(row.contains(&digests[name]), "{row}");
        }
        assert!(
            served.log().contains("/v2/sample/hello/manifests/1.0 200"),
            "{}",
            served.log()
        );
        // The CRI-O path: c/image with the registries.conf drop-in, no ns parameter.
        for name in &names {
            let raw = run(Command::new("skopeo")
                .arg("--registries-conf")
                .arg(&conf)
                .args(["inspect", "--raw", &format!("docker://{name}")]));
            assert_eq!(sha256(&raw.stdout), digests[name], "{name}");
        }
        let out = dir.path().join(format!("crio-{i}"));
        run(Command::new("skopeo")
            .arg("--registries-conf")
            .arg(&conf)
            .args(["copy", "--quiet", &format!("docker://{}", names[0])])
            .arg(format!("oci:{}:x", out.display())));
    }
}

#[test]
fn restore_sh_mirror_serves_a_read_only_mount_to_containerd_and_is_idempotent() {
    require("shellcheck", "shellcheck");
    require("mkfs.ext4", "e2fsprogs");
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let tags = ["sample/hello:1.0", "sample/multi:1.0"];
    // The ferry under test is no static build (--with-binary would not place it): FERRY_BIN.
    let b = bundle(&reg, &dir.path().join("b"), &tags, &[]);
    run(Command::new("shellcheck").arg(b.join("restore.sh")));
    let img = dir.path().join("preload.img");
    let (code, _, stderr) = ferry_out(&[
        "export",
        b.to_str().unwrap(),
        "--ext4",
        img.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let at = dir.path().join("preload");
    std::fs::create_dir_all(&at).unwrap();
    run(Command::new("mount")
        .args(["-o", "loop,ro"])
        .arg(&img)
        .arg(&at));
    let mount = Mount(at);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let hosts = dir.path().join("certs.d");
    let state = dir.path().join("state");
    let names: Vec<String> = tags.iter().map(|t| reg.image(t)).collect();
    let digests: Vec<String> = tags.iter().map(|t| reg.digest(t)).collect();
    let source = reg.addr.clone();
    drop(reg);
    // The server restore.sh starts in the background is stopped however the test ends (before
    // the mount it serves from is unmounted).
    struct StopServer(std::path::PathBuf);
    impl Drop for StopServer {
        fn drop(&mut self) {
            if let Ok(pid) = std::fs::read_to_string(&self.0)
                && let Ok(pid) = pid.trim().parse::<i32>()
            {
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
    }
    let _server = StopServer(state.join("serve.pid"));
    let restore = || {
        let out = Command::new(mount.0.join("restore.sh"))
            .arg("--mirror")
            .env("FERRY_BIN", env!("CARGO_BIN_EXE_ferry"))
            .env("FERRY_MIRROR_ADDR", &addr)
            .env("FERRY_HOSTS_DIR", &hosts)
            .env("FERRY_REGISTRIES_CONF", dir.path().join("ferry.conf"))
            .env("FERRY_CONTAINERD_CONFIG", dir.path().join("absent.toml"))
            .env("FERRY_SERVICE", "background")
            .env("FERRY_STATE_DIR", &state)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{log}");
        log
    };
    let first = restore();
    assert!(
        first.contains(&format!("serving this bundle on {addr}")),
        "{first}"
    );
    let pid = std::fs::read_to_string(state.join("serve.pid")).unwrap();
    let serve_log = std::fs::read_to_string(state.join("serve.log")).unwrap();
    assert!(serve_log.contains("config_path"), "{serve_log}");
    assert!(hosts.join(&source).join("hosts.toml").is_file());
    assert!(dir.path().join("ferry.conf").is_file());

    let node = Containerd::start();
    for name in &names {
        node.ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            hosts.to_str().unwrap(),
            name,
        ]);
    }
    let listed = String::from_utf8(node.ctr(&["images", "ls"]).stdout).unwrap();
    for (name, digest) in names.iter().zip(&digests) {
        assert!(listed.contains(digest.as_str()), "{name}: {listed}");
    }

    // Again: the running server is left alone, nothing else changes.
    let second = restore();
    assert!(second.contains("already answers"), "{second}");
    assert_eq!(
        std::fs::read_to_string(state.join("serve.pid")).unwrap(),
        pid
    );
    let pid: i32 = pid.trim().parse().unwrap();
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_for(
        20,
        "ferry serve to stop",
        || unsafe { libc::kill(pid, 0) } != 0,
    );
}
