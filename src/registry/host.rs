//! One registry: where its API lives (https, or http on loopback), its TLS client, how many
//! requests may be in flight to it. Requests: `request.rs`; tokens: `auth.rs`; retries:
//! `retry.rs`.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use tokio::sync::{OnceCell, Semaphore};
use url::Url;

use super::Registries;
use super::auth::{Challenge, TokenCache, parse_challenge};
use super::error::{ErrorKind, Missing, RegistryError, registry_code, registry_message};
use super::retry::parse_retry_after;
use super::tls::{self, CertProblem};

/// How long the HTTPS probe of a registry that may also speak plain HTTP waits.
const HTTPS_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A registry host and its connection state.
pub(crate) struct Host {
    /// As written in references (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    api_host: String,
    insecure: bool,
    loopback: bool,
    /// A client of its own, when certs.d holds CA or client certificates for it.
    own_client: Option<reqwest::Client>,
    /// Where the certificates the user trusts for it come from (`--ca-file`, certs.d files).
    trusted: Vec<String>,
    pub(super) base: OnceCell<Url>,
    pub(super) challenge: Mutex<Option<Challenge>>,
    pub(super) tokens: Mutex<TokenCache>,
    /// One token request at a time, however many blobs wait for a token.
    pub(super) token_fetch: tokio::sync::Mutex<()>,
    pub(super) permits: Arc<Semaphore>,
    /// The pool's credentials, asked where they came from when a 401 is explained.
    pub(super) credentials: Arc<dyn crate::credentials::CredentialSource>,
}

/// Logs one answered request (debug): method, URL with credentials and query removed, status
/// and time. Never a header: they may carry credentials.
fn trace_response(method: &str, url: &str, resp: &Response, started: Instant) {
    tracing::debug!(
        "{method} {} -> {} in {} ms",
        crate::redact::redact(url),
        resp.status().as_u16(),
        started.elapsed().as_millis()
    );
    if tracing::enabled!(tracing::Level::TRACE) {
        trace_headers(resp.headers());
    }
}

/// The response headers that explain a registry's answer (`-vv`), redacted: an allow-list,
/// so that no credential-bearing header (Authorization, Set-Cookie) is ever shown.
fn trace_headers(headers: &reqwest::header::HeaderMap) {
    const SHOWN: [&str; 9] = [
        "content-type",
        "content-length",
        "content-range",
        "docker-content-digest",
        "location",
        "www-authenticate",
        "retry-after",
        "ratelimit-remaining",
        "docker-distribution-api-version",
    ];
    for name in SHOWN {
        for value in headers.get_all(name) {
            let value = crate::untrusted::printable(&String::from_utf8_lossy(value.as_bytes()))
                .into_owned();
            tracing::trace!("  < {name}: {}", crate::redact::redact(&value));
        }
    }
}

/// Logs a request that got no answer (debug).
fn trace_no_response(method: &str, url: &str, error: &RegistryError, started: Instant) {
    tracing::debug!(
        "{method} {} -> no response after {} ms: {}",
        crate::redact::redact(url),
        started.elapsed().as_millis(),
        crate::redact::redact(&error.detail)
    );
}

/// A request's time limit for the headers, and what to say when it passes.
pub(super) type Limit = Option<(std::time::Duration, String)>;

