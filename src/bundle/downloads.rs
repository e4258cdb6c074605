//! The download step of a bundle run: the plan's downloads, `jobs` at a time, each image
//! committed when its last blob lands.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Pending, Run, commit};
use crate::digest::Digest;
use crate::error::Error;
use crate::fetch::{BlobError, fetch_blob};
use crate::registry::{BlobStats, Registries};
use crate::report::{Event, Reporter};
use crate::resolve::ResolvedImage;
use crate::store::{Layout, StagedBlob, StoreError};

/// What one download task returns.
type Fetched = (
    Digest,
    u64,
    Result<(BlobStats, Option<StagedBlob>), BlobError>,
);

/// The run's mutable state a finished download updates.
type State<'s> = (&'s mut commit::Committer, &'s mut Vec<Pending>, &'s mut Run);

/// The download step of a run: the plan's downloads, `jobs` at a time.
pub(super) struct Downloads<'a> {
    pub(super) registries: &'a Arc<Registries>,
    pub(super) layout: &'a Arc<Layout>,
    pub(super) reporter: &'a Arc<dyn Reporter>,
    pub(super) images: &'a [ResolvedImage],
    pub(super) users: &'a super::Users,
    pub(super) jobs: usize,
    /// When a blob is fetched as several ranges at once.
    pub(super) ranges: crate::fetch::RangePolicy,
}

impl Downloads<'_> {
    /// Every place a blob can come from: its first image's remotes, then those of the other
    /// images that share it (the same base layer on two registries).
    fn remotes_of(&self, download: &crate::plan::Download) -> Vec<crate::registry::Remote> {
        let mut remotes = self.images[download.source].remotes.clone();
        for &i in self.users.of(&download.digest) {
            for r in &self.images[i].remotes {
                if !remotes.contains(r) {
                    remotes.push(r.clone());
                }
            }
        }
        remotes
    }

    /// Runs the downloads and commits each image when its last blob lands; returns whether
    /// the run was stopped. Downloads start in the plan's order (largest first) as slots free
    /// up: spawned all at once they would race for a semaphore, and the scheduler runs the
    /// newest task first.
    pub(super) async fn run(
        &self,
        queue: Vec<&crate::plan::Download>,
        state: &mut State<'_>,
        cancel: &CancellationToken,
    ) -> Result<bool, StoreError> {
        let mut queue: std::collections::VecDeque<_> = queue.into();
        let mut tasks: JoinSet<Fetched> = JoinSet::new();
        loop {
            while tasks.len() < self.jobs && !cancel.is_cancelled() {
                let Some(download) = queue.pop_front() else {
                    break;
                };
                let (registries, layout, reporter) = (
                    self.registries.clone(),
                    self.layout.clone(),
                    self.reporter.clone(),
                );
                let remotes = self.remotes_of(download);
                let (digest, size, ranges) = (download.digest.clone(), download.size, self.ranges);
                tasks.spawn(async move {
                    let result = fetch_blob(
                        &registries,
                        &layout,
                        &remotes,
                        &digest,
                        size,
                        &*reporter,
                        ranges,
                    )
                    .await;
                    (digest, size, result)
                });
            }
            let joined = tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    // Dropping the downloads keeps their partial files for the next run.
                    tasks.shutdown().await;
                    return Ok(true);
                }
                joined = tasks.join_next() => joined,
            };
            let Some(joined) = joined else {
                return Ok(false);
            };
            let (digest, size, result) = joined.expect("download task panicked");
            match result {
                Ok((stats, staged)) => self.landed(state, digest, size, stats, staged)?,
                Err(error) => self.failed(state, &digest, error, cancel),
            }
        }
    }

    /// A blob is stored (or staged): the images it completes are committed.
    fn landed(
        &self,
        (committer, pending, run): &mut State<'_>,
        digest: Digest,
        size: u64,
        stats: BlobStats,
        staged: Option<StagedBlob>,
    ) -> Result<(), StoreError> {
        committer.add_staged(staged);
        self.reporter.event(&Event::BlobDone {
            digest: digest.clone(),
        });
        let s = &mut run.summary;
        s.blobs_fetched += 1;
        s.bytes_fetched += size;
        s.bytes_received += stats.received;
        s.resumes += stats.resumes;
        for &i in self.users.of(&digest) {
            let p = &mut pending[i];
            p.retries += stats.retries;
            p.waits.remove(&digest);
            if p.waits.is_empty() && p.open {
                run.commit(committer, self.layout, &self.images[i], p)?;
            }
        }
        committer.flush_if_due(self.layout)
    }

    /// A blob could not be stored: every image waiting for it fails; a full disk stops the run.
    fn failed(
        &self,
        (_, pending, run): &mut State<'_>,
        digest: &Digest,
        error: BlobError,
        cancel: &CancellationToken,
    ) {
        self.reporter.event(&Event::BlobFailed {
            digest: digest.clone(),
        });
        if let BlobError::Store(e) = &error
            && e.is_disk_full()
        {
            // Nothing else will fit either: stop rather than fail every image slowly.
            run.summary.disk_full = true;
            cancel.cancel();
        }
        let failed_retries = match &error {
            BlobError::Registry(e) => e.attempts.saturating_sub(1),
            BlobError::Store(_) => 0,
        };
        let error = Error::from(error);
        for &i in self.users.of(digest) {
            pending[i].retries += failed_retries;
            let why = error.clone().wrap(format!("blob {digest}"));
            pending[i].fail(run, &self.images[i], why);
        }
    }
}
