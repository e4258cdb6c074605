//! No command follows a link out of the folder it works in, for reading, writing or removing:
//! a symlink planted at `.ferry`, `.ferry/partial`, `.ferry/tmp` or `blobs/sha256` of a bundle,
//! or at a registry's folder of a `serve --hosts-dir` folder, is refused with an error naming
//! it, and nothing behind it is read, written or removed. (Before, `gc` emptied the folder a
//! `.ferry` link named and called it "0 partial downloads".)
//! The bundles are copies of the sample layout (made by make_fixtures.py, not by ferry).

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A folder outside the bundle with files in every place a followed link would reach.
fn victim(dir: &Path, name: &str) -> PathBuf {
    let v = dir.join(name);
    for sub in ["", "partial", "tmp"] {
        std::fs::create_dir_all(v.join(sub)).unwrap();
        std::fs::write(v.join(sub).join("keep"), "precious").unwrap();
    }
    // A file named like a blob, for a link at blobs/sha256.
    std::fs::write(v.join("a".repeat(64)), "precious").unwrap();
    v
}

/// Every file under a folder with its content.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Replaces `bundle/rel` (created first when absent) with a link to `target`.
fn plant(bundle: &Path, rel: &str, target: &Path) -> PathBuf {
    let at = bundle.join(rel);
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&at);
    symlink(target, &at).unwrap();
    at
}

/// The command was refused (exit 1 or 2) naming the link; the victim is as it was.
fn assert_refused(what: &str, out: (i32, String, String), link: &Path, victim: &Path) {
    let (code, stdout, stderr) = out;
    assert!(
        code == 1 || code == 2,
        "{what}: exit {code}\n{stdout}{stderr}"
    );
    assert!(
        stderr.contains(&link.display().to_string()) && stderr.contains("symlink"),
        "{what}: names the link: {stderr}"
    );
    let before = {
        let d = tempfile::tempdir().unwrap();
        tree(&victim_copy(d.path()))
    };
    assert_eq!(
        tree(victim),
        before,
        "{what}: nothing behind the link changed"
    );
}

/// What [`victim`] makes, made again elsewhere to compare with.
fn victim_copy(dir: &Path) -> PathBuf {
    victim(dir, "fresh")
}

#[test]
fn gc_rm_bundle_and_apply_never_follow_a_link_out_of_the_bundle() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for (i, rel) in [
        ".ferry",
        ".ferry/partial",
        ".ferry/tmp",
        "blobs/sha256",
        "blobs",
    ]
    .into_iter()
    .enumerate()
    {
        let bundle = sample_bundle(w, &format!("b{i}"));
        let b = bundle.to_str().unwrap();
        let v = victim(w, &format!("victim{i}"));
        // blobs/sha256 and blobs: the link names a copy of the real blobs plus the victim's
        // files, so that the bundle still reads and only a followed removal could harm.
        let target = if rel.starts_with("blobs") {
            let src = if rel == "blobs" {
                bundle.join("blobs")
            } else {
                bundle.join("blobs/sha256")
            };
            run(Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", src.display()))
                .arg(&v));
            v.clone()
        } else {
            v.clone()
        };
        let before = tree(&v);
        let link = plant(&bundle, rel, &target);
        let (code, stdout, stderr) = ferry_out(&["gc", b]);
        assert!(code == 1, "gc with {rel}: exit {code}\n{stdout}{stderr}");
        assert!(
            stderr.contains(&link.display().to_string()) && stderr.contains("symlink"),
            "gc with {rel} names the link: {stderr}"
        );
        assert_eq!(
            tree(&v),
            before,
            "gc with {rel}: nothing behind the link changed"
        );
        let (code, _, stderr) = ferry_out(&["gc", "--dry-run", b]);
        assert_eq!(code, 1, "gc --dry-run with {rel}: {stderr}");
        // rm too, before it changes anything.
        let index = std::fs::read(bundle.join("index.json")).unwrap();
        let (code, _, stderr) = ferry_out(&["rm", b, "registry.example/sample/hello:1.0"]);
        assert_eq!(code, 1, "rm with {rel}: {stderr}");
        assert!(stderr.contains("symlink"), "{stderr}");
        assert_eq!(std::fs::read(bundle.join("index.json")).unwrap(), index);
        assert_eq!(
            tree(&v),
            before,
            "rm with {rel}: nothing behind the link changed"
        );
    }

    // bundle into a folder with a planted link: refused before any registry is asked.
    let bundle = sample_bundle(w, "for-bundle");
    let v = victim(w, "victim-bundle");
    let link = plant(&bundle, ".ferry/tmp", &v);
    let out = ferry_out(&[
        "bundle",
        "-o",
        bundle.to_str().unwrap(),
        "127.0.0.1:9/nothing/here:1",
    ]);
    assert_refused("bundle", out, &link, &v);

    // apply onto a base with a planted link: refused before anything is written.
    let delta = sample_bundle(w, "delta");
    std::fs::write(
        delta.join("ferry-delta.json"),
        format!(
            r#"{{"deltaVersion":1,"baseLock":"sha256:{}","baseBlobs":{{}}}}"#,
            "0".repeat(64)
        ),
    )
    .unwrap();
    let base = sample_bundle(w, "base");
    let v = victim(w, "victim-apply");
    let link = plant(&base, ".ferry", &v);
    let out = ferry_out(&["apply", delta.to_str().unwrap(), base.to_str().unwrap()]);
    assert_refused("apply", out, &link, &v);

    // verify --repair writes too.
    let bundle = sample_bundle(w, "for-repair");
    let v = victim(w, "victim-repair");
    let link = plant(&bundle, ".ferry/partial", &v);
    let out = ferry_out(&["verify", "--repair", bundle.to_str().unwrap()]);
    assert_refused("verify --repair", out, &link, &v);
}

/// Runs `ferry serve` with `--hosts-dir`; it must refuse to start. Returns (exit, stdout,
/// stderr); a server that starts anyway is stopped and the test fails (no hang).
fn serve_refused(bundle: &Path, hosts: &Path) -> (i32, String, String) {
    let mut child = ferry()
        .arg("serve")
        .arg(bundle)
        .args(["--addr", "127.0.0.1:0", "--hosts-dir"])
        .arg(hosts)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    let started = std::time::Instant::now();
    while status.is_none() && started.elapsed().as_secs() < 60 {
        status = child.try_wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(status.is_some(), "ferry serve started anyway: {stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn serve_never_writes_hosts_toml_through_a_linked_registry_folder() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bundle = sample_bundle(w, "b");
    let hosts = w.join("certs.d");
    std::fs::create_dir_all(&hosts).unwrap();
    let v = victim(w, "victim");
    let link = hosts.join("registry.example");
    symlink(&v, &link).unwrap();
    let out = serve_refused(&bundle, &hosts);
    assert_eq!(out.0, 2, "{}", out.2);
    assert_refused("serve --hosts-dir", out, &link, &v);
    assert!(!v.join("hosts.toml").exists());

    // A linked temp folder in a real registry folder: refused as well.
    std::fs::remove_file(&link).unwrap();
    std::fs::create_dir_all(&link).unwrap();
    let tmp = link.join(".ferry-tmp");
    symlink(&v, &tmp).unwrap();
    let out = serve_refused(&bundle, &hosts);
    assert_refused("serve --hosts-dir (temp folder)", out, &tmp, &v);
    assert!(!link.join("hosts.toml").exists());
}
