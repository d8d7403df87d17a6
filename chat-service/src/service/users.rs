//! The users chat-service knows: learned from access tokens and from user-service's API, kept in
//! `known_users` so chats still show names while user-service is briefly down.

use std::collections::HashMap;

use chrono::Utc;
use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::UserDto;
use converge_shared::entities::chat::known_user;
use converge_shared::error::ErrorCode;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::context::{AppContext, Caller};
use crate::relay::{ChatEvent, Topic};

/// Records (or refreshes) a user's display name. Every connection calls this with its token's name:
/// an unchanged name costs a read, not a durable write (a reconnect storm would otherwise pay a WAL
/// flush per client).
pub async fn remember<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    display_name: &str,
    avatar_url: Option<String>,
) -> ApiResult<()> {
    let display_name = stored_name(display_name);
    if avatar_url.is_none()
        && let Some(known) = known_user::Entity::find_by_id(id).one(db).await?
        && known.display_name == display_name
    {
        return Ok(());
    }
    let row = known_user::ActiveModel {
        id: Set(id),
        display_name: Set(display_name),
        avatar_url: Set(avatar_url),
        updated_at: Set(Utc::now()),
        profile_at: Set(None),
    };
    known_user::Entity::insert(row)
        .on_conflict(
            OnConflict::column(known_user::Column::Id)
                .update_columns([known_user::Column::DisplayName, known_user::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// What a token of the user's says of their profile.
pub struct TokenProfile<'a> {
    /// Its `name` claim.
    pub name: &'a str,
    /// Its `profile_at` claim: the profile version the name is from.
    pub profile_at: Option<i64>,
    /// The token itself, when at hand: user-service is asked with it (as the user) for a profile
    /// version later than the one kept.
    pub token: Option<&'a str>,
}

/// Brings what chats show of a user (name, picture) up to date with a token of theirs, and tells
/// each of `chats` (theirs) when it changed, so members see it at once rather than on a reload.
/// A token from before the profile version kept changes nothing; otherwise its name is taken, and
/// with a later version and the token at hand, user-service is asked for the whole profile. If it
/// cannot answer, the token's name is kept and the version is looked up again with the next token.
pub async fn refresh_profile(
    ctx: &AppContext,
    user_id: Uuid,
    from: TokenProfile<'_>,
    chats: impl IntoIterator<Item = Uuid>,
) -> ApiResult<()> {
    if let Some(shown) = record_profile(ctx, user_id, from).await? {
        announce_profile(ctx, user_id, &shown, chats).await;
    }
    Ok(())
}

/// [`refresh_profile`] for a connection that follows no chat of its own (a GraphQL subscription's):
/// the user's chats are looked up only when they have something to be told.
pub async fn refresh_profile_in_every_chat(ctx: &AppContext, user_id: Uuid, from: TokenProfile<'_>) -> ApiResult<()> {
    if let Some(shown) = record_profile(ctx, user_id, from).await? {
        let chats = super::chats::chat_ids_of(&ctx.db, user_id).await?;
        announce_profile(ctx, user_id, &shown, chats).await;
    }
    Ok(())
}

/// Records what `from` says of the user; the name and picture chats must now show, if they changed.
async fn record_profile(
    ctx: &AppContext,
    user_id: Uuid,
    from: TokenProfile<'_>,
) -> ApiResult<Option<known_user::Model>> {
    let known = known_user::Entity::find_by_id(user_id).one(&ctx.db).await?;
    let kept_version = known.as_ref().and_then(|k| k.profile_at);
    if let (Some(kept), Some(version)) = (kept_version, from.profile_at)
        && version < kept
    {
        return Ok(None);
    }
    let mut next = known_user::Model {
        id: user_id,
        display_name: stored_name(from.name),
        avatar_url: known.as_ref().and_then(|k| k.avatar_url.clone()),
        updated_at: Utc::now(),
        profile_at: kept_version,
    };
    let newer = from.profile_at.filter(|version| kept_version.is_none_or(|kept| *version > kept));
    if let (Some(version), Some(token)) = (newer, from.token) {
        match fetch_user(ctx, token, user_id).await {
            Ok(Some(user)) => {
                next.display_name = stored_name(&user.display_name);
                next.avatar_url = user.avatar_url;
                next.profile_at = Some(version);
            }
            Ok(None) => {}
            Err(e) => e.log("cannot look up a user's newer profile; the token's name is kept"),
        }
    }
    // Whether chats already show what `next` would.
    let shows_next = |k: &known_user::Model| k.display_name == next.display_name && k.avatar_url == next.avatar_url;
    if known.as_ref().is_some_and(|k| shows_next(k) && k.profile_at == next.profile_at) {
        return Ok(None);
    }
    known_user::Entity::insert(known_user::ActiveModel::from(next.clone()))
        .on_conflict(
            OnConflict::column(known_user::Column::Id)
                .update_columns([
                    known_user::Column::DisplayName,
                    known_user::Column::AvatarUrl,
                    known_user::Column::UpdatedAt,
                    known_user::Column::ProfileAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&ctx.db)
        .await?;
    Ok(known.as_ref().is_some_and(|k| !shows_next(k)).then_some(next))
}

/// Tells each of `chats` the name and picture they now show of the user.
async fn announce_profile(
    ctx: &AppContext,
    user_id: Uuid,
    shown: &known_user::Model,
    chats: impl IntoIterator<Item = Uuid>,
) {
    let events: Vec<(Topic, ChatEvent)> = chats
        .into_iter()
        .map(|chat_id| {
            let (display_name, avatar_url) = (shown.display_name.clone(), shown.avatar_url.clone());
            (Topic::Chat(chat_id), ChatEvent::ProfileChanged { chat_id, user_id, display_name, avatar_url })
        })
        .collect();
    super::publish_all(&**ctx.hub.relay(), &events).await;
}

/// A display name as `known_users` keeps it.
pub fn stored_name(display_name: &str) -> String {
    display_name.chars().take(64).collect()
}

/// The known users among `ids`.
pub async fn known<C: ConnectionTrait>(db: &C, ids: &[Uuid]) -> ApiResult<HashMap<Uuid, known_user::Model>> {
    let mut known = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(super::IDS_PER_QUERY) {
        let rows =
            known_user::Entity::find().filter(known_user::Column::Id.is_in(chunk.iter().copied())).all(db).await?;
        known.extend(rows.into_iter().map(|u| (u.id, u)));
    }
    Ok(known)
}

/// Makes sure every id names an active user-service user, asking user-service (as the caller)
/// about those not known yet. Unknown ids are a 422 naming `field`; an unreachable user-service,
/// when it matters, a 503.
pub async fn ensure_exist(ctx: &AppContext, caller: &Caller, ids: &[Uuid], field: &str) -> ApiResult<()> {
    let known = known(&ctx.db, ids).await?;
    for id in ids.iter().filter(|id| !known.contains_key(id)) {
        let Some(user) = fetch_user(ctx, &caller.token, *id).await? else {
            return Err(ApiError::field(field, format!("no user {id}")));
        };
        if !user.active {
            return Err(ApiError::field(field, format!("user {id} is deactivated")));
        }
        remember(&ctx.db, user.id, &user.display_name, user.avatar_url).await?;
    }
    Ok(())
}

/// A user as user-service has them, asked with `token`; `None` if there is no such user.
async fn fetch_user(ctx: &AppContext, token: &str, id: Uuid) -> ApiResult<Option<UserDto>> {
    let unavailable = || ApiError::new(ErrorCode::Unavailable, "cannot check users right now; try again shortly");
    let url = format!("{}/users/{id}", ctx.config.user_service_url.trim_end_matches('/'));
    let response = ctx.http.get(&url).bearer_auth(token).send().await.map_err(|e| {
        tracing::warn!(error = %e, "user-service unreachable");
        unavailable()
    })?;
    match response.status().as_u16() {
        200 => Ok(Some(response.json().await.map_err(|e| anyhow::anyhow!("user-service answer: {e}"))?)),
        404 => Ok(None),
        status => {
            tracing::warn!(status, "user-service refused a user lookup");
            Err(unavailable())
        }
    }
}
