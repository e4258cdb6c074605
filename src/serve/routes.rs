//! The distribution API's pull side over a [`Catalog`]: request in, response out.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::body::{Body, Logged, Range, parse_range};
use super::catalog::{Catalog, NameError, Repo};
use super::{Event, Reporter};
use crate::digest::Digest;
use crate::manifest::{MAX_MANIFEST_BYTES, OCI_INDEX};
use crate::store::{Blob, BundleSource};

/// What every request handler shares: the bundle, its catalog, and which blobs were checked.
pub struct State {
    source: Arc<dyn BundleSource>,
    catalog: Catalog,
    /// Blobs found wrong: never served again.
    bad: Mutex<HashSet<Digest>>,
    reporter: Arc<dyn Reporter>,
}

type Resp = Response<Body>;

/// Why a blob is not served.
enum Refusal {
    /// Not in the bundle.
    Missing,
    /// There but wrong (a symlink, the wrong size, corrupt).
    Bad(String),
}

fn error(status: StatusCode, code: &str, message: &str) -> Resp {
    let body = serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]});
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::full(body.to_string()))
        .expect("a valid response")
}

fn json(value: &serde_json::Value, content_type: &str) -> Resp {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::full(value.to_string()))
        .expect("a valid response")
}

/// The value of query parameter `key`, percent-decoded.
fn query(req: &Request<hyper::body::Incoming>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The part of a `/v2/NAME/...` path a route names.
enum Route<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Upload,
    Referrers(&'a str, &'a str),
    Other,
}

fn route<'a>(path: &'a str) -> Route<'a> {
    let Some(rest) = path.strip_prefix("/v2") else {
        return Route::Other;
    };
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Route::Base;
    }
    if rest == "_catalog" {
        return Route::Catalog;
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags(name);
    }
    if rest.contains("/blobs/uploads") {
        return Route::Upload;
    }
    for (marker, make) in [
        (
            "/manifests/",
            Route::Manifest as fn(&'a str, &'a str) -> Route<'a>,
        ),
        ("/blobs/", Route::Blob),
        ("/referrers/", Route::Referrers),
    ] {
        if let Some((name, reference)) = rest.rsplit_once(marker)
            && !name.is_empty()
            && !reference.is_empty()
            && !reference.contains('/')
        {
            return make(name, reference);
        }
    }
    Route::Other
}

impl State {
    /// Builds the state over a source and its catalog.
    pub fn new(
        source: Arc<dyn BundleSource>,
        catalog: Catalog,
        reporter: Arc<dyn Reporter>,
    ) -> State {
        State {
            source,
            catalog,
            bad: Mutex::new(HashSet::new()),
            reporter,
        }
    }

    /// The catalog served.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Answers one request; its log event follows when the body ends.
    pub async fn handle(self: Arc<Self>, req: Request<hyper::body::Incoming>) -> Response<Logged> {
        let start = std::time::Instant::now();
        let mut resp = self.clone().respond(&req).await;
        resp.headers_mut().insert(
            "Docker-Distribution-API-Version",
            HeaderValue::from_static("registry/2.0"),
        );
        let reporter = self.reporter.clone();
        let method = req.method().to_string();
        // The path only: a query string is not shown.
        let path = req.uri().path().to_owned();
        let status = resp.status().as_u16();
        resp.map(|body| {
            Logged::new(
                body,
                Box::new(move |bytes, complete| {
                    reporter.event(&Event::Request {
                        method,
                        path,
                        status,
                        bytes,
                        complete,
                        elapsed: start.elapsed(),
                    });
                }),
            )
        })
    }

