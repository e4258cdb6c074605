//! A local file as an OCI artifact, the way `oras push NAME:TAG FILE` stores it: the empty
//! config, one layer holding the file byte for byte, titled with the file's name.

use std::io::Read;
use std::path::Path;

use bytes::Bytes;

use super::{ANNOTATION_TITLE, OCI_EMPTY};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::reference::ImageRef;
use crate::resolve::{BlobRef, ResolvedImage};
use crate::store::{BlobWriter, Layout, StoreError};

/// oras's artifact type when none is given.
pub const DEFAULT_ARTIFACT_TYPE: &str = "application/vnd.unknown.artifact.v1";
/// oras's media type for a file layer.
pub const FILE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// The empty config's bytes.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// Why a file could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file's name cannot be a title (not UTF-8, a control character, no name at all).
    #[error("{0}: its name cannot title an artifact (printable UTF-8 without / needed)")]
    Name(String),
    /// Reading the file or writing its blob failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file changed between hashing and storing it.
    #[error("{0} changed while it was stored")]
    Changed(String),
}

impl crate::error::Diagnostic for FileError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            FileError::Name(_) => crate::error::Kind::Usage,
            FileError::Store(e) => e.kind(),
            FileError::Changed(_) => crate::error::Kind::Io,
        }
    }
}

/// The title `path` gets: its file name, printable.
fn title_of(path: &Path) -> Result<String, FileError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != ".." && !n.chars().any(char::is_control))
        .ok_or_else(|| FileError::Name(path.display().to_string()))?;
    Ok(name.to_owned())
}

/// Stores `path` as a blob of `layout` (hashed first, then written and checked again as it is
/// written) and returns the artifact naming it, to commit under `reference`.
pub fn pack_file(
    layout: &Layout,
    path: &Path,
    reference: ImageRef,
) -> Result<ResolvedImage, FileError> {
    let title = title_of(path)?;
    let open = || std::fs::File::open(path).map_err(StoreError::io("read", path));
    let mut hasher = Hasher::new(Algorithm::Sha256);
    copy(open()?, path, |chunk| {
        hasher.update(chunk);
        Ok(())
    })?;
    let size = hasher.len();
    let digest = hasher.finish();
    if !layout.has_blob(&digest, size) {
        let mut writer = BlobWriter::create(layout, digest.clone(), Some(size))?;
        copy(open()?, path, |chunk| writer.write(chunk))?;
        writer
            .commit()
            .map_err(|_| FileError::Changed(path.display().to_string()))?;
    }
    let config = BlobRef {
        digest: Digest::sha256_of(EMPTY_CONFIG),
        size: EMPTY_CONFIG.len() as u64,
    };
    let layer = BlobRef { digest, size };
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::manifest::OCI_MANIFEST,
        "artifactType": DEFAULT_ARTIFACT_TYPE,
        "config": {
            "mediaType": OCI_EMPTY,
            "digest": config.digest.to_string(),
            "size": config.size,
            "data": "e30=",
        },
        "layers": [{
            "mediaType": FILE_LAYER,
            "digest": layer.digest.to_string(),
            "size": layer.size,
            "annotations": { ANNOTATION_TITLE: title },
        }],
    });
    let bytes = Bytes::from(serde_json::to_vec(&doc).expect("JSON"));
    let mut image = super::made_here(
        reference,
        bytes,
        config,
        Bytes::from_static(EMPTY_CONFIG),
        vec![layer],
    );
    image.source = Some(crate::store::lockfile::LockedSource::LocalFile { title });
    Ok(image)
}

/// Reads `file` to its end in 1 MiB chunks.
fn copy(
    mut file: std::fs::File,
    path: &Path,
    mut each: impl FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<(), FileError> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(StoreError::io("read", path))?;
        if n == 0 {
            return Ok(());
        }
        each(&buf[..n])?;
    }
}
