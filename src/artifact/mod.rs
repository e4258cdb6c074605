//! What a bundle entry is: a runnable image, an image index, a Helm chart, or another OCI
//! artifact (a model, a file pushed with oras, an SBOM...). Only images and indexes are imported
//! into a container runtime; everything else is carried byte-exact and left alone there.

pub mod export;
pub mod file;

use crate::manifest::Manifest;
use crate::store::{BundleSource, IndexEntry};

/// The config media type of a chart `helm push` stores (Chart.yaml as JSON).
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// The media type of a chart's one layer: the chart `.tgz`, byte for byte.
pub const HELM_CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// The empty config (`{}`) of artifacts that have no config of their own (oras).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The annotation naming a layer's file (oras: the file's name).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// The configs of runnable images: what containerd and CRI-O can import.
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// The kind of content a bundle entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A single image manifest with an image config: something a runtime runs.
    Image,
    /// An image index (or Docker manifest list) of images.
    Index,
    /// A Helm chart as `helm push` stores it.
    HelmChart,
    /// Any other artifact, with its type: the manifest's `artifactType`, else its config's
    /// media type (as the OCI distribution spec's referrers API defines it).
    Artifact(String),
}

impl Kind {
    /// The kind of a manifest (its bytes and the media type it was stored under); `None` when
    /// the bytes are no manifest.
    pub fn of_manifest(bytes: &[u8], media_type: &str) -> Option<Kind> {
        let (manifest, _) = Manifest::parse(bytes, Some(media_type)).ok()?;
        Some(match manifest {
            Manifest::Index(index) => match index.artifact_type() {
                Some(t) => Kind::from_type(t.as_ref()),
                None => Kind::Index,
            },
            Manifest::Image(image) => {
                let config = image.config().media_type().to_string();
                match image.artifact_type() {
                    Some(t) => Kind::from_type(t.as_ref()),
                    None if IMAGE_CONFIGS.contains(&config.as_str()) => Kind::Image,
                    None => Kind::from_type(&config),
                }
            }
        })
    }

    /// The kind an artifact type names.
    pub fn from_type(artifact_type: &str) -> Kind {
        if artifact_type == HELM_CONFIG {
            Kind::HelmChart
        } else {
            Kind::Artifact(artifact_type.to_owned())
        }
    }

    /// The word `ls` shows: `image`, `index`, `helm-chart` or `artifact`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Index => "index",
            Kind::HelmChart => "helm-chart",
            Kind::Artifact(_) => "artifact",
        }
    }

    /// The artifact type recorded for it (`None` for images and indexes).
    pub fn artifact_type(&self) -> Option<&str> {
        match self {
            Kind::Image | Kind::Index => None,
            Kind::HelmChart => Some(HELM_CONFIG),
            Kind::Artifact(t) => Some(t),
        }
    }

    /// Whether a container runtime can import it.
    pub fn is_runnable(&self) -> bool {
        matches!(self, Kind::Image | Kind::Index)
    }

    /// Why restore leaves it alone (`None` for what it imports).
    pub fn why_not_restored(&self) -> Option<String> {
        match self {
            Kind::Image | Kind::Index => None,
            Kind::HelmChart => Some(
                "a Helm chart: containerd and CRI-O run images only; pull it from `ferry serve` \
                 or a registry after `ferry push`"
                    .into(),
            ),
            Kind::Artifact(t) => Some(format!(
                "an artifact of type {t}: containerd and CRI-O run images only; pull it from \
                 `ferry serve` or a registry after `ferry push`"
            )),
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Artifact(t) => write!(f, "artifact ({t})"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// The kind of an index.json entry: from the `artifactType` ferry records on it, else from
/// its manifest (bundles made before ferry recorded it), else from its media type alone (a
/// delta, which may lack the manifest).
pub fn kind_of_entry(layout: &dyn BundleSource, entry: &IndexEntry) -> Kind {
    let d = &entry.descriptor;
    if let Some(t) = d.artifact_type() {
        return Kind::from_type(t.as_ref());
    }
    let media_type = d.media_type().to_string();
    let read = crate::manifest::descriptor_digest(d)
        .ok()
        .filter(|_| d.size() <= crate::manifest::MAX_MANIFEST_BYTES)
        .and_then(|digest| layout.read_blob(&digest).ok());
    if let Some(kind) = read.and_then(|bytes| Kind::of_manifest(&bytes, &media_type)) {
        return kind;
    }
    match media_type.as_str() {
        crate::manifest::OCI_INDEX | crate::manifest::DOCKER_LIST => Kind::Index,
        _ => Kind::Image,
    }
}

/// An artifact made by ferry itself (a chart from an HTTP repository, a local file): one OCI
/// manifest whose config and layers are in hand or stored, resolved with no remote to fetch
/// from, for the run to commit like any image.
pub fn made_here(
    reference: crate::reference::ImageRef,
    manifest: bytes::Bytes,
    config: crate::resolve::BlobRef,
    config_bytes: bytes::Bytes,
    layers: Vec<crate::resolve::BlobRef>,
) -> crate::resolve::ResolvedImage {
    let manifest = crate::resolve::InMemoryBlob {
        digest: crate::digest::Digest::sha256_of(&manifest),
        media_type: crate::manifest::OCI_MANIFEST.to_owned(),
        bytes: manifest,
    };
    crate::resolve::ResolvedImage {
        reference,
        remotes: Vec::new(),
        root: manifest.clone(),
        is_index: false,
        platforms: vec![crate::resolve::ResolvedPlatform {
            platform: None,
            manifest,
            config,
            config_bytes: Some(config_bytes),
            layers,
            attestation: false,
        }],
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn manifest(config: &str, artifact_type: Option<&str>) -> Vec<u8> {
        let mut doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::manifest::OCI_MANIFEST,
            "config": {"mediaType": config, "size": 2, "digest": D},
            "layers": [{"mediaType": HELM_CHART_LAYER, "size": 5, "digest": D}],
        });
        if let Some(t) = artifact_type {
            doc["artifactType"] = t.into();
        }
        serde_json::to_vec(&doc).unwrap()
    }

    #[test]
    fn kinds_follow_artifact_type_then_config() {
        let of = |b: Vec<u8>| Kind::of_manifest(&b, crate::manifest::OCI_MANIFEST).unwrap();
        assert_eq!(of(manifest(IMAGE_CONFIGS[0], None)), Kind::Image);
        assert_eq!(of(manifest(IMAGE_CONFIGS[1], None)), Kind::Image);
        assert_eq!(of(manifest(HELM_CONFIG, None)), Kind::HelmChart);
        let model = "application/vnd.example.model.v1";
        assert_eq!(
            of(manifest(OCI_EMPTY, Some(model))),
            Kind::Artifact(model.into())
        );
        assert_eq!(
            of(manifest("application/vnd.unknown.config.v1+json", None)),
            Kind::Artifact("application/vnd.unknown.config.v1+json".into())
        );
        assert!(Kind::of_manifest(b"not json", crate::manifest::OCI_MANIFEST).is_none());
        assert!(Kind::HelmChart.why_not_restored().is_some());
        assert!(Kind::Index.is_runnable() && !Kind::HelmChart.is_runnable());
    }
}
