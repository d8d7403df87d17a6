//! Looking up users, and a user's own profile.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use converge_shared::dto::{MeDto, Page, UpdateProfileRequest, UserDto, UserListQuery};
use converge_shared::entities::users::user;
use converge_shared::error::ErrorCode;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use uuid::Uuid;
use validator::Validate;

use super::{account_deactivated, sessions};
use crate::context::AppContext;
use converge_shared::api_error::{ApiError, ApiResult};

const DEFAULT_PAGE_SIZE: u64 = 20;

/// Any user by id, active or not (so a chat can still name someone who left).
pub async fn get(ctx: &AppContext, id: Uuid) -> ApiResult<UserDto> {
    Ok(find(ctx, id).await?.to_dto())
}

/// The signed-in user's own profile.
pub async fn me(ctx: &AppContext, user_id: Uuid) -> ApiResult<MeDto> {
    Ok(find_active(ctx, user_id).await?.to_me())
}

/// Active users in creation order, optionally filtered by a case-insensitive substring of the
/// username or display name. The cursor is the last id of the previous page, so a walk over all
/// pages sees every user exactly once even while others register.
pub async fn list(ctx: &AppContext, query: UserListQuery) -> ApiResult<Page<UserDto>> {
    query.validate()?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    let mut select = user::Entity::find().filter(user::Column::DeactivatedAt.is_null());
    if let Some(cursor) = query.cursor.as_deref().filter(|c| !c.is_empty()) {
        select = select.filter(user::Column::Id.gt(decode_cursor(cursor)?));
    }
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
        select = select.filter(
            Condition::any()
                .add(Expr::col(user::Column::UsernameKey).like(LikeExpr::new(pattern.clone()).escape('\\')))
                .add(
                    Expr::expr(Func::lower(Expr::col(user::Column::DisplayName)))
                        .like(LikeExpr::new(pattern).escape('\\')),
                ),
        );
    }
    // One extra row tells whether another page exists without a count query.
    let mut rows = select.order_by_asc(user::Column::Id).limit(limit + 1).all(&ctx.db).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more.then(|| rows.last().map(|u| encode_cursor(u.id))).flatten();
    Ok(Page { items: rows.iter().map(user::Model::to_dto).collect(), next_cursor })
}

/// Changes the fields present in `req`.
pub async fn update_profile(ctx: &AppContext, user_id: Uuid, req: UpdateProfileRequest) -> ApiResult<MeDto> {
    req.validate()?;
    let user = find_active(ctx, user_id).await?;
    let mut active = user.into_active_model();
    if let Some(name) = req.display_name {
        let name = name.trim().to_owned();
        if name.is_empty() {
            return Err(ApiError::field("displayName", "must not be blank"));
        }
        active.display_name = Set(name);
    }
    if let Some(url) = req.avatar_url {
        active.avatar_url = Set(Some(url).filter(|u| !u.is_empty()));
    }
    active.updated_at = Set(Utc::now());
    Ok(active.update(&ctx.db).await?.to_me())
}

/// Deactivates the account and ends all its sessions, in one transaction.
pub async fn deactivate(ctx: &AppContext, user_id: Uuid) -> ApiResult<()> {
    let user = find_active(ctx, user_id).await?;
    let txn = ctx.db.begin().await?;
    let mut active = user.into_active_model();
    active.deactivated_at = Set(Some(Utc::now()));
    active.updated_at = Set(Utc::now());
    active.update(&txn).await?;
    let ended = sessions::logout_all_but(&txn, user_id, None).await?;
    txn.commit().await?;
    ctx.endings.announce(user_id, ended).await;
    tracing::info!(user.id = %user_id, "account deactivated");
    Ok(())
}

async fn find(ctx: &AppContext, id: Uuid) -> ApiResult<user::Model> {
    user::Entity::find_by_id(id).one(&ctx.db).await?.ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such user"))
}

/// The user behind a valid access token, refused if deactivated since the token was issued.
pub(crate) async fn find_active(ctx: &AppContext, id: Uuid) -> ApiResult<user::Model> {
    let user = find(ctx, id).await?;
    if !user.is_active() {
        return Err(account_deactivated());
    }
    Ok(user)
}

/// The cursor that continues a listing after `user`.
pub fn cursor_of(user: &UserDto) -> String {
    encode_cursor(user.id)
}

fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(cursor: &str) -> ApiResult<Uuid> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::field("cursor", "is not a cursor this API returned"))
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
