//! Resolving a reference: its manifest (or index and the wanted platforms' manifests), and the
//! blobs each platform needs. Only manifests and single-image configs are fetched here.

use std::fmt;

use bytes::Bytes;
use oci_spec::image::{Descriptor, ImageManifest};

use crate::digest::Digest;
use crate::manifest::{self, Manifest, ManifestError};
use crate::platform::{Platform, PlatformFilter};
use crate::reference::ImageRef;
use crate::registry::{FetchedManifest, Registries, RegistryError, Remote};
use crate::store::lockfile::LockedImage;

/// Content held in memory (manifests, small configs) with its digest and media type.
#[derive(Debug, Clone)]
pub struct InMemoryBlob {
    /// Digest of `bytes`.
    pub digest: Digest,
    /// Media type to record in descriptors.
    pub media_type: String,
    /// The bytes exactly as served.
    pub bytes: Bytes,
}

/// A blob to download: digest and size from a descriptor.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlobRef {
    /// The digest.
    pub digest: Digest,
    /// The size the descriptor declares.
    pub size: u64,
}

/// One platform's image within a resolved reference.
#[derive(Debug, Clone)]
pub struct ResolvedPlatform {
    /// The platform the index (or the config) declares.
    pub platform: Option<Platform>,
    /// The image manifest.
    pub manifest: InMemoryBlob,
    /// The config, as a blob to download or (single-platform images) already fetched.
    pub config: BlobRef,
    /// The config bytes when they were needed to learn the platform.
    pub config_bytes: Option<Bytes>,
    /// The layers, in order.
    pub layers: Vec<BlobRef>,
    /// Whether this is a BuildKit attestation rather than a runnable image.
    pub attestation: bool,
}

/// A reference resolved to content.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The reference as requested, normalized (the name recorded in the bundle).
    pub reference: ImageRef,
    /// Where its content is fetched from: the remote that served the manifest, then any
    /// others to fall back on (mirrors after it, the source last).
    pub remotes: Vec<Remote>,
    /// The manifest or index the reference points at.
    pub root: InMemoryBlob,
    /// True when `root` is an index.
    pub is_index: bool,
    /// The platforms kept (for a single image, exactly one).
    pub platforms: Vec<ResolvedPlatform>,
    /// Where it came from when not from a registry (a chart from an HTTP repository, a local
    /// file), recorded in the lock; None for what a registry serves.
    pub source: Option<crate::store::lockfile::LockedSource>,
}

impl ResolvedImage {
    /// The wanted platforms (`--platform`) no kept image serves: a single-platform image kept
    /// because it serves one of several wanted platforms lacks the others. (An index lacking
    /// a wanted platform fails to resolve instead.) Empty for `All`, and when the image
    /// declares no platform at all (nothing to compare).
    pub fn missing_platforms(&self, filter: &PlatformFilter) -> Vec<Platform> {
        let PlatformFilter::Only(wanted) = filter else {
            return Vec::new();
        };
        let kept: Vec<&Platform> = self
            .platforms
            .iter()
            .filter(|p| !p.attestation)
            .filter_map(|p| p.platform.as_ref())
            .collect();
        if kept.is_empty() {
            return Vec::new();
        }
        wanted
            .iter()
            .filter(|w| !kept.iter().any(|k| w.matches(k)))
            .cloned()
            .collect()
    }

    /// Every distinct blob this image stores, with sizes: root, manifests, configs, layers.
    pub fn all_blobs(&self) -> std::collections::BTreeMap<Digest, u64> {
        let mut out = std::collections::BTreeMap::new();
        out.insert(self.root.digest.clone(), self.root.bytes.len() as u64);
        for p in &self.platforms {
            out.insert(p.manifest.digest.clone(), p.manifest.bytes.len() as u64);
            out.insert(p.config.digest.clone(), p.config.size);
            for l in &p.layers {
                out.insert(l.digest.clone(), l.size);
            }
        }
        out
    }
}

