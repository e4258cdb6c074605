//! Registry credentials, found where docker, podman and skopeo users already keep them, and
//! never printed.
//!
//! Lookup order, as containers/image does it: `--authfile` alone when given; otherwise
//! `$REGISTRY_AUTH_FILE` (or `$XDG_RUNTIME_DIR/containers/auth.json`),
//! `~/.config/containers/auth.json`, then `$DOCKER_CONFIG/config.json` (or
//! `~/.docker/config.json`). In each file the most specific key wins
//! (`registry/namespace/repo`, then `registry/namespace`, then `registry`); `credHelpers` and
//! `credsStore` run `docker-credential-*` helpers.

mod files;
mod helper;
pub mod login;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

pub use files::{AuthFile, default_auth_files};

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or access token used as a password).
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in docker's config.json).
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ****)"),
            Credential::IdentityToken(_) => write!(f, "IdentityToken(****)"),
        }
    }
}

/// Why credentials could not be read (as opposed to there being none).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", crate::error::split_hint(.0).0)]
pub struct CredentialError(pub String);

impl crate::error::Diagnostic for CredentialError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Credentials
    }

    fn hint(&self) -> Option<String> {
        crate::error::split_hint(&self.0).1.map(str::to_owned)
    }
}

/// Where credentials come from.
pub trait CredentialSource: Send + Sync {
    /// Credentials for `repository` on `registry` (`docker.io`, `host:5000`), if any are set.
    fn credential(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError>;
}

/// No credentials at all: anonymous access only.
#[derive(Debug, Default, Clone, Copy)]
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn credential(&self, _: &str, _: &str) -> Result<Option<Credential>, CredentialError> {
        Ok(None)
    }
}

/// The key docker uses for a registry in config.json and with helpers (Docker Hub has a
/// historical one).
pub fn docker_key(registry: &str) -> String {
    if crate::docker_hub::is_docker_hub(registry) {
        crate::docker_hub::CREDENTIAL_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

/// Credentials from the usual files, looked up once per (registry, repository) and cached, so
/// that a credential helper runs once per run, not once per blob.
pub struct CredentialFiles {
    files: Vec<AuthFile>,
    cache: Mutex<HashMap<(String, String), Option<Credential>>>,
}

impl CredentialFiles {
    /// `authfile` alone when given, else the default files that exist.
    pub fn new(authfile: Option<PathBuf>) -> Result<CredentialFiles, CredentialError> {
        let files = match authfile {
            Some(path) => vec![AuthFile::load(&path)?.ok_or_else(|| {
                CredentialError(format!("--authfile {}: no such file", path.display()))
            })?],
            None => {
                let mut files = Vec::new();
                for path in default_auth_files() {
                    if let Some(f) = AuthFile::load(&path)? {
                        files.push(f);
                    }
                }
                files
            }
        };
        Ok(CredentialFiles {
            files,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The files in use, in lookup order (for messages).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }
}

impl CredentialSource for CredentialFiles {
    fn credential(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let key = (registry.to_owned(), repository.to_owned());
        if let Some(c) = self.cache.lock().expect("credential cache lock").get(&key) {
            return Ok(c.clone());
        }
        let mut found = None;
        for f in &self.files {
            if let Some(c) = f.lookup(registry, repository)? {
                found = Some(c);
                break;
            }
        }
        self.cache
            .lock()
            .expect("credential cache lock")
            .insert(key, found.clone());
        Ok(found)
    }
}
