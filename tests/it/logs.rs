//! What ferry says on stderr when no terminal watches (CI, a Kubernetes Job, `2>log`): a line
//! per image as it resolves, completes or fails; and with `-v` / `RUST_LOG` the requests, token
//! scopes and retries, never a secret.

use crate::common;

use base64::Engine as _;
use common::fake::{Fake, Reply, TestImage, ranged};
use common::*;

/// Lines of `stderr` that start with `prefix` and name `reference` (`failed REF: why`).
fn lines_about<'a>(stderr: &'a str, prefix: &str, reference: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|l| {
            l.starts_with(prefix)
                && (l.contains(&format!(" {reference}: "))
                    || l.contains(&format!(" {reference} (")))
        })
        .collect()
}

#[test]
fn a_line_per_image_with_digest_and_size_without_a_terminal() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (hello, multi, absent) = (
        reg.image("sample/hello:1.0"),
        reg.image("sample/multi:1.0"),
        reg.image("sample/absent:1.0"),
    );
    // stderr is a pipe here: no bars, plain lines.
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        b.to_str().unwrap(),
        "--all-platforms",
        &hello,
        &multi,
        &absent,
    ]);
    assert_eq!(code, 1, "{stderr}");
    for image in [&hello, &multi] {
        let digest = index_entry(&b, image).expect("bundled")["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        let resolved = format!("resolved {image} {digest} (");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with(&resolved)).count(),
            1,
            "{stderr}"
        );
        let done: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("done {image} {digest} ")))
            .collect();
        assert_eq!(done.len(), 1, "{stderr}");
        // `done REF DIGEST 1.2 KiB in 0.1 s`: a size with its unit, and a time.
        let rest: Vec<&str> = done[0].split(' ').skip(3).collect();
        assert!(
            rest.len() == 5
                && rest[0].parse::<f64>().is_ok()
                && rest[1].ends_with('B')
                && rest[2] == "in"
                && rest[3].parse::<f64>().is_ok()
                && rest[4] == "s",
            "{}",
            done[0]
        );
    }
    // Its runnable platforms; the attestation manifest (unknown/unknown) is not one.
    let resolved_multi = format!("resolved {multi} ");
    let multi_line: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(&resolved_multi))
        .collect();
    assert!(
        multi_line.len() == 1
            && multi_line[0].ends_with("(2 platforms: linux/amd64, linux/arm64/v8)"),
        "{stderr}"
    );
    // The failed image: one line as it fails, one in the closing summary; never a done line.
    assert_eq!(lines_about(&stderr, "failed", &absent).len(), 1, "{stderr}");
    assert_eq!(lines_about(&stderr, "error:", &absent).len(), 1, "{stderr}");
    assert!(!stderr.contains(&format!("done {absent}")), "{stderr}");

    // --quiet keeps only the errors.
    let (code, _, stderr) =
        ferry_out(&["bundle", "-q", "-o", b.to_str().unwrap(), &hello, &absent]);
    assert_eq!(code, 1);
    assert!(
        !stderr.contains("resolved ") && !stderr.contains("done "),
        "{stderr}"
    );
    assert_eq!(lines_about(&stderr, "error:", &absent).len(), 1, "{stderr}");
}

#[test]
fn a_failing_image_is_reported_once_with_mirrors_configured() {
    let source = Registry::seeded();
    let (mirror_a, mirror_b) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let absent = source.image("sample/absent:1.0");
    let hello = source.image("sample/hello:1.0");
    // Two mirrors (a flag and a registries.conf), both without the image, then the source.
    let conf = dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{}\"\n[[registry.mirror]]\nlocation = \"{}\"\n",
            source.addr, mirror_b.addr
        ),
    )
    .unwrap();
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        b.to_str().unwrap(),
        "--mirror",
        &format!("{}={}", source.addr, mirror_a.addr),
        "--registries-conf",
        conf.to_str().unwrap(),
        &hello,
        &absent,
    ]);
    assert_eq!(code, 1, "{stderr}");
    let failed = lines_about(&stderr, "failed", &absent);
    assert_eq!(failed.len(), 1, "{stderr}");
    let error = lines_about(&stderr, "error:", &absent);
    assert_eq!(error.len(), 1, "{stderr}");
    // The mirrors tried are the detail of that one report.
    for mirror in [&mirror_a.addr, &mirror_b.addr] {
        assert!(
            error[0].contains(&format!("mirror {mirror}")),
            "{}",
            error[0]
        );
    }
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with(&format!("done {hello} ")))
            .count(),
        1,
        "{stderr}"
    );
}

const USER: &str = "ferry-user";
const PASS: &str = "pa55-Word-xyzzy";

