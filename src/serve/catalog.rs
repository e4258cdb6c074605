//! What a bundle offers as a registry: its repositories (per source registry), their tags, the
//! manifests and blobs each repository's images reach, and the referrers of each manifest.
//! Built once at start from index.json and the (verified) manifests.

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};

use crate::digest::Digest;
use crate::manifest::{self, MAX_MANIFEST_BYTES, Manifest};
use crate::reference::ImageRef;
use crate::store::BundleSource;
use crate::store::StoreError;
use crate::store::source::BlobStat;

/// A repository of a source registry, as the bundle names it (`docker.io`, `library/alpine`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoKey {
    /// The source registry (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The repository path.
    pub repository: String,
}

/// A manifest a repository serves.
#[derive(Debug, Clone)]
pub struct ManifestInfo {
    /// The media type it was stored with (its Content-Type).
    pub media_type: String,
    /// Its size.
    pub size: u64,
}

/// One repository's content.
#[derive(Debug, Default)]
pub struct Repo {
    /// Tag -> manifest digest.
    pub tags: BTreeMap<String, Digest>,
    /// Manifests (indexes too) reachable from its images.
    pub manifests: HashMap<Digest, ManifestInfo>,
    /// Every blob its images reach (manifests, configs, layers) with its size.
    pub blobs: HashMap<Digest, u64>,
    /// Subject digest -> descriptors of the manifests in the bundle that refer to it.
    pub referrers: HashMap<Digest, Vec<Descriptor>>,
}

impl Repo {
    /// Adds what another walk found.
    fn absorb(&mut self, other: Repo) {
        self.manifests.extend(other.manifests);
        self.blobs.extend(other.blobs);
        for (subject, found) in other.referrers {
            let list = self.referrers.entry(subject).or_default();
            for d in found {
                if !list.iter().any(|x| x.digest() == d.digest()) {
                    list.push(d);
                }
            }
        }
    }
}

/// Why a request's name does not select one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// No such repository.
    Unknown,
    /// The repository is held from several source registries; these.
    Ambiguous(Vec<String>),
}

/// Every repository of the bundle.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The repositories.
    pub repos: BTreeMap<RepoKey, Repo>,
    /// Entries skipped, with why (for a warning).
    pub skipped: Vec<String>,
}

/// How a source registry is written as the first path component of a repository name: a colon
/// is not allowed there, so `host:5000` becomes `host_5000` (a host name has no `_`).
pub fn host_component(registry: &str) -> String {
    registry.replace(':', "_")
}

impl Catalog {
    /// Reads index.json and walks every named image. An image is served only when every blob
    /// it needs is in the bundle (a platform left out of an index is absent by design): one
    /// that is not, is left out and named in `skipped` with why.
    pub fn build(source: &dyn BundleSource) -> Result<Catalog, StoreError> {
        let mut catalog = Catalog::default();
        for entry in source.index()?.entries() {
            let Some(name) = entry.name else { continue };
            let reference: ImageRef = match name.parse() {
                Ok(r) => r,
                Err(e) => {
                    catalog.skipped.push(format!("{name:?}: {e}"));
                    continue;
                }
            };
            let key = RepoKey {
                registry: crate::docker_hub::canonical(reference.registry()).to_owned(),
                repository: reference.repository().to_owned(),
            };
            // Walked aside: an image that turns out incomplete adds nothing to its repository.
            let mut image = Repo::default();
            match walk(source, &mut image, &entry.descriptor, 0) {
                Ok(digest) => {
                    let repo = catalog.repos.entry(key).or_default();
                    repo.absorb(image);
                    if let Some(tag) = reference.tag() {
                        repo.tags.insert(tag.to_owned(), digest);
                    }
                }
                Err(e) => catalog.skipped.push(format!("{name}: {e}")),
            }
        }
        catalog.repos.retain(|_, r| !r.manifests.is_empty());
        Ok(catalog)
    }

    /// Tags served, over every repository.
    pub fn tag_count(&self) -> usize {
        self.repos.values().map(|r| r.tags.len()).sum()
    }

    /// The repository a request names: `ns` (containerd's mirror parameter) selects the
    /// source registry; else a first component naming a source registry; else the repository
    /// alone, when only one source registry has it.
    pub fn resolve(&self, name: &str, ns: Option<&str>) -> Result<(&RepoKey, &Repo), NameError> {
        let find = |registry: &str, repository: &str| {
            self.repos.get_key_value(&RepoKey {
                registry: registry.to_owned(),
                repository: repository.to_owned(),
            })
        };
        if let Some(ns) = ns {
            return find(crate::docker_hub::canonical(ns), name).ok_or(NameError::Unknown);
        }
        if let Some((first, rest)) = name.split_once('/') {
            let first = crate::docker_hub::canonical(first);
            let hit = self.repos.iter().find(|(k, _)| {
                (k.registry == first || host_component(&k.registry) == first)
                    && k.repository == rest
            });
            if let Some(hit) = hit {
                return Ok(hit);
            }
        }
        let mut hits = self.repos.iter().filter(|(k, _)| k.repository == name);
        match (hits.next(), hits.next()) {
            (Some(hit), None) => Ok(hit),
            (None, _) => Err(NameError::Unknown),
            (Some(a), Some(b)) => {
                let mut regs = vec![a.0.registry.clone(), b.0.registry.clone()];
                regs.extend(hits.map(|(k, _)| k.registry.clone()));
                Err(NameError::Ambiguous(regs))
            }
        }
    }