/// Why a reference could not be resolved.
#[derive(Debug)]
pub enum ResolveError {
    /// The registry failed or refused.
    Registry(RegistryError),
    /// The registry served a manifest ferry cannot take.
    Manifest(ManifestError),
    /// A wanted platform is not in the image.
    MissingPlatform {
        /// The platform(s) asked for, for people (`linux/amd64 or linux/s390x`).
        wanted: String,
        /// What the image offers.
        available: Vec<String>,
    },
    /// A value that does not match its grammar: `what` says where it was.
    Invalid {
        /// Where (`index entry sha256:...`, `config sha256:...`, `the reference`).
        what: String,
        /// The value and its grammar.
        source: crate::untrusted::Invalid,
    },
    /// Something else about the content (nested index, size mismatch).
    Content(String),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Registry(e) => write!(f, "{e}"),
            ResolveError::Manifest(e) => write!(f, "{e}"),
            ResolveError::MissingPlatform { wanted, available } => write!(
                f,
                "no {wanted} image: it has {}",
                if available.is_empty() {
                    "no platform information".to_owned()
                } else {
                    available.join(", ")
                }
            ),
            ResolveError::Invalid { what, source } => write!(f, "{what}: {source}"),
            ResolveError::Content(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for ResolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResolveError::Registry(e) => e.source(),
            ResolveError::Manifest(e) => e.source(),
            _ => None,
        }
    }
}

impl crate::error::Diagnostic for ResolveError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            ResolveError::Registry(e) => e.kind(),
            ResolveError::Manifest(e) => e.kind(),
            // The user asked for a platform the image does not have.
            ResolveError::MissingPlatform { .. } => Kind::ManifestNotFound,
            ResolveError::Invalid { .. } | ResolveError::Content(_) => Kind::Protocol,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ResolveError::Registry(e) => e.hint(),
            ResolveError::Manifest(e) => e.hint(),
            ResolveError::MissingPlatform { .. } => {
                Some("choose with --platform (repeatable), or take all with --all-platforms".into())
            }
            ResolveError::Invalid { .. } => Some(
                "the registry serves a malformed image; ferry refuses it so that nothing it \
                 says reaches index.json, the lock or restore.sh"
                    .into(),
            ),
            ResolveError::Content(_) => None,
        }
    }
}

impl ResolveError {
    /// Retries spent before giving up.
    pub fn retries(&self) -> u32 {
        match self {
            ResolveError::Registry(e) => e.attempts.saturating_sub(1),
            _ => 0,
        }
    }
}

impl From<RegistryError> for ResolveError {
    fn from(e: RegistryError) -> Self {
        ResolveError::Registry(e)
    }
}

impl From<ManifestError> for ResolveError {
    fn from(e: ManifestError) -> Self {
        ResolveError::Manifest(e)
    }
}

/// Resolves `reference`, keeping the platforms `filter` asks for.
pub async fn resolve(
    registries: &Registries,
    reference: &ImageRef,
    selection: &Selection<'_>,
) -> Result<ResolvedImage, ResolveError> {
    // The name is recorded in index.json, the lock and restore.sh (it may come from a cluster
    // or a list file).
    crate::untrusted::check_reference_name(&reference.to_string()).map_err(|source| {
        ResolveError::Invalid {
            what: "the reference".into(),
            source,
        }
    })?;
    // A lock entry pins the manifest: fetch it by digest, whatever the tag says today.
    let fetch_as = match selection {
        Selection::Locked(pin) => reference.with_digest_only(pin.digest.clone()),
        Selection::Platforms(_) => reference.clone(),
    };
    let (fetched, remotes) = fetch_root(registries, &fetch_as).await?;
    let remote = &remotes[0];
    let (parsed, media_type) = Manifest::parse(&fetched.bytes, fetched.content_type.as_deref())?;
    let root = InMemoryBlob {
        digest: fetched.digest,
        media_type,
        bytes: fetched.bytes,
    };
    match parsed {
        Manifest::Image(m) => {
            let (platform, config) = single_platform(registries, remote, &m, selection).await?;
            Ok(ResolvedImage {
                reference: reference.clone(),
                remotes,
                platforms: vec![platform_of(
                    &m,
                    root.clone(),
                    platform,
                    Some(config),
                    false,
                )?],
                root,
                is_index: false,
                source: None,
            })
        }
        Manifest::Index(index) => {
            let children = match selection {
                Selection::Platforms(filter) => select_children(index.manifests(), filter)?,
                Selection::Locked(pin) => locked_children(index.manifests(), pin)?,
            };
            let mut platforms = Vec::with_capacity(children.len());
            for child in children {
                platforms.push(resolve_child(registries, remote, child).await?);
            }
            Ok(ResolvedImage {
                reference: reference.clone(),
                remotes,
                root,
                is_index: true,
                platforms,
                source: None,
            })
        }
    }
}

