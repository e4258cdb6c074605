//! The error vocabulary shared by the library and the CLI: every public error type says what
//! [`Kind`] of failure it is (which decides the exit code through its [`Category`]) and may
//! carry one hint, kept apart from its message so the CLI renders it once, on its own line.
//!
//! [`Error`] is the one type-erased error the CLI and [`crate::report::Event`] carry: cheap to
//! clone, with the cause chain of the error it wraps.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// Which exit code a failure maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The command line or local configuration (a file named by a flag) is wrong: exit 2.
    Usage,
    /// An image, registry, bundle or check failed: exit 1.
    Failed,
    /// Stopped on request (Ctrl-C, SIGTERM): exit 130.
    Interrupted,
}

/// What went wrong, in words a pipeline can match on. [`Kind::as_str`] is the stable
/// snake_case name used in `--json` outputs (`"error": {"kind": ...}`):
///
/// | kind | meaning |
/// |---|---|
/// | `usage` | a bad command line (exit 2) |
/// | `configuration` | a local file named by a flag or the environment is missing or invalid (exit 2) |
/// | `repository_not_found` | the registry does not know the repository (`NAME_UNKNOWN`) |
/// | `tag_not_found` | the repository exists, the tag does not (`MANIFEST_UNKNOWN` on a tag) |
/// | `manifest_not_found` | a manifest (by digest), blob or other object is not there |
/// | `unauthorized` | the registry wants (other) credentials (401) |
/// | `denied` | the credentials lack permission (403) |
/// | `rate_limited` | the registry is rate limiting (429) |
/// | `transport` | the registry could not be reached, or the connection broke |
/// | `timeout` | a stall, a too-slow transfer or a deadline |
/// | `corrupt` | content did not match its digest or size |
/// | `protocol` | the registry answered something it must not, or an unexpected HTTP status |
/// | `certificate` | the registry's TLS certificate was refused (unknown CA, expired, another name) |
/// | `credentials` | credentials could not be read (helper, malformed file) |
/// | `signature` | a signature check refused the image |
/// | `io` | a local read or write failed (disk full, permissions) |
/// | `bundle` | the bundle (or an archive, a lock file from it) is invalid or inconsistent |
/// | `interrupted` | stopped on request (exit 130) |
/// | `failed` | anything else that failed |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A bad command line.
    Usage,
    /// A missing or invalid local configuration file.
    Configuration,
    /// The registry does not know the repository.
    RepositoryNotFound,
    /// The repository exists, the tag does not.
    TagNotFound,
    /// A manifest by digest, a blob or another object does not exist.
    ManifestNotFound,
    /// The registry wants (other) credentials.
    Unauthorized,
    /// The credentials lack permission.
    Denied,
    /// The registry is rate limiting.
    RateLimited,
    /// Could not connect, or the connection broke.
    Transport,
    /// A stall, a too-slow transfer or a deadline.
    Timeout,
    /// Content did not match its digest or size.
    Corrupt,
    /// The registry answered something it must not.
    Protocol,
    /// The registry's TLS certificate was refused (not trusted, expired, naming another host).
    Certificate,
    /// Credentials could not be read.
    Credentials,
    /// A signature check refused the image.
    Signature,
    /// A local read or write failed.
    Io,
    /// The bundle is invalid or inconsistent.
    Bundle,
    /// Stopped on request.
    Interrupted,
    /// Anything else that failed.
    Failed,
}

