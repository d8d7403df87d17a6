//! `/auth`: register, login, refresh, logout.

use actix_web::{HttpResponse, post, web};
use converge_shared::dto::{AuthResponse, LoginRequest, RefreshRequest, RegisterRequest};
use converge_shared::error::ErrorEnvelope;

use converge_shared::auth::AuthUser;

use super::extract::ClientIp;
use crate::context::AppContext;
use crate::service::{accounts, sessions};
use converge_shared::api_error::ApiResult;

/// Create an account and sign in.
#[utoipa::path(tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, body = AuthResponse),
    (status = 409, description = "username_taken or email_taken", body = ErrorEnvelope),
    (status = 422, description = "validation_failed", body = ErrorEnvelope),
    (status = 429, description = "rate_limited", body = ErrorEnvelope),
))]
#[post("/auth/register")]
pub async fn register(
    ctx: web::Data<AppContext>,
    ip: ClientIp,
    body: web::Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Created().json(accounts::register(&ctx, &ip.0, body.into_inner()).await?))
}

/// Sign in with a username or email and a password.
#[utoipa::path(tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = AuthResponse),
    (status = 401, description = "invalid_credentials", body = ErrorEnvelope),
    (status = 403, description = "account_deactivated", body = ErrorEnvelope),
    (status = 429, description = "rate_limited", body = ErrorEnvelope),
))]
#[post("/auth/login")]
pub async fn login(
    ctx: web::Data<AppContext>,
    ip: ClientIp,
    body: web::Json<LoginRequest>,
) -> ApiResult<web::Json<AuthResponse>> {
    Ok(web::Json(accounts::login(&ctx, &ip.0, body.into_inner()).await?))
}

/// Exchange a refresh token for new tokens. The presented refresh token is spent.
#[utoipa::path(tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = AuthResponse),
    (status = 401, description = "invalid_refresh_token, or refresh_token_reused (the session is revoked)", body = ErrorEnvelope),
))]
#[post("/auth/refresh")]
pub async fn refresh(
    ctx: web::Data<AppContext>,
    body: web::Json<RefreshRequest>,
) -> ApiResult<web::Json<AuthResponse>> {
    Ok(web::Json(sessions::refresh(&ctx, &body.refresh_token).await?))
}

/// End the session of a refresh token.
#[utoipa::path(tag = "auth", request_body = RefreshRequest, responses((status = 204)))]
#[post("/auth/logout")]
pub async fn logout(ctx: web::Data<AppContext>, body: web::Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    sessions::logout(&ctx, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// End every session of the signed-in user.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope))
)]
#[post("/auth/logout-all")]
pub async fn logout_all(ctx: web::Data<AppContext>, user: AuthUser) -> ApiResult<HttpResponse> {
    sessions::logout_all(&ctx, user.claims.sub).await?;
    Ok(HttpResponse::NoContent().finish())
}
