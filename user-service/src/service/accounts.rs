//! Registering, logging in and changing a password.

use chrono::Utc;
use converge_shared::dto::{AuthResponse, ChangePasswordRequest, LoginRequest, RegisterRequest};
use converge_shared::entities::users::user;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use uuid::Uuid;
use validator::Validate;

use super::{account_deactivated, invalid_credentials, sessions, user_conflict, users};
use crate::context::AppContext;
use converge_shared::api_error::{ApiError, ApiResult};

/// Creates an account and signs it in. `client_ip` is counted against the attempt limit.
#[tracing::instrument(skip_all, fields(user.id))]
pub async fn register(ctx: &AppContext, client_ip: &str, req: RegisterRequest) -> ApiResult<AuthResponse> {
    ctx.limits.check_ip(client_ip)?;
    req.validate()?;
    let username_key = req.username.to_lowercase();
    let email_key = req.email.trim().to_lowercase();
    refuse_own_name("password", &req.password, [Some(&username_key), Some(&email_key)])?;
    let display_name = req.display_name.trim().to_owned();
    if display_name.is_empty() {
        return Err(ApiError::field("displayName", "must not be blank"));
    }

    let password_hash = ctx.passwords.hash(req.password).await?;
    let now = Utc::now();
    let txn = ctx.db.begin().await?;
    let user = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        username: Set(Some(req.username)),
        username_key: Set(Some(username_key)),
        email: Set(Some(req.email.trim().to_owned())),
        email_key: Set(Some(email_key)),
        display_name: Set(display_name),
        avatar_url: Set(req.avatar_url.filter(|url| !url.is_empty())),
        password_hash: Set(Some(password_hash)),
        app_id: Set(None),
        external_id: Set(None),
        deactivated_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(user_conflict)?;
    let tokens = sessions::start(ctx, &txn, &user).await?;
    txn.commit().await?;
    tracing::Span::current().record("user.id", tracing::field::display(user.id));
    tracing::info!("registered");
    Ok(AuthResponse { user: user.to_me(), tokens })
}

/// Signs in by username or email. Unknown accounts and wrong passwords answer alike, in the same time.
#[tracing::instrument(skip_all, fields(user.id))]
pub async fn login(ctx: &AppContext, client_ip: &str, req: LoginRequest) -> ApiResult<AuthResponse> {
    ctx.limits.check_ip(client_ip)?;
    req.validate()?;
    let login_key = req.login.trim().to_lowercase();

    let column = if login_key.contains('@') { user::Column::EmailKey } else { user::Column::UsernameKey };
    let user = user::Entity::find().filter(column.eq(&login_key)).one(&ctx.db).await?;
    // Counted per account, not per name typed: the username and the email are one account's.
    ctx.limits.check_account(&user.as_ref().map_or(login_key, limit_key))?;
    let stored_hash = user.as_ref().and_then(|u| u.password_hash.clone());
    if !ctx.passwords.verify(req.password, stored_hash).await? {
        return Err(invalid_credentials());
    }
    let user = user.ok_or_else(|| anyhow::anyhow!("password matched without an account"))?;
    if !user.is_active() {
        return Err(account_deactivated());
    }
    let tokens = sessions::start_after_login(ctx, &user).await?;
    tracing::Span::current().record("user.id", tracing::field::display(user.id));
    Ok(AuthResponse { user: user.to_me(), tokens })
}

/// Changes the signed-in user's password once the current one is confirmed, and ends every other
/// session of the account, so whoever else held one is signed out; the caller's session `keep`
/// stays signed in. A wrong current password is a field error, not a 401: the caller's token is
/// fine, and clients sign out on 401. Attempts count against the account's login limit, so this
/// cannot be used to guess the password faster than logging in.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn change_password(
    ctx: &AppContext,
    user_id: Uuid,
    keep: Option<Uuid>,
    req: ChangePasswordRequest,
) -> ApiResult<()> {
    req.validate()?;
    let user = users::find_active(ctx, user_id).await?;
    if req.new_password == req.current_password {
        return Err(ApiError::field("newPassword", "must differ from the current password"));
    }
    refuse_own_name("newPassword", &req.new_password, [user.username_key.as_deref(), user.email_key.as_deref()])?;
    ctx.limits.check_account(&limit_key(&user))?;
    if !ctx.passwords.verify(req.current_password, user.password_hash.clone()).await? {
        return Err(ApiError::field("currentPassword", "is not your current password"));
    }

    let password_hash = ctx.passwords.hash(req.new_password).await?;
    let txn = ctx.db.begin().await?;
    // Only over the hash just confirmed: of two changes at once (two devices), the second finds
    // its current password gone rather than silently replacing the first's. `updated_at` stays:
    // it is the profile's version (`profile_at` in tokens), and the profile did not change.
    let changed = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::PasswordHash.eq(user.password_hash))
        .exec(&txn)
        .await?;
    if changed.rows_affected == 0 {
        return Err(ApiError::field("currentPassword", "is not your current password"));
    }
    let ended = sessions::logout_all_but(&txn, user_id, keep).await?;
    txn.commit().await?;
    ctx.endings.announce(user_id, ended).await;
    tracing::info!("password changed");
    Ok(())
}

/// What attempts at `user`'s password are counted under.
fn limit_key(user: &user::Model) -> String {
    user.id.to_string()
}

/// Refuses a password that is the account's username or email address, in any case.
fn refuse_own_name(field: &str, password: &str, names: [Option<&str>; 2]) -> ApiResult<()> {
    let password = password.to_lowercase();
    if names.into_iter().flatten().any(|name| name == password) {
        return Err(ApiError::field(field, "must not be your username or email"));
    }
    Ok(())
}
