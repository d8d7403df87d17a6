//! Password hashing with argon2id, always off the async threads.

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Hashes and verifies passwords. Holds a hash of a random password so that checking a login for an
/// account that does not exist costs the same time as checking a wrong password.
pub struct Passwords {
    dummy_hash: String,
}

impl Passwords {
    pub async fn new() -> anyhow::Result<Self> {
        let random = rand::random::<[u8; 16]>().iter().map(|b| format!("{b:02x}")).collect::<String>();
        Ok(Self { dummy_hash: hash(random).await? })
    }

    /// An argon2id PHC string with a fresh salt.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        hash(password).await
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown account, or an account with
    /// no password) it verifies against the dummy hash and answers false, taking the same time.
    pub async fn verify(&self, password: String, stored: Option<String>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = tokio::task::spawn_blocking(move || {
            Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()
        })
        .await
        .context("password verification task")?;
        Ok(known && matches)
    }
}

async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await
    .context("password hashing task")?
}
