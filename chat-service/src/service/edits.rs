//! Edits and deletions. A message changes in place: it keeps its seq, so order, gap-free seqs and
//! unread counts are untouched. Each chat counts its changes instead (`chats.last_edit_seq`): a
//! change takes the next count in the transaction that stores it, and the message records it as
//! its `edit_seq`. That count is what a client resumes changes from, as it resumes messages from
//! a seq, and what tells two copies of a message apart (the higher is newer). Reactions are
//! changes of the same kind: they are counted and resumed alike.

use std::collections::HashMap;

use chrono::{SubsecRound, Utc};
use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::{ChatKind, EditMessageRequest, MessageDto, ReactionDto, Role};
use converge_shared::entities::chat::{chat, message};
use converge_shared::error::ErrorCode;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait};
use uuid::Uuid;

use super::chats::{find, require_participant};
use super::{IDS_PER_QUERY, messages, publish};
use crate::context::AppContext;
use crate::relay::{ChatEvent, Topic};

/// Most different emoji one message carries.
pub const MAX_REACTIONS: usize = 20;

/// What is done to a message.
enum Change {
    Edit(EditMessageRequest),
    Delete,
    /// `emoji` (fully qualified) added by the caller, or taken back.
    React {
        emoji: String,
        on: bool,
    },
}

/// What a change came to, decided under the chat's lock.
enum Outcome {
    Changed(MessageDto),
    /// Nothing to do (a reaction already there, say): the message as it is.
    Unchanged(MessageDto),
}

/// Replaces the content of `editor`'s message at `seq`, if it still reads what the edit
/// `replaces` (when given); returns the message as it is now.
pub async fn edit(
    ctx: &AppContext,
    editor: Uuid,
    chat_id: Uuid,
    seq: i64,
    request: EditMessageRequest,
) -> ApiResult<MessageDto> {
    apply(ctx, editor, chat_id, seq, Change::Edit(request)).await
}

/// Deletes the message at `seq` (the caller's own, or any in a group they own or administer);
/// returns what is left of it.
pub async fn delete(ctx: &AppContext, caller: Uuid, chat_id: Uuid, seq: i64) -> ApiResult<MessageDto> {
    apply(ctx, caller, chat_id, seq, Change::Delete).await
}

/// Adds the caller's reaction `emoji` to the message at `seq` (`on`), or takes it back; returns the
/// message as it is now. Any participant may react, once per emoji.
pub async fn react(
    ctx: &AppContext,
    caller: Uuid,
    chat_id: Uuid,
    seq: i64,
    emoji: &str,
    on: bool,
) -> ApiResult<MessageDto> {
    // Stored fully qualified, so "❤" and "❤️" are one reaction.
    let emoji = emojis::get(emoji).ok_or_else(|| ApiError::field("emoji", "must be one emoji"))?.as_str().to_owned();
    apply(ctx, caller, chat_id, seq, Change::React { emoji, on }).await
}

