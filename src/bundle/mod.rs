//! `ferry bundle`: resolve references, fetch what is missing, and commit each image to
//! index.json and the lock file as soon as all its blobs are stored.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::digest::Digest;
use crate::error::{Error, Kind};
use crate::plan::Plan;
use crate::platform::PlatformFilter;
use crate::reference::ImageRef;
use crate::registry::Registries;
use crate::report::{Event, Reporter};
use crate::resolve::{ResolvedImage, Selection, resolve_many};
use crate::store::{Layout, StoreError};

mod commit;
pub mod derived;
mod downloads;
use downloads::Downloads;
mod prepared;
pub use prepared::Prepared;
pub mod rm;
mod space;

/// What to bundle and how hard to work.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// Platforms to keep.
    pub platforms: PlatformFilter,
    /// Blob downloads in flight at once, over all registries.
    pub jobs: usize,
    /// When one blob is fetched over several connections at once.
    pub ranges: crate::fetch::RangePolicy,
    /// Lock entries by reference: those references are fetched exactly as locked.
    pub pins: std::collections::BTreeMap<String, crate::store::lockfile::LockedImage>,
    /// Also store each image's signatures, attestations, SBOMs and OCI referrers.
    pub referrers: bool,
    /// Commit only images with a cosign signature this key verifies (implies `referrers`).
    pub require_signatures: Option<Arc<crate::supply::cosign::PublicKey>>,
    /// Blobs a base bundle holds (`--since`): counted as present, never fetched nor stored,
    /// so the output is a delta of that base.
    pub since: std::collections::BTreeMap<Digest, u64>,
    /// The most referrer manifests stored per image (see [`crate::supply::MAX_REFERRERS`]).
    pub max_referrers: usize,
    /// Fail an image that lacks a wanted platform (a single-platform image kept for one of
    /// several `--platform`s) instead of bundling it with a warning.
    pub require_platforms: bool,
    /// Images resolved before the run whose blobs the bundle holds already (charts packed
    /// from HTTP repositories: src/chart), or why one could not be (reference, error).
    pub prepared: Vec<Prepared>,
}

impl Default for BundleOptions {
    fn default() -> Self {
        BundleOptions {
            platforms: PlatformFilter::host(),
            jobs: 8,
            ranges: Default::default(),
            pins: Default::default(),
            referrers: false,
            require_signatures: None,
            since: Default::default(),
            require_platforms: false,
            prepared: Vec::new(),
            max_referrers: crate::supply::MAX_REFERRERS,
        }
    }
}

/// How one image ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStatus {
    /// Complete in the bundle.
    Ok,
    /// Could not be bundled.
    Failed,
    /// Not finished: the run was stopped first.
    Unfinished,
}

/// One image's outcome.
#[derive(Debug, Clone)]
pub struct ImageReport {
    /// The full normalized reference.
    pub reference: String,
    /// The manifest or index digest, once resolved.
    pub digest: Option<Digest>,
    /// How it ended.
    pub status: ImageStatus,
    /// Why it failed.
    pub error: Option<crate::error::Error>,
    /// Bytes of the image's distinct blobs (0 when not resolved).
    pub bytes: u64,
    /// Seconds from the start of the run until the image was committed or failed.
    pub seconds: f64,
    /// Retries spent on its blobs (a blob shared with other images counts for each).
    pub retries: u32,
    /// Wanted platforms (`--platform`) the image does not have: it was kept for the others.
    pub platforms_missing: Vec<String>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct BundleSummary {
    /// Every image, sorted by reference.
    pub images: Vec<ImageReport>,
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
    /// Retries over all requests (manifests, configs, blobs).
    pub retries: u32,
    /// Downloads continued from an offset.
    pub resumes: u32,
    /// Wall time.
    pub elapsed: Duration,
    /// True when the run stopped early on request.
    pub cancelled: bool,
    /// True when it stopped because the bundle's filesystem is full.
    pub disk_full: bool,
}

impl BundleSummary {
    /// True when every image made it.
    pub fn success(&self) -> bool {
        self.images.iter().all(|i| i.status == ImageStatus::Ok)
    }

