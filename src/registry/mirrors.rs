//! Pull mirrors: `--mirror SOURCE=MIRROR` and the `[[registry]]` / `[[registry.mirror]]` tables
//! of a containers registries.conf. Mirrors are tried in order, then the source; the bundle
//! always records the original names.

use std::path::Path;

use crate::reference::ImageRef;

/// Where to fetch one image from: a registry host and the repository path there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Remote {
    /// Registry host as written in references (`docker.io`, `mirror:5000`).
    pub registry: String,
    /// Repository path on that registry.
    pub repository: String,
    /// True for a mirror (tried with fewer retries, skipped on failure).
    pub mirror: bool,
}

/// The remotes that failed before the one whose error is reported, named in that error:
/// `… (after mirror m:5000: why; …)`, so one message tells every place that was tried.
#[derive(Debug, Default)]
pub struct Tried(Vec<String>);

impl Tried {
    /// Records that `remote` failed with `error` (its first line) and the next one is tried.
    pub fn failed(&mut self, remote: &Remote, error: &impl std::fmt::Display) {
        let kind = if remote.mirror { "mirror" } else { "source" };
        let text = error.to_string();
        let first = text.lines().next().unwrap_or_default();
        self.0.push(format!("{kind} {}: {first}", remote.registry));
    }

    /// Adds the remotes tried before to the last remote's error.
    pub fn annotate(&self, error: super::RegistryError) -> super::RegistryError {
        if self.0.is_empty() {
            return error;
        }
        let detail = format!("{} (after {})", error.detail, self.0.join("; "));
        error.with_detail(detail)
    }
}

impl Remote {
    /// The image's own registry and repository.
    pub fn origin(image: &ImageRef) -> Remote {
        Remote {
            registry: image.registry().to_owned(),
            repository: image.repository().to_owned(),
            mirror: false,
        }
    }

    /// `registry/repository`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// One mirror of a source prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// `host[:port][/path]`.
    pub location: String,
    /// Plain HTTP / unverified TLS allowed.
    pub insecure: bool,
    /// Only for references pinned by digest (registries.conf `mirror-by-digest-only`).
    pub digest_only: bool,
}

/// Mirrors for a source prefix (`docker.io`, `docker.io/library`, `quay.io/org`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorRule {
    /// The prefix of normalized names it applies to.
    pub prefix: String,
    /// Its mirrors, in order.
    pub mirrors: Vec<Mirror>,
}

/// All mirror rules of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrors {
    rules: Vec<MirrorRule>,
}

/// Why mirror configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MirrorError(pub String);

impl crate::error::Diagnostic for MirrorError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Configuration
    }
}

impl Mirrors {
    /// Adds `--mirror SOURCE=MIRROR` (repeatable; rules for one source keep their order).
    /// Both sides must be `HOST[:PORT][/PATH]`; anything else is refused with what to write.
    pub fn add_flag(&mut self, spec: &str) -> Result<(), MirrorError> {
        let bad = |why: String| {
            MirrorError(format!(
                "--mirror {}: {why}",
                crate::redact::redact(&format!("{spec:?}"))
            ))
        };
        let (source, mirror) = spec
            .split_once('=')
            .filter(|(s, m)| !s.is_empty() && !m.is_empty())
            .ok_or_else(|| {
                bad("expected SOURCE=MIRROR, e.g. docker.io=mirror.example:5000".into())
            })?;
        let mirror = mirror.trim_end_matches('/');
        check_location(source.trim_end_matches('/')).map_err(|e| bad(format!("SOURCE {e}")))?;
        check_location(mirror).map_err(|e| bad(format!("MIRROR {e}")))?;
        self.add(
            source,
            Mirror {
                location: mirror.to_owned(),
                insecure: false,
                digest_only: false,
            },
        );
        Ok(())
    }

    fn add(&mut self, prefix: &str, mirror: Mirror) {
        let prefix = normalize_prefix(prefix);
        match self.rules.iter_mut().find(|r| r.prefix == prefix) {
            Some(rule) => rule.mirrors.push(mirror),
            None => self.rules.push(MirrorRule {
                prefix,
                mirrors: vec![mirror],
            }),
        }
    }

