//! Opening a blob download, resuming at an offset with a closed Range request, or one part of
//! it (a closed range of its bytes, [`Registries::open_blob_part`]). Writing and verifying the
//! bytes is the caller's job (see `fetch`), which owns the store.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, HeaderMap, HeaderValue, RANGE};
use tokio::sync::OwnedSemaphorePermit;

use super::Registries;
use super::error::{ErrorKind, RegistryError};
use super::host::Host;
use super::mirrors::Remote;
use super::pace::Pace;
use super::request::Request;
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
    /// registry sent the whole blob (the caller must then skip what it has, or start over).
    pub start: u64,
    /// The response's ETag, when it has one (parts of one blob must all carry the same).
    pub etag: Option<String>,
    stream: BoxStream<'static, reqwest::Result<Bytes>>,
    url: String,
    registry: String,
    host: std::sync::Arc<Host>,
    stall: Duration,
    /// When the last chunk arrived: the stall timer is re-armed from it only when it fires,
    /// so a chunk costs a clock read, not a timer registration.
    last_chunk: Instant,
    stall_timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    pace: Pace,
    _permit: OwnedSemaphorePermit,
}

/// How a registry answered a request for one part of a blob.
pub enum PartAnswer {
    /// A 206 with exactly the range asked for.
    Part(BlobBody),
    /// A 200 with the whole blob: the registry (or its storage) does not honour Range.
    Whole(BlobBody),
    /// A 206 for another range, or another ETag than the other parts': its bytes cannot be
    /// placed (the response is dropped).
    Refused(String),
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
        let next = loop {
            tokio::select! {
                biased;
                next = self.stream.next() => break next,
                () = &mut self.stall_timer => {
                    let due = self.last_chunk + self.stall;
                    if Instant::now() >= due {
                        return Err(self.stalled());
                    }
                    self.stall_timer.as_mut().reset(due.into());
                }
            }
        };
        self.last_chunk = Instant::now();
        match next {
            None => Ok(None),
            Some(Ok(b)) => match self.pace.record(b.len()) {
                Ok(()) => Ok(Some(b)),
                Err(why) => Err(RegistryError::new(
                    ErrorKind::TooSlow,
                    &self.registry,
                    &self.url,
                    why,
                )),
            },
            Some(Err(e)) => Err(self.host.transport_error(&self.url, &e)),
        }
    }

    /// The registry, as the user named it.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Where the bytes come from (after redirects).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn stalled(&self) -> RegistryError {
        RegistryError::new(
            ErrorKind::Stalled,
            &self.registry,
            &self.url,
            format!(
                "no data for {} s (--stall-timeout)",
                self.stall.as_secs_f64()
            ),
        )
    }
}

/// The ETag header as text (visible ASCII, as RFC 9110 has it), else none.
fn etag_of(resp: &reqwest::Response) -> Option<String> {
    let v = resp.headers().get(ETAG)?.to_str().ok()?;
    (v.len() <= 256 && v.bytes().all(|b| b.is_ascii_graphic())).then(|| v.to_owned())
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

/// Checks that a 206 carries exactly bytes `from..to` of a blob of `size` bytes.
fn exact_range(resp: &reqwest::Response, (from, to): (u64, u64), size: u64) -> Result<(), String> {
    let shown = resp
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok());
    match shown.and_then(parse_content_range) {
        Some((a, b, t)) if a == from && b + 1 == to && t.is_none_or(|t| t == size) => Ok(()),
        _ => Err(format!(
            "asked for bytes {from}-{}, the registry sent Content-Range {}",
            to - 1,
            crate::untrusted::shown(shown.unwrap_or("(none)"))
        )),
    }
}

