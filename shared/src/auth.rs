//! Authenticating callers by access token, for every door of every service.
//!
//! user-service verifies with its own public keys ([`Authenticator::local`]); chat-service verifies
//! with user-service's JWKS ([`Authenticator::jwks`]), fetched at start and again when a token names
//! a key it has not seen, so a key rotation needs no restart. Both refuse the tokens of sessions
//! that have ended ([`EndedSessions`]) before the tokens expire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use jsonwebtoken::jwk::JwkSet;

use crate::api_error::ApiError;
use crate::error::ErrorCode;
use crate::sessions::EndedSessions;
use crate::token::{AccessClaims, TokenError, TokenVerifier};

/// How often an unknown `kid` may trigger a JWKS fetch, so forged tokens cannot flood user-service.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Verifies access tokens. Register it as `web::Data<Authenticator>` for [`AuthUser`] to find.
pub struct Authenticator {
    keys: Keys,
    ended: Arc<EndedSessions>,
}

enum Keys {
    Local(TokenVerifier),
    Jwks(JwksClient),
}

impl Authenticator {
    /// Verifies with these keys (user-service's own).
    pub fn local(verifier: TokenVerifier, ended: Arc<EndedSessions>) -> Self {
        Self { keys: Keys::Local(verifier), ended }
    }

    /// Verifies with the keys of a JWKS (another service's).
    pub fn jwks(client: JwksClient, ended: Arc<EndedSessions>) -> Self {
        Self { keys: Keys::Jwks(client), ended }
    }

    /// A valid token of a session that has not ended.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let claims = match &self.keys {
            Keys::Local(verifier) => verifier.verify(token)?,
            Keys::Jwks(client) => client.verify(token).await?,
        };
        if claims.sid.is_some_and(|sid| self.ended.has_ended(sid)) {
            return Err(TokenError::SessionEnded);
        }
        Ok(claims)
    }

    /// The sessions this authenticator refuses, to wait on one of them.
    pub fn ended_sessions(&self) -> &Arc<EndedSessions> {
        &self.ended
    }
}

/// user-service's public keys, fetched from its `/.well-known/jwks.json`.
pub struct JwksClient {
    url: String,
    verifier: TokenVerifier,
    http: reqwest::Client,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksClient {
    pub fn new(url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Self { url: url.into(), verifier: TokenVerifier::default(), http, last_fetch: Default::default() }
    }

    /// Verifies a token, fetching the key set first if the token names a key not seen yet.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        match self.verifier.verify(token) {
            Err(TokenError::UnknownKey(kid)) => {
                if let Err(e) = self.refresh().await {
                    tracing::warn!(error = format!("{e:#}"), "cannot fetch the JWKS");
                }
                if self.verifier.knows(&kid) { self.verifier.verify(token) } else { Err(TokenError::UnknownKey(kid)) }
            }
            other => other,
        }
    }

    /// Fetches the key set, unless it was fetched within the last few seconds.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < MIN_REFETCH_INTERVAL) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let set: JwkSet = self.http.get(&self.url).send().await?.error_for_status()?.json().await?;
        self.verifier.replace_jwks(&set);
        tracing::info!(keys = set.keys.len(), "fetched the JWKS");
        Ok(())
    }
}

/// The user of a valid `Authorization: Bearer …` access token.
pub struct AuthUser {
    pub claims: AccessClaims,
    /// The token itself, to call other services on the user's behalf.
    pub token: String,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req).map(str::to_owned);
        let auth = req.app_data::<web::Data<Authenticator>>().cloned();
        Box::pin(async move {
            let token = token.ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "an access token is required"))?;
            let auth = auth.ok_or_else(|| anyhow::anyhow!("no Authenticator registered"))?;
            Ok(AuthUser { claims: auth.verify(&token).await?, token })
        })
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
