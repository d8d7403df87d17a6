//! Typed configuration, loaded once at start from the environment (and an optional `.env`).
//!
//! Each service declares one `Config` struct with serde defaults; [`load`] fills it from
//! `UPPER_SNAKE_CASE` variables named after its fields. Tests build the struct directly instead.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Loads a service's configuration from `.env` (if present) and the environment.
pub fn load<T: DeserializeOwned>() -> Result<T, Box<figment::Error>> {
    // A missing .env is the normal case; a malformed one is reported by figment below only if it
    // leaves a required variable unset, which is what a user needs to know.
    let _ = dotenvy::dotenv();
    figment::Figment::new().merge(figment::providers::Env::raw()).extract().map_err(Box::new)
}

/// `LOG_FORMAT`: human-readable lines, or one JSON object per line for log pipelines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The database a service should use: `DATABASE_URL` when set, otherwise the embedded SQLite
/// file `file_name` under `data_dir` (created on first start).
pub fn database_url(configured: Option<&str>, data_dir: &str, file_name: &str) -> String {
    match configured {
        Some(url) if !url.trim().is_empty() => url.to_owned(),
        _ => format!("sqlite://{}/{}?mode=rwc", data_dir.trim_end_matches('/'), file_name),
    }
}