/// The platform of a single-platform image, from its config (fetched here, and returned for
/// the bundle to store). It is kept when it serves any wanted platform (as crane, skopeo and
/// ctr take it); one that serves none would be useless on every node.
async fn single_platform(
    registries: &Registries,
    remote: &Remote,
    m: &ImageManifest,
    selection: &Selection<'_>,
) -> Result<(Option<Platform>, Bytes), ResolveError> {
    let config = blob_ref(m.config())?;
    if config.size > manifest::MAX_MANIFEST_BYTES {
        return Err(ResolveError::Content(format!(
            "config {} is {} bytes; ferry refuses configs over 4 MiB",
            config.digest, config.size
        )));
    }
    let config_bytes = registries
        .fetch_small_blob(remote, &config.digest, config.size)
        .await?;
    let platform =
        manifest::config_platform(&config_bytes).map_err(|source| ResolveError::Invalid {
            what: format!("config {}", config.digest),
            source,
        })?;
    if let (Selection::Platforms(PlatformFilter::Only(wanted)), Some(have)) = (selection, &platform)
        && !wanted.iter().any(|w| w.matches(have))
    {
        return Err(ResolveError::MissingPlatform {
            wanted: wanted
                .iter()
                .map(Platform::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
            available: vec![format!("{have} only (a single-platform image)")],
        });
    }
    Ok((platform, config_bytes))
}

/// Resolves `references`, `jobs` at a time, each as `select` says.
pub async fn resolve_many<'a>(
    registries: &Registries,
    references: &[ImageRef],
    jobs: usize,
    select: impl Fn(&ImageRef) -> Selection<'a>,
) -> Vec<(ImageRef, Result<ResolvedImage, ResolveError>)> {
    use futures_util::StreamExt;
    futures_util::stream::iter(references.iter().map(|r| {
        let selection = select(r);
        async move { (r.clone(), resolve(registries, r, &selection).await) }
    }))
    .buffer_unordered(jobs.max(1))
    .collect()
    .await
}

/// The digest a reference's tag names today (its manifest only; nothing else is fetched).
pub async fn current_digest(
    registries: &Registries,
    reference: &ImageRef,
) -> Result<Digest, ResolveError> {
    Ok(fetch_root(registries, reference).await?.0.digest)
}

/// What to keep of a reference.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// The manifest the tag names today, and these platforms of it.
    Platforms(&'a PlatformFilter),
    /// Exactly what a lock file recorded: the manifest by digest, and its locked children.
    Locked(&'a LockedImage),
}

/// The index entries a lock entry names, by digest.
fn locked_children<'a>(
    entries: &'a [Descriptor],
    pin: &LockedImage,
) -> Result<Vec<&'a Descriptor>, ResolveError> {
    pin.platforms
        .iter()
        .map(|p| {
            entries
                .iter()
                .find(|d| d.digest().to_string() == p.digest.to_string())
                .ok_or_else(|| {
                    ResolveError::Content(format!(
                        "the lock names manifest {} which index {} does not list",
                        p.digest, pin.digest
                    ))
                })
        })
        .collect()
}

