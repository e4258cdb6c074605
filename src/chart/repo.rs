//! A classic Helm chart repository over HTTP: `index.yaml`, then the chart `.tgz` it names,
//! checked against the sha256 index.yaml gives.

use bytes::Bytes;
use futures_util::StreamExt;

use super::{ChartError, ChartSpec};
use crate::credentials::Credential;
use crate::error::Kind;
use crate::registry::Registries;

/// The largest index.yaml read (big public repositories list thousands of versions).
const MAX_INDEX_BYTES: u64 = 128 * 1024 * 1024;
/// The largest chart archive read.
const MAX_CHART_BYTES: u64 = 64 * 1024 * 1024;

/// index.yaml: only what ferry needs.
#[derive(Debug, serde::Deserialize)]
struct Index {
    #[serde(default)]
    entries: std::collections::HashMap<String, Vec<Entry>>,
}

#[derive(Debug, serde::Deserialize)]
struct Entry {
    version: String,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
}

/// One chart repository, reached with the registries' HTTP settings and credentials.
pub struct ChartRepo<'a> {
    registries: &'a Registries,
}

impl<'a> ChartRepo<'a> {
    /// Charts fetched with `registries`' client settings (CA files, `--insecure-registry`)
    /// and credentials (by the repository's `host[:port]`).
    pub fn new(registries: &'a Registries) -> ChartRepo<'a> {
        ChartRepo { registries }
    }

    /// The chart `.tgz` `spec` names, its sha256 checked against index.yaml's digest and, when
    /// a lock gives one, first that digest against the `locked` one (a version republished
    /// with other content is refused before any byte of it is fetched).
    pub async fn fetch(
        &self,
        spec: &ChartSpec,
        locked: Option<&crate::digest::Digest>,
    ) -> Result<Bytes, ChartError> {
        let (url, expected) = self.entry(spec).await?;
        if let Some(locked) = locked
            && locked.to_string() != expected
        {
            return Err(ChartError::Moved {
                chart: spec.to_string(),
                locked: locked.to_string(),
                now: expected,
            });
        }
        let tgz = self.get(&spec.repo, &url, MAX_CHART_BYTES).await?;
        let actual = crate::digest::Digest::sha256_of(&tgz).to_string();
        if actual != expected {
            return Err(ChartError::Digest {
                url: shown(&url),
                expected,
                actual,
            });
        }
        Ok(tgz)
    }

    /// The digest (`sha256:HEX`) index.yaml gives the chart `spec` names today; nothing else
    /// is fetched.
    pub async fn current_digest(&self, spec: &ChartSpec) -> Result<String, ChartError> {
        Ok(self.entry(spec).await?.1)
    }

    /// The URL of the chart `spec` names and its digest (`sha256:HEX`), from index.yaml.
    async fn entry(&self, spec: &ChartSpec) -> Result<(url::Url, String), ChartError> {
        let mut base = spec.repo.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let index_url = base.join("index.yaml").expect("a relative path joins");
        let text = self.get(&spec.repo, &index_url, MAX_INDEX_BYTES).await?;
        let index: Index = serde_yaml_ng::from_slice(&text).map_err(|e| ChartError::Invalid {
            what: shown(&index_url),
            why: format!("not a chart repository index: {e}"),
        })?;
        let versions = index.entries.get(&spec.name);
        let entry = versions
            .and_then(|v| v.iter().find(|e| e.version == spec.version))
            .ok_or_else(|| ChartError::NotInIndex {
                repo: shown(&spec.repo),
                name: spec.name.clone(),
                version: spec.version.clone(),
                known: versions.map_or_else(String::new, |v| {
                    let list: Vec<&str> = v.iter().take(10).map(|e| e.version.as_str()).collect();
                    format!(" (it has {})", crate::untrusted::shown(&list.join(", ")))
                }),
            })?;
        let invalid = |why: String| ChartError::Invalid {
            what: shown(&index_url),
            why,
        };
        let expected = entry
            .digest
            .as_deref()
            .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                invalid(format!(
                    "{} {}: no sha256 digest to check the chart against",
                    spec.name, spec.version
                ))
            })?
            .to_ascii_lowercase();
        let url = entry
            .urls
            .first()
            .ok_or_else(|| invalid(format!("{} {}: no URL", spec.name, spec.version)))?;
        let url = base
            .join(url)
            .map_err(|e| invalid(format!("chart URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("chart URL: http or https only".into()));
        }
        Ok((url, format!("sha256:{expected}")))
    }

    /// GETs `url` into memory, at most `limit` bytes; credentials go only to the repository's
    /// own host (as helm sends them only there unless told otherwise).
    async fn get(&self, repo: &url::Url, url: &url::Url, limit: u64) -> Result<Bytes, ChartError> {
        let host = host_port(url);
        let mut request = self.registries.http_client(&host).get(url.clone());
        if host == host_port(repo)
            && let Some(credential) = self
                .registries
                .credential(&host, repo.path().trim_matches('/'))
                .map_err(|e| fetch_error(url, e.to_string(), Kind::Credentials))?
        {
            request = match credential {
                Credential::Basic { username, password } => {
                    request.basic_auth(username, Some(password))
                }
                Credential::IdentityToken(token) => request.bearer_auth(token),
            };
        }
        let response = request.send().await.map_err(|e| {
            // A refused certificate is the repository's for every chart: its own kind.
            let kind = match crate::registry::cert_problem(&e) {
                Some(_) => Kind::Certificate,
                None => Kind::Transport,
            };
            fetch_error(url, without_url(&e), kind)
        })?;
        let status = response.status();
        if !status.is_success() {
            let kind = match status.as_u16() {
                401 => Kind::Unauthorized,
                403 => Kind::Denied,
                404 => Kind::ManifestNotFound,
                429 => Kind::RateLimited,
                _ => Kind::Protocol,
            };
            return Err(fetch_error(url, format!("HTTP {status}"), kind));
        }
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(fetch_error(
                url,
                format!("larger than {limit} bytes"),
                Kind::Protocol,
            ));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fetch_error(url, without_url(&e), Kind::Transport))?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(fetch_error(
                    url,
                    format!("larger than {limit} bytes"),
                    Kind::Protocol,
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }
}

fn host_port(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// A URL as shown: credentials and query redacted.
fn shown(url: &url::Url) -> String {
    crate::redact::redact(url.as_str())
}

/// reqwest's message and its causes, redacted (it may name the URL).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    crate::redact::redact(&text)
}

fn fetch_error(url: &url::Url, why: String, kind: Kind) -> ChartError {
    ChartError::Fetch {
        url: shown(url),
        why,
        kind,
    }
}