async fn apply(ctx: &AppContext, caller: Uuid, chat_id: Uuid, seq: i64, change: Change) -> ApiResult<MessageDto> {
    ctx.write_limits.check(&caller)?;
    let chat = find(&ctx.db, chat_id).await?;
    let member = require_participant(&ctx.db, chat_id, caller).await?;
    let current = stored(&ctx.db, chat_id, seq).await?;
    match &change {
        Change::Edit(edit) => {
            if current.sender_id != caller {
                return Err(ApiError::new(ErrorCode::Forbidden, "only its sender can edit a message"));
            }
            messages::validate_content(ctx, &edit.content, current.attachment_id.is_some())?;
        }
        Change::Delete => {
            let moderates =
                ChatKind::parse(&chat.kind) == Some(ChatKind::Group) && Role::parse(&member.role).manages_members();
            if current.sender_id != caller && !moderates {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "only its sender, or an owner or admin of the group, can delete a message",
                ));
            }
        }
        Change::React { .. } => {}
    }
    // Most repeated changes end here, without taking the chat's lock or touching the window.
    if let Decision::Nothing(message) = decide(&current, caller, &change)? {
        return Ok(message);
    }
    // The window's copy goes before the change is committed: from then on no read can be served
    // the old content from it. If Redis cannot be reached the change is refused, as a stale copy
    // could be served after Redis returns.
    ctx.window.forget(chat_id, seq).await.map_err(|e| {
        tracing::warn!(%chat_id, seq, error = format!("{e:#}"), "cannot drop a changed message from the window");
        ApiError::new(ErrorCode::Unavailable, "messages cannot be changed right now; try again shortly")
    })?;
    // Refused under the lock (deleted meanwhile, say), nothing goes back in the window: which copy
    // is current is not known here, and a range without a copy is read from the database.
    let outcome = store(ctx, caller, chat_id, seq, &change).await?;
    let (Outcome::Changed(message) | Outcome::Unchanged(message)) = &outcome;
    if let Err(e) = ctx.window.push(std::slice::from_ref(message)).await {
        tracing::debug!(%chat_id, seq, error = format!("{e:#}"), "cannot put a changed message back in the window");
    }
    match outcome {
        Outcome::Changed(message) => {
            publish(ctx, Topic::Chat(chat_id), ChatEvent::Updated(message.clone())).await;
            Ok(message)
        }
        Outcome::Unchanged(message) => Ok(message),
    }
}

/// What `change` does to `row` (as `caller`'s): its new content, deletion or reactions, or
/// nothing; refused on a deleted message, except a deletion, which is then done already.
fn decide(row: &message::Model, caller: Uuid, change: &Change) -> ApiResult<Decision> {
    if row.deleted_at.is_some() {
        return match change {
            Change::Delete => Ok(Decision::Nothing(row.to_dto())),
            Change::Edit(_) | Change::React { .. } => Err(deleted()),
        };
    }
    let write = match change {
        // Before the precondition: a retry of an edit that was applied meets its own content.
        Change::Edit(edit) if edit.content == row.content => return Ok(Decision::Nothing(row.to_dto())),
        Change::Edit(EditMessageRequest { replaces: Some(seen), .. }) if *seen != row.content => {
            return Err(ApiError::new(
                ErrorCode::EditConflict,
                "the message was changed since you saw it; nothing was saved: edit it as it is now",
            ));
        }
        Change::Edit(edit) => Write::Edit(edit.content.clone()),
        Change::Delete => Write::Delete,
        Change::React { emoji, on } => {
            let mut reactions = row.reactions();
            let at = reactions.iter().position(|r| r.emoji == *emoji);
            let mine = at.is_some_and(|i| reactions[i].user_ids.contains(&caller));
            match (on, at) {
                (true, Some(i)) if !mine => reactions[i].user_ids.push(caller),
                (true, None) if reactions.len() >= MAX_REACTIONS => {
                    let why = format!("a message carries at most {MAX_REACTIONS} different emoji");
                    return Err(ApiError::field("emoji", why));
                }
                (true, None) => reactions.push(ReactionDto { emoji: emoji.clone(), user_ids: vec![caller] }),
                (false, Some(i)) if mine => {
                    reactions[i].user_ids.retain(|u| *u != caller);
                    if reactions[i].user_ids.is_empty() {
                        reactions.remove(i);
                    }
                }
                // Given already, or never given: nothing to do.
                _ => return Ok(Decision::Nothing(row.to_dto())),
            }
            Write::React(reactions)
        }
    };
    Ok(Decision::Write(write))
}

enum Decision {
    /// Nothing to write: the message as it is.
    Nothing(MessageDto),
    Write(Write),
}

/// What to write to the message.
enum Write {
    Edit(String),
    Delete,
    React(Vec<ReactionDto>),
}

