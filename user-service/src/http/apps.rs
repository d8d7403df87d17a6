//! `/apps/users/{externalId}`: integrating apps provision their users (authenticated by `X-Api-Key`).

use actix_web::{HttpResponse, get, put, web};
use converge_shared::dto::{ExternalUserRequest, ExternalUserResponse, UserDto};
use converge_shared::error::ErrorEnvelope;

use super::extract::AppKey;
use crate::context::AppContext;
use crate::service::apps;
use converge_shared::api_error::ApiResult;

/// Create or update the app's user with this external id, and get an access token for them.
#[utoipa::path(tag = "apps", security(("api_key" = [])), params(("externalId" = String, Path)),
    request_body = ExternalUserRequest, responses(
    (status = 201, description = "created", body = ExternalUserResponse),
    (status = 200, description = "updated", body = ExternalUserResponse),
    (status = 401, description = "invalid_api_key", body = ErrorEnvelope),
))]
#[put("/apps/users/{external_id}")]
pub async fn upsert(
    ctx: web::Data<AppContext>,
    app: AppKey,
    external_id: web::Path<String>,
    body: web::Json<ExternalUserRequest>,
) -> ApiResult<HttpResponse> {
    let response = apps::upsert_external_user(&ctx, &app.0, &external_id, body.into_inner()).await?;
    let mut builder = if response.created { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(builder.json(response))
}

/// The app's user with this external id.
#[utoipa::path(tag = "apps", security(("api_key" = [])), params(("externalId" = String, Path)), responses(
    (status = 200, body = UserDto),
    (status = 404, body = ErrorEnvelope),
))]
#[get("/apps/users/{external_id}")]
pub async fn get(
    ctx: web::Data<AppContext>,
    app: AppKey,
    external_id: web::Path<String>,
) -> ApiResult<web::Json<UserDto>> {
    Ok(web::Json(apps::get_external_user(&ctx, &app.0, &external_id).await?))
}
