//! Bundles as files: an oci-archive (`.tar`, `.tar.zst`), a docker-archive, an ext4 image.

mod archive;
pub mod ext4;
pub mod tarball;

pub use archive::{docker_archive, oci_archive};

use crate::store::StoreError;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The bundle cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bundle is not complete enough to export.
    #[error("{0}")]
    Incomplete(String),
    /// Writing the output failed.
    #[error("cannot write {0}: {1}")]
    Io(String, std::io::Error),
    /// An external tool (mkfs.ext4, e2fsck) failed.
    #[error("{0}")]
    Tool(String),
    /// A bad option.
    #[error("{0}")]
    Usage(String),
}
