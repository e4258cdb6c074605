//! Talking to registries (OCI distribution API) over reqwest.
//!
//! Why not oci-client: its partial blob pull accepts any 206 without checking Content-Range,
//! its errors drop `Retry-After`, and it offers no hook for stall detection or per-registry
//! connection limits. Those are the transfer rules ferry exists for, so this module speaks the
//! (small) pull side of the protocol itself: ping, token auth, manifests, blobs.

mod auth;
mod blob;
mod error;
mod host;
mod manifest;
mod retry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use auth::{Anonymous, Challenge, Credential, CredentialSource, parse_challenge, pull_scope};
pub use blob::{BlobBody, BlobStats};
pub use error::{ErrorKind, RegistryError, RegistryErrorDetails, redact};
pub use manifest::FetchedManifest;
pub use retry::{RetryPolicy, parse_retry_after};

use host::Host;
pub use host::Retrier;

use crate::report::Reporter;

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (`host[:port]`) that may be reached over plain HTTP or unverified TLS.
    pub insecure_registries: Vec<String>,
    /// Requests in flight to one registry at most.
    pub connections_per_registry: usize,
    /// Retries, backoff, stall and attempt timeouts.
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            connections_per_registry: 6,
            retry: RetryPolicy::default(),
        }
    }
}

/// A pool of registry connections, one [`Host`] per registry, shared by all images of a run.
pub struct Registries {
    options: ClientOptions,
    verified: reqwest::Client,
    unverified: reqwest::Client,
    credentials: Arc<dyn CredentialSource>,
    reporter: Arc<dyn Reporter>,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

impl Registries {
    /// A pool with the given options, credential source and event sink.
    pub fn new(
        options: ClientOptions,
        credentials: Arc<dyn CredentialSource>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Registries, RegistryError> {
        let build = |accept_invalid: bool| {
            reqwest::Client::builder()
                .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(30))
                // reqwest drops Authorization when a redirect leaves the host (object storage).
                .redirect(reqwest::redirect::Policy::limited(10))
                .pool_idle_timeout(Duration::from_secs(60))
                .tcp_nodelay(true)
                .http2_adaptive_window(true)
                .tls_danger_accept_invalid_certs(accept_invalid)
                .build()
                .map_err(|e| {
                    RegistryError::new(
                        ErrorKind::Transport,
                        "-",
                        "-",
                        format!("cannot set up HTTP: {e}"),
                    )
                })
        };
        Ok(Registries {
            verified: build(false)?,
            unverified: build(true)?,
            options,
            credentials,
            reporter,
            hosts: Mutex::new(HashMap::new()),
        })
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.options.retry
    }

    fn host(&self, registry: &str) -> Arc<Host> {
        let mut hosts = self.hosts.lock().expect("host map lock");
        hosts
            .entry(registry.to_owned())
            .or_insert_with(|| {
                let insecure = self.options.insecure_registries.iter().any(|h| {
                    h.eq_ignore_ascii_case(registry)
                        || h.eq_ignore_ascii_case(host::strip_port(registry))
                });
                Arc::new(Host::new(
                    registry,
                    insecure,
                    self.options.connections_per_registry,
                ))
            })
            .clone()
    }
}
