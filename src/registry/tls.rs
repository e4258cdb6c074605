//! TLS trust per registry: the system roots, `--ca-file`, and the per-registry folders users
//! already have (`/etc/containers/certs.d/HOST:PORT/`, `/etc/docker/certs.d/HOST:PORT/`) with
//! CA certificates (`*.crt`) and client certificates for mutual TLS (`*.cert` + `*.key`).

use std::path::{Path, PathBuf};

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

/// Reads the `--ca-file` certificates.
pub(crate) fn ca_certificates(options: &TlsOptions) -> Result<Vec<reqwest::Certificate>, String> {
    let mut out = Vec::new();
    for path in &options.ca_files {
        let pem = read(path)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--ca-file {}: not PEM certificates: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--ca-file {}: no certificate in it",
                path.display()
            ));
        }
        out.extend(certs);
    }
    Ok(out)
}

/// Applies a registry's certs.d material to a client builder.
pub(crate) fn apply(
    mut builder: reqwest::ClientBuilder,
    tls: &HostTls,
) -> Result<reqwest::ClientBuilder, String> {
    for (path, pem) in &tls.roots {
        for cert in reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some((path, pem)) = &tls.identity {
        let identity = reqwest::Identity::from_pem(pem)
            .map_err(|e| format!("{}: not a PEM certificate and key: {e}", path.display()))?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}
