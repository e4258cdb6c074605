//! TLS trust per registry: the system roots, `--ca-file`, and the per-registry folders users
//! already have (`/etc/containers/certs.d/HOST:PORT/`, `/etc/docker/certs.d/HOST:PORT/`) with
//! CA certificates (`*.crt`) and client certificates for mutual TLS (`*.cert` + `*.key`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::CertificateError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::pinned::PinnedOrChain;

/// Where TLS material comes from.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Extra CA certificates (PEM) trusted for every registry.
    pub ca_files: Vec<PathBuf>,
    /// Folders holding one `HOST[:PORT]` folder per registry.
    pub cert_dirs: Vec<PathBuf>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        let mut cert_dirs = vec![
            PathBuf::from("/etc/containers/certs.d"),
            PathBuf::from("/etc/docker/certs.d"),
        ];
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            cert_dirs.push(PathBuf::from(home).join(".config/containers/certs.d"));
        }
        TlsOptions {
            ca_files: Vec::new(),
            cert_dirs,
        }
    }
}

/// The TLS material for one registry.
#[derive(Default)]
pub(crate) struct HostTls {
    /// The folders it came from (for messages).
    pub dirs: Vec<PathBuf>,
    /// CA certificates (PEM files' contents).
    pub roots: Vec<(PathBuf, Vec<u8>)>,
    /// A client certificate and key (PEM), concatenated.
    pub identity: Option<(PathBuf, Vec<u8>)>,
}

impl HostTls {
    /// True when the registry needs a client of its own.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.identity.is_none()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Collects the certs.d material for `registry` (`host:port` as written in references).
pub(crate) fn host_tls(options: &TlsOptions, registry: &str) -> Result<HostTls, String> {
    let mut out = HostTls::default();
    for root in &options.cert_dirs {
        let dir = root.join(registry);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in &files {
            match f.extension().and_then(|e| e.to_str()) {
                Some("crt") => out.roots.push((f.clone(), read(f)?)),
                Some("cert") => {
                    let key = f.with_extension("key");
                    if !key.exists() {
                        return Err(format!("{} has no matching {}", f.display(), key.display()));
                    }
                    let mut pem = read(f)?;
                    pem.push(b'\n');
                    pem.extend(read(&key)?);
                    out.identity = Some((f.clone(), pem));
                }
                Some("key") if !f.with_extension("cert").exists() => {
                    return Err(format!(
                        "{} has no matching {}",
                        f.display(),
                        f.with_extension("cert").display()
                    ));
                }
                _ => {}
            }
        }
        out.dirs.push(dir);
    }
    Ok(out)
}

/// The certificates in a PEM file's contents (`what` names it in messages).
fn pem_certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate in it"));
    }
    Ok(certs)
}

/// Reads the `--ca-file` certificates.
pub(crate) fn ca_certificates(
    options: &TlsOptions,
) -> Result<Vec<CertificateDer<'static>>, super::SetupError> {
    let mut out = Vec::new();
    for path in &options.ca_files {
        let pem = std::fs::read(path).map_err(|source| super::SetupError::ReadCaFile {
            path: path.clone(),
            source,
        })?;
        out.extend(
            pem_certificates(&pem, &format!("--ca-file {}", path.display()))
                .map_err(super::SetupError::BadCaFile)?,
        );
    }
    Ok(out)
}

/// The rustls crypto provider: the process default when the program installed one, else ring,
/// installed as the default. reqwest is built without a provider of its own
/// (`rustls-no-provider`: its default, aws-lc-rs, spends tens of milliseconds of CPU gathering
/// entropy at every start), so its own TLS setup (`--insecure-registry`) takes the default.
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    if let Some(provider) = rustls::crypto::CryptoProvider::get_default() {
        return provider.clone();
    }
    // Another thread may install one first: whichever is installed is used.
    let _ = rustls::crypto::ring::default_provider().install_default();
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Sets up TLS on a client builder: the system roots, `global` (`--ca-file`) and the registry's
/// certs.d material; a certificate given there is also trusted as the server's own certificate
/// (see `pinned`). `insecure` skips verification (`--insecure-registry`).
pub(crate) fn configure(
    builder: reqwest::ClientBuilder,
    global: &[CertificateDer<'static>],
    host: &HostTls,
    insecure: bool,
) -> Result<reqwest::ClientBuilder, String> {
    // First: reqwest's own TLS setup (the insecure branch) takes the default it installs.
    let provider = crypto_provider();
    let mut roots = global.to_vec();
    for (path, pem) in &host.roots {
        roots.extend(pem_certificates(pem, &path.display().to_string())?);
    }
    if insecure {
        let mut builder = builder.tls_danger_accept_invalid_certs(true);
        if let Some((path, pem)) = &host.identity {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| format!("{}: not a PEM certificate and key: {e}", path.display()))?;
            builder = builder.identity(identity);
        }
        return Ok(builder);
    }
    let chain = if roots.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots.clone(), provider.clone())
    }
    .map_err(|e| format!("cannot load the system's CA certificates: {e}"))?;
    let verifier = PinnedOrChain::new(Arc::new(chain), roots);
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match &host.identity {
        None => config.with_no_client_auth(),
        Some((path, pem)) => {
            let bad = |e: String| format!("{}: not a PEM certificate and key: {e}", path.display());
            let certs = pem_certificates(pem, &path.display().to_string())?;
            let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| bad(e.to_string()))?;
            config
                .with_client_auth_cert(certs, key)
                .map_err(|e| bad(e.to_string()))?
        }
    };
    // What reqwest offers when it sets TLS up itself (HTTP/2 and HTTP/1.1).
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(builder.tls_backend_preconfigured(config))
}

/// Why a server's certificate was refused, as far as the user can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertProblem {
    /// It does not name the host ferry connected to.
    Name,
    /// Expired or not yet valid.
    Time,
    /// Not signed by anything trusted (or another chain problem).
    Trust,
}

/// The certificate problem behind a reqwest error, if it is one.
pub(crate) fn cert_problem(e: &reqwest::Error) -> Option<CertProblem> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(mut s) = source {
        source = s.source();
        // tokio-rustls wraps rustls's error in io::Errors (nested), whose source() skips it.
        while let Some(inner) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            s = inner;
        }
        if let Some(rustls::Error::InvalidCertificate(c)) = s.downcast_ref() {
            return Some(match c {
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => CertProblem::Name,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => CertProblem::Time,
                _ => CertProblem::Trust,
            });
        }
    }
    None
}
