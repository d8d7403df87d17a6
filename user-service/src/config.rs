//! user-service configuration: one typed struct, loaded once from the environment.

use converge_migrations::ServiceDb;
use converge_shared::config::LogFormat;
use serde::Deserialize;

/// Every setting of user-service. Each field is read from the environment variable of the same name
/// in UPPER_SNAKE_CASE (`user_service_port` ← `USER_SERVICE_PORT`); README lists them all.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one (tests).
    pub user_service_port: u16,
    /// Connections the kernel queues until they are accepted: a reconnect storm arrives at once
    /// (capped by `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// PostgreSQL URL; unset means the embedded SQLite file `users.db` under `data_dir`.
    pub database_url: Option<String>,
    /// Where the embedded default keeps its database and generated signing key.
    pub data_dir: String,
    /// Maximum database connections in the pool.
    pub database_max_connections: u32,
    /// PEM (PKCS#8) of the Ed25519 key that signs access tokens. Takes precedence over the file.
    pub jwt_private_key: Option<String>,
    /// Path of that PEM; unset means `<data_dir>/jwt-ed25519.pem`, generated on first start.
    pub jwt_private_key_file: Option<String>,
    /// Comma-separated PEM files of previous signing keys: their public halves stay in the JWKS so
    /// tokens they signed keep verifying until they expire.
    pub jwt_previous_key_files: Option<String>,
    /// Lifetime of an access token, in seconds.
    pub access_token_ttl_secs: i64,
    /// Lifetime of a refresh token (and so of an idle session), in seconds.
    pub refresh_token_ttl_secs: i64,
    /// Register and login attempts allowed per client IP per minute.
    pub auth_rate_limit_per_ip: u32,
    /// Login attempts allowed per account (username or email) per minute.
    pub auth_rate_limit_per_account: u32,
    /// Take the client IP from `X-Forwarded-For` / `Forwarded` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Largest JSON body accepted, in bytes.
    pub max_body_bytes: usize,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Comma-separated browser origins (`scheme://host:port`) allowed to call the API, `*` for any.
    /// Tokens travel in headers and bodies, never cookies, so CORS guards no ambient credential;
    /// the default still names only the local web client (chat-service on its default port).
    pub cors_allowed_origins: String,
    /// Redis URL: when set, ended sessions are announced there to every chat-service instance (the
    /// same Redis and `redis_prefix` they use), which then refuse those sessions' tokens at once.
    /// Unset: announced within this process only (the embedded default runs both services in one).
    pub redis_url: Option<String>,
    /// Prefix of Converge's Redis keys and channels, as chat-service's `REDIS_PREFIX`.
    pub redis_prefix: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            user_service_port: 3000,
            listen_backlog: 2048,
            database_url: None,
            data_dir: "./data".into(),
            database_max_connections: 10,
            jwt_private_key: None,
            jwt_private_key_file: None,
            jwt_previous_key_files: None,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            auth_rate_limit_per_ip: 30,
            auth_rate_limit_per_account: 10,
            trust_forwarded_for: false,
            max_body_bytes: 64 * 1024,
            log_format: LogFormat::Text,
            cors_allowed_origins: "http://localhost:3002,http://127.0.0.1:3002".into(),
            redis_url: None,
            redis_prefix: "converge:".into(),
        }
    }
}

impl Config {
    /// The database URL in effect (PostgreSQL, or the embedded SQLite file).
    pub fn database_url(&self) -> String {
        ServiceDb::Users.url(self.database_url.as_deref(), &self.data_dir)
    }

    /// The allowed CORS origins, trimmed, empty entries dropped.
    pub fn cors_allowed_origins(&self) -> Vec<&str> {
        self.cors_allowed_origins.split(',').map(str::trim).filter(|o| !o.is_empty()).collect()
    }

    /// The signing key file in effect.
    pub fn jwt_private_key_file(&self) -> String {
        self.jwt_private_key_file
            .clone()
            .unwrap_or_else(|| format!("{}/jwt-ed25519.pem", self.data_dir.trim_end_matches('/')))
    }
}
