//! Downloading one blob into the bundle: resumed from what is on disk, fetched as one stream
//! or, when it is large, as several closed ranges over as many connections (`parts`); written
//! at offsets by one thread and hashed over the contiguous prefix by another (`sink`,
//! `hashing`), so the network never waits for the hash; verified before it lands; retried on
//! network faults and on content that does not match its digest.

mod hashing;
mod parts;
mod sink;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::digest::{Digest, Hasher};
use crate::error::Diagnostic;
use crate::registry::{BlobStats, ErrorKind, Registries, RegistryError, Remote};
use crate::report::{Event, Reporter};
use crate::store::{Layout, PartialDownload, StagedBlob, StoreError};
use parts::{Plan, Stop};
use sink::Sink;

/// Blobs up to this size are staged and landed in batches; for a larger one, its own fsync
/// costs little next to the time its download took.
const STAGE_MAX: u64 = 1 << 20;

/// Progress events for one blob: at most one per this many milliseconds (a 4 GiB layer
/// arrives in some 100,000 chunks; the progress bar needs a few updates a second).
const PROGRESS_EVERY_MS: u64 = 100;

/// When a blob is fetched as several ranges at once (`--range-parts`, `--range-threshold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangePolicy {
    /// Connections for one blob; 1 fetches every blob as one stream. Capped by the
    /// registry's `--jobs-per-registry`.
    pub parts: usize,
    /// Blobs of at least this many bytes are fetched in parts.
    pub threshold: u64,
}

impl Default for RangePolicy {
    fn default() -> Self {
        RangePolicy {
            parts: 4,
            threshold: 64 << 20,
        }
    }
}

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

/// One blob's download: what every part shares. Counters are atomics because the parts run
/// as futures of one task that borrow this together.
struct Job<'a> {
    registries: &'a Registries,
    layout: &'a Arc<Layout>,
    digest: &'a Digest,
    size: u64,
    reporter: &'a dyn Reporter,
    policy: RangePolicy,
    received: AtomicU64,
    resumes: AtomicU32,
    /// Retries of parts other than the first (which shares the blob's retry counter).
    part_retries: AtomicU32,
    /// Progress not yet reported, and when it last was (ms since `started`).
    unreported: AtomicU64,
    reported_at: AtomicU64,
    started: Instant,
    /// Where the bytes last came from, for an error about their content.
    last_url: std::sync::Mutex<(String, String)>,
}

