//! What reaching a registry needs in tests: TLS material, an htpasswd file, credentials
//! given to skopeo, a credential helper and a docker config folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// TLS material made with openssl: a CA, a server certificate for 127.0.0.1 and localhost,
/// and a client certificate, all signed by the CA.
pub struct Tls {
    /// The folder holding everything.
    pub dir: tempfile::TempDir,
}

impl Tls {
    /// A copy of the run's CA and certificates (made once, `fixtures::tls_material`), in a
    /// folder of the test's own.
    pub fn new() -> Tls {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("cp")
            .arg("-a")
            .arg(fixtures::tls_material().join("."))
            .arg(dir.path()));
        Tls { dir }
    }

    /// A file in the folder.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
}

/// An htpasswd file (bcrypt, as distribution requires) for one user.
pub fn htpasswd(dir: &Path, user: &str, password: &str) -> PathBuf {
    require("htpasswd", "apache2-utils");
    let out = run(Command::new("htpasswd").args(["-Bbn", user, password]));
    let path = dir.join("htpasswd");
    std::fs::write(&path, out.stdout).unwrap();
    path
}

/// Pushes a sample image with skopeo, with credentials and a CA folder for TLS registries.
pub fn skopeo_push(registry: &str, tag: &str, creds: Option<&str>, ca_dir: Option<&Path>) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--quiet"]);
    match ca_dir {
        Some(d) => cmd.arg("--dest-cert-dir").arg(d),
        None => cmd.arg("--dest-tls-verify=false"),
    };
    if let Some(c) = creds {
        cmd.args(["--dest-creds", c]);
    }
    cmd.arg(format!("oci:{}:{tag}", sample_layout().display()))
        .arg(format!("docker://{registry}/{tag}"));
    run(&mut cmd);
}

/// A fake `docker-credential-NAME` helper in its own folder (to put first on PATH). It answers
/// `get` for `server` with user/secret, records `store` and `erase` input in NAME.log, and, when
/// `fail` is set, fails with that message on stderr.
pub fn credential_helper(
    dir: &Path,
    name: &str,
    server: &str,
    user: &str,
    secret: &str,
    fail: Option<&str>,
) -> PathBuf {
    let bin = dir.join(format!("helper-{name}"));
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join(format!("{name}.log"));
    let failure = fail
        .map(|m| format!("echo '{m}' >&2; exit 1"))
        .unwrap_or_default();
    let script = format!(
        r#"#!/bin/sh
{failure}
input=$(cat)
case "$1" in
get)
  if [ "$input" = "{server}" ]; then printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}' "$input"; exit 0; fi
  echo "credentials not found in native keychain"; exit 1 ;;
store|erase) printf '%s %s\n' "$1" "$input" >> {log}; exit 0 ;;
esac
exit 1
"#,
        log = log.display()
    );
    let path = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// A docker config folder holding `json` as config.json (for DOCKER_CONFIG).
pub fn docker_config(dir: &Path, json: &str) -> std::path::PathBuf {
    let cfg = dir.join("docker");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.json"), json).unwrap();
    cfg
}
