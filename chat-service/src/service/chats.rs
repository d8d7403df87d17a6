//! Chats and their participants.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::{ChatDto, ChatKind, CreateChatRequest, ParticipantDto, Role};
use converge_shared::entities::chat::{chat, known_user, message, participant};
use converge_shared::error::ErrorCode;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    SqlErr, TransactionTrait,
};
use uuid::Uuid;
use validator::Validate;

use super::{IDS_PER_QUERY, chat_not_found, forbidden, publish, users};
use crate::context::{AppContext, Caller};
use crate::relay::{ChatEvent, Topic};

/// Longest group title, in characters.
const MAX_TITLE_CHARS: usize = 128;

/// Creates a chat, or returns the existing direct chat of the two users. `bool` is whether it was created.
pub async fn create(ctx: &AppContext, caller: &Caller, req: CreateChatRequest) -> ApiResult<(ChatDto, bool)> {
    ctx.invite_limits.check(&caller.user_id)?;
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
        last_edit_seq: Set(0),
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
    Ok(ViewSource::read(&ctx.db, &ids).await?.views_of(viewer, &ids))
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
    ctx.invite_limits.check(&caller.user_id)?;
    if user_ids.is_empty() || user_ids.len() > 999 {
        return Err(ApiError::field("userIds", "must name 1 to 999 users"));
    }
    let chat = find(&ctx.db, chat_id).await?;
    let me = require_participant(&ctx.db, chat_id, caller.user_id).await?;
    require_group(&chat, "direct chats have exactly two participants")?;
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
    require_group(&chat, "direct chats cannot be left")?;
    let target = member(&ctx.db, chat_id, user_id).await?;
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
    let mut heir = None;
    if Role::parse(&target.role) == Role::Owner {
        // A group keeps an owner: an admin if there is one, else the longest-standing member
        // (the lowest id among those who joined together, so every instance picks the same).
        let remaining = participant::Entity::find().filter(participant::Column::ChatId.eq(chat_id)).all(&txn).await?;
        heir = remaining
            .iter()
            .min_by_key(|p| (Role::parse(&p.role) != Role::Admin, p.joined_at, p.user_id))
            .map(|p| p.user_id);
        if let Some(heir) = heir {
            set_role_where(&txn, chat_id, heir, Role::Owner, None).await?;
        }
    }
    txn.commit().await?;
    // The chat hears first: the one who left still follows it until their own event arrives.
    publish(ctx, Topic::Chat(chat_id), ChatEvent::Left { chat_id, user_id }).await;
    publish(ctx, Topic::User(user_id), ChatEvent::Left { chat_id, user_id }).await;
    if let Some(heir) = heir {
        publish(ctx, Topic::Chat(chat_id), ChatEvent::RoleChanged { chat_id, user_id: heir, role: Role::Owner }).await;
    }
    Ok(())
}

/// Renames a group; only its owners and admins may. Returns the chat as the caller sees it.
pub async fn rename(ctx: &AppContext, caller: &Caller, chat_id: Uuid, title: &str) -> ApiResult<ChatDto> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::field("title", format!("must be 1 to {MAX_TITLE_CHARS} characters")));
    }
    let chat = find(&ctx.db, chat_id).await?;
    let me = require_participant(&ctx.db, chat_id, caller.user_id).await?;
    require_group(&chat, "direct chats have no title")?;
    if !Role::parse(&me.role).manages_members() {
        return Err(ApiError::new(ErrorCode::Forbidden, "only the group's owners and admins rename it"));
    }
    if chat.title.as_deref() != Some(title) {
        chat::Entity::update_many()
            .col_expr(chat::Column::Title, Expr::value(title))
            .filter(chat::Column::Id.eq(chat_id))
            .exec(&ctx.db)
            .await?;
        publish(ctx, Topic::Chat(chat_id), ChatEvent::Renamed { chat_id, title: title.to_owned() }).await;
    }
    get(ctx, caller.user_id, chat_id).await
}

