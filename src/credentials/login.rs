//! `ferry login` / `ferry logout`: write and remove credentials the way `podman login` does
//! (in the file ferry reads first), through the credential helper that file configures when
//! there is one, else in its `auths`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::{CredentialError, default_auth_files, docker_key};

/// The file `ferry login` writes and `ferry logout` edits: `--authfile`, else the first file
/// of [`default_auth_files`] (the one `ferry bundle` reads first), as podman does:
/// `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
/// `~/.config/containers/auth.json`.
pub fn login_file(authfile: Option<&Path>) -> Result<PathBuf, CredentialError> {
    if let Some(p) = authfile {
        return Ok(p.to_path_buf());
    }
    default_auth_files().into_iter().next().ok_or_else(|| {
        CredentialError::new(
            "nowhere to store credentials: HOME, XDG_RUNTIME_DIR and REGISTRY_AUTH_FILE are unset",
        )
        .with_hint("pass --authfile PATH")
    })
}

/// Where a login was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// In a credential helper (`docker-credential-NAME`).
    Helper(String),
    /// In the file's `auths`.
    File(PathBuf),
}

fn read_config(path: &Path) -> Result<Map<String, Value>, CredentialError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(Map::new()),
        Ok(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(CredentialError::new(format!(
                "{}: not a JSON object; fix or move it and retry",
                path.display()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(CredentialError::new(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Refuses a credential file that is a symlink, folder or device before it is read or written:
/// a link planted there would otherwise steer the secrets elsewhere.
fn check_writable(path: &Path) -> Result<(), CredentialError> {
    crate::fsutil::check_replaceable(path).map_err(|e| {
        CredentialError::new(format!("cannot save the credentials: {e}")).with_hint(
            "remove it if you did not put it there, or name a regular file with --authfile",
        )
    })
}

/// Replaces the file atomically, readable by its owner only (it holds secrets). The temp file
/// is created O_EXCL|O_NOFOLLOW beside it; a folder that does not exist yet is made 0700.
fn write_config(path: &Path, config: &Map<String, Value>) -> Result<(), CredentialError> {
    let dir = crate::fsutil::folder_of(path);
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CredentialError::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut text =
        serde_json::to_vec_pretty(&Value::Object(config.clone())).expect("JSON serializes");
    text.push(b'\n');
    check_writable(path)?;
    crate::fsutil::write_atomic_mode(path, &text, None, 0o600)
        .map_err(|e| CredentialError::new(format!("cannot save the credentials: {e}")))
}

/// The helper configured for `registry` in a config: its `credHelpers` entry, else `credsStore`.
fn helper_for(config: &Map<String, Value>, registry: &str) -> Option<String> {
    let key = docker_key(registry);
    config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|h| h.get(registry).or_else(|| h.get(&key)))
        .or_else(|| config.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Stores `username`/`password` for `registry`.
pub fn store(
    registry: &str,
    username: &str,
    password: &str,
    authfile: Option<&Path>,
) -> Result<Stored, CredentialError> {
    let path = login_file(authfile)?;
    check_writable(&path)?;
    let mut config = read_config(&path)?;
    let key = docker_key(registry);
    if let Some(helper) = helper_for(&config, registry) {
        super::helper::store(&helper, &key, username, password)?;
        return Ok(Stored::Helper(format!("docker-credential-{helper}")));
    }
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let auths = config.entry("auths").or_insert_with(|| json!({}));
    let Some(auths) = auths.as_object_mut() else {
        return Err(CredentialError::new(format!(
            "{}: \"auths\" is not an object",
            path.display()
        )));
    };
    auths.insert(key, json!({ "auth": auth }));
    write_config(&path, &config)?;
    Ok(Stored::File(path))
}

/// Removes the credentials for `registry`; returns whether there were any in the file.
pub fn erase(registry: &str, authfile: Option<&Path>) -> Result<bool, CredentialError> {
    let path = login_file(authfile)?;
    check_writable(&path)?;
    let mut config = read_config(&path)?;
    let key = docker_key(registry);
    if let Some(helper) = helper_for(&config, registry) {
        super::helper::erase(&helper, &key)?;
    }
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .map(|a| {
            super::entry_keys(registry)
                .iter()
                .filter(|k| a.remove(k.as_str()).is_some())
                .count()
                > 0
        })
        .unwrap_or(false);
    if removed {
        write_config(&path, &config)?;
    }
    Ok(removed)
}

/// The other default files (not `edited`) that hold an `auths` entry for `registry`: what
/// `ferry logout` left alone, for its message. Helpers are not run.
pub fn entries_elsewhere(registry: &str, edited: &Path) -> Vec<PathBuf> {
    let keys = super::entry_keys(registry);
    default_auth_files()
        .into_iter()
        .filter(|p| p != edited)
        .filter(|p| {
            read_config(p).ok().is_some_and(|c| {
                c.get("auths")
                    .and_then(Value::as_object)
                    .is_some_and(|a| keys.iter().any(|k| a.contains_key(k)))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{AuthFile, Credential};
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn a_new_config_folder_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home/.docker/config.json");
        store("ghcr.io", "me", "s3cret", Some(&path)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("home/.docker")), 0o700);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_symlink_at_the_destination_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "{}").unwrap();
        let path = dir.path().join("config.json");
        symlink(&target, &path).unwrap();
        let err = store("ghcr.io", "me", "s3cret", Some(&path)).unwrap_err();
        assert!(err.message.contains("is a symlink"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "{}");
        assert!(path.is_symlink());
    }

    #[test]
    fn logout_from_docker_hub_removes_every_spelling_of_it_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(
            &path,
            r#"{"auths":{"docker.io":{"auth":"YTpi"},"index.docker.io":{"auth":"YTpi"},
                "https://index.docker.io/v1/":{"auth":"YTpi"},"quay.io":{"auth":"YTpi"}}}"#,
        )
        .unwrap();
        assert!(erase("docker.io", Some(&path)).unwrap());
        let left: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let keys: Vec<&String> = left["auths"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["quay.io"]);
        assert!(!erase("docker.io", Some(&path)).unwrap(), "nothing left");
    }

    #[test]
    fn store_then_erase_keeps_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"other.io":{"auth":"eDp5"}},"psFormat":"table"}"#,
        )
        .unwrap();
        assert_eq!(
            store("docker.io", "me", "s3cret", Some(&path)).unwrap(),
            Stored::File(path.clone())
        );
        let f = AuthFile::load(&path).unwrap().unwrap();
        assert_eq!(
            f.lookup("docker.io", "library/alpine").unwrap(),
            Some(Credential::Basic {
                username: "me".into(),
                password: "s3cret".into()
            })
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("https://index.docker.io/v1/") && text.contains("psFormat"),
            "{text}"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(erase("docker.io", Some(&path)).unwrap());
        assert!(
            !erase("docker.io", Some(&path)).unwrap(),
            "nothing left to remove"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("index.docker.io") && text.contains("other.io"),
            "{text}"
        );
    }
}
