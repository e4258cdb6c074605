//! Fetching a manifest: raw bytes, size-capped, digest-checked.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};

use super::Registries;
use super::error::{ErrorKind, RegistryError};
use super::host::Host;
use super::mirrors::Remote;
use super::pace::Pace;
use super::request::{Answer, Request};
use crate::digest::{Algorithm, Digest};
use crate::manifest::{ACCEPT as MANIFEST_ACCEPT, MAX_MANIFEST_BYTES};

/// A manifest exactly as the registry served it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The bytes, never re-serialized.
    pub bytes: Bytes,
    /// Their digest (checked against the reference when it pins one).
    pub digest: Digest,
    /// The `Content-Type` the registry sent.
    pub content_type: Option<String>,
}

impl Registries {
    /// Fetches the manifest `reference` (a tag or a digest) of `remote`. When `pinned` is given
    /// the content must hash to it.
    pub async fn fetch_manifest(
        &self,
        remote: &Remote,
        reference: &str,
        pinned: Option<&Digest>,
    ) -> Result<FetchedManifest, RegistryError> {
        let path = format!("v2/{}/manifests/{reference}", remote.repository);
        let sep = if reference.contains(':') { "@" } else { ":" };
        let what = format!("manifest {}{sep}{reference}", remote.name());
        let started = std::time::Instant::now();
        let m = self
            .retrier(remote, what.clone())
            .run(|attempt| self.fetch_manifest_once(remote, &path, pinned, attempt))
            .await?;
        tracing::debug!(
            "{what}: {} ({} bytes) in {} ms",
            m.digest,
            m.bytes.len(),
            started.elapsed().as_millis()
        );
        Ok(m)
    }

    /// One attempt: GET, read within the size cap, check the digest.
    async fn fetch_manifest_once(
        &self,
        remote: &Remote,
        path: &str,
        pinned: Option<&Digest>,
        attempt: u32,
    ) -> Result<FetchedManifest, RegistryError> {
        let host = self.host(&remote.registry)?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let request = Request::pull(self.url(&host, path).await?, &remote.repository)
            .headers(headers)
            .limit(Host::pull_limit(self, attempt));
        let Answer {
            response: resp,
            slot: _slot,
        } = host.execute(self, request).await?;
        let url = resp.url().to_string();
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str());
        let served_digest = header_str(resp.headers(), "docker-content-digest");
        let body = self.read_manifest(&host, remote, &url, resp).await?;
        let algorithm = pinned.map_or(Algorithm::Sha256, Digest::algorithm);
        let digest = Digest::of(algorithm, &body);
        check_manifest_digest(remote, &url, &digest, pinned, served_digest.as_deref())?;
        Ok(FetchedManifest {
            bytes: body,
            digest,
            content_type,
        })
    }

    /// The manifest's body, refused past `MAX_MANIFEST_BYTES`, a stall or a trickle.
    async fn read_manifest(
        &self,
        host: &super::host::Host,
        remote: &Remote,
        url: &str,
        resp: reqwest::Response,
    ) -> Result<Bytes, RegistryError> {
        let too_large = |n: u64| {
            RegistryError::new(
                ErrorKind::Protocol,
                &remote.registry,
                url,
                format!(
                    "the manifest is {n} bytes; ferry refuses manifests over {MAX_MANIFEST_BYTES} bytes (4 MiB)"
                ),
            )
        };
        if let Some(n) = resp.content_length()
            && n > MAX_MANIFEST_BYTES
        {
            return Err(too_large(n));
        }
        let mut body = BytesMut::new();
        let mut stream = resp.bytes_stream();
        let stall = self.options.retry.stall_timeout;
        let mut pace = Pace::new(stall, self.options.retry.min_rate);
        loop {
            let next = tokio::time::timeout(stall, stream.next())
                .await
                .map_err(|_| {
                    RegistryError::new(
                        ErrorKind::Stalled,
                        &remote.registry,
                        url,
                        format!("no data for {} s (--stall-timeout)", stall.as_secs_f64()),
                    )
                })?;
            match next {
                None => return Ok(body.freeze()),
                Some(Ok(chunk)) => {
                    pace.record(chunk.len()).map_err(|why| {
                        RegistryError::new(ErrorKind::TooSlow, &remote.registry, url, why)
                    })?;
                    body.extend_from_slice(&chunk);
                    if body.len() as u64 > MAX_MANIFEST_BYTES {
                        return Err(too_large(body.len() as u64));
                    }
                }
                Some(Err(e)) => return Err(host.transport_error(url, &e)),
            }
        }
    }
}

/// The content must hash to what the reference pins, and to the registry's
/// `Docker-Content-Digest` when it sends one of the same algorithm.
fn check_manifest_digest(
    remote: &Remote,
    url: &str,
    digest: &Digest,
    pinned: Option<&Digest>,
    served: Option<&str>,
) -> Result<(), RegistryError> {
    let mismatch = |expected: &Digest, source: &str| -> RegistryError {
        RegistryError::new(
            ErrorKind::Protocol,
            &remote.registry,
            url,
            format!("manifest digest mismatch: {source} {expected}, content hashes to {digest}"),
        )
    };
    if let Some(expected) = pinned
        && expected != digest
    {
        return Err(mismatch(expected, "the reference pins"));
    }
    if let Some(served) = served.and_then(|s| s.parse::<Digest>().ok())
        && served.algorithm() == digest.algorithm()
        && &served != digest
    {
        return Err(mismatch(
            &served,
            "the registry's Docker-Content-Digest says",
        ));
    }
    Ok(())
}

/// A response header as text, when it is present and ASCII.
pub(super) fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
