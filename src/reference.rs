//! Image references, normalized the way Docker does (`alpine` -> `docker.io/library/alpine:latest`).
//!
//! Parsing follows distribution's grammar (see [`grammar`], hand-written); this module adds the
//! checks that give users a useful message, and the accessors the rest of ferry needs.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::redact::redact;

mod grammar;
mod referrer;

pub use referrer::{ReferrerKind, is_referrer_name, parse_referrer_name, referrer_name};

/// Whether a name starts with a registry host, by Docker's rule: a first path component with a
/// `.` or a `:`, or `localhost` (`quay.io/org`, `host:5000/app`; not `library/alpine`).
pub fn starts_with_registry(name: &str) -> bool {
    match name.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

/// A prefix of references (`--exclude`, a mirror rule), normalized as references are: a bare
/// name as Docker reads it (`busybox` is `docker.io/library/busybox`, `bitnami/redis`
/// `docker.io/bitnami/redis`, `nginx:1.27` keeps its tag); a prefix that starts with a
/// registry keeps its path as written (`quay.io/org/`), with Docker Hub's other names
/// (`index.docker.io`, `registry-1.docker.io`) made `docker.io`.
pub fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim();
    if starts_with_registry(p) {
        return normalize_registry_prefix(p);
    }
    let pinned = p.contains('@') || p.rsplit('/').next().is_some_and(|last| last.contains(':'));
    match p.parse::<ImageRef>() {
        Ok(r) if pinned => r.to_string(),
        Ok(r) => r.name(),
        Err(_) => p.to_owned(),
    }
}

/// A prefix known to start with a registry (`host[:port][/path]`): Docker Hub's other names
/// become `docker.io`, the path stays as written.
pub fn normalize_registry_prefix(prefix: &str) -> String {
    let (host, rest) = prefix.split_at(prefix.find('/').unwrap_or(prefix.len()));
    format!("{}{rest}", crate::docker_hub::canonical(host))
}

/// A normalized image reference: registry, repository, and a tag, a digest, or both.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    /// The text as given, credentials and query strings removed.
    pub input: String,
    /// What is wrong with it, with a hint where one helps.
    pub reason: String,
}

impl crate::error::Diagnostic for ReferenceError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Usage
    }
}