    async fn respond(self: Arc<Self>, req: &Request<hyper::body::Incoming>) -> Resp {
        let read = req.method() == Method::GET || req.method() == Method::HEAD;
        match (route(req.uri().path()), read) {
            (Route::Base, true) => json(&serde_json::json!({}), "application/json"),
            (Route::Upload, _) | (_, false) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "this registry is read-only (ferry serve): pushes and deletes are not supported",
            ),
            (Route::Catalog, true) => self.list_catalog(req),
            (Route::Tags(name), true) => self.with_repo(req, name, |_, repo| {
                let tags: Vec<String> = repo.tags.keys().cloned().collect();
                paginated(
                    req,
                    tags,
                    |tags| serde_json::json!({"name": name, "tags": tags}),
                )
            }),
            (Route::Manifest(name, reference), true) => {
                let head = req.method() == Method::HEAD;
                self.with_repo(req, name, |state, repo| {
                    state.manifest(repo, reference, head)
                })
            }
            (Route::Blob(name, digest), true) => {
                let head = req.method() == Method::HEAD;
                let range = req
                    .headers()
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let Some((repo_blob, size)) = self.blob_in_repo(req, name, digest) else {
                    return self.blob_error(req, name, digest);
                };
                self.clone().blob(repo_blob, size, range, head).await
            }
            (Route::Referrers(name, digest), true) => {
                let filter = query(req, "artifactType");
                self.with_repo(req, name, |_, repo| referrers(repo, digest, filter))
            }
            (Route::Other, true) => error(
                StatusCode::NOT_FOUND,
                "UNSUPPORTED",
                "not a route of the distribution API",
            ),
        }
    }

    fn with_repo(
        &self,
        req: &Request<hyper::body::Incoming>,
        name: &str,
        f: impl FnOnce(&State, &Repo) -> Resp,
    ) -> Resp {
        let ns = query(req, "ns");
        match self.catalog.resolve(name, ns.as_deref()) {
            Ok((_, repo)) => f(self, repo),
            Err(e) => name_error(name, ns.as_deref(), e),
        }
    }

    fn list_catalog(&self, req: &Request<hyper::body::Incoming>) -> Resp {
        paginated(
            req,
            self.catalog.names(),
            |names| serde_json::json!({ "repositories": names }),
        )
    }

    fn manifest(&self, repo: &Repo, reference: &str, head: bool) -> Resp {
        let digest = match reference.parse::<Digest>() {
            Ok(d) => Some(d),
            Err(_) => repo.tags.get(reference).cloned(),
        };
        let unknown = || {
            error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                &format!("manifest unknown: {reference}"),
            )
        };
        let Some((digest, info)) = digest.and_then(|d| repo.manifests.get(&d).map(|i| (d, i)))
        else {
            return unknown();
        };
        // Manifests are small: read whole and re-hashed every time.
        let bytes = match self.open(&digest, info.size).and_then(|b| {
            b.read_verified(MAX_MANIFEST_BYTES)
                .map_err(|e| Refusal::Bad(e.to_string()))
        }) {
            Ok(b) => b,
            Err(Refusal::Missing) => return unknown(),
            Err(Refusal::Bad(e)) => {
                self.mark_bad(&digest, e);
                return unknown();
            }
        };
        let len = bytes.len();
        Response::builder()
            .header(header::CONTENT_TYPE, &info.media_type)
            .header("Docker-Content-Digest", digest.to_string())
            .header(header::CONTENT_LENGTH, len)
            .body(if head {
                Body::Empty
            } else {
                Body::full(Bytes::from(bytes))
            })
            .expect("a valid response")
    }

    fn open(&self, digest: &Digest, size: u64) -> Result<Blob, Refusal> {
        if self.bad.lock().expect("not poisoned").contains(digest) {
            return Err(Refusal::Bad("found corrupt earlier".into()));
        }
        self.source
            .open_blob(digest, Some(size))
            .map_err(|e| match e {
                e if crate::store::source::is_not_found(&e) => Refusal::Missing,
                e => Refusal::Bad(e.to_string()),
            })
    }

    fn mark_bad(&self, digest: &Digest, reason: String) {
        if self
            .bad
            .lock()
            .expect("not poisoned")
            .insert(digest.clone())
        {
            self.reporter.event(&Event::BlobRefused {
                digest: digest.clone(),
                reason,
            });
        }
    }

    /// The blob a request names, when the repository's images reach it.
    fn blob_in_repo(
        &self,
        req: &Request<hyper::body::Incoming>,
        name: &str,
        digest: &str,
    ) -> Option<(Digest, u64)> {
        let ns = query(req, "ns");
        let (_, repo) = self.catalog.resolve(name, ns.as_deref()).ok()?;
        let digest: Digest = digest.parse().ok()?;
        let size = *repo.blobs.get(&digest)?;
        Some((digest, size))
    }

    fn blob_error(&self, req: &Request<hyper::body::Incoming>, name: &str, digest: &str) -> Resp {
        let ns = query(req, "ns");
        match self.catalog.resolve(name, ns.as_deref()) {
            Err(e) => name_error(name, ns.as_deref(), e),
            Ok(_) => error(
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                &format!("blob unknown to repository {name}: {digest}"),
            ),
        }
    }

    async fn blob(
        self: Arc<Self>,
        digest: Digest,
        size: u64,
        range: Option<String>,
        head: bool,
    ) -> Resp {
        let unknown = || {
            error(
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                &format!("blob unknown: {digest}"),
            )
        };
        let blob = match self.open(&digest, size) {
            Ok(b) => b,
            Err(Refusal::Missing) => return unknown(),
            Err(Refusal::Bad(e)) => {
                self.mark_bad(&digest, e);
                return unknown();
            }
        };
        let builder = Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header("Docker-Content-Digest", digest.to_string())
            .header(header::ACCEPT_RANGES, "bytes");
        let range = if head {
            Range::Whole
        } else {
            parse_range(range.as_deref(), size)
        };
        match range {
            Range::Unsatisfiable => builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::Empty)
                .expect("a valid response"),
            Range::Whole if head => builder
                .header(header::CONTENT_LENGTH, size)
                .body(Body::Empty)
                .expect("a valid response"),
            Range::Whole => {
                let state = self.clone();
                let d = digest.clone();
                let reader = match blocking(move || blob.reader()).await {
                    Ok(r) => r,
                    Err(e) => {
                        self.mark_bad(&digest, e.to_string());
                        return unknown();
                    }
                };
                // The reader holds the blob's last chunk back until its digest is checked.
                let body = Body::stream(reader, size, move |outcome| {
                    if let Err(e) = outcome {
                        state.mark_bad(&d, e.to_string());
                    }
                });
                builder.body(body).expect("a valid response")
            }
            Range::Part { start, end } => {
                // A part cannot be checked on its own: the blob is verified whole first, unless
                // it was since its file last changed; the reader cuts when the file changes.
                let part = blocking(move || blob.range_reader(start, end + 1)).await;
                let reader = match part {
                    Ok(r) => r,
                    Err(e) => {
                        self.mark_bad(&digest, e.to_string());
                        return unknown();
                    }
                };
                let len = end - start + 1;
                builder
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"))
                    .body(Body::stream(reader, len, |_| {}))
                    .expect("a valid response")
            }
        }
    }
}

