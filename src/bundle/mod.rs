//! `ferry bundle`: resolve references, fetch what is missing, and commit each image to
//! index.json and the lock file as soon as all its blobs are stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::digest::Digest;
use crate::fetch::{BlobError, fetch_blob};
use crate::plan::Plan;
use crate::platform::PlatformFilter;
use crate::reference::ImageRef;
use crate::registry::{BlobStats, Registries};
use crate::report::{Event, Reporter};
use crate::resolve::{ResolvedImage, resolve};
use crate::store::{Layout, StoreError};

mod commit;

/// What to bundle and how hard to work.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// Platforms to keep.
    pub platforms: PlatformFilter,
    /// Blob downloads in flight at once, over all registries.
    pub jobs: usize,
}

impl Default for BundleOptions {
    fn default() -> Self {
        BundleOptions {
            platforms: PlatformFilter::host(),
            jobs: 8,
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct BundleSummary {
    /// Images now complete in the bundle, with their digests.
    pub done: Vec<(String, Digest)>,
    /// Images that failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// Images not finished because the run was cancelled.
    pub unfinished: Vec<String>,
    /// Blobs downloaded in this run.
    pub blobs_fetched: usize,
    /// Blobs the bundle already had.
    pub blobs_present: usize,
    /// Bytes received over the network (including any re-sent after a fault).
    pub bytes_received: u64,
    /// Bytes of blobs stored in this run.
    pub bytes_fetched: u64,
    /// Bytes already present.
    pub bytes_present: u64,
    /// Retries over all blobs.
    pub retries: u32,
    /// Downloads continued from an offset.
    pub resumes: u32,
    /// Wall time.
    pub elapsed: Duration,
    /// True when the run stopped early on request.
    pub cancelled: bool,
}

impl BundleSummary {
    /// True when every image made it.
    pub fn success(&self) -> bool {
        self.failed.is_empty() && self.unfinished.is_empty()
    }
}

/// Bundles `references` into `layout`. Store failures on shared files (index.json) abort the
/// run; anything that concerns one image fails that image only.
pub async fn bundle(
    registries: Arc<Registries>,
    layout: Arc<Layout>,
    references: Vec<ImageRef>,
    options: &BundleOptions,
    reporter: Arc<dyn Reporter>,
    cancel: CancellationToken,
) -> Result<BundleSummary, StoreError> {
    let start = Instant::now();
    let mut summary = BundleSummary::default();
    let mut references = references;
    references.sort();
    references.dedup();

    // 1. Resolve every reference (manifests only), a few at a time.
    let resolved: Vec<(ImageRef, Result<ResolvedImage, String>)> = {
        let filter = &options.platforms;
        let registries = &registries;
        let stream = futures_util::stream::iter(references.into_iter().map(|r| async move {
            let out = resolve(registries, &r, filter)
                .await
                .map_err(|e| e.to_string());
            (r, out)
        }))
        .buffer_unordered(options.jobs.max(1));
        tokio::select! {
            all = stream.collect::<Vec<_>>() => all,
            () = cancel.cancelled() => Vec::new(),
        }
    };
    if cancel.is_cancelled() {
        summary.cancelled = true;
        summary.elapsed = start.elapsed();
        return Ok(summary);
    }
    let mut images = Vec::new();
    for (reference, result) in resolved {
        match result {
            Ok(image) => {
                reporter.event(&Event::Resolved {
                    reference: reference.to_string(),
                    digest: image.root.digest.clone(),
                    platforms: image
                        .platforms
                        .iter()
                        .filter_map(|p| p.platform.as_ref().map(|p| p.to_string()))
                        .collect(),
                });
                images.push(image);
            }
            Err(error) => fail(&mut summary, &*reporter, reference.to_string(), error),
        }
    }
    images.sort_by(|a, b| a.reference.cmp(&b.reference));

    // 2. Plan against what the bundle holds.
    let plan = Plan::new(&images, |d, size| layout.has_blob(d, size));
    summary.blobs_present = plan.present_blobs;
    summary.bytes_present = plan.present_bytes;
    // Configs fetched while resolving count as fetched (they were, and they are stored).
    summary.blobs_fetched = plan.in_memory.len();
    summary.bytes_fetched = plan.in_memory.iter().map(|(_, size)| size).sum();
    summary.bytes_received = summary.bytes_fetched;
    reporter.event(&Event::Planned {
        blobs_to_fetch: plan.downloads.len(),
        bytes_to_fetch: plan.bytes_to_fetch(),
        blobs_present: plan.present_blobs,
        bytes_present: plan.present_bytes,
    });

    let mut committer = commit::Committer::open(&layout)?;
    let mut waits = plan.waits.clone();
    let mut failed_images = vec![false; images.len()];
    // Images with nothing to download are complete at once.
    for (i, image) in images.iter().enumerate() {
        if waits[i].is_empty() {
            commit_image(&mut committer, &layout, image, &mut summary, &*reporter)?;
        }
    }

    // 3. Download, largest first; commit each image when its last blob lands.
    let users: HashMap<Digest, Vec<usize>> = {
        let mut m: HashMap<Digest, Vec<usize>> = HashMap::new();
        for (i, w) in waits.iter().enumerate() {
            for d in w {
                m.entry(d.clone()).or_default().push(i);
            }
        }
        m
    };
    let slots = Arc::new(Semaphore::new(options.jobs.max(1)));
    let mut tasks: JoinSet<(Digest, u64, Result<BlobStats, BlobError>)> = JoinSet::new();
    for download in &plan.downloads {
        let (registries, layout, reporter, slots) = (
            registries.clone(),
            layout.clone(),
            reporter.clone(),
            slots.clone(),
        );
        let source = images[download.source].reference.clone();
        let (digest, size) = (download.digest.clone(), download.size);
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore never closed");
            let result = fetch_blob(&registries, &layout, &source, &digest, size, &*reporter).await;
            (digest, size, result)
        });
    }
    loop {
        let joined = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                // Dropping the downloads keeps their partial files for the next run.
                tasks.shutdown().await;
                summary.cancelled = true;
                break;
            }
            joined = tasks.join_next() => joined,
        };
        let Some(joined) = joined else { break };
        let (digest, size, result) = joined.expect("download task panicked");
        match result {
            Ok(stats) => {
                reporter.event(&Event::BlobDone {
                    digest: digest.clone(),
                });
                summary.blobs_fetched += 1;
                summary.bytes_fetched += size;
                summary.bytes_received += stats.received;
                summary.retries += stats.retries;
                summary.resumes += stats.resumes;
                for &i in users.get(&digest).into_iter().flatten() {
                    waits[i].remove(&digest);
                    if waits[i].is_empty() && !failed_images[i] {
                        commit_image(
                            &mut committer,
                            &layout,
                            &images[i],
                            &mut summary,
                            &*reporter,
                        )?;
                    }
                }
            }
            Err(error) => {
                reporter.event(&Event::BlobFailed {
                    digest: digest.clone(),
                });
                if let BlobError::Store(e) = &error
                    && e.is_disk_full()
                {
                    // Nothing else will fit either: stop rather than fail every image slowly.
                    cancel.cancel();
                }
                for &i in users.get(&digest).into_iter().flatten() {
                    if !failed_images[i] {
                        failed_images[i] = true;
                        let why = format!("blob {digest}: {error}");
                        fail(
                            &mut summary,
                            &*reporter,
                            images[i].reference.to_string(),
                            why,
                        );
                    }
                }
            }
        }
    }
    for (i, image) in images.iter().enumerate() {
        if !waits[i].is_empty() && !failed_images[i] {
            summary.unfinished.push(image.reference.to_string());
        }
    }
    let layout2 = layout.clone();
    tokio::task::spawn_blocking(move || layout2.tidy())
        .await
        .ok();
    summary.elapsed = start.elapsed();
    Ok(summary)
}

fn fail(summary: &mut BundleSummary, reporter: &dyn Reporter, reference: String, error: String) {
    reporter.event(&Event::ImageFailed {
        reference: reference.clone(),
        error: error.clone(),
    });
    summary.failed.push((reference, error));
}

fn commit_image(
    committer: &mut commit::Committer,
    layout: &Arc<Layout>,
    image: &ResolvedImage,
    summary: &mut BundleSummary,
    reporter: &dyn Reporter,
) -> Result<(), StoreError> {
    let name = image.reference.to_string();
    match committer.commit(layout, image) {
        Ok(()) => {
            reporter.event(&Event::ImageDone {
                reference: name.clone(),
            });
            summary.done.push((name, image.root.digest.clone()));
            Ok(())
        }
        // A shared file could not be written: later images would fail the same way.
        Err(e @ StoreError::Io { .. }) => Err(e),
        Err(e) => {
            fail(summary, reporter, name, e.to_string());
            Ok(())
        }
    }
}
