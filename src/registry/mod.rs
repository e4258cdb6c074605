//! Talking to registries (OCI distribution API) over reqwest.
//!
//! Why not oci-client: its partial blob pull accepts any 206 without checking Content-Range,
//! its errors drop `Retry-After`, and it offers no hook for stall detection, per-registry
//! connection limits, per-registry TLS or mirrors. Those are the transfer rules ferry exists
//! for, so this module speaks the (small) pull side of the protocol itself: ping, token auth,
//! manifests, blobs.

mod auth;
mod blob;
mod error;
mod host;
mod limits;
mod manifest;
mod mirrors;
mod pace;
mod pinned;
mod referrers;
mod request;
mod retry;
mod tls;
mod upload;
mod upload_blob;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::redact::redact;
pub use auth::{Challenge, parse_challenge, pull_scope, push_scope};
pub use blob::{BlobBody, BlobStats, PartAnswer};
pub use error::{ErrorKind, Missing, RegistryError, RegistryErrorDetails};
pub use host::is_loopback;
pub use manifest::FetchedManifest;
pub use mirrors::{Mirror, MirrorError, MirrorRule, Mirrors, Remote, Tried};
pub use retry::{Retrier, RetryPolicy, parse_retry_after};
pub use tls::TlsOptions;
pub(crate) use tls::cert_problem;
pub use upload::{BlobOutcome, BlobSource, UploadError};

use host::Host;

use crate::credentials::CredentialSource;
use crate::reference::ImageRef;
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
    /// CA files and certs.d folders.
    pub tls: TlsOptions,
    /// Pull mirrors.
    pub mirrors: Mirrors,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            connections_per_registry: 6,
            retry: RetryPolicy::default(),
            tls: TlsOptions::default(),
            mirrors: Mirrors::default(),
        }
    }
}

/// A pool of registry connections, one [`Host`] per registry, shared by all images of a run.
pub struct Registries {
    options: ClientOptions,
    verified: reqwest::Client,
    unverified: reqwest::Client,
    ca_certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// `--insecure-registry` hosts and the mirrors registries.conf marks insecure.
    insecure: Vec<String>,
    credentials: Arc<dyn CredentialSource>,
    reporter: Arc<dyn Reporter>,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    /// Clients for token realms, by realm host: they never follow a redirect to another host
    /// (a 307 re-sends the POST body, which can hold a refresh token).
    token_clients: Mutex<HashMap<String, reqwest::Client>>,
    /// Retries made so far, over every request.
    retries: std::sync::atomic::AtomicU32,
}

/// The client settings every registry shares; TLS is set by `tls::configure`.
fn client_builder(connections: usize) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        // No more idle sockets than requests allowed in flight to one registry.
        .pool_max_idle_per_host(connections)
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // reqwest drops Authorization when a redirect leaves the host (object storage).
        .redirect(reqwest::redirect::Policy::limited(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .http2_adaptive_window(true)
}

/// A client for reads beside the distribution API (a served bundle's index and lock), with the
/// registry clients' settings and TLS; `insecure` skips certificate verification.
pub fn plain_client(insecure: bool) -> Result<reqwest::Client, SetupError> {
    tls::configure(client_builder(2), &[], &tls::HostTls::default(), insecure)
        .map_err(SetupError::Client)?
        .build()
        .map_err(|e| SetupError::Client(e.to_string()))
}

/// Why a registry pool could not be set up: local configuration (a `--ca-file` that cannot be
/// read or holds no certificate), or the system's TLS setup.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A `--ca-file` could not be read.
    #[error("cannot read --ca-file {}", path.display())]
    ReadCaFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A `--ca-file` holds no usable PEM certificate.
    #[error("{0}")]
    BadCaFile(String),
    /// The TLS or HTTP client could not be built.
    #[error("cannot set up HTTPS: {0}")]
    Client(String),
}

impl crate::error::Diagnostic for SetupError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            SetupError::ReadCaFile { .. } | SetupError::BadCaFile(_) => {
                crate::error::Kind::Configuration
            }
            SetupError::Client(_) => crate::error::Kind::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SetupError::ReadCaFile { .. } => {
                Some("check the path; --ca-file takes a readable PEM file".into())
            }
            SetupError::BadCaFile(_) => Some(
                "--ca-file takes a PEM file of CA certificates (`-----BEGIN CERTIFICATE-----`)"
                    .into(),
            ),
            SetupError::Client(_) => None,
        }
    }
}

