//! Blob uploads: a session POST, then one PUT whose body streams from the bundle through a
//! verified reader (the last chunk held back until the digest is checked), watched for stalls,
//! restarted from a new POST when cut (docker-registry 2.8 forgets a session cut mid-body).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use super::Registries;
use super::auth::push_scope;
use super::error::{ErrorKind, RegistryError};
use super::host::Host;
use super::manifest::header_str;
use super::request::Request;
use super::upload::{BlobSource, UploadError, check_served_digest};
use crate::digest::Digest;
use crate::report::Event;

/// Bytes read from the bundle per chunk of an upload body.
const CHUNK: usize = 1 << 20;

impl Registries {
    /// Uploads a blob into `repository` (POST for a session, then one PUT with the body), from a
    /// new session on every attempt. Checks the registry's digest answer.
    pub async fn upload_blob(
        &self,
        registry: &str,
        repository: &str,
        source: Arc<dyn BlobSource>,
    ) -> Result<u32, UploadError> {
        let host = self.host(registry)?;
        let digest = source.digest().clone();
        let mut retrier = self.push_retrier(format!(
            "upload of {} to {registry}/{repository}",
            digest.short()
        ));
        loop {
            let attempt = retrier.next_attempt();
            let local = Arc::new(Mutex::new(None));
            let sent = Arc::new(AtomicU64::new(0));
            let result = self
                .upload_once(&host, repository, &source, attempt, &local, &sent)
                .await;
            if let Some(source) = local.lock().expect("local error lock").take() {
                return Err(UploadError::Local { digest, source });
            }
            match result {
                Ok(()) => return Ok(retrier.retries()),
                Err(e) => {
                    // Sent bytes are lost with the session: the next attempt starts at zero.
                    self.reporter.event(&Event::BlobRewound {
                        digest: digest.clone(),
                        bytes: sent.load(Ordering::SeqCst),
                    });
                    retrier.failed(e, false).await?;
                    // The cut PUT may have landed after all.
                    if self
                        .blob_exists(registry, repository, &digest, source.size())
                        .await?
                    {
                        return Ok(retrier.retries());
                    }
                }
            }
        }
    }

    /// One attempt: a new upload session, then the whole body in one PUT.
    async fn upload_once(
        &self,
        host: &Host,
        repository: &str,
        source: &Arc<dyn BlobSource>,
        attempt: u32,
        local: &Arc<Mutex<Option<io::Error>>>,
        sent: &Arc<AtomicU64>,
    ) -> Result<(), RegistryError> {
        let scope = push_scope(repository);
        let put = self
            .start_upload(host, repository, &scope, source.digest(), attempt)
            .await?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(source.size()));
        self.reporter.event(&Event::BlobStarted {
            digest: source.digest().clone(),
            size: source.size(),
            offset: 0,
        });
        // Built anew for a re-sent request (after a 401): the file is opened again.
        let make_body = || {
            sent.store(0, Ordering::SeqCst);
            Some(self.stream_body(source.clone(), sent.clone(), local.clone()))
        };
        let request = Request::push(Method::PUT, put.clone(), repository, &scope)
            .headers(headers)
            .body(&make_body);
        let send = host.execute(self, request);
        let resp = tokio::select! {
            r = send => r?.response,
            e = self.watch_upload(host, &put, sent, source.size(), attempt) => return Err(e),
        };
        if resp.status() != StatusCode::CREATED {
            return Err(host.push_error(resp, repository).await);
        }
        check_served_digest(host, &resp, source.digest())
    }

    /// POSTs for an upload session; returns the URL to PUT the blob to (its Location, with
    /// the digest).
    async fn start_upload(
        &self,
        host: &Host,
        repository: &str,
        scope: &str,
        digest: &Digest,
        attempt: u32,
    ) -> Result<Url, RegistryError> {
        let start = self
            .url(host, &format!("v2/{repository}/blobs/uploads/"))
            .await?;
        let request = Request::push(Method::POST, start.clone(), repository, scope)
            .limit(self.small_limit(attempt));
        let resp = host.execute(self, request).await?.response;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(host.push_error(resp, repository).await);
        }
        let location = header_str(resp.headers(), "location").ok_or_else(|| {
            host.err(
                ErrorKind::Protocol,
                start.as_str(),
                "202 without a Location for the upload",
            )
        })?;
        let mut put = resp.url().join(&location).map_err(|e| {
            host.err(
                ErrorKind::Protocol,
                start.as_str(),
                format!("bad upload Location: {e}"),
            )
        })?;
        put.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        Ok(put)
    }

    /// Resolves when an upload stalls: no byte taken for the stall timeout while the body is
    /// sent, or no answer within the attempt's time limit once it is all sent.
    async fn watch_upload(
        &self,
        host: &Host,
        url: &Url,
        sent: &AtomicU64,
        size: u64,
        attempt: u32,
    ) -> RegistryError {
        let stall = self.options.retry.stall_timeout;
        let mut last = 0;
        loop {
            tokio::time::sleep(stall).await;
            let now = sent.load(Ordering::SeqCst);
            if now >= size {
                let wait = self.options.retry.attempt_timeout(attempt);
                tokio::time::sleep(wait).await;
                return host.err(
                    ErrorKind::Timeout,
                    url.as_str(),
                    format!("no answer {} s after the upload", wait.as_secs()),
                );
            }
            if now == last {
                return host.err(
                    ErrorKind::Stalled,
                    url.as_str(),
                    format!("no byte taken for {} s (--stall-timeout)", stall.as_secs()),
                );
            }
            last = now;
        }
    }

    /// The body of an upload: read on a blocking thread, verified as read, the last chunk held
    /// back until the digest is checked, progress counted as the HTTP client takes chunks.
    fn stream_body(
        &self,
        source: Arc<dyn BlobSource>,
        sent: Arc<AtomicU64>,
        local: Arc<Mutex<Option<io::Error>>>,
    ) -> reqwest::Body {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(2);
        let digest = source.digest().clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = read_chunks(source.as_ref(), &tx) {
                let copy = io::Error::new(e.kind(), e.to_string());
                *local.lock().expect("local error lock") = Some(e);
                let _ = tx.blocking_send(Err(copy));
            }
        });
        let reporter = self.reporter.clone();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .map(move |item| {
            if let Ok(b) = &item {
                sent.fetch_add(b.len() as u64, Ordering::SeqCst);
                reporter.event(&Event::BlobProgress {
                    digest: digest.clone(),
                    bytes: b.len() as u64,
                });
            }
            item
        });
        reqwest::Body::wrap_stream(stream)
    }
}

