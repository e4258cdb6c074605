//! Opening a blob download, resuming at an offset with a closed Range request. Writing and
//! verifying the bytes is the caller's job (see `fetch`), which owns the store.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, HeaderMap, HeaderValue, RANGE};
use tokio::sync::OwnedSemaphorePermit;

use super::Registries;
use super::error::{ErrorKind, RegistryError};
use super::host::Host;
use super::mirrors::Remote;
use super::pace::Pace;
use super::retry::Retrier;
use crate::digest::Digest;

/// Counters for one blob transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobStats {
    /// Bytes received over the network.
    pub received: u64,
    /// Attempts that continued from an offset (within this run or from an earlier one).
    pub resumes: u32,
    /// Attempts after the first.
    pub retries: u32,
}

/// An open blob response body.
pub struct BlobBody {
    /// Offset of the first byte this body delivers: the requested offset, or 0 when the
    /// registry sent the whole blob (the caller must then start over).
    pub start: u64,
    stream: BoxStream<'static, reqwest::Result<Bytes>>,
    url: String,
    registry: String,
    host: std::sync::Arc<Host>,
    stall: std::time::Duration,
    pace: Pace,
    _permit: OwnedSemaphorePermit,
}

impl BlobBody {
    /// An error saying this body's content is wrong (kind `Corrupt`, worth a retry).
    pub fn corrupt(&self, detail: String) -> RegistryError {
        RegistryError::new(ErrorKind::Corrupt, &self.registry, &self.url, detail)
    }

    /// An error saying the transfer broke off (kind `Interrupted`, resumable).
    pub fn interrupted(&self, detail: String) -> RegistryError {
        RegistryError::new(ErrorKind::Interrupted, &self.registry, &self.url, detail)
    }

    /// The next chunk; `None` at the end. A chunk not arriving within the stall timeout is an
    /// error of kind `Stalled`; a body slower than the minimum rate one of kind `TooSlow`.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        match tokio::time::timeout(self.stall, self.stream.next()).await {
            Err(_) => Err(RegistryError::new(
                ErrorKind::Stalled,
                &self.registry,
                &self.url,
                format!(
                    "no data for {} s (--stall-timeout)",
                    self.stall.as_secs_f64()
                ),
            )),
            Ok(None) => Ok(None),
            Ok(Some(Ok(b))) => match self.pace.record(b.len()) {
                Ok(()) => Ok(Some(b)),
                Err(why) => Err(RegistryError::new(
                    ErrorKind::TooSlow,
                    &self.registry,
                    &self.url,
                    why,
                )),
            },
            Ok(Some(Err(e))) => Err(self.host.transport_error(&self.url, &e)),
        }
    }
}

/// `bytes START-END/TOTAL` -> (start, end, total); TOTAL may be `*`. Strictly RFC 9110's
/// `range-resp`: digits only, START <= END < TOTAL (anything else says nothing usable).
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (unit, rest) = v.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last) = (number(first)?, number(last)?);
    let total = if total == "*" {
        None
    } else {
        Some(number(total)?)
    };
    (first <= last && total.is_none_or(|t| last < t)).then_some((first, last, total))
}

