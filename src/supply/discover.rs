//! Finding an image's referrers on its registry: cosign's tags for the image and each kept
//! platform manifest, and its OCI referrers (the API, else the fallback tag). Each one found is
//! resolved like an image, so that the bundle stores it through the same path, byte-exact.

use futures_util::StreamExt;

use super::{ReferrerKind, referrer_name};
use crate::digest::Digest;
use crate::manifest::{self, Manifest};
use crate::platform::PlatformFilter;
use crate::reference::ImageRef;
use crate::registry::{ErrorKind, FetchedManifest, Registries};
use crate::resolve::{InMemoryBlob, ResolveError, ResolvedImage, Selection, resolve};

/// What discovery found for one image.
#[derive(Debug, Default)]
pub struct Discovered {
    /// Referrer entries to store, each named `REPO:sha256-<hex>[.sig|.att|.sbom]`.
    pub referrers: Vec<ResolvedImage>,
    /// Referrers that exist but could not be read: `(name, why)`.
    pub failed: Vec<(String, crate::error::Error)>,
}

/// Every manifest of `image` that referrers may point at: its own, then each platform's.
fn subjects(image: &ResolvedImage) -> Vec<Digest> {
    let mut out = vec![image.root.digest.clone()];
    for p in &image.platforms {
        if !out.contains(&p.manifest.digest) {
            out.push(p.manifest.digest.clone());
        }
    }
    out
}

/// How many referrer manifests of one image are fetched at most by default
/// (`bundle --max-referrers`): real images carry a handful (a signature, an SBOM and an
/// attestation per platform). Each costs about three requests and a lock entry, so a
/// registry listing thousands would cost tens of thousands of requests and a lock larger than
/// ferry reads.
pub const MAX_REFERRERS: usize = 100;

/// Looks up every referrer of `image`, at most `max` manifests in all (its subjects
/// together); a referrers list that would pass `max` fails its entry, fetching none of it. A
/// tag that does not exist (404) is simply no referrer.
pub async fn discover(registries: &Registries, image: &ResolvedImage, max: usize) -> Discovered {
    let mut out = Discovered::default();
    let mut budget = Budget { max, left: max };
    let repository = image.reference.name();
    for subject in subjects(image) {
        for kind in ReferrerKind::ALL {
            let name = referrer_name(&repository, &subject, kind);
            let Ok(reference) = name.parse::<ImageRef>() else {
                continue;
            };
            let found = match kind {
                ReferrerKind::Referrers => {
                    referrers_of(registries, image, &subject, reference, &mut budget).await
                }
                _ => by_tag(registries, &reference).await,
            };
            match found {
                Ok(Some(r)) => out.referrers.push(r),
                Ok(None) => {}
                Err(e) => out.failed.push((name, e.into())),
            }
        }
    }
    out
}

/// Discovers the referrers of every image (at most `max` manifests each), `jobs` images at
/// a time; in the images' order.
pub async fn discover_all(
    registries: &Registries,
    images: &[ResolvedImage],
    jobs: usize,
    max: usize,
) -> Vec<Discovered> {
    let mut found: Vec<(usize, Discovered)> = futures_util::stream::iter(
        images
            .iter()
            .enumerate()
            .map(|(i, image)| async move { (i, discover(registries, image, max).await) }),
    )
    .buffer_unordered(jobs.max(1))
    .collect()
    .await;
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().map(|(_, d)| d).collect()
}

/// Everything a fallback tag may hold, children included.
fn all() -> Selection<'static> {
    static ALL: PlatformFilter = PlatformFilter::All;
    Selection::Platforms(&ALL)
}

/// Resolves a referrer tag; `None` when the registry has no such tag. A 404 for anything else
/// (a blob or child manifest of a tag that exists) is a referrer that cannot be fetched.
async fn by_tag(
    registries: &Registries,
    reference: &ImageRef,
) -> Result<Option<ResolvedImage>, ResolveError> {
    let tag_url = format!("/manifests/{}", reference.tag().unwrap_or_default());
    match resolve(registries, reference, &all()).await {
        Ok(r) => Ok(Some(r)),
        Err(ResolveError::Registry(e))
            if e.kind == ErrorKind::NotFound
                && e.url
                    .split(['?', '#'])
                    .next()
                    .is_some_and(|u| u.ends_with(&tag_url)) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The referrer manifests an image may still take (see [`MAX_REFERRERS`]).
struct Budget {
    max: usize,
    left: usize,
}

impl Budget {
    /// Takes `n` manifests listed for `subject`, or refuses the whole list.
    fn take(&mut self, n: usize, subject: &Digest) -> Result<(), ResolveError> {
        if n > self.left {
            return Err(ResolveError::Content(format!(
                "{n} referrers are listed for {subject}, more than the {} per image that \
                 --max-referrers allows ({} left); none of them were fetched (raise \
                 --max-referrers to take them)",
                self.max, self.left
            )));
        }
        self.left -= n;
        Ok(())
    }
}

/// The OCI referrers of `subject`: the registry's API answer when it has the API (stored under
/// the fallback tag's name, so the bundle holds one convention), else the fallback tag. Either
/// index is counted against the image's budget before any manifest it lists is fetched.
async fn referrers_of(
    registries: &Registries,
    image: &ResolvedImage,
    subject: &Digest,
    reference: ImageRef,
    budget: &mut Budget,
) -> Result<Option<ResolvedImage>, ResolveError> {
    let remote = &image.remotes[0];
    let answer = match registries.fetch_referrers(remote, subject).await {
        Some(answer) => answer,
        None => {
            let tag = reference.manifest_reference();
            match registries.fetch_manifest(remote, &tag, None).await {
                Ok(fetched) if is_index(&fetched) => fetched,
                // Not an index: one manifest, resolved as any tag is.
                Ok(_) => return by_tag(registries, &reference).await,
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    };
    from_index(registries, image, reference, answer, subject, budget).await
}

fn is_index(fetched: &FetchedManifest) -> bool {
    matches!(
        Manifest::parse(&fetched.bytes, fetched.content_type.as_deref()),
        Ok((Manifest::Index(_), _))
    )
}

/// A referrers index (the API's answer or the fallback tag's) as a referrer entry: the index as
/// served, each listed manifest resolved.
async fn from_index(
    registries: &Registries,
    image: &ResolvedImage,
    reference: ImageRef,
    answer: FetchedManifest,
    subject: &Digest,
    budget: &mut Budget,
) -> Result<Option<ResolvedImage>, ResolveError> {
    let (parsed, media_type) = Manifest::parse(&answer.bytes, answer.content_type.as_deref())?;
    let Manifest::Index(index) = parsed else {
        return Err(ResolveError::Content(
            "the referrers API answered with something other than an index".into(),
        ));
    };
    if index.manifests().is_empty() {
        return Ok(None);
    }
    budget.take(index.manifests().len(), subject)?;
    let mut platforms = Vec::new();
    for child in index.manifests() {
        let digest = manifest::descriptor_digest(child)?;
        let listed = image.reference.with_digest_only(digest);
        let resolved = resolve(registries, &listed, &all()).await?;
        if resolved.is_index {
            return Err(ResolveError::Content(format!(
                "referrer {listed} is an index; nested indexes are not supported"
            )));
        }
        platforms.extend(resolved.platforms);
    }
    Ok(Some(ResolvedImage {
        reference,
        remotes: image.remotes.clone(),
        root: InMemoryBlob {
            digest: answer.digest,
            media_type,
            bytes: answer.bytes,
        },
        is_index: true,
        platforms,
        source: None,
    }))
}
