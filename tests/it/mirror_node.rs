//! `restore.sh --mirror` beyond the background server with the bundle's own binary
//! (serve_node.rs): FERRY_BIN and ferry on PATH, a node with neither curl nor wget (the
//! server's "serving ... at" line is waited for), and the systemd unit (with a systemctl that
//! records its calls and runs the unit's command, as no systemd runs here).

use crate::common;
use crate::served;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A free loopback address.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Stops the server whose pid a file holds, however the test ends.
struct StopServer(PathBuf);

impl Drop for StopServer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

/// restore.sh --mirror with `env`; returns its log (stderr), asserting success.
fn mirror(bundle: &Path, env: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new(bundle.join("restore.sh"));
    cmd.arg("--mirror");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

/// The file `--with-binary` gives this machine's binary (`ferry-linux-amd64` on x86_64).
fn node_binary_name() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("ferry-linux-{arch}")
}

/// Whether a registry answers /v2/ at `addr` (asked by curl, from the test).
fn answers(addr: &str) -> bool {
    served::curl("GET", &format!("http://{addr}/v2/"), &[]).status == 200
}

#[test]
fn ferry_bin_or_path_and_no_curl_nor_wget_on_the_node() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    // No --with-binary: the bundle carries no ferry.
    let b = bundle_tags(&reg, dir.path(), &["sample/hello:1.0"], &[]);
    assert!(!b.join("ferry").exists());
    let bin = path_without(dir.path(), &["curl", "wget", "ferry"]);
    let ferry_bin = PathBuf::from(env!("CARGO_BIN_EXE_ferry"));
    let with_ferry = dir.path().join("with-ferry");
    std::fs::create_dir(&with_ferry).unwrap();
    std::os::unix::fs::symlink(&ferry_bin, with_ferry.join("ferry")).unwrap();
    let path_with_ferry = PathBuf::from(format!("{}:{}", with_ferry.display(), bin.display()));

    for (case, path, ferry_env) in [
        ("FERRY_BIN", bin.clone(), Some(ferry_bin.as_path())),
        ("ferry on PATH", path_with_ferry, None),
    ] {
        let addr = free_addr();
        let state = dir.path().join(format!("state-{}", case.replace(' ', "-")));
        let _server = StopServer(state.join("serve.pid"));
        let hosts = dir
            .path()
            .join(format!("certs.d-{}", case.replace(' ', "-")));
        let mut env: Vec<(&str, &Path)> = vec![
            ("PATH", &path),
            ("FERRY_MIRROR_ADDR", Path::new(&addr)),
            ("FERRY_HOSTS_DIR", &hosts),
            ("FERRY_SERVICE", Path::new("background")),
            ("FERRY_STATE_DIR", &state),
            (
                "FERRY_CONTAINERD_CONFIG",
                Path::new("/nonexistent/config.toml"),
            ),
        ];
        if let Some(f) = ferry_env {
            env.push(("FERRY_BIN", f));
        }
        let log = mirror(&b, &env);
        assert!(
            log.contains(&format!("serving this bundle on {addr} (background)")),
            "{case}: {log}"
        );
        // Without curl or wget it waited for the server's own line, which is there.
        let serve_log = std::fs::read_to_string(state.join("serve.log")).unwrap();
        assert!(serve_log.contains(" at http"), "{case}: {serve_log}");
        assert!(answers(&addr), "{case}: nothing answers on {addr}");
    }
}

/// systemd: the unit is written (every argument quoted), reloaded, enabled and started.
#[test]
fn a_systemd_unit_is_written_enabled_and_started() {
    let _machine = machine_wide();
    let unit = Path::new("/etc/systemd/system/ferry-mirror.service");
    assert!(
        !unit.exists(),
        "this test needs a machine without {}",
        unit.display()
    );
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_tags(&reg, dir.path(), &["sample/hello:1.0"], &[]);
    // The ferry under test is no static build, so --with-binary would not place it: it goes
    // where --with-binary puts a dist build, the name restore.sh picks by `uname -m`.
    let own = b.join(node_binary_name());
    std::fs::copy(env!("CARGO_BIN_EXE_ferry"), &own).unwrap();
    let created_folder = !unit.parent().unwrap().exists();
    struct Cleanup(bool);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_file("/etc/systemd/system/ferry-mirror.service");
            if self.0 {
                let _ = std::fs::remove_dir("/etc/systemd/system");
            }
        }
    }
    std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
    let _cleanup = Cleanup(created_folder);
    // A systemctl that logs its arguments; `restart` runs the unit's ExecStart in the
    // background (its pid in a file), `is-active` says whether that runs.
    let fake = dir.path().join("fake-bin");
    std::fs::create_dir(&fake).unwrap();
    let (calls, pid) = (
        dir.path().join("systemctl.log"),
        dir.path().join("unit.pid"),
    );
    let _server = StopServer(pid.clone());
    std::fs::write(
        fake.join("systemctl"),
        format!(
            r#"#!/bin/sh
echo "$*" >> '{calls}'
case "$1" in
restart|start)
  line=$(sed -n 's/^ExecStart=//p' {unit})
  eval "set -- $line"
  "$@" > '{log}' 2>&1 &
  echo $! > '{pid}' ;;
is-active) kill -0 "$(cat '{pid}')" 2>/dev/null ;;
esac
"#,
            calls = calls.display(),
            unit = unit.display(),
            log = dir.path().join("unit.log").display(),
            pid = pid.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        fake.join("systemctl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let addr = free_addr();
    let hosts = dir.path().join("certs.d");
    let path = PathBuf::from(path_with(&fake));
    let log = mirror(
        &b,
        &[
            ("PATH", &path),
            ("FERRY_MIRROR_ADDR", Path::new(&addr)),
            ("FERRY_HOSTS_DIR", &hosts),
            ("FERRY_SERVICE", Path::new("systemd")),
            (
                "FERRY_CONTAINERD_CONFIG",
                Path::new("/nonexistent/config.toml"),
            ),
        ],
    );
    assert!(
        log.contains(&format!("serving this bundle on {addr} (systemd)")),
        "{log}"
    );
    let text = std::fs::read_to_string(unit).unwrap();
    assert!(
        text.contains(&format!(
            "ExecStart=\"{}\" \"serve\" \"{}\" \"--addr\" \"{addr}\"",
            own.display(),
            b.display()
        )),
        "{text}"
    );
    assert!(text.contains("WantedBy=multi-user.target"), "{text}");
    let called = std::fs::read_to_string(&calls).unwrap();
    let called: Vec<&str> = called.lines().collect();
    assert_eq!(
        called[..3],
        [
            "daemon-reload",
            "enable ferry-mirror.service",
            "restart ferry-mirror.service"
        ],
        "{called:?}"
    );
    assert!(answers(&addr));
}
