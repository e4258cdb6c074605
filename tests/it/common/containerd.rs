//! A private containerd for the restore tests (scripts/containerd.sh), and what it lists.

use std::path::Path;
use std::process::{Command, Output};

use super::{require, root, run};

/// A private containerd (scripts/containerd.sh), stopped on drop.
pub struct Containerd {
    /// Its socket (for CONTAINERD_ADDRESS or `ctr -a`).
    pub socket: String,
    state: tempfile::TempDir,
}

impl Containerd {
    /// Starts one.
    pub fn start() -> Containerd {
        require("containerd", "containerd");
        require("ctr", "containerd");
        let state = tempfile::tempdir().unwrap();
        let out = run(Command::new(root().join("scripts/containerd.sh"))
            .arg("start")
            .arg(state.path()));
        Containerd {
            socket: String::from_utf8(out.stdout).unwrap().trim().to_owned(),
            state,
        }
    }

    /// `ctr -a SOCKET -n k8s.io ARGS`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        run(Command::new("ctr")
            .args(["-a", &self.socket, "-n", "k8s.io"])
            .args(args))
    }

    /// Imports a bundle folder with ctr's own importer (a tar made by GNU tar, not ferry).
    pub fn import_bundle(&self, bundle: &Path) {
        let tar = self.state.path().join("bundle.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(bundle)
            .args(["--exclude=./.ferry", "-cf"])
            .arg(&tar)
            .arg("."));
        self.ctr(&["images", "import", tar.to_str().unwrap()]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/containerd.sh"))
            .arg("stop")
            .arg(self.state.path())
            .output();
    }
}

/// `ctr images ls` as (name, digest, labels) rows.
pub fn containerd_images(node: &Containerd) -> Vec<(String, String, String)> {
    containerd_images_in(node, "k8s.io")
}

/// `name` is among `listed` (rows of [`containerd_images`]) with `digest`, pinned.
pub fn assert_pinned(listed: &[(String, String, String)], name: &str, digest: &str) {
    let row = listed
        .iter()
        .find(|r| r.0 == name)
        .unwrap_or_else(|| panic!("{name} not in containerd: {listed:?}"));
    assert_eq!(row.1, digest, "{name}");
    assert!(row.2.contains("io.cri-containerd.pinned=pinned"), "{row:?}");
}

/// [`containerd_images`] of namespace `ns`.
pub fn containerd_images_in(node: &Containerd, ns: &str) -> Vec<(String, String, String)> {
    let out = run(Command::new("ctr").args(["-a", &node.socket, "-n", ns, "images", "ls"]));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_owned(),
                f[2].to_owned(),
                f.last().unwrap().to_string(),
            )
        })
        .collect()
}
