//! Operations: liveness, readiness and metrics.

use actix_web::{HttpResponse, get, web};
use converge_shared::error::{ErrorCode, ErrorEnvelope};

use crate::context::AppContext;

/// Ready: the database answers. Also reports the relay (`local`, or Redis `up`/`down`): an instance
/// cut off from Redis still serves (sends are stored and acknowledged, its clients catch up when
/// Redis returns), so it stays ready.
#[utoipa::path(tag = "ops", responses((status = 200), (status = 503, body = ErrorEnvelope)))]
#[get("/ready")]
pub async fn ready(ctx: web::Data<AppContext>) -> HttpResponse {
    let relay = ctx.hub.relay().status();
    match ctx.db.ping().await {
        Ok(()) => {
            let redis = if relay == "local" { "unused" } else { relay };
            HttpResponse::Ok()
                .json(serde_json::json!({ "status": "ready", "database": "up", "relay": relay, "redis": redis }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "database unreachable");
            HttpResponse::ServiceUnavailable()
                .json(ErrorEnvelope::new(ErrorCode::Unavailable, "the database is unreachable"))
        }
    }
}