/// Takes the chat's next change count and changes the message, in one transaction. The message is
/// read again under the chat's lock, which every change of the chat takes first: two reactions at
/// once each see the other's.
async fn store(ctx: &AppContext, caller: Uuid, chat_id: Uuid, seq: i64, change: &Change) -> ApiResult<Outcome> {
    let now = Utc::now().trunc_subsecs(6);
    let txn = ctx.db.begin().await?;
    // Locks the chat's row: changes are counted in commit order, as sends take their seqs.
    chat::Entity::update_many()
        .col_expr(chat::Column::LastEditSeq, Expr::col(chat::Column::LastEditSeq).add(1))
        .filter(chat::Column::Id.eq(chat_id))
        .exec(&txn)
        .await?;
    let row = stored(&txn, chat_id, seq).await?;
    let write = match decide(&row, caller, change) {
        Ok(Decision::Write(write)) => write,
        Ok(Decision::Nothing(message)) => {
            // The count taken is given back: counts stay gap-free, as seqs do.
            txn.rollback().await?;
            return Ok(Outcome::Unchanged(message));
        }
        Err(e) => {
            txn.rollback().await?;
            return Err(e);
        }
    };
    let edit_seq: i64 = chat::Entity::find_by_id(chat_id)
        .select_only()
        .column(chat::Column::LastEditSeq)
        .into_tuple()
        .one(&txn)
        .await?
        .ok_or_else(super::chat_not_found)?;
    let update = message::Entity::update_many()
        .col_expr(message::Column::EditSeq, Expr::value(edit_seq))
        .filter(message::Column::Id.eq(row.id));
    let update = match write {
        Write::Edit(content) => update
            .col_expr(message::Column::Content, Expr::value(content))
            .col_expr(message::Column::EditedAt, Expr::value(now)),
        Write::Delete => update
            .col_expr(message::Column::Content, Expr::value(""))
            .col_expr(message::Column::DeletedAt, Expr::value(now))
            .col_expr(message::Column::AttachmentId, Expr::value(Option::<Uuid>::None))
            .col_expr(message::Column::ImageWidth, Expr::value(Option::<i32>::None))
            .col_expr(message::Column::ImageHeight, Expr::value(Option::<i32>::None))
            .col_expr(message::Column::Reactions, Expr::value(Option::<String>::None)),
        Write::React(reactions) => {
            let json = if reactions.is_empty() {
                None
            } else {
                Some(serde_json::to_string(&reactions).map_err(anyhow::Error::from)?)
            };
            update.col_expr(message::Column::Reactions, Expr::value(json))
        }
    };
    update.exec(&txn).await?;
    let message = stored(&txn, chat_id, seq).await?.to_dto();
    txn.commit().await?;
    Ok(Outcome::Changed(message))
}

/// Up to `limit` messages of a chat changed after `after_edit_seq`, at or below `up_to_seq`, in
/// change order: what a resuming client lacks (the caller checked access).
pub async fn changed_after<C: ConnectionTrait>(
    db: &C,
    chat_id: Uuid,
    after_edit_seq: i64,
    up_to_seq: i64,
    limit: u64,
) -> ApiResult<Vec<MessageDto>> {
    let changed =
        Condition::all().add(message::Column::EditSeq.gt(after_edit_seq)).add(message::Column::Seq.lte(up_to_seq));
    messages::read(db, chat_id, changed, message::Column::EditSeq, limit).await
}

/// Each chat's `last_edit_seq`, in one query.
pub async fn last_edit_seqs<C: ConnectionTrait>(db: &C, chat_ids: &[Uuid]) -> ApiResult<HashMap<Uuid, i64>> {
    let mut counts = HashMap::with_capacity(chat_ids.len());
    for ids in chat_ids.chunks(IDS_PER_QUERY) {
        let rows: Vec<(Uuid, i64)> = chat::Entity::find()
            .select_only()
            .column(chat::Column::Id)
            .column(chat::Column::LastEditSeq)
            .filter(chat::Column::Id.is_in(ids.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        counts.extend(rows);
    }
    Ok(counts)
}

async fn stored<C: ConnectionTrait>(db: &C, chat_id: Uuid, seq: i64) -> ApiResult<message::Model> {
    message::Entity::find()
        .filter(message::Column::ChatId.eq(chat_id))
        .filter(message::Column::Seq.eq(seq))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no message with seq {seq} in this chat")))
}

fn deleted() -> ApiError {
    ApiError::new(ErrorCode::MessageDeleted, "the message was deleted")
}
