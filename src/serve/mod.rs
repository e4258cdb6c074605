//! `ferry serve`: a bundle (a folder, a read-only mount, or an uncompressed oci-archive) as a
//! read-only registry speaking the pull side of the OCI distribution API, so nodes can pull
//! the bundle's original names from it (containerd's hosts.toml, CRI-O's registries.conf).
//!
//! Blobs are served only when a repository's images reach them, never through a symlink, with
//! their size checked and their content re-hashed: a whole-blob GET streams through the hash
//! and is cut before its last chunk when the content is wrong; a Range request is served only
//! from a blob verified whole since its file last changed, and cut when the file changes.
//! Bundles are read through [`crate::store::source`]: a folder, a `.tar` or a `.tar.zst`.

mod body;
mod bundle_files;
pub mod catalog;
pub mod node;
mod routes;
mod server;

use std::time::Duration;

pub use crate::store::source::{BundleSource, open};
pub use catalog::{Catalog, host_component};
pub use routes::State;
pub use server::{Bound, Listen, ServeError, Tls, bind, serve};

use crate::digest::Digest;

/// What the server tells its caller.
#[derive(Debug, Clone)]
pub enum Event {
    /// Listening.
    Listening {
        /// The address bound (the port chosen when 0 was asked for).
        addr: std::net::SocketAddr,
    },
    /// A request was answered (emitted when its body ended or was cut).
    Request {
        /// GET, HEAD...
        method: String,
        /// The path, without the query string.
        path: String,
        /// The status sent.
        status: u16,
        /// Body bytes sent.
        bytes: u64,
        /// Whether the body was sent whole.
        complete: bool,
        /// From the request to the body's end.
        elapsed: Duration,
    },
    /// A blob was found wrong (corrupt, a symlink, the wrong size) and is not served.
    BlobRefused {
        /// The blob.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// A connection failed (TLS handshake, protocol error).
    ConnectionError {
        /// What happened.
        reason: String,
    },
}

/// Receives the server's events; only the CLI prints them.
pub trait Reporter: Send + Sync {
    /// Called for every event.
    fn event(&self, event: &Event);
}
