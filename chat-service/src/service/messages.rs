//! Messages: the seq, idempotent sends, history, read watermarks and typing.

use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::{MessageDto, MessagePage, MessagesQuery, SendMessageRequest};
use converge_shared::entities::chat::{message, participant};
use converge_shared::error::ErrorCode;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;
use validator::Validate;

use super::chats::{find, has_at_most, require_participant};
use super::publish;
use crate::context::AppContext;
use crate::hub::{MessageSource, Watermark};
use crate::relay::{ChatEvent, Topic};

const DEFAULT_PAGE: u64 = 50;
/// Longest `clientMsgId`.
const MAX_CLIENT_MSG_ID: usize = 64;

/// Stores a message and returns it with its seq, once it is committed and announced (hot window
/// and relay).
///
/// The seq comes from incrementing the chat's `last_seq` in the same transaction that inserts the
/// message: the row lock orders concurrent senders, a rolled-back send gives its number back, so
/// seqs are gap-free; and the message is acknowledged (returned) only once committed. Sends are
/// committed in batches by the [`super::writer`]. A retry with the same `clientMsgId` returns the
/// stored message, from any door and any instance, and publishes nothing. Each counts against the
/// sender's `USER_WRITES_PER_SECOND`.
pub async fn send(ctx: &AppContext, sender: Uuid, chat_id: Uuid, req: SendMessageRequest) -> ApiResult<MessageDto> {
    ctx.write_limits.check(&sender)?;
    validate_send(ctx, &req)?;
    let image = match req.attachment_id {
        Some(id) => Some(super::attachments::for_message(ctx, sender, id).await?),
        None => None,
    };
    Ok(ctx.writer.store(sender, chat_id, req, image).await?.message)
}

fn validate_send(ctx: &AppContext, req: &SendMessageRequest) -> ApiResult<()> {
    let id = &req.client_msg_id;
    if id.is_empty() || id.chars().count() > MAX_CLIENT_MSG_ID || id.chars().any(char::is_control) {
        return Err(ApiError::field("clientMsgId", "must be 1 to 64 characters"));
    }
    validate_content(ctx, &req.content, req.attachment_id.is_some())
}

/// A message's content, sent or edited: not blank unless it is an image's caption, not too long.
pub(crate) fn validate_content(ctx: &AppContext, content: &str, has_image: bool) -> ApiResult<()> {
    if content.trim().is_empty() && !has_image {
        return Err(ApiError::new(ErrorCode::EmptyMessage, "a message needs content or an attachment"));
    }
    let max = ctx.config.max_message_chars;
    if content.chars().count() > max {
        return Err(ApiError::new(ErrorCode::ContentTooLong, format!("a message has at most {max} characters")));
    }
    Ok(())
}

/// A page of a chat's history, in ascending seq.
pub async fn page(ctx: &AppContext, viewer: Uuid, chat_id: Uuid, query: MessagesQuery) -> ApiResult<MessagePage> {
    query.validate()?;
    let chat = find(&ctx.db, chat_id).await?;
    require_participant(&ctx.db, chat_id, viewer).await?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if let Some(page) = super::history::page_from_window(ctx, &chat, &query, limit).await {
        return Ok(page);
    }
    let select = message::Entity::find().filter(message::Column::ChatId.eq(chat_id));
    let (mut messages, has_more) = match (query.after, query.before) {
        (Some(_), Some(_)) => return Err(ApiError::field("before", "give either before or after, not both")),
        (Some(after), None) => {
            if after > chat.last_seq {
                return Err(ApiError::new(ErrorCode::InvalidSeq, "after is beyond the chat's last message"));
            }
            let rows = select
                .filter(message::Column::Seq.gt(after))
                .order_by_asc(message::Column::Seq)
                .limit(limit + 1)
                .all(&ctx.db)
                .await?;
            (rows, false)
        }
        (None, before) => {
            let before = before.unwrap_or(i64::MAX);
            let mut rows = select
                .filter(message::Column::Seq.lt(before))
                .order_by_desc(message::Column::Seq)
                .limit(limit + 1)
                .all(&ctx.db)
                .await?;
            rows.reverse();
            (rows, false)
        }
    };
    let more = messages.len() as u64 > limit;
    if more {
        if query.after.is_some() {
            messages.truncate(limit as usize);
        } else {
            messages.remove(0);
        }
    }
    Ok(MessagePage { messages: messages.iter().map(message::Model::to_dto).collect(), has_more: has_more || more })
}

