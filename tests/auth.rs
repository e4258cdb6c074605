//! Registry access as real users have it: the real docker-registry with htpasswd and TLS (a CA
//! made by openssl here), credentials from the files and helpers docker and podman use,
//! certs.d folders and mutual TLS, ferry login/logout, and no secret ever printed or stored.

mod common;

use std::process::Command;

use base64::Engine as _;
use common::*;

const USER: &str = "ferry-user";
const PASS: &str = "pa55-Word-xyzzy";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A TLS registry with htpasswd auth, holding sample/hello and sample/world.
struct AuthRegistry {
    reg: Registry,
    tls: Tls,
    _dir: tempfile::TempDir,
}

impl AuthRegistry {
    fn start(mutual: bool) -> AuthRegistry {
        let tls = Tls::new();
        let dir = tempfile::tempdir().unwrap();
        let hp = htpasswd(dir.path(), USER, PASS);
        let (cert, key, ca) = (
            tls.path("server.crt"),
            tls.path("server.key"),
            tls.path("ca.crt"),
        );
        let mut opts = vec!["--htpasswd", hp.to_str().unwrap(), "--tls", &cert, &key];
        if mutual {
            opts.extend(["--client-ca", &ca]);
        }
        let reg = Registry::start_with(&opts);
        // skopeo's certs.d-style folder: ca.crt, and client.cert/key for mutual TLS.
        let skopeo_certs = dir.path().join("skopeo-certs");
        std::fs::create_dir_all(&skopeo_certs).unwrap();
        std::fs::copy(tls.path("ca.crt"), skopeo_certs.join("ca.crt")).unwrap();
        std::fs::copy(tls.path("client.crt"), skopeo_certs.join("client.cert")).unwrap();
        std::fs::copy(tls.path("client.key"), skopeo_certs.join("client.key")).unwrap();
        for tag in ["sample/hello:1.0", "sample/world:1.0"] {
            skopeo_push(
                &reg.addr,
                tag,
                Some(&format!("{USER}:{PASS}")),
                Some(&skopeo_certs),
            );
        }
        AuthRegistry {
            reg,
            tls,
            _dir: dir,
        }
    }

