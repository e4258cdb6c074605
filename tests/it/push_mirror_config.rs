//! `ferry push --mirror-config`: the node files, with the target's CA where the nodes will
//! hold it, pulled through by a private containerd and by skopeo with the source stopped.

use crate::common;
use crate::push::{PASS, Target, USER, bundles, push};

use std::process::Command;

use common::*;

#[test]
fn nodes_pull_the_original_names_through_the_mirror_config() {
    let b = bundles();
    let t = Target::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node");
    let dest = format!("{}/mirror", t.reg.addr);
    let hello = format!("{}/sample/hello:1.0", b.source);
    // The files are for the nodes: by default the CA is where copying certs.d into
    // /etc/containerd puts it, never this machine's path, and the CA travels with them.
    let first = dir.path().join("default");
    let (code, _, stderr) = push(
        &t,
        &b.full,
        &dest,
        &["--ref", &hello, "--mirror-config", first.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}");
    let text =
        std::fs::read_to_string(first.join("certs.d").join(&b.source).join("hosts.toml")).unwrap();
    let on_node = format!("/etc/containerd/certs.d/{}/ca.crt", t.reg.addr);
    assert!(
        text.contains(&format!("ca = \"{on_node}\"")) && !text.contains(&t.ca()),
        "{text}"
    );
    let copied = first.join("certs.d").join(&t.reg.addr).join("ca.crt");
    assert_eq!(
        std::fs::read(&copied).unwrap(),
        std::fs::read(t.ca()).unwrap()
    );
    assert!(stderr.contains("nodes need pull credentials"), "{stderr}");

    // --node-ca-path names where the nodes hold it: here, where ctr will look.
    let node_ca = cfg.join("certs.d").join(&t.reg.addr).join("ca.crt");
    let (code, _, stderr) = push(
        &t,
        &b.full,
        &dest,
        &[
            "--ref",
            &hello,
            "--mirror-config",
            cfg.to_str().unwrap(),
            "--node-ca-path",
            node_ca.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let hosts = cfg.join("certs.d").join(&b.source).join("hosts.toml");
    let text = std::fs::read_to_string(&hosts).unwrap();
    assert!(
        text.contains("override_path = true") && text.contains(node_ca.to_str().unwrap()),
        "{text}"
    );

    // containerd, the source registry stopped: the original name comes from the target.
    let node = Containerd::start();
    let out = Command::new("ctr")
        .args([
            "-a",
            &node.socket,
            "-n",
            "k8s.io",
            "images",
            "pull",
            "--hosts-dir",
        ])
        .arg(cfg.join("certs.d"))
        .args(["--user", &format!("{USER}:{PASS}"), &hello])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = index_entry(&b.full, &hello).unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = String::from_utf8(node.ctr(&["images", "ls"]).stdout).unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&hello) && l.contains(&digest)),
        "{listed}"
    );

    // skopeo with the registries.conf drop-in (the CRI-O and podman path).
    let out = Command::new("skopeo")
        .arg("--registries-conf")
        .arg(cfg.join("registries.conf.d/ferry.conf"))
        // Credentials by host from an auth file: --creds would go to the source only.
        .args(["inspect", "--raw", "--authfile", &t.authfile()])
        .arg("--cert-dir")
        .arg(t.dir.path().join("certs"))
        .arg(format!("docker://{hello}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha256(&out.stdout), digest);
}
