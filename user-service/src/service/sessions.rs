//! Sessions: short-lived access tokens, and rotating refresh tokens grouped in families.
//!
//! Logging in starts a family. Each refresh spends the presented token and issues the next one of
//! the same family. Presenting a spent token means it was stolen or replayed, so the whole family is
//! revoked: the thief and the victim are both signed out, and the victim logs in again.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use converge_shared::dto::{AuthResponse, TokenPair};
use converge_shared::entities::users::{refresh_token, user};
use converge_shared::error::ErrorCode;
use converge_shared::token::{AUDIENCE, AccessClaims, ISSUER};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect, Set, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{account_deactivated, invalid_credentials};
use crate::context::AppContext;
use converge_shared::api_error::{ApiError, ApiResult};

/// Signs an access token for `user`, within session `sid` (none for tokens issued to an app).
/// Returns the token and its lifetime in seconds.
pub fn access_token(ctx: &AppContext, user: &user::Model, sid: Option<Uuid>) -> ApiResult<(String, i64)> {
    let now = Utc::now().timestamp();
    let ttl = ctx.config.access_token_ttl_secs;
    let claims = AccessClaims {
        sub: user.id,
        sid,
        name: user.display_name.clone(),
        profile_at: Some(user.updated_at.timestamp_millis()),
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        iat: now,
        nbf: now,
        exp: now + ttl,
    };
    Ok((ctx.keys.sign(&claims)?, ttl))
}

/// Starts a new session for `user` on `conn` (inside the caller's transaction when it has one).
pub async fn start<C: ConnectionTrait>(ctx: &AppContext, conn: &C, user: &user::Model) -> ApiResult<TokenPair> {
    let family = Uuid::now_v7();
    let refresh = insert_refresh_token(ctx, conn, user.id, family).await?;
    token_pair(ctx, user, family, refresh)
}

/// Starts a new session for `user`, whose password [`accounts::login`](super::accounts::login)
/// has just checked against `user.password_hash`, unless the password was changed or the account
/// deactivated since: a session started with the old password after the change would outlive the
/// change that was meant to end every session.
pub async fn start_after_login(ctx: &AppContext, user: &user::Model) -> ApiResult<TokenPair> {
    let (txn, now) = begin_holding_user(&ctx.db, user.id, Hold::Shared).await?;
    let Some(now) = now.filter(|now| now.password_hash == user.password_hash) else {
        return Err(invalid_credentials());
    };
    if !now.is_active() {
        return Err(account_deactivated());
    }
    let tokens = start(ctx, &txn, &now).await?;
    txn.commit().await?;
    Ok(tokens)
}

/// Spends `presented` and returns the next tokens of its session.
pub async fn refresh(ctx: &AppContext, presented: &str) -> ApiResult<AuthResponse> {
    let invalid = || ApiError::new(ErrorCode::InvalidRefreshToken, "the refresh token is invalid or expired");
    let row = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash_token(presented)))
        .one(&ctx.db)
        .await?
        .ok_or_else(invalid)?;
    if row.revoked_at.is_some() || row.expires_at <= Utc::now() {
        return Err(invalid());
    }
    if row.used_at.is_some() {
        return Err(reuse_detected(ctx, &row).await);
    }

    // Shared: refreshes of the user's sessions go side by side, but not beside ending them.
    let (txn, user) = begin_holding_user(&ctx.db, row.user_id, Hold::Shared).await?;
    let user = user.ok_or_else(invalid)?;
    if !user.is_active() {
        txn.rollback().await?;
        revoke_family(ctx, &row).await?;
        return Err(account_deactivated());
    }
    // Spend the token only if nobody else did since we read it: of two concurrent refreshes with the
    // same token exactly one wins, and the other is treated as the reuse it is; a token whose
    // session ended meanwhile is merely invalid.
    let spent = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::Id.eq(row.id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    if spent == 0 {
        txn.rollback().await?;
        let now = refresh_token::Entity::find_by_id(row.id).one(&ctx.db).await?;
        return match now {
            Some(now) if now.revoked_at.is_none() => Err(reuse_detected(ctx, &now).await),
            _ => Err(invalid()),
        };
    }
    let next = insert_refresh_token(ctx, &txn, user.id, row.family_id).await?;
    txn.commit().await?;
    Ok(AuthResponse { user: user.to_me(), tokens: token_pair(ctx, &user, row.family_id, next)? })
}

/// Ends the session of `presented`. Unknown or already revoked tokens are fine: logging out twice
/// is not an error.
pub async fn logout(ctx: &AppContext, presented: &str) -> ApiResult<()> {
    let row = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash_token(presented)))
        .one(&ctx.db)
        .await?;
    if let Some(row) = row {
        revoke_family(ctx, &row).await?;
    }
    Ok(())
}

