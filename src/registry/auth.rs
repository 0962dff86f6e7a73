//! Authorizing requests: Basic, or Bearer tokens fetched for a set of scopes and reused until
//! they expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::sync::Mutex;

use super::body::{self, BodyError, MAX_SMALL_BODY};
use super::challenge::{Challenge, Scope, token_query};
use super::credentials::RegistryCredential;
use super::error::RegistryError;
use super::origin::{PlainHttp, redacted};
use super::watchdog::{Meter, Throughput};
use crate::credential::Secret;

/// Tokens are dropped this long before they expire, so none expires in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// The lifetime of a token whose response names none, and the shortest one believed: the token
/// spec's default, and its floor ("a token should never be returned with less than 60 seconds
/// to live"); a shorter one would cost a token request per registry request.
const MIN_LIFETIME: Duration = Duration::from_secs(60);
/// The longest lifetime believed: a day (a larger `expires_in` would overflow the clock).
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// What one registry asks for and what imgctl has for it.
pub struct Authorizer {
    registry: String,
    credential: RegistryCredential,
    plain_http: PlainHttp,
    watchdog: Throughput,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<Vec<Scope>, (Secret, Instant)>>,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<Secret>,
    #[serde(default)]
    access_token: Option<Secret>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Authorizer {
    /// An authorizer for `registry` presenting `credential`; token realms must pass
    /// `plain_http`, token requests move at least `watchdog`.
    pub fn new(registry: &str, credential: RegistryCredential, plain_http: PlainHttp, watchdog: Throughput) -> Self {
        Self {
            registry: registry.to_owned(),
            credential,
            plain_http,
            watchdog,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Records the challenge of a 401 from the registry's origin and forgets the cached tokens
    /// (one was refused, and any covering token may be the one). A Bearer realm may be on
    /// another host (Docker Hub's is), but it gets the credential, so it must not be weaker
    /// than HTTPS unless plain HTTP is allowed for its host, nor carry user info.
    pub async fn challenged(&self, header: &str) -> Result<(), RegistryError> {
        let challenge = Challenge::parse(header)
            .map_err(|source| RegistryError::Challenge { registry: self.registry.clone(), source })?;
        if let Challenge::Bearer { realm, .. } = &challenge {
            self.plain_http.check_realm(realm).map_err(|reason| RegistryError::UnsafeUrl {
                registry: self.registry.clone(),
                what: "token realm",
                url: redacted(realm),
                reason,
            })?;
        }
        *self.challenge.lock().await = Some(challenge);
        self.tokens.lock().await.clear();
        Ok(())
    }

    /// The `Authorization` header value for a request needing `scopes`, if any.
    pub async fn header(&self, http: &reqwest::Client, scopes: &[Scope]) -> Result<Option<Secret>, RegistryError> {
        let challenge = self.challenge.lock().await.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.basic()),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = sorted(scopes);
                // Held across the fetch: concurrent requests wait for one token instead of each
                // fetching their own.
                let mut tokens = self.tokens.lock().await;
                let now = Instant::now();
                tokens.retain(|_, (_, expires)| now < *expires);
                if let Some((token, _)) = tokens.iter().find(|(have, _)| covers(have, &key)).map(|(_, t)| t) {
                    return Ok(Some(Secret::new(format!("Bearer {}", token.expose()))));
                }
                let (token, lifetime) = self.fetch_token(http, &realm, service.as_deref(), &key).await?;
                let header = Secret::new(format!("Bearer {}", token.expose()));
                tokens.insert(key, (token, now + lifetime.saturating_sub(EXPIRY_MARGIN)));
                Ok(Some(header))
            }
        }
    }

    fn basic(&self) -> Option<Secret> {
        match &self.credential {
            RegistryCredential::Basic { username, password } => {
                let pair = zeroize::Zeroizing::new(format!("{username}:{}", password.expose()));
                Some(Secret::new(format!("Basic {}", STANDARD.encode(pair.as_bytes()))))
            }
            RegistryCredential::Anonymous | RegistryCredential::IdentityToken(_) => None,
        }
    }

    /// One token for every scope at once (a cross-repository mount needs pull on the source
    /// and push on the destination in the same token).
    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scopes: &[Scope],
    ) -> Result<(Secret, Duration), RegistryError> {
        let failed = |message: String| RegistryError::Token { realm: realm.to_owned(), message };
        let query = token_query(service, scopes);
        let request = match &self.credential {
            // docker's OAuth2 flow for identity (refresh) tokens.
            RegistryCredential::IdentityToken(refresh) => {
                let mut form: Vec<(&str, String)> = vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", refresh.expose().to_owned()),
                    ("client_id", "imgctl".into()),
                ];
                if let Some(service) = service {
                    form.push(("service", service.to_owned()));
                }
                let scope = scopes.iter().map(Scope::to_param).collect::<Vec<_>>().join(" ");
                form.push(("scope", scope));
                http.post(realm).form(&form)
            }
            _ => {
                let request = http.get(realm).query(&query);
                match self.basic() {
                    Some(header) => request.header(reqwest::header::AUTHORIZATION, header.expose()),
                    None => request,
                }
            }
        };
        let response = match self.watchdog.watch(&Meter::default(), request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(failed(e.without_url().to_string())),
            Err(stalled) => return Err(failed(stalled.to_string())),
        };
        let status = response.status();
        if !status.is_success() {
            let hint = if status.as_u16() == 401 { ": the credential was refused" } else { "" };
            return Err(failed(format!("status {status}{hint}")));
        }
        // The body holds the token: wiped once parsed.
        let bytes = zeroize::Zeroizing::new(match body::read_capped(response, MAX_SMALL_BODY, &self.watchdog).await {
            Ok(bytes) => bytes,
            Err(BodyError::Transport(e)) => return Err(failed(e.without_url().to_string())),
            Err(e) => return Err(failed(e.to_string())),
        });
        let body: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|_| failed("the answer is not a token response".into()))?;
        let token = body
            .token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| failed("no token in the answer".into()))?;
        let lifetime = body.expires_in.map_or(MIN_LIFETIME, lifetime);
        Ok((token, lifetime))
    }
}

/// How long to keep a token the registry says lives `expires_in` seconds.
fn lifetime(expires_in: u64) -> Duration {
    Duration::from_secs(expires_in).clamp(MIN_LIFETIME, MAX_LIFETIME)
}

/// Whether a token for `have` also authorizes `want` (push includes pull).
fn covers(have: &[Scope], want: &[Scope]) -> bool {
    want.iter().all(|w| have.iter().any(|h| h.repository == w.repository && (h.push || !w.push)))
}

fn sorted(scopes: &[Scope]) -> Vec<Scope> {
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_are_clamped_to_a_minute_and_a_day() {
        assert_eq!(lifetime(0), MIN_LIFETIME);
        assert_eq!(lifetime(1), MIN_LIFETIME);
        assert_eq!(lifetime(300), Duration::from_secs(300));
        assert_eq!(lifetime(u64::MAX), MAX_LIFETIME);
    }

    #[test]
    fn a_push_token_covers_pull_and_subsets() {
        let mount = [Scope::pull("staging/app"), Scope::push("prod/app")];
        assert!(covers(&mount, &[Scope::pull("prod/app")]));
        assert!(covers(&mount, &[Scope::push("prod/app")]));
        assert!(covers(&mount, &[Scope::pull("staging/app")]));
        assert!(!covers(&mount, &[Scope::push("staging/app")]));
        assert!(!covers(&mount, &[Scope::pull("other/app")]));
        assert!(!covers(&[Scope::pull("prod/app")], &[Scope::push("prod/app")]));
    }
}