/// Picks the index entries to keep: all of them, or the best match for each wanted platform.
///
/// An entry whose platform is invalid (a newline in `variant`) can match no wanted platform:
/// it is ignored when another entry serves each wanted platform, and reported when a wanted
/// platform is then missing. Kept by `All`, it fails the image in [`resolve_child`].
fn select_children<'a>(
    entries: &'a [Descriptor],
    filter: &PlatformFilter,
) -> Result<Vec<&'a Descriptor>, ResolveError> {
    let wanted = match filter {
        PlatformFilter::All => return Ok(entries.iter().collect()),
        PlatformFilter::Only(w) => w,
    };
    let mut images: Vec<(&Descriptor, Platform)> = Vec::new();
    let mut invalid = None;
    for d in entries.iter().filter(|d| !manifest::is_attestation(d)) {
        match manifest::descriptor_platform(d) {
            Ok(Some(p)) => images.push((d, p)),
            Ok(None) => {}
            Err(source) => {
                invalid.get_or_insert_with(|| ResolveError::Invalid {
                    what: format!("index entry {}", d.digest()),
                    source,
                });
            }
        }
    }
    let mut picked: Vec<&Descriptor> = Vec::new();
    for w in wanted {
        // The best match; the first in index order among equals.
        let best = w.best_of(images.iter().map(|(d, p)| (*d, p)));
        match best {
            Some(d) => {
                if !picked.iter().any(|p| p.digest() == d.digest()) {
                    picked.push(d);
                }
            }
            None => {
                return Err(invalid.unwrap_or_else(|| ResolveError::MissingPlatform {
                    wanted: w.to_string(),
                    available: images.iter().map(|(_, p)| p.to_string()).collect(),
                }));
            }
        }
    }
    Ok(picked)
}

/// Fetches the reference's manifest from its mirrors in order, then its own registry. Returns
/// it with the remotes to fetch the rest from: the one that answered first, then the others
/// after it.
async fn fetch_root(
    registries: &Registries,
    reference: &ImageRef,
) -> Result<(FetchedManifest, Vec<Remote>), ResolveError> {
    let remotes = registries.remotes(reference);
    let mut tried = crate::registry::Tried::default();
    for (i, remote) in remotes.iter().enumerate() {
        match registries
            .fetch_manifest(remote, &reference.manifest_reference(), reference.digest())
            .await
        {
            Ok(m) => return Ok((m, remotes[i..].to_vec())),
            Err(e) if remote.mirror => {
                tracing::debug!(
                    "mirror {} failed for {}, trying the next remote: {}",
                    remote.name(),
                    crate::redact::redact(&reference.to_string()),
                    e.to_string().lines().next().unwrap_or_default()
                );
                tried.failed(remote, &e);
            }
            Err(e) => {
                let e = registries.explain_not_found(e).await;
                return Err(tried.annotate(e).into());
            }
        }
    }
    unreachable!("the reference's own registry is always the last remote")
}

async fn resolve_child(
    registries: &Registries,
    remote: &Remote,
    child: &Descriptor,
) -> Result<ResolvedPlatform, ResolveError> {
    let digest = manifest::descriptor_digest(child)?;
    let platform =
        manifest::descriptor_platform(child).map_err(|source| ResolveError::Invalid {
            what: format!("index entry {digest}"),
            source,
        })?;
    let fetched = registries
        .fetch_manifest(remote, &digest.to_string(), Some(&digest))
        .await?;
    if fetched.bytes.len() as u64 != child.size() {
        return Err(ResolveError::Content(format!(
            "manifest {digest} is {} bytes but the index says {}",
            fetched.bytes.len(),
            child.size()
        )));
    }
    let declared = child.media_type().to_string();
    let (parsed, media_type) = Manifest::parse(&fetched.bytes, Some(&declared))?;
    let Manifest::Image(m) = parsed else {
        return Err(ResolveError::Content(format!(
            "index entry {digest} is itself an index; nested indexes are not supported"
        )));
    };
    let blob = InMemoryBlob {
        digest,
        media_type,
        bytes: fetched.bytes,
    };
    platform_of(&m, blob, platform, None, manifest::is_attestation(child))
}

fn platform_of(
    m: &ImageManifest,
    manifest: InMemoryBlob,
    platform: Option<Platform>,
    config_bytes: Option<Bytes>,
    attestation: bool,
) -> Result<ResolvedPlatform, ResolveError> {
    Ok(ResolvedPlatform {
        platform,
        manifest,
        config: blob_ref(m.config())?,
        config_bytes,
        layers: m.layers().iter().map(blob_ref).collect::<Result<_, _>>()?,
        attestation,
    })
}

fn blob_ref(d: &Descriptor) -> Result<BlobRef, ResolveError> {
    Ok(BlobRef {
        digest: manifest::descriptor_digest(d)?,
        size: d.size(),
    })
}

#[cfg(test)]
mod tests;