/// A fake registry with Bearer token auth (user and password, as Docker Hub has it) whose layer
/// lives in object storage behind a signed URL. Returns the registry, the storage and the
/// reference.
fn token_registry_with_signed_storage() -> (Fake, Fake, String) {
    let (registry, storage) = (Fake::start(), Fake::start());
    let image = TestImage::random(31, &[5000]);
    registry.serve_image("team/app", "1", &image);
    let realm = format!("http://{}/token", registry.addr);
    let challenge = format!(r#"Bearer realm="{realm}",service="fake-registry""#);
    registry.guard(move |req| {
        let rest = req.path.strip_prefix("/v2/")?;
        let authorized = req
            .headers
            .get("authorization")
            .is_some_and(|a| a == "Bearer tok-SECRETTOKEN");
        (rest.is_empty() || !authorized)
            .then(|| Reply::new(401, "{}").header("WWW-Authenticate", &challenge))
    });
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    );
    registry.route("/token", move |req, _| {
        if req.headers.get("authorization") != Some(&basic) {
            return Reply::new(401, "{}");
        }
        Reply::new(200, r#"{"token":"tok-SECRETTOKEN","expires_in":300}"#)
    });
    let layer = image.layers[0].clone();
    let digest = image.layer_digest(0);
    storage.route(&format!("/bucket/{digest}"), move |req, _| {
        ranged(req, &layer)
    });
    let location = format!(
        "http://{}/bucket/{digest}?X-Amz-Signature=SIGNEDSECRET",
        storage.addr
    );
    registry.route(&format!("/v2/team/app/blobs/{digest}"), move |_, _| {
        Reply::new(307, "").header("Location", &location)
    });
    let reference = format!("{}/team/app:1", registry.addr);
    (registry, storage, reference)
}

/// A run of the verbose test: its name, extra flags and environment.
type Run<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);

#[test]
fn verbose_shows_requests_and_token_scopes_and_no_secret() {
    let (registry, _storage, reference) = token_registry_with_signed_storage();
    let dir = tempfile::tempdir().unwrap();
    let cfg = docker_config(
        dir.path(),
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            registry.addr,
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
        ),
    );
    let cfg = cfg.to_str().unwrap();
    let secrets = [
        PASS,
        "SECRETTOKEN",
        "SIGNEDSECRET",
        "X-Amz-Signature",
        &base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}")),
    ];
    let runs: [Run; 4] = [
        ("-v", &["-v"], &[("DOCKER_CONFIG", cfg)]),
        ("-vv", &["-vv"], &[("DOCKER_CONFIG", cfg)]),
        ("--verbose", &["--verbose"], &[("DOCKER_CONFIG", cfg)]),
        (
            "RUST_LOG",
            &[],
            &[("DOCKER_CONFIG", cfg), ("RUST_LOG", "ferry=debug")],
        ),
    ];
    for (name, flags, env) in runs {
        let out = dir.path().join(name);
        let mut args = vec!["bundle", "-o", out.to_str().unwrap(), &reference];
        args.extend(flags.iter());
        let (code, stdout, stderr) = ferry_env(&args, env);
        assert_eq!(code, 0, "{name}: {stderr}");
        let addr = &registry.addr;
        for wanted in [
            format!("GET http://{addr}/v2/team/app/manifests/1 -> 200"),
            format!("GET http://{addr}/v2/ -> 401"),
            "scope=repository:team/app:pull".to_owned(),
            format!("realm=http://{addr}/token"),
            "redirected to http://".to_owned(),
        ] {
            assert!(
                stderr.contains(&wanted),
                "{name}: no {wanted:?} in\n{stderr}"
            );
        }
        for secret in secrets {
            assert!(
                !stderr.contains(secret) && !stdout.contains(secret),
                "{name}: {secret} shown:\n{stderr}"
            );
        }
        // -vv adds the response headers that explain an answer (an allow-list, redacted):
        // the challenge and the sizes.
        let headers = ["< www-authenticate: Bearer", "< content-length: "];
        for header in headers {
            assert_eq!(
                stderr.contains(header),
                name == "-vv",
                "{name}: {header:?} in\n{stderr}"
            );
        }
        assert!(
            !stderr.to_lowercase().contains("< authorization"),
            "{stderr}"
        );
    }

    // Without -v nor RUST_LOG: no request lines.
    let out = dir.path().join("plain");
    let (code, _, stderr) = ferry_env(
        &["bundle", "-o", out.to_str().unwrap(), &reference],
        &[("DOCKER_CONFIG", cfg)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("GET http"), "{stderr}");
}

