//! Helm charts from classic HTTP chart repositories (`index.yaml` + `.tgz`), stored as the OCI
//! artifact `helm push` makes: config `application/vnd.cncf.helm.config.v1+json` (Chart.yaml as
//! JSON), one layer `application/vnd.cncf.helm.chart.content.v1.tar+gzip` holding the `.tgz`
//! byte for byte, under the repository's host and path (`https://charts.example.com/stable` +
//! nginx 15.4.2 is `charts.example.com/stable/nginx:15.4.2`).

pub mod images;
mod oci;
mod package;
mod repo;

use bytes::Bytes;

use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::resolve::{BlobRef, ResolvedImage};
use crate::store::lockfile::LockedSource;

pub use oci::fetch_oci_chart;
pub use package::{ChartMeta, read_chart_yaml};
pub use repo::ChartRepo;

/// Why a chart could not be taken from its repository.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// `--chart` names no `REPO_URL/NAME:VERSION`.
    #[error("--chart {spec}: {why}")]
    Spec {
        /// What was given (redacted).
        spec: String,
        /// What is wrong.
        why: String,
    },
    /// The repository or the chart could not be fetched.
    #[error("{url}: {why}")]
    Fetch {
        /// The URL (redacted).
        url: String,
        /// What went wrong.
        why: String,
        /// The failure's kind (transport, not found, unauthorized...).
        kind: crate::error::Kind,
    },
    /// index.yaml lists no such chart or version.
    #[error("{repo}: no chart {name} version {version} in its index.yaml{known}")]
    NotInIndex {
        /// The repository URL (redacted).
        repo: String,
        /// The chart.
        name: String,
        /// The version asked for.
        version: String,
        /// The versions it has, when the chart is there.
        known: String,
    },
    /// The repository's index.yaml, or the chart archive, is not what it must be.
    #[error("{what}: {why}")]
    Invalid {
        /// index.yaml or the chart's URL (redacted).
        what: String,
        /// What is wrong.
        why: String,
    },
    /// The repository's index.yaml now gives the version another `.tgz` digest than the lock.
    #[error(
        "{chart}: the repository now serves {now} for this version, the lock file says {locked}"
    )]
    Moved {
        /// The chart (`REPO_URL/NAME:VERSION`, redacted).
        chart: String,
        /// The digest the lock records.
        locked: String,
        /// The digest index.yaml gives today.
        now: String,
    },
    /// The `.tgz` does not have the digest index.yaml gives.
    #[error("{url}: sha256 is {actual} but index.yaml says {expected}")]
    Digest {
        /// The chart's URL (redacted).
        url: String,
        /// The digest index.yaml names.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
}

impl crate::error::Diagnostic for ChartError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            ChartError::Spec { .. } => Kind::Usage,
            ChartError::Fetch { kind, .. } => *kind,
            ChartError::NotInIndex { .. } => Kind::TagNotFound,
            ChartError::Invalid { .. } => Kind::Protocol,
            ChartError::Digest { .. } => Kind::Corrupt,
            ChartError::Moved { .. } => Kind::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ChartError::Spec { .. } => Some(
                "name a chart as REPO_URL/NAME:VERSION, e.g. https://charts.example.com/stable/nginx:15.4.2"
                    .into(),
            ),
            ChartError::Fetch {
                kind: crate::error::Kind::Unauthorized,
                ..
            } => Some("give the repository's credentials with --creds or `ferry login HOST`".into()),
            ChartError::Fetch {
                kind: crate::error::Kind::Certificate,
                ..
            } => Some(
                "the repository's TLS certificate was refused (not trusted, expired, or naming \
                 another host): pass its CA with --ca-file CA.pem; --insecure-registry HOST:PORT \
                 skips verification (test setups only)"
                    .into(),
            ),
            ChartError::Digest { .. } => {
                Some("the repository serves another file than its index.yaml names; nothing was stored".into())
            }
            ChartError::Moved { .. } => Some(
                "the chart was republished under the same version; nothing of it was fetched and \
                 the bundle keeps what it had: bundle it without --lock to take the new one"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// A chart named on the command line: `REPO_URL/NAME:VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSpec {
    /// The repository URL, without a trailing slash (`https://charts.example.com/stable`).
    pub repo: url::Url,
    /// The chart's name.
    pub name: String,
    /// The version wanted.
    pub version: String,
}

impl std::str::FromStr for ChartSpec {
    type Err = ChartError;

    fn from_str(s: &str) -> Result<ChartSpec, ChartError> {
        let bad = |why: &str| ChartError::Spec {
            spec: crate::redact::redact(s),
            why: why.into(),
        };
        let (repo, chart) = s
            .trim_end_matches('/')
            .rsplit_once('/')
            .ok_or_else(|| bad("no repository URL"))?;
        let (name, version) = chart
            .split_once(':')
            .ok_or_else(|| bad("no :VERSION after the chart's name"))?;
        let repo = url::Url::parse(repo).map_err(|e| bad(&format!("not a URL: {e}")))?;
        if !matches!(repo.scheme(), "http" | "https") || repo.host_str().is_none() {
            return Err(bad(
                "the repository URL must be http:// or https://HOST/...",
            ));
        }
        if repo.query().is_some() || repo.fragment().is_some() {
            return Err(bad("the repository URL takes no query or fragment"));
        }
        if !is_component(name) {
            return Err(bad(
                "the chart's name must be lowercase letters and digits, with . _ - between them",
            ));
        }
        tag_of(version).map_err(|e| bad(&e))?;
        Ok(ChartSpec {
            repo,
            name: name.to_owned(),
            version: version.to_owned(),
        })
    }
}

