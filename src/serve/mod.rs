//! `ferry serve`: a bundle (a folder, a read-only mount, or an uncompressed oci-archive) as a
//! read-only registry speaking the pull side of the OCI distribution API, so nodes can pull
//! the bundle's original names from it (containerd's hosts.toml, CRI-O's registries.conf).
//!
//! Blobs are served only when a repository's images reach them, never through a symlink, with
//! their size checked and their content re-hashed: a whole-blob GET streams through the hash
//! and is cut before its last chunk when the content is wrong; a Range request is served only
//! from a blob verified whole since its file last changed, and cut when the file changes.
//! Bundles are read through [`crate::store::source`]: a folder, a `.tar` or a `.tar.zst`.
//!
//! For a fleet: no thread per download (blob chunks are read on a small bounded pool, one
//! chunk at a time per download), a cap on connections, header and idle timeouts, and the
//! bundle reloaded whole when `ferry apply` or `ferry bundle` changes it under the server.

mod blobs;
mod body;
mod buffers;
mod bundle_files;
pub mod catalog;
mod conn;
mod live;
mod logged;
pub mod node;
mod pool;
mod range;
mod routes;
mod server;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use crate::store::source::{BundleSource, open};
pub use body::Pool;
pub use catalog::{Catalog, host_component};
pub use conn::Limits;
pub use live::{Live, Snapshot};
pub use routes::State;
pub use server::{Bound, Listen, ServeError, Tls, bind, fit_connections, serve};

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
        /// How the body ended.
        outcome: Outcome,
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
    /// A connection failed (TLS handshake, protocol error, the client went away).
    ConnectionError {
        /// What happened.
        reason: String,
    },
    /// Serve closed a connection: a client too slow with its request headers or its TLS
    /// handshake, or one on which nothing moved for the idle timeout.
    ConnectionClosed {
        /// The client.
        peer: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Every connection slot is taken: new connections wait in the listen queue (said at
    /// most once a minute).
    ConnectionsFull {
        /// The cap.
        max: usize,
    },
    /// The bundle changed on disk; it is served as it is now.
    Reloaded {
        /// Repositories served.
        repositories: usize,
        /// Tags served.
        tags: usize,
        /// Images not served, with why.
        not_served: Vec<String>,
    },
    /// The bundle changed on disk but could not be read; the previous state is still served.
    ReloadFailed {
        /// Why.
        reason: String,
    },
}

/// How a response body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent whole.
    Complete,
    /// The client went away before the end.
    CutByClient,
    /// Serve cut it: why (a blob found wrong or changed, a read error, an idle connection).
    CutByServe(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Complete => f.write_str("complete"),
            Outcome::CutByClient => f.write_str("cut by the client"),
            Outcome::CutByServe(why) => write!(f, "cut by serve ({why})"),
        }
    }
}

/// Receives the server's events; only the CLI prints them.
pub trait Reporter: Send + Sync {
    /// Called for every event.
    fn event(&self, event: &Event);
}
