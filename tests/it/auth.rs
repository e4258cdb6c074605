//! Registry access as real users have it: the real docker-registry with htpasswd and TLS (a CA
//! made by openssl here), credentials from the files and helpers docker and podman use,
//! certs.d folders and mutual TLS, ferry login/logout, and no secret ever printed or stored.

use crate::common;

use std::process::Command;

use common::auth::*;
use common::*;

#[test]
fn config_json_with_ca_file_and_the_errors_without() {
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let bundle = b.to_str().unwrap();
    let ca = ar.tls.path("ca.crt");
    let hello = ar.image("sample/hello:1.0");

    // No --ca-file: the certificate is not trusted, and the hint says what to do.
    let (code, _, stderr) = ferry_out(&["bundle", "-o", bundle, &hello]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("not trusted: pass --ca-file") && stderr.contains("certs.d"),
        "{stderr}"
    );

    // Trusted, but no credentials: authentication required, with the login hint.
    let (code, _, stderr) = ferry_out(&["bundle", "-o", bundle, "--ca-file", &ca, &hello]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{} requires authentication", ar.reg.addr)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "hint: authentication required for {} (repository sample/hello): `ferry login {}`",
            ar.reg.addr, ar.reg.addr
        )),
        "{stderr}"
    );

    // config.json with a base64 auth entry.
    let cfg = docker_config(
        dir.path(),
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            ar.reg.addr,
            b64(&format!("{USER}:{PASS}"))
        ),
    );
    let env = [("DOCKER_CONFIG", cfg.to_str().unwrap())];
    let (code, _, stderr) = ferry_env(&["bundle", "-o", bundle, "--ca-file", &ca, &hello], &env);
    assert_eq!(code, 0, "{stderr}");

    // A later run without credentials fails and leaves the bundle as it was.
    let before = std::fs::read(b.join("index.json")).unwrap();
    let (code, _, _) = ferry_out(&[
        "bundle",
        "-o",
        bundle,
        "--ca-file",
        &ca,
        &ar.image("sample/world:1.0"),
    ]);
    assert_eq!(code, 1);
    assert_eq!(std::fs::read(b.join("index.json")).unwrap(), before);
    assert_eq!(ferry_out(&["verify", bundle]).0, 0);
}

