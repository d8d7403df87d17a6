//! Chats and their participants.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::{ChatDto, ChatKind, CreateChatRequest, ParticipantDto, Role};
use converge_shared::entities::chat::{chat, message, participant};
use converge_shared::error::ErrorCode;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    SqlErr, TransactionTrait,
};
use uuid::Uuid;
use validator::Validate;

use super::{chat_not_found, forbidden, publish, users};
use crate::context::{AppContext, Caller};
use crate::relay::{ChatEvent, Topic};

/// Creates a chat, or returns the existing direct chat of the two users. `bool` is whether it was created.
pub async fn create(ctx: &AppContext, caller: &Caller, req: CreateChatRequest) -> ApiResult<(ChatDto, bool)> {
    req.validate()?;
    let mut others: Vec<Uuid> = req.participant_ids.iter().copied().filter(|id| *id != caller.user_id).collect();
    others.sort();
    others.dedup();
    let direct_key = match req.kind {
        ChatKind::Direct => {
            if others.len() != 1 || req.participant_ids.len() != 1 {
                return Err(ApiError::field("participantIds", "a direct chat names exactly one other user"));
            }
            if req.title.is_some() {
                return Err(ApiError::field("title", "direct chats have no title"));
            }
            let mut pair = [caller.user_id, others[0]];
            pair.sort();
            Some(format!("{}:{}", pair[0], pair[1]))
        }
        ChatKind::Group => {
            let title = req.title.as_deref().map(str::trim).unwrap_or_default();
            if title.is_empty() {
                return Err(ApiError::field("title", "a group needs a title"));
            }
            None
        }
    };
    users::remember(&ctx.db, caller.user_id, &caller.name, None).await?;
    users::ensure_exist(ctx, caller, &others, "participantIds").await?;

    if let Some(key) = &direct_key
        && let Some(existing) =
            chat::Entity::find().filter(chat::Column::DirectKey.eq(key.as_str())).one(&ctx.db).await?
    {
        return Ok((view(&ctx.db, caller.user_id, existing).await?, false));
    }

    let now = Utc::now();
    let chat_id = Uuid::now_v7();
    let txn = ctx.db.begin().await?;
    let inserted = chat::ActiveModel {
        id: Set(chat_id),
        kind: Set(req.kind.as_str().to_owned()),
        title: Set(req.title.map(|t| t.trim().to_owned())),
        direct_key: Set(direct_key.clone()),
        created_by: Set(caller.user_id),
        created_at: Set(now),
        last_seq: Set(0),
        last_message_at: Set(None),
    }
    .insert(&txn)
    .await;
    let chat = match inserted {
        Ok(chat) => chat,
        // The same direct chat was created concurrently: the unique key picked the winner.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) && direct_key.is_some() => {
            txn.rollback().await?;
            let existing = chat::Entity::find()
                .filter(chat::Column::DirectKey.eq(direct_key.unwrap_or_default()))
                .one(&ctx.db)
                .await?
                .ok_or_else(|| anyhow::anyhow!("direct chat vanished after a conflict"))?;
            return Ok((view(&ctx.db, caller.user_id, existing).await?, false));
        }
        Err(e) => return Err(e.into()),
    };
    let owner_role = if req.kind == ChatKind::Direct { Role::Member } else { Role::Owner };
    insert_participant(&txn, chat_id, caller.user_id, owner_role).await?;
    for id in &others {
        insert_participant(&txn, chat_id, *id, Role::Member).await?;
    }
    txn.commit().await?;

    for user_id in std::iter::once(caller.user_id).chain(others.iter().copied()) {
        publish(ctx, Topic::User(user_id), ChatEvent::Joined { chat_id, user_id }).await;
    }
    Ok((view(&ctx.db, caller.user_id, chat).await?, true))
}