    /// The names to list in `_catalog`: the repository alone when one source has it, else
    /// `HOST/repository` (with the port written `_PORT`).
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .repos
            .keys()
            .map(|k| {
                let shared = self
                    .repos
                    .keys()
                    .filter(|o| o.repository == k.repository)
                    .count()
                    > 1;
                if shared {
                    format!("{}/{}", host_component(&k.registry), k.repository)
                } else {
                    k.repository.clone()
                }
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The source registries the bundle holds images of.
    pub fn registries(&self) -> Vec<String> {
        let mut out: Vec<String> = self.repos.keys().map(|k| k.registry.clone()).collect();
        out.dedup();
        out
    }
}

/// Why an image is not served.
#[derive(Debug, thiserror::Error)]
enum Unservable {
    /// A manifest could not be read or is wrong.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blob it needs is absent or not a regular file of its size.
    #[error("{0}")]
    Incomplete(String),
}

/// Why a blob an image needs cannot be served, found without reading it; `None` when it is
/// there as a regular file of the declared size.
fn absent(source: &dyn BundleSource, digest: &Digest, size: u64) -> Option<String> {
    match source.blob_stat(digest) {
        BlobStat::File(s) if s == size => None,
        BlobStat::File(s) => Some(format!("has {s} bytes, its descriptor says {size}")),
        BlobStat::Missing => Some("is not in the bundle".into()),
        BlobStat::NotAFile(what) => Some(format!("is {what}")),
    }
}

/// Records a manifest (and what it reaches) in `repo`; returns its digest. Fails when a blob
/// it needs is absent or not a regular file of its size.
fn walk(
    source: &dyn BundleSource,
    repo: &mut Repo,
    d: &Descriptor,
    depth: u8,
) -> Result<Digest, Unservable> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: source.path().join("index.json"),
        reason,
    };
    let digest = manifest::descriptor_digest(d).map_err(|e| corrupt(e.to_string()))?;
    if let Some(why) = absent(source, &digest, d.size()) {
        return Err(Unservable::Incomplete(format!("manifest {digest} {why}")));
    }
    let bytes = source
        .open_blob(&digest, Some(d.size()))?
        .read_verified(MAX_MANIFEST_BYTES)?;
    let (parsed, media_type) = Manifest::parse(&bytes, Some(d.media_type().as_ref()))
        .map_err(|e| corrupt(format!("{digest}: {e}")))?;
    repo.manifests.insert(
        digest.clone(),
        ManifestInfo {
            media_type: media_type.clone(),
            size: d.size(),
        },
    );
    repo.blobs.insert(digest.clone(), d.size());
    let (subject, artifact_type, annotations) = match &parsed {
        Manifest::Index(index) => {
            walk_children(source, repo, index.manifests(), depth)?;
            (
                index.subject().clone(),
                index.artifact_type().as_ref().map(ToString::to_string),
                index.annotations().clone(),
            )
        }
        Manifest::Image(image) => {
            for blob in std::iter::once(image.config()).chain(image.layers()) {
                let b = manifest::descriptor_digest(blob).map_err(|e| corrupt(e.to_string()))?;
                if let Some(why) = absent(source, &b, blob.size()) {
                    let what = if blob == image.config() {
                        "config"
                    } else {
                        "layer"
                    };
                    return Err(Unservable::Incomplete(format!(
                        "{what} {b} of {digest} {why}"
                    )));
                }
                repo.blobs.insert(b, blob.size());
            }
            let artifact = image
                .artifact_type()
                .as_ref()
                .map(ToString::to_string)
                .or_else(|| Some(image.config().media_type().to_string()));
            (
                image.subject().clone(),
                artifact,
                image.annotations().clone(),
            )
        }
    };
    if let Some(subject) = subject
        && let Ok(subject) = manifest::descriptor_digest(&subject)
        && let Some(desc) = referrer(d, &media_type, artifact_type, annotations)
    {
        let list = repo.referrers.entry(subject).or_default();
        if !list.iter().any(|x| x.digest() == desc.digest()) {
            list.push(desc);
        }
    }
    Ok(digest)
}

/// Walks an index's children: one the bundle does not hold at all was left out by platform
/// filtering and is skipped; one it holds must be complete; at least one must be there.
fn walk_children(
    source: &dyn BundleSource,
    repo: &mut Repo,
    children: &[Descriptor],
    depth: u8,
) -> Result<(), Unservable> {
    if depth >= 2 {
        return Ok(());
    }
    let mut held = 0;
    for child in children {
        let Ok(c) = manifest::descriptor_digest(child) else {
            continue;
        };
        if source.blob_stat(&c) == BlobStat::Missing {
            continue;
        }
        walk(source, repo, child, depth + 1)?;
        held += 1;
    }
    if held == 0 && !children.is_empty() {
        return Err(Unservable::Incomplete(
            "none of its platforms' manifests is in the bundle".into(),
        ));
    }
    Ok(())
}

/// The descriptor the referrers API lists for a manifest with a subject.
fn referrer(
    d: &Descriptor,
    media_type: &str,
    artifact_type: Option<String>,
    annotations: Option<std::collections::HashMap<String, String>>,
) -> Option<Descriptor> {
    let mut b = DescriptorBuilder::default()
        .media_type(MediaType::from(media_type))
        .size(d.size())
        .digest(d.digest().clone());
    if let Some(a) = artifact_type {
        b = b.artifact_type(MediaType::from(a.as_str()));
    }
    if let Some(a) = annotations {
        b = b.annotations(a);
    }
    b.build().ok()
}
