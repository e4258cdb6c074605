//! Manifests and indexes as registries serve them: OCI and Docker schema2, parsed without ever
//! re-serializing (the raw bytes are what gets stored, so digests never change).

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::platform::Platform;
use crate::untrusted::Invalid;

/// The largest manifest ferry accepts (as containerd does): anything larger is refused.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker schema2 manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifest requests, in order of preference.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A parsed manifest: either an index (many platforms) or one image.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// An OCI index or Docker manifest list.
    Index(Box<ImageIndex>),
    /// An OCI or Docker schema2 image manifest.
    Image(Box<ImageManifest>),
}

/// Why bytes are not a manifest ferry can store.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Docker schema 1: deprecated, signed over a re-serialization, unsupported.
    #[error(
        "the registry serves this image only as a Docker schema 1 manifest, which ferry refuses \
         (deprecated since 2017, removed from containerd 2.0)"
    )]
    Schema1,
    /// A digest ferry cannot verify (an algorithm other than sha256 or sha512).
    #[error("{0}")]
    UnsupportedDigest(String),
    /// A media type that is neither an index nor an image manifest.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// A field that does not match its grammar (a media type with a newline).
    #[error(transparent)]
    Invalid(#[from] crate::untrusted::Invalid),
    /// Not JSON of the expected shape. (The parser quotes the value it refused: escaped.)
    #[error("malformed {kind}: {}", crate::untrusted::printable(&source.to_string()))]
    Malformed {
        /// What it was taken for.
        kind: &'static str,
        /// The parser's complaint.
        source: serde_json::Error,
    },
}

impl crate::error::Diagnostic for ManifestError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Protocol
    }

    fn hint(&self) -> Option<String> {
        matches!(self, ManifestError::Schema1).then(|| {
            "re-push the image with a current client (docker push, skopeo copy --format v2s2)"
                .into()
        })
    }
}

#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses raw bytes; `content_type` is the HTTP header, used when the JSON names no type.
    /// Returns the manifest and the media type to record for it.
    pub fn parse(
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<(Manifest, String), ManifestError> {
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Malformed {
                kind: "manifest",
                source,
            })?;
        let header = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
            .filter(|c| {
                !c.is_empty() && c != "application/json" && c != "application/octet-stream"
            });
        let media_type = probe.media_type.clone().or(header).unwrap_or_else(|| {
            // Old OCI manifests may omit mediaType: fall back to the shape.
            if probe.manifests.is_some() {
                OCI_INDEX
            } else {
                OCI_MANIFEST
            }
            .to_owned()
        });
        // Checked before anything else: the type is recorded in index.json, the lock and
        // restore.sh, and shown in messages.
        crate::untrusted::check_media_type(&media_type)?;
        if probe.schema_version == Some(1)
            || media_type == DOCKER_SCHEMA1
            || media_type == DOCKER_SCHEMA1_SIGNED
        {
            return Err(ManifestError::Schema1);
        }
        let manifest = match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => Manifest::Index(Box::new(
                serde_json::from_slice(bytes).map_err(|source| ManifestError::Malformed {
                    kind: "image index",
                    source,
                })?,
            )),
            OCI_MANIFEST | DOCKER_MANIFEST => {
                if probe.config.is_none() {
                    return Err(ManifestError::UnsupportedMediaType(media_type));
                }
                Manifest::Image(Box::new(serde_json::from_slice(bytes).map_err(
                    |source| ManifestError::Malformed {
                        kind: "image manifest",
                        source,
                    },
                )?))
            }
            _ => return Err(ManifestError::UnsupportedMediaType(media_type)),
        };
        Ok((manifest, media_type))
    }
}

/// The digest of a descriptor in ferry's type; oci-spec accepts algorithms ferry does not.
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest, ManifestError> {
    d.digest()
        .to_string()
        .parse()
        .map_err(|e: crate::digest::DigestParseError| {
            ManifestError::UnsupportedDigest(e.to_string())
        })
}

