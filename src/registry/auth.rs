//! Registry authentication: parsing `WWW-Authenticate` challenges, Basic credentials, and
//! Bearer tokens fetched from the realm and cached per repository scope.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;

use url::Url;

use super::Registries;
use super::error::{ErrorKind, RegistryError};
use super::host::Host;
use super::limits::{Capped, MAX_TOKEN_RESPONSE, error_body, read_capped};
use crate::credentials::Credential;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The `Authorization: Basic` value for a credential (identity tokens have none).
pub(crate) fn basic_header(credential: &Credential) -> Option<String> {
    match credential {
        Credential::Basic { username, password } => Some(format!(
            "Basic {}",
            b64(format!("{username}:{password}").as_bytes())
        )),
        Credential::IdentityToken(_) => None,
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

/// The scope to push to a repository (pull too: a push HEADs and mounts).
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

impl Host {
    /// A transport error on the token realm, whose TLS hint names the realm's host.
    fn realm_error(&self, realm_host: &str, url: &str, e: &reqwest::Error) -> RegistryError {
        let err = self.transport_error(url, e);
        if err.kind == ErrorKind::Certificate && realm_host != self.registry {
            return err.with_hint(format!(
                "the certificate of {realm_host}, the token server of {}, is not trusted: add its CA \
                 with --ca-file CA.pem, or as /etc/containers/certs.d/{realm_host}/ca.crt",
                self.registry
            ));
        }
        err
    }

    /// The Authorization header for a request on `repository` needing `scope` (one or more
    /// token scopes separated by spaces, e.g. push plus a mount source's pull).
    pub(super) async fn authorization_for(
        &self,
        pool: &Registries,
        repository: &str,
        scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        let challenge = self.challenge.lock().expect("challenge lock").clone();
        let Some(challenge) = challenge else {
            return Ok(None);
        };
        let credential = self.credential(pool, repository)?;
        let (realm, service) = match challenge {
            Challenge::Basic => {
                tracing::debug!(
                    registry = %self.registry,
                    with_credentials = credential.is_some(),
                    "basic authentication"
                );
                return Ok(credential.as_ref().and_then(basic_header));
            }
            Challenge::Bearer { realm, service, .. } => (realm, service),
        };
        if let Some(t) = self.cached_token(scope) {
            return Ok(Some(format!("Bearer {t}")));
        }
        let _one_at_a_time = self.token_fetch.lock().await;
        // Another request may have fetched it while this one waited.
        if let Some(t) = self.cached_token(scope) {
            return Ok(Some(format!("Bearer {t}")));
        }
        let realm = TokenRealm::parse(self, &realm, service)?;
        self.refuse_plain_http_realm(&realm, credential.as_ref())?;
        let token = self
            .fetch_token(pool, repository, &realm, credential.as_ref(), scope)
            .await?;
        let value = token.value.clone();
        self.tokens.lock().expect("token lock").put(scope, token);
        Ok(Some(format!("Bearer {value}")))
    }

    /// The credential configured for `repository` on this registry, if any.
    fn credential(
        &self,
        pool: &Registries,
        repository: &str,
    ) -> Result<Option<Credential>, RegistryError> {
        pool.credentials
            .credential(&self.registry, repository)
            .map_err(|e| RegistryError::credentials(&self.registry, e))
    }

    /// A token for `scope` that is still good.
    fn cached_token(&self, scope: &str) -> Option<String> {
        self.tokens.lock().expect("token lock").get(scope)
    }

    /// Credentials never go to a plain-HTTP token server of an HTTPS registry.
    fn refuse_plain_http_realm(
        &self,
        realm: &TokenRealm,
        credential: Option<&Credential>,
    ) -> Result<(), RegistryError> {
        let registry_is_https = self.base.get().is_some_and(|b| b.scheme() == "https");
        if credential.is_some() && registry_is_https && realm.url.scheme() != "https" {
            return Err(self.err(
                ErrorKind::Credentials,
                realm.url.as_str(),
                format!(
                    "the token server of {} is plain HTTP: ferry does not send credentials there",
                    self.registry
                ),
            ));
        }
        Ok(())
    }

    /// The token request: an identity token is an OAuth2 refresh token POSTed to the realm;
    /// otherwise a GET with the scopes, with Basic credentials when there are some.
    fn token_request(
        client: &reqwest::Client,
        realm: &TokenRealm,
        credential: Option<&Credential>,
        scope: &str,
    ) -> reqwest::RequestBuilder {
        if let Some(Credential::IdentityToken(refresh)) = credential {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", refresh)
                .append_pair("client_id", "ferry")
                .append_pair("scope", scope);
            if let Some(s) = &realm.service {
                form.append_pair("service", s);
            }
            return client
                .post(realm.url.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form.finish());
        }
        let mut get_url = realm.url.clone();
        {
            let mut q = get_url.query_pairs_mut();
            if let Some(s) = &realm.service {
                q.append_pair("service", s);
            }
            // One `scope` parameter per scope, as docker and the token spec do.
            for one in scope.split(' ') {
                q.append_pair("scope", one);
            }
        }
        let mut req = client.get(get_url);
        if let Some(h) = credential.and_then(basic_header) {
            req = req.header(reqwest::header::AUTHORIZATION, h);
        }
        req
    }

    /// Asks the realm for a token for `scope`; reads the answer within its size cap.
    async fn fetch_token(
        &self,
        pool: &Registries,
        repository: &str,
        realm: &TokenRealm,
        credential: Option<&Credential>,
        scope: &str,
    ) -> Result<Token, RegistryError> {
        let url = &realm.url;
        let client = pool.token_client(&realm.host)?;
        let req = Self::token_request(&client, realm, credential, scope);
        // The realm and scope only: never the token, the password or the Authorization header.
        tracing::debug!(
            registry = %self.registry,
            realm = %crate::redact::redact(url.as_str()),
            service = %realm.service.as_deref().unwrap_or("-"),
            %scope,
            with_credentials = credential.is_some(),
            "token request"
        );
        let method = match credential {
            Some(Credential::IdentityToken(_)) => "POST",
            _ => "GET",
        };
        let limit = Some((
            pool.options.retry.attempt_timeout(1),
            "token request timed out".to_owned(),
        ));
        let resp = self
            .send_traced(req, (method, url.as_str()), limit, |e| {
                self.realm_error(&realm.host, url.as_str(), e)
            })
            .await?;
        let status = resp.status();
        let stall = pool.options.retry.stall_timeout;
        if !status.is_success() {
            let body = error_body(resp, stall).await;
            let e = self.status_error(status, url.as_str(), &body, None, Some(repository));
            if credential.is_some() && status.as_u16() == 401 {
                return Err(e.with_detail(format!(
                    "the token server rejected the credentials for {}",
                    self.registry
                )));
            }
            return Err(e);
        }
        let body = self.read_token_body(resp, url, stall).await?;
        serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| {
                self.err(
                    ErrorKind::Protocol,
                    url.as_str(),
                    "the token response has no token",
                )
            })
    }

    /// The token server's answer, refused past `MAX_TOKEN_RESPONSE`.
    async fn read_token_body(
        &self,
        resp: reqwest::Response,
        url: &Url,
        stall: Duration,
    ) -> Result<bytes::Bytes, RegistryError> {
        let too_large = || {
            self.err(
                ErrorKind::Protocol,
                url.as_str(),
                format!(
                    "the token server of {} sent a response over {} KiB; ferry refuses it",
                    self.registry,
                    MAX_TOKEN_RESPONSE >> 10
                ),
            )
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_TOKEN_RESPONSE as u64)
        {
            return Err(too_large());
        }
        match read_capped(resp, MAX_TOKEN_RESPONSE, stall).await {
            Capped::Whole(b) => Ok(b),
            Capped::TooLarge(_) => Err(too_large()),
        }
    }
}

/// A Bearer challenge's token endpoint, checked.
struct TokenRealm {
    url: Url,
    /// `host[:port]` of the realm (its TLS client and error hints go by it).
    host: String,
    service: Option<String>,
}

impl TokenRealm {
    fn parse(
        host: &Host,
        realm: &str,
        service: Option<String>,
    ) -> Result<TokenRealm, RegistryError> {
        let url = Url::parse(realm).map_err(|e| {
            host.err(
                ErrorKind::Protocol,
                realm,
                format!("token realm is not a URL: {e}"),
            )
        })?;
        let realm_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => {
                return Err(host.err(ErrorKind::Protocol, realm, "the token realm has no host"));
            }
        };
        Ok(TokenRealm {
            url,
            host: realm_host,
            service,
        })
    }
}