impl Registries {
    /// A retry counter for one request; `what` names the target in retry events.
    pub fn retrier(&self, remote: &Remote, what: String) -> Retrier<'_> {
        // A mirror gets one retry: the source is there to fall back on.
        let retries = if remote.mirror {
            self.options.retry.retries.min(1)
        } else {
            self.options.retry.retries
        };
        Retrier::new(self, what, retries)
    }

    /// Fetches a small blob (a config) into memory, verified against digest and size.
    pub async fn fetch_small_blob(
        &self,
        remote: &Remote,
        digest: &Digest,
        size: u64,
    ) -> Result<Bytes, RegistryError> {
        let mut retrier = self.retrier(
            remote,
            format!("config {} of {}", digest.short(), remote.name()),
        );
        loop {
            let attempt = retrier.next_attempt();
            match self
                .fetch_small_blob_once(remote, digest, size, attempt)
                .await
            {
                Ok(b) => return Ok(b),
                Err(e) => retrier.failed(e, false).await?,
            }
        }
    }

    async fn fetch_small_blob_once(
        &self,
        remote: &Remote,
        digest: &Digest,
        size: u64,
        attempt: u32,
    ) -> Result<Bytes, RegistryError> {
        let mut body = self.open_blob(remote, digest, size, 0, attempt).await?;
        let mut buf = Vec::with_capacity(size as usize);
        while let Some(chunk) = body.next_chunk().await? {
            buf.extend_from_slice(&chunk);
            if buf.len() as u64 > size {
                break;
            }
        }
        let actual = Digest::of(digest.algorithm(), &buf);
        if buf.len() as u64 != size || &actual != digest {
            return Err(body.corrupt(format!(
                "expected {digest} ({size} bytes), got {actual} ({} bytes)",
                buf.len()
            )));
        }
        Ok(Bytes::from(buf))
    }

    /// Opens the blob `digest` of `size` bytes from `remote`, from byte `offset`.
    /// A 206 is accepted only when its Content-Range is exactly the range asked for; otherwise
    /// the blob is requested again from byte 0.
    pub async fn open_blob(
        &self,
        remote: &Remote,
        digest: &Digest,
        size: u64,
        offset: u64,
        attempt: u32,
    ) -> Result<BlobBody, RegistryError> {
        let host = self.host(&remote.registry)?;
        let ranged = offset > 0 && offset < size;
        let (resp, permit) = self
            .get_blob(
                &host,
                remote,
                digest,
                ranged.then_some((offset, size)),
                attempt,
            )
            .await?;
        let url = resp.url().to_string();
        let (resp, permit, start) = if resp.status() == StatusCode::PARTIAL_CONTENT {
            let range = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range);
            match range {
                Some((a, b, t))
                    if ranged && a == offset && b == size - 1 && t.is_none_or(|t| t == size) =>
                {
                    (resp, permit, offset)
                }
                _ => {
                    // A range we did not ask for: its bytes cannot be placed. Start over.
                    drop((resp, permit));
                    let (resp, permit) =
                        self.get_blob(&host, remote, digest, None, attempt).await?;
                    if resp.status() != StatusCode::OK {
                        return Err(RegistryError::new(
                            ErrorKind::Protocol,
                            &remote.registry,
                            &url,
                            format!("expected 200 for a whole blob, got {}", resp.status()),
                        ));
                    }
                    (resp, permit, 0)
                }
            }
        } else {
            (resp, permit, 0)
        };
        if let Some(len) = resp.content_length()
            && len > size - start
        {
            return Err(RegistryError::new(
                ErrorKind::Corrupt,
                &remote.registry,
                &url,
                format!(
                    "the registry sends {len} bytes for a blob of {size} bytes from offset {start}"
                ),
            ));
        }
        Ok(BlobBody {
            start,
            stream: resp.bytes_stream().boxed(),
            url,
            registry: remote.registry.clone(),
            host: host.clone(),
            stall: self.options.retry.stall_timeout,
            pace: Pace::new(
                self.options.retry.stall_timeout,
                self.options.retry.min_rate,
            ),
            _permit: permit,
        })
    }

    async fn get_blob(
        &self,
        host: &Host,
        remote: &Remote,
        digest: &Digest,
        range: Option<(u64, u64)>,
        attempt: u32,
    ) -> Result<(reqwest::Response, OwnedSemaphorePermit), RegistryError> {
        let mut headers = HeaderMap::new();
        if let Some((offset, size)) = range {
            let v = format!("bytes={offset}-{}", size - 1);
            headers.insert(RANGE, HeaderValue::from_str(&v).expect("ascii"));
        }
        let path = format!("v2/{}/blobs/{digest}", remote.repository);
        host.get(self, &remote.repository, &path, headers, attempt)
            .await
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, 199, Some(200)))
        );
        assert_eq!(
            parse_content_range("bytes 100-199/*"),
            Some((100, 199, None))
        );
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
