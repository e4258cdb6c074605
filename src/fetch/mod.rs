//! Downloading one blob into the bundle: resumed from what is on disk, hashed while written,
//! retried on network faults and on content that does not match its digest.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::digest::Digest;
use crate::error::Diagnostic;
use crate::registry::{BlobBody, BlobStats, ErrorKind, Registries, RegistryError, Remote};
use crate::report::{Event, Reporter};
use crate::store::{BlobWriter, Layout, StagedBlob, StoreError};

/// Chunks in flight between the network and the writer of one blob. Two keep both busy (the
/// benchmark measured two as fast as eight, with 17 MiB less peak memory at --jobs 8).
const PIPELINE_CHUNKS: usize = 2;

/// Blobs up to this size are staged and landed in batches; for a larger one, its own fsync
/// costs little next to the time its download took.
const STAGE_MAX: u64 = 1 << 20;

/// Why a blob could not be stored.
#[derive(Debug)]
pub enum BlobError {
    /// The registry failed, after retries.
    Registry(RegistryError),
    /// Writing to the bundle failed (a full disk, permissions): no retry can help.
    Store(StoreError),
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::Registry(e) => write!(f, "{e}"),
            BlobError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BlobError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BlobError::Registry(e) => e.source(),
            BlobError::Store(e) => e.source(),
        }
    }
}

impl Diagnostic for BlobError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            BlobError::Registry(e) => e.kind(),
            BlobError::Store(e) => e.kind(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            BlobError::Registry(e) => e.hint(),
            BlobError::Store(e) if e.is_disk_full() => Some(
                "the bundle's filesystem is full; free space and re-run (finished blobs are kept)"
                    .into(),
            ),
            BlobError::Store(e) => e.hint(),
        }
    }
}

/// How one attempt ended, short of success.
enum AttemptError {
    /// A registry or network fault; `progressed` when bytes were stored before it.
    Registry(RegistryError, bool),
    /// The bundle cannot be written: ends the download.
    Store(StoreError),
}

impl From<StoreError> for AttemptError {
    fn from(e: StoreError) -> Self {
        AttemptError::Store(e)
    }
}

/// Runs blocking store work (hashing, writing, fsync) off the async worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("store task panicked")
}

/// One blob's download state across attempts.
struct Download<'a> {
    registries: &'a Registries,
    layout: &'a Arc<Layout>,
    source: &'a Remote,
    digest: &'a Digest,
    size: u64,
    reporter: &'a dyn Reporter,
    /// The partial file, kept between attempts (None after a discard: reopened fresh).
    writer: Option<BlobWriter>,
    /// The furthest offset stored so far: an attempt progresses only past it.
    high_water: u64,
    stats: BlobStats,
    /// The verified download, once an attempt completed it (small blobs only).
    staged: Option<StagedBlob>,
}

/// Downloads `digest` (`size` bytes) into `layout` from the first of `remotes` that has it:
/// a mirror that fails hands over to the next remote, which resumes the same partial file.
/// A large blob is fsynced and renamed into `blobs/` at once; a small one (at most
/// [`STAGE_MAX`] bytes) comes back staged, for the caller to land ([`Layout::land`]) with
/// others before anything names it.
pub async fn fetch_blob(
    registries: &Registries,
    layout: &Arc<Layout>,
    remotes: &[Remote],
    digest: &Digest,
    size: u64,
    reporter: &dyn Reporter,
) -> Result<(BlobStats, Option<StagedBlob>), BlobError> {
    let mut d = Download {
        registries,
        layout,
        source: &remotes[0],
        digest,
        size,
        reporter,
        writer: None,
        high_water: 0,
        stats: BlobStats::default(),
        staged: None,
    };
    let started = std::time::Instant::now();
    let first = d.open().await.map_err(BlobError::Store)?;
    reporter.event(&Event::BlobStarted {
        digest: digest.clone(),
        size,
        offset: first.offset(),
    });
    d.high_water = first.offset();
    d.writer = Some(first);
    let mut retries_before = 0;
    let mut tried = crate::registry::Tried::default();
    for (i, remote) in remotes.iter().enumerate() {
        d.source = remote;
        let mut retrier = registries.retrier(
            remote,
            format!("blob {} from {}", digest.short(), remote.name()),
        );
        let outcome = loop {
            let attempt = retrier.next_attempt();
            d.stats.retries = retries_before + retrier.retries();
            match d.attempt(attempt).await {
                Ok(()) => break Ok(()),
                Err(AttemptError::Store(e)) => return Err(BlobError::Store(e)),
                Err(AttemptError::Registry(e, progressed)) => {
                    if let Err(e) = retrier.failed(e, progressed).await {
                        break Err(e);
                    }
                }
            }
        };
        retries_before += retrier.retries();
        match outcome {
            Ok(()) => {
                tracing::debug!(
                    "blob {} ({size} bytes) from {} in {} ms",
                    digest.short(),
                    remote.name(),
                    started.elapsed().as_millis()
                );
                return Ok((d.stats, d.staged.take()));
            }
            Err(mut e) if i + 1 == remotes.len() => {
                // One error for the blob, naming every remote tried before (as resolve does).
                tried.annotate(&mut e);
                return Err(BlobError::Registry(e));
            }
            // The next remote resumes where this one stopped.
            Err(e) => {
                tracing::debug!(
                    "blob {} from {} failed, trying {}: {}",
                    digest.short(),
                    remote.name(),
                    remotes[i + 1].name(),
                    e.to_string().lines().next().unwrap_or_default()
                );
                tried.failed(remote, &e);
            }
        }
    }
    unreachable!("remotes is never empty")
}

