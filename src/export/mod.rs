//! Bundles as files: an oci-archive (`.tar`, `.tar.zst`), a docker-archive, an ext4 image.
//!
//! Nothing in the bundle is trusted: every blob copied is opened without following links and
//! re-hashed on the way (a mismatch fails the export), outputs replace only regular files, and
//! a failed or interrupted export leaves no temp file behind.

mod archive;
mod checked;
pub mod ext4;
mod output;
pub mod tarball;
mod tree;

pub use archive::{ArchiveFormat, docker_archive, oci_archive};
pub(crate) use archive::{add_root_files, complete_images, write_oci_tar};
pub use output::Target;

use crate::store::StoreError;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The bundle cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blob of the bundle is missing, not a regular file, or not what its digest says.
    #[error("the bundle is damaged; nothing was written")]
    Blob(#[source] StoreError),
    /// The bundle is not complete enough to export.
    #[error("{0}")]
    Incomplete(String),
    /// Writing the output failed.
    #[error("cannot write {0}")]
    Io(String, #[source] std::io::Error),
    /// An external tool (mkfs.ext4, e2fsck) failed.
    #[error("{0}")]
    Tool(String),
    /// A bad option or output path (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Stopped by a signal; nothing was written.
    #[error("interrupted: no output was written")]
    Interrupted,
    /// Any of the above, with what to do about it.
    #[error("{error}")]
    Hinted {
        /// The error.
        error: Box<ExportError>,
        /// What to do.
        hint: String,
    },
}

impl ExportError {
    /// This error with `hint` as what to do about it.
    pub(crate) fn with_hint(self, hint: impl Into<String>) -> ExportError {
        ExportError::Hinted {
            error: Box::new(self),
            hint: hint.into(),
        }
    }
}

impl crate::error::Diagnostic for ExportError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            ExportError::Store(e) => e.kind(),
            ExportError::Blob(_) | ExportError::Incomplete(_) => Kind::Bundle,
            ExportError::Io(..) => Kind::Io,
            ExportError::Tool(_) => Kind::Failed,
            ExportError::Usage(_) => Kind::Usage,
            ExportError::Interrupted => Kind::Interrupted,
            ExportError::Hinted { error, .. } => error.kind(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ExportError::Store(e) => e.hint(),
            ExportError::Blob(_) => Some(
                "`ferry verify --repair BUNDLE` removes corrupt blobs and the ferry bundle \
                 command that made it fetches them again"
                    .into(),
            ),
            ExportError::Incomplete(_)
            | ExportError::Tool(_)
            | ExportError::Usage(_)
            | ExportError::Io(..)
            | ExportError::Interrupted => None,
            ExportError::Hinted { hint, .. } => Some(hint.clone()),
        }
    }
}
