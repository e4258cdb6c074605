//! The push side of the distribution API: blob HEAD, cross-repository mount, monolithic blob
//! upload (POST, then PUT with the body streamed from a verified reader), manifest HEAD and PUT.
//! Same hosts, TLS, token auth (push scopes), per-registry caps and retries as pulls.
//!
//! A cut upload is restarted from a new POST: docker-registry 2.8 forgets a session whose body
//! broke off (`BLOB_UPLOAD_INVALID`), so resuming one is not worth the round trips.

use std::io::{self, Read};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::Registries;
use super::auth::{pull_scope, push_scope};
use super::error::{ErrorKind, RegistryError};
use super::host::Host;
use super::manifest::header_str;
use super::request::Request;
use super::retry::Retrier;
use crate::digest::Digest;
use crate::report::Event;

/// Where a blob's bytes come from: opened anew for every attempt.
pub trait BlobSource: Send + Sync {
    /// The blob's digest.
    fn digest(&self) -> &Digest;
    /// Its size.
    fn size(&self) -> u64;
    /// A reader of exactly the blob's bytes that fails (`InvalidData`) at its end when they do
    /// not match the digest.
    fn open(&self) -> io::Result<Box<dyn Read + Send>>;
}

/// A failed upload: the registry's fault, or the bundle's.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The registry refused or the network failed (after retries).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The bundle's copy could not be read or does not match its digest: nothing was sent
    /// whole (the last chunk is held back until the hash is checked).
    #[error("cannot read {digest} from the bundle: {source}")]
    Local {
        /// The blob.
        digest: Digest,
        /// What went wrong.
        source: io::Error,
    },
}

/// How a blob got into a repository of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The repository had it already.
    Present,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Sent.
    Uploaded {
        /// Upload attempts after the first.
        retries: u32,
    },
}

impl Host {
    /// The error for an unexpected answer to a push request, with the registry's own code and
    /// a hint that fits pushing.
    pub(super) async fn push_error(&self, resp: Response, repository: &str) -> RegistryError {
        let status = resp.status();
        let url = resp.url().to_string();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        let e = self.status_error(status, &url, &body, Some(&headers), Some(repository));
        push_hint(self, e, repository)
    }
}

/// Replaces pull-oriented hints with what to do when a push is refused.
fn push_hint(host: &Host, e: RegistryError, repository: &str) -> RegistryError {
    let r = e.registry.clone();
    let quota = e.detail.to_ascii_lowercase().contains("quota");
    let hint = match e.kind {
        ErrorKind::Unauthorized => Some(format!(
            "{r} wants credentials that may push to {repository}: `ferry login {r}`, or \
             --authfile / --creds with them; {}",
            host.credentials.origin(&r, repository)
        )),
        ErrorKind::Denied if quota => Some(format!(
            "the storage quota of {r} is used up: free space there or raise the quota"
        )),
        ErrorKind::Denied => Some(format!(
            "the credentials in use for {r} may not push to {repository}: grant push rights, \
             or pick another prefix"
        )),
        ErrorKind::Status(405) => Some(format!(
            "{r} does not accept pushes there (a read-only registry, a pull-through cache, or \
             a proxy that refuses PUT/POST)"
        )),
        ErrorKind::Status(413) => Some(format!(
            "a proxy in front of {r} limits request bodies: raise its limit (nginx: \
             client_max_body_size 0)"
        )),
        _ if quota => Some(format!(
            "the storage quota of {r} is used up: free space there or raise the quota"
        )),
        _ => e.hint.clone(),
    };
    e.with_hint_opt(hint)
}

/// Whether the registry's `Docker-Content-Digest` (when it sends one) is `expected`.
pub(super) fn check_served_digest(
    host: &Host,
    resp: &Response,
    expected: &Digest,
) -> Result<(), RegistryError> {
    match header_str(resp.headers(), "docker-content-digest") {
        Some(served) if served != expected.to_string() => Err(host.err(
            ErrorKind::Protocol,
            resp.url().as_str(),
            format!("the registry says it stored {served}, not {expected}"),
        )),
        _ => Ok(()),
    }
}