impl Download<'_> {
    /// Tells the reporter that `bytes` counted for this blob were thrown away.
    fn rewound(&self, bytes: u64) {
        self.reporter.event(&Event::BlobRewound {
            digest: self.digest.clone(),
            bytes,
        });
    }

    /// Verifies a complete download and stages it, or lands a large one. Content that does not match is discarded
    /// and reported through `corrupt` (an error naming the blob's registry and URL), so the
    /// retry loop fetches it again from byte 0.
    async fn finish(
        &mut self,
        writer: BlobWriter,
        mut corrupt: RegistryError,
    ) -> Result<(), AttemptError> {
        let size = self.size;
        let landed = blocking(move || match size <= STAGE_MAX {
            true => writer.stage().map(Some),
            false => writer.commit().map(|()| None),
        });
        match landed.await {
            Ok(staged) => {
                self.staged = staged;
                Ok(())
            }
            Err(e) => {
                self.rewound(self.size);
                match e {
                    StoreError::Mismatch { source, .. } => {
                        corrupt.detail = format!("{source}; the download was discarded");
                        Err(AttemptError::Registry(corrupt, false))
                    }
                    e => Err(AttemptError::Store(e)),
                }
            }
        }
    }

    async fn open(&self) -> Result<BlobWriter, StoreError> {
        let (layout, digest, size) = (self.layout.clone(), self.digest.clone(), self.size);
        blocking(move || layout.partial_blob(&digest, size)).await
    }

    async fn attempt(&mut self, attempt: u32) -> Result<(), AttemptError> {
        let mut writer = match self.writer.take() {
            Some(w) => w,
            None => self.open().await?,
        };
        let offset = writer.offset();
        if offset == self.size {
            // An earlier run got every byte but stopped before the rename.
            let template = RegistryError::new(
                ErrorKind::Corrupt,
                &self.source.registry,
                "(a download left by an earlier run)",
                "",
            );
            return self.finish(writer, template).await;
        }
        let mut body = match self
            .registries
            .open_blob(self.source, self.digest, self.size, offset, attempt)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                self.writer = Some(writer);
                return Err(AttemptError::Registry(e, false));
            }
        };
        if body.start == 0 && offset > 0 {
            writer = blocking(move || writer.restart().map(|()| writer)).await?;
            self.rewound(offset);
        } else if offset > 0 {
            self.stats.resumes += 1;
        }
        let (writer, outcome) = self.stream_into(writer, &mut body).await?;
        // Progress is new ground: bytes past the furthest point reached before. A registry that
        // ignores Range and keeps breaking off restarts at 0 and makes none, so its failures
        // count against --retries.
        let progressed = writer.offset() > self.high_water;
        self.high_water = self.high_water.max(writer.offset());
        if self.stats.received > 3 * self.size + (64 << 20) {
            self.writer = Some(writer);
            let detail = format!(
                "received {} bytes for a blob of {} without completing it; the registry keeps breaking off",
                self.stats.received, self.size
            );
            let mut e = body.interrupted(detail);
            e.kind = ErrorKind::Protocol;
            return Err(AttemptError::Registry(e, false));
        }
        match outcome {
            Ok(()) if writer.offset() == self.size => {
                self.finish(writer, body.corrupt(String::new())).await
            }
            Ok(()) => {
                let detail = format!(
                    "the body ended at byte {} of {}",
                    writer.offset(),
                    self.size
                );
                self.writer = Some(writer);
                Err(AttemptError::Registry(body.interrupted(detail), progressed))
            }
            Err(e) if e.kind == ErrorKind::Corrupt => {
                // Bytes beyond the declared size: nothing here can be trusted.
                let mut w = writer;
                let discarded = w.offset();
                blocking(move || w.restart()).await?;
                self.rewound(discarded);
                Err(AttemptError::Registry(e, false))
            }
            Err(e) => {
                self.writer = Some(writer);
                Err(AttemptError::Registry(e, progressed))
            }
        }
    }

    /// Copies the body into the writer. A blocking task hashes and writes while this one keeps
    /// reading the socket, so disk and network overlap and little waits in kernel buffers
    /// (where a connection reset would destroy it). Every byte that arrived is written,
    /// whatever ends the stream, so the next attempt resumes after it.
    async fn stream_into(
        &mut self,
        writer: BlobWriter,
        body: &mut BlobBody,
    ) -> Result<(BlobWriter, Result<(), RegistryError>), StoreError> {
        let start = writer.offset();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_CHUNKS);
        let write = tokio::task::spawn_blocking(move || {
            let mut writer = writer;
            while let Some(chunk) = rx.blocking_recv() {
                if let Err(e) = writer.write(&chunk) {
                    return (writer, Err(e));
                }
            }
            let flushed = writer.flush();
            (writer, flushed)
        });
        let mut arrived = 0u64;
        let outcome = loop {
            match body.next_chunk().await {
                Ok(Some(chunk)) => {
                    let n = chunk.len() as u64;
                    self.stats.received += n;
                    self.reporter.event(&Event::BlobProgress {
                        digest: self.digest.clone(),
                        bytes: n,
                    });
                    arrived += n;
                    if start + arrived > self.size {
                        let detail = format!(
                            "the registry sent more than the {} bytes the manifest declares",
                            self.size
                        );
                        break Err(body.corrupt(detail));
                    }
                    if tx.send(chunk).await.is_err() {
                        // The writer stopped on an error, which the join below returns.
                        break Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        drop(tx);
        let (writer, written) = write.await.expect("writer task panicked");
        written?;
        Ok((writer, outcome))
    }
}
