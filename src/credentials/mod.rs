//! Registry credentials, found where docker, podman and skopeo users already keep them, and
//! never printed.
//!
//! Lookup order, as containers/image does it: `--creds` when given; `--authfile` alone when
//! given; otherwise [`default_auth_files`]: `$REGISTRY_AUTH_FILE` (or
//! `$XDG_RUNTIME_DIR/containers/auth.json`), `~/.config/containers/auth.json`, then
//! `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`). `ferry login` writes the first
//! of these. In each file the most specific key wins
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

/// A credential and where it came from (a file and its entry, or a helper): never the secret.
pub type Found = (Credential, String);

/// Why credentials could not be read (as opposed to there being none).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CredentialError {
    /// What went wrong (never a secret).
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl CredentialError {
    /// An error without a hint.
    pub fn new(message: impl Into<String>) -> CredentialError {
        CredentialError {
            message: message.into(),
            hint: None,
        }
    }

    /// This error with what to do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> CredentialError {
        self.hint = Some(hint.into());
        self
    }
}

impl crate::error::Diagnostic for CredentialError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Credentials
    }

    fn hint(&self) -> Option<String> {
        self.hint.clone()
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

    /// Where the credentials for `repository` on `registry` came from, or where none were
    /// found, as a clause for a 401's hint ("ferry sent the credentials from FILE"). Never
    /// the secret.
    fn origin(&self, registry: &str, repository: &str) -> String {
        let _ = (registry, repository);
        "ferry sent no credentials".into()
    }
}

/// No credentials at all: anonymous access only.
#[derive(Debug, Default, Clone, Copy)]
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn credential(&self, _: &str, _: &str) -> Result<Option<Credential>, CredentialError> {
        Ok(None)
    }
}

/// Credentials given on the command line (`--creds USER:PASS`), sent to every registry the
/// command contacts, ahead of any file.
pub struct Given {
    credential: Credential,
    flag: &'static str,
}

impl Given {
    /// `credential`, named `flag` (e.g. `--creds`) in messages.
    pub fn new(credential: Credential, flag: &'static str) -> Given {
        Given { credential, flag }
    }
}

impl CredentialSource for Given {
    fn credential(&self, _: &str, _: &str) -> Result<Option<Credential>, CredentialError> {
        Ok(Some(self.credential.clone()))
    }

    fn origin(&self, _: &str, _: &str) -> String {
        let user = match &self.credential {
            Credential::Basic { username, .. } => format!(" (user {username})"),
            Credential::IdentityToken(_) => String::new(),
        };
        format!("ferry sent the credentials given with {}{user}", self.flag)
    }
}

/// Every `auths` (or `credHelpers`) key that names `registry`, the one docker writes first:
/// Docker Hub is found under each of its spellings, as docker, podman and older tools wrote it.
pub fn entry_keys(registry: &str) -> Vec<String> {
    if crate::docker_hub::is_docker_hub(registry) {
        vec![
            crate::docker_hub::CREDENTIAL_KEY.to_owned(),
            crate::docker_hub::CREDENTIAL_KEY
                .trim_end_matches('/')
                .to_owned(),
            crate::docker_hub::REGISTRY.to_owned(),
            "index.docker.io".to_owned(),
            crate::docker_hub::API_HOST.to_owned(),
        ]
    } else {
        vec![registry.to_owned(), format!("https://{registry}")]
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
    /// The paths looked at (for "no credentials found" messages).
    searched: Vec<PathBuf>,
    /// Per (registry, repository): the credential and where it came from.
    cache: Mutex<HashMap<(String, String), Option<Found>>>,
}

impl CredentialFiles {
    /// `authfile` alone when given, else the default files that exist.
    pub fn new(authfile: Option<PathBuf>) -> Result<CredentialFiles, CredentialError> {
        let (files, searched) = match authfile {
            Some(path) => (
                vec![AuthFile::load(&path)?.ok_or_else(|| {
                    CredentialError::new(format!("--authfile {}: no such file", path.display()))
                })?],
                vec![path],
            ),
            None => {
                let searched = default_auth_files();
                let mut files = Vec::new();
                for path in &searched {
                    if let Some(f) = AuthFile::load(path)? {
                        files.push(f);
                    }
                }
                (files, searched)
            }
        };
        Ok(CredentialFiles {
            files,
            searched,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The files in use, in lookup order (for messages).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }
}

impl CredentialFiles {
    /// The first file's credential for (registry, repository) and its origin, cached.
    fn find(&self, registry: &str, repository: &str) -> Result<Option<Found>, CredentialError> {
        let key = (registry.to_owned(), repository.to_owned());
        if let Some(c) = self.cache.lock().expect("credential cache lock").get(&key) {
            return Ok(c.clone());
        }
        let mut found = None;
        for f in &self.files {
            if let Some(c) = f.find(registry, repository)? {
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

/// Paths joined for a message.
fn list(paths: &[PathBuf]) -> String {
    let all: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    if all.is_empty() {
        "nowhere: HOME is not set".into()
    } else {
        all.join(", ")
    }
}

impl CredentialSource for CredentialFiles {
    fn credential(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        Ok(self.find(registry, repository)?.map(|(c, _)| c))
    }

    fn origin(&self, registry: &str, repository: &str) -> String {
        match self.find(registry, repository) {
            Ok(Some((_, from))) => format!("ferry sent the credentials from {from}"),
            Ok(None) if self.files.is_empty() => format!(
                "ferry found no credential file (looked for {})",
                list(&self.searched)
            ),
            Ok(None) => format!(
                "ferry found no credentials for {registry} in {}",
                list(&self.paths())
            ),
            Err(e) => format!("ferry could not read credentials: {}", e.message),
        }
    }
}