/// Downloads `digest` (`size` bytes) into `layout` from the first of `remotes` that has it:
/// a mirror that fails hands over to the next remote, which resumes the same partial file.
/// A blob of at least `policy.threshold` bytes is fetched over several connections at once
/// (when the registry honours Range). A large blob is fsynced and renamed into `blobs/` at
/// once; a small one (at most [`STAGE_MAX`] bytes) comes back staged, for the caller to land
/// ([`Layout::land`]) with others before anything names it.
pub async fn fetch_blob(
    registries: &Registries,
    layout: &Arc<Layout>,
    remotes: &[Remote],
    digest: &Digest,
    size: u64,
    reporter: &dyn Reporter,
    policy: RangePolicy,
) -> Result<(BlobStats, Option<StagedBlob>), BlobError> {
    let job = Job {
        registries,
        layout,
        digest,
        size,
        reporter,
        policy,
        received: AtomicU64::new(0),
        resumes: AtomicU32::new(0),
        part_retries: AtomicU32::new(0),
        unreported: AtomicU64::new(0),
        reported_at: AtomicU64::new(0),
        started: Instant::now(),
        last_url: std::sync::Mutex::new((
            remotes[0].registry.clone(),
            "(a download left by an earlier run)".into(),
        )),
    };
    let partial = job.open().await?;
    reporter.event(&Event::BlobStarted {
        digest: digest.clone(),
        size,
        offset: partial.bytes_done(),
    });
    let (mut plan, mut sink) = job.start(partial)?;
    let mut retries_before = 0;
    let mut tried = crate::registry::Tried::default();
    for (i, remote) in remotes.iter().enumerate() {
        if i > 0 {
            // Another remote's storage has ETags of its own.
            plan.forget_etag();
        }
        let mut retrier = registries.retrier(
            remote,
            format!("blob {} from {}", digest.short(), remote.name()),
        );
        let outcome = job
            .fetch_from(remote, &mut plan, &mut sink, &mut retrier)
            .await?;
        retries_before += retrier.retries();
        match outcome {
            Ok(staged) => return Ok((job.stats(retries_before), staged)),
            Err(e) if i + 1 == remotes.len() => {
                // One error for the blob, naming every remote tried before (as resolve does).
                return Err(BlobError::Registry(tried.annotate(e)));
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

impl<'a> Job<'a> {
    /// Fetches the rest of the blob from `remote` until it lands (its staged file, for a small
    /// one) or this remote's retries run out (its last error). Content that does not match its
    /// digest is thrown away and fetched again from byte 0, with a fresh `plan` and `sink`.
    async fn fetch_from(
        &self,
        remote: &Remote,
        plan: &mut Plan,
        sink: &mut Sink,
        retrier: &mut crate::registry::Retrier<'a>,
    ) -> Result<Result<Option<StagedBlob>, RegistryError>, BlobError> {
        loop {
            let moved = self.transfer(remote, sink, plan, retrier).await;
            self.report_progress(true);
            let wrong = match moved {
                Ok(()) => {
                    let (partial, hasher) = sink.close().await.map_err(BlobError::Store)?;
                    match self.land(partial, hasher).await? {
                        Ok(staged) => return Ok(Ok(staged)),
                        Err(mismatch) => mismatch,
                    }
                }
                Err(Stop::Registry(e)) => return Ok(Err(e)),
                Err(Stop::Discard(e)) => {
                    let partial = sink.abandon().await.map_err(BlobError::Store)?;
                    self.rewound(partial.bytes_done());
                    partial.discard();
                    e
                }
                Err(Stop::Closed) => {
                    let e = sink.abandon().await.err();
                    let e = e.expect("the writer stops only on an error");
                    return Err(BlobError::Store(e));
                }
            };
            // The content was wrong: start over from byte 0, if the retries allow.
            (*plan, *sink) = self.start(self.open().await?)?;
            if let Err(e) = retrier.failed(wrong, false).await {
                return Ok(Err(e));
            }
        }
    }
}

impl Job<'_> {
    async fn open(&self) -> Result<PartialDownload, BlobError> {
        let (layout, digest, size) = (self.layout.clone(), self.digest.clone(), self.size);
        blocking(move || layout.partial_download(&digest, size))
            .await
            .map_err(BlobError::Store)
    }

    /// Starts writing and hashing `partial`; returns the parts still to fetch.
    fn start(&self, partial: PartialDownload) -> Result<(Plan, Sink), BlobError> {
        let plan = Plan::of(&partial);
        Ok((plan, Sink::start(partial).map_err(BlobError::Store)?))
    }

    /// Verifies a complete download and stages it, or lands a large one. Content that does
    /// not match is discarded and comes back as an error (kind `Corrupt`) naming where it came
    /// from, for the retry loop to fetch it again from byte 0.
    async fn land(
        &self,
        partial: PartialDownload,
        hasher: Hasher,
    ) -> Result<Result<Option<StagedBlob>, RegistryError>, BlobError> {
        let stage = self.size <= STAGE_MAX;
        match blocking(move || partial.finish(hasher, stage)).await {
            Ok(staged) => {
                tracing::debug!(
                    "blob {} ({} bytes) in {} ms",
                    self.digest.short(),
                    self.size,
                    self.started.elapsed().as_millis()
                );
                Ok(Ok(staged))
            }
            Err(StoreError::Mismatch { source, .. }) => {
                self.rewound(self.size);
                let (registry, url) = self.last_url.lock().expect("url lock").clone();
                let detail = format!("{source}; the download was discarded");
                Ok(Err(RegistryError::new(
                    ErrorKind::Corrupt,
                    &registry,
                    &url,
                    detail,
                )))
            }
            Err(e) => Err(BlobError::Store(e)),
        }
    }

    fn stats(&self, retries: u32) -> BlobStats {
        BlobStats {
            received: self.received.load(Ordering::Relaxed),
            resumes: self.resumes.load(Ordering::Relaxed),
            retries: retries + self.part_retries.load(Ordering::Relaxed),
        }
    }

    /// Tells the reporter that `bytes` counted for this blob were thrown away.
    fn rewound(&self, bytes: u64) {
        self.report_progress(true);
        self.reporter.event(&Event::BlobRewound {
            digest: self.digest.clone(),
            bytes,
        });
    }

    /// Counts `n` new bytes of the blob on disk; reports them at most every
    /// [`PROGRESS_EVERY_MS`] (or now, with `now`).
    fn progress(&self, n: u64) {
        self.unreported.fetch_add(n, Ordering::Relaxed);
        self.report_progress(false);
    }

    fn report_progress(&self, now: bool) {
        let ms = self.started.elapsed().as_millis() as u64;
        let last = self.reported_at.load(Ordering::Relaxed);
        if !now && ms < last + PROGRESS_EVERY_MS {
            return;
        }
        self.reported_at.store(ms, Ordering::Relaxed);
        let bytes = self.unreported.swap(0, Ordering::Relaxed);
        if bytes > 0 {
            self.reporter.event(&Event::BlobProgress {
                digest: self.digest.clone(),
                bytes,
            });
        }
    }
}

/// Runs blocking store work (opening, verifying, fsync) off the async worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("store task panicked")
}