/// Sets a member's role; only the group's owner may. `Owner` hands the group over: the owner
/// becomes an admin in the same transaction, so a group never has two owners.
pub async fn set_role(
    ctx: &AppContext,
    caller: &Caller,
    chat_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> ApiResult<ChatDto> {
    let chat = find(&ctx.db, chat_id).await?;
    let me = require_participant(&ctx.db, chat_id, caller.user_id).await?;
    require_group(&chat, "direct chats have no roles")?;
    if Role::parse(&me.role) != Role::Owner {
        return Err(only_the_owner());
    }
    if user_id == caller.user_id {
        return Err(ApiError::field(
            "userId",
            "the owner hands the group to another member rather than change their own role",
        ));
    }
    let target = member(&ctx.db, chat_id, user_id).await?;
    if Role::parse(&target.role) == role {
        return get(ctx, caller.user_id, chat_id).await;
    }
    let mut changed = vec![(user_id, role)];
    let txn = ctx.db.begin().await?;
    if role == Role::Owner {
        // Conditional on still being the owner: of two hand-overs at once, one finds nothing to take.
        let stepped_down = set_role_where(&txn, chat_id, caller.user_id, Role::Admin, Some(Role::Owner)).await?;
        if !stepped_down {
            txn.rollback().await?;
            return Err(only_the_owner());
        }
        changed.push((caller.user_id, Role::Admin));
    }
    set_role_where(&txn, chat_id, user_id, role, None).await?;
    txn.commit().await?;
    for (user_id, role) in changed {
        publish(ctx, Topic::Chat(chat_id), ChatEvent::RoleChanged { chat_id, user_id, role }).await;
    }
    get(ctx, caller.user_id, chat_id).await
}

/// Sets a participant's role (only if it is `was`, when given); whether a row changed.
async fn set_role_where<C: ConnectionTrait>(
    db: &C,
    chat_id: Uuid,
    user_id: Uuid,
    role: Role,
    was: Option<Role>,
) -> ApiResult<bool> {
    let mut update = participant::Entity::update_many()
        .col_expr(participant::Column::Role, Expr::value(role.as_str()))
        .filter(participant::Column::ChatId.eq(chat_id))
        .filter(participant::Column::UserId.eq(user_id));
    if let Some(was) = was {
        update = update.filter(participant::Column::Role.eq(was.as_str()));
    }
    Ok(update.exec(db).await?.rows_affected > 0)
}

/// The participant row of `user_id`, the one acted on: `not_found` if they are not in the chat (the
/// caller is checked with [`require_participant`], `forbidden`).
async fn member<C: ConnectionTrait>(db: &C, chat_id: Uuid, user_id: Uuid) -> ApiResult<participant::Model> {
    participant::Entity::find_by_id((chat_id, user_id))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "this user is not a participant"))
}

fn only_the_owner() -> ApiError {
    ApiError::new(ErrorCode::Forbidden, "only the group's owner changes roles")
}

