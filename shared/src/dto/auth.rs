use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidationError};

use super::MeDto;

/// Usernames: 3 to 32 letters, digits, `_`, `.` or `-`.
fn username_chars(username: &str) -> Result<(), ValidationError> {
    if username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(ValidationError::new("username_chars")
            .with_message("may contain only letters, digits, '_', '.' and '-'".into()))
    }
}

/// `POST /auth/register`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::InputObject), graphql(name = "RegisterInput"))]
pub struct RegisterRequest {
    #[validate(length(min = 3, max = 32, message = "must be 3 to 32 characters"), custom(function = "username_chars"))]
    pub username: String,
    #[validate(email(message = "must be an email address"), length(max = 254, message = "is too long"))]
    pub email: String,
    #[validate(length(min = 1, max = 64, message = "must be 1 to 64 characters"))]
    pub display_name: String,
    /// At least 8 characters, at most 128, and not the username or email address.
    #[validate(custom(function = "super::password_rule"))]
    pub password: String,
    #[validate(length(max = 2048, message = "must be at most 2048 characters"), custom(function = "super::http_url"))]
    pub avatar_url: Option<String>,
}

/// `POST /auth/login`: `login` is a username or an email address.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::InputObject), graphql(name = "LoginInput"))]
pub struct LoginRequest {
    #[validate(length(min = 1, max = 254, message = "must be 1 to 254 characters"))]
    pub login: String,
    #[validate(length(min = 1, max = 128, message = "must be 1 to 128 characters"))]
    pub password: String,
}

/// `POST /auth/refresh` and `POST /auth/logout`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    #[validate(length(min = 1, max = 256, message = "must be 1 to 256 characters"))]
    pub refresh_token: String,
}

/// A fresh pair of tokens. The refresh token is single-use: each refresh returns a new one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "TokenPair"))]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// What register, login and refresh answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "AuthPayload"))]
pub struct AuthResponse {
    pub user: MeDto,
    #[serde(flatten)]
    #[cfg_attr(feature = "graphql", graphql(flatten))]
    pub tokens: TokenPair,
}