async fn insert_participant<C: ConnectionTrait>(conn: &C, chat_id: Uuid, user_id: Uuid, role: Role) -> ApiResult<()> {
    participant::ActiveModel {
        chat_id: Set(chat_id),
        user_id: Set(user_id),
        role: Set(role.as_str().to_owned()),
        joined_at: Set(Utc::now()),
        last_delivered_seq: Set(0),
        last_read_seq: Set(0),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// The viewer's chats, most recently active first.
pub async fn list(ctx: &AppContext, viewer: Uuid) -> ApiResult<Vec<ChatDto>> {
    let ids = chat_ids_of(&ctx.db, viewer).await?;
    list_of(ctx, viewer, ids).await
}

/// The viewer's chats among `ids` (from [`chat_ids_of`]), most recently active first.
pub async fn list_of(ctx: &AppContext, viewer: Uuid, ids: Vec<Uuid>) -> ApiResult<Vec<ChatDto>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let chats = chat::Entity::find().filter(chat::Column::Id.is_in(ids)).all(&ctx.db).await?;
    let mut views = views(&ctx.db, viewer, chats).await?;
    views.sort_by_key(|c| std::cmp::Reverse(c.last_message_at.unwrap_or(c.created_at)));
    Ok(views)
}

/// One chat, for a participant.
pub async fn get(ctx: &AppContext, viewer: Uuid, chat_id: Uuid) -> ApiResult<ChatDto> {
    let chat = find(&ctx.db, chat_id).await?;
    require_participant(&ctx.db, chat_id, viewer).await?;
    view(&ctx.db, viewer, chat).await
}

/// Adds users to a group; only its owners and admins may.
pub async fn add_participants(
    ctx: &AppContext,
    caller: &Caller,
    chat_id: Uuid,
    user_ids: Vec<Uuid>,
) -> ApiResult<ChatDto> {
    if user_ids.is_empty() || user_ids.len() > 999 {
        return Err(ApiError::field("userIds", "must name 1 to 999 users"));
    }
    let chat = find(&ctx.db, chat_id).await?;
    let me = require_participant(&ctx.db, chat_id, caller.user_id).await?;
    if chat.kind != ChatKind::Group.as_str() {
        return Err(ApiError::new(ErrorCode::Conflict, "direct chats have exactly two participants"));
    }
    if !Role::parse(&me.role).manages_members() {
        return Err(ApiError::new(ErrorCode::Forbidden, "only the group's owners and admins add participants"));
    }
    let present: HashSet<Uuid> = participants(&ctx.db, &[chat_id]).await?.into_iter().map(|p| p.user_id).collect();
    let mut added: Vec<Uuid> = user_ids.into_iter().filter(|id| !present.contains(id)).collect();
    added.sort();
    added.dedup();
    users::ensure_exist(ctx, caller, &added, "userIds").await?;
    let txn = ctx.db.begin().await?;
    for id in &added {
        insert_participant(&txn, chat_id, *id, Role::Member).await?;
    }
    txn.commit().await?;
    for user_id in &added {
        let joined = ChatEvent::Joined { chat_id, user_id: *user_id };
        publish(ctx, Topic::Chat(chat_id), joined.clone()).await;
        publish(ctx, Topic::User(*user_id), joined).await;
    }
    view(&ctx.db, caller.user_id, chat).await
}

/// Removes a participant from a group: owners and admins remove others; anyone may remove
/// themselves (leave). Owners cannot be removed by others.
pub async fn remove_participant(ctx: &AppContext, caller: &Caller, chat_id: Uuid, user_id: Uuid) -> ApiResult<()> {
    let chat = find(&ctx.db, chat_id).await?;
    let me = require_participant(&ctx.db, chat_id, caller.user_id).await?;
    if chat.kind != ChatKind::Group.as_str() {
        return Err(ApiError::new(ErrorCode::Conflict, "direct chats cannot be left"));
    }
    let target = participant::Entity::find_by_id((chat_id, user_id))
        .one(&ctx.db)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "this user is not a participant"))?;
    if user_id != caller.user_id {
        if !Role::parse(&me.role).manages_members() {
            return Err(ApiError::new(ErrorCode::Forbidden, "only the group's owners and admins remove participants"));
        }
        if Role::parse(&target.role) == Role::Owner {
            return Err(ApiError::new(ErrorCode::Forbidden, "the owner cannot be removed"));
        }
    }
    let txn = ctx.db.begin().await?;
    participant::Entity::delete_by_id((chat_id, user_id)).exec(&txn).await?;
    if Role::parse(&target.role) == Role::Owner {
        // A group keeps an owner: the longest-standing remaining member takes over.
        let heir = participant::Entity::find()
            .filter(participant::Column::ChatId.eq(chat_id))
            .order_by_asc(participant::Column::JoinedAt)
            .one(&txn)
            .await?;
        if let Some(heir) = heir {
            let mut heir: participant::ActiveModel = heir.into();
            heir.role = Set(Role::Owner.as_str().to_owned());
            heir.update(&txn).await?;
        }
    }
    txn.commit().await?;
    // The chat hears first: the one who left still follows it until their own event arrives.
    publish(ctx, Topic::Chat(chat_id), ChatEvent::Left { chat_id, user_id }).await;
    publish(ctx, Topic::User(user_id), ChatEvent::Left { chat_id, user_id }).await;
    Ok(())
}

pub async fn find<C: ConnectionTrait>(db: &C, chat_id: Uuid) -> ApiResult<chat::Model> {
    chat::Entity::find_by_id(chat_id).one(db).await?.ok_or_else(chat_not_found)
}

