//! A Kubernetes API client as kubectl would configure it: the user's kubeconfig when there is
//! one, else the in-cluster service account (`--from-cluster` and `ferry snapshot` share it).

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where the service account's files are mounted in a pod (overridable for tests).
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Why no client could be configured.
#[derive(Debug, thiserror::Error)]
pub enum KubeConfigError {
    /// The kubeconfig exists but cannot be used.
    #[error("cannot use the kubeconfig: {0}")]
    Kubeconfig(String),
    /// Neither a kubeconfig nor a pod's service account.
    #[error("no kubeconfig and not running in a pod")]
    Nothing,
    /// The in-cluster environment is malformed.
    #[error("KUBERNETES_SERVICE_HOST/PORT do not make a URL: {0}")]
    InCluster(String),
    /// The client could not be built from the configuration.
    #[error("cannot set up the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// The client configuration, and the namespace it defaults to.
pub async fn config() -> Result<kube::Config, KubeConfigError> {
    let kubeconfig_present = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || std::env::var_os("HOME")
            .is_some_and(|h| PathBuf::from(h).join(".kube/config").is_file());
    if kubeconfig_present {
        let kc = Kubeconfig::read().map_err(|e| KubeConfigError::Kubeconfig(e.to_string()))?;
        return kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|e| KubeConfigError::Kubeconfig(e.to_string()));
    }
    let host = std::env::var("KUBERNETES_SERVICE_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .ok_or(KubeConfigError::Nothing)?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let dir = std::env::var_os("FERRY_SERVICEACCOUNT_DIR")
        .map_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR), PathBuf::from);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("https://{host}:{port}")
        .parse()
        .map_err(|e| KubeConfigError::InCluster(format!("{e}")))?;
    let mut config = kube::Config::new(url);
    config.root_cert_file = Some(dir.join("ca.crt"));
    config.auth_info.token_file = Some(dir.join("token").to_string_lossy().into_owned());
    if let Ok(ns) = std::fs::read_to_string(dir.join("namespace")) {
        config.default_namespace = ns.trim().to_owned();
    }
    Ok(config)
}

/// A client for the configuration [`config`] finds.
pub async fn client() -> Result<kube::Client, KubeConfigError> {
    kube::Client::try_from(config().await?).map_err(KubeConfigError::Client)
}

impl crate::error::Diagnostic for KubeConfigError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            KubeConfigError::Client(_) => crate::error::Kind::Failed,
            _ => crate::error::Kind::Configuration,
        }
    }

    fn hint(&self) -> Option<String> {
        matches!(self, KubeConfigError::Nothing)
            .then(|| "set KUBECONFIG, or run ferry in the cluster with a service account".into())
    }
}
