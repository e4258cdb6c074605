//! Options for every command that talks to registries: credentials, TLS, mirrors, retries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use ferry::credentials::{CredentialFiles, CredentialSource};
use ferry::registry::{ClientOptions, Mirrors, Registries, RetryPolicy, TlsOptions};
use ferry::report::Reporter;

/// Where registries are and how to reach them.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Allow plain HTTP or unverified TLS for this registry (`host[:port]`; repeatable).
    /// Loopback registries fall back to HTTP without it.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,

    /// Read credentials from this file only: docker's config.json, podman's auth.json, or a
    /// Kubernetes kubernetes.io/dockerconfigjson Secret (JSON or YAML).
    #[arg(long, value_name = "PATH", env = "FERRY_AUTHFILE")]
    pub authfile: Option<PathBuf>,

    /// Trust this CA certificate (PEM) for every registry (repeatable).
    #[arg(long = "ca-file", value_name = "PATH")]
    pub ca_files: Vec<PathBuf>,

    /// Also look for per-registry TLS folders (DIR/HOST:PORT/ca.crt, client.cert, client.key)
    /// here, after /etc/containers/certs.d and /etc/docker/certs.d (repeatable).
    #[arg(long = "cert-dir", value_name = "DIR")]
    pub cert_dirs: Vec<PathBuf>,

    /// Pull through a mirror first: `docker.io=mirror.example:5000` (repeatable, tried in
    /// order, falling back to the source). The bundle keeps the original names.
    #[arg(long = "mirror", value_name = "SOURCE=MIRROR")]
    pub mirrors: Vec<String>,

    /// A containers registries.conf whose [[registry.mirror]] entries to use. Default:
    /// $CONTAINERS_REGISTRIES_CONF, else /etc/containers/registries.conf when present.
    #[arg(long, value_name = "PATH")]
    pub registries_conf: Option<PathBuf>,

    /// Requests in flight to one registry at once.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs_per_registry: u16,

    /// Failed attempts in a row before a request gives up.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,

    /// Cut and retry a connection that delivers no bytes for this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,

    /// Give up on everything still running after this long (e.g. `2h`). Default: no limit.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
}

impl RegistryArgs {
    /// The mirrors from --mirror and the registries.conf in force.
    fn mirrors(&self) -> Result<Mirrors, String> {
        let mut m = Mirrors::default();
        for spec in &self.mirrors {
            m.add_flag(spec).map_err(|e| e.to_string())?;
        }
        let conf = self.registries_conf.clone().or_else(|| {
            std::env::var_os("CONTAINERS_REGISTRIES_CONF")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        match conf {
            Some(path) => m.add_registries_conf(&path).map_err(|e| e.to_string())?,
            None => {
                let system = PathBuf::from("/etc/containers/registries.conf");
                if system.is_file() {
                    m.add_registries_conf(&system).map_err(|e| {
                        format!("{e}\nhint: pass --registries-conf with a valid file")
                    })?;
                }
            }
        }
        Ok(m)
    }

    /// The credential source: --authfile alone, or the usual files.
    pub fn credentials(&self) -> Result<Arc<dyn CredentialSource>, String> {
        Ok(Arc::new(
            CredentialFiles::new(self.authfile.clone()).map_err(|e| e.to_string())?,
        ))
    }

    /// A registry pool for these options.
    pub fn registries(&self, reporter: Arc<dyn Reporter>) -> Result<Registries, String> {
        let mut tls = TlsOptions {
            ca_files: self.ca_files.clone(),
            ..TlsOptions::default()
        };
        tls.cert_dirs.extend(self.cert_dirs.iter().cloned());
        let options = ClientOptions {
            insecure_registries: self.insecure_registries.clone(),
            connections_per_registry: self.jobs_per_registry.into(),
            retry: RetryPolicy {
                retries: self.retries,
                stall_timeout: self.stall_timeout,
                deadline: self.timeout.map(|t| Instant::now() + t),
                ..RetryPolicy::default()
            },
            tls,
            mirrors: self.mirrors()?,
        };
        Registries::new(options, self.credentials()?, reporter).map_err(|e| e.to_string())
    }
}
