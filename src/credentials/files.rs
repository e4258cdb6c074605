//! Credential files: docker's config.json, podman/skopeo's auth.json, and the same content
//! inside a Kubernetes `kubernetes.io/dockerconfigjson` Secret (JSON or YAML).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use docker_credential::{CredentialRetrievalError, DockerCredential};
use serde_json::{Map, Value, json};

use super::{Credential, CredentialError, Found, docker_key};

/// The default files, in lookup order (missing ones are skipped by the caller). This is the one
/// definition of the order: `ferry login` writes the first of them (see
/// [`super::login::login_file`]), so what it stores is what the next `ferry bundle` reads first.
///
/// As podman and skopeo: `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`;
/// then `~/.config/containers/auth.json`; then docker's `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn default_auth_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut out = Vec::new();
    match env("REGISTRY_AUTH_FILE") {
        Some(p) => out.push(p),
        None => {
            if let Some(run) = env("XDG_RUNTIME_DIR") {
                out.push(run.join("containers/auth.json"));
            }
        }
    }
    if let Some(home) = env("HOME") {
        out.push(home.join(".config/containers/auth.json"));
    }
    match env("DOCKER_CONFIG") {
        Some(dir) => out.push(dir.join("config.json")),
        None => {
            if let Some(home) = env("HOME") {
                out.push(home.join(".docker/config.json"));
            }
        }
    }
    out
}

/// One credential file, normalized to config.json's shape.
#[derive(Clone)]
pub struct AuthFile {
    /// Where it was read from.
    pub path: PathBuf,
    config: Map<String, Value>,
}

impl std::fmt::Debug for AuthFile {
    // The config holds secrets: only the path is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthFile({})", self.path.display())
    }
}

impl AuthFile {
    /// Reads a file; `Ok(None)` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<AuthFile>, CredentialError> {
        match std::fs::read_to_string(path) {
            Ok(text) => AuthFile::parse(path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CredentialError::new(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Parses config.json / auth.json content, or a Kubernetes Secret holding it.
    pub fn parse(path: &Path, text: &str) -> Result<AuthFile, CredentialError> {
        let bad = |why: String| CredentialError::new(format!("{}: {why}", path.display()));
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(json_err) => serde_yaml_ng::from_str(text)
                .map_err(|_| bad(format!("neither JSON nor YAML ({json_err})")))?,
        };
        let config = unwrap_secret(value).map_err(|mut e| {
            e.message = format!("{}: {}", path.display(), e.message);
            e
        })?;
        match config {
            Value::Object(config) => Ok(AuthFile {
                path: path.to_path_buf(),
                config,
            }),
            _ => Err(bad("expected a JSON object with \"auths\"".into())),
        }
    }

    /// Credentials for `repository` on `registry`, most specific entry first.
    pub fn lookup(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        Ok(self.find(registry, repository)?.map(|(c, _)| c))
    }

    /// Like [`AuthFile::lookup`], with where the credential came from: this file (and its
    /// entry), or the helper it names. Never the secret.
    pub fn find(&self, registry: &str, repository: &str) -> Result<Option<Found>, CredentialError> {
        let in_file = |c: Option<Credential>, entry: &str| {
            c.map(|c| (c, format!("{} (entry {entry})", self.path.display())))
        };
        let auths = self.config.get("auths").and_then(Value::as_object);
        // podman/skopeo allow entries for a namespace or a single repository.
        if let Some(auths) = auths {
            let mut scope = format!("{registry}/{repository}");
            loop {
                if let Some(entry) = auths.get(&scope) {
                    let mini = json!({ "auths": { scope.clone(): entry } });
                    return Ok(in_file(self.ask(&mini, &scope)?, &scope));
                }
                match scope.rsplit_once('/') {
                    Some((parent, _)) if parent != registry => scope = parent.to_owned(),
                    _ => break,
                }
            }
        }
        // A helper named for this registry, then the registry's entry, then the default store.
        let helpers = self.config.get("credHelpers").and_then(Value::as_object);
        let names = super::entry_keys(registry);
        if let Some(helper) = helpers
            .and_then(|h| names.iter().find_map(|n| h.get(n)?.as_str()))
            .filter(|h| !h.is_empty())
        {
            return self.helper(helper, registry);
        }
        if let Some(auths) = auths {
            // docker_credential folds Docker Hub's spellings together when asked for docker.io.
            let server = crate::docker_hub::canonical(registry);
            let found = self.ask(&json!({ "auths": auths }), server)?;
            if found.is_some() {
                return Ok(in_file(found, &docker_key(registry)));
            }
        }
        if let Some(store) = self
            .config
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            return self.helper(store, registry);
        }
        Ok(None)
    }

    /// Asks a credential helper, naming this file in errors and in the origin.
    fn helper(&self, name: &str, registry: &str) -> Result<Option<Found>, CredentialError> {
        let configured = format!("configured in {}", self.path.display());
        let found = super::helper::get(name, &docker_key(registry)).map_err(|mut e| {
            e.message = format!("{} ({configured})", e.message);
            e
        })?;
        Ok(found.map(|c| (c, format!("docker-credential-{name} ({configured})"))))
    }

    /// Asks docker_credential to decode the `auths` entry for `server` in `config`.
    fn ask(&self, config: &Value, server: &str) -> Result<Option<Credential>, CredentialError> {
        let bytes = serde_json::to_vec(config).expect("JSON serializes");
        match docker_credential::get_credential_from_reader(bytes.as_slice(), server) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                Ok(Some(Credential::Basic { username, password }))
            }
            Ok(DockerCredential::IdentityToken(t)) => Ok(Some(Credential::IdentityToken(t))),
            Err(CredentialRetrievalError::NoCredentialConfigured) => Ok(None),
            Err(e) => Err(CredentialError::new(format!(
                "{}: {server}: {e}",
                self.path.display()
            ))),
        }
    }
}

