//! ferry login and logout as docker and podman users know them: where credentials are
//! written (where bundle reads first), the files created, the terminal prompt without echo, and no write through a planted link.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::auth::*;
use common::fake::{Fake, Reply};
use common::*;

#[test]
fn login_and_logout_like_docker() {
    let ar = AuthRegistry::start(false);
    let dir = tempfile::tempdir().unwrap();
    // As podman: with XDG_RUNTIME_DIR set, login writes (and bundle first reads)
    // $XDG_RUNTIME_DIR/containers/auth.json.
    let run_dir = dir.path().join("run");
    let cfg = run_dir.join("containers");
    let env = [("XDG_RUNTIME_DIR", run_dir.to_str().unwrap())];
    let auth_json = cfg.join("auth.json");
    let login = |password: &str, extra: &[(&str, &str)]| {
        let env: Vec<(&str, &str)> = env.iter().chain(extra).copied().collect();
        login_with(&ar, Some(password), &[], &env)
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
    let (code, _, stderr) = ar.bundle_hello(&dir.path().join("b"), &env, &[]);
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
    let b = dir.path().join("b");
    let bundle = |env: &[(&str, &str)], extra: &[&str]| ar.bundle_hello(&b, env, extra);

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

/// Runs `ferry login ADDR -u me --password-stdin --authfile CFG/config.json`; `meanwhile` runs
/// once ferry is talking to the registry and before it may write anything.
fn login_gated(
    fake: &Fake,
    gate: &Arc<AtomicBool>,
    cfg: &Path,
    meanwhile: impl FnOnce(u32),
) -> i32 {
    let mut child = ferry()
        .args([
            "login",
            &fake.addr,
            "-u",
            "me",
            "--password-stdin",
            "--authfile",
        ])
        .arg(cfg.join("config.json"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "s3cret").unwrap();
    let before = fake.seen("/v2/").len();
    wait_for(30, "ferry's request", || {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("ferry ended first ({status}): {err}");
        }
        fake.seen("/v2/").len() > before
    });
    meanwhile(child.id());
    gate.store(true, Ordering::SeqCst);
    let out = child.wait_with_output().unwrap();
    gate.store(false, Ordering::SeqCst);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out.status.code().unwrap()
}

#[test]
fn login_writes_through_no_planted_link() {
    let fake = Fake::start();
    // /v2/ answers only when the test says so: links are planted while ferry waits.
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    fake.route("/v2/", move |_, _| {
        while !g.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Reply::new(200, "{}")
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("docker");
    std::fs::create_dir(&cfg).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "victim").unwrap();

    // The temp file's name is random (a planted link there is never opened: see
    // src/store/atomic.rs a_taken_temp_name_is_never_opened_and_another_is_picked); a login
    // writes a regular file and leaves no temp file behind.
    let code = login_gated(&fake, &gate, &cfg, |_| {});
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim");
    let stored = cfg.join("config.json");
    assert!(std::fs::symlink_metadata(&stored).unwrap().is_file());
    let left: Vec<_> = std::fs::read_dir(&cfg)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["config.json"], "{left:?}");
    assert!(
        std::fs::read_to_string(&stored)
            .unwrap()
            .contains(&fake.addr)
    );

    // A link at the destination itself (to a file that reads as a config): refused, its
    // target untouched, the link left as it is.
    let config_elsewhere = dir.path().join("config-elsewhere.json");
    std::fs::write(&config_elsewhere, "{}").unwrap();
    std::fs::remove_file(&stored).unwrap();
    std::os::unix::fs::symlink(&config_elsewhere, &stored).unwrap();
    let code = login_gated(&fake, &gate, &cfg, |_| {});
    assert_eq!(code, 2, "local configuration");
    assert_eq!(std::fs::read_to_string(&config_elsewhere).unwrap(), "{}");
    assert!(stored.is_symlink());

    // A config folder ferry makes is private.
    let fresh = dir.path().join("new/docker");
    assert_eq!(login_gated(&fake, &gate, &fresh, |_| {}), 0);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn logout_from_docker_hub_takes_every_spelling_and_names_files_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let entry = format!(r#"{{"auth":"{}"}}"#, b64("me:pw"));
    // podman writes `docker.io`, docker `https://index.docker.io/v1/`, other tools the other
    // spellings: each is Docker Hub.
    let raf = dir.path().join("auth.json");
    std::fs::write(
        &raf,
        format!(
            r#"{{"auths":{{"docker.io":{entry},"index.docker.io":{entry},"quay.io":{entry}}}}}"#
        ),
    )
    .unwrap();
    let docker = docker_config(
        dir.path(),
        &format!(r#"{{"auths":{{"registry-1.docker.io":{entry}}}}}"#),
    );
    let env = [
        ("DOCKER_CONFIG", docker.to_str().unwrap()),
        ("REGISTRY_AUTH_FILE", raf.to_str().unwrap()),
    ];
    let (code, _, stderr) = ferry_env(&["logout", "docker.io"], &env);
    assert_eq!(code, 0, "{stderr}");
    let left: serde_json::Value = serde_json::from_slice(&std::fs::read(&raf).unwrap()).unwrap();
    let keys: Vec<&String> = left["auths"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["quay.io"], "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} still holds credentials",
            docker.join("config.json").display()
        )),
        "{stderr}"
    );
}
