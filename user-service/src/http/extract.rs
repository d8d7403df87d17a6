//! Extractors that turn request headers into who is calling.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use converge_shared::auth::{Authenticator, bearer_token};
use converge_shared::entities::users::app;
use converge_shared::error::ErrorCode;
use converge_shared::token::AccessClaims;
use futures_util::future::LocalBoxFuture;

use crate::context::AppContext;
use crate::service;
use converge_shared::api_error::ApiError;

/// Verifies the bearer token of a request, if it has one.
pub async fn bearer_claims(req: &HttpRequest) -> Option<Result<AccessClaims, ApiError>> {
    let token = bearer_token(req)?;
    let Some(auth) = req.app_data::<web::Data<Authenticator>>() else {
        return Some(Err(anyhow::anyhow!("no Authenticator registered").into()));
    };
    Some(auth.verify(token).await.map_err(ApiError::from))
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
