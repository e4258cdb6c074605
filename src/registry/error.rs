//! Registry failures, carrying the registry, repository, redacted URL and what to do next.

use std::fmt;
use std::time::Duration;

use crate::redact::redact;

/// What kind of failure, deciding whether it is worth retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404: the manifest, tag or blob does not exist.
    NotFound,
    /// 401 even after authenticating.
    Unauthorized,
    /// 403: credentials lack permission.
    Denied,
    /// 429: the registry is rate limiting.
    TooManyRequests,
    /// Any other HTTP status.
    Status(u16),
    /// Could not connect, or the connection failed before a response.
    Transport,
    /// The registry's name does not resolve (no such host): asking again does not help.
    Unresolved,
    /// The response body broke off (reset, closed early).
    Interrupted,
    /// Object storage behind a redirect refused (an expired or skewed pre-signed URL).
    Storage(u16),
    /// No bytes arrived within the stall timeout.
    Stalled,
    /// The body came slower than the minimum rate (`--min-rate`).
    TooSlow,
    /// The attempt or the overall deadline ran out.
    Timeout,
    /// Content did not match its digest or size: discarded, worth another try.
    Corrupt,
    /// Credentials could not be read (a failing helper, a malformed file).
    Credentials,
    /// The registry answered with something it must not (bad digest, oversized manifest,
    /// wrong Content-Range, malformed token response...).
    Protocol,
    /// The TLS certificate was refused (an unknown CA, expired, naming another host): the same
    /// for every image of the registry, and no retry changes it.
    Certificate,
}

impl ErrorKind {
    /// Whether another attempt could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ErrorKind::Transport
            | ErrorKind::Interrupted
            | ErrorKind::Storage(_)
            | ErrorKind::Stalled
            | ErrorKind::TooSlow
            | ErrorKind::Timeout
            | ErrorKind::TooManyRequests
            | ErrorKind::Corrupt => true,
            ErrorKind::Status(s) => *s == 408 || *s >= 500,
            _ => false,
        }
    }
}

/// A failed registry interaction (boxed: errors travel through many `Result`s).
#[derive(Debug, Clone)]
pub struct RegistryError(Box<RegistryErrorDetails>);

/// What a [`RegistryError`] holds; reachable through `Deref`.
#[derive(Debug, Clone)]
pub struct RegistryErrorDetails {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The registry as the user named it (`docker.io`).
    pub registry: String,
    /// The URL requested, credentials and query strings removed.
    pub url: String,
    /// The cause in words (the registry's error message, the I/O error...).
    pub detail: String,
    /// Attempts made.
    pub attempts: u32,
    /// Time spent on all attempts.
    pub elapsed: Duration,
    /// What the user can do about it.
    pub hint: Option<String>,
    /// A `Retry-After` the registry asked for.
    pub retry_after: Option<Duration>,
    /// With [`ErrorKind::NotFound`]: what the registry says is missing, and in which
    /// repository.
    pub missing: Option<(Missing, String)>,
    /// Why retrying stopped before the retries ran out, when it did.
    pub stopped: Option<Stopped>,
    /// The credentials failure behind an [`ErrorKind::Credentials`] error.
    pub cause: Option<crate::credentials::CredentialError>,
}

/// Why a retryable failure was not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The registry's `Retry-After` asks for longer than ferry waits.
    RetryAfterTooLong,
    /// The `--timeout` deadline leaves no time for another attempt.
    Deadline,
}

impl Stopped {
    fn as_str(self) -> &'static str {
        match self {
            Stopped::RetryAfterTooLong => "Retry-After is longer than ferry waits",
            Stopped::Deadline => "the --timeout deadline leaves no time to retry",
        }
    }
}

/// What a 404 is missing, from the registry's error code (distribution's `NAME_UNKNOWN`,
/// `MANIFEST_UNKNOWN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The registry does not know the repository.
    Repository,
    /// The repository exists; this tag does not.
    Tag(String),
    /// A manifest by digest, a blob, a referrers list.
    Object,
}

impl Missing {
    /// Classifies a 404 on `url` by the error `code` of its body.
    pub(crate) fn classify(code: Option<&str>, url: &str) -> Missing {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        let tag = path
            .rsplit_once("/manifests/")
            .map(|(_, r)| r)
            .filter(|r| !r.contains(':') && !r.contains('/'));
        match (code, tag) {
            (Some("NAME_UNKNOWN"), _) => Missing::Repository,
            (Some("MANIFEST_UNKNOWN"), Some(t)) => Missing::Tag(t.to_owned()),
            _ => Missing::Object,
        }
    }
}

impl std::ops::Deref for RegistryError {
    type Target = RegistryErrorDetails;
    fn deref(&self) -> &RegistryErrorDetails {
        &self.0
    }
}

