//! The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`): an image index listing the
//! manifests whose `subject` is a digest. Registries without it answer 404 (or another error);
//! the caller then reads the fallback tag `sha256-<hex>` instead, as the spec says.

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};

use super::Registries;
use super::host::Host;
use super::manifest::FetchedManifest;
use super::mirrors::Remote;
use super::request::{Answer, Request};
use crate::digest::Digest;
use crate::manifest::{MAX_MANIFEST_BYTES, OCI_INDEX};

impl Registries {
    /// The referrers index of `subject` from the API, or `None` when the registry does not
    /// answer it with an OCI image index (no API: use the fallback tag). One attempt: the
    /// fallback is fetched with retries.
    pub async fn fetch_referrers(
        &self,
        remote: &Remote,
        subject: &Digest,
    ) -> Option<FetchedManifest> {
        let host = self.host(&remote.registry).ok()?;
        let path = format!("v2/{}/referrers/{subject}", remote.repository);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(OCI_INDEX));
        let request = Request::pull(self.url(&host, &path).await.ok()?, &remote.repository)
            .headers(headers)
            .limit(Host::pull_limit(self, 1));
        let Answer {
            response: resp,
            slot: _slot,
        } = host.execute(self, request).await.ok()?;
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        if content_type.as_deref() != Some(OCI_INDEX) {
            return None;
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        loop {
            let next = tokio::time::timeout(self.options.retry.stall_timeout, stream.next())
                .await
                .ok()?;
            match next {
                None => break,
                Some(Ok(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() as u64 > MAX_MANIFEST_BYTES {
                        return None;
                    }
                }
                Some(Err(_)) => return None,
            }
        }
        Some(FetchedManifest {
            digest: Digest::sha256_of(&body),
            bytes: body.into(),
            content_type,
        })
    }
}
