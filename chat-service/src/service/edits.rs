//! Edits and deletions. A message changes in place: it keeps its seq, so order, gap-free seqs and
//! unread counts are untouched. Each chat counts its changes instead (`chats.last_edit_seq`): a
//! change takes the next count in the transaction that stores it, and the message records it as
//! its `edit_seq`. That count is what a client resumes changes from, as it resumes messages from
//! a seq, and what tells two copies of a message apart (the higher is newer).

use std::collections::HashMap;

use chrono::{SubsecRound, Utc};
use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::{ChatKind, MessageDto, Role};
use converge_shared::entities::chat::{chat, message};
use converge_shared::error::ErrorCode;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait};
use uuid::Uuid;

use super::chats::{find, require_participant};
use super::{IDS_PER_QUERY, messages, publish};
use crate::context::AppContext;
use crate::relay::{ChatEvent, Topic};

/// What is done to a message.
enum Change {
    Edit(String),
    Delete,
}

/// Replaces the content of `editor`'s message at `seq`; returns the message as it is now.
pub async fn edit(ctx: &AppContext, editor: Uuid, chat_id: Uuid, seq: i64, content: String) -> ApiResult<MessageDto> {
    apply(ctx, editor, chat_id, seq, Change::Edit(content)).await
}

/// Deletes the message at `seq` (the caller's own, or any in a group they own or administer);
/// returns what is left of it.
pub async fn delete(ctx: &AppContext, caller: Uuid, chat_id: Uuid, seq: i64) -> ApiResult<MessageDto> {
    apply(ctx, caller, chat_id, seq, Change::Delete).await
}

async fn apply(ctx: &AppContext, caller: Uuid, chat_id: Uuid, seq: i64, change: Change) -> ApiResult<MessageDto> {
    let chat = find(&ctx.db, chat_id).await?;
    let member = require_participant(&ctx.db, chat_id, caller).await?;
    let current = stored(&ctx.db, chat_id, seq).await?;
    match &change {
        Change::Edit(content) => {
            if current.sender_id != caller {
                return Err(ApiError::new(ErrorCode::Forbidden, "only its sender can edit a message"));
            }
            if current.deleted_at.is_some() {
                return Err(deleted());
            }
            messages::validate_content(ctx, content, current.attachment_id.is_some())?;
            if *content == current.content {
                return Ok(current.to_dto());
            }
        }
        Change::Delete => {
            if current.deleted_at.is_some() {
                return Ok(current.to_dto());
            }
            let moderates =
                ChatKind::parse(&chat.kind) == Some(ChatKind::Group) && Role::parse(&member.role).manages_members();
            if current.sender_id != caller && !moderates {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "only its sender, or an owner or admin of the group, can delete a message",
                ));
            }
        }
    }
    // The window's copy goes before the change is committed: from then on no read can be served
    // the old content from it. If Redis cannot be reached the change is refused, as a stale copy
    // could be served after Redis returns.
    ctx.window.forget(chat_id, seq).await.map_err(|e| {
        tracing::warn!(%chat_id, seq, error = format!("{e:#}"), "cannot drop a changed message from the window");
        ApiError::new(ErrorCode::Unavailable, "messages cannot be changed right now; try again shortly")
    })?;
    let Some(message) = store(ctx, caller, chat_id, seq, &change).await? else {
        // Deleted by someone else since it was read.
        let now = stored(&ctx.db, chat_id, seq).await?;
        return match change {
            Change::Edit(_) => Err(deleted()),
            Change::Delete => Ok(now.to_dto()),
        };
    };
    if let Err(e) = ctx.window.push(std::slice::from_ref(&message)).await {
        tracing::debug!(%chat_id, seq, error = format!("{e:#}"), "cannot put a changed message back in the window");
    }
    publish(ctx, Topic::Chat(chat_id), ChatEvent::Updated(message.clone())).await;
    Ok(message)
}

/// Takes the chat's next change count and changes the message, in one transaction; `None` if the
/// message was deleted meanwhile (nothing is written then).
async fn store(
    ctx: &AppContext,
    caller: Uuid,
    chat_id: Uuid,
    seq: i64,
    change: &Change,
) -> ApiResult<Option<MessageDto>> {
    let now = Utc::now().trunc_subsecs(6);
    let txn = ctx.db.begin().await?;
    // Locks the chat's row: changes are counted in commit order, as sends take their seqs.
    chat::Entity::update_many()
        .col_expr(chat::Column::LastEditSeq, Expr::col(chat::Column::LastEditSeq).add(1))
        .filter(chat::Column::Id.eq(chat_id))
        .exec(&txn)
        .await?;
    let edit_seq: i64 = chat::Entity::find_by_id(chat_id)
        .select_only()
        .column(chat::Column::LastEditSeq)
        .into_tuple()
        .one(&txn)
        .await?
        .ok_or_else(super::chat_not_found)?;
    let update = message::Entity::update_many()
        .col_expr(message::Column::EditSeq, Expr::value(edit_seq))
        .filter(message::Column::ChatId.eq(chat_id))
        .filter(message::Column::Seq.eq(seq))
        .filter(message::Column::DeletedAt.is_null());
    let update = match change {
        Change::Edit(content) => update
            .col_expr(message::Column::Content, Expr::value(content.clone()))
            .col_expr(message::Column::EditedAt, Expr::value(now))
            .filter(message::Column::SenderId.eq(caller)),
        Change::Delete => update
            .col_expr(message::Column::Content, Expr::value(""))
            .col_expr(message::Column::DeletedAt, Expr::value(now))
            .col_expr(message::Column::AttachmentId, Expr::value(Option::<Uuid>::None))
            .col_expr(message::Column::ImageWidth, Expr::value(Option::<i32>::None))
            .col_expr(message::Column::ImageHeight, Expr::value(Option::<i32>::None)),
    };
    if update.exec(&txn).await?.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(None);
    }
    let message = stored(&txn, chat_id, seq).await?.to_dto();
    txn.commit().await?;
    Ok(Some(message))
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
