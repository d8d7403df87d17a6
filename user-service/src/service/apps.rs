//! Integrating apps: created by an operator, they provision their own users by external id and get
//! access tokens for them, which is how a host app embeds Converge.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use converge_shared::dto::{ExternalUserRequest, ExternalUserResponse, UserDto};
use converge_shared::entities::users::{app, user};
use converge_shared::error::ErrorCode;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set, SqlErr};
use uuid::Uuid;
use validator::Validate;

use super::account_deactivated;
use super::sessions::{access_token, hash_token};
use crate::context::AppContext;
use converge_shared::api_error::{ApiError, ApiResult};

/// Prefix of app API keys, so a leaked one is recognisable in logs and secret scanners.
const KEY_PREFIX: &str = "cvk_";

/// Creates an app and returns it with its API key. The key is not stored, only its hash: this is
/// the one time it can be seen.
pub async fn create(db: &DatabaseConnection, name: &str) -> anyhow::Result<(app::Model, String)> {
    let name = name.trim();
    anyhow::ensure!(!name.is_empty() && name.len() <= 64, "an app name has 1 to 64 characters");
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()));
    let app = app::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name.to_owned()),
        key_hash: Set(hash_token(&key)),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
    }
    .insert(db)
    .await
    .map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => anyhow::anyhow!("an app named {name:?} exists already"),
        _ => anyhow::Error::new(e),
    })?;
    Ok((app, key))
}

/// The app holding this API key.
pub async fn authenticate(ctx: &AppContext, key: &str) -> ApiResult<app::Model> {
    let invalid = || ApiError::new(ErrorCode::InvalidApiKey, "the API key is invalid or revoked");
    if !key.starts_with(KEY_PREFIX) {
        return Err(invalid());
    }
    app::Entity::find()
        .filter(app::Column::KeyHash.eq(hash_token(key)))
        .filter(app::Column::RevokedAt.is_null())
        .one(&ctx.db)
        .await?
        .ok_or_else(invalid)
}

/// Creates or updates the app's user `external_id`, and issues an access token for them.
/// Calling it again with the same data changes nothing and returns the same user.
pub async fn upsert_external_user(
    ctx: &AppContext,
    app: &app::Model,
    external_id: &str,
    req: ExternalUserRequest,
) -> ApiResult<ExternalUserResponse> {
    validate_external_id(external_id)?;
    req.validate()?;
    let display_name = req.display_name.trim().to_owned();
    if display_name.is_empty() {
        return Err(ApiError::field("displayName", "must not be blank"));
    }
    let now = Utc::now();
    let new_id = Uuid::now_v7();
    let candidate = user::ActiveModel {
        id: Set(new_id),
        username: Set(None),
        username_key: Set(None),
        email: Set(None),
        email_key: Set(None),
        display_name: Set(display_name),
        avatar_url: Set(req.avatar_url.filter(|u| !u.is_empty())),
        password_hash: Set(None),
        app_id: Set(Some(app.id)),
        external_id: Set(Some(external_id.to_owned())),
        deactivated_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    // One statement, so two concurrent upserts of the same external id cannot create two users.
    // The existing row is updated only when the profile differs: `updated_at` is the profile
    // version tokens carry, and a moved one has chat-service look the profile up again.
    let changed = Expr::cust(
        "users.display_name <> excluded.display_name \
         OR COALESCE(users.avatar_url, '') <> COALESCE(excluded.avatar_url, '')",
    );
    let upserted = user::Entity::insert(candidate)
        .on_conflict(
            OnConflict::columns([user::Column::AppId, user::Column::ExternalId])
                .update_columns([user::Column::DisplayName, user::Column::AvatarUrl, user::Column::UpdatedAt])
                .action_and_where(changed)
                .to_owned(),
        )
        .exec_with_returning(&ctx.db)
        .await;
    let user = match upserted {
        Ok(user) => user,
        // The same profile again: nothing was written, and nothing returned.
        Err(DbErr::RecordNotInserted | DbErr::RecordNotFound(_)) => user::Entity::find()
            .filter(user::Column::AppId.eq(app.id))
            .filter(user::Column::ExternalId.eq(external_id))
            .one(&ctx.db)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the external user {external_id} vanished during its upsert"))?,
        Err(e) => return Err(e.into()),
    };
    if !user.is_active() {
        return Err(account_deactivated());
    }
    let (token, expires_in) = access_token(ctx, &user, None)?;
    Ok(ExternalUserResponse {
        created: user.id == new_id,
        user: user.to_dto(),
        access_token: token,
        token_type: "Bearer".into(),
        expires_in,
    })
}

/// The app's user known as `external_id`.
pub async fn get_external_user(ctx: &AppContext, app: &app::Model, external_id: &str) -> ApiResult<UserDto> {
    validate_external_id(external_id)?;
    user::Entity::find()
        .filter(user::Column::AppId.eq(app.id))
        .filter(user::Column::ExternalId.eq(external_id))
        .one(&ctx.db)
        .await?
        .map(|u| u.to_dto())
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no user with this external id"))
}

fn validate_external_id(external_id: &str) -> ApiResult<()> {
    if external_id.is_empty() || external_id.len() > 255 || external_id.chars().any(char::is_control) {
        return Err(ApiError::field("externalId", "must be 1 to 255 characters without control characters"));
    }
    Ok(())
}
