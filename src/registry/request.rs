//! The one request pipeline: every request to a registry (pull or push) is a [`Request`]
//! value that [`Host::execute`] sends the same way: it takes a connection slot, adds the
//! Authorization the scope needs (only for the registry itself, never for a host an upload
//! URL or a redirect names), re-authenticates once on 401, tells a refused storage redirect
//! from the registry's own refusal, and logs each answer (`send_traced`). Retries are the
//! caller's, through [`super::retry::Retrier::run`].

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::OwnedSemaphorePermit;
use url::Url;

use super::Registries;
use super::auth::pull_scope;
use super::error::{ErrorKind, RegistryError, storage_message};
use super::host::{Host, Limit};
use super::limits::error_body;

/// Builds a request body anew for each send (a re-sent request after a 401 needs a fresh one).
pub(super) type BodyFn<'a> = &'a (dyn Fn() -> Option<reqwest::Body> + Sync);

/// What status answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accept {
    /// A success only; anything else becomes the registry's error (a pull).
    Success,
    /// Any status: the caller reads it (a push, a HEAD that may answer 404).
    AnyStatus,
}

/// One request to a registry, as a value.
pub(super) struct Request<'a> {
    method: Method,
    url: Url,
    repository: &'a str,
    scope: String,
    headers: HeaderMap,
    body: Option<BodyFn<'a>>,
    limit: Limit,
    accept: Accept,
}

impl<'a> Request<'a> {
    /// A GET of `url` for `repository` with the pull scope; a non-success status is an error.
    pub(super) fn pull(url: Url, repository: &'a str) -> Request<'a> {
        Request {
            method: Method::GET,
            url,
            repository,
            scope: pull_scope(repository),
            headers: HeaderMap::new(),
            body: None,
            limit: None,
            accept: Accept::Success,
        }
    }

    /// A `method` request of `url` for `repository` with `scope`, answering any status.
    pub(super) fn push(method: Method, url: Url, repository: &'a str, scope: &str) -> Request<'a> {
        Request {
            method,
            url,
            repository,
            scope: scope.to_owned(),
            headers: HeaderMap::new(),
            body: None,
            limit: None,
            accept: Accept::AnyStatus,
        }
    }

    /// With these headers.
    pub(super) fn headers(mut self, headers: HeaderMap) -> Request<'a> {
        self.headers = headers;
        self
    }

    /// With a body, built anew for each send.
    pub(super) fn body(mut self, body: BodyFn<'a>) -> Request<'a> {
        self.body = Some(body);
        self
    }

    /// Bounded: no response headers within `time` fails with `detail`.
    pub(super) fn limit(mut self, (time, detail): (Duration, String)) -> Request<'a> {
        self.limit = Some((time, detail));
        self
    }
}

/// A response and the connection slot it holds until dropped (a body still streaming counts
/// against the registry's connection cap).
pub(super) struct Answer {
    pub response: Response,
    pub slot: OwnedSemaphorePermit,
}

impl Host {
    /// Sends `request` through the pipeline (see the module's comment).
    pub(super) async fn execute(
        &self,
        pool: &Registries,
        request: Request<'_>,
    ) -> Result<Answer, RegistryError> {
        let base = self.base(pool).await?;
        let url = &request.url;
        // Credentials go only to the registry itself, never to a host an upload URL names.
        let same_host = url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default();
        let slot = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let mut reauthenticated = false;
        loop {
            let mut req = self
                .client(pool)
                .request(request.method.clone(), url.clone())
                .headers(request.headers.clone());
            if same_host
                && let Some(auth) = self
                    .authorization_for(pool, request.repository, &request.scope)
                    .await?
            {
                req = req.header(AUTHORIZATION, auth);
            }
            if let Some(body) = request.body.and_then(|make| make()) {
                req = req.body(body);
            }
            let response = self
                .send_traced(
                    req,
                    (request.method.as_str(), url.as_str()),
                    request.limit.clone(),
                    |e| self.transport_error(url.as_str(), e),
                )
                .await?;
            let status = response.status();
            if response.url() != url {
                // A redirect (object storage): where the bytes come from, query cut.
                tracing::debug!(
                    "redirected to {}",
                    crate::redact::redact(response.url().as_str())
                );
            }
            if request.accept == Accept::Success && status.is_success() {
                return Ok(Answer { response, slot });
            }
            let redirected = response.url().host_str() != url.host_str()
                || response.url().port_or_known_default() != url.port_or_known_default();
            if request.accept == Accept::Success
                && redirected
                && (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
            {
                // Object storage refusing a pre-signed URL (expired, clock skew): asking the
                // registry again yields a fresh one, so this is worth a retry.
                let storage_url = response.url().to_string();
                let body = error_body(response, pool.options.retry.stall_timeout).await;
                return Err(self.err(
                    ErrorKind::Storage(status.as_u16()),
                    &storage_url,
                    storage_message(&body),
                ));
            }
            if status == StatusCode::UNAUTHORIZED && !reauthenticated && same_host {
                // The token expired, or the registry wants a challenge we had not seen.
                reauthenticated = true;
                self.remember_challenge(response.headers());
                self.tokens
                    .lock()
                    .expect("token lock")
                    .forget(&request.scope);
                continue;
            }
            if request.accept == Accept::AnyStatus {
                return Ok(Answer { response, slot });
            }
            let headers = response.headers().clone();
            let body = error_body(response, pool.options.retry.stall_timeout).await;
            return Err(self.status_error(
                status,
                url.as_str(),
                &body,
                Some(&headers),
                Some(request.repository),
            ));
        }
    }

    /// The time limit of a pull attempt (30 s doubling to 5 min for the headers): a registry
    /// that takes a while to start answering (a cold cache) succeeds on a later attempt. Once
    /// the body flows, the stall timer and the minimum rate take over.
    pub(super) fn pull_limit(pool: &Registries, attempt: u32) -> (Duration, String) {
        let timeout = pool.options.retry.attempt_timeout(attempt);
        let detail = format!(
            "no response in {} s (--response-timeout, doubling each attempt)",
            timeout.as_secs_f64()
        );
        (timeout, detail)
    }
}