    /// Reads the `[[registry]]` entries with mirrors from a registries.conf (version 2).
    pub fn add_registries_conf(&mut self, path: &Path) -> Result<(), MirrorError> {
        let bad = |why: String| MirrorError(format!("{}: {why}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let conf: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let Some(registries) = conf.get("registry").and_then(toml::Value::as_array) else {
            return Ok(());
        };
        for r in registries {
            let get = |k: &str| r.get(k).and_then(toml::Value::as_str);
            let Some(prefix) = get("prefix").or(get("location")) else {
                continue;
            };
            let digest_only = r
                .get("mirror-by-digest-only")
                .and_then(toml::Value::as_bool)
                .unwrap_or(false);
            for m in r
                .get("mirror")
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(location) = m.get("location").and_then(toml::Value::as_str) else {
                    return Err(bad(format!("a mirror of {prefix} has no location")));
                };
                let pull_from = m
                    .get("pull-from-mirror")
                    .and_then(toml::Value::as_str)
                    .unwrap_or("all");
                check_location(location.trim_end_matches('/')).map_err(|e| {
                    bad(format!(
                        "the mirror location {} of {prefix}: {e}",
                        crate::redact::redact(&format!("{location:?}"))
                    ))
                })?;
                if pull_from == "tag-only" {
                    continue; // ferry pins what it resolves; a tag-only mirror adds nothing safe
                }
                self.add(
                    prefix,
                    Mirror {
                        location: location.trim_end_matches('/').to_owned(),
                        insecure: m
                            .get("insecure")
                            .and_then(toml::Value::as_bool)
                            .unwrap_or(false),
                        digest_only: digest_only || pull_from == "digest-only",
                    },
                );
            }
        }
        Ok(())
    }

    /// Registries that were declared insecure in registries.conf.
    pub fn insecure_hosts(&self) -> Vec<String> {
        self.rules
            .iter()
            .flat_map(|r| &r.mirrors)
            .filter(|m| m.insecure)
            .map(|m| m.location.split('/').next().unwrap_or_default().to_owned())
            .collect()
    }

    /// Where to fetch `image` from: its mirrors (longest matching prefix), then the source.
    pub fn remotes(&self, image: &ImageRef) -> Vec<Remote> {
        let name = image.name();
        let rule = self
            .rules
            .iter()
            .filter(|r| name == r.prefix || name.starts_with(&format!("{}/", r.prefix)))
            .max_by_key(|r| r.prefix.len());
        let mut out = Vec::new();
        if let Some(rule) = rule {
            let rest = name[rule.prefix.len()..].trim_start_matches('/');
            for m in &rule.mirrors {
                if m.digest_only && image.digest().is_none() {
                    continue;
                }
                let (host, path) = m.location.split_once('/').unwrap_or((&m.location, ""));
                let repository = [path, rest]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(Remote {
                    registry: host.to_owned(),
                    repository,
                    mirror: true,
                });
            }
        }
        out.push(Remote::origin(image));
        out
    }
}

/// Whether `host` is a DNS name, an IPv4 address or a bracketed IPv6 address.
fn is_host(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Checks `HOST[:PORT][/PATH]` (a mirror location or a source prefix); the error says what
/// is wrong in words that fit after "MIRROR" or "SOURCE".
fn check_location(location: &str) -> Result<(), String> {
    const FORM: &str = "write HOST[:PORT][/PATH], e.g. mirror.example:5000/hub";
    if let Some((scheme, _)) = location.split_once("://") {
        return Err(format!(
            "has a {scheme}:// scheme: {FORM} (ferry uses HTTPS; --insecure-registry HOST allows plain HTTP)"
        ));
    }
    if location.contains('@') {
        return Err(format!(
            "holds credentials: {FORM}, and log in with `ferry login HOST`"
        ));
    }
    let (host_port, path) = location.split_once('/').unwrap_or((location, ""));
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, Some(p)),
        _ => (host_port, None),
    };
    if !is_host(host) {
        return Err(format!("is not a registry host: {FORM}"));
    }
    // Digits only: u16's parser would also take `+5000`, which no URL does.
    let port_ok =
        |p: &str| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0);
    if port.is_some_and(|p| !port_ok(p)) {
        return Err(format!("has a bad port: {FORM}"));
    }
    let path_ok = path.is_empty()
        || format!("localhost/{path}")
            .parse::<ImageRef>()
            .is_ok_and(|r| r.repository() == path && r.tag() == Some("latest"));
    if !path_ok {
        return Err(format!("has a path that is not a repository path: {FORM}"));
    }
    Ok(())
}

