//! The Ed25519 keys that sign access tokens, and the JWKS that publishes their public halves.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use converge_shared::token::{AccessClaims, TokenVerifier};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The current signing key, plus the public keys of previous ones.
pub struct SigningKeys {
    kid: String,
    encoding: EncodingKey,
    jwks: serde_json::Value,
    verifier: TokenVerifier,
}

impl SigningKeys {
    /// Loads the keys named by the config. The embedded default (no key configured) generates a key
    /// at first start and keeps it under the data directory, so tokens survive restarts.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let current = match &config.jwt_private_key {
            Some(pem) => parse_pem(pem).context("JWT_PRIVATE_KEY is not an Ed25519 PKCS#8 PEM")?,
            None if config.jwt_private_key_file.is_some() => {
                let path = config.jwt_private_key_file();
                read_pem_file(&path)?
            }
            None => load_or_generate(&config.jwt_private_key_file())?,
        };
        let previous = config
            .jwt_previous_key_files
            .iter()
            .flat_map(|files| files.split(','))
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(read_pem_file)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Self::new(current, previous)
    }

    /// Keys from key material: `current` signs, `previous` only verify.
    pub fn new(current: SigningKey, previous: Vec<SigningKey>) -> anyhow::Result<Self> {
        let pem = current.to_pkcs8_pem(LineEnding::LF).context("encoding the signing key")?;
        let encoding = EncodingKey::from_ed_pem(pem.as_bytes()).context("loading the signing key")?;
        let keys: Vec<serde_json::Value> = std::iter::once(&current).chain(&previous).map(public_jwk).collect();
        let jwks = serde_json::json!({ "keys": keys });
        let set: JwkSet = serde_json::from_value(jwks.clone()).context("building the JWKS")?;
        Ok(Self { kid: key_id(&current), encoding, verifier: TokenVerifier::from_jwks(&set), jwks })
    }

    /// Signs access-token claims with the current key, naming it in `kid`.
    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing an access token")
    }

    /// `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// A verifier for the tokens this service signs.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// The `kid` of the current key.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// A fresh random Ed25519 key.
pub fn generate() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// The key's PKCS#8 PEM, as `JWT_PRIVATE_KEY` takes it.
pub fn to_pem(key: &SigningKey) -> anyhow::Result<String> {
    Ok(key.to_pkcs8_pem(LineEnding::LF).context("encoding the key")?.to_string())
}

/// A key id that is a thumbprint of the public key: stable, and different for every key.
fn key_id(key: &SigningKey) -> String {
    let digest = Sha256::digest(key.verifying_key().as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

fn public_jwk(key: &SigningKey) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        "kid": key_id(key),
        "alg": "EdDSA",
        "use": "sig",
    })
}

fn parse_pem(pem: &str) -> anyhow::Result<SigningKey> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| anyhow::anyhow!("{e}"))
}

fn read_pem_file(path: &str) -> anyhow::Result<SigningKey> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading the signing key {path}"))?;
    parse_pem(&pem).with_context(|| format!("{path} is not an Ed25519 PKCS#8 PEM"))
}

fn load_or_generate(path: &str) -> anyhow::Result<SigningKey> {
    if Path::new(path).exists() {
        return read_pem_file(path);
    }
    if let Some(dir) = Path::new(path).parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let key = generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(to_pem(&key)?.as_bytes()).with_context(|| format!("writing {path}"))?;
            tracing::info!(path, "generated a new token signing key");
            Ok(key)
        }
        // Another process created it first: use theirs, so both sign with the same key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_pem_file(path),
        Err(e) => Err(e).with_context(|| format!("creating {path}")),
    }
}
