//! One registry: where its API lives (https, or http on loopback), how it wants to be
//! authenticated, how many requests may be in flight to it, and the retry loop.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::header::{AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};
use url::Url;

use super::Registries;
use super::auth::{Challenge, TokenCache, TokenResponse, parse_challenge};
use super::error::{ErrorKind, RegistryError, registry_message};
use super::retry::parse_retry_after;
use crate::report::Event;

/// How long the HTTPS probe of a registry that may also speak plain HTTP waits.
const HTTPS_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A registry host and its connection state.
pub(crate) struct Host {
    /// As written in references (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    api_host: String,
    insecure: bool,
    loopback: bool,
    base: OnceCell<Url>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<TokenCache>,
    token_fetch: tokio::sync::Mutex<()>,
    permits: Arc<Semaphore>,
}

/// `host:port` -> `host` (handles `[::1]:5000`).
pub(crate) fn strip_port(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    }
}

fn is_loopback(registry: &str) -> bool {
    let h = strip_port(registry);
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Host {
    pub fn new(registry: &str, insecure: bool, connections: usize) -> Host {
        let api_host = match registry {
            "docker.io" | "index.docker.io" => "registry-1.docker.io".to_owned(),
            other => other.to_owned(),
        };
        Host {
            registry: registry.to_owned(),
            api_host,
            insecure,
            loopback: is_loopback(registry),
            base: OnceCell::new(),
            challenge: Mutex::new(None),
            tokens: Mutex::new(TokenCache::default()),
            token_fetch: tokio::sync::Mutex::new(()),
            permits: Arc::new(Semaphore::new(connections.max(1))),
        }
    }

    fn client<'a>(&self, pool: &'a Registries) -> &'a reqwest::Client {
        if self.insecure {
            &pool.unverified
        } else {
            &pool.verified
        }
    }

    fn err(&self, kind: ErrorKind, url: &str, detail: impl Into<String>) -> RegistryError {
        RegistryError::new(kind, &self.registry, url, detail)
    }

    /// The API base URL, found once by pinging `/v2/`: https, falling back to plain http only
    /// for loopback registries and those named with `--insecure-registry`.
    pub async fn base(&self, pool: &Registries) -> Result<Url, RegistryError> {
        self.base
            .get_or_try_init(|| async {
                let schemes: &[&str] = if self.insecure || self.loopback { &["https", "http"] } else { &["https"] };
                let mut last = None;
                for scheme in schemes {
                    let url = format!("{scheme}://{}/v2/", self.api_host);
                    // A plain-HTTP server may sit silent on a TLS hello: when HTTP is the
                    // fallback, the HTTPS probe gets a short limit.
                    let timeout = if *scheme == "https" && schemes.len() > 1 {
                        HTTPS_PROBE_TIMEOUT.min(pool.options.retry.attempt_timeout(1))
                    } else {
                        pool.options.retry.attempt_timeout(1)
                    };
                    let sent = tokio::time::timeout(timeout, self.client(pool).get(&url).send()).await;
                    match sent {
                        Ok(Ok(resp)) => {
                            if resp.status() == StatusCode::UNAUTHORIZED {
                                self.remember_challenge(resp.headers());
                            }
                            return Ok(Url::parse(&format!("{scheme}://{}/", self.api_host)).expect("valid base"));
                        }
                        Ok(Err(e)) => last = Some(self.transport_error(&url, &e)),
                        Err(_) => last = Some(self.err(ErrorKind::Timeout, &url, format!("no answer in {} s", timeout.as_secs()))),
                    }
                }
                let mut e = last.expect("at least one scheme tried");
                if e.hint.is_none() {
                    e.hint = Some(if self.loopback {
                        format!("is a registry running at {}?", self.registry)
                    } else if !self.insecure {
                        format!(
                            "check the name and your network; if {} serves plain HTTP, pass --insecure-registry {}",
                            self.registry, self.registry
                        )
                    } else {
                        "check the name and your network".into()
                    });
                }
                Err(e)
            })
            .await
            .cloned()
    }

    fn remember_challenge(&self, headers: &HeaderMap) {
        let parsed = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(parse_challenge)
            // Prefer Bearer when a registry offers both.
            .max_by_key(|c| matches!(c, Challenge::Bearer { .. }));
        if let Some(c) = parsed {
            *self.challenge.lock().expect("challenge lock") = Some(c);
        }
    }

    /// Classifies a reqwest error; certificate problems are not worth retrying.
    pub fn transport_error(&self, url: &str, e: &reqwest::Error) -> RegistryError {
        // reqwest's outer layers say "error sending request for url (…): client error
        // (Connect)"; the cause users can act on is the innermost one.
        let mut messages = vec![e.to_string()];
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            messages.push(s.to_string());
            source = s.source();
        }
        let innermost = messages.last().cloned().unwrap_or_default();
        let chain = if innermost.contains("InvalidContentType") {
            // rustls's words for a server that answered a TLS hello with something else.
            "the server does not speak TLS there (plain HTTP?)".to_owned()
        } else if e.is_connect() && !innermost.contains("certificate") {
            format!("cannot connect: {innermost}")
        } else if e.is_body() || e.is_decode() {
            format!("the response body broke off: {innermost}")
        } else {
            innermost
        };
        if messages.iter().any(|m| m.contains("certificate")) {
            return self.err(ErrorKind::Protocol, url, format!("TLS: {chain}")).with_hint(format!(
                "the certificate of {} is not trusted; pass --insecure-registry {} to skip verification (test setups only)",
                self.registry, self.registry
            ));
        }
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Transport
        };
        self.err(kind, url, chain)
    }

    /// The Authorization header for a request in `scope`, fetching a token when needed.
    async fn authorization(
        &self,
        pool: &Registries,
        scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        let challenge = self.challenge.lock().expect("challenge lock").clone();
        let credential = pool.credentials.credential(&self.registry);
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(credential.and_then(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service, .. }) => {
                if let Some(t) = self.tokens.lock().expect("token lock").get(scope) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                // One token request per scope at a time, however many blobs wait for it.
                let _guard = self.token_fetch.lock().await;
                if let Some(t) = self.tokens.lock().expect("token lock").get(scope) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let mut url = Url::parse(&realm).map_err(|e| {
                    self.err(
                        ErrorKind::Protocol,
                        &realm,
                        format!("token realm is not a URL: {e}"),
                    )
                })?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = &service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                }
                let mut req = self.client(pool).get(url.clone());
                if let Some(h) = credential.as_ref().and_then(|c| c.basic_header()) {
                    req = req.header(AUTHORIZATION, h);
                }
                let timeout = pool.options.retry.attempt_timeout(1);
                let resp = tokio::time::timeout(timeout, req.send())
                    .await
                    .map_err(|_| {
                        self.err(ErrorKind::Timeout, url.as_str(), "token request timed out")
                    })?
                    .map_err(|e| self.transport_error(url.as_str(), &e))?;
                let status = resp.status();
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| self.transport_error(url.as_str(), &e))?;
                if !status.is_success() {
                    return Err(self.status_error(status, url.as_str(), &body, None));
                }
                let token = serde_json::from_slice::<TokenResponse>(&body)
                    .ok()
                    .and_then(TokenResponse::into_token)
                    .ok_or_else(|| {
                        self.err(
                            ErrorKind::Protocol,
                            url.as_str(),
                            "token response has no token",
                        )
                    })?;
                let value = token.value.clone();
                self.tokens.lock().expect("token lock").put(scope, token);
                Ok(Some(format!("Bearer {value}")))
            }
        }
    }

    /// An error for a non-success status, with the registry's own message.
    pub fn status_error(
        &self,
        status: StatusCode,
        url: &str,
        body: &[u8],
        headers: Option<&HeaderMap>,
    ) -> RegistryError {
        let kind = match status.as_u16() {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Denied,
            404 => ErrorKind::NotFound,
            429 => ErrorKind::TooManyRequests,
            s => ErrorKind::Status(s),
        };
        let mut e = self.err(kind.clone(), url, registry_message(body));
        e.retry_after = headers
            .and_then(|h| h.get(reqwest::header::RETRY_AFTER))
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        match kind {
            ErrorKind::Unauthorized => e.with_hint(format!(
                "authentication required for {}; log in with `docker login {}` (ferry reads the same credentials) or check the repository name",
                self.registry, self.registry
            )),
            ErrorKind::Denied => e.with_hint("the credentials in use may not pull this repository"),
            _ => e,
        }
    }

    /// One GET to `path` (relative to the API base) in `scope`. Re-authenticates once on 401.
    /// The returned permit counts against the registry's connection cap until dropped.
    pub async fn get(
        &self,
        pool: &Registries,
        scope: &str,
        path: &str,
        headers: HeaderMap,
        attempt: u32,
    ) -> Result<(Response, OwnedSemaphorePermit), RegistryError> {
        let base = self.base(pool).await?;
        let url = base.join(path).expect("registry paths are valid URL paths");
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let mut reauthenticated = false;
        loop {
            let mut req = self.client(pool).get(url.clone()).headers(headers.clone());
            if let Some(auth) = self.authorization(pool, scope).await? {
                req = req.header(AUTHORIZATION, auth);
            }
            let timeout = pool.options.retry.attempt_timeout(attempt);
            let resp = tokio::time::timeout(timeout, req.send())
                .await
                .map_err(|_| {
                    self.err(
                        ErrorKind::Timeout,
                        url.as_str(),
                        format!("no response in {} s", timeout.as_secs()),
                    )
                })?
                .map_err(|e| self.transport_error(url.as_str(), &e))?;
            let status = resp.status();
            if status.is_success() {
                return Ok((resp, permit));
            }
            if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                // The token expired, or the registry wants a challenge we had not seen.
                reauthenticated = true;
                self.remember_challenge(resp.headers());
                self.tokens.lock().expect("token lock").forget(scope);
                continue;
            }
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.status_error(status, url.as_str(), &body, Some(&headers)));
        }
    }
}