/// Reads `source` in chunks into `tx`, always one chunk behind, so the last chunk goes out only
/// after the reader has checked the digest at the end.
fn read_chunks(
    source: &dyn BlobSource,
    tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let mut reader = source.open()?;
    let mut pending: Option<Bytes> = None;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0;
        while n < CHUNK {
            match reader.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(p) = pending.take()
            && tx.blocking_send(Ok(p)).is_err()
        {
            // The request was dropped (cut, cancelled): nobody reads on.
            return Ok(());
        }
        if n == 0 {
            return Ok(());
        }
        buf.truncate(n);
        pending = Some(Bytes::from(buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::store::VerifiedReader;

    struct Bytes3 {
        digest: Digest,
        content: Vec<u8>,
    }

    impl BlobSource for Bytes3 {
        fn digest(&self) -> &Digest {
            &self.digest
        }
        fn size(&self) -> u64 {
            self.content.len() as u64
        }
        fn open(&self) -> io::Result<Box<dyn io::Read + Send>> {
            let r = io::Cursor::new(self.content.clone());
            Ok(Box::new(VerifiedReader::new(
                r,
                self.digest.clone(),
                self.size(),
            )))
        }
    }

    fn sent(source: &Bytes3) -> (u64, io::Result<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let result = read_chunks(source, &tx);
        drop(tx);
        let mut total = 0;
        while let Ok(Ok(b)) = rx.try_recv() {
            total += b.len() as u64;
        }
        (total, result)
    }

    #[test]
    fn the_last_chunk_waits_for_the_digest() {
        let good = vec![7u8; CHUNK * 2 + CHUNK / 2];
        let source = Bytes3 {
            digest: Digest::sha256_of(&good),
            content: good.clone(),
        };
        let (total, result) = sent(&source);
        assert!(result.is_ok());
        assert_eq!(total, good.len() as u64);

        // One flipped byte at the end: the end of the content never goes out (here the reader
        // fails while filling the third chunk, so the second is held back too).
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        let source = Bytes3 {
            digest: Digest::sha256_of(&good),
            content: bad,
        };
        let (total, result) = sent(&source);
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(total, CHUNK as u64);
    }
}