impl Registries {
    /// Checks `credential` against `registry` the way `docker login` does: a Basic request to
    /// `/v2/`, or a token request to the Bearer realm. A registry that asks for nothing accepts
    /// anything.
    pub async fn verify_login(
        &self,
        registry: &str,
        credential: &Credential,
    ) -> Result<(), RegistryError> {
        let host = self.host(registry)?;
        let base = host.base(self).await?;
        let challenge = host.challenge.lock().expect("challenge lock").clone();
        let Some(header) = basic_header(credential) else {
            return Err(RegistryError::credentials(
                registry,
                crate::credentials::CredentialError::new(
                    "ferry login takes a user name and password",
                ),
            ));
        };
        let url = match challenge {
            None => return Ok(()),
            Some(Challenge::Basic) => base.join("v2/").expect("valid path"),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let mut url = Url::parse(&realm).map_err(|e| {
                    host.err(
                        ErrorKind::Protocol,
                        &realm,
                        format!("token realm is not a URL: {e}"),
                    )
                })?;
                if let Some(s) = service {
                    url.query_pairs_mut().append_pair("service", &s);
                }
                url
            }
        };
        let resp = host
            .client(self)
            .get(url.clone())
            .header(reqwest::header::AUTHORIZATION, header)
            .send()
            .await
            .map_err(|e| host.transport_error(url.as_str(), &e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = error_body(resp, self.options.retry.stall_timeout).await;
        let e = host.status_error(status, url.as_str(), &body, None, None);
        if status.as_u16() == 401 {
            return Err(e
                .with_detail(format!("{registry} rejected the user name or password"))
                .with_hint_opt(None));
        }
        Err(e)
    }
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
    fn basic_header_encodes() {
        let c = Credential::Basic {
            username: "user".into(),
            password: "pass".into(),
        };
        assert_eq!(basic_header(&c).as_deref(), Some("Basic dXNlcjpwYXNz"));
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