impl Host {
    /// Sends one request (bounded by `limit` when given) and logs it (debug) with its status
    /// and time, or why no answer came. Every request to a registry or its token server goes
    /// through here, so `-v` shows each one the same way.
    pub(super) async fn send_traced(
        &self,
        req: reqwest::RequestBuilder,
        (method, url): (&str, &str),
        limit: Limit,
        transport: impl FnOnce(&reqwest::Error) -> RegistryError,
    ) -> Result<Response, RegistryError> {
        let started = Instant::now();
        let sent = match limit {
            Some((time, detail)) => tokio::time::timeout(time, req.send())
                .await
                .map_err(|_| self.err(ErrorKind::Timeout, url, detail)),
            None => Ok(req.send().await),
        };
        let result = sent.and_then(|r| r.map_err(|e| transport(&e)));
        match &result {
            Ok(resp) => trace_response(method, url, resp, started),
            Err(e) => trace_no_response(method, url, e, started),
        }
        result
    }
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

/// Whether a registry name (host[:port]) is on this machine: localhost or a loopback address.
pub fn is_loopback(registry: &str) -> bool {
    let h = strip_port(registry);
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Host {
    pub fn new(
        registry: &str,
        insecure: bool,
        connections: usize,
        own_client: Option<reqwest::Client>,
        trusted: Vec<String>,
        credentials: Arc<dyn crate::credentials::CredentialSource>,
    ) -> Host {
        let api_host = crate::docker_hub::api_host(registry).to_owned();
        Host {
            registry: registry.to_owned(),
            api_host,
            insecure,
            loopback: is_loopback(registry),
            own_client,
            trusted,
            base: OnceCell::new(),
            challenge: Mutex::new(None),
            tokens: Mutex::new(TokenCache::default()),
            token_fetch: tokio::sync::Mutex::new(()),
            permits: Arc::new(Semaphore::new(connections.max(1))),
            credentials,
        }
    }

    pub(super) fn client<'a>(&'a self, pool: &'a Registries) -> &'a reqwest::Client {
        match (&self.own_client, self.insecure) {
            (Some(c), _) => c,
            (None, true) => &pool.unverified,
            (None, false) => &pool.verified,
        }
    }

    pub(super) fn err(
        &self,
        kind: ErrorKind,
        url: &str,
        detail: impl Into<String>,
    ) -> RegistryError {
        RegistryError::new(kind, &self.registry, url, detail)
    }

    /// The API base URL, found once by pinging `/v2/`: https, falling back to plain http only
    /// for loopback registries and those named with `--insecure-registry`.
    pub async fn base(&self, pool: &Registries) -> Result<Url, RegistryError> {
        self.base
            .get_or_try_init(|| async {
                let found = if self.insecure || self.loopback {
                    self.probe_both(pool).await
                } else {
                    let timeout = pool.options.retry.attempt_timeout(1);
                    self.probe(pool, "https", timeout)
                        .await
                        .map(|r| ("https", r))
                };
                match found {
                    Ok((scheme, resp)) => {
                        if resp.status() == StatusCode::UNAUTHORIZED {
                            self.remember_challenge(resp.headers());
                        }
                        Ok(Url::parse(&format!("{scheme}://{}/", self.api_host))
                            .expect("valid base"))
                    }
                    Err(e) if e.hint.is_none() => Err(e.with_hint(self.unreachable_hint())),
                    Err(e) => Err(e),
                }
            })
            .await
            .cloned()
    }

    fn unreachable_hint(&self) -> String {
        let r = &self.registry;
        if self.loopback {
            format!("is a registry running at {r}?")
        } else if !self.insecure {
            format!(
                "check the name and your network; if {r} serves plain HTTP, pass --insecure-registry {r}"
            )
        } else {
            "check the name and your network".into()
        }
    }

    /// One GET of `/v2/` over `scheme`.
    async fn probe(
        &self,
        pool: &Registries,
        scheme: &str,
        timeout: std::time::Duration,
    ) -> Result<Response, RegistryError> {
        let url = format!("{scheme}://{}/v2/", self.api_host);
        let limit = Some((timeout, format!("no answer in {} s", timeout.as_secs_f64())));
        let req = self.client(pool).get(&url);
        self.send_traced(req, ("GET", &url), limit, |e| self.transport_error(&url, e))
            .await
    }

    /// HTTPS and plain HTTP at once, HTTPS preferred. A plain-HTTP server may sit silent on a
    /// TLS hello until the probe times out; racing the two, its HTTP answer wins at once. A
    /// TLS server answers plain HTTP with 400 ("HTTP request to an HTTPS server"), so a 400
    /// waits for the HTTPS probe.
    async fn probe_both(
        &self,
        pool: &Registries,
    ) -> Result<(&'static str, Response), RegistryError> {
        let timeout = pool.options.retry.attempt_timeout(1);
        let https = self.probe(pool, "https", HTTPS_PROBE_TIMEOUT.min(timeout));
        let http = self.probe(pool, "http", timeout);
        tokio::pin!(https, http);
        let mut https_error: Option<RegistryError> = None;
        let mut http_result: Option<Result<Response, RegistryError>> = None;
        loop {
            tokio::select! {
                r = &mut https, if https_error.is_none() => match r {
                    Ok(resp) => return Ok(("https", resp)),
                    // A certificate problem proves the server speaks TLS: falling back to
                    // plain HTTP would only trade a clear error for a confusing one.
                    Err(e) if matches!(e.kind, ErrorKind::Certificate | ErrorKind::Protocol) => {
                        return Err(e);
                    }
                    Err(e) => https_error = Some(e),
                },
                r = &mut http, if http_result.is_none() => match r {
                    Ok(resp) if resp.status() != StatusCode::BAD_REQUEST => return Ok(("http", resp)),
                    other => http_result = Some(other),
                },
            }
            if let Some(https_error) = https_error.take_if(|_| http_result.is_some()) {
                return match http_result.take().expect("both answered") {
                    // A 400 to plain HTTP is a TLS server's: why HTTPS failed is the story
                    // (a refused handshake, say), not "an HTTP request to an HTTPS server".
                    Ok(resp) if resp.status() == StatusCode::BAD_REQUEST => Err(https_error),
                    r => r.map(|resp| ("http", resp)),
                };
            }
        }
    }

    pub(super) fn remember_challenge(&self, headers: &HeaderMap) {
        let parsed = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(parse_challenge)
            // Prefer Bearer when a registry offers both.
            .max_by_key(|c| matches!(c, Challenge::Bearer { .. }));
        if let Some(c) = parsed {
            match &c {
                Challenge::Basic => {
                    tracing::debug!("{} asks for Basic authentication", self.registry)
                }
                Challenge::Bearer { realm, service, .. } => tracing::debug!(
                    "{} asks for a Bearer token from {} (service {})",
                    self.registry,
                    crate::redact::redact(realm),
                    service.as_deref().unwrap_or("-")
                ),
            }
            *self.challenge.lock().expect("challenge lock") = Some(c);
        }
    }

    /// Classifies a reqwest error; certificate problems are their own kind (the same for the
    /// whole registry: said once, then counted) and not worth retrying.
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
        // A name the resolver does not know (not a temporary resolver failure, which another
        // attempt may get past) fails at once: five retries would only add twelve seconds.
        let unresolved = messages.iter().any(|m| m == "dns error")
            && !innermost.contains("Temporary failure")
            && !innermost.contains("try again");
        if unresolved {
            let host = strip_port(&self.registry);
            return self
                .err(ErrorKind::Unresolved, url, innermost.clone())
                .with_hint(format!(
                    "check the spelling of {host}: this machine's resolver (/etc/hosts, \
                     /etc/resolv.conf) does not know it"
                ));
        }
        let chain = if innermost.contains("InvalidContentType") {
            // rustls's words for a server that answered a TLS hello with something else.
            "the server does not speak TLS there (plain HTTP?)".to_owned()
        } else if e.is_connect() && !innermost.contains("certificate") {
            format!("cannot connect: {innermost}")
        } else {
            innermost
        };
        let problem = tls::cert_problem(e).or_else(|| {
            messages
                .iter()
                .any(|m| m.contains("certificate"))
                .then_some(CertProblem::Trust)
        });
        if let Some(problem) = problem {
            let chain = if chain.contains("CaUsedAsEndEntity") {
                "the server's certificate is a CA certificate, and not one of those trusted".into()
            } else {
                chain
            };
            return self
                .err(ErrorKind::Certificate, url, format!("TLS: {chain}"))
                .with_hint(self.certificate_hint(problem));
        }
        if e.is_redirect() {
            // A loop or an endless chain: asking again follows the same redirects.
            let at = e.url().map_or(url.to_owned(), ToString::to_string);
            return self.err(
                ErrorKind::Protocol,
                &at,
                "too many redirects (a redirect loop?)",
            );
        }
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_body() || e.is_decode() {
            ErrorKind::Interrupted
        } else {
            ErrorKind::Transport
        };
        self.err(kind, url, chain)
    }

    /// What to do about a refused certificate; never "pass --ca-file" to a user who did.
    fn certificate_hint(&self, problem: CertProblem) -> String {
        let r = &self.registry;
        let skip = format!("--insecure-registry {r} skips verification (test setups only)");
        match problem {
            CertProblem::Name => format!(
                "the certificate of {r} does not name {}: use a name it lists (its \
                 subjectAltName), or make it with -addext subjectAltName=DNS:NAME,IP:ADDRESS",
                strip_port(r)
            ),
            CertProblem::Time => format!(
                "the certificate of {r} has expired or is not valid yet: check this machine's \
                 clock and the certificate's dates (openssl x509 -noout -dates -in FILE)"
            ),
            CertProblem::Trust if !self.trusted.is_empty() => format!(
                "the certificate of {r} is neither signed by nor one of the certificates given \
                 ({}): check that it is the registry's CA or its own certificate; {skip}",
                self.trusted.join(", ")
            ),
            CertProblem::Trust => format!(
                "the certificate of {r} is not trusted: pass --ca-file CA.pem, or put the CA as \
                 /etc/containers/certs.d/{r}/ca.crt (or under --cert-dir DIR/{r}/); {skip}"
            ),
        }
    }

    /// An error for a non-success status, with the registry's own message.
    pub fn status_error(
        &self,
        status: StatusCode,
        url: &str,
        body: &[u8],
        headers: Option<&HeaderMap>,
        repository: Option<&str>,
    ) -> RegistryError {
        let kind = match status.as_u16() {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Denied,
            404 => ErrorKind::NotFound,
            429 => ErrorKind::TooManyRequests,
            s => ErrorKind::Status(s),
        };
        let retry_after = headers
            .and_then(|h| h.get(reqwest::header::RETRY_AFTER))
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let e = self
            .err(kind.clone(), url, registry_message(body))
            .with_retry_after(retry_after);
        let r = &self.registry;
        let repo = repository
            .map(|p| format!(" (repository {p})"))
            .unwrap_or_default();
        match kind {
            ErrorKind::Unauthorized => {
                let from = self.credentials.origin(r, repository.unwrap_or_default());
                e.with_hint(format!(
                    "authentication required for {r}{repo}: `ferry login {r}`, or --authfile / \
                     --creds; check the repository name too; {from}"
                ))
            }
            ErrorKind::Denied => {
                e.with_hint(format!("the credentials in use for {r} may not pull{repo}"))
            }
            ErrorKind::NotFound => {
                let Some(p) = repository else { return e };
                let missing = Missing::classify(registry_code(body).as_deref(), url);
                let hint = match &missing {
                    Missing::Repository => format!(
                        "check the repository name: {r} has no repository {p} (a typo? another \
                         registry or namespace?)"
                    ),
                    Missing::Tag(_) => format!(
                        "check the tag; list those that exist with `skopeo list-tags docker://{r}/{p}`"
                    ),
                    Missing::Object => return e,
                };
                e.with_missing(missing, p).with_hint(hint)
            }
            _ => e,
        }
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