impl ImageRef {
    /// Registry host, with port when given (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Repository path within the registry (`library/alpine`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference names one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one. It wins over the tag when both are given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry's manifest endpoint for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository pinned to `digest` (no tag): `registry/repository@digest`.
    pub fn with_digest_only(&self, digest: Digest) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        // What users typed may carry a password (`https://user:pw@host/…`).
        let fail = |reason: String| ReferenceError {
            input: redact(input),
            reason: redact(&reason),
        };
        let trimmed = input.trim();
        // skopeo and crane users write transports; the only one that means a registry is docker://.
        let text = trimmed.strip_prefix("docker://").unwrap_or(trimmed);
        if text.is_empty() {
            return Err(fail("empty reference".into()));
        }
        if let Some((transport, _)) = text.split_once(':')
            && matches!(
                transport,
                "oci" | "oci-archive" | "docker-archive" | "dir" | "containers-storage"
            )
            && !text[transport.len()..].starts_with("://")
            && !text[transport.len() + 1..].starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(fail(format!(
                "the {transport}: transport is not a registry; ferry bundle reads from registries \
                 (write registry/repository:tag)"
            )));
        }
        if text.contains("://") {
            return Err(fail(
                "a reference has no URL scheme; write host[:port]/repository:tag".into(),
            ));
        }
        if redact(text).starts_with("***@") {
            return Err(fail(
                "a reference holds no credentials; write host[:port]/repository:tag and log in \
                 with `ferry login HOST`"
                    .into(),
            ));
        }
        // The grammar is ASCII; saying so beats "invalid reference format" for `app:é`.
        if !text.is_ascii() {
            return Err(fail(
                "a reference is ASCII: letters, digits and . _ - / : @ only".into(),
            ));
        }
        let parsed = grammar::parse(text).map_err(|e| {
            let path = text.split(['@']).next().unwrap_or(text);
            let path = path.rsplit_once('/').map_or(path, |(_, last)| last);
            let path = path.split(':').next().unwrap_or(path);
            if path.chars().any(|c| c.is_ascii_uppercase()) {
                fail("repository names must be lowercase".into())
            } else {
                fail(e.to_string())
            }
        })?;
        // distribution's grammar allows `[::1]:5000`, but skopeo, containerd image names and the
        // names ferry writes into index.json, the lock and restore.sh do not: refused here, once.
        if parsed.registry.starts_with('[') {
            return Err(fail(
                "an IPv6 registry address is not supported (nor by skopeo or containerd image \
                 names); name the registry by a host name, e.g. an /etc/hosts entry"
                    .into(),
            ));
        }
        // `A/a`: the grammar takes `A` for a host, Docker's rule then for a Docker Hub path
        // component, which must be lowercase.
        if parsed.repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(fail("repository names must be lowercase".into()));
        }
        let digest = match parsed.digest {
            Some(d) => Some(d.parse::<Digest>().map_err(|e| fail(e.to_string()))?),
            None => None,
        };
        Ok(ImageRef {
            registry: parsed.registry,
            repository: parsed.repository,
            tag: parsed.tag.map(str::to_owned),
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        s.parse::<ImageRef>().unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(norm("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("docker://quay.io/org/app:1"), "quay.io/org/app:1");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/a/b/c:v1"), "localhost:5000/a/b/c:v1");
        assert_eq!(norm("127.0.0.1:5000/app:1"), "127.0.0.1:5000/app:1");
        assert_eq!(
            norm(&format!("ghcr.io/o/app@{D}")),
            format!("ghcr.io/o/app@{D}")
        );
    }

    #[test]
    fn digest_wins_over_tag() {
        let r: ImageRef = format!("nginx:1.27@{D}").parse().unwrap();
        assert_eq!(r.tag(), Some("1.27"));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/nginx:1.27@{D}"));
        assert_eq!(
            r.with_digest_only(r.digest().unwrap().clone()).to_string(),
            format!("docker.io/library/nginx@{D}")
        );
    }

    #[test]
    fn registry_prefixes() {
        assert!(starts_with_registry("quay.io/org"));
        assert!(starts_with_registry("host:5000/app"));
        assert!(starts_with_registry("localhost/app"));
        assert!(!starts_with_registry("library/alpine"));
        assert!(!starts_with_registry("import-2026-11-23@sha256:abc"));
        assert!(!starts_with_registry("quay.io"));
    }

    #[test]
    fn useful_errors() {
        let e = "docker.io/Library/Alpine:3"
            .parse::<ImageRef>()
            .unwrap_err();
        assert!(e.reason.contains("lowercase"), "{e}");
        let e = "oci:/tmp/layout:tag".parse::<ImageRef>().unwrap_err();
        assert!(e.reason.contains("transport"), "{e}");
        let e = "https://ghcr.io/o/a:1".parse::<ImageRef>().unwrap_err();
        assert!(e.reason.contains("scheme"), "{e}");
        for secret in [
            "https://me:hunter2@ghcr.io/o/a:1",
            "me:hunter2@ghcr.io/o/a:1",
        ] {
            let e = secret.parse::<ImageRef>().unwrap_err().to_string();
            assert!(
                !e.contains("hunter2") && e.contains("***@ghcr.io/o/a:1"),
                "{e}"
            );
        }
        assert!("alpine@sha256:abc".parse::<ImageRef>().is_err());
        assert!("".parse::<ImageRef>().is_err());
        assert!("alpine:".parse::<ImageRef>().is_err());
        let e = "Org/app:1".parse::<ImageRef>().unwrap_err();
        assert!(e.reason.contains("lowercase"), "{e}");
        // Found by tests/parsers: oci-spec took a Unicode tag.
        let e = "quay.io/o/app:\u{e9}".parse::<ImageRef>().unwrap_err();
        assert!(e.reason.contains("ASCII"), "{e}");
    }
}
