//! Extractors that turn request headers into who is calling.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use converge_shared::entities::users::app;
use converge_shared::error::ErrorCode;
use converge_shared::token::{AccessClaims, TokenError};
use futures_util::future::LocalBoxFuture;

use crate::context::AppContext;
use crate::error::ApiError;
use crate::service;

/// The user of a valid access token (`Authorization: Bearer …`).
pub struct AuthUser(pub AccessClaims);

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(AuthUser))
    }
}

/// Verifies the bearer token of a request, if it has one.
pub fn bearer_claims(req: &HttpRequest) -> Option<Result<AccessClaims, ApiError>> {
    let token = bearer_token(req)?;
    let Some(ctx) = req.app_data::<web::Data<AppContext>>() else {
        return Some(Err(anyhow::anyhow!("AppContext is not registered").into()));
    };
    Some(ctx.keys.verifier().verify(token).map_err(token_error))
}

fn authenticate(req: &HttpRequest) -> Result<AccessClaims, ApiError> {
    bearer_claims(req).unwrap_or_else(|| Err(ApiError::new(ErrorCode::Unauthorized, "an access token is required")))
}

fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The client error for a refused access token.
pub fn token_error(err: TokenError) -> ApiError {
    match err {
        TokenError::Expired => ApiError::new(ErrorCode::TokenExpired, "the access token has expired"),
        TokenError::UnknownKey(_) | TokenError::Invalid => {
            ApiError::new(ErrorCode::InvalidToken, "the access token is invalid")
        }
    }
}

/// The integrating app of a valid `X-Api-Key` header.
pub struct AppKey(pub app::Model);

impl FromRequest for AppKey {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let ctx = req.app_data::<web::Data<AppContext>>().cloned();
        Box::pin(async move {
            let key = key.ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "an X-Api-Key header is required"))?;
            let ctx = ctx.ok_or_else(|| anyhow::anyhow!("AppContext is not registered"))?;
            service::apps::authenticate(&ctx, &key).await.map(AppKey)
        })
    }
}

/// The client's IP address: the peer, or the forwarded client when behind a trusted proxy.
pub struct ClientIp(pub String);

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ClientIp(client_ip(req))))
    }
}

pub fn client_ip(req: &HttpRequest) -> String {
    let trust_forwarded = req.app_data::<web::Data<AppContext>>().is_some_and(|ctx| ctx.config.trust_forwarded_for);
    let info = req.connection_info();
    let addr = if trust_forwarded { info.realip_remote_addr() } else { info.peer_addr() };
    addr.unwrap_or("unknown").to_owned()
}
