//! `ferry restore --from URL`: a bundle's images go from a served bundle (`ferry serve`) or any
//! registry straight into this node's runtime, pulled by digest (so byte-exact: the runtime
//! checks every digest), then named as the bundle names them and pinned when asked. No tar is
//! written on the node. The list comes from the served bundle's own index.json and ferry.lock
//! (`GET /ferry/v1/index.json`, `/ferry/v1/lock`), or from a lock file (`--lock`).

mod attempts;
mod pull;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{RestoreError, RestoreOptions, Restored};
use crate::digest::Digest;
use crate::lock::LockFile;
use crate::reference::ImageRef;
use crate::registry::RetryPolicy;
use crate::store::{BundleIndex, MAX_INDEX_BYTES};

pub use attempts::{Attempt, run_attempts};

/// Where the images come from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `http(s)://HOST[:PORT][/PREFIX]`.
    pub url: url::Url,
    /// Skip TLS verification (a self-signed `ferry serve`).
    pub insecure: bool,
    /// Attempts, growing attempt timeouts and backoff: the registry client's own settings.
    pub retry: RetryPolicy,
}

/// One image to bring: its name in the bundle and the digest it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteImage {
    /// The full reference (`docker.io/library/alpine:3.20`).
    pub name: String,
    /// Its manifest (or index) digest.
    pub digest: Digest,
}

/// What a served bundle (or a lock file) says to bring.
#[derive(Debug, Clone)]
pub struct RemoteBundle {
    /// The images, sorted by name.
    pub images: Vec<RemoteImage>,
    /// The bundle's identity: its ferry.lock's sha256 (pins are recorded under it).
    pub id: Digest,
    /// Whether the source is a `ferry serve` (repositories carry their source registry as
    /// first component) rather than a registry `ferry push` filled (registry dropped).
    pub served: bool,
}

impl Origin {
    /// Parses `--from`: an http or https URL with a host and no query, user or fragment.
    pub fn parse(text: &str, insecure: bool, retry: RetryPolicy) -> Result<Origin, RestoreError> {
        let bad = |why: &str| RestoreError::BadSource {
            url: crate::redact::redact(text),
            reason: why.to_owned(),
        };
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("only http:// and https:// are served"));
        }
        if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "give http(s)://HOST[:PORT][/PREFIX], no query or fragment",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials do not go in the URL"));
        }
        Ok(Origin {
            url,
            insecure,
            retry,
        })
    }

    /// The URL as shown to a user (no credentials, no query).
    pub fn shown(&self) -> String {
        crate::redact::redact(self.url.as_str())
    }

    /// `HOST[:PORT]` and the path prefix (no trailing slash): where repositories live.
    fn registry_prefix(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        let authority = match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        format!("{authority}{}", self.url.path().trim_end_matches('/'))
    }

    /// Where `image` is pulled from, by digest: for a served bundle
    /// `HOST/SOURCE_REGISTRY/REPOSITORY@DIGEST` (unambiguous even when two source registries
    /// have the same repository), else `HOST[/PREFIX]/REPOSITORY@DIGEST` as `ferry push` maps it.
    pub fn pull_name(&self, image: &RemoteImage, served: bool) -> Result<String, RestoreError> {
        let reference: ImageRef = image.name.parse().map_err(|e| RestoreError::BadSource {
            url: self.shown(),
            reason: format!("{:?} is not an image reference: {e}", image.name),
        })?;
        let registry = crate::docker_hub::canonical(reference.registry());
        Ok(if served {
            format!(
                "{}/{}/{}@{}",
                self.registry_prefix(),
                crate::serve::host_component(registry),
                reference.repository(),
                image.digest
            )
        } else {
            format!(
                "{}/{}@{}",
                self.registry_prefix(),
                reference.repository(),
                image.digest
            )
        })
    }

    /// A file the served bundle exposes under `/ferry/v1/`, with retries; `None` on 404.
    fn served_file(&self, name: &str) -> Result<Option<Vec<u8>>, RestoreError> {
        let url = self
            .url
            .join(&format!(
                "{}/ferry/v1/{name}",
                self.url.path().trim_end_matches('/')
            ))
            .map_err(|e| RestoreError::BadSource {
                url: self.shown(),
                reason: e.to_string(),
            })?;
        let client = crate::registry::plain_client(self.insecure)
            .map_err(|e| RestoreError::runtime(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RestoreError::runtime(format!("cannot start the HTTP client: {e}")))?;
        let shown = crate::redact::redact(url.as_str());
        run_attempts(&self.retry, |timeout| {
            runtime.block_on(get(&client, url.clone(), timeout))
        })
        .map_err(|e| RestoreError::Unreachable {
            url: shown.clone(),
            reason: e,
        })
    }

    /// What to bring: the served bundle's index.json and ferry.lock, or with `lock` that file's
    /// images (any registry holding them under `ferry push`'s names).
    pub fn list(&self, lock: Option<&Path>) -> Result<RemoteBundle, RestoreError> {
        if let Some(path) = lock {
            return from_lock_file(path);
        }
        let shown = PathBuf::from(format!("{}/ferry/v1/index.json", self.shown()));
        let Some(index) = self.served_file("index.json")? else {
            return Err(RestoreError::Unreachable {
                url: self.shown(),
                reason: "it serves no /ferry/v1/index.json: not a ferry serve (0.1 or later)"
                    .into(),
            });
        };
        let index = BundleIndex::parse(&index, &shown)?;
        let lock = self.served_file("lock")?;
        let mut images: Vec<RemoteImage> = index
            .entries()
            .into_iter()
            .filter_map(|e| {
                let name = e.name?;
                // Signatures and SBOMs travel in the bundle; they are not images to import.
                if crate::supply::is_referrer_name(&name) {
                    return None;
                }
                let digest = e.descriptor.digest().to_string().parse().ok()?;
                Some(RemoteImage { name, digest })
            })
            .collect();
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(RemoteBundle {
            images,
            id: Digest::sha256_of(lock.as_deref().unwrap_or_default()),
            served: true,
        })
    }
}