/// `conflict` with `why` unless `chat` is a group.
fn require_group(chat: &chat::Model, why: &str) -> ApiResult<()> {
    if chat.kind == ChatKind::Group.as_str() { Ok(()) } else { Err(ApiError::new(ErrorCode::Conflict, why)) }
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

/// Whether `chat_id` has at most `max_members` participants; reads no more than one past that.
pub async fn has_at_most<C: ConnectionTrait>(db: &C, chat_id: Uuid, max_members: usize) -> ApiResult<bool> {
    let enough = u64::try_from(max_members).unwrap_or(u64::MAX).saturating_add(1);
    let counted: Vec<Uuid> = participant::Entity::find()
        .select_only()
        .column(participant::Column::UserId)
        .filter(participant::Column::ChatId.eq(chat_id))
        .limit(enough)
        .into_tuple()
        .all(db)
        .await?;
    Ok(counted.len() <= max_members)
}

/// The ids of the chats a user is in.
pub async fn chat_ids_of<C: ConnectionTrait>(db: &C, user_id: Uuid) -> ApiResult<Vec<Uuid>> {
    Ok(chat_ids_of_each(db, &[user_id]).await?.remove(&user_id).unwrap_or_default())
}

/// The ids of the chats each of `user_ids` is in, in one query per [`IDS_PER_QUERY`] users.
pub async fn chat_ids_of_each<C: ConnectionTrait>(db: &C, user_ids: &[Uuid]) -> ApiResult<HashMap<Uuid, Vec<Uuid>>> {
    memberships_of_each(db, user_ids, None).await
}

/// The chats of each of `user_ids` with at most `max_members` participants: where their presence
/// is shared. One query per [`IDS_PER_QUERY`] users: presence asks it on every last disconnect of
/// a user, and for every user of an instance that died.
pub async fn small_chat_ids_of_each<C: ConnectionTrait>(
    db: &C,
    user_ids: &[Uuid],
    max_members: usize,
) -> ApiResult<HashMap<Uuid, Vec<Uuid>>> {
    memberships_of_each(db, user_ids, Some(max_members)).await
}

/// The chats each of `user_ids` is in; with `max_members`, only those with at most that many
/// participants.
async fn memberships_of_each<C: ConnectionTrait>(
    db: &C,
    user_ids: &[Uuid],
    max_members: Option<usize>,
) -> ApiResult<HashMap<Uuid, Vec<Uuid>>> {
    let mut chats_of: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for chunk in user_ids.chunks(IDS_PER_QUERY) {
        let mut query = participant::Entity::find()
            .select_only()
            .columns([participant::Column::UserId, participant::Column::ChatId])
            .filter(participant::Column::UserId.is_in(chunk.iter().copied()));
        if let Some(max_members) = max_members {
            let theirs = Query::select()
                .column(participant::Column::ChatId)
                .from(participant::Entity)
                .and_where(participant::Column::UserId.is_in(chunk.iter().copied()))
                .to_owned();
            let small = Query::select()
                .column(participant::Column::ChatId)
                .from(participant::Entity)
                .and_where(participant::Column::ChatId.in_subquery(theirs))
                .group_by_col(participant::Column::ChatId)
                .and_having(
                    Expr::col(participant::Column::UserId).count().lte(i64::try_from(max_members).unwrap_or(i64::MAX)),
                )
                .to_owned();
            query = query.filter(participant::Column::ChatId.in_subquery(small));
        }
        let rows: Vec<(Uuid, Uuid)> = query.into_tuple().all(db).await?;
        for (user_id, chat_id) in rows {
            chats_of.entry(user_id).or_default().push(chat_id);
        }
    }
    Ok(chats_of)
}

/// The participants of `chat_ids`, each chat's in the order they joined.
async fn participants<C: ConnectionTrait>(db: &C, chat_ids: &[Uuid]) -> ApiResult<Vec<participant::Model>> {
    let mut found = Vec::new();
    for chunk in chat_ids.chunks(IDS_PER_QUERY) {
        found.extend(
            participant::Entity::find()
                .filter(participant::Column::ChatId.is_in(chunk.iter().copied()))
                .order_by_asc(participant::Column::JoinedAt)
                .all(db)
                .await?,
        );
    }
    Ok(found)
}

pub async fn view<C: ConnectionTrait>(db: &C, viewer: Uuid, chat: chat::Model) -> ApiResult<ChatDto> {
    let chat_id = chat.id;
    ViewSource::of(db, vec![chat])
        .await?
        .view(viewer, chat_id)
        .ok_or_else(|| anyhow::anyhow!("a chat view vanished").into())
}

/// What chat views show, read for any number of chats and viewers in a fixed number of queries
/// (per [`IDS_PER_QUERY`] chats): a connection storm starts many viewers at once.
#[derive(Default)]
pub struct ViewSource {
    chats: HashMap<Uuid, chat::Model>,
    /// Per chat, in the order they joined.
    members: HashMap<Uuid, Vec<participant::Model>>,
    names: HashMap<Uuid, known_user::Model>,
    last_messages: HashMap<Uuid, message::Model>,
}

impl ViewSource {
    /// Reads the chats among `ids` that exist and what their views show.
    pub async fn read<C: ConnectionTrait>(db: &C, ids: &[Uuid]) -> ApiResult<Self> {
        let mut chats = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            chats.extend(chat::Entity::find().filter(chat::Column::Id.is_in(chunk.iter().copied())).all(db).await?);
        }
        Self::of(db, chats).await
    }

    /// Reads what the views of `chats` show: participants with names, and the last messages.
    pub async fn of<C: ConnectionTrait>(db: &C, chats: Vec<chat::Model>) -> ApiResult<Self> {
        if chats.is_empty() {
            return Ok(Self::default());
        }
        let ids: Vec<Uuid> = chats.iter().map(|c| c.id).collect();
        let mut members: HashMap<Uuid, Vec<participant::Model>> = HashMap::new();
        for member in participants(db, &ids).await? {
            members.entry(member.chat_id).or_default().push(member);
        }
        let user_ids: Vec<Uuid> =
            members.values().flatten().map(|p| p.user_id).collect::<HashSet<_>>().into_iter().collect();
        let names = users::known(db, &user_ids).await?;
        let mut last_messages = HashMap::new();
        let with_messages: Vec<&chat::Model> = chats.iter().filter(|c| c.last_seq > 0).collect();
        for chunk in with_messages.chunks(IDS_PER_QUERY / 2) {
            let last_of = chunk.iter().fold(Condition::any(), |any, chat| {
                any.add(message::Column::ChatId.eq(chat.id).and(message::Column::Seq.eq(chat.last_seq)))
            });
            last_messages
                .extend(message::Entity::find().filter(last_of).all(db).await?.into_iter().map(|m| (m.chat_id, m)));
        }
        Ok(Self { chats: chats.into_iter().map(|c| (c.id, c)).collect(), members, names, last_messages })
    }

    /// `viewer`'s views of the chats among `ids` that were read, most recently active first.
    pub fn views_of(&self, viewer: Uuid, ids: &[Uuid]) -> Vec<ChatDto> {
        let mut views: Vec<ChatDto> = ids.iter().filter_map(|id| self.view(viewer, *id)).collect();
        views.sort_by_key(|c| std::cmp::Reverse(c.last_message_at.unwrap_or(c.created_at)));
        views
    }

    /// `viewer`'s view of one chat that was read: participants with names, the last message, and
    /// the viewer's unread count.
    pub fn view(&self, viewer: Uuid, chat_id: Uuid) -> Option<ChatDto> {
        let chat = self.chats.get(&chat_id)?;
        let members = self.members.get(&chat_id).map_or(&[][..], Vec::as_slice);
        let viewer_read = members.iter().find(|p| p.user_id == viewer).map_or(0, |p| p.last_read_seq);
        Some(ChatDto {
            id: chat.id,
            kind: ChatKind::parse(&chat.kind).unwrap_or(ChatKind::Group),
            title: chat.title.clone(),
            created_by: chat.created_by,
            created_at: chat.created_at,
            last_seq: chat.last_seq,
            last_message_at: chat.last_message_at,
            last_message: self.last_messages.get(&chat.id).map(message::Model::to_dto),
            unread_count: Ord::max(chat.last_seq - viewer_read, 0),
            last_edit_seq: chat.last_edit_seq,
            participants: members
                .iter()
                .map(|p| {
                    let known = self.names.get(&p.user_id);
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
        })
    }
}
