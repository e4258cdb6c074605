//! The blob phase of a push: every distinct (repository, blob) once, largest first, at most
//! `--jobs` at a time (and the registry's own cap); a blob the repository has is skipped, one
//! already sent to another repository of the target in this run is mounted from there.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{ImageOutcome, PushOptions, PushSummary};
use crate::digest::Digest;
use crate::registry::{BlobOutcome, BlobSource, Registries};
use crate::report::Event;
use crate::store::BundleSource;

/// One blob for one repository.
#[derive(Debug, Clone)]
pub struct Task {
    /// Target repository.
    pub repo: String,
    /// The blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// How a task ended.
#[derive(Debug, Clone)]
pub enum BlobResult {
    /// On the target, how it got there, and its size.
    Done(BlobOutcome, u64),
    /// Failed, with the message.
    Failed(crate::error::Error),
}

/// Distinct tasks, largest first.
pub fn tasks<'a>(images: impl Iterator<Item = (String, &'a BTreeMap<Digest, u64>)>) -> Vec<Task> {
    let mut seen = BTreeMap::new();
    for (repo, blobs) in images {
        for (d, size) in blobs {
            seen.insert((repo.clone(), d.clone()), *size);
        }
    }
    let mut out: Vec<Task> = seen
        .into_iter()
        .map(|((repo, digest), size)| Task { repo, digest, size })
        .collect();
    out.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.digest.cmp(&b.digest)));
    out
}

/// A blob of the bundle, opened anew (no symlinks, size-checked, verified as read) per attempt.
struct BundleBlob {
    layout: Arc<dyn BundleSource>,
    digest: Digest,
    size: u64,
}

impl BlobSource for BundleBlob {
    fn digest(&self) -> &Digest {
        &self.digest
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn open(&self) -> io::Result<Box<dyn io::Read + Send>> {
        let blob = self
            .layout
            .open_blob(&self.digest, Some(self.size))
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Box::new(blob.reader()?))
    }
}

/// Shared state: where each blob has landed, and one transfer per digest at a time (so a
/// second repository wanting it mounts rather than uploads again).
#[derive(Default)]
struct Landed {
    repos: Mutex<HashMap<Digest, String>>,
    locks: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl Landed {
    fn lock_for(&self, d: &Digest) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("locks")
            .entry(d.clone())
            .or_default()
            .clone()
    }
    fn repo_of(&self, d: &Digest) -> Option<String> {
        self.repos.lock().expect("repos").get(d).cloned()
    }
    fn record(&self, d: &Digest, repo: &str) {
        self.repos
            .lock()
            .expect("repos")
            .entry(d.clone())
            .or_insert_with(|| repo.to_owned());
    }
}

async fn one(
    registries: &Registries,
    layout: &Arc<dyn BundleSource>,
    registry: &str,
    landed: &Landed,
    task: &Task,
) -> BlobResult {
    let lock = landed.lock_for(&task.digest);
    let _one_at_a_time = lock.lock().await;
    let result = async {
        if registries
            .blob_exists(registry, &task.repo, &task.digest, task.size)
            .await?
        {
            return Ok(BlobOutcome::Present);
        }
        if let Some(from) = landed.repo_of(&task.digest)
            && registries
                .mount_blob(registry, &task.repo, &task.digest, &from)
                .await?
        {
            return Ok(BlobOutcome::Mounted);
        }
        let source = Arc::new(BundleBlob {
            layout: layout.clone(),
            digest: task.digest.clone(),
            size: task.size,
        });
        let retries = registries.upload_blob(registry, &task.repo, source).await?;
        Ok::<_, crate::registry::UploadError>(BlobOutcome::Uploaded { retries })
    }
    .await;
    let digest = task.digest.clone();
    match result {
        Ok(o) => {
            landed.record(&task.digest, &task.repo);
            if matches!(o, BlobOutcome::Uploaded { .. }) {
                registries.report(&Event::BlobDone { digest });
            }
            BlobResult::Done(o, task.size)
        }
        Err(e) => {
            registries.report(&Event::BlobFailed { digest });
            BlobResult::Failed(crate::error::Error::from(e).wrap(format!("blob {}", task.digest)))
        }
    }
}

/// Runs every task; an interruption leaves the rest out of the result.
pub async fn run(
    registries: &Arc<Registries>,
    layout: &Arc<dyn BundleSource>,
    options: &PushOptions,
    tasks: Vec<Task>,
    cancel: &CancellationToken,
) -> BTreeMap<(String, Digest), BlobResult> {
    let landed = Landed::default();
    let registry = options.target.registry.as_str();
    futures_util::stream::iter(tasks)
        .map(|task| {
            let landed = &landed;
            async move {
                let result = tokio::select! {
                    r = one(registries, layout, registry, landed, &task) => Some(r),
                    () = cancel.cancelled() => None,
                };
                result.map(|r| ((task.repo, task.digest), r))
            }
        })
        .buffer_unordered(options.jobs.max(1))
        .filter_map(|r| async move { r })
        .collect()
        .await
}

/// Adds one blob's outcome to an image's counts.
pub fn count(outcome: &mut ImageOutcome, o: &BlobOutcome, size: u64) {
    match o {
        BlobOutcome::Present => outcome.skipped += 1,
        BlobOutcome::Mounted => outcome.mounted += 1,
        BlobOutcome::Uploaded { .. } => {
            outcome.uploaded += 1;
            outcome.bytes += size;
        }
    }
}

/// Run totals over distinct (repository, blob) pairs.
pub fn totals(results: &BTreeMap<(String, Digest), BlobResult>) -> PushSummary {
    let mut s = PushSummary::default();
    for r in results.values() {
        match r {
            BlobResult::Done(BlobOutcome::Present, _) => s.skipped += 1,
            BlobResult::Done(BlobOutcome::Mounted, _) => s.mounted += 1,
            BlobResult::Done(BlobOutcome::Uploaded { .. }, size) => {
                s.uploaded += 1;
                s.bytes += size;
            }
            BlobResult::Failed(_) => {}
        }
    }
    s
}
