//! Registry authentication: parsing `WWW-Authenticate` challenges, Basic credentials, and
//! Bearer tokens fetched from the realm and cached per repository scope.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

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

impl Credential {
    /// The `Authorization: Basic` value.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                b64(format!("{username}:{password}").as_bytes())
            )),
            Credential::IdentityToken(_) => None,
        }
    }
}

/// Where credentials come from (config files, helpers; see issue-driven sources).
pub trait CredentialSource: Send + Sync {
    /// Credentials for a registry host as written in references (`docker.io`, `host:5000`).
    fn credential(&self, registry: &str) -> Option<Credential>;
}

/// No credentials at all: anonymous access only.
#[derive(Debug, Default, Clone, Copy)]
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn credential(&self, _: &str) -> Option<Credential> {
        None
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=...`
    Basic,
    /// `Bearer realm=...,service=...,scope=...`
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass back.
        service: Option<String>,
        /// The scope the registry asked for, if it said.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `key="quoted, value",key2=token` -> map (keys lowercased).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    out
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: String,
    pub renew_at: Instant,
}

/// Tokens per scope for one registry.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: HashMap<String, Token>,
}

impl TokenCache {
    pub fn get(&self, scope: &str) -> Option<String> {
        self.tokens
            .get(scope)
            .filter(|t| Instant::now() < t.renew_at)
            .map(|t| t.value.clone())
    }

    pub fn put(&mut self, scope: &str, token: Token) {
        self.tokens.insert(scope.to_owned(), token);
    }

    pub fn forget(&mut self, scope: &str) {
        self.tokens.remove(scope);
    }
}

/// A token endpoint's answer.
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token, renewed 30 s before it expires (the spec's default lifetime is 60 s).
    pub fn into_token(self) -> Option<Token> {
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        let lifetime = Duration::from_secs(self.expires_in.unwrap_or(60).max(60));
        Some(Token {
            value,
            renew_at: Instant::now() + lifetime.saturating_sub(Duration::from_secs(30)),
        })
    }
}

/// The pull scope for a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        // Scopes with commas (several actions) stay whole inside quotes.
        let Some(Challenge::Bearer { scope, .. }) =
            parse_challenge(r#"bearer realm="r",scope="repository:a/b:pull,push""#)
        else {
            panic!()
        };
        assert_eq!(scope.as_deref(), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn basic_header() {
        let c = Credential::Basic {
            username: "user".into(),
            password: "pass".into(),
        };
        assert_eq!(c.basic_header().as_deref(), Some("Basic dXNlcjpwYXNz"));
    }

    #[test]
    fn credentials_never_debug_print_secrets() {
        let c = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn tokens_expire() {
        let mut cache = TokenCache::default();
        cache.put(
            "s",
            Token {
                value: "t".into(),
                renew_at: Instant::now() - Duration::from_secs(1),
            },
        );
        assert_eq!(cache.get("s"), None);
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"abc","expires_in":300}"#).unwrap();
        cache.put("s", t.into_token().unwrap());
        assert_eq!(cache.get("s").as_deref(), Some("abc"));
    }
}
