//! The fake Kubernetes API for `--from-cluster` and `ferry snapshot` tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Tls, root, wait_for};

/// The fake Kubernetes API (testdata/fake_kube_api.py) over HTTPS with the recorded lists of
/// testdata/kube-api, stopped on drop.
pub struct FakeKubeApi {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The bearer token it accepts.
    pub token: String,
    /// The CA that signed its certificate.
    pub tls: Tls,
    /// Where it logs request paths.
    pub log: PathBuf,
    child: std::process::Child,
}

impl FakeKubeApi {
    /// Starts it.
    pub fn start() -> FakeKubeApi {
        FakeKubeApi::start_with("ready")
    }

    /// Starts it with a `--scenario` for the snapshot API (ready, no-crd, forbidden, stuck).
    pub fn start_with(scenario: &str) -> FakeKubeApi {
        let tls = Tls::new();
        let port_file = tls.dir.path().join("port");
        let log = tls.dir.path().join("requests.log");
        let token = "ferry-test-token".to_owned();
        let child = Command::new("python3")
            .arg(root().join("testdata/fake_kube_api.py"))
            .args([
                "--cert",
                &tls.path("server.crt"),
                "--key",
                &tls.path("server.key"),
                "--token",
                &token,
            ])
            .arg("--responses")
            .arg(root().join("testdata/kube-api"))
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .args(["--scenario", scenario])
            .spawn()
            .unwrap();
        wait_for(10, "the fake API server", || port_file.exists());
        let port = std::fs::read_to_string(&port_file).unwrap();
        FakeKubeApi {
            addr: format!("127.0.0.1:{}", port.trim()),
            token,
            tls,
            log,
            child,
        }
    }

    /// A kubeconfig in `dir` for this server with its token.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: https://{}\n    certificate-authority: {}\nusers:\n- name: me\n  user:\n    token: {}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: me}}\ncurrent-context: fake\n",
                self.addr,
                self.tls.path("ca.crt"),
                self.token
            ),
        )
        .unwrap();
        path
    }

    /// The request paths it saw (`POST ` before those that were not GETs). The fake makes its
    /// log empty when it starts: a missing log fails rather than reading as no request.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| panic!("the fake API's log {}: {e}", self.log.display()))
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for FakeKubeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