/// A chart version as an OCI tag: `+` (semver build metadata) becomes `_`, as `helm push` does.
fn tag_of(version: &str) -> Result<String, String> {
    let tag = version.replace('+', "_");
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = tag.len() <= 128
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(tag)
    } else {
        Err(format!(
            "version {}: not a valid OCI tag (letters, digits, _ . -)",
            crate::untrusted::shown(version)
        ))
    }
}

/// A repository path component: `[a-z0-9]+([._-][a-z0-9]+)*` (the full reference is checked
/// again by the reference parser).
fn is_component(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.split(['.', '_', '-'])
            .all(|part| !part.is_empty() && part.chars().all(alnum))
}

impl ChartSpec {
    /// The reference the chart is stored under: the repository's host, port and path, the
    /// chart's name, its version as a tag (`charts.example.com/stable/nginx:15.4.2`).
    pub fn reference(&self) -> Result<ImageRef, ChartError> {
        let host = self
            .repo
            .host_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let host = match self.repo.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        let path: Vec<&str> = self
            .repo
            .path()
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let mut name = vec![host.as_str()];
        name.extend(&path);
        name.push(&self.name);
        let tag = tag_of(&self.version).map_err(|why| self.bad(why))?;
        let text = format!("{}:{tag}", name.join("/")).to_ascii_lowercase();
        crate::untrusted::check_reference_name(&text).map_err(|e| self.bad(e.to_string()))
    }

    fn bad(&self, why: impl Into<String>) -> ChartError {
        ChartError::Spec {
            spec: self.to_string(),
            why: why.into(),
        }
    }
}

impl std::fmt::Display for ChartSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let repo = crate::redact::redact(self.repo.as_str());
        write!(
            f,
            "{}/{}:{}",
            repo.trim_end_matches('/'),
            self.name,
            self.version
        )
    }
}

/// A chart fetched and packed as `helm push` stores it, ready to commit.
#[derive(Debug, Clone)]
pub struct PackedChart {
    /// The resolved image (no remotes: every blob is in hand).
    pub image: ResolvedImage,
    /// The chart `.tgz`, byte for byte: the one layer, to store before the commit.
    pub tgz: Bytes,
}

/// Packs a chart archive (its bytes already checked) as the OCI artifact `helm push` makes.
pub fn pack(reference: ImageRef, tgz: Bytes) -> Result<PackedChart, ChartError> {
    let meta = read_chart_yaml(&tgz).map_err(|why| ChartError::Invalid {
        what: reference.to_string(),
        why,
    })?;
    let config = Bytes::from(meta.config_json());
    let layer = BlobRef {
        digest: Digest::sha256_of(&tgz),
        size: tgz.len() as u64,
    };
    let config_ref = BlobRef {
        digest: Digest::sha256_of(&config),
        size: config.len() as u64,
    };
    let manifest = Bytes::from(meta.manifest_json(&config_ref, &layer));
    let image = crate::artifact::made_here(reference, manifest, config_ref, config, vec![layer]);
    Ok(PackedChart { image, tgz })
}

/// Packs a chart `.tgz` fetched from `spec`'s repository (its digest checked) as
/// [`pack`] does, under the name `spec` maps to, recording that repository as its source.
pub fn pack_from_repo(spec: &ChartSpec, tgz: Bytes) -> Result<PackedChart, ChartError> {
    let mut packed = pack(spec.reference()?, tgz)?;
    packed.image.source = Some(LockedSource::helm(
        &spec.repo,
        &spec.name,
        &spec.version,
        Digest::sha256_of(&packed.tgz),
    ));
    Ok(packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_map_to_references() {
        let s: ChartSpec = "https://charts.example.com/stable/nginx:15.4.2"
            .parse()
            .unwrap();
        assert_eq!(
            s.reference().unwrap().to_string(),
            "charts.example.com/stable/nginx:15.4.2"
        );
        let s: ChartSpec = "http://127.0.0.1:8080/nginx:1.0.0+build.1".parse().unwrap();
        assert_eq!(
            s.reference().unwrap().to_string(),
            "127.0.0.1:8080/nginx:1.0.0_build.1"
        );
        for bad in [
            "nginx:1.0",
            "https://charts.example.com/nginx",
            "ftp://x.example.com/nginx:1",
            "https://x.example.com/Nginx:1",
            "https://x.example.com/nginx:1 2",
            "https://x.example.com/a?token=s/nginx:1",
        ] {
            assert!(bad.parse::<ChartSpec>().is_err(), "{bad}");
        }
    }
}