#[test]
fn verbose_is_global_and_serve_keeps_its_request_log() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_tags(&reg, dir.path(), &["sample/hello:1.0"], &[]);
    let b = b.to_str().unwrap();
    // -v before or after the subcommand alike logs each request; without it, none.
    for (args, logged) in [
        (vec!["-v", "serve", b], true),
        (vec!["serve", b, "--verbose"], true),
        (vec!["serve", "-vv", b], true),
        (vec!["serve", b], false),
    ] {
        let mut all = args.clone();
        all.extend(["--addr", "127.0.0.1:0"]);
        let mut served = crate::served::Served::spawn(&all);
        let reply = crate::served::curl("GET", &served.url("/v2/sample/hello/manifests/1.0"), &[]);
        assert_eq!(reply.status, 200, "{args:?}");
        assert_eq!(served.stop(), 0, "{args:?}: {}", served.log());
        let log = served.log();
        assert_eq!(
            log.contains("GET /v2/sample/hello/manifests/1.0 200"),
            logged,
            "{args:?}: {log}"
        );
    }
}

#[test]
fn a_long_run_prints_running_totals() {
    use std::io::BufRead as _;
    let registry = Fake::start();
    // The layer is held back until the test has seen a totals line: the run is "long" for as
    // long as the test needs, whatever the machine's speed.
    let held = registry.serve_held_image("team/slow", "1", 41);
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/team/slow:1", registry.addr);
    // A file joins the run's images: the totals count it (2 images, not 1).
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "notes").unwrap();
    let mut child = ferry()
        .args([
            "bundle",
            "-o",
            dir.path().join("b").to_str().unwrap(),
            &reference,
            "--add-file",
            file.to_str().unwrap(),
            "--as",
            "registry.example/files/notes:1",
        ])
        .env("FERRY_LOG_INTERVAL", "0.1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let totals = loop {
        let line = lines
            .next()
            .expect("ferry ends only after the layer")
            .unwrap();
        seen.push(line.clone());
        if line.starts_with("progress: ") {
            break line;
        }
    };
    held.release();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success(), "{seen:?} {rest:?}");
    // `progress: 1 of 2 images done, 0 failed; 0 B of 2.93 KiB, 0 B/s, 0 s` (the file is
    // done at once, the image waits for its layer)
    assert!(
        totals.starts_with("progress: ")
            && totals.contains(" of 2 images done, 0 failed; ")
            && totals.contains(" of 2.93 KiB, ")
            && totals.contains("/s, "),
        "{totals}"
    );
    assert!(
        rest.iter()
            .any(|l| l.starts_with(&format!("done {reference} "))),
        "{rest:?}"
    );
}

#[test]
fn push_logs_its_uploads_with_the_session_state_cut() {
    let source = Registry::seeded();
    let target = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_tags(&source, dir.path(), &["sample/hello:1.0"], &[]);
    let (code, _, stderr) = ferry_out(&[
        "push",
        "-v",
        "--no-progress",
        b.to_str().unwrap(),
        &format!("{}/mirror", target.addr),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let t = &target.addr;
    assert!(
        stderr.contains(&format!(
            "POST http://{t}/v2/mirror/sample/hello/blobs/uploads/ -> 202"
        )),
        "{stderr}"
    );
    // The upload session's URL carries its state in the query (`_state=`): cut.
    assert!(
        stderr.lines().any(|l| l.contains(&format!(
            "PUT http://{t}/v2/mirror/sample/hello/blobs/uploads/"
        )) && l.contains("?… -> 201")),
        "{stderr}"
    );
    assert!(!stderr.contains("_state"), "{stderr}");
    assert!(
        stderr.contains(&format!("pushed {} -> ", source.image("sample/hello:1.0"))),
        "{stderr}"
    );
}

#[test]
fn a_blob_that_no_remote_has_fails_its_image_once_naming_the_mirror() {
    // The mirror has the manifest and config but not the layer; the source is down.
    let mirror = Fake::start();
    let image = TestImage::random(51, &[4000]);
    mirror.serve_image("team/app", "1", &image);
    mirror.route(
        &format!("/v2/team/app/blobs/{}", image.layer_digest(0)),
        |_, _| {
            Reply::new(
                404,
                r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#,
            )
        },
    );
    let source = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let reference = format!("{source}/team/app:1");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--retries",
        "0",
        "-o",
        dir.path().join("b").to_str().unwrap(),
        "--mirror",
        &format!("{source}={}", mirror.addr),
        &reference,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        lines_about(&stderr, "failed", &reference).len(),
        1,
        "{stderr}"
    );
    let error = lines_about(&stderr, "error:", &reference);
    assert_eq!(error.len(), 1, "{stderr}");
    // The error line and its `caused by:` lines, which follow it indented.
    let block: Vec<&str> = stderr
        .lines()
        .skip_while(|l| *l != error[0])
        .take_while(|l| *l == error[0] || l.starts_with("  "))
        .collect();
    let block = block.join("\n");
    assert!(
        block.contains(&image.layer_digest(0))
            && block.contains(&format!("cannot reach {source}"))
            && block.contains(&format!("after mirror {}", mirror.addr)),
        "{block}"
    );
}