/// A Kubernetes Secret of type `kubernetes.io/dockerconfigjson` (or the older
/// `kubernetes.io/dockercfg`) -> its config; anything else is returned as it is.
fn unwrap_secret(value: Value) -> Result<Value, CredentialError> {
    if value.get("kind").and_then(Value::as_str) != Some("Secret") {
        return Ok(value);
    }
    for (key, legacy) in [(".dockerconfigjson", false), (".dockercfg", true)] {
        let text = if let Some(s) = value
            .pointer(&format!("/stringData/{}", key.replace('/', "~1")))
            .and_then(Value::as_str)
        {
            s.to_owned()
        } else if let Some(b64) = value
            .get("data")
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
        {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    CredentialError::new(format!("Secret data {key} is not base64: {e}"))
                })?;
            String::from_utf8(bytes)
                .map_err(|_| CredentialError::new(format!("Secret data {key} is not UTF-8")))?
        } else {
            continue;
        };
        let inner: Value = serde_json::from_str(&text)
            .map_err(|e| CredentialError::new(format!("Secret data {key} is not JSON: {e}")))?;
        // .dockercfg is the bare map of registries that "auths" holds in config.json.
        return Ok(if legacy {
            json!({ "auths": inner })
        } else {
            inner
        });
    }
    Err(
        CredentialError::new("a Secret without .dockerconfigjson or .dockercfg data")
            .with_hint("use a kubernetes.io/dockerconfigjson Secret"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn file(text: &str) -> AuthFile {
        AuthFile::parse(Path::new("test.json"), text).unwrap()
    }

    fn basic(u: &str, p: &str) -> Option<Credential> {
        Some(Credential::Basic {
            username: u.into(),
            password: p.into(),
        })
    }

    #[test]
    fn docker_hub_spellings_and_plain_hosts() {
        let f = file(&format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"ghcr.io":{{"username":"g","password":"h"}},"q.io":{{"identitytoken":"tok"}}}}}}"#,
            b64("hub:pw")
        ));
        assert_eq!(
            f.lookup("docker.io", "library/alpine").unwrap(),
            basic("hub", "pw")
        );
        assert_eq!(f.lookup("ghcr.io", "o/a").unwrap(), basic("g", "h"));
        assert_eq!(
            f.lookup("q.io", "o/a").unwrap(),
            Some(Credential::IdentityToken("tok".into()))
        );
        assert_eq!(f.lookup("other.io", "o/a").unwrap(), None);
        // podman writes docker.io as the key
        let f = file(&format!(
            r#"{{"auths":{{"docker.io":{{"auth":"{}"}}}}}}"#,
            b64("p:w")
        ));
        assert_eq!(
            f.lookup("docker.io", "library/alpine").unwrap(),
            basic("p", "w")
        );
    }

    #[test]
    fn the_most_specific_entry_wins() {
        let f = file(&format!(
            r#"{{"auths":{{"quay.io":{{"auth":"{}"}},"quay.io/org":{{"auth":"{}"}},"quay.io/org/app":{{"auth":"{}"}}}}}}"#,
            b64("registry:1"),
            b64("org:2"),
            b64("app:3")
        ));
        assert_eq!(f.lookup("quay.io", "org/app").unwrap(), basic("app", "3"));
        assert_eq!(f.lookup("quay.io", "org/other").unwrap(), basic("org", "2"));
        assert_eq!(
            f.lookup("quay.io", "else/x").unwrap(),
            basic("registry", "1")
        );
    }

    #[test]
    fn kubernetes_secrets_json_and_yaml() {
        let config = format!(r#"{{"auths":{{"reg:5000":{{"auth":"{}"}}}}}}"#, b64("k:8s"));
        let json_secret = format!(
            r#"{{"apiVersion":"v1","kind":"Secret","type":"kubernetes.io/dockerconfigjson","data":{{".dockerconfigjson":"{}"}}}}"#,
            b64(&config)
        );
        assert_eq!(
            file(&json_secret).lookup("reg:5000", "a").unwrap(),
            basic("k", "8s")
        );
        let yaml_secret = format!(
            "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
            b64(&config)
        );
        assert_eq!(
            file(&yaml_secret).lookup("reg:5000", "a").unwrap(),
            basic("k", "8s")
        );
        let legacy = format!(
            "kind: Secret\ntype: kubernetes.io/dockercfg\ndata:\n  .dockercfg: {}\n",
            b64(&format!(
                r#"{{"reg:5000":{{"auth":"{}"}}}}"#,
                b64("old:cfg")
            ))
        );
        assert_eq!(
            file(&legacy).lookup("reg:5000", "a").unwrap(),
            basic("old", "cfg")
        );
        let other = "kind: Secret\ntype: Opaque\ndata:\n  x: eA==\n";
        let err = AuthFile::parse(Path::new("s.yaml"), other).unwrap_err();
        assert!(err.message.starts_with("s.yaml: a Secret without"), "{err}");
        assert!(!err.message.contains("hint"), "{err}");
        assert!(err.hint.unwrap().contains("kubernetes.io/dockerconfigjson"));
    }

    #[test]
    fn garbage_names_the_file() {
        let err = AuthFile::parse(Path::new("/x/config.json"), "{{{").unwrap_err();
        assert!(err.message.starts_with("/x/config.json:"), "{err}");
    }
}