/// Up to `limit` messages after `after_seq`, in order: for resume (the caller checked access).
pub async fn after<C: ConnectionTrait>(
    db: &C,
    chat_id: Uuid,
    after_seq: i64,
    limit: u64,
) -> ApiResult<Vec<MessageDto>> {
    read(db, chat_id, Condition::all().add(message::Column::Seq.gt(after_seq)), message::Column::Seq, limit).await
}

/// Up to `limit` of a chat's messages that meet `condition`, in ascending `order`.
pub(crate) async fn read<C: ConnectionTrait>(
    db: &C,
    chat_id: Uuid,
    condition: Condition,
    order: message::Column,
    limit: u64,
) -> ApiResult<Vec<MessageDto>> {
    Ok(message::Entity::find()
        .filter(message::Column::ChatId.eq(chat_id))
        .filter(condition)
        .order_by_asc(order)
        .limit(limit)
        .all(db)
        .await?
        .iter()
        .map(message::Model::to_dto)
        .collect())
}

/// Moves the reader's read watermark up to `seq` (never down) and tells the chat — in a group
/// larger than `READ_RECEIPTS_MAX_CHAT_MEMBERS`, only the reader's own connections. What is read
/// is delivered too, so the delivered watermark follows in the same transaction.
pub async fn mark_read(ctx: &AppContext, reader: Uuid, chat_id: Uuid, seq: i64) -> ApiResult<()> {
    let chat = find(&ctx.db, chat_id).await?;
    require_participant(&ctx.db, chat_id, reader).await?;
    if seq < 0 || seq > chat.last_seq {
        return Err(ApiError::new(ErrorCode::InvalidSeq, format!("seq must be between 0 and {}", chat.last_seq)));
    }
    // Asked before the write, so nothing can fail between the commit and telling whoever hears of it.
    let told = if has_at_most(&ctx.db, chat_id, ctx.config.read_receipts_max_chat_members).await? {
        Topic::Chat(chat_id)
    } else {
        Topic::User(reader)
    };
    let txn = ctx.db.begin().await?;
    let read = raise_watermark(&txn, participant::Column::LastReadSeq, reader, chat_id, seq).await?;
    let delivered = raise_watermark(&txn, participant::Column::LastDeliveredSeq, reader, chat_id, seq).await?;
    txn.commit().await?;
    if delivered {
        // The chat's delivered-to-all watermark may have moved: the receipts task announces it.
        ctx.receipts.delivered(chat_id, reader, seq);
    }
    if read {
        publish(ctx, told, ChatEvent::Read { chat_id, user_id: reader, seq }).await;
    }
    Ok(())
}

/// Sets a watermark column to `seq` where it is lower; whether it moved.
pub(crate) async fn raise_watermark<C: ConnectionTrait>(
    db: &C,
    column: participant::Column,
    user_id: Uuid,
    chat_id: Uuid,
    seq: i64,
) -> ApiResult<bool> {
    let moved = participant::Entity::update_many()
        .col_expr(column, Expr::value(seq))
        .filter(participant::Column::ChatId.eq(chat_id))
        .filter(participant::Column::UserId.eq(user_id))
        .filter(column.lt(seq))
        .exec(db)
        .await?
        .rows_affected;
    Ok(moved > 0)
}

/// Tells the chat that `user_id` started or stopped typing. The caller checked membership.
pub async fn typing(ctx: &AppContext, user_id: Uuid, chat_id: Uuid, typing: bool) {
    publish(ctx, Topic::Chat(chat_id), ChatEvent::Typing { chat_id, user_id, typing }).await;
}

/// The database as the hub's source for gaps.
pub struct DbMessages(pub DatabaseConnection);

#[async_trait::async_trait]
impl MessageSource for DbMessages {
    async fn messages_between(&self, chat_id: Uuid, from_seq: i64, to_seq: i64) -> anyhow::Result<Vec<MessageDto>> {
        let limit = u64::try_from(to_seq - from_seq + 1).unwrap_or(0);
        after(&self.0, chat_id, from_seq - 1, limit).await.map_err(|e| anyhow::anyhow!("{e}"))
    }

    async fn watermarks(&self, chats: &[Uuid]) -> anyhow::Result<Vec<Watermark>> {
        let rows: Vec<(Uuid, Uuid, i64, i64)> = participant::Entity::find()
            .select_only()
            .column(participant::Column::ChatId)
            .column(participant::Column::UserId)
            .column(participant::Column::LastReadSeq)
            .column(participant::Column::LastDeliveredSeq)
            .filter(participant::Column::ChatId.is_in(chats.iter().copied()))
            .into_tuple()
            .all(&self.0)
            .await?;
        let watermark = |(chat_id, user_id, read, delivered)| Watermark { chat_id, user_id, read, delivered };
        Ok(rows.into_iter().map(watermark).collect())
    }
}