/// Runs blocking reads (hashing a blob, decompressing to an offset) off the async threads.
async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn name_error(name: &str, ns: Option<&str>, e: NameError) -> Resp {
    match e {
        NameError::Unknown => error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            &match ns {
                Some(ns) => format!("repository {name} of {ns} is not in this bundle"),
                None => format!("repository {name} is not in this bundle"),
            },
        ),
        NameError::Ambiguous(regs) => error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            &format!(
                "repository {name} is in this bundle from several registries ({}): add ?ns=REGISTRY or name it REGISTRY/{name}",
                regs.join(", ")
            ),
        ),
    }
}

/// The referrers API: an index of the manifests whose subject is `digest`.
fn referrers(repo: &Repo, digest: &str, filter: Option<String>) -> Resp {
    let Ok(digest) = digest.parse::<Digest>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "not a valid digest",
        );
    };
    let found: Vec<_> = repo
        .referrers
        .get(&digest)
        .into_iter()
        .flatten()
        .filter(|d| match &filter {
            Some(f) => d
                .artifact_type()
                .as_ref()
                .is_some_and(|a| a.to_string() == *f),
            None => true,
        })
        .collect();
    let value = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": found,
    });
    let mut resp = json(&value, OCI_INDEX);
    if filter.is_some() {
        resp.headers_mut().insert(
            "OCI-Filters-Applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    resp
}

/// `n` and `last` of the listing endpoints, with a `Link` to the next page when `n` cut the
/// list short: a client that gets none takes the list as whole (distribution spec).
fn paginated(
    req: &Request<hyper::body::Incoming>,
    mut items: Vec<String>,
    body: impl FnOnce(Vec<String>) -> serde_json::Value,
) -> Resp {
    if let Some(last) = query(req, "last") {
        items.retain(|i| *i > last);
    }
    let n = query(req, "n").and_then(|n| n.parse::<usize>().ok());
    let next = n.filter(|&n| items.len() > n && n > 0).map(|n| {
        items.truncate(n);
        let last: String = url::form_urlencoded::byte_serialize(items[n - 1].as_bytes()).collect();
        format!("<{}?n={n}&last={last}>; rel=\"next\"", req.uri().path())
    });
    if let Some(n) = n {
        items.truncate(n);
    }
    let mut resp = json(&body(items), "application/json");
    if let Some(link) = next.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, link);
    }
    resp
}
