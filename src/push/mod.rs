//! `ferry push`: a bundle's images into a registry, byte-exact (same manifest and index
//! digests), blobs first (HEAD, then a cross-repository mount or an upload), then manifests
//! bottom-up, the tag last, so nothing partial is ever tagged.

mod blobs;
pub mod mirror;
pub mod names;
pub mod plan;
mod readback;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::registry::Registries;
use crate::report::{Event, Reporter};
use crate::store::BundleSource;

pub use names::{NameError, Target};
pub use plan::ImagePlan;

/// What to push and how.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Where to.
    pub target: Target,
    /// Only these references (full, as index.json names them); empty: every image.
    pub refs: Vec<ImageRef>,
    /// Keep the source registry as a path component under the target.
    pub keep_registry: bool,
    /// Blob transfers in flight at once.
    pub jobs: usize,
    /// For an index with exactly one platform in the bundle, tag that platform's manifest.
    pub tag_single_platform: bool,
}

/// Refusals before anything is sent (exit 2 in the CLI).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The bundle cannot be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Target or name mapping refused.
    #[error(transparent)]
    Names(#[from] NameError),
    /// A `--ref` the bundle does not hold, or an entry without a usable name.
    #[error("{problem}")]
    Selection {
        /// What is wrong.
        problem: String,
        /// What to do about it.
        hint: &'static str,
    },
}

impl crate::error::Diagnostic for PushError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            PushError::Store(e) => e.kind(),
            PushError::Names(e) => e.kind(),
            PushError::Selection { .. } => crate::error::Kind::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            PushError::Store(e) => e.hint(),
            PushError::Names(e) => e.hint(),
            PushError::Selection { hint, .. } => Some((*hint).to_owned()),
        }
    }
}

/// How one image ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStatus {
    /// Everything is on the target and the reference resolves to the bundle's digest.
    Ok,
    /// The present platforms are on the target by digest; the tag was not set.
    Partial,
    /// Something failed; the tag was not set.
    Failed,
    /// Stopped by an interruption.
    Unfinished,
}

/// The report for one image.
#[derive(Debug, Clone)]
pub struct ImageOutcome {
    /// The bundle's reference.
    pub source: String,
    /// Where it went (`TARGET/REPO:TAG` or `TARGET/REPO@DIGEST`).
    pub target: String,
    /// The bundle's digest for it.
    pub digest: Option<Digest>,
    /// How it ended.
    pub status: PushStatus,
    /// Blobs sent.
    pub uploaded: usize,
    /// Blobs mounted from another repository of the target.
    pub mounted: usize,
    /// Blobs the target had.
    pub skipped: usize,
    /// Bytes sent.
    pub bytes: u64,
    /// Platforms pushed.
    pub platforms: Vec<String>,
    /// Children of its index absent from the bundle.
    pub absent: Vec<String>,
    /// Anything the user should know (a platform tag, a partial push).
    pub note: Option<String>,
    /// Why it failed.
    pub error: Option<crate::error::Error>,
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct PushSummary {
    /// Per image, in index.json order.
    pub images: Vec<ImageOutcome>,
    /// Distinct blob uploads, mounts, and blobs already there.
    pub uploaded: usize,
    /// Mounts.
    pub mounted: usize,
    /// Blobs present already.
    pub skipped: usize,
    /// Bytes sent.
    pub bytes: u64,
    /// Retries over all requests.
    pub retries: u32,
    /// Wall time.
    pub elapsed: std::time::Duration,
    /// Stopped by an interruption.
    pub cancelled: bool,
}

impl PushSummary {
    /// Images with `status`.
    pub fn with_status(&self, status: PushStatus) -> impl Iterator<Item = &ImageOutcome> {
        self.images.iter().filter(move |i| i.status == status)
    }