impl Registries {
    /// Passes an event to the pool's reporter (push emits blob events through it too).
    pub fn report(&self, event: &Event) {
        self.reporter.event(event);
    }

    /// The API base URL of `registry` (`https://host/`, or `http://` where plain HTTP is
    /// allowed), found by a ping.
    pub async fn api_base(&self, registry: &str) -> Result<Url, RegistryError> {
        self.host(registry)?.base(self).await
    }

    pub(super) fn push_retrier(&self, what: String) -> Retrier<'_> {
        Retrier::new(self, what, self.options.retry.retries)
    }

    pub(super) async fn url(&self, host: &Host, path: &str) -> Result<Url, RegistryError> {
        Ok(host
            .base(self)
            .await?
            .join(path)
            .expect("registry paths are valid URL paths"))
    }

    /// Whether `repository` of `registry` has the blob (`HEAD`); a size that differs is an error.
    pub async fn blob_exists(
        &self,
        registry: &str,
        repository: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<bool, RegistryError> {
        let host = self.host(registry)?;
        let url = self
            .url(&host, &format!("v2/{repository}/blobs/{digest}"))
            .await?;
        let what = format!("blob {} in {registry}/{repository}", digest.short());
        let Some((len, _)) = self
            .head_exists(&host, &url, repository, HeaderMap::new(), what)
            .await?
        else {
            return Ok(false);
        };
        if len.is_some_and(|l| l != size) {
            return Err(host.err(
                ErrorKind::Protocol,
                url.as_str(),
                format!(
                    "the registry has {digest} with {} bytes, not {size}",
                    len.unwrap_or(0)
                ),
            ));
        }
        Ok(true)
    }

    /// `HEAD` with retries: `Some((Content-Length, Docker-Content-Digest))` on 200, `None` on
    /// 404, the registry's own error (through [`Registries::explain`]) for anything else once
    /// retries are spent.
    async fn head_exists(
        &self,
        host: &Host,
        url: &Url,
        repository: &str,
        headers: HeaderMap,
        what: String,
    ) -> Result<Option<(Option<u64>, Option<String>)>, RegistryError> {
        self.push_retrier(what)
            .run(|attempt| {
                let headers = headers.clone();
                async move {
                    match self.head(host, url, repository, headers, attempt).await? {
                        (StatusCode::OK, len, digest) => Ok(Some((len, digest))),
                        (StatusCode::NOT_FOUND, ..) => Ok(None),
                        (status, ..) => {
                            Err(self.explain(host, url, repository, status, attempt).await)
                        }
                    }
                }
            })
            .await
    }

    /// The error for a refused HEAD, with the registry's own code: a HEAD answer has no body,
    /// so the same URL is asked again with a GET of at most one byte.
    async fn explain(
        &self,
        host: &Host,
        url: &Url,
        repository: &str,
        status: StatusCode,
        attempt: u32,
    ) -> RegistryError {
        let head_error = || {
            push_hint(
                host,
                host.status_error(status, url.as_str(), b"", None, Some(repository)),
                repository,
            )
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::RANGE,
            HeaderValue::from_static("bytes=0-0"),
        );
        let request = Request::push(
            Method::GET,
            url.clone(),
            repository,
            &push_scope(repository),
        )
        .headers(headers)
        .limit(self.small_limit(attempt));
        match host.execute(self, request).await {
            Ok(a) if a.response.status() == status => host.push_error(a.response, repository).await,
            _ => head_error(),
        }
    }

    /// Whether `repository` has the manifest `digest` (`HEAD`).
    pub async fn manifest_exists(
        &self,
        registry: &str,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        Ok(self
            .served_manifest_digest(registry, repository, &digest.to_string())
            .await?
            .is_some())
    }

    /// What `repository` of `registry` serves under `reference` (a tag or a digest), by
    /// `HEAD`: `None` when it answers 404, else the digest it names in Docker-Content-Digest
    /// (`Some(None)` when it sends none). A push reads each manifest back this way: a 201 to
    /// its PUT says nothing of what the registry kept.
    pub async fn served_manifest_digest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Option<String>>, RegistryError> {
        let host = self.host(registry)?;
        let url = self
            .url(&host, &format!("v2/{repository}/manifests/{reference}"))
            .await?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(crate::manifest::ACCEPT));
        let sep = if reference.contains(':') { "@" } else { ":" };
        let what = format!("manifest {registry}/{repository}{sep}{reference}");
        Ok(self
            .head_exists(&host, &url, repository, headers, what)
            .await?
            .map(|(_, digest)| digest))
    }

    async fn head(
        &self,
        host: &Host,
        url: &Url,
        repository: &str,
        headers: HeaderMap,
        attempt: u32,
    ) -> Result<(StatusCode, Option<u64>, Option<String>), RegistryError> {
        let request = Request::push(
            Method::HEAD,
            url.clone(),
            repository,
            &push_scope(repository),
        )
        .headers(headers)
        .limit(self.small_limit(attempt));
        let resp = host.execute(self, request).await?.response;
        let len = header_str(resp.headers(), CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok());
        let digest = header_str(resp.headers(), "docker-content-digest");
        Ok((resp.status(), len, digest))
    }

    /// The time limit for a request without a large body.
    pub(super) fn small_timeout(&self, attempt: u32) -> Duration {
        let r = &self.options.retry;
        r.attempt_timeout(attempt).min(r.stall_timeout)
    }

    /// [`Registries::small_timeout`] with what to say when it passes.
    pub(super) fn small_limit(&self, attempt: u32) -> (Duration, String) {
        let t = self.small_timeout(attempt);
        (t, format!("no response in {} s", t.as_secs()))
    }

    /// Mounts `digest` into `repository` from `from`, another repository of the same registry.
    /// False when the registry declined (it then offers an upload session, left to expire).
    pub async fn mount_blob(
        &self,
        registry: &str,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<bool, RegistryError> {
        let host = self.host(registry)?;
        let mut url = self
            .url(&host, &format!("v2/{repository}/blobs/uploads/"))
            .await?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let scope = format!("{} {}", push_scope(repository), pull_scope(from));
        let what = format!("mount of {} into {registry}/{repository}", digest.short());
        let (host, url, scope) = (&host, &url, &scope);
        self.push_retrier(what)
            .run(|attempt| async move {
                let request = Request::push(Method::POST, url.clone(), repository, scope)
                    .limit(self.small_limit(attempt));
                let resp = host.execute(self, request).await?.response;
                match resp.status() {
                    StatusCode::CREATED => Ok(true),
                    StatusCode::ACCEPTED => Ok(false),
                    _ => Err(host.push_error(resp, repository).await),
                }
            })
            .await
    }

    /// Puts a manifest's exact bytes under `reference` (a tag or its digest) with its media
    /// type, and checks the digest the registry answers with.
    pub async fn put_manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        let host = self.host(registry)?;
        let url = self
            .url(&host, &format!("v2/{repository}/manifests/{reference}"))
            .await?;
        let digest = Digest::sha256_of(&bytes);
        let mut headers = HeaderMap::new();
        let content_type = HeaderValue::from_str(media_type).map_err(|_| {
            host.err(
                ErrorKind::Protocol,
                url.as_str(),
                format!("media type {media_type:?} is not a header value"),
            )
        })?;
        headers.insert(CONTENT_TYPE, content_type);
        let scope = push_scope(repository);
        let body = || Some(reqwest::Body::from(bytes.clone()));
        let what = format!("manifest {registry}/{repository}:{reference}");
        self.push_retrier(what)
            .run(|attempt| {
                let request = Request::push(Method::PUT, url.clone(), repository, &scope)
                    .headers(headers.clone())
                    .body(&body)
                    .limit(self.small_limit(attempt));
                let (host, digest) = (&host, &digest);
                async move {
                    let resp = host.execute(self, request).await?.response;
                    if resp.status() != StatusCode::CREATED {
                        return Err(host.push_error(resp, repository).await);
                    }
                    check_served_digest(host, &resp, digest)
                }
            })
            .await
    }
}

impl crate::error::Diagnostic for UploadError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            UploadError::Registry(e) => e.kind(),
            UploadError::Local { .. } => crate::error::Kind::Bundle,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            UploadError::Registry(e) => e.hint(),
            UploadError::Local { .. } => None,
        }
    }
}
