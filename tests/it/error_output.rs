//! What a failure looks like, as insta snapshots: exit code, stdout and stderr together, for
//! the main kinds of failure (usage, a bad reference, an image or registry that is not there,
//! a refused certificate or login, a folder that is not a bundle, a damaged blob, and --json).
//! Filters replace what differs run to run (ports, temporary folders, times).
//! `INSTA_UPDATE=always cargo test --test it error_output` rewrites them after a deliberate
//! change; read the diff.

use crate::common;

use std::path::Path;

use common::snapshots::{regex_escape, settings};
use common::*;

/// `exit: N`, then stdout and stderr, as one text to snapshot.
fn outcome(args: &[&str], env: &[(&str, &str)]) -> String {
    let (code, stdout, stderr) = ferry_env(args, env);
    format!("exit: {code}\n--- stdout\n{stdout}--- stderr\n{stderr}")
}

/// The settings of [`settings`] plus times and the folders given.
fn filters(reg: Option<&Registry>, paths: &[(&Path, &str)]) -> insta::Settings {
    let mut s = settings(reg, paths);
    s.add_filter(&regex_escape(&run_dir().display().to_string()), "[RUN]");
    s.add_filter(r"\b\d+(\.\d+)? s\b", "[T] s");
    s.add_filter(r"\b\d+ ms\b", "[T] ms");
    s
}

#[test]
fn usage_and_reference_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let b = b.to_str().unwrap();
    filters(None, &[(dir.path(), "[DIR]")]).bind(|| {
        insta::assert_snapshot!("unknown_flag", outcome(&["bundle", "--frobnicate"], &[]));
        insta::assert_snapshot!(
            "bad_reference",
            outcome(
                &["bundle", "-o", b, "Not Valid:1", "quay.io/a/b@sha256:zz"],
                &[]
            )
        );
        insta::assert_snapshot!(
            "bad_reference_json",
            outcome(&["bundle", "--json", "-o", b, "Not Valid:1"], &[])
        );
        insta::assert_snapshot!(
            "zero_jobs",
            outcome(&["bundle", "-o", b, "--jobs", "0", "a:1"], &[])
        );
    });
}

#[test]
fn images_and_registries_that_are_not_there() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let b = b.to_str().unwrap();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut s = filters(Some(&reg), &[(dir.path(), "[DIR]")]);
    s.add_filter(&regex_escape(&dead), "127.0.0.1:DEADP");
    s.bind(|| {
        // One image a run: two failing at once may print in either order.
        insta::assert_snapshot!(
            "missing_tag",
            outcome(&["bundle", "-o", b, &reg.image("sample/hello:nope")], &[])
        );
        insta::assert_snapshot!(
            "missing_repository",
            outcome(&["bundle", "-o", b, &reg.image("sample/nope:1.0")], &[])
        );
        insta::assert_snapshot!(
            "unreachable_registry",
            outcome(
                &[
                    "bundle",
                    "--retries",
                    "0",
                    "-o",
                    b,
                    &format!("{dead}/app:1")
                ],
                &[]
            )
        );
        insta::assert_snapshot!(
            "unreachable_registry_json",
            outcome(
                &[
                    "bundle",
                    "--json",
                    "--retries",
                    "0",
                    "-o",
                    b,
                    &format!("{dead}/app:1")
                ],
                &[]
            )
        );
    });
}