impl Kind {
    /// The stable snake_case name (see the table on [`Kind`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::Configuration => "configuration",
            Kind::RepositoryNotFound => "repository_not_found",
            Kind::TagNotFound => "tag_not_found",
            Kind::ManifestNotFound => "manifest_not_found",
            Kind::Unauthorized => "unauthorized",
            Kind::Denied => "denied",
            Kind::RateLimited => "rate_limited",
            Kind::Transport => "transport",
            Kind::Timeout => "timeout",
            Kind::Corrupt => "corrupt",
            Kind::Protocol => "protocol",
            Kind::Certificate => "certificate",
            Kind::Credentials => "credentials",
            Kind::Signature => "signature",
            Kind::Io => "io",
            Kind::Bundle => "bundle",
            Kind::Interrupted => "interrupted",
            Kind::Failed => "failed",
        }
    }

    /// The exit code's category: usage and configuration are the user's to fix locally (2).
    pub fn category(self) -> Category {
        match self {
            Kind::Usage | Kind::Configuration => Category::Usage,
            Kind::Interrupted => Category::Interrupted,
            _ => Category::Failed,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every public error type of the library: its kind and its hint.
pub trait Diagnostic: StdError + Send + Sync + 'static {
    /// What kind of failure this is.
    fn kind(&self) -> Kind;

    /// What the user can do about it (one sentence or two, no `hint:` prefix).
    fn hint(&self) -> Option<String> {
        None
    }
}

/// Any failure, type-erased but keeping its kind, hint and cause chain. Cloning shares it.
#[derive(Clone)]
pub struct Error {
    kind: Kind,
    hint: Option<String>,
    inner: Arc<dyn StdError + Send + Sync>,
}

impl Error {
    /// Wraps a library error, taking its kind and hint.
    pub fn new<E: Diagnostic>(error: E) -> Error {
        Error {
            kind: error.kind(),
            hint: error.hint(),
            inner: Arc::new(error),
        }
    }

    /// A failure described by `message` alone.
    pub fn msg(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            hint: None,
            inner: Arc::new(Context {
                message: message.into(),
                source: None,
            }),
        }
    }

    /// `message`, caused by `source` (rendered as `caused by:`); the hint of a [`Diagnostic`]
    /// source is not kept: pass it with [`Error::with_hint`] if it still applies.
    pub fn context(
        kind: Kind,
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Error {
        Error {
            kind,
            hint: None,
            inner: Arc::new(Context {
                message: message.into(),
                source: Some(source.into()),
            }),
        }
    }

    /// `message` in front of this error, which becomes its cause; kind and hint are kept.
    pub fn wrap(self, message: impl Into<String>) -> Error {
        let (kind, hint) = (self.kind, self.hint.clone());
        Error {
            kind,
            hint,
            inner: Arc::new(Context {
                message: message.into(),
                source: Some(Box::new(self)),
            }),
        }
    }

    /// Sets (or replaces) the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Changes the kind (an I/O error on a file named by a flag is configuration).
    pub fn with_kind(mut self, kind: Kind) -> Error {
        self.kind = kind;
        self
    }

    /// What kind of failure.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Which exit code.
    pub fn category(&self) -> Category {
        self.kind.category()
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The messages of this error and its causes, outermost first, repeats skipped (a
    /// wrapper whose message already quotes its cause's text).
    pub fn chain(&self) -> Vec<String> {
        let mut out: Vec<String> = vec![self.to_string()];
        let mut next = StdError::source(self);
        while let Some(e) = next {
            let text = e.to_string();
            if !out.iter().any(|o| o.contains(&text)) {
                out.push(text);
            }
            next = e.source();
        }
        out
    }

    /// The error and its causes on one line, joined by `: ` (a log line, a JSON message).
    pub fn one_line(&self) -> String {
        self.chain().join(": ")
    }
}

impl<E: Diagnostic> From<E> for Error {
    fn from(error: E) -> Error {
        Error::new(error)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.inner.to_string())
            .field("hint", &self.hint)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.inner, f)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source()
    }
}

/// A message with an optional cause: what [`Error::msg`] and [`Error::context`] build.
#[derive(Debug)]
struct Context {
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Context {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// `.context(kind, || message)` on any `Result`: the error becomes the cause of `message`.
pub trait ResultExt<T> {
    /// Wraps the error as the cause of `message()`.
    fn context<M: Into<String>>(self, kind: Kind, message: impl FnOnce() -> M) -> Result<T, Error>;
}

impl<T, E: Into<Box<dyn StdError + Send + Sync>>> ResultExt<T> for Result<T, E> {
    fn context<M: Into<String>>(self, kind: Kind, message: impl FnOnce() -> M) -> Result<T, Error> {
        self.map_err(|e| Error::context(kind, message(), e))
    }
}

/// The kind of a local I/O error: a missing file or a refused permission on something the
/// user named is configuration; anything else (disk full, EIO) is a failed write or read.
pub fn io_kind(e: &std::io::Error) -> Kind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound | K::PermissionDenied | K::IsADirectory | K::NotADirectory => {
            Kind::Configuration
        }
        _ => Kind::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_decide_exit_codes() {
        assert_eq!(Kind::Usage.category(), Category::Usage);
        assert_eq!(Kind::Configuration.category(), Category::Usage);
        assert_eq!(Kind::Interrupted.category(), Category::Interrupted);
        for k in [
            Kind::RepositoryNotFound,
            Kind::TagNotFound,
            Kind::ManifestNotFound,
            Kind::Unauthorized,
            Kind::Denied,
            Kind::RateLimited,
            Kind::Transport,
            Kind::Timeout,
            Kind::Corrupt,
            Kind::Protocol,
            Kind::Certificate,
            Kind::Credentials,
            Kind::Signature,
            Kind::Io,
            Kind::Bundle,
            Kind::Failed,
        ] {
            assert_eq!(k.category(), Category::Failed, "{k}");
            assert_eq!(k.category(), Category::Failed);
        }
    }

    #[test]
    fn context_keeps_the_cause_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = Error::context(Kind::Configuration, "cannot read /x.pem", io)
            .with_hint("check the path")
            .wrap("--ca-file");
        assert_eq!(e.to_string(), "--ca-file");
        assert_eq!(e.chain(), ["--ca-file", "cannot read /x.pem", "gone"]);
        assert_eq!(e.kind(), Kind::Configuration);
        assert_eq!(e.hint(), Some("check the path"));
    }

    #[test]
    fn repeated_causes_are_skipped() {
        let io = std::io::Error::other("disk full");
        let e = Error::context(Kind::Io, "writing x: disk full", io);
        assert_eq!(e.chain(), ["writing x: disk full"]);
    }

    #[test]
    fn io_kinds() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(io_kind(&missing), Kind::Configuration);
        assert_eq!(io_kind(&std::io::Error::other("x")), Kind::Io);
    }
}
