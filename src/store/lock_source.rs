//! Where a lock entry came from when no registry serves it under its reference: a chart from a
//! classic Helm repository (which `bundle --lock` fetches again from there), or a local file
//! (which no lock can fetch: the lock says so, and `bundle --lock` names it).

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::untrusted::Invalid;

/// The origin of a lock entry that is not a registry's (absent for registry images).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum LockedSource {
    /// A chart from a classic Helm repository: index.yaml's entry `chart` `version`.
    #[serde(rename_all = "camelCase")]
    HelmRepository {
        /// The repository's URL, without credentials, query or trailing slash.
        repository: String,
        /// The chart's name in index.yaml.
        chart: String,
        /// The chart's version in index.yaml (before `+` became `_` in the tag).
        version: String,
        /// sha256 of the chart `.tgz`, as index.yaml gave it and the bytes hashed to.
        chart_digest: Digest,
    },
    /// A local file (`bundle --add-file`): a lock cannot fetch it again.
    #[serde(rename_all = "camelCase")]
    LocalFile {
        /// The file's name (the artifact's title).
        title: String,
    },
}

impl LockedSource {
    /// The source of a chart from `repository` (its credentials, query and fragment left out:
    /// a lock is shared, and names no secret).
    pub fn helm(
        repository: &url::Url,
        chart: &str,
        version: &str,
        chart_digest: Digest,
    ) -> LockedSource {
        let mut repo = repository.clone();
        let _ = repo.set_username("");
        let _ = repo.set_password(None);
        repo.set_query(None);
        repo.set_fragment(None);
        LockedSource::HelmRepository {
            repository: repo.as_str().trim_end_matches('/').to_owned(),
            chart: chart.to_owned(),
            version: version.to_owned(),
            chart_digest,
        }
    }

    /// Checks what a lock file (untrusted) says: an http(s) URL without credentials or query,
    /// a chart name and version of the reference grammar's characters, a printable title.
    pub fn check(&self) -> Result<(), Invalid> {
        match self {
            LockedSource::HelmRepository {
                repository,
                chart,
                version,
                ..
            } => {
                let url = url::Url::parse(repository).ok().filter(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some()
                        && u.username().is_empty()
                        && u.password().is_none()
                        && u.query().is_none()
                        && u.fragment().is_none()
                });
                if url.is_none() {
                    return Err(Invalid::new(
                        "chart repository",
                        repository,
                        "an http:// or https:// URL without credentials or query",
                    ));
                }
                let word = |s: &str, extra: &[u8]| {
                    (1..=128).contains(&s.len())
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
                };
                if !word(chart, b"._-") {
                    return Err(Invalid::new(
                        "chart name",
                        chart,
                        "letters, digits and . _ -",
                    ));
                }
                if !word(version, b"._-+") {
                    return Err(Invalid::new(
                        "chart version",
                        version,
                        "letters, digits and . _ - +",
                    ));
                }
                Ok(())
            }
            LockedSource::LocalFile { title } => {
                let ok = (1..=255).contains(&title.len())
                    && title != ".."
                    && !title.contains('/')
                    && crate::untrusted::printable(title) == title.as_str();
                if ok {
                    Ok(())
                } else {
                    Err(Invalid::new(
                        "file title",
                        title,
                        "a printable file name without /",
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helm_source_names_no_secret_and_hostile_sources_are_refused() {
        let url = url::Url::parse("https://u:secret@charts.example.com/stable/?t=1").unwrap();
        let d = Digest::sha256_of(b"x");
        let s = LockedSource::helm(&url, "nginx", "1.0.0+b", d.clone());
        assert_eq!(
            s,
            LockedSource::HelmRepository {
                repository: "https://charts.example.com/stable".into(),
                chart: "nginx".into(),
                version: "1.0.0+b".into(),
                chart_digest: d.clone(),
            }
        );
        assert!(s.check().is_ok());
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"kind\":\"helmRepository\""), "{json}");
        assert!(json.contains("\"chartDigest\""), "{json}");
        let helm = |repository: &str, chart: &str, version: &str| LockedSource::HelmRepository {
            repository: repository.into(),
            chart: chart.into(),
            version: version.into(),
            chart_digest: d.clone(),
        };
        for bad in [
            helm("file:///etc", "a", "1"),
            helm("https://u:p@h.example/", "a", "1"),
            helm("https://h.example/?x", "a", "1"),
            helm("https://h.example", "a\nb", "1"),
            helm("https://h.example", "a", "1 2"),
            LockedSource::LocalFile {
                title: "../x".into(),
            },
            LockedSource::LocalFile {
                title: "a\u{1b}[2J".into(),
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
