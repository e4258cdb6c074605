//! The distribution API's pull side over a [`Snapshot`] of the bundle: request in, response out.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::body::{Body, Pool};
use super::catalog::{NameError, Repo};
use super::conn::Activity;
use super::live::{Live, Snapshot};
use super::logged::Logged;
use super::{Event, Reporter};
use crate::digest::Digest;
use crate::manifest::{MAX_MANIFEST_BYTES, OCI_INDEX};
use crate::store::Blob;

/// What every request handler shares: the bundle as served now, the read pool, the reporter.
pub struct State {
    live: Arc<Live>,
    pool: Pool,
    reporter: Arc<dyn Reporter>,
}

/// One request's view: the state it is answered from, and its connection.
pub(super) struct Ctx<'a> {
    pub snap: &'a Arc<Snapshot>,
    pub pool: &'a Pool,
    pub reporter: &'a Arc<dyn Reporter>,
    pub activity: Option<Arc<Activity>>,
}

pub(super) type Resp = Response<Body>;

/// Why a blob is not served.
pub(super) enum Refusal {
    /// Not in the bundle.
    Missing,
    /// There but wrong (a symlink, the wrong size, corrupt).
    Bad(String),
}

pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Resp {
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
    /// Serves `live` with blob reads on `pool`.
    pub fn new(live: Arc<Live>, pool: Pool, reporter: Arc<dyn Reporter>) -> State {
        State {
            live,
            pool,
            reporter,
        }
    }

    /// The bundle as served now.
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Answers one request; its log event follows when the body ends. The answer comes from
    /// the bundle as it is on disk now; a 404 answered from a state replaced meanwhile (a
    /// blob removed by the `apply` that published the new one) is answered again from the new.
    pub async fn handle(self: Arc<Self>, req: Request<hyper::body::Incoming>) -> Response<Logged> {
        let start = std::time::Instant::now();
        let activity = req.extensions().get::<Arc<Activity>>().cloned();
        let busy = activity.as_ref().map(Activity::busy);
        let mut snap = self.live.fresh().await;
        let mut resp = self.respond(&snap, &req, activity.clone()).await;
        if resp.status() == StatusCode::NOT_FOUND {
            let again = self.live.fresh().await;
            if !Arc::ptr_eq(&again, &snap) {
                snap = again;
                resp = self.respond(&snap, &req, activity.clone()).await;
            }
        }
        drop(busy);
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
                activity,
                Box::new(move |bytes, outcome| {
                    reporter.event(&Event::Request {
                        method,
                        path,
                        status,
                        bytes,
                        outcome,
                        elapsed: start.elapsed(),
                    });
                }),
            )
        })
    }

    async fn respond(
        &self,
        snap: &Arc<Snapshot>,
        req: &Request<hyper::body::Incoming>,
        activity: Option<Arc<Activity>>,
    ) -> Resp {
        let ctx = Ctx {
            snap,
            pool: &self.pool,
            reporter: &self.reporter,
            activity,
        };
        ctx.respond(req).await
    }
}

impl Ctx<'_> {
    async fn respond(&self, req: &Request<hyper::body::Incoming>) -> Resp {
        if let Some(resp) = super::bundle_files::respond(&*self.snap.source, req) {
            return resp;
        }
        let read = req.method() == Method::GET || req.method() == Method::HEAD;
        let head = req.method() == Method::HEAD;
        match (route(req.uri().path()), read) {
            (Route::Base, true) => {
                let mut resp = json(&serde_json::json!({}), "application/json");
                // Which bundle this is: what `restore.sh --mirror` asks before leaving a
                // server on its port alone.
                if let Ok(v) = HeaderValue::from_str(&self.snap.lock.to_string()) {
                    resp.headers_mut().insert("Ferry-Bundle", v);
                }
                resp
            }
            (Route::Upload, _) | (_, false) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "this registry is read-only (ferry serve): pushes and deletes are not supported",
            ),
            (Route::Catalog, true) => paginated(
                req,
                self.snap.catalog.names(),
                |names| serde_json::json!({ "repositories": names }),
            ),
            (Route::Tags(name), true) => self.with_repo(req, name, |repo| {
                let tags: Vec<String> = repo.tags.keys().cloned().collect();
                paginated(
                    req,
                    tags,
                    |tags| serde_json::json!({"name": name, "tags": tags}),
                )
            }),
            (Route::Manifest(name, reference), true) => {
                self.with_repo(req, name, |repo| self.manifest(repo, reference, head))
            }
            (Route::Blob(name, digest), true) => {
                let range = req
                    .headers()
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let ns = query(req, "ns");
                match self.blob_in_repo(name, ns.as_deref(), digest) {
                    Ok((d, size)) => self.blob(d, size, range, head).await,
                    Err(resp) => *resp,
                }
            }
            (Route::Referrers(name, digest), true) => {
                let filter = query(req, "artifactType");
                self.with_repo(req, name, |repo| referrers(repo, digest, filter))
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
        f: impl FnOnce(&Repo) -> Resp,
    ) -> Resp {
        let ns = query(req, "ns");
        match self.snap.catalog.resolve(name, ns.as_deref()) {
            Ok((_, repo)) => f(repo),
            Err(e) => name_error(name, ns.as_deref(), e),
        }
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

    pub(super) fn open(&self, digest: &Digest, size: u64) -> Result<Blob, Refusal> {
        if self.snap.is_bad(digest) {
            return Err(Refusal::Bad("found corrupt earlier".into()));
        }
        self.snap
            .source
            .open_blob(digest, Some(size))
            .map_err(|e| match e {
                e if crate::store::source::is_not_found(&e) => Refusal::Missing,
                e => Refusal::Bad(e.to_string()),
            })
    }

    pub(super) fn mark_bad(&self, digest: &Digest, reason: String) {
        if self.snap.mark_bad(digest) {
            self.reporter.event(&Event::BlobRefused {
                digest: digest.clone(),
                reason,
            });
        }
    }

    /// The blob a request names, when the repository's images reach it; else the answer.
    fn blob_in_repo(
        &self,
        name: &str,
        ns: Option<&str>,
        digest: &str,
    ) -> Result<(Digest, u64), Box<Resp>> {
        let (_, repo) = self
            .snap
            .catalog
            .resolve(name, ns)
            .map_err(|e| Box::new(name_error(name, ns, e)))?;
        digest
            .parse::<Digest>()
            .ok()
            .and_then(|d| repo.blobs.get(&d).map(|size| (d, *size)))
            .ok_or_else(|| {
                Box::new(error(
                    StatusCode::NOT_FOUND,
                    "BLOB_UNKNOWN",
                    &format!("blob unknown to repository {name}: {digest}"),
                ))
            })
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
