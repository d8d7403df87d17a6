//! The WebSocket door at `/ws`: the protocol of `converge_shared::protocol`, documented in
//! docs/protocol.md.

mod connection;

use actix_web::{HttpRequest, HttpResponse, web};
use converge_shared::auth::{Authenticator, bearer_token};

use crate::context::AppContext;

/// Frames up to this many times the configured limit are read (and answered with an error frame);
/// beyond it the connection is closed with 1009, since such a frame cannot be skipped cheaply.
const HARD_LIMIT_FACTOR: usize = 4;

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    ctx: web::Data<AppContext>,
    auth: web::Data<Authenticator>,
) -> actix_web::Result<HttpResponse> {
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let hard_limit = ctx.config.max_frame_bytes.saturating_mul(HARD_LIMIT_FACTOR);
    let stream = stream.max_frame_size(hard_limit).aggregate_continuations().max_continuation_size(hard_limit);
    let header_token = bearer_token(&req).map(str::to_owned);
    actix_web::rt::spawn(connection::run(ctx.get_ref().clone(), auth.into_inner(), session, stream, header_token));
    Ok(response)
}