/// Ends every session of a user, who must still be active.
pub async fn logout_all(ctx: &AppContext, user_id: Uuid) -> ApiResult<()> {
    let (txn, user) = begin_holding_user(&ctx.db, user_id, Hold::Exclusive).await?;
    if !user.is_some_and(|user| user.is_active()) {
        return Err(account_deactivated());
    }
    let ended = logout_all_but(&txn, user_id, None).await?;
    txn.commit().await?;
    ctx.endings.announce(user_id, ended).await;
    Ok(())
}

/// Ends every session of a user except `keep` (a session id, the `sid` of an access token), within
/// the caller's transaction, which must hold the user's row (see [`Hold`]): by updating it, as a
/// password change and a deactivation do, or by [`begin_holding_user`]. Answers the sessions it
/// ended, for the caller to announce once the transaction has committed.
pub async fn logout_all_but<C: ConnectionTrait>(conn: &C, user_id: Uuid, keep: Option<Uuid>) -> ApiResult<Vec<Uuid>> {
    let mut live = refresh_token::Entity::find()
        .select_only()
        .column(refresh_token::Column::FamilyId)
        .distinct()
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null());
    let mut revoke = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        live = live.filter(refresh_token::Column::FamilyId.ne(keep));
        revoke = revoke.filter(refresh_token::Column::FamilyId.ne(keep));
    }
    // The row lock held makes the two agree: no session of the user starts or ends in between.
    let ended = live.into_tuple::<Uuid>().all(conn).await?;
    revoke.exec(conn).await?;
    Ok(ended)
}

async fn reuse_detected(ctx: &AppContext, row: &refresh_token::Model) -> ApiError {
    tracing::warn!(user.id = %row.user_id, family = %row.family_id, "refresh token reused; revoking its session");
    if let Err(e) = revoke_family(ctx, row).await {
        return e;
    }
    ApiError::new(
        ErrorCode::RefreshTokenReused,
        "this refresh token was already used; the session has been ended, please log in again",
    )
}

/// Ends the session (the token family) that `row` belongs to.
async fn revoke_family(ctx: &AppContext, row: &refresh_token::Model) -> ApiResult<()> {
    let (txn, _) = begin_holding_user(&ctx.db, row.user_id, Hold::Exclusive).await?;
    let revoked = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::FamilyId.eq(row.family_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    txn.commit().await?;
    // Ended already (a second logout): it was announced then.
    if revoked.rows_affected > 0 {
        ctx.endings.announce(row.user_id, vec![row.family_id]).await;
    }
    Ok(())
}

/// How a transaction holds the row of the user whose sessions it reads or changes.
///
/// A refresh inserts its session's next token; ending sessions revokes the tokens there are. Were
/// they to run side by side, the revocation would not see a token inserted after it began, and a
/// session ended (by logout, a password change, a deactivation, a detected theft) would live on
/// through a refresh that was underway. Holding the user's row puts the two in order: the refresh
/// either commits first, and its new token is revoked with the rest, or starts after, and finds
/// its token revoked.
#[derive(Clone, Copy)]
enum Hold {
    /// Refreshing: beside other refreshes, never beside ending sessions.
    Shared,
    /// Ending sessions: alone.
    Exclusive,
}

/// Begins a transaction holding `user_id`'s row (see [`Hold`]), and returns it with the user as of
/// now, if there is one. On SQLite, where the database has a single writer and row locks do not
/// exist, the transaction takes the write lock at once instead (`BEGIN IMMEDIATE`), which also
/// keeps what it reads first from being outdated by another writer before it writes.
async fn begin_holding_user(
    db: &DatabaseConnection,
    user_id: Uuid,
    hold: Hold,
) -> ApiResult<(DatabaseTransaction, Option<user::Model>)> {
    let options =
        TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() };
    let txn = db.begin_with_options(options).await?;
    let select = user::Entity::find_by_id(user_id);
    let select = match hold {
        Hold::Shared => select.lock_shared(),
        Hold::Exclusive => select.lock_exclusive(),
    };
    let user = select.one(&txn).await?;
    Ok((txn, user))
}

async fn insert_refresh_token<C: ConnectionTrait>(
    ctx: &AppContext,
    conn: &C,
    user_id: Uuid,
    family: Uuid,
) -> ApiResult<String> {
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let now = Utc::now();
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        family_id: Set(family),
        token_hash: Set(hash_token(&token)),
        created_at: Set(now),
        expires_at: Set(now + Duration::seconds(ctx.config.refresh_token_ttl_secs)),
        used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(token)
}

fn token_pair(ctx: &AppContext, user: &user::Model, family: Uuid, refresh_token: String) -> ApiResult<TokenPair> {
    let (access_token, expires_in) = access_token(ctx, user, Some(family))?;
    Ok(TokenPair { access_token, refresh_token, token_type: "Bearer".into(), expires_in })
}

/// SHA-256 in hex: refresh tokens and API keys are 256-bit random, so a fast hash is enough to make
/// a stolen table useless (a slow hash is for low-entropy secrets like passwords).
pub(crate) fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