#[test]
fn a_refused_certificate_and_a_refused_login() {
    let tls = Tls::new();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let b = b.to_str().unwrap();
    let untrusted =
        Registry::seeded_with(&["--tls", &tls.path("server.crt"), &tls.path("server.key")]);
    let hp = htpasswd(dir.path(), "someone", "secret");
    let locked = Registry::seeded_with(&["--htpasswd", hp.to_str().unwrap()]);
    let mut s = filters(Some(&untrusted), &[(dir.path(), "[DIR]")]);
    s.add_filter(&regex_escape(&locked.addr), "127.0.0.1:LOCKD");
    s.bind(|| {
        insta::assert_snapshot!(
            "untrusted_certificate",
            outcome(
                &[
                    "bundle",
                    "--retries",
                    "0",
                    "-o",
                    b,
                    &untrusted.image("sample/hello:1.0")
                ],
                &[]
            )
        );
        // A refused certificate is the registry's, not the image's: said once, then counted.
        insta::assert_snapshot!(
            "untrusted_certificate_for_two_images",
            outcome(
                &[
                    "bundle",
                    "--retries",
                    "0",
                    "--jobs",
                    "1",
                    "-o",
                    b,
                    &untrusted.image("sample/hello:1.0"),
                    &untrusted.image("sample/world:1.0"),
                ],
                &[]
            )
        );
        insta::assert_snapshot!(
            "login_required",
            outcome(&["bundle", "-o", b, &locked.image("sample/hello:1.0")], &[])
        );
        // A login missing for a whole registry is said once, then the other images counted
        // (one image at a time, so that the live lines come in one order).
        insta::assert_snapshot!(
            "login_required_for_three_images",
            outcome(
                &[
                    "bundle",
                    "--jobs",
                    "1",
                    "-o",
                    b,
                    &locked.image("sample/hello:1.0"),
                    &locked.image("sample/world:1.0"),
                    &locked.image("sample/zstd:1.0"),
                ],
                &[]
            )
        );
    });
    // A credential helper that fails: the helper's words, no URL (none was asked), the
    // helper's failure as the cause.
    let broken = credential_helper(
        dir.path(),
        "broken",
        &locked.addr,
        "someone",
        "secret",
        Some("the keychain is locked"),
    );
    let cfg = docker_config(dir.path(), r#"{"credsStore":"broken"}"#);
    let path = path_with(&broken);
    let env = [
        ("DOCKER_CONFIG", cfg.to_str().unwrap()),
        ("PATH", path.as_str()),
    ];
    let mut s = filters(Some(&locked), &[(dir.path(), "[DIR]")]);
    s.add_filter(&regex_escape(&locked.addr), "127.0.0.1:LOCKD");
    s.bind(|| {
        let args = ["bundle", "-o", b, &locked.image("sample/hello:1.0")];
        insta::assert_snapshot!("credential_helper_fails", outcome(&args, &env));
        let json = [
            "bundle",
            "--json",
            "-o",
            b,
            &locked.image("sample/hello:1.0"),
        ];
        insta::assert_snapshot!("credential_helper_fails_json", outcome(&json, &env));
    });
}

#[test]
fn not_a_bundle_and_a_damaged_blob() {
    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("photos");
    std::fs::create_dir(&stranger).unwrap();
    std::fs::write(stranger.join("cat.jpg"), "meow").unwrap();
    let reg = Registry::seeded();
    let damaged = bundle_tags(&reg, dir.path(), &["sample/hello:1.0"], &[]);
    let index = index_json(&damaged);
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_path(&damaged, manifest)).unwrap()).unwrap();
    let layer = blob_path(&damaged, m["layers"][0]["digest"].as_str().unwrap());
    let mut bytes = std::fs::read(&layer).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();
    let (s, d) = (stranger.to_str().unwrap(), damaged.to_str().unwrap());
    filters(Some(&reg), &[(dir.path(), "[DIR]")]).bind(|| {
        insta::assert_snapshot!("not_a_bundle", outcome(&["verify", s], &[]));
        insta::assert_snapshot!("not_a_bundle_json", outcome(&["verify", "--json", s], &[]));
        insta::assert_snapshot!("damaged_blob", outcome(&["verify", d], &[]));
        insta::assert_snapshot!(
            "export_of_a_damaged_bundle",
            outcome(&["export", d, "--oci-archive", &format!("{d}.tar")], &[])
        );
    });
}
