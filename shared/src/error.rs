//! The error envelope every Converge API answers with, and its stable codes.
//!
//! `{"error":{"code":"validation_failed","message":"…","fields":{"email":"…"}}}`
//!
//! Codes are part of the public contract: clients branch on them, so a code is never renamed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A stable, machine-readable error code. The HTTP status of each is fixed by [`ErrorCode::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not valid JSON, or a path or query parameter is malformed.
    BadRequest,
    /// 422: the request is well-formed but some fields break a rule; see `fields`.
    ValidationFailed,
    /// 400: a WebSocket frame is not valid JSON, or misses or mistypes a field.
    InvalidFrame,
    /// 400: a WebSocket frame has a `type` the server does not know.
    UnknownType,
    /// 422: the message content is longer than allowed.
    ContentTooLong,
    /// 422: the message has neither content nor an attachment.
    EmptyMessage,
    /// 422: a seq beyond the chat's last message (in `mark_as_read`, `resume`, or a page cursor).
    InvalidSeq,
    /// 422: an upload is not a readable image, or has more pixels than allowed.
    InvalidImage,
    /// 401: no credentials were given.
    Unauthorized,
    /// 401: the access token is malformed, signed by an unknown key, or otherwise not acceptable.
    InvalidToken,
    /// 401: the access token has expired; refresh it.
    TokenExpired,
    /// 401: wrong username, email or password.
    InvalidCredentials,
    /// 401: the refresh token is unknown, expired or revoked.
    InvalidRefreshToken,
    /// 401: a refresh token was used twice; its whole session family has been revoked.
    RefreshTokenReused,
    /// 401: the app API key is unknown or revoked.
    InvalidApiKey,
    /// 403: the account is deactivated.
    AccountDeactivated,
    /// 403: authenticated, but not allowed to do this.
    Forbidden,
    /// 404: no such resource, or no such route.
    NotFound,
    /// 405: the route exists but not with this method; the `Allow` header lists the methods it takes.
    MethodNotAllowed,
    /// 409: the username is taken (case-insensitively).
    UsernameTaken,
    /// 409: the email is taken (case-insensitively).
    EmailTaken,
    /// 409: the request conflicts with the current state.
    Conflict,
    /// 409: the message was deleted; it cannot be edited any more.
    MessageDeleted,
    /// 409: an edit's `replaces` is no longer the message's content: it was changed meanwhile
    /// (on another device, say), and the edit would undo that change.
    EditConflict,
    /// 413: the body or frame is larger than allowed.
    PayloadTooLarge,
    /// 415: the body is not `application/json` (or the media type the route expects).
    UnsupportedMediaType,
    /// 429: too many requests; retry after the `Retry-After` seconds.
    RateLimited,
    /// 500: something failed on our side; the message carries a request id to quote.
    Internal,
    /// 503: a dependency (database, Redis) is unreachable.
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status this code is always sent with.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BadRequest | InvalidFrame | UnknownType => 400,
            ValidationFailed | ContentTooLong | EmptyMessage | InvalidSeq | InvalidImage => 422,
            Unauthorized | InvalidToken | TokenExpired | InvalidCredentials | InvalidRefreshToken
            | RefreshTokenReused | InvalidApiKey => 401,
            AccountDeactivated | Forbidden => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            UsernameTaken | EmailTaken | Conflict | MessageDeleted | EditConflict => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            RateLimited => 429,
            Internal => 500,
            Unavailable => 503,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadRequest => "bad_request",
            InvalidFrame => "invalid_frame",
            UnknownType => "unknown_type",
            ContentTooLong => "content_too_long",
            EmptyMessage => "empty_message",
            InvalidSeq => "invalid_seq",
            InvalidImage => "invalid_image",
            ValidationFailed => "validation_failed",
            Unauthorized => "unauthorized",
            InvalidToken => "invalid_token",
            TokenExpired => "token_expired",
            InvalidCredentials => "invalid_credentials",
            InvalidRefreshToken => "invalid_refresh_token",
            RefreshTokenReused => "refresh_token_reused",
            InvalidApiKey => "invalid_api_key",
            AccountDeactivated => "account_deactivated",
            Forbidden => "forbidden",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            UsernameTaken => "username_taken",
            EmailTaken => "email_taken",
            Conflict => "conflict",
            MessageDeleted => "message_deleted",
            EditConflict => "edit_conflict",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            RateLimited => "rate_limited",
            Internal => "internal",
            Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-field messages of a `validation_failed` error, keyed by the camelCase field name.
pub type FieldErrors = BTreeMap<String, String>;

/// The body of an error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<FieldErrors>,
}

/// `{"error": {...}}`: what every non-2xx response carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

impl ErrorEnvelope {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: ErrorBody { code, message: message.into(), fields: None } }
    }

    pub fn with_fields(code: ErrorCode, message: impl Into<String>, fields: FieldErrors) -> Self {
        Self { error: ErrorBody { code, message: message.into(), fields: Some(fields) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_name_matches_serde_name() {
        use ErrorCode::*;
        for code in [
            BadRequest,
            ValidationFailed,
            InvalidFrame,
            UnknownType,
            ContentTooLong,
            EmptyMessage,
            InvalidSeq,
            InvalidImage,
            Unauthorized,
            InvalidToken,
            TokenExpired,
            InvalidCredentials,
            InvalidRefreshToken,
            RefreshTokenReused,
            InvalidApiKey,
            AccountDeactivated,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            UsernameTaken,
            EmailTaken,
            Conflict,
            MessageDeleted,
            EditConflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            RateLimited,
            Internal,
            Unavailable,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
            assert!((400..600).contains(&code.status()));
        }
    }
}