    /// The images that ended with `status`.
    pub fn with_status(&self, status: ImageStatus) -> impl Iterator<Item = &ImageReport> {
        self.images.iter().filter(move |i| i.status == status)
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
    let mut references = references;
    references.sort();
    references.dedup();
    let mut run = Run {
        start: Instant::now(),
        summary: BundleSummary::default(),
        reporter: reporter.clone(),
        missing: HashMap::new(),
    };

    // index.json and the lock are read (and checked) before anything is fetched: a bundle
    // they do not fit is refused at once.
    let mut committer = commit::Committer::open(&layout)?;
    committer.leave_out(options.since.clone());

    // 1. Resolve every reference (manifests only), a few at a time.
    let Some(mut images) = resolve_all(&registries, &references, options, &mut run, &cancel).await
    else {
        return Ok(run.finish(true, registries.retries()));
    };
    prepared::add(&mut run, &mut images, &options.prepared);

    // 2. Plan against what the bundle holds.
    let in_base = |d: &Digest, size: u64| options.since.get(d) == Some(&size);
    let plan = Plan::new(&images, |d, size| {
        in_base(d, size) || layout.has_blob(d, size)
    });
    run.planned(&plan, &images);
    let mut pending = pending_of(&images, &plan);
    // Images with nothing to download are complete at once.
    for (image, p) in images.iter().zip(pending.iter_mut()) {
        if p.waits.is_empty() {
            run.commit(&mut committer, &layout, image, p)?;
            committer.flush_if_due(&layout)?;
        }
    }

    // 3. Download, largest first; commit each image when its last blob lands.
    let users = users_of(&pending);
    let fitting = space::refuse_what_cannot_fit(
        &layout,
        &plan.downloads,
        &images,
        &users,
        &mut pending,
        &mut run,
    );
    let downloads = Downloads {
        registries: &registries,
        layout: &layout,
        reporter: &reporter,
        images: &images,
        users: &users,
        jobs: options.jobs.max(1),
        ranges: options.ranges,
    };
    let mut state = (&mut committer, &mut pending, &mut run);
    let cancelled = downloads.run(fitting, &mut state, &cancel).await?;
    // The images committed since the last write of index.json (a stopped run's too).
    committer.flush(&layout)?;
    for (image, p) in images.iter().zip(&pending).filter(|(_, p)| p.open) {
        let (reference, digest) = (image.reference.to_string(), Some(image.root.digest.clone()));
        let (bytes, retries) = (p.bytes, p.retries);
        run.report(
            reference,
            digest,
            ImageStatus::Unfinished,
            None,
            bytes,
            retries,
        );
    }
    let tidy = layout.clone();
    tokio::task::spawn_blocking(move || tidy.tidy()).await.ok();
    Ok(run.finish(cancelled, registries.retries()))
}

/// Resolves every reference (and, when asked, their referrers), sorted by reference; failures
/// are recorded in `run`. None when the run was stopped meanwhile (every image is then
/// recorded as unfinished).
async fn resolve_all(
    registries: &Registries,
    references: &[ImageRef],
    options: &BundleOptions,
    run: &mut Run,
    cancel: &CancellationToken,
) -> Option<Vec<ResolvedImage>> {
    let resolved = {
        let select = |r: &ImageRef| match options.pins.get(&r.to_string()) {
            Some(pin) => Selection::Locked(pin),
            None => Selection::Platforms(&options.platforms),
        };
        tokio::select! {
            all = resolve_many(registries, references, options.jobs, select) => all,
            () = cancel.cancelled() => Vec::new(),
        }
    };
    tracing::debug!(
        "resolved {} references in {} ms",
        references.len(),
        run.start.elapsed().as_millis()
    );
    if cancel.is_cancelled() {
        for r in references {
            run.report(r.to_string(), None, ImageStatus::Unfinished, None, 0, 0);
        }
        return None;
    }
    let mut images = Vec::new();
    for (reference, result) in resolved {
        match result {
            Ok(image) => {
                if !options.pins.contains_key(&reference.to_string())
                    && !run.keep_partial(&image, options)
                {
                    continue;
                }
                run.reporter.event(&Event::Resolved {
                    reference: reference.to_string(),
                    digest: image.root.digest.clone(),
                    // Runnable platforms: attestation manifests (unknown/unknown) ride along.
                    platforms: image
                        .platforms
                        .iter()
                        .filter(|p| !p.attestation)
                        .filter_map(|p| p.platform.as_ref().map(|p| p.to_string()))
                        .collect(),
                });
                images.push(image);
            }
            Err(error) => {
                let retries = error.retries();
                run.fail(reference.to_string(), None, 0, error.into(), retries)
            }
        }
    }
    images.sort_by(|a, b| a.reference.cmp(&b.reference));
    if !(options.referrers || options.require_signatures.is_some()) {
        return Some(images);
    }
    let names: Vec<_> = images
        .iter()
        .map(|i| (i.reference.to_string(), i.root.digest.clone()))
        .collect();
    tokio::select! {
        kept = with_referrers(registries, images, options, run) => Some(kept),
        () = cancel.cancelled() => {
            for (reference, digest) in names {
                run.report(reference, Some(digest), ImageStatus::Unfinished, None, 0, 0);
            }
            None
        }
    }
}

/// What each image waits for, per the plan.
fn pending_of(images: &[ResolvedImage], plan: &Plan) -> Vec<Pending> {
    images
        .iter()
        .zip(plan.waits.iter())
        .map(|(image, waits)| Pending {
            waits: waits.clone(),
            retries: 0,
            open: true,
            bytes: image.all_blobs().values().sum(),
        })
        .collect()
}

/// For each blob to download, the images waiting for it.
fn users_of(pending: &[Pending]) -> Users {
    let mut m: HashMap<Digest, Vec<usize>> = HashMap::new();
    for (i, p) in pending.iter().enumerate() {
        for d in &p.waits {
            m.entry(d.clone()).or_default().push(i);
        }
    }
    Users(m)
}

/// The images (by index) that wait on each blob.
struct Users(HashMap<Digest, Vec<usize>>);

impl Users {
    /// The images waiting on `digest` (none for a blob no image waits on).
    fn of(&self, digest: &Digest) -> &[usize] {
        self.0.get(digest).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Adds the referrers of `images` to what is bundled (as entries of their own, which can fail
/// without failing their image); with a key, leaves out (failed) each image whose signature
/// does not verify.
async fn with_referrers(
    registries: &Registries,
    images: Vec<ResolvedImage>,
    options: &BundleOptions,
    run: &mut Run,
) -> Vec<ResolvedImage> {
    let found =
        crate::supply::discover_all(registries, &images, options.jobs, options.max_referrers).await;
    let mut out = Vec::with_capacity(images.len());
    for (image, found) in images.into_iter().zip(found) {
        if let Some(key) = &options.require_signatures {
            let verdict =
                crate::supply::cosign::check_resolved(registries, &image, &found.referrers, key)
                    .await;
            if !verdict.ok() {
                let why = Error::msg(
                    Kind::Signature,
                    format!("refused by --require-signatures: {verdict}"),
                );
                let digest = Some(image.root.digest.clone());
                run.fail(image.reference.to_string(), digest, 0, why, 0);
                continue;
            }
        }
        for (name, why) in found.failed {
            run.fail(name, None, 0, why.wrap("referrer"), 0);
        }
        out.push(image);
        out.extend(found.referrers);
    }
    out.sort_by(|a, b| a.reference.cmp(&b.reference));
    // Two tags of one image share its referrers.
    out.dedup_by(|a, b| a.reference == b.reference);
    out
}

/// An image waiting for its blobs.
struct Pending {
    waits: BTreeSet<Digest>,
    retries: u32,
    /// Neither committed nor failed yet.
    open: bool,
    bytes: u64,
}

impl Pending {
    /// Fails the image, unless it is committed or failed already.
    fn fail(&mut self, run: &mut Run, image: &ResolvedImage, why: Error) {
        if self.open {
            self.open = false;
            let root = Some(image.root.digest.clone());
            run.fail(
                image.reference.to_string(),
                root,
                self.bytes,
                why,
                self.retries,
            );
        }
    }
}

/// The bookkeeping of one run.
struct Run {
    start: Instant,
    summary: BundleSummary,
    reporter: Arc<dyn Reporter>,
    /// Per reference, the wanted platforms it lacks (see [`ImageReport::platforms_missing`]).
    missing: HashMap<String, Vec<String>>,
}

impl Run {
    /// Records the wanted platforms `image` lacks; with `--require-platforms`, fails it and
    /// returns false (it is then not bundled).
    fn keep_partial(&mut self, image: &ResolvedImage, options: &BundleOptions) -> bool {
        let missing = image.missing_platforms(&options.platforms);
        if missing.is_empty() {
            return true;
        }
        let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
        let reference = image.reference.to_string();
        if options.require_platforms {
            let have: Vec<String> = image
                .platforms
                .iter()
                .filter_map(|p| p.platform.as_ref().map(ToString::to_string))
                .collect();
            let why = Error::msg(
                Kind::ManifestNotFound,
                format!(
                    "no {} image: it is a single-platform {} image; refused by \
                     --require-platforms",
                    names.join(" or "),
                    have.join(", ")
                ),
            )
            .with_hint("drop --require-platforms to bundle it for the platforms it has");
            self.fail(reference, Some(image.root.digest.clone()), 0, why, 0);
            return false;
        }
        self.reporter.event(&Event::PlatformsMissing {
            reference: reference.clone(),
            missing: names.clone(),
        });
        self.missing.insert(reference, names);
        true
    }

    fn report(
        &mut self,
        reference: String,
        digest: Option<Digest>,
        status: ImageStatus,
        error: Option<Error>,
        bytes: u64,
        retries: u32,
    ) {
        let platforms_missing = self.missing.get(&reference).cloned().unwrap_or_default();
        self.summary.images.push(ImageReport {
            reference,
            digest,
            status,
            error,
            bytes,
            seconds: self.start.elapsed().as_secs_f64(),
            retries,
            platforms_missing,
        });
    }

    fn fail(
        &mut self,
        reference: String,
        digest: Option<Digest>,
        bytes: u64,
        error: Error,
        retries: u32,
    ) {
        // Two tags of one image share its referrers, and so their failures: one report each.
        let failed = |i: &ImageReport| i.reference == reference && i.status == ImageStatus::Failed;
        if self.summary.images.iter().any(failed) {
            return;
        }
        self.reporter.event(&Event::ImageFailed {
            reference: reference.clone(),
            error: error.clone(),
        });
        self.report(
            reference,
            digest,
            ImageStatus::Failed,
            Some(error),
            bytes,
            retries,
        );
    }

    /// Commits an image. A store failure on a shared file ends the run (later images would fail
    /// the same way); anything else fails this image only.
    fn commit(
        &mut self,
        committer: &mut commit::Committer,
        layout: &Layout,
        image: &ResolvedImage,
        p: &mut Pending,
    ) -> Result<(), StoreError> {
        p.open = false;
        let (reference, digest) = (image.reference.to_string(), Some(image.root.digest.clone()));
        let started = Instant::now();
        match committer.commit(layout, image) {
            Ok(stored) => {
                tracing::debug!(
                    "committed {reference} in {} ms",
                    started.elapsed().as_millis()
                );
                // Configs fetched while resolving count as fetched once they are stored.
                self.summary.blobs_fetched += stored.configs;
                self.summary.bytes_fetched += stored.config_bytes;
                self.summary.bytes_received += stored.config_bytes;
                self.reporter.event(&Event::ImageDone {
                    reference: reference.clone(),
                    digest: image.root.digest.clone(),
                    bytes: p.bytes,
                    elapsed: self.start.elapsed(),
                });
                self.report(reference, digest, ImageStatus::Ok, None, p.bytes, p.retries);
                Ok(())
            }
            Err(e @ StoreError::Io { .. }) => Err(e),
            Err(e) => {
                self.fail(reference, digest, p.bytes, e.into(), p.retries);
                Ok(())
            }
        }
    }

    /// Records and announces the plan.
    fn planned(&mut self, plan: &Plan, images: &[ResolvedImage]) {
        self.summary.blobs_present = plan.present_blobs;
        self.summary.bytes_present = plan.present_bytes;
        self.reporter.event(&Event::Planned {
            blobs_to_fetch: plan.downloads.len(),
            bytes_to_fetch: plan.bytes_to_fetch(),
            blobs_present: plan.present_blobs,
            bytes_present: plan.present_bytes,
            owners: Arc::new(plan.owners(images)),
        });
    }

    fn finish(mut self, cancelled: bool, retries: u32) -> BundleSummary {
        self.summary.retries = retries;
        self.summary
            .images
            .sort_by(|a, b| a.reference.cmp(&b.reference));
        self.summary.cancelled = cancelled;
        self.summary.elapsed = self.start.elapsed();
        self.summary
    }
}

#[cfg(test)]
mod tests;