impl RegistryError {
    pub(crate) fn new(
        kind: ErrorKind,
        registry: &str,
        url: &str,
        detail: impl Into<String>,
    ) -> Self {
        RegistryError(Box::new(RegistryErrorDetails {
            kind,
            registry: registry.to_owned(),
            url: redact(url),
            // Details quote registries and object stores, which may echo signed URLs, and
            // may hold escape sequences or line breaks meant for a terminal.
            detail: shown(detail.into()),
            attempts: 1,
            elapsed: Duration::ZERO,
            hint: None,
            retry_after: None,
            missing: None,
            stopped: None,
            cause: None,
        }))
    }

    /// Credentials for `registry` could not be read: no URL was asked, the hint is the
    /// cause's (or how to fix the configuration), and the cause stays in the chain.
    pub(crate) fn credentials(registry: &str, cause: crate::credentials::CredentialError) -> Self {
        let hint = cause.hint.clone().unwrap_or_else(|| {
            format!(
                "fix the credential configuration for {registry}, or log in again with \
                 `ferry login {registry}`"
            )
        });
        let mut e = RegistryError::new(ErrorKind::Credentials, registry, "", cause.message.clone());
        e.0.hint = Some(hint);
        e.0.cause = Some(cause);
        e
    }

    /// This error with what to do about it.
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }

    /// This error with its hint replaced (`None`: no hint fits).
    pub(crate) fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.0.hint = hint;
        self
    }

    /// This error with the cause in words replaced (checked and redacted as in `new`).
    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = shown(detail.into());
        self
    }

    /// This error with the `Retry-After` the registry asked for.
    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.0.retry_after = retry_after;
        self
    }

    /// This 404 with what is missing, in which repository.
    pub(crate) fn with_missing(mut self, missing: Missing, repository: &str) -> Self {
        self.0.missing = Some((missing, repository.to_owned()));
        self
    }

    /// This error after `attempts` attempts in `elapsed`.
    pub(crate) fn counted(mut self, attempts: u32, elapsed: Duration) -> Self {
        self.0.attempts = attempts;
        self.0.elapsed = elapsed;
        self
    }

    /// This retryable error, not retried for `why`.
    pub(crate) fn stopped(mut self, why: Stopped) -> Self {
        self.0.stopped = Some(why);
        self
    }

    /// This error as one no retry can cure (the registry keeps failing the same way).
    pub(crate) fn into_protocol(mut self) -> Self {
        self.0.kind = ErrorKind::Protocol;
        self
    }
}