/// Counts the attempts at one request and decides, after each failure, whether to try again
/// (after backoff or `Retry-After`) or give up.
pub struct Retrier<'a> {
    pool: &'a Registries,
    what: String,
    start: Instant,
    attempts: u32,
    in_a_row: u32,
}

impl<'a> Retrier<'a> {
    pub(crate) fn new(pool: &'a Registries, what: String) -> Retrier<'a> {
        Retrier {
            pool,
            what,
            start: Instant::now(),
            attempts: 0,
            in_a_row: 0,
        }
    }

    /// Starts the next attempt; returns its number (1-based).
    pub fn next_attempt(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }

    /// Retries so far.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }

    /// Records a failed attempt. `progressed` (bytes were stored) resets the count of failures
    /// in a row. Returns after the backoff when another attempt is worth it, or the final
    /// error (with attempts and elapsed time) when not.
    pub async fn failed(
        &mut self,
        mut error: RegistryError,
        progressed: bool,
    ) -> Result<(), RegistryError> {
        let policy = &self.pool.options.retry;
        self.in_a_row = if progressed { 0 } else { self.in_a_row + 1 };
        error.attempts = self.attempts;
        error.elapsed = self.start.elapsed();
        if !error.kind.is_retryable() || self.in_a_row > policy.retries {
            return Err(error);
        }
        if error
            .retry_after
            .is_some_and(|ra| ra > policy.max_retry_after)
        {
            error
                .detail
                .push_str(" (Retry-After is longer than ferry waits)");
            return Err(error);
        }
        let delay = policy.delay(self.in_a_row.max(1), error.retry_after);
        if policy.past_deadline_after(delay) {
            error
                .detail
                .push_str(" (the --timeout deadline leaves no time to retry)");
            return Err(error);
        }
        let reason = error
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        self.pool.reporter.event(&Event::Retrying {
            what: self.what.clone(),
            attempt: self.attempts,
            delay,
            reason,
        });
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert_eq!(strip_port("host:5000"), "host");
        assert_eq!(strip_port("host"), "host");
    }
}
