//! Access tokens: the claims user-service signs and every service verifies.
//!
//! Access tokens are EdDSA (Ed25519) JWTs. Verifiers hold only public keys, picked by the header's
//! `kid`, so user-service can rotate its signing key while tokens signed with the previous one stay valid
//! until they expire. The algorithm is pinned: `alg: none`, HS256 "signed" with the public key, or any
//! other algorithm is refused before a signature is looked at.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The `iss` of every Converge access token.
pub const ISSUER: &str = "converge-user-service";
/// The `aud` of every Converge access token.
pub const AUDIENCE: &str = "converge";

/// Seconds past `exp` (and before `nbf`) a token is still accepted: the clocks of user-service and
/// the services verifying its tokens may differ by that much.
pub const LEEWAY_SECS: i64 = 5;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user's id: the only identity a service trusts.
    pub sub: Uuid,
    /// The session (refresh-token family) this token was issued for; absent for tokens issued to an app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// The user's display name when the token was issued, so services can show it without a lookup.
    pub name: String,
    /// When the user's profile (name, picture) last changed, in ms since the epoch: a service that
    /// keeps a copy of it looks it up again when a token brings a later one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_at: Option<i64>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

impl AccessClaims {
    /// The last moment a verifier accepts this token: what bounds a connection it opened.
    pub fn accepted_until(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(self.exp.saturating_add(LEEWAY_SECS), 0)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is signed with an unknown key")]
    UnknownKey(String),
    #[error("the token is invalid")]
    Invalid,
    #[error("the session of the token has ended")]
    SessionEnded,
}

/// Verifies access tokens against a set of public keys, looked up by `kid`.
///
/// Cheap to clone; the key set can be replaced while others verify (after fetching a fresh JWKS).
#[derive(Clone, Default)]
pub struct TokenVerifier {
    keys: Arc<RwLock<Arc<HashMap<String, DecodingKey>>>>,
}

impl TokenVerifier {
    /// A verifier that knows the given `(kid, key)` pairs.
    pub fn new(keys: impl IntoIterator<Item = (String, DecodingKey)>) -> Self {
        let verifier = Self::default();
        verifier.replace_keys(keys.into_iter().collect());
        verifier
    }

    /// A verifier for the keys of a JWKS document (`/.well-known/jwks.json`). Keys without a `kid`
    /// or of an unsupported type are skipped.
    pub fn from_jwks(set: &JwkSet) -> Self {
        let verifier = Self::default();
        verifier.replace_jwks(set);
        verifier
    }

    /// Replaces the known keys with those of a JWKS document.
    pub fn replace_jwks(&self, set: &JwkSet) {
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect();
        self.replace_keys(keys);
    }

    fn replace_keys(&self, keys: HashMap<String, DecodingKey>) {
        // A poisoned lock only means a writer panicked mid-swap of an Arc: the value is still whole.
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }

    /// Whether a key with this `kid` is known.
    pub fn knows(&self, kid: &str) -> bool {
        self.current().contains_key(kid)
    }

    fn current(&self) -> Arc<HashMap<String, DecodingKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Verifies signature, algorithm, issuer, audience, `exp` and `nbf`, and returns the claims.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let keys = self.current();
        let key = keys.get(&kid).ok_or(TokenError::UnknownKey(kid))?;
        jsonwebtoken::decode::<AccessClaims>(token, key, &validation()).map(|data| data.claims).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            }
        })
    }
}

/// The validation rules of an access token: EdDSA only, our issuer and audience, `exp` and `nbf` checked.
pub fn validation() -> Validation {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS as u64;
    validation
}
