//! Storing sends with plain entity queries, on any database: SQLite's batches, a lone send, and
//! the replay of a failed batch.

use std::collections::HashSet;

use converge_shared::api_error::ApiResult;
use converge_shared::entities::chat::{chat, message, participant};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, SqlErr,
    TransactionTrait,
};

use super::{
    Checked, Failed, Pending, Stored, answers, invalid_reply_to, new_message, newest_of_senders, number, plan,
    stored_now,
};
use crate::service::chats::{find, require_participant};
use converge_shared::dto::MessageDto;

/// Reads, then writes in one short transaction that starts with a write: on SQLite a reading
/// transaction cannot start writing once another connection has written.
pub(super) async fn store_batch(db: &DatabaseConnection, sends: &[Pending]) -> Result<Vec<ApiResult<Stored>>, Failed> {
    let checked = check(db, sends).await.map_err(Failed::Unchecked)?;
    let steps = plan(&checked, sends);
    let now = stored_now();
    let (messages, chats) = number(&checked, sends, &steps, now);
    if !messages.is_empty() {
        let txn = db.begin().await?;
        for (chat_id, last_seq) in &chats {
            let count = messages.iter().filter(|m| m.chat_id == *chat_id).count() as i64;
            let bumped = chat::Entity::update_many()
                .col_expr(
                    chat::Column::LastSeq,
                    Expr::col(chat::Column::LastSeq).add(Expr::value(count).cast_as("bigint")),
                )
                .col_expr(chat::Column::LastMessageAt, Expr::value(now))
                .filter(chat::Column::Id.eq(*chat_id))
                .exec_with_returning(&txn)
                .await?;
            // Another writer moved the chat since the check: numbering again is the replay's job.
            if bumped.first().map(|c| c.last_seq) != Some(*last_seq) {
                return Err(Failed::Write(anyhow::anyhow!("chat {chat_id} moved during its batch")));
            }
        }
        message::Entity::insert_many(messages.iter().map(row)).exec_without_returning(&txn).await?;
        for ((chat_id, sender), seq) in newest_of_senders(&messages) {
            raise_own_watermarks(&txn, chat_id, sender, seq).await?;
        }
        txn.commit().await?;
    }
    Ok(answers(steps, messages))
}

async fn check(db: &DatabaseConnection, sends: &[Pending]) -> ApiResult<Checked> {
    let chat_ids: HashSet<_> = sends.iter().map(|s| s.chat_id).collect();
    let senders: HashSet<_> = sends.iter().map(|s| s.sender).collect();
    let client_ids: HashSet<&str> = sends.iter().map(|s| s.request.client_msg_id.as_str()).collect();
    let chats = chat::Entity::find().filter(chat::Column::Id.is_in(chat_ids.iter().copied())).all(db).await?;
    let members = participant::Entity::find()
        .filter(participant::Column::ChatId.is_in(chat_ids.iter().copied()))
        .filter(participant::Column::UserId.is_in(senders.iter().copied()))
        .all(db)
        .await?;
    let existing = message::Entity::find()
        .filter(message::Column::ChatId.is_in(chat_ids.iter().copied()))
        .filter(message::Column::SenderId.is_in(senders.iter().copied()))
        .filter(message::Column::ClientMsgId.is_in(client_ids.iter().copied()))
        .all(db)
        .await?;
    Ok(Checked {
        last_seq: chats.into_iter().map(|c| (c.id, c.last_seq)).collect(),
        members: members.into_iter().map(|p| (p.chat_id, p.user_id)).collect(),
        existing: existing.iter().map(|m| ((m.chat_id, m.sender_id, m.client_msg_id.clone()), m.to_dto())).collect(),
    })
}