impl Registries {
    /// Requests in flight to one registry at most (`--jobs-per-registry`): a blob fetched in
    /// parts uses no more connections than this.
    pub fn connections_per_registry(&self) -> usize {
        self.options.connections_per_registry
    }

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
        self.retrier(
            remote,
            format!("config {} of {}", digest.short(), remote.name()),
        )
        .run(|attempt| self.fetch_small_blob_once(remote, digest, size, attempt))
        .await
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
        let range = ranged.then_some((offset, size));
        let (resp, permit) = self.get_blob(&host, remote, digest, range, attempt).await?;
        let (resp, permit, start) = if resp.status() != StatusCode::PARTIAL_CONTENT {
            (resp, permit, 0)
        } else if ranged && exact_range(&resp, (offset, size), size).is_ok() {
            (resp, permit, offset)
        } else {
            // A range we did not ask for: its bytes cannot be placed. Start over.
            let url = resp.url().to_string();
            drop((resp, permit));
            let (resp, permit) = self.get_blob(&host, remote, digest, None, attempt).await?;
            if resp.status() != StatusCode::OK {
                let detail = format!("expected 200 for a whole blob, got {}", resp.status());
                return Err(host.err(ErrorKind::Protocol, &url, detail));
            }
            (resp, permit, 0)
        };
        self.blob_body(&host, resp, permit, start, size)
    }

    /// Opens bytes `from..to` of the blob `digest` (`size` bytes) from `remote`: one part of a
    /// blob fetched over several connections. `etag`, when known, is the one the other parts
    /// came with: a part under another is refused (the storage changed between requests).
    #[allow(clippy::too_many_arguments)]
    pub async fn open_blob_part(
        &self,
        remote: &Remote,
        digest: &Digest,
        size: u64,
        (from, to): (u64, u64),
        etag: Option<&str>,
        attempt: u32,
    ) -> Result<PartAnswer, RegistryError> {
        let host = self.host(&remote.registry)?;
        let (resp, permit) = self
            .get_blob(&host, remote, digest, Some((from, to)), attempt)
            .await?;
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            // Any other success is the whole blob.
            return self
                .blob_body(&host, resp, permit, 0, size)
                .map(PartAnswer::Whole);
        }
        if let Err(why) = exact_range(&resp, (from, to), size) {
            return Ok(PartAnswer::Refused(why));
        }
        let sent = etag_of(&resp);
        if let (Some(want), Some(got)) = (etag, sent.as_deref())
            && want != got
        {
            // Both visible ASCII (etag_of): safe to show.
            let why = format!("the ETag changed from {want} to {got} between parts");
            return Ok(PartAnswer::Refused(why));
        }
        self.blob_body(&host, resp, permit, from, to)
            .map(PartAnswer::Part)
    }

    /// The body of a blob response delivering bytes `start..end`: refused (kind `Corrupt`)
    /// when its Content-Length says more than that.
    fn blob_body(
        &self,
        host: &std::sync::Arc<Host>,
        resp: reqwest::Response,
        permit: OwnedSemaphorePermit,
        start: u64,
        end: u64,
    ) -> Result<BlobBody, RegistryError> {
        let url = resp.url().to_string();
        if let Some(len) = resp.content_length()
            && len > end - start
        {
            let detail = format!(
                "the registry sends {len} bytes for a blob of {end} bytes from offset {start}"
            );
            return Err(host.err(ErrorKind::Corrupt, &url, detail));
        }
        let stall = self.options.retry.stall_timeout;
        Ok(BlobBody {
            start,
            etag: etag_of(&resp),
            stream: resp.bytes_stream().boxed(),
            url,
            registry: host.registry.clone(),
            host: host.clone(),
            stall,
            last_chunk: Instant::now(),
            stall_timer: Box::pin(tokio::time::sleep(stall)),
            pace: Pace::new(stall, self.options.retry.min_rate),
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
        // `range` is `(from, to)`: bytes from..to, sent as the closed `bytes=from-(to-1)`.
        let mut headers = HeaderMap::new();
        if let Some((from, to)) = range {
            let v = format!("bytes={from}-{}", to - 1);
            headers.insert(RANGE, HeaderValue::from_str(&v).expect("ascii"));
        }
        let path = format!("v2/{}/blobs/{digest}", remote.repository);
        let request = Request::pull(self.url(host, &path).await?, &remote.repository)
            .headers(headers)
            .limit(Host::pull_limit(self, attempt));
        let answer = host.execute(self, request).await?;
        Ok((answer.response, answer.slot))
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