/// A mirror rule's prefix always starts with a registry (`docker.io`, `registry-1.docker.io/
/// library`): Docker Hub's other names are `docker.io`, as in references.
fn normalize_prefix(prefix: &str) -> String {
    crate::reference::normalize_registry_prefix(prefix.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remotes(m: &Mirrors, image: &str) -> Vec<String> {
        m.remotes(&image.parse().unwrap())
            .iter()
            .map(Remote::name)
            .collect()
    }

    #[test]
    fn flags_in_order_then_source() {
        let mut m = Mirrors::default();
        m.add_flag("docker.io=mirror.example:5000").unwrap();
        m.add_flag("docker.io=second.example/hub").unwrap();
        assert_eq!(
            remotes(&m, "nginx:1.27"),
            [
                "mirror.example:5000/library/nginx",
                "second.example/hub/library/nginx",
                "docker.io/library/nginx"
            ]
        );
        assert_eq!(remotes(&m, "quay.io/o/a:1"), ["quay.io/o/a"]);
        assert!(m.add_flag("docker.io").is_err());
    }

    #[test]
    fn malformed_flags_are_refused_with_what_to_write() {
        let mut m = Mirrors::default();
        for (spec, says) in [
            ("https", "expected SOURCE=MIRROR"),
            ("docker.io=", "expected SOURCE=MIRROR"),
            ("=mirror:5000", "expected SOURCE=MIRROR"),
            ("docker.io=https://mirror.example", "https:// scheme"),
            ("docker.io=me:hunter2@mirror.example", "holds credentials"),
            ("docker.io=mirror.example:99999", "bad port"),
            ("docker.io=mirror.example:+5000", "bad port"), // found by tests/parsers
            ("docker.io=mirror .example", "not a registry host"),
            ("docker.io=mirror.example/Hub", "not a repository path"),
            (
                "https://docker.io=mirror.example",
                "SOURCE has a https:// scheme",
            ),
        ] {
            let e = m.add_flag(spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        m.add_flag("docker.io=[::1]:5000/hub").unwrap();
        m.add_flag("quay.io/org=localhost:5000").unwrap();
        assert_eq!(m, {
            let mut ok = Mirrors::default();
            ok.add_flag("docker.io=[::1]:5000/hub/").unwrap();
            ok.add_flag("quay.io/org/=localhost:5000").unwrap();
            ok
        });
    }

    #[test]
    fn registries_conf_longest_prefix_and_digest_only() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("registries.conf");
        std::fs::write(
            &conf,
            r#"
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "hub-mirror.corp:5000"
insecure = true

[[registry]]
location = "quay.io/org"
mirror-by-digest-only = true
[[registry.mirror]]
location = "quay-mirror.corp/org"
"#,
        )
        .unwrap();
        let mut m = Mirrors::default();
        m.add_registries_conf(&conf).unwrap();
        assert_eq!(
            remotes(&m, "alpine"),
            [
                "hub-mirror.corp:5000/library/alpine",
                "docker.io/library/alpine"
            ]
        );
        assert_eq!(m.insecure_hosts(), ["hub-mirror.corp:5000"]);
        assert_eq!(
            remotes(&m, "quay.io/org/app:1"),
            ["quay.io/org/app"],
            "digest only"
        );
        let pinned = format!("quay.io/org/app@sha256:{}", "a".repeat(64));
        assert_eq!(
            remotes(&m, &pinned),
            ["quay-mirror.corp/org/app", "quay.io/org/app"]
        );
        std::fs::write(&conf, "[[registry]\n").unwrap();
        assert!(m.add_registries_conf(&conf).is_err());
    }
}
