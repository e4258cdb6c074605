//! Bearer token auth as Docker Hub, GHCR and Quay do it, on the fake registry: credentialed
//! tokens, one per repository scope, and identity tokens exchanged by OAuth2.

use crate::common;

use base64::Engine as _;
use common::*;

const USER: &str = "ferry-user";
const PASS: &str = "pa55-Word-xyzzy";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn bearer_tokens_per_repository_with_credentials_or_an_identity_token() {
    use common::fake::{Fake, Reply, TestImage};
    let fake = Fake::start();
    let (a, b) = (
        TestImage::random(21, &[3000]),
        TestImage::random(22, &[4000]),
    );
    fake.serve_image("team/a", "1", &a);
    fake.serve_image("team/b", "1", &b);
    let realm = format!("http://{}/token", fake.addr);
    let challenge = format!(r#"Bearer realm="{realm}",service="fake-registry""#);
    // Every repository path needs the token for its own scope.
    let ch = challenge.clone();
    fake.guard(move |req| {
        let rest = req.path.strip_prefix("/v2/")?;
        if rest.is_empty() {
            return Some(Reply::new(401, "{}").header("WWW-Authenticate", &ch));
        }
        let repo = rest.split("/manifests/").next()?.split("/blobs/").next()?;
        let want = format!("Bearer tok-repository:{repo}:pull-SECRETTOKEN");
        (req.headers.get("authorization") != Some(&want))
            .then(|| Reply::new(401, "{}").header("WWW-Authenticate", &ch))
    });
    let basic = format!("Basic {}", b64(&format!("{USER}:{PASS}")));
    fake.route("/token", move |req, _| {
        let query = req
            .path
            .split_once('?')
            .map(|(_, q)| q.to_owned())
            .unwrap_or_default();
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(if req.method == "POST" {
                req.body.as_bytes()
            } else {
                query.as_bytes()
            })
            .into_owned()
            .collect();
        let allowed = req.headers.get("authorization") == Some(&basic)
            || (form.get("grant_type").map(String::as_str) == Some("refresh_token")
                && form.get("refresh_token").map(String::as_str) == Some("IDENTITY-42"));
        if !allowed || form.get("service").map(String::as_str) != Some("fake-registry") {
            return Reply::new(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"who are you"}]}"#,
            );
        }
        Reply::new(
            200,
            format!(
                r#"{{"token":"tok-{}-SECRETTOKEN","expires_in":300}}"#,
                form["scope"]
            ),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let refs = [
        format!("{}/team/a:1", fake.addr),
        format!("{}/team/b:1", fake.addr),
    ];

    // Anonymous: the token server says no, and ferry says what to do.
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        dir.path().join("x").to_str().unwrap(),
        &refs[0],
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("ferry login {}", fake.addr)),
        "{stderr}"
    );

    // User and password: one token per repository scope, asked with Basic auth.
    let tokens_before = fake.seen("/token").len();
    let cfg = docker_config(
        dir.path(),
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            fake.addr,
            b64(&format!("{USER}:{PASS}"))
        ),
    );
    let env = [("DOCKER_CONFIG", cfg.to_str().unwrap())];
    let (code, stdout, stderr) = ferry_env(
        &[
            "bundle",
            "--json",
            "-o",
            dir.path().join("p").to_str().unwrap(),
            &refs[0],
            &refs[1],
        ],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    let requests = fake.seen("/token");
    let mut scopes: Vec<String> = requests[tokens_before..]
        .iter()
        .map(|r| {
            url::form_urlencoded::parse(r.path.split_once('?').unwrap().1.as_bytes())
                .find(|(k, _)| k == "scope")
                .unwrap()
                .1
                .into_owned()
        })
        .collect();
    scopes.sort();
    assert_eq!(
        scopes,
        ["repository:team/a:pull", "repository:team/b:pull"],
        "one token per repository, cached"
    );
    for secret in ["SECRETTOKEN", PASS] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed"
        );
    }

    // An identity token (OAuth2 refresh token) is exchanged with a POST.
    let cfg = docker_config(
        dir.path(),
        &format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"IDENTITY-42"}}}}}}"#,
            fake.addr
        ),
    );
    let env = [("DOCKER_CONFIG", cfg.to_str().unwrap())];
    let (code, _, stderr) = ferry_env(
        &[
            "bundle",
            "-o",
            dir.path().join("i").to_str().unwrap(),
            &refs[0],
        ],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    let last = fake.seen("/token").pop().unwrap();
    assert_eq!(last.method, "POST");
    assert!(
        last.body.contains("grant_type=refresh_token")
            && !last.headers.contains_key("authorization"),
        "{last:?}"
    );
}

#[test]
fn a_token_realm_redirecting_elsewhere_gets_no_refresh_token() {
    use common::fake::{Fake, Reply, TestImage};
    let (registry, realm, elsewhere) = (Fake::start(), Fake::start(), Fake::start());
    let image = TestImage::random(50, &[1000]);
    registry.serve_image("app", "1", &image);
    let challenge = format!(
        r#"Bearer realm="http://{}/token",service="fake""#,
        realm.addr
    );
    registry.guard(move |req| {
        (req.path.starts_with("/v2/") && !req.headers.contains_key("authorization"))
            .then(|| Reply::new(401, "{}").header("WWW-Authenticate", &challenge))
    });
    // The realm answers 307 to another host: a POST would be re-sent there, body and all.
    let to = format!("http://{}/steal", elsewhere.addr);
    realm.route("/token", move |_, _| {
        Reply::new(307, "").header("Location", &to)
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = docker_config(
        dir.path(),
        &format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"REFRESH-SECRET"}}}}}}"#,
            registry.addr
        ),
    );
    let (code, _, stderr) = ferry_env(
        &[
            "bundle",
            "-o",
            dir.path().join("b").to_str().unwrap(),
            &format!("{}/app:1", registry.addr),
        ],
        &[("DOCKER_CONFIG", cfg.to_str().unwrap())],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        elsewhere.seen("/").is_empty(),
        "the refresh token went to another host"
    );
    assert_eq!(realm.seen("/token").len(), 1);
}
