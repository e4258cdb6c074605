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

impl Mirrors {
    /// Adds `--mirror SOURCE=MIRROR` (repeatable; rules for one source keep their order).
    pub fn add_flag(&mut self, spec: &str) -> Result<(), MirrorError> {
        let (source, mirror) = spec
            .split_once('=')
            .filter(|(s, m)| !s.is_empty() && !m.is_empty())
            .ok_or_else(|| {
                MirrorError(format!(
                    "--mirror {spec:?}: expected SOURCE=MIRROR, e.g. docker.io=mirror.example:5000"
                ))
            })?;
        self.add(
            source,
            Mirror {
                location: mirror.trim_end_matches('/').to_owned(),
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

/// `index.docker.io` and `registry-1.docker.io` are `docker.io` in references.
fn normalize_prefix(prefix: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    for hub in ["index.docker.io", "registry-1.docker.io"] {
        if let Some(rest) = prefix.strip_prefix(hub) {
            return format!("docker.io{rest}");
        }
    }
    prefix.to_owned()
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
