//! Where each image of a bundle goes: `SRC_REGISTRY/REPO:TAG` -> `TARGET[/PREFIX]/REPO:TAG`
//! (the source registry's host dropped, as Hauler and mindthegap do), or with `--keep-registry`
//! `TARGET[/PREFIX]/SRC_REGISTRY/REPO:TAG`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::reference::ImageRef;

/// A push target: a registry and an optional repository prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host[:port]`.
    pub registry: String,
    /// Repository path under which images go (`airgap/team`), empty for the root.
    pub prefix: String,
}

/// Why a target or a mapping is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The target is not `HOST[:PORT][/PREFIX]`.
    #[error("invalid target {input:?}: {reason}")]
    Target {
        /// As given.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// Two source registries would land in one target repository.
    #[error("{repository} would receive images from two source registries: {first} and {second}")]
    Conflict {
        /// The target repository.
        repository: String,
        /// One source name.
        first: String,
        /// The other.
        second: String,
        /// The target as given.
        target: String,
    },
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, p)) => (ip, p.strip_prefix(':')),
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        },
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        && !name.starts_with(['-', '.']);
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

impl FromStr for Target {
    type Err = NameError;

    fn from_str(input: &str) -> Result<Target, NameError> {
        let fail = |reason: &str| NameError::Target {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let text = input
            .trim()
            .strip_prefix("docker://")
            .unwrap_or(input.trim());
        if text.contains("://") {
            return Err(fail("write HOST[:PORT][/PREFIX], without a URL scheme"));
        }
        let text = text.trim_end_matches('/');
        let (host, prefix) = text.split_once('/').unwrap_or((text, ""));
        if !valid_host(host) {
            return Err(fail("the first part must be a registry host, HOST[:PORT]"));
        }
        if !prefix.is_empty() {
            // The OCI repository grammar, checked by the reference parser.
            let probe = format!("localhost/{prefix}/x:1");
            if probe.parse::<ImageRef>().is_err() || prefix.contains(['@', ':']) {
                return Err(fail(
                    "the prefix must be a lowercase repository path (a-z, 0-9, '.', '_', '-' between '/')",
                ));
            }
        }
        Ok(Target {
            registry: crate::docker_hub::canonical(&host.to_ascii_lowercase()).to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "{}", self.registry)
        } else {
            write!(f, "{}/{}", self.registry, self.prefix)
        }
    }
}

/// A source registry as one repository path component: lowercase, `:` (a port) as `_`
/// (`127.0.0.1:5000` -> `127.0.0.1_5000`), since a repository path may not hold `:`.
pub fn registry_component(registry: &str) -> String {
    crate::docker_hub::canonical(registry)
        .to_ascii_lowercase()
        .replace(':', "_")
}

impl Target {
    /// The repository path under which `source_registry`'s repositories land.
    pub fn namespace(&self, source_registry: &str, keep_registry: bool) -> String {
        let mut parts = Vec::new();
        if !self.prefix.is_empty() {
            parts.push(self.prefix.clone());
        }
        if keep_registry {
            parts.push(registry_component(source_registry));
        }
        parts.join("/")
    }

    /// The target repository of a source reference.
    pub fn repository(&self, source: &ImageRef, keep_registry: bool) -> String {
        let ns = self.namespace(source.registry(), keep_registry);
        if ns.is_empty() {
            source.repository().to_owned()
        } else {
            format!("{ns}/{}", source.repository())
        }
    }
}

/// Refuses, up front, two source registries that would share a target repository.
pub fn check_conflicts(
    target: &Target,
    sources: &[ImageRef],
    keep_registry: bool,
) -> Result<(), NameError> {
    let mut seen: BTreeMap<String, &ImageRef> = BTreeMap::new();
    for s in sources {
        let repo = target.repository(s, keep_registry);
        match seen.get(&repo) {
            Some(first) if first.registry() != s.registry() => {
                return Err(NameError::Conflict {
                    repository: format!("{}/{repo}", target.registry),
                    first: first.name(),
                    second: s.name(),
                    target: target.to_string(),
                });
            }
            Some(_) => {}
            None => {
                seen.insert(repo, s);
            }
        }
    }
    Ok(())
}

impl crate::error::Diagnostic for NameError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Usage
    }

    fn hint(&self) -> Option<String> {
        match self {
            NameError::Conflict { target, .. } => Some(format!(
                "pass --keep-registry to push to {target}/<source registry>/<repository>, or push \
                 them to different prefixes with --ref"
            )),
            NameError::Target { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ImageRef {
        s.parse().unwrap()
    }

    #[test]
    fn targets_parse_and_refuse() {
        let t: Target = "reg.corp:5000/airgap/team".parse().unwrap();
        assert_eq!(t.registry, "reg.corp:5000");
        assert_eq!(t.prefix, "airgap/team");
        assert_eq!(t.to_string(), "reg.corp:5000/airgap/team");
        let t: Target = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(t.prefix, "");
        assert!("https://reg.corp".parse::<Target>().is_err());
        assert!("reg.corp/Upper".parse::<Target>().is_err());
        assert!("reg.corp/a//b".parse::<Target>().is_err());
        assert!("reg.corp:http/a".parse::<Target>().is_err());
        assert!("reg corp/a".parse::<Target>().is_err());
        assert!("".parse::<Target>().is_err());
    }

    #[test]
    fn mapping_drops_or_keeps_the_source_registry() {
        let t: Target = "reg.corp/airgap".parse().unwrap();
        let src = r("docker.io/library/alpine:3.20");
        assert_eq!(t.repository(&src, false), "airgap/library/alpine");
        assert_eq!(t.repository(&src, true), "airgap/docker.io/library/alpine");
        let local = r("127.0.0.1:5000/sample/hello:1.0");
        assert_eq!(
            t.repository(&local, true),
            "airgap/127.0.0.1_5000/sample/hello"
        );
        let root: Target = "reg.corp".parse().unwrap();
        assert_eq!(root.repository(&local, false), "sample/hello");
        // The kept registry is a valid repository path component.
        let probe = format!("reg.corp/{}:1", t.repository(&local, true));
        assert!(probe.parse::<ImageRef>().is_ok(), "{probe}");
    }

    #[test]
    fn two_sources_one_repository_are_refused_naming_both() {
        let t: Target = "reg.corp".parse().unwrap();
        let a = r("quay.io/org/app:1");
        let b = r("ghcr.io/org/app:2");
        let c = r("quay.io/org/app:2");
        assert!(check_conflicts(&t, &[a.clone(), c.clone()], false).is_ok());
        let e = check_conflicts(&t, &[a.clone(), b.clone()], false).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("quay.io/org/app") && text.contains("ghcr.io/org/app"),
            "{text}"
        );
        use crate::error::Diagnostic;
        let hint = e.hint().unwrap_or_default();
        assert!(hint.contains("--keep-registry"), "{hint}");
        assert!(check_conflicts(&t, &[a, b], true).is_ok());
    }
}