/// What a detail may show: redacted (registries and object stores may echo signed URLs) and
/// printable (it may hold escape sequences or line breaks meant for a terminal).
fn shown(detail: String) -> String {
    crate::untrusted::printable(&redact(&detail)).into_owned()
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.registry;
        let what = match &self.kind {
            ErrorKind::NotFound => match &self.missing {
                Some((Missing::Repository, p)) => format!("repository {p} not found at {r}"),
                Some((Missing::Tag(t), p)) => format!("tag {t} not found in {p} at {r}"),
                _ => format!("not found at {r}"),
            },
            ErrorKind::Unauthorized => format!("{r} requires authentication"),
            ErrorKind::Denied => format!("{r} denied access"),
            ErrorKind::TooManyRequests => format!("{r} is rate limiting (429)"),
            ErrorKind::Status(s) => format!("{r} answered HTTP {s}"),
            ErrorKind::Transport => format!("cannot reach {r}"),
            ErrorKind::Unresolved => format!("{r} does not resolve"),
            ErrorKind::Interrupted => format!("the connection to {r} broke off"),
            ErrorKind::Storage(s) => format!("the storage {r} redirected to refused (HTTP {s})"),
            ErrorKind::Stalled => format!("the connection to {r} stalled"),
            ErrorKind::TooSlow => format!("the transfer from {r} was too slow"),
            ErrorKind::Timeout => format!("{r} timed out"),
            ErrorKind::Corrupt => format!("{r} sent corrupt content"),
            ErrorKind::Credentials => format!("cannot get the credentials for {r}"),
            ErrorKind::Protocol => format!("{r} sent a bad response"),
            ErrorKind::Certificate => format!("the certificate of {r} was refused"),
        };
        write!(f, "{what}")?;
        if !self.url.is_empty() {
            write!(f, " ({})", self.url)?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if let Some(why) = self.stopped {
            write!(f, " ({})", why.as_str())?;
        }
        if self.attempts > 1 {
            write!(
                f,
                " (failed after {} attempts in {:.1} s)",
                self.attempts,
                self.elapsed.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_ref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl crate::error::Diagnostic for RegistryError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match &self.kind {
            ErrorKind::NotFound => match &self.missing {
                Some((Missing::Repository, _)) => Kind::RepositoryNotFound,
                Some((Missing::Tag(_), _)) => Kind::TagNotFound,
                _ => Kind::ManifestNotFound,
            },
            ErrorKind::Unauthorized => Kind::Unauthorized,
            ErrorKind::Denied => Kind::Denied,
            ErrorKind::TooManyRequests => Kind::RateLimited,
            ErrorKind::Status(_) | ErrorKind::Protocol => Kind::Protocol,
            ErrorKind::Certificate => Kind::Certificate,
            ErrorKind::Transport
            | ErrorKind::Unresolved
            | ErrorKind::Interrupted
            | ErrorKind::Storage(_) => Kind::Transport,
            ErrorKind::Stalled | ErrorKind::TooSlow | ErrorKind::Timeout => Kind::Timeout,
            ErrorKind::Corrupt => Kind::Corrupt,
            ErrorKind::Credentials => Kind::Credentials,
        }
    }

    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

/// A registry's JSON error body (`{"errors":[{"code":..,"message":..}]}`).
#[derive(serde::Deserialize)]
struct ErrorBody {
    errors: Vec<ErrorItem>,
}

#[derive(serde::Deserialize)]
struct ErrorItem {
    code: Option<String>,
    message: Option<String>,
}

/// The first error `code` of a registry's JSON error body.
pub(crate) fn registry_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()?
        .errors
        .into_iter()
        .find_map(|i| i.code)
}

/// The `message` of a registry's JSON error body.
pub(crate) fn registry_message(body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        let parts: Vec<String> = e
            .errors
            .into_iter()
            .map(|i| match (i.code, i.message) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (c, m) => c.or(m).unwrap_or_default(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.starts_with('<') || text.is_empty() {
        String::new()
    } else {
        text.chars().take(200).collect()
    }
}

/// The `<Code>` and `<Message>` of an object store's XML error (S3, GCS, Azure).
pub(crate) fn storage_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].trim().to_owned())
    };
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (c, m) => c.or(m).unwrap_or_else(|| registry_message(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_bodies() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(registry_message(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(registry_message(b"<html>bad gateway</html>"), "");
    }

    #[test]
    fn a_credentials_failure_names_no_url_and_keeps_its_cause() {
        let cause = crate::credentials::CredentialError::new("the keychain is locked");
        let e = RegistryError::credentials("ghcr.io", cause);
        assert_eq!(
            e.to_string(),
            "cannot get the credentials for ghcr.io: the keychain is locked"
        );
        let source = std::error::Error::source(&e).expect("the cause");
        assert_eq!(source.to_string(), "the keychain is locked");
        use crate::error::Diagnostic;
        assert!(e.hint().unwrap().contains("ferry login ghcr.io"));
    }

    #[test]
    fn why_retrying_stopped_is_a_field_and_details_are_redacted_however_set() {
        let e = RegistryError::new(
            ErrorKind::TooManyRequests,
            "r.io",
            "https://r.io/v2/",
            "slow",
        )
        .stopped(Stopped::RetryAfterTooLong);
        assert_eq!(e.stopped, Some(Stopped::RetryAfterTooLong));
        assert_eq!(e.detail, "slow");
        assert!(
            e.to_string()
                .ends_with(": slow (Retry-After is longer than ferry waits)"),
            "{e}"
        );
        let e = e.with_detail("see https://u:hunter2@s3.example/b?X-Amz-Signature=abc \x1b[2J");
        let shown = e.to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("abc") && !shown.contains('\x1b'),
            "{shown}"
        );
    }

    #[test]
    fn display_has_context() {
        let e = RegistryError::new(
            ErrorKind::Status(503),
            "ghcr.io",
            "https://ghcr.io/v2/o/a/manifests/1",
            "busy",
        )
        .with_hint("try later");
        let e = e.counted(4, Duration::from_millis(2500));
        let s = e.to_string();
        assert_eq!(
            s,
            "ghcr.io answered HTTP 503 (https://ghcr.io/v2/o/a/manifests/1): busy (failed after 4 attempts in 2.5 s)"
        );
        use crate::error::Diagnostic;
        assert_eq!(e.hint().as_deref(), Some("try later"));
        assert_eq!(e.kind(), crate::error::Kind::Protocol);
    }

    #[test]
    fn not_found_says_what_is_missing() {
        let url = "https://r.example/v2/o/a/manifests/1.0";
        assert_eq!(
            Missing::classify(Some("NAME_UNKNOWN"), url),
            Missing::Repository
        );
        assert_eq!(
            Missing::classify(Some("MANIFEST_UNKNOWN"), url),
            Missing::Tag("1.0".into())
        );
        let by_digest = "https://r.example/v2/o/a/manifests/sha256:abcd";
        assert_eq!(
            Missing::classify(Some("MANIFEST_UNKNOWN"), by_digest),
            Missing::Object
        );
        assert_eq!(Missing::classify(None, url), Missing::Object);
        assert_eq!(
            registry_code(br#"{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}"#).as_deref(),
            Some("NAME_UNKNOWN")
        );
    }
}
