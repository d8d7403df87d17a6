//! `/users`: the directory and the signed-in user's profile.

use actix_web::{HttpResponse, get, patch, post, web};
use converge_shared::dto::{ChangePasswordRequest, MeDto, Page, UpdateProfileRequest, UserDto, UserListQuery};
use converge_shared::error::ErrorEnvelope;
use uuid::Uuid;

use crate::context::AppContext;
use crate::service::{accounts, users};
use converge_shared::api_error::ApiResult;
use converge_shared::auth::AuthUser;

/// Active users, oldest first, filtered by `q`; follow `nextCursor` for the next page.
#[utoipa::path(tag = "users", security(("bearer" = [])), params(UserListQuery), responses(
    (status = 200, body = Page<UserDto>),
    (status = 422, description = "validation_failed (limit, cursor)", body = ErrorEnvelope),
))]
#[get("/users")]
pub async fn list(
    ctx: web::Data<AppContext>,
    _user: AuthUser,
    query: web::Query<UserListQuery>,
) -> ApiResult<web::Json<Page<UserDto>>> {
    Ok(web::Json(users::list(&ctx, query.into_inner()).await?))
}

/// The signed-in user.
#[utoipa::path(tag = "users", security(("bearer" = [])), responses((status = 200, body = MeDto), (status = 401, body = ErrorEnvelope)))]
#[get("/users/me")]
pub async fn me(ctx: web::Data<AppContext>, user: AuthUser) -> ApiResult<web::Json<MeDto>> {
    Ok(web::Json(users::me(&ctx, user.claims.sub).await?))
}

/// Change the signed-in user's display name or avatar.
#[utoipa::path(tag = "users", security(("bearer" = [])), request_body = UpdateProfileRequest, responses(
    (status = 200, body = MeDto),
    (status = 422, body = ErrorEnvelope),
))]
#[patch("/users/me")]
pub async fn update_me(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    body: web::Json<UpdateProfileRequest>,
) -> ApiResult<web::Json<MeDto>> {
    Ok(web::Json(users::update_profile(&ctx, user.claims.sub, body.into_inner()).await?))
}

/// Change the signed-in user's password. Every other session of the account ends; this one stays
/// signed in.
#[utoipa::path(tag = "users", security(("bearer" = [])), request_body = ChangePasswordRequest, responses(
    (status = 204),
    (status = 401, body = ErrorEnvelope),
    (status = 403, description = "account_deactivated", body = ErrorEnvelope),
    (status = 422, description = "validation_failed (currentPassword is wrong; newPassword breaks the rules or is the current one)", body = ErrorEnvelope),
    (status = 429, description = "rate_limited (attempts count against the account's login limit)", body = ErrorEnvelope),
))]
#[post("/users/me/password")]
pub async fn change_password(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    body: web::Json<ChangePasswordRequest>,
) -> ApiResult<HttpResponse> {
    accounts::change_password(&ctx, user.claims.sub, user.claims.sid, body.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deactivate the signed-in user's account: every session ends, and login and refresh are refused.
#[utoipa::path(tag = "users", security(("bearer" = [])), responses((status = 204), (status = 403, body = ErrorEnvelope)))]
#[post("/users/me/deactivate")]
pub async fn deactivate_me(ctx: web::Data<AppContext>, user: AuthUser) -> ApiResult<HttpResponse> {
    users::deactivate(&ctx, user.claims.sub).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A user by id (deactivated users too, marked `active: false`).
#[utoipa::path(tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = UserDto),
    (status = 404, body = ErrorEnvelope),
))]
#[get("/users/{id}")]
pub async fn get(ctx: web::Data<AppContext>, _user: AuthUser, id: web::Path<Uuid>) -> ApiResult<web::Json<UserDto>> {
    Ok(web::Json(users::get(&ctx, id.into_inner()).await?))
}
