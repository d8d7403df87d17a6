//! The rules of user-service. REST and GraphQL handlers only translate to and from these functions.

pub mod accounts;
pub mod apps;
pub mod passwords;
pub mod rate_limit;
pub mod sessions;
pub mod users;

use converge_shared::error::ErrorCode;
use sea_orm::{DbErr, SqlErr};

use converge_shared::api_error::ApiError;

/// The answer to anything a deactivated account asks for.
pub(crate) fn account_deactivated() -> ApiError {
    ApiError::new(ErrorCode::AccountDeactivated, "this account is deactivated")
}

/// The answer to a login with a wrong password or an unknown account alike.
pub(crate) fn invalid_credentials() -> ApiError {
    ApiError::new(ErrorCode::InvalidCredentials, "wrong username, email or password")
}

/// Maps a unique-constraint violation on users to the 409 a client understands; anything else is
/// internal. Checking the constraint, rather than looking first, is what makes it race-free.
pub(crate) fn user_conflict(err: DbErr) -> ApiError {
    if let Some(SqlErr::UniqueConstraintViolation(detail)) = err.sql_err() {
        if detail.contains("username_key") {
            return ApiError::new(ErrorCode::UsernameTaken, "this username is taken");
        }
        if detail.contains("email_key") {
            return ApiError::new(ErrorCode::EmailTaken, "an account with this email exists");
        }
    }
    err.into()
}
