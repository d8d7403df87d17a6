//! The error type of the Converge services, mapped once to HTTP (and, by each GraphQL door, to
//! GraphQL errors with the same codes).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::error::{ErrorCode, ErrorEnvelope, FieldErrors};

/// Every way a request can fail. Client mistakes carry a stable [`ErrorCode`]; anything else is
/// `Internal`, logged once with its cause and answered with an opaque 500.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client error with its code and a message for people.
    #[error("{message}")]
    Client { code: ErrorCode, message: String },
    /// 422 with a message per field (camelCase names).
    #[error("validation failed")]
    Validation(FieldErrors),
    /// 429; `retry_after_secs` goes to the `Retry-After` header.
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// 503: a dependency (the database, the image store) cannot be reached: worth retrying, unlike a bug. The
    /// cause is logged, never sent.
    #[error("unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// 500: a bug. The cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Client { code, message: message.into() }
    }

    /// A 422 naming one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(FieldErrors::from([(field.to_owned(), message.into())]))
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Client { code, .. } => *code,
            ApiError::Validation(_) => ErrorCode::ValidationFailed,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The seconds to wait before trying again, when that is the whole of the error.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The same error for another waiter (an error is not `Clone`: an internal cause is shared as
    /// its text, still logged and still opaque to the client).
    pub fn duplicate(&self) -> Self {
        match self {
            ApiError::Client { code, message } => ApiError::Client { code: *code, message: message.clone() },
            ApiError::Validation(fields) => ApiError::Validation(fields.clone()),
            ApiError::RateLimited { retry_after_secs } => ApiError::RateLimited { retry_after_secs: *retry_after_secs },
            ApiError::Unavailable(cause) => ApiError::Unavailable(anyhow::anyhow!("{cause:#}")),
            ApiError::Internal(cause) => ApiError::Internal(anyhow::anyhow!("{cause:#}")),
        }
    }

    /// Logs the cause of a failure that is not the client's (the client gets no cause).
    pub fn log(&self, what: &str) {
        match self {
            ApiError::Unavailable(cause) => tracing::warn!(error = format!("{cause:#}"), "{what}"),
            ApiError::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "{what}"),
            _ => {}
        }
    }

    /// The envelope sent to the client. Internal errors say nothing about their cause.
    pub fn envelope(&self) -> ErrorEnvelope {
        match self {
            ApiError::Client { code, message } => ErrorEnvelope::new(*code, message.clone()),
            ApiError::Validation(fields) => {
                ErrorEnvelope::with_fields(ErrorCode::ValidationFailed, "some fields are invalid", fields.clone())
            }
            ApiError::RateLimited { retry_after_secs } => {
                ErrorEnvelope::new(ErrorCode::RateLimited, format!("too many attempts; retry in {retry_after_secs} s"))
            }
            ApiError::Unavailable(_) => {
                ErrorEnvelope::new(ErrorCode::Unavailable, "a store this request needs is unreachable; retry shortly")
            }
            ApiError::Internal(_) => ErrorEnvelope::new(
                ErrorCode::Internal,
                "internal error; quote the x-request-id response header when reporting it",
            ),
        }
    }
}

#[cfg(feature = "entities")]
impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        let unreachable = database_unreachable(&err);
        let cause = anyhow::Error::new(err).context("database");
        if unreachable { ApiError::Unavailable(cause) } else { ApiError::Internal(cause) }
    }
}

/// Whether the database could not be reached — no connection to be had, or the link broke — as
/// opposed to a statement that failed.
#[cfg(feature = "entities")]
fn database_unreachable(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    match err {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(
                **e,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            )
        }
        DbErr::Conn(_) => true,
        _ => false,
    }
}

impl From<validator::ValidationErrors> for ApiError {
    fn from(errors: validator::ValidationErrors) -> Self {
        ApiError::Validation(crate::dto::field_errors(&errors))
    }
}

impl From<crate::token::TokenError> for ApiError {
    fn from(err: crate::token::TokenError) -> Self {
        match err {
            crate::token::TokenError::Expired => ApiError::new(ErrorCode::TokenExpired, "the access token has expired"),
            crate::token::TokenError::SessionEnded => ApiError::new(
                ErrorCode::InvalidToken,
                "the session of this access token has ended (signed out): sign in again",
            ),
            _ => ApiError::new(ErrorCode::InvalidToken, "the access token is invalid"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        self.log("request failed");
        let mut response = HttpResponse::build(self.status_code());
        if let Some(retry_after_secs) = self.retry_after_secs() {
            response.insert_header(("Retry-After", retry_after_secs.to_string()));
        } else if let ApiError::Unavailable(_) = self {
            response.insert_header(("Retry-After", "1"));
        }
        response.json(self.envelope())
    }
}

/// An [`ApiError`] as a GraphQL error with the same `code` (and `fields`, `retryAfter`) in its
/// extensions, so GraphQL clients branch on the codes REST and WebSocket clients see. Resolvers
/// convert with `.extend()` (async-graphql's `ResultExt`); a bare `?` would keep the message only.
#[cfg(feature = "graphql")]
impl async_graphql::ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        self.log("graphql request failed");
        let envelope = self.envelope();
        async_graphql::Error::new(envelope.error.message).extend_with(|_, ext| {
            ext.set("code", envelope.error.code.as_str());
            if let Some(fields) = &envelope.error.fields {
                ext.set("fields", async_graphql::Value::from_json(serde_json::json!(fields)).unwrap_or_default());
            }
            if let Some(retry_after_secs) = self.retry_after_secs() {
                ext.set("retryAfter", retry_after_secs);
            }
        })
    }
}