/// Stores one send on its own.
pub(super) async fn store_one(db: &DatabaseConnection, send: &Pending) -> ApiResult<Stored> {
    let (chat_id, sender, req) = (send.chat_id, send.sender, &send.request);
    find(db, chat_id).await?;
    require_participant(db, chat_id, sender).await?;
    if let Some(existing) = find_sent(db, chat_id, sender, &req.client_msg_id).await? {
        return Ok(Stored { message: existing.to_dto(), fresh: false });
    }
    let txn = db.begin().await?;
    // Write first: on SQLite this takes the write lock at once instead of upgrading a read lock.
    let now = stored_now();
    let bumped = chat::Entity::update_many()
        .col_expr(chat::Column::LastSeq, Expr::col(chat::Column::LastSeq).add(1))
        .col_expr(chat::Column::LastMessageAt, Expr::value(now))
        .filter(chat::Column::Id.eq(chat_id))
        .exec_with_returning(&txn)
        .await?;
    let seq = bumped.first().map(|c| c.last_seq).ok_or_else(crate::service::chat_not_found)?;
    if let Some(reply_to) = req.reply_to
        && (reply_to < 1 || reply_to >= seq)
    {
        txn.rollback().await?;
        return Err(invalid_reply_to());
    }
    let message = new_message(send, seq, now);
    match row(&message).insert(&txn).await {
        Ok(_) => {}
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            // A concurrent retry of the same clientMsgId won; ours gives its seq back.
            txn.rollback().await?;
            let original = find_sent(db, chat_id, sender, &req.client_msg_id).await?;
            let original = original.ok_or_else(|| anyhow::anyhow!("a duplicate send vanished"))?;
            return Ok(Stored { message: original.to_dto(), fresh: false });
        }
        Err(e) => return Err(e.into()),
    };
    raise_own_watermarks(&txn, chat_id, sender, seq).await?;
    txn.commit().await?;
    Ok(Stored { message, fresh: true })
}

async fn find_sent<C: ConnectionTrait>(
    db: &C,
    chat_id: uuid::Uuid,
    sender: uuid::Uuid,
    client_msg_id: &str,
) -> ApiResult<Option<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::ChatId.eq(chat_id))
        .filter(message::Column::SenderId.eq(sender))
        .filter(message::Column::ClientMsgId.eq(client_msg_id))
        .one(db)
        .await?)
}

fn row(message: &MessageDto) -> message::ActiveModel {
    message::ActiveModel {
        id: Set(message.id),
        chat_id: Set(message.chat_id),
        seq: Set(message.seq),
        sender_id: Set(message.sender_id),
        client_msg_id: Set(message.client_msg_id.clone()),
        content: Set(message.content.clone()),
        attachment_id: Set(message.image.as_ref().map(|i| i.id)),
        image_url: Set(None),
        reply_to: Set(message.reply_to),
        created_at: Set(message.created_at),
        edited_at: Set(None),
        deleted_at: Set(None),
        image_width: Set(message.image.as_ref().map(|i| i.width)),
        image_height: Set(message.image.as_ref().map(|i| i.height)),
        edit_seq: Set(None),
        reactions: Set(None),
    }
}

/// The sender has read (and received) what they wrote: both watermarks rise to `seq`, never fall.
async fn raise_own_watermarks<C: ConnectionTrait>(
    db: &C,
    chat_id: uuid::Uuid,
    sender: uuid::Uuid,
    seq: i64,
) -> Result<(), sea_orm::DbErr> {
    let raised = |column: participant::Column| {
        Expr::case(Expr::col(column).lt(seq), Expr::value(seq)).finally(Expr::col(column))
    };
    participant::Entity::update_many()
        .col_expr(participant::Column::LastReadSeq, raised(participant::Column::LastReadSeq).into())
        .col_expr(participant::Column::LastDeliveredSeq, raised(participant::Column::LastDeliveredSeq).into())
        .filter(participant::Column::ChatId.eq(chat_id))
        .filter(participant::Column::UserId.eq(sender))
        .exec(db)
        .await?;
    Ok(())
}
