//! `ferry push` against a token-auth registry (the fake: docker-registry has no token server):
//! push scopes per repository, and a cross-repository mount asking for both repositories.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;

use common::fake::{Fake, Reply};
use common::*;

fn query(path: &str) -> Vec<(String, String)> {
    let q = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

/// The repository a `/v2/<repo>/(blobs|manifests)/...` path names.
fn repo_of(path: &str) -> Option<String> {
    let p = path.split('?').next()?.strip_prefix("/v2/")?;
    let cut = p.find("/blobs/").or_else(|| p.find("/manifests/"))?;
    Some(p[..cut].to_owned())
}

#[test]
fn push_asks_tokens_for_push_scopes_and_mounts_with_both_repositories() {
    // A bundle with two images that share their layer, made by ferry from the real registry.
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b");
    let hello = reg.image("sample/hello:1.0");
    let docker = reg.image("sample/hello-docker:1.0");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-q",
        "-o",
        bundle.to_str().unwrap(),
        &hello,
        &docker,
    ]);
    assert_eq!(code, 0, "{stderr}");

    let fake = Arc::new(Fake::start());
    let challenge = format!(
        r#"Bearer realm="http://{}/token",service="fake""#,
        fake.addr
    );
    let c = challenge.clone();
    fake.guard(move |req| {
        if req.path.starts_with("/token") {
            return None;
        }
        let auth = req
            .headers
            .get("authorization")
            .cloned()
            .unwrap_or_default();
        let ok = match repo_of(&req.path) {
            Some(repo) => auth.contains(&format!("repository:{repo}:pull,push")),
            None => auth.starts_with("Bearer tok"),
        };
        (!ok).then(|| {
            Reply::new(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"token"}]}"#,
            )
            .header("WWW-Authenticate", &c)
        })
    });
    fake.route("/token", |req, _| {
        let scopes: Vec<String> = query(&req.path)
            .into_iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v)
            .collect();
        Reply::new(200, format!(r#"{{"token":"tok {}"}}"#, scopes.join(" ")))
    });
    for repo in ["sample/hello", "sample/hello-docker"] {
        let start = format!("/v2/{repo}/blobs/uploads/");
        let session = format!("/v2/{repo}/blobs/uploads/session-1");
        let s = session.clone();
        fake.route(&start, move |req, _| {
            if query(&req.path).iter().any(|(k, _)| k == "mount") {
                Reply::new(201, "")
            } else {
                Reply::new(202, "").header("Location", &format!("{s}?_state=SECRET"))
            }
        });
        fake.route(&session, |req, _| {
            let q: HashMap<_, _> = query(&req.path).into_iter().collect();
            Reply::new(201, "").header("Docker-Content-Digest", &q["digest"])
        });
        // The manifest is kept (push reads it back, by digest and by tag).
        let stored: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let (by_tag, by_digest) = (stored.clone(), stored);
        fake.route(&format!("/v2/{repo}/manifests/1.0"), move |req, _| {
            if req.method == "PUT" {
                let digest = sha256(req.body.as_bytes());
                *by_tag.lock().unwrap() = Some(digest.clone());
                return Reply::new(201, "").header("Docker-Content-Digest", &digest);
            }
            match by_tag.lock().unwrap().clone() {
                Some(d) => Reply::new(200, "").header("Docker-Content-Digest", &d),
                None => Reply::new(404, ""),
            }
        });
        let name = format!("{}/{repo}:1.0", reg.addr);
        let digest = index_entry(&bundle, &name).unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        fake.route(
            &format!("/v2/{repo}/manifests/{digest}"),
            move |_, _| match by_digest.lock().unwrap().clone() {
                Some(d) => Reply::new(200, "").header("Docker-Content-Digest", &d),
                None => Reply::new(404, ""),
            },
        );
    }

    let (code, stdout, stderr) = ferry_out(&[
        "push",
        bundle.to_str().unwrap(),
        &fake.addr,
        "--json",
        "--jobs",
        "1",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("SECRET"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        report["totals"]["blobsMounted"].as_u64().unwrap() > 0,
        "{report}"
    );

    // Every token asked for carries the push scope of its repository; the mount's token also
    // the source repository's pull scope.
    let token_scopes: Vec<Vec<String>> = fake
        .seen("/token")
        .iter()
        .map(|r| {
            query(&r.path)
                .into_iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v)
                .collect()
        })
        .collect();
    let pushed =
        ["sample/hello", "sample/hello-docker"].map(|r| format!("repository:{r}:pull,push"));
    assert!(!token_scopes.is_empty());
    for scopes in &token_scopes {
        let (first, rest) = scopes
            .split_first()
            .expect("a token asked for with no scope");
        assert!(pushed.contains(first), "{token_scopes:?}");
        assert!(
            rest.iter()
                .all(|s| s.starts_with("repository:") && s.ends_with(":pull")),
            "only a mount source's pull scope rides along: {token_scopes:?}"
        );
    }
    for scope in &pushed {
        assert!(
            token_scopes.iter().any(|s| &s[0] == scope),
            "{scope}: {token_scopes:?}"
        );
    }
    let mount = fake
        .seen("/v2/")
        .into_iter()
        .find(|r| r.method == "POST" && r.path.contains("mount="))
        .expect("a mount request");
    let q: HashMap<_, _> = query(&mount.path).into_iter().collect();
    let to = repo_of(&mount.path).unwrap();
    let pair = [
        format!("repository:{to}:pull,push"),
        format!("repository:{}:pull", q["from"]),
    ];
    assert!(
        token_scopes.iter().any(|s| s[..] == pair[..]),
        "{token_scopes:?}"
    );
    // Manifests went up with their stored media types.
    let puts: Vec<_> = fake
        .seen("/v2/")
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/manifests/"))
        .collect();
    assert_eq!(puts.len(), 2);
    assert!(puts.iter().any(
        |p| p.headers["content-type"] == "application/vnd.docker.distribution.manifest.v2+json"
    ));
}