/// The participant row of `user_id`, or `forbidden`.
pub async fn require_participant<C: ConnectionTrait>(
    db: &C,
    chat_id: Uuid,
    user_id: Uuid,
) -> ApiResult<participant::Model> {
    participant::Entity::find_by_id((chat_id, user_id)).one(db).await?.ok_or_else(forbidden)
}

/// The ids of the chats a user is in.
pub async fn chat_ids_of<C: ConnectionTrait>(db: &C, user_id: Uuid) -> ApiResult<Vec<Uuid>> {
    Ok(participant::Entity::find()
        .filter(participant::Column::UserId.eq(user_id))
        .all(db)
        .await?
        .into_iter()
        .map(|p| p.chat_id)
        .collect())
}

/// The chats of `user_id` with at most `max_members` participants: where their presence is shared.
/// One query: presence asks it on every last disconnect of a user.
pub async fn small_chat_ids_of<C: ConnectionTrait>(db: &C, user_id: Uuid, max_members: usize) -> ApiResult<Vec<Uuid>> {
    let mine = Query::select()
        .column(participant::Column::ChatId)
        .from(participant::Entity)
        .and_where(participant::Column::UserId.eq(user_id))
        .to_owned();
    let max = i64::try_from(max_members).unwrap_or(i64::MAX);
    Ok(participant::Entity::find()
        .select_only()
        .column(participant::Column::ChatId)
        .filter(participant::Column::ChatId.in_subquery(mine))
        .group_by(participant::Column::ChatId)
        .having(Expr::col(participant::Column::UserId).count().lte(max))
        .into_tuple()
        .all(db)
        .await?)
}

async fn participants<C: ConnectionTrait>(db: &C, chat_ids: &[Uuid]) -> ApiResult<Vec<participant::Model>> {
    Ok(participant::Entity::find()
        .filter(participant::Column::ChatId.is_in(chat_ids.iter().copied()))
        .order_by_asc(participant::Column::JoinedAt)
        .all(db)
        .await?)
}

pub async fn view<C: ConnectionTrait>(db: &C, viewer: Uuid, chat: chat::Model) -> ApiResult<ChatDto> {
    views(db, viewer, vec![chat]).await?.pop().ok_or_else(|| anyhow::anyhow!("a chat view vanished").into())
}

/// Chat views for `viewer`: participants with names, the last message, and the unread count.
pub async fn views<C: ConnectionTrait>(db: &C, viewer: Uuid, chats: Vec<chat::Model>) -> ApiResult<Vec<ChatDto>> {
    let ids: Vec<Uuid> = chats.iter().map(|c| c.id).collect();
    let members = participants(db, &ids).await?;
    let user_ids: Vec<Uuid> = members.iter().map(|p| p.user_id).collect::<HashSet<_>>().into_iter().collect();
    let names = users::known(db, &user_ids).await?;
    let mut by_chat: HashMap<Uuid, Vec<participant::Model>> = HashMap::new();
    for member in members {
        by_chat.entry(member.chat_id).or_default().push(member);
    }
    let mut last_of = Condition::any();
    let mut any_last = false;
    for chat in chats.iter().filter(|c| c.last_seq > 0) {
        any_last = true;
        last_of = last_of.add(message::Column::ChatId.eq(chat.id).and(message::Column::Seq.eq(chat.last_seq)));
    }
    let last_messages: HashMap<Uuid, message::Model> = if any_last {
        message::Entity::find().filter(last_of).all(db).await?.into_iter().map(|m| (m.chat_id, m)).collect()
    } else {
        HashMap::new()
    };

    Ok(chats
        .into_iter()
        .map(|chat| {
            let members = by_chat.remove(&chat.id).unwrap_or_default();
            let viewer_read = members.iter().find(|p| p.user_id == viewer).map_or(0, |p| p.last_read_seq);
            ChatDto {
                id: chat.id,
                kind: ChatKind::parse(&chat.kind).unwrap_or(ChatKind::Group),
                title: chat.title,
                created_by: chat.created_by,
                created_at: chat.created_at,
                last_seq: chat.last_seq,
                last_message_at: chat.last_message_at,
                last_message: last_messages.get(&chat.id).map(message::Model::to_dto),
                unread_count: Ord::max(chat.last_seq - viewer_read, 0),
                participants: members
                    .into_iter()
                    .map(|p| {
                        let known = names.get(&p.user_id);
                        ParticipantDto {
                            user_id: p.user_id,
                            display_name: known.map_or_else(|| "Unknown user".to_owned(), |u| u.display_name.clone()),
                            avatar_url: known.and_then(|u| u.avatar_url.clone()),
                            role: Role::parse(&p.role),
                            last_delivered_seq: p.last_delivered_seq,
                            last_read_seq: p.last_read_seq,
                        }
                    })
                    .collect(),
            }
        })
        .collect())
}