    fn image(&self, tag: &str) -> String {
        self.reg.image(tag)
    }
}

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
    let ca = ar.tls.path("ca.crt");
    let hello = ar.image("sample/hello:1.0");
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
        let (code, _, stderr) = ferry_env(
            &[
                "bundle",
                "-o",
                b.to_str().unwrap(),
                "--ca-file",
                &ca,
                &hello,
            ],
            &env,
        );
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
    let (code, _, stderr) = ferry_env(
        &[
            "bundle",
            "-o",
            dir.path().join("c").to_str().unwrap(),
            "--ca-file",
            &ca,
            &hello,
        ],
        &env,
    );
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
    let ca = ar.tls.path("ca.crt");
    let hello = ar.image("sample/hello:1.0");
    let auth = format!(
        r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
        ar.reg.addr,
        b64(&format!("{USER}:{PASS}"))
    );
    let auth_json = dir.path().join("auth.json");
    std::fs::write(&auth_json, &auth).unwrap();
    let (code, _, stderr) = ferry_env(
        &[
            "bundle",
            "-o",
            dir.path().join("a").to_str().unwrap(),
            "--ca-file",
            &ca,
            &hello,
        ],
        &[("REGISTRY_AUTH_FILE", auth_json.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{stderr}");

    // `kubectl get secret regcred -o yaml`, given as --authfile.
    let secret = dir.path().join("regcred.yaml");
    std::fs::write(
        &secret,
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n", b64(&auth)),
    )
    .unwrap();
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        dir.path().join("s").to_str().unwrap(),
        "--ca-file",
        &ca,
        "--authfile",
        secret.to_str().unwrap(),
        &hello,
    ]);
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
fn login_and_logout_like_docker() {
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    let ca = ar.tls.path("ca.crt");
    // As podman: with XDG_RUNTIME_DIR set, login writes (and bundle first reads)
    // $XDG_RUNTIME_DIR/containers/auth.json.
    let run_dir = dir.path().join("run");
    let cfg = run_dir.join("containers");
    let env = [("XDG_RUNTIME_DIR", run_dir.to_str().unwrap())];
    let auth_json = cfg.join("auth.json");
    let login = |password: &str, extra: &[(&str, &str)]| {
        let mut c = ferry();
        c.args([
            "login",
            &ar.reg.addr,
            "-u",
            USER,
            "--password-stdin",
            "--ca-file",
            &ca,
        ]);
        for (k, v) in env.iter().chain(extra) {
            c.env(k, v);
        }
        let mut child = c
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = login("wrong", &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("rejected the user name or password"),
        "{stderr}"
    );
    assert!(!auth_json.exists(), "nothing stored for a failed login");

    let (code, stderr) = login(PASS, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("Login Succeeded"), "{stderr}");
    let text = std::fs::read_to_string(&auth_json).unwrap();
    assert!(text.contains(&b64(&format!("{USER}:{PASS}"))), "{text}");
    let b = dir.path().join("b");
    let (code, _, stderr) = ferry_env(
        &[
            "bundle",
            "-o",
            b.to_str().unwrap(),
            "--ca-file",
            &ca,
            &ar.image("sample/hello:1.0"),
        ],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");

    let (code, _, stderr) = ferry_env(&["logout", &ar.reg.addr], &env);
    assert_eq!(code, 0);
    assert!(stderr.contains("Removed login credentials"), "{stderr}");
    assert!(
        !std::fs::read_to_string(&auth_json)
            .unwrap()
            .contains(&ar.reg.addr)
    );

    // With a credential store configured, login goes through the helper.
    std::fs::write(&auth_json, r#"{"credsStore":"ferrytest"}"#).unwrap();
    let helper = credential_helper(dir.path(), "ferrytest", "none", "x", "y", None);
    let path = path_with(&helper);
    let (code, stderr) = login(PASS, &[("PATH", &path)]);
    assert_eq!(code, 0, "{stderr}");
    let log = std::fs::read_to_string(dir.path().join("ferrytest.log")).unwrap();
    assert!(
        log.starts_with("store ") && log.contains(&format!(r#""Secret":"{PASS}""#)),
        "{log}"
    );
    assert!(
        !std::fs::read_to_string(&auth_json).unwrap().contains(PASS),
        "not in the file"
    );
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

/// `ferry login` with the password on stdin (or none when `password` is `None`: stdin closed).
fn login_with(
    ar: &AuthRegistry,
    password: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String) {
    let mut c = ferry();
    c.args(["login", &ar.reg.addr, "--ca-file", &ar.tls.path("ca.crt")])
        .args(args);
    if password.is_some() {
        c.args(["-u", USER, "--password-stdin"]);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(p) = password {
        use std::io::Write;
        writeln!(stdin, "{p}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn login_writes_where_bundle_reads_first_and_creates_the_authfile() {
    use std::os::unix::fs::PermissionsExt;
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    let ca = ar.tls.path("ca.crt");
    let hello = ar.image("sample/hello:1.0");
    let b = dir.path().join("b");
    let bundle = |env: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec!["bundle", "-o", b.to_str().unwrap(), "--ca-file", &ca];
        args.extend(extra);
        args.push(&hello);
        ferry_env(&args, env)
    };

    // Stale credentials in docker's config.json: login must write where they are shadowed.
    let stale = docker_config(
        dir.path(),
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            ar.reg.addr,
            b64(&format!("{USER}:old-password"))
        ),
    );
    let raf = dir.path().join("registry-auth.json");
    let env = [
        ("DOCKER_CONFIG", stale.to_str().unwrap()),
        ("REGISTRY_AUTH_FILE", raf.to_str().unwrap()),
    ];
    let (code, stderr) = login_with(&ar, Some(PASS), &[], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("stored in {}", raf.display())),
        "{stderr}"
    );
    let (code, _, stderr) = bundle(&env, &[]);
    assert_eq!(code, 0, "bundle reads what login wrote first: {stderr}");
    // logout edits the same file, and names the one it left alone.
    let (code, _, stderr) = ferry_env(&["logout", &ar.reg.addr], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("from {}", raf.display()))
            && stderr.contains(&format!(
                "{} still holds credentials",
                stale.join("config.json").display()
            )),
        "{stderr}"
    );

    // --authfile in a folder that does not exist: both are made, private.
    let authfile = dir.path().join("new/sub/auth.json");
    let a = authfile.to_str().unwrap();
    let (code, stderr) = login_with(&ar, Some(PASS), &["--authfile", a], &[]);
    assert_eq!(code, 0, "{stderr}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&authfile), 0o600);
    assert_eq!(mode(authfile.parent().unwrap()), 0o700);
    let (code, _, stderr) = bundle(&[], &["--authfile", a]);
    assert_eq!(code, 0, "{stderr}");

    // No password and no terminal: a usage error, nothing written.
    let nowhere = dir.path().join("none/auth.json");
    let n = nowhere.to_str().unwrap();
    for args in [vec!["-u", USER, "--authfile", n], vec!["--authfile", n]] {
        let (code, stderr) = login_with(&ar, None, &args, &[]);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("no terminal") || stderr.contains("no user name"),
            "{stderr}"
        );
        assert!(!nowhere.exists() && !nowhere.parent().unwrap().exists());
    }
}

#[test]
fn a_401_names_the_credentials_used_and_creds_override_files() {
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    let ca = ar.tls.path("ca.crt");
    let hello = ar.image("sample/hello:1.0");
    let b = dir.path().join("b");
    let bundle = |env: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec!["bundle", "-o", b.to_str().unwrap(), "--ca-file", &ca];
        args.extend(extra);
        args.push(&hello);
        ferry_env(&args, env)
    };

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

#[test]
fn login_on_a_terminal_asks_without_echo() {
    require("script", "util-linux");
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    let typescript = dir.path().join("typescript");
    let authfile = dir.path().join("auth.json");
    // `script` gives ferry a pseudo-terminal; each answer is typed once its prompt is shown
    // (input typed earlier would be flushed when echo is turned off, as on a real terminal).
    let driver = r#"
        wait_for() { i=0; until grep -q "$1" "$TS" 2>/dev/null; do
            i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.1; done; }
        { wait_for Username:; printf '%s\n' "$LOGIN_USER"; wait_for Password:; printf '%s\n' "$LOGIN_PASS"; } |
            script -qfec '"$FERRY" login "$REG" --authfile "$AF" --ca-file "$CA"' "$TS"
    "#;
    let out = Command::new("sh")
        .arg("-c")
        .arg(driver)
        .env("TS", &typescript)
        .env("LOGIN_USER", USER)
        .env("LOGIN_PASS", PASS)
        .env("FERRY", env!("CARGO_BIN_EXE_ferry"))
        .env("REG", &ar.reg.addr)
        .env("AF", &authfile)
        .env("CA", ar.tls.path("ca.crt"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let screen = std::fs::read_to_string(&typescript).unwrap_or_default();
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("Username:") && screen.contains("Password:"),
        "{screen}"
    );
    assert!(screen.contains("Login Succeeded"), "{screen}");
    assert!(screen.contains(USER), "the user name is echoed: {screen}");
    assert!(!screen.contains(PASS), "the password was echoed: {screen}");
    let stored = std::fs::read_to_string(&authfile).unwrap();
    assert!(stored.contains(&b64(&format!("{USER}:{PASS}"))), "{stored}");
}