    /// Whether every image made it whole.
    pub fn success(&self) -> bool {
        self.images.iter().all(|i| i.status == PushStatus::Ok)
    }
}

/// The images of the bundle to push (all, or those `refs` name), with their names.
pub fn select(
    layout: &dyn BundleSource,
    options: &PushOptions,
) -> Result<Vec<(crate::store::IndexEntry, ImageRef)>, PushError> {
    let mut out = Vec::new();
    for entry in layout.index()?.entries() {
        let Some(name) = entry.name.clone() else {
            continue;
        };
        let parsed = match name.parse::<ImageRef>() {
            Ok(r) if crate::reference::starts_with_registry(&name) => r,
            _ => {
                return Err(PushError::Selection {
                    problem: format!(
                        "index.json names an image {name:?}, which is not a full reference \
                         (registry/repository:tag)"
                    ),
                    hint: "push bundles made by ferry bundle, or pick images with --ref",
                });
            }
        };
        if options.refs.is_empty() || options.refs.contains(&parsed) {
            out.push((entry, parsed));
        }
    }
    for r in &options.refs {
        if !out.iter().any(|(_, p)| p == r) {
            return Err(PushError::Selection {
                problem: format!("the bundle has no image {r}"),
                hint: "`ferry ls BUNDLE` lists its references",
            });
        }
    }
    let sources: Vec<ImageRef> = out.iter().map(|(_, r)| r.clone()).collect();
    names::check_conflicts(&options.target, &sources, options.keep_registry)?;
    Ok(out)
}

/// The name an image gets on the target.
pub fn target_name(options: &PushOptions, source: &ImageRef) -> String {
    let repo = options.target.repository(source, options.keep_registry);
    match (source.digest(), source.tag()) {
        (Some(d), _) => format!("{}/{repo}@{d}", options.target.registry),
        (None, t) => format!(
            "{}/{repo}:{}",
            options.target.registry,
            t.unwrap_or("latest")
        ),
    }
}

/// Pushes `selected` (from [`select`], which the caller runs first so that its refusals come
/// before any connection). `on_image` hears each image as it ends.
pub async fn push(
    registries: Arc<Registries>,
    layout: Arc<dyn BundleSource>,
    selected: Vec<(crate::store::IndexEntry, ImageRef)>,
    options: &PushOptions,
    reporter: Arc<dyn Reporter>,
    on_image: &(dyn Fn(&ImageOutcome) + Send + Sync),
    cancel: CancellationToken,
) -> Result<PushSummary, PushError> {
    let start = Instant::now();
    let (plans, mut outcomes) = plan_all(&*layout, selected, options, on_image);
    let repo_of = |p: &ImagePlan| options.target.repository(&p.source, options.keep_registry);
    let tasks = blobs::tasks(plans.iter().map(|(_, p)| (repo_of(p), &p.blobs)));
    reporter.event(&Event::Planned {
        blobs_to_fetch: tasks.len(),
        bytes_to_fetch: tasks.iter().map(|t| t.size).sum(),
        blobs_present: 0,
        bytes_present: 0,
        owners: std::sync::Arc::new(owners(&plans)),
    });
    tracing::debug!(images = plans.len(), blobs = tasks.len(), "push planned");
    let results = blobs::run(&registries, &layout, options, tasks, &cancel).await;
    let images = futures_util::stream::iter(plans.into_iter().map(|(i, p)| {
        let repo = repo_of(&p);
        let (registries, results, cancel) = (&registries, &results, &cancel);
        let mut outcome = outcomes[i].clone();
        async move {
            finish_image(
                registries,
                &options.target.registry,
                &repo,
                &p,
                results,
                &mut outcome,
                cancel,
            )
            .await;
            on_image(&outcome);
            (i, outcome)
        }
    }))
    .buffer_unordered(options.jobs.max(1))
    .collect::<Vec<_>>()
    .await;
    for (i, o) in images {
        outcomes[i] = o;
    }
    let mut summary = blobs::totals(&results);
    summary.images = outcomes;
    summary.retries = registries.retries();
    summary.elapsed = start.elapsed();
    summary.cancelled = cancel.is_cancelled();
    Ok(summary)
}

/// Plans every selected image: `(index into the outcomes, plan)` for those that can be pushed,
/// and an outcome for each (failed at once when its plan cannot be made).
fn plan_all(
    layout: &dyn BundleSource,
    selected: Vec<(crate::store::IndexEntry, ImageRef)>,
    options: &PushOptions,
    on_image: &(dyn Fn(&ImageOutcome) + Send + Sync),
) -> (Vec<(usize, ImagePlan)>, Vec<ImageOutcome>) {
    let mut plans = Vec::new();
    let mut outcomes: Vec<ImageOutcome> = Vec::new();
    for (entry, source) in selected {
        let mut outcome = ImageOutcome {
            source: source.to_string(),
            target: target_name(options, &source),
            digest: crate::manifest::descriptor_digest(&entry.descriptor).ok(),
            status: PushStatus::Unfinished,
            uploaded: 0,
            mounted: 0,
            skipped: 0,
            bytes: 0,
            platforms: Vec::new(),
            absent: Vec::new(),
            note: None,
            error: None,
        };
        match plan::plan_entry(layout, &entry, source, options.tag_single_platform) {
            Ok(p) => {
                outcome.platforms = p.platforms.clone();
                outcome.absent = p.absent.clone();
                outcome.note = p.note.clone();
                plans.push((outcomes.len(), p));
            }
            Err(e) => {
                outcome.status = PushStatus::Failed;
                outcome.error = Some(e);
                on_image(&outcome);
            }
        }
        outcomes.push(outcome);
    }
    (plans, outcomes)
}

/// For each blob, the source references of the images that push it (for progress bars).
fn owners(plans: &[(usize, ImagePlan)]) -> std::collections::HashMap<Digest, Vec<String>> {
    let mut owners: std::collections::HashMap<Digest, Vec<String>> = Default::default();
    for (_, p) in plans {
        for digest in p.blobs.keys() {
            let names = owners.entry(digest.clone()).or_default();
            let name = p.source.to_string();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    owners
}

/// After the blobs: counts them for the image, and PUTs its manifests unless one failed.
async fn finish_image(
    registries: &Registries,
    registry: &str,
    repo: &str,
    plan: &ImagePlan,
    results: &BTreeMap<(String, Digest), blobs::BlobResult>,
    outcome: &mut ImageOutcome,
    cancel: &CancellationToken,
) {
    for digest in plan.blobs.keys() {
        match results.get(&(repo.to_owned(), digest.clone())) {
            Some(blobs::BlobResult::Done(o, _)) => blobs::count(outcome, o, plan.blobs[digest]),
            Some(blobs::BlobResult::Failed(e)) => {
                outcome.status = PushStatus::Failed;
                outcome.error.get_or_insert_with(|| e.clone());
            }
            None => {}
        }
    }
    if outcome.status == PushStatus::Failed {
        return;
    }
    if cancel.is_cancelled()
        || plan
            .blobs
            .keys()
            .any(|d| !results.contains_key(&(repo.to_owned(), d.clone())))
    {
        outcome.status = PushStatus::Unfinished;
        return;
    }
    for m in &plan.manifests {
        if let Err(e) = put_manifest(registries, registry, repo, m).await {
            outcome.status = PushStatus::Failed;
            outcome.error =
                Some(crate::error::Error::from(e).wrap(format!("manifest {}", m.digest)));
            return;
        }
    }
    if let Err(e) = readback::read_back(registries, registry, repo, &plan.manifests).await {
        outcome.status = PushStatus::Failed;
        outcome.error = Some(e);
        return;
    }
    if plan.tagged {
        outcome.status = PushStatus::Ok;
    } else {
        outcome.status = PushStatus::Partial;
        let pushed = plan
            .manifests
            .iter()
            .map(|m| format!("{registry}/{repo}@{}", m.digest))
            .collect::<Vec<_>>();
        outcome.note = Some(format!(
            "the bundle holds {} of index {} and lacks {}: the tag was not set (a registry \
             refuses an index whose children are absent, and any other index would change the \
             digest); pushed by digest: {}",
            if plan.platforms.is_empty() {
                "no platform".to_owned()
            } else {
                plan.platforms.join(", ")
            },
            plan.digest,
            plan.absent.join(", "),
            if pushed.is_empty() {
                "nothing".to_owned()
            } else {
                pushed.join(", ")
            }
        ));
    }
}

/// PUTs one manifest: by digest only when the target lacks it, under a tag always.
async fn put_manifest(
    registries: &Registries,
    registry: &str,
    repo: &str,
    m: &plan::ManifestPut,
) -> Result<(), crate::registry::RegistryError> {
    let reference = match &m.tag {
        Some(t) => t.clone(),
        None => {
            if registries
                .manifest_exists(registry, repo, &m.digest)
                .await?
            {
                return Ok(());
            }
            m.digest.to_string()
        }
    };
    registries
        .put_manifest(registry, repo, &reference, &m.media_type, m.bytes.clone())
        .await
}
