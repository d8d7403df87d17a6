//! The state every request handler shares, built once at start.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::endings::SessionEndings;
use crate::keys::SigningKeys;
use crate::service::passwords::Passwords;
use crate::service::rate_limit::AuthRateLimits;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppContext {
    /// The `converge_users` database.
    pub db: DatabaseConnection,
    /// Signs access tokens and verifies them.
    pub keys: Arc<SigningKeys>,
    /// Hashes and verifies passwords off the async threads.
    pub passwords: Arc<Passwords>,
    /// Register and login limits, per IP and per account.
    pub limits: Arc<AuthRateLimits>,
    /// Tells the token verifiers (chat-service, and this service itself) which sessions ended.
    pub endings: Arc<SessionEndings>,
    pub config: Arc<Config>,
}