impl Registries {
    /// A pool with the given options, credential source and event sink.
    pub fn new(
        options: ClientOptions,
        credentials: Arc<dyn CredentialSource>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Registries, SetupError> {
        let ca = tls::ca_certificates(&options.tls)?;
        let build = |insecure| {
            tls::configure(
                client_builder(options.connections_per_registry),
                &ca,
                &tls::HostTls::default(),
                insecure,
            )
            .map_err(SetupError::Client)?
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))
        };
        Ok(Registries {
            verified: build(false)?,
            unverified: build(true)?,
            ca_certificates: ca,
            insecure: options
                .insecure_registries
                .iter()
                .cloned()
                .chain(options.mirrors.insecure_hosts())
                .collect(),
            options,
            credentials,
            reporter,
            hosts: Mutex::new(HashMap::new()),
            token_clients: Mutex::new(HashMap::new()),
            retries: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// Tells a missing repository from a missing tag: distribution answers a manifest GET in a
    /// repository it does not know with `MANIFEST_UNKNOWN`, as for a missing tag, but its tag
    /// list with `NAME_UNKNOWN`. Asked only once a tag is known to be missing.
    pub async fn explain_not_found(&self, e: RegistryError) -> RegistryError {
        let Some((Missing::Tag(_), repository)) = e.missing.clone() else {
            return e;
        };
        let Ok(host) = self.host(&e.registry) else {
            return e;
        };
        let path = format!("v2/{repository}/tags/list?n=1");
        let asked = match self.url(&host, &path).await {
            Ok(url) => {
                let request =
                    request::Request::pull(url, &repository).limit(host::Host::pull_limit(self, 1));
                host.execute(self, request).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        match asked {
            Err(list) if matches!(list.missing, Some((Missing::Repository, _))) => {
                // Both answers: the manifest's, then the tag list's that tells them apart.
                let detail = format!("{}; {}", e.detail, list.detail);
                e.with_detail(detail)
                    .with_missing(Missing::Repository, &repository)
                    .with_hint_opt(list.hint.clone())
            }
            _ => e,
        }
    }

    /// Retries made so far over all requests (manifests, configs, blobs).
    pub fn retries(&self) -> u32 {
        self.retries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where to fetch `image` from: its mirrors, then its own registry.
    pub fn remotes(&self, image: &ImageRef) -> Vec<Remote> {
        self.options.mirrors.remotes(image)
    }

    /// A plain HTTP client with the registries' settings (CA files, user agent, timeouts,
    /// redirects), unverified TLS when `host` is named insecure: for what is not a registry
    /// but is reached like one (a classic Helm chart repository).
    pub fn http_client(&self, host: &str) -> reqwest::Client {
        if self.is_insecure(host) {
            self.unverified.clone()
        } else {
            self.verified.clone()
        }
    }

    /// The credential set for `repository` on `registry` (`--user`, credential files), if any.
    pub fn credential(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<crate::credentials::Credential>, crate::credentials::CredentialError> {
        self.credentials.credential(registry, repository)
    }

    fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.iter().any(|h| {
            h.eq_ignore_ascii_case(registry) || h.eq_ignore_ascii_case(host::strip_port(registry))
        })
    }

    /// The client for a token realm on `realm_host`: TLS as that host's own settings say
    /// (`--insecure-registry`, certs.d), redirects followed only within that host.
    fn token_client(&self, realm_host: &str) -> Result<reqwest::Client, RegistryError> {
        let mut clients = self.token_clients.lock().expect("token client lock");
        if let Some(c) = clients.get(realm_host) {
            return Ok(c.clone());
        }
        let same_host_only = reqwest::redirect::Policy::custom(|attempt| {
            let same = attempt.previous().last().is_none_or(|prev| {
                prev.host_str() == attempt.url().host_str()
                    && prev.port_or_known_default() == attempt.url().port_or_known_default()
            });
            if same && attempt.previous().len() < 5 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let material = tls::host_tls(&self.options.tls, realm_host)
            .map_err(|e| RegistryError::new(ErrorKind::Protocol, realm_host, "-", e))?;
        let builder = client_builder(1).redirect(same_host_only);
        let client = tls::configure(
            builder,
            &self.ca_certificates,
            &material,
            self.is_insecure(realm_host),
        )
        .map_err(|e| RegistryError::new(ErrorKind::Protocol, realm_host, "-", e))?
        .build()
        .map_err(|e| {
            RegistryError::new(
                ErrorKind::Protocol,
                realm_host,
                "-",
                format!("cannot set up HTTP: {e}"),
            )
        })?;
        clients.insert(realm_host.to_owned(), client.clone());
        Ok(client)
    }

    /// The connection state of a registry, made on first use (with its own client when it has
    /// certs.d material).
    fn host(&self, registry: &str) -> Result<Arc<Host>, RegistryError> {
        let mut hosts = self.hosts.lock().expect("host map lock");
        if let Some(h) = hosts.get(registry) {
            return Ok(h.clone());
        }
        let insecure = self.is_insecure(registry);
        let material = tls::host_tls(&self.options.tls, registry)
            .map_err(|e| RegistryError::new(ErrorKind::Protocol, registry, "-", e))?;
        let own_client = if material.is_empty() {
            None
        } else {
            let builder = tls::configure(
                client_builder(self.options.connections_per_registry),
                &self.ca_certificates,
                &material,
                insecure,
            )
            .map_err(|e| RegistryError::new(ErrorKind::Protocol, registry, "-", e))?;
            Some(builder.build().map_err(|e| {
                RegistryError::new(
                    ErrorKind::Protocol,
                    registry,
                    "-",
                    format!("TLS setup from {:?}: {e}", material.dirs),
                )
            })?)
        };
        let mut trusted: Vec<String> = self
            .options
            .tls
            .ca_files
            .iter()
            .map(|f| format!("--ca-file {}", f.display()))
            .collect();
        trusted.extend(material.roots.iter().map(|(p, _)| p.display().to_string()));
        let h = Arc::new(Host::new(
            registry,
            insecure,
            self.options.connections_per_registry,
            own_client,
            trusted,
            self.credentials.clone(),
        ));
        hosts.insert(registry.to_owned(), h.clone());
        Ok(h)
    }
}
