//! `--json` and the exit code agree everywhere: every command that has `--json`, run to
//! success and to failure (exit 1 and exit 2), prints exactly one JSON object on stdout whose
//! `ok` is true exactly when the exit code is 0, with an `error` object when it is not. (Before,
//! `verify --key --json` said `"ok": true` while its signature checks failed with exit 1, and
//! failed commands printed no JSON at all.) Real registry, containerd and a fake Kubernetes API.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Runs ferry and checks the JSON contract; returns the exit code and the document.
fn check(args: &[&str], env: &[(&str, &str)], want: i32) -> serde_json::Value {
    let (code, stdout, stderr) = ferry_env(args, env);
    assert_eq!(code, want, "{args:?}: exit {code}\n{stdout}\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{args:?}: stdout is not exactly one JSON value ({e}):\n{stdout}\n{stderr}")
    });
    assert!(doc.is_object(), "{args:?}: not an object: {stdout}");
    assert_eq!(doc["version"], 1, "{args:?}: {stdout}");
    assert_eq!(
        doc["ok"],
        serde_json::Value::Bool(code == 0),
        "{args:?}: ok disagrees with exit {code}: {stdout}\n{stderr}"
    );
    if code != 0 {
        // Why: the run's error, an image's error, or verify's problems and verdicts.
        let kinds: Vec<&str> = std::iter::once(&doc)
            .chain(doc["images"].as_array().into_iter().flatten())
            .filter_map(|d| d["error"]["kind"].as_str())
            .collect();
        let failed_checks = doc["problems"].as_array().is_some_and(|p| !p.is_empty())
            || doc["signatures"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["verdict"] != "verified"));
        assert!(
            !kinds.is_empty() || failed_checks,
            "{args:?}: says nothing of why it failed: {stdout}"
        );
        if code == 2 {
            assert!(
                kinds.iter().all(|k| ["usage", "configuration"].contains(k)),
                "{args:?}: exit 2 is a usage or configuration error: {stdout}"
            );
        }
    }
    doc
}

fn copy(from: &Path, to: &Path) -> String {
    run(Command::new("cp").arg("-a").arg(from).arg(to));
    to.to_str().unwrap().to_owned()
}

#[test]
fn every_json_document_agrees_with_the_exit_code() {
    require("openssl", "openssl");
    let reg = Registry::seeded();
    let target = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let p = |name: &str| w.join(name).to_str().unwrap().to_owned();
    let hello = reg.image("sample/hello:1.0");
    let world = reg.image("sample/world:1.0");
    let b = bundle_tags(&reg, w, &["sample/hello:1.0"], &[]);
    let bs = b.to_str().unwrap();

    // bundle: ok, a failed image, a bad reference, a flag clap refuses.
    check(&["bundle", "--json", "-o", &p("b2"), &hello], &[], 0);
    let nope = reg.image("sample/nope:1");
    check(&["bundle", "--json", "-o", &p("b3"), &nope], &[], 1);
    check(
        &["bundle", "--json", "-o", &p("b4"), "Not A Reference"],
        &[],
        2,
    );
    check(&["bundle", "--json", "--no-such-flag"], &[], 2);
    let delta = p("delta");
    check(
        &[
            "bundle", "--json", "-o", &delta, "--since", bs, &hello, &world,
        ],
        &[],
        0,
    );

    // images
    check(&["images", "--json", "alpine:3.20"], &[], 0);
    check(&["images", "--json", "-f", "/nonexistent/list"], &[], 2);

    // ls, verify (a corrupt blob; a key nothing is signed with), diff, gc, rm, apply.
    check(&["ls", "--json", bs], &[], 0);
    check(&["ls", "--json", "/nonexistent/bundle"], &[], 2);
    check(&["verify", "--json", bs], &[], 0);
    let corrupt = copy(&b, &w.join("corrupt"));
    let layer = std::fs::read_dir(Path::new(&corrupt).join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();
    check(&["verify", "--json", &corrupt], &[], 1);
    run(Command::new("sh").current_dir(w).arg("-c").arg(
        "openssl ecparam -name prime256v1 -genkey -noout -out k.pem 2>/dev/null && \
         openssl ec -in k.pem -pubout -out k.pub 2>/dev/null",
    ));
    let signed = check(&["verify", "--json", "--key", &p("k.pub"), bs], &[], 1);
    assert_eq!(signed["signatures"][0]["verdict"], "unsigned", "{signed}");
    check(&["diff", "--json", bs, bs], &[], 0);
    check(&["diff", "--json", bs, "/nonexistent/bundle"], &[], 2);
    check(&["gc", "--json", &copy(&b, &w.join("gc"))], &[], 0);
    check(&["gc", "--json", "/nonexistent/bundle"], &[], 1);
    check(&["rm", "--json", &copy(&b, &w.join("rm")), &hello], &[], 0);
    check(&["rm", "--json", bs, "docker.io/library/nope:1"], &[], 2);
    check(
        &["apply", "--json", &delta, &copy(&b, &w.join("base"))],
        &[],
        0,
    );
    check(
        &["apply", "--json", bs, &copy(&b, &w.join("base2"))],
        &[],
        2,
    );

    // push: to a registry, and to a port nothing listens on.
    check(&["push", "--json", bs, &target.addr], &[], 0);
    check(
        &["push", "--json", "--retries", "0", bs, "127.0.0.1:9"],
        &[],
        1,
    );

    // restore into a real containerd, and from a folder that is no bundle.
    let node = Containerd::start();
    check(
        &["restore", "--json", "--address", &node.socket, bs],
        &[],
        0,
    );
    check(&["restore", "--json", "/nonexistent/bundle"], &[], 2);

    // snapshot: created; no snapshot API in the cluster.
    for (api, want) in [
        (FakeKubeApi::start(), 0),
        (FakeKubeApi::start_with("no-crd"), 1),
    ] {
        let kubeconfig = api.kubeconfig(w);
        check(
            &[
                "snapshot",
                "--json",
                "--pvc",
                "ferry-bundle",
                "--class",
                "csi-standard",
                "-n",
                "preload",
                "--name",
                "seed-1",
            ],
            &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
            want,
        );
    }

    // version
    check(&["version", "--json"], &[], 0);
    check(&["version", "--json", "--no-such-flag"], &[], 2);
}