/// The platform an index entry declares, if it declares one; an error when a part of it does
/// not match the platform grammar (see [`Platform::parse_parts`]).
pub fn descriptor_platform(d: &Descriptor) -> Result<Option<Platform>, Invalid> {
    d.platform()
        .as_ref()
        .map(|p| {
            Platform::parse_parts(
                &p.os().to_string(),
                &p.architecture().to_string(),
                p.variant().as_deref(),
            )
        })
        .transpose()
}

/// Whether an index entry is a BuildKit attestation (provenance/SBOM), not an image.
pub fn is_attestation(d: &Descriptor) -> bool {
    let annotated = d
        .annotations()
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest");
    annotated || matches!(descriptor_platform(d), Ok(Some(p)) if p.is_unknown())
}

/// The platform an image config declares (`os`, `architecture`, `variant`), if it declares one
/// (a config that is not JSON declares none); an error when a part of it is invalid.
pub fn config_platform(config: &[u8]) -> Result<Option<Platform>, Invalid> {
    #[derive(serde::Deserialize)]
    struct Config {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let Ok(c) = serde_json::from_slice::<Config>(config) else {
        return Ok(None);
    };
    match (c.os, c.architecture) {
        (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => {
            Platform::parse_parts(&os, &arch, c.variant.as_deref()).map(Some)
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn docker_list_with_attestation() {
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","size":5,"digest":"{D}","platform":{{"architecture":"arm64","os":"linux"}}}},
            {{"mediaType":"{OCI_MANIFEST}","size":5,"digest":"{D}","platform":{{"architecture":"unknown","os":"unknown"}}}}]}}"#
        );
        let (m, mt) = Manifest::parse(list.as_bytes(), None).unwrap();
        assert_eq!(mt, DOCKER_LIST);
        let Manifest::Index(i) = m else {
            panic!("not an index")
        };
        assert_eq!(
            descriptor_platform(&i.manifests()[0])
                .unwrap()
                .unwrap()
                .to_string(),
            "linux/arm64"
        );
        assert!(!is_attestation(&i.manifests()[0]));
        assert!(is_attestation(&i.manifests()[1]));
    }

    #[test]
    fn media_type_from_header_when_json_has_none() {
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","size":1,"digest":"{D}"}},"layers":[]}}"#
        );
        let (_, mt) = Manifest::parse(
            m.as_bytes(),
            Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
        )
        .unwrap();
        assert_eq!(mt, OCI_MANIFEST);
        let (_, mt) = Manifest::parse(m.as_bytes(), None).unwrap();
        assert_eq!(mt, OCI_MANIFEST);
    }

    #[test]
    fn refuses_schema1_and_unknown_types() {
        let s1 = r#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[],"signatures":[]}"#;
        assert!(matches!(
            Manifest::parse(s1.as_bytes(), None),
            Err(ManifestError::Schema1)
        ));
        let s1 = r#"{"name":"a"}"#;
        assert!(matches!(
            Manifest::parse(s1.as_bytes(), Some(DOCKER_SCHEMA1_SIGNED)),
            Err(ManifestError::Schema1)
        ));
        let art =
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}"#;
        assert!(matches!(
            Manifest::parse(art.as_bytes(), None),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            Manifest::parse(b"<html>", None),
            Err(ManifestError::Malformed { .. })
        ));
    }

    #[test]
    fn config_platform_reads_variant() {
        let p =
            config_platform(br#"{"os":"linux","architecture":"arm64","variant":"v8","rootfs":{}}"#)
                .unwrap()
                .unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(config_platform(b"{}"), Ok(None));
        let e = config_platform(br#"{"os":"linux","architecture":"amd64","variant":"v1\nx"}"#)
            .unwrap_err();
        assert_eq!(e.field, "platform variant");
    }

    #[test]
    fn refuses_a_media_type_with_a_newline() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}\nFERRY_IMAGES","config":{{"mediaType":"x","size":1,"digest":"{D}"}},"layers":[]}}"#
        );
        let e = Manifest::parse(m.as_bytes(), None).unwrap_err();
        assert!(matches!(e, ManifestError::Invalid(_)), "{e}");
        assert!(e.to_string().starts_with("invalid media type"), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
        let e = Manifest::parse(b"{}", Some("application/vnd.oci.image.manifest.v1+json x"))
            .unwrap_err();
        assert!(matches!(e, ManifestError::Invalid(_)), "{e}");
    }
}