/// A lock file's images; its sha256 is the bundle's identity.
fn from_lock_file(path: &Path) -> Result<RemoteBundle, RestoreError> {
    let bytes = crate::fsutil::read_bounded(path, MAX_INDEX_BYTES)
        .map_err(|e| RestoreError::runtime(format!("cannot read --lock {}: {e}", path.display())))?
        .ok_or_else(|| RestoreError::runtime(format!("--lock {}: no such file", path.display())))?;
    let lock = LockFile::parse(&bytes, path)?;
    let mut images: Vec<RemoteImage> = lock
        .images
        .iter()
        .filter(|i| !crate::supply::is_referrer_name(&i.reference))
        .map(|i| RemoteImage {
            name: i.reference.clone(),
            digest: i.digest.clone(),
        })
        .collect();
    images.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(RemoteBundle {
        images,
        id: Digest::sha256_of(&bytes),
        served: false,
    })
}

/// One GET: the body on 200, `None` on 404; other answers and transport errors say whether a
/// retry may help.
async fn get(
    client: &reqwest::Client,
    url: url::Url,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, Attempt> {
    let resp = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| Attempt::Retry(crate::redact::redact(&e.to_string())))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        let retry = status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
        let why = format!("answered {status}");
        return Err(if retry {
            Attempt::Retry(why)
        } else {
            Attempt::Fail(why)
        });
    }
    if resp.content_length().is_some_and(|n| n > MAX_INDEX_BYTES) {
        return Err(Attempt::Fail(format!(
            "larger than {MAX_INDEX_BYTES} bytes"
        )));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| Attempt::Retry(crate::redact::redact(&e.to_string())))?;
    if body.len() as u64 > MAX_INDEX_BYTES {
        return Err(Attempt::Fail(format!(
            "larger than {MAX_INDEX_BYTES} bytes"
        )));
    }
    Ok(Some(body.to_vec()))
}

/// Brings every image of `bundle` from `from` into the runtime `options` name; one outcome per
/// image, sorted by name.
pub fn restore_from(
    from: &Origin,
    bundle: &RemoteBundle,
    options: &RestoreOptions,
) -> Result<Vec<Restored>, RestoreError> {
    if bundle.images.is_empty() {
        return Err(RestoreError::Empty(from.shown()));
    }
    let mut outcomes = match options.runtime {
        super::Runtime::Containerd => pull::into_containerd(from, bundle, options)?,
        super::Runtime::CriO => pull::into_crio(from, bundle, options)?,
    };
    outcomes.sort_by(|a, b| a.reference.cmp(&b.reference));
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str) -> RemoteImage {
        RemoteImage {
            name: name.into(),
            digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
        }
    }

    #[test]
    fn pull_names_follow_serve_and_push() {
        let from = Origin::parse("http://10.0.0.1:5000/", false, RetryPolicy::default()).unwrap();
        let d = "a".repeat(64);
        assert_eq!(
            from.pull_name(&image("docker.io/library/alpine:3.20"), true)
                .unwrap(),
            format!("10.0.0.1:5000/docker.io/library/alpine@sha256:{d}")
        );
        assert_eq!(
            from.pull_name(&image("localhost:5001/app:1"), true)
                .unwrap(),
            format!("10.0.0.1:5000/localhost_5001/app@sha256:{d}")
        );
        let pushed =
            Origin::parse("https://reg.example/airgap", false, RetryPolicy::default()).unwrap();
        assert_eq!(
            pushed
                .pull_name(&image("quay.io/org/app:1"), false)
                .unwrap(),
            format!("reg.example/airgap/org/app@sha256:{d}")
        );
    }

    #[test]
    fn refuses_odd_urls() {
        for bad in ["ftp://h/", "http://u:p@h/", "http://h/?x=1", "h:5000"] {
            assert!(
                Origin::parse(bad, false, RetryPolicy::default()).is_err(),
                "{bad}"
            );
        }
    }
}
