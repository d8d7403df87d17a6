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

/// Records a user's new display name and tells each of `chats` (theirs), so that members see it
/// at once rather than on their next reload.
pub async fn rename(
    ctx: &AppContext,
    user_id: Uuid,
    display_name: &str,
    chats: impl IntoIterator<Item = Uuid>,
) -> ApiResult<()> {
    remember(&ctx.db, user_id, display_name, None).await?;
    let display_name = stored_name(display_name);
    let events: Vec<(Topic, ChatEvent)> = chats
        .into_iter()
        .map(|chat_id| {
            (Topic::Chat(chat_id), ChatEvent::Renamed { chat_id, user_id, display_name: display_name.clone() })
        })
        .collect();
    super::publish_all(&**ctx.hub.relay(), &events).await;
    Ok(())
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
        let url = format!("{}/users/{id}", ctx.config.user_service_url.trim_end_matches('/'));
        let response = ctx.http.get(&url).bearer_auth(&caller.token).send().await.map_err(|e| {
            tracing::warn!(error = %e, "user-service unreachable");
            ApiError::new(ErrorCode::Unavailable, "cannot check users right now; try again shortly")
        })?;
        match response.status().as_u16() {
            200 => {
                let user: UserDto = response.json().await.map_err(|e| anyhow::anyhow!("user-service answer: {e}"))?;
                if !user.active {
                    return Err(ApiError::field(field, format!("user {id} is deactivated")));
                }
                remember(&ctx.db, user.id, &user.display_name, user.avatar_url).await?;
            }
            404 => return Err(ApiError::field(field, format!("no user {id}"))),
            status => {
                tracing::warn!(status, "user-service refused a user lookup");
                return Err(ApiError::new(ErrorCode::Unavailable, "cannot check users right now; try again shortly"));
            }
        }
    }
    Ok(())
}
