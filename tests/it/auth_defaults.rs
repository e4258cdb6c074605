//! Where credentials and certificates are found when nothing is named: the HOME fallbacks
//! (`~/.config/containers/auth.json`, `~/.docker/config.json`), `ferry login -p`, and the
//! machine's `/etc/containers/certs.d` and `/etc/docker/certs.d`.

use crate::common;

use common::auth::*;
use common::*;

/// A home folder holding `file` (relative) with an `auths` entry for `registry`.
fn home_with(dir: &std::path::Path, file: &str, registry: &str) -> std::path::PathBuf {
    let home = dir.join(file.replace('/', "_"));
    let path = home.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        format!(
            r#"{{"auths":{{"{registry}":{{"auth":"{}"}}}}}}"#,
            b64(&format!("{USER}:{PASS}"))
        ),
    )
    .unwrap();
    home
}

#[test]
fn credentials_under_home_are_found_podmans_first() {
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    for file in [".config/containers/auth.json", ".docker/config.json"] {
        let home = home_with(dir.path(), file, &ar.reg.addr);
        let out = dir.path().join(format!("b-{}", file.replace('/', "_")));
        let (code, _, stderr) = ar.bundle_hello(&out, &[("HOME", home.to_str().unwrap())], &[]);
        assert_eq!(code, 0, "{file}: {stderr}");
    }
    // Both present: podman's file is read first; a wrong password in it fails, naming it.
    let home = home_with(dir.path(), ".docker/config.json", &ar.reg.addr);
    let podman = home.join(".config/containers/auth.json");
    std::fs::create_dir_all(podman.parent().unwrap()).unwrap();
    std::fs::write(
        &podman,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            ar.reg.addr,
            b64(&format!("{USER}:wrong"))
        ),
    )
    .unwrap();
    let (code, _, stderr) = ar.bundle_hello(
        &dir.path().join("both"),
        &[("HOME", home.to_str().unwrap())],
        &["--retries", "0"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(".config/containers/auth.json"), "{stderr}");
}

#[test]
fn login_takes_the_password_from_p() {
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    let authfile = dir.path().join("auth.json");
    let (code, _, stderr) = ferry_out(&[
        "login",
        &ar.reg.addr,
        "--ca-file",
        &ar.tls.path("ca.crt"),
        "--authfile",
        authfile.to_str().unwrap(),
        "-u",
        USER,
        "-p",
        PASS,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(PASS), "{stderr}");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&authfile).unwrap()).unwrap();
    assert_eq!(
        written["auths"][&ar.reg.addr]["auth"],
        b64(&format!("{USER}:{PASS}"))
    );
    // A wrong one is refused and nothing is written.
    let other = dir.path().join("other.json");
    let (code, _, stderr) = ferry_out(&[
        "login",
        &ar.reg.addr,
        "--ca-file",
        &ar.tls.path("ca.crt"),
        "--authfile",
        other.to_str().unwrap(),
        "-u",
        USER,
        "-p",
        "wrong",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(!other.exists());
}

/// The CA of a registry put where docker or podman would look on this machine (a folder named
/// by the registry's port, removed afterwards): trusted with no flag.
#[test]
fn the_machines_certs_d_folders_are_read_by_default() {
    let tls = Tls::new();
    let reg = Registry::seeded_with(&["--tls", &tls.path("server.crt"), &tls.path("server.key")]);
    let dir = tempfile::tempdir().unwrap();
    for root in ["/etc/containers/certs.d", "/etc/docker/certs.d"] {
        let folder = std::path::Path::new(root).join(&reg.addr);
        assert!(
            !folder.exists(),
            "{} is the machine's already",
            folder.display()
        );
        struct Remove(std::path::PathBuf);
        impl Drop for Remove {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        std::fs::create_dir_all(&folder).unwrap();
        let _remove = Remove(folder.clone());
        std::fs::copy(tls.path("ca.crt"), folder.join("ca.crt")).unwrap();
        let out = dir.path().join(root.replace('/', "_"));
        let (code, _, stderr) = ferry_out(&[
            "bundle",
            "--retries",
            "0",
            "-o",
            out.to_str().unwrap(),
            &reg.image("sample/hello:1.0"),
        ]);
        assert_eq!(code, 0, "{root}: {stderr}");
    }
    // And without them: refused (so the folders were what made it trusted).
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--retries",
        "0",
        "-o",
        dir.path().join("none").to_str().unwrap(),
        &reg.image("sample/hello:1.0"),
    ]);
    assert_eq!(code, 1, "{stderr}");
}