#[test]
fn credential_helpers_and_their_failures() {
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    let helper_bin = credential_helper(dir.path(), "ferrytest", &ar.reg.addr, USER, PASS, None);
    let path = path_with(&helper_bin);
    for config in [
        r#"{"credsStore":"ferrytest"}"#.to_owned(),
        format!(r#"{{"credHelpers":{{"{}":"ferrytest"}}}}"#, ar.reg.addr),
    ] {
        let cfg = docker_config(dir.path(), &config);
        let b = dir.path().join("b");
        let env = [
            ("DOCKER_CONFIG", cfg.to_str().unwrap()),
            ("PATH", path.as_str()),
        ];
        let (code, _, stderr) = ar.bundle_hello(&b, &env, &[]);
        assert_eq!(code, 0, "{config}: {stderr}");
    }
    // A helper that fails: its name and its stderr, no retries.
    let broken = credential_helper(
        dir.path(),
        "broken",
        &ar.reg.addr,
        USER,
        PASS,
        Some("the keychain is locked"),
    );
    let cfg = docker_config(dir.path(), r#"{"credsStore":"broken"}"#);
    let path = path_with(&broken);
    let env = [
        ("DOCKER_CONFIG", cfg.to_str().unwrap()),
        ("PATH", path.as_str()),
    ];
    let (code, _, stderr) = ar.bundle_hello(&dir.path().join("c"), &env, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("docker-credential-broken") && stderr.contains("the keychain is locked"),
        "{stderr}"
    );
    assert!(!stderr.contains("retry"), "{stderr}");
}

#[test]
fn podman_auth_json_and_a_kubernetes_secret() {
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    let hello = ar.image("sample/hello:1.0");
    let auth = format!(
        r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
        ar.reg.addr,
        b64(&format!("{USER}:{PASS}"))
    );
    let auth_json = dir.path().join("auth.json");
    std::fs::write(&auth_json, &auth).unwrap();
    let (code, _, stderr) = ar.bundle_hello(
        &dir.path().join("a"),
        &[("REGISTRY_AUTH_FILE", auth_json.to_str().unwrap())],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");

    // `kubectl get secret regcred -o yaml`, given as --authfile.
    let secret = dir.path().join("regcred.yaml");
    std::fs::write(
        &secret,
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n", b64(&auth)),
    )
    .unwrap();
    let authfile = ["--authfile", secret.to_str().unwrap()];
    let (code, _, stderr) = ar.bundle_hello(&dir.path().join("s"), &[], &authfile);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        dir.path().join("m").to_str().unwrap(),
        "--authfile",
        "/nonexistent/auth.json",
        &hello,
    ]);
    assert_eq!(
        code, 2,
        "a missing --authfile is local configuration: {stderr}"
    );
    assert!(
        !dir.path().join("m").exists(),
        "no output folder left behind"
    );
    assert!(
        stderr.contains("--authfile /nonexistent/auth.json: no such file"),
        "{stderr}"
    );
}

#[test]
fn certs_d_folders_and_mutual_tls() {
    let ar = AuthRegistry::start(true);
    let dir = tempfile::tempdir().unwrap();
    let hello = ar.image("sample/hello:1.0");
    let cfg = docker_config(
        dir.path(),
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            ar.reg.addr,
            b64(&format!("{USER}:{PASS}"))
        ),
    );
    let env = [("DOCKER_CONFIG", cfg.to_str().unwrap())];
    let certs = dir.path().join("certs.d");
    let host_dir = certs.join(&ar.reg.addr);
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(ar.tls.path("ca.crt"), host_dir.join("ca.crt")).unwrap();

    // The CA from certs.d, but no client certificate: the registry refuses the handshake.
    let (code, _, stderr) = ferry_env(
        &[
            "bundle",
            "--retries",
            "0",
            "-o",
            dir.path().join("a").to_str().unwrap(),
            "--cert-dir",
            certs.to_str().unwrap(),
            &hello,
        ],
        &env,
    );
    assert_eq!(code, 1, "{stderr}");
    // The TLS failure is the reason given (the alert, or the connection the server closed,
    // depending on when the client reads), not the plain-HTTP probe's 400 from the same port.
    assert!(stderr.contains("(https://"), "{stderr}");
    assert!(
        !stderr.contains("HTTP request to an HTTPS server"),
        "{stderr}"
    );

    std::fs::copy(ar.tls.path("client.crt"), host_dir.join("client.cert")).unwrap();
    std::fs::copy(ar.tls.path("client.key"), host_dir.join("client.key")).unwrap();
    let (code, _, stderr) = ferry_env(
        &[
            "bundle",
            "-o",
            dir.path().join("b").to_str().unwrap(),
            "--cert-dir",
            certs.to_str().unwrap(),
            &hello,
        ],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn no_secret_is_printed_or_stored() {
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    let ca = ar.tls.path("ca.crt");
    let basic = b64(&format!("{USER}:{PASS}"));
    let cfg = docker_config(
        dir.path(),
        &format!(r#"{{"auths":{{"{}":{{"auth":"{basic}"}}}}}}"#, ar.reg.addr),
    );
    let b = dir.path().join("b");
    let env = [("DOCKER_CONFIG", cfg.to_str().unwrap())];
    let mut all = String::new();
    for args in [
        vec![
            "bundle",
            "--json",
            "-o",
            b.to_str().unwrap(),
            "--ca-file",
            &ca,
            &ar.image("sample/hello:1.0"),
        ],
        vec![
            "bundle",
            "--json",
            "-o",
            b.to_str().unwrap(),
            "--ca-file",
            &ca,
            &ar.image("sample/nope:1.0"),
        ],
        vec!["ls", "--json", b.to_str().unwrap()],
        vec!["verify", "--json", b.to_str().unwrap()],
    ] {
        let (_, stdout, stderr) = ferry_env(&args, &env);
        all.push_str(&stdout);
        all.push_str(&stderr);
    }
    assert!(
        all.contains("sample/nope"),
        "the failing run was reported: {all}"
    );
    let out = run(Command::new("sh")
        .arg("-c")
        .arg(format!("find {} -type f -exec cat {{}} +", b.display())));
    let stored = String::from_utf8_lossy(&out.stdout).into_owned();
    for secret in [PASS, &basic] {
        assert!(!all.contains(secret), "{secret} printed");
        assert!(!stored.contains(secret), "{secret} stored in the bundle");
    }
}

#[test]
fn a_401_names_the_credentials_used_and_creds_override_files() {
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    let ca = ar.tls.path("ca.crt");
    let hello = ar.image("sample/hello:1.0");
    let b = dir.path().join("b");
    let bundle = |env: &[(&str, &str)], extra: &[&str]| ar.bundle_hello(&b, env, extra);

    // No credentials anywhere: the hint says where ferry looked.
    let run_dir = dir.path().join("run");
    let env = [("XDG_RUNTIME_DIR", run_dir.to_str().unwrap())];
    let (code, _, stderr) = bundle(&env, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("ferry found no credential file (looked for ")
            && stderr.contains(&run_dir.join("containers/auth.json").display().to_string()),
        "{stderr}"
    );

    // Wrong credentials in a file: the hint names that file and its entry.
    let wrong = "wrong-Secret-42";
    let cfg = docker_config(
        dir.path(),
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            ar.reg.addr,
            b64(&format!("{USER}:{wrong}"))
        ),
    );
    let file = cfg.join("config.json");
    let env = [("DOCKER_CONFIG", cfg.to_str().unwrap())];
    let (code, _, stderr) = bundle(&env, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "ferry sent the credentials from {} (entry {})",
            file.display(),
            ar.reg.addr
        )),
        "{stderr}"
    );

    // --creds overrides the file, for bundle and lock.
    let good = format!("{USER}:{PASS}");
    let (code, _, stderr) = bundle(&env, &["--creds", &good]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) =
        ferry_env(&["lock", "--ca-file", &ca, "--creds", &good, &hello], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("sha256:"), "{stdout}");

    // push takes --creds too; without any credentials its hint says where ferry looked.
    let target = format!("{}/copy", ar.reg.addr);
    let push = |extra: &[&str]| {
        let mut args = vec!["push", b.to_str().unwrap(), &target, "--ca-file", &ca];
        args.extend(extra);
        ferry_env(&args, &[("XDG_RUNTIME_DIR", run_dir.to_str().unwrap())])
    };
    let (code, _, stderr) = push(&[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("ferry found no credential file"),
        "{stderr}"
    );
    let (code, _, stderr) = push(&["--creds", &good]);
    assert_eq!(code, 0, "{stderr}");

    // Wrong --creds: named in the hint, the password never printed.
    let bad = format!("{USER}:{wrong}");
    let (code, stdout, stderr) = bundle(&[], &["--creds", &bad]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("credentials given with --creds (user {USER})")),
        "{stderr}"
    );
    assert!(
        !stderr.contains(wrong) && !stdout.contains(wrong),
        "{stderr}"
    );

    // --creds USER without a terminal to ask on: a usage error before any request.
    let (code, _, stderr) = bundle(&[], &["--creds", USER]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no terminal"), "{stderr}");
    let (code, _, stderr) = bundle(&[], &["--creds", ":x"]);
    assert_eq!(code, 2, "{stderr}");
}
