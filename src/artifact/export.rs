//! `ferry export --files DIR`: the files a bundle carries as artifacts (layers titled with
//! `org.opencontainers.image.title`, as `oras push` and `ferry bundle --add-file` store them)
//! written back out under their titles, each checked against its digest as it is copied.

use std::path::{Path, PathBuf};

use super::{ANNOTATION_TITLE, Kind, kind_of_entry};
use crate::fsutil::{AtomicFile, check_replaceable};
use crate::manifest::Manifest;
use crate::store::{BundleSource, StoreError};

/// One file written (or found there already with the same content).
#[derive(Debug, Clone)]
pub struct ExportedFile {
    /// The artifact's reference.
    pub reference: String,
    /// The file's title, its name in DIR.
    pub title: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
}

/// Why the files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportFilesError {
    /// Reading the bundle or writing a file failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A title that cannot be a file name in DIR.
    #[error(
        "{reference}: the title {title} cannot be a file name (no /, no leading dot, printable)"
    )]
    BadTitle {
        /// The artifact.
        reference: String,
        /// The title (escaped).
        title: String,
    },
    /// Two artifacts title different files alike.
    #[error("{title} is the title of files in both {first} and {second}")]
    Clash {
        /// The title.
        title: String,
        /// One artifact.
        first: String,
        /// The other.
        second: String,
    },
}

impl crate::error::Diagnostic for ExportFilesError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            ExportFilesError::Store(e) => e.kind(),
            ExportFilesError::BadTitle { .. } | ExportFilesError::Clash { .. } => {
                crate::error::Kind::Corrupt
            }
        }
    }
}

/// A title that is a plain file name: no path, not hidden, printable, at most 255 bytes.
fn safe_title(title: &str) -> bool {
    !title.is_empty()
        && title.len() <= 255
        && !title.starts_with('.')
        && !title.contains(['/', '\\'])
        && !title.chars().any(char::is_control)
}

/// Writes every titled file of the bundle's artifacts into `dir` (created if absent).
pub fn export_files(
    source: &dyn BundleSource,
    dir: &Path,
) -> Result<Vec<ExportedFile>, ExportFilesError> {
    let mut planned: Vec<(ExportedFile, crate::digest::Digest)> = Vec::new();
    for entry in source.index()?.entries() {
        let Some(reference) = entry.name.clone() else {
            continue;
        };
        if !matches!(kind_of_entry(source, &entry), Kind::Artifact(_)) {
            continue;
        }
        let digest = crate::manifest::descriptor_digest(&entry.descriptor).map_err(|e| {
            StoreError::Corrupt {
                path: "index.json".into(),
                reason: e.to_string(),
            }
        })?;
        let bytes = source.read_blob(&digest)?;
        let Ok((Manifest::Image(image), _)) = Manifest::parse(&bytes, None) else {
            continue;
        };
        for layer in image.layers() {
            let Some(title) = layer
                .annotations()
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_TITLE))
            else {
                continue;
            };
            if !safe_title(title) {
                return Err(ExportFilesError::BadTitle {
                    reference,
                    title: crate::untrusted::shown(title),
                });
            }
            let layer_digest =
                crate::manifest::descriptor_digest(layer).map_err(|e| StoreError::Corrupt {
                    path: digest.to_string().into(),
                    reason: e.to_string(),
                })?;
            if let Some((other, d)) = planned.iter().find(|(f, _)| f.title == *title) {
                if *d == layer_digest {
                    continue;
                }
                return Err(ExportFilesError::Clash {
                    title: title.clone(),
                    first: other.reference.clone(),
                    second: reference,
                });
            }
            planned.push((
                ExportedFile {
                    reference: reference.clone(),
                    title: title.clone(),
                    path: dir.join(title),
                    size: layer.size(),
                },
                layer_digest,
            ));
        }
    }
    if !planned.is_empty() {
        std::fs::create_dir_all(dir).map_err(StoreError::io("create", dir))?;
    }
    for (file, digest) in &planned {
        check_replaceable(&file.path).map_err(StoreError::from)?;
        let blob = source.open_blob(digest, Some(file.size))?;
        let mut out = AtomicFile::create(&file.path, dir, 0o644).map_err(StoreError::from)?;
        let mut reader = blob
            .reader()
            .map_err(StoreError::io("read", source.path()))?;
        std::io::copy(&mut reader, &mut out).map_err(StoreError::io("write", &file.path))?;
        out.commit().map_err(StoreError::from)?;
    }
    Ok(planned.into_iter().map(|(f, _)| f).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_must_be_plain_names() {
        assert!(safe_title("model.bin"));
        for bad in ["", "../x", "a/b", ".hidden", "a\nb", "..", "a\\b"] {
            assert!(!safe_title(bad), "{bad:?}");
        }
    }
}
