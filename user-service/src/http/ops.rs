//! Operations: liveness, readiness, metrics and the public signing keys.

use actix_web::{HttpResponse, get, web};
use converge_shared::error::{ErrorCode, ErrorEnvelope};

use crate::context::AppContext;

/// Ready: the database answers.
#[utoipa::path(tag = "ops", responses((status = 200), (status = 503, body = ErrorEnvelope)))]
#[get("/ready")]
pub async fn ready(ctx: web::Data<AppContext>) -> HttpResponse {
    match ctx.db.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "database": "up" })),
        Err(e) => {
            tracing::warn!(error = %e, "database unreachable");
            HttpResponse::ServiceUnavailable()
                .json(ErrorEnvelope::new(ErrorCode::Unavailable, "the database is unreachable"))
        }
    }
}

/// The public keys that verify access tokens, by `kid`.
#[utoipa::path(tag = "ops", responses((status = 200, description = "a JWK set")))]
#[get("/.well-known/jwks.json")]
pub async fn jwks(ctx: web::Data<AppContext>) -> HttpResponse {
    HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=300")).json(ctx.keys.jwks())
}
