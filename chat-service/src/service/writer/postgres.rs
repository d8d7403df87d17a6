//! A batch on PostgreSQL: one transaction, two statements whatever its size.
//!
//! The batch's values travel as arrays (`unnest($1::uuid[], …)`), so the text of every statement
//! is the same for one send or 256: each connection prepares it once, and a batch costs four round
//! trips: `BEGIN`, lock the chats and check the senders, write everything, `COMMIT`.
//!
//! Lock order: a batch locks its chats (in id order), then the participant rows whose watermarks
//! it raises (in (chat, user) order); the delivery receipts lock participant rows in that order too.
//! Every transaction taking these locks in one global order cannot deadlock with another.

use std::collections::HashMap;

use converge_shared::api_error::ApiResult;
use converge_shared::dto::MessageDto;
use converge_shared::entities::chat::message;
use sea_orm::sea_query::Value;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    Statement, TransactionTrait,
};
use uuid::Uuid;

use super::{Checked, Failed, Pending, Stored, answers, key_of, newest_of_senders, number, plan, stored_now};

/// Locks the batch's chats in id order and reads their `last_seq`, which nobody else can move until
/// this transaction ends (rows with a null `n`); then, per send (`n`, from 1): is the sender a
/// participant, and which message did an earlier send with the same key store. `UNION ALL` runs
/// its branches in order, so every chat is locked before the per-send part runs.
///
/// The per-send part reads the statement's snapshot, taken before a wait for a chat lock: a
/// retry of the same `clientMsgId` committed by another instance during that wait is not seen
/// here, so the write fails on the unique index and the batch is replayed send by send, which
/// finds it. The earlier send is looked up per send (`LATERAL … LIMIT 1`, which the planner cannot
/// turn into a join over the whole table): as a plain join, a fresh database's statistics (no
/// messages yet) made PostgreSQL plan a hash join over every message — a plan each connection then
/// kept while the table grew, so every batch read all of `messages`.
const CHECK: &str = "WITH locked AS ( \
       SELECT id, last_seq FROM chats WHERE id = ANY($4) ORDER BY id FOR UPDATE), \
     s AS ( \
       SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[]) WITH ORDINALITY AS s(chat_id, sender_id, client_msg_id, n)) \
     SELECT NULL::bigint AS n, id AS chat_id, last_seq, NULL::boolean AS member, NULL::uuid AS existing FROM locked \
     UNION ALL \
     SELECT s.n, s.chat_id, NULL::bigint, \
       EXISTS (SELECT 1 FROM chat_participants p WHERE p.chat_id = s.chat_id AND p.user_id = s.sender_id), m.id \
     FROM s LEFT JOIN LATERAL ( \
       SELECT id FROM messages m \
       WHERE m.chat_id = s.chat_id AND m.sender_id = s.sender_id AND m.client_msg_id = s.client_msg_id LIMIT 1) m ON true";

/// Moves the chats' `last_seq`, raises the senders' own read and delivered marks (locking their rows
/// in (chat, user) order first, as the delivery receipts do), and inserts the messages: one statement.
const WRITE: &str = "WITH bumped AS ( \
       UPDATE chats AS c SET last_seq = b.last_seq, last_message_at = $1 \
       FROM unnest($2::uuid[], $3::bigint[]) AS b(id, last_seq) WHERE c.id = b.id), \
     senders AS ( \
       SELECT p.chat_id, p.user_id, r.seq FROM chat_participants p \
       JOIN unnest($4::uuid[], $5::uuid[], $6::bigint[]) AS r(chat_id, user_id, seq) \
         ON p.chat_id = r.chat_id AND p.user_id = r.user_id \
       ORDER BY p.chat_id, p.user_id FOR UPDATE OF p), \
     raised AS ( \
       UPDATE chat_participants AS p SET last_read_seq = GREATEST(p.last_read_seq, r.seq), \
         last_delivered_seq = GREATEST(p.last_delivered_seq, r.seq) \
       FROM senders r WHERE p.chat_id = r.chat_id AND p.user_id = r.user_id) \
     INSERT INTO messages (id, chat_id, seq, sender_id, client_msg_id, content, reply_to, created_at) \
     SELECT id, chat_id, seq, sender_id, client_msg_id, content, NULLIF(reply_to, 0), $1 \
     FROM unnest($7::uuid[], $8::uuid[], $9::bigint[], $10::uuid[], $11::text[], $12::text[], $13::bigint[]) \
       AS m(id, chat_id, seq, sender_id, client_msg_id, content, reply_to)";

pub(super) async fn store_batch(db: &DatabaseConnection, sends: &[Pending]) -> Result<Vec<ApiResult<Stored>>, Failed> {
    let txn = db.begin().await.map_err(|e| Failed::Unchecked(e.into()))?;
    let checked = check(&txn, sends).await.map_err(Failed::Unchecked)?;
    let steps = plan(&checked, sends);
    let now = stored_now();
    let (messages, chats) = number(&checked, sends, &steps, now);
    if !messages.is_empty() {
        write(&txn, &messages, &chats, now).await?;
    }
    txn.commit().await?;
    Ok(answers(steps, messages))
}

async fn check(txn: &DatabaseTransaction, sends: &[Pending]) -> ApiResult<Checked> {
    let mut chat_ids: Vec<Uuid> = sends.iter().map(|s| s.chat_id).collect();
    chat_ids.sort();
    chat_ids.dedup();
    let values = vec![
        sends.iter().map(|s| s.chat_id).collect::<Vec<_>>().into(),
        sends.iter().map(|s| s.sender).collect::<Vec<_>>().into(),
        sends.iter().map(|s| s.request.client_msg_id.clone()).collect::<Vec<_>>().into(),
        chat_ids.into(),
    ];
    let mut last_seq = HashMap::new();
    let mut members = std::collections::HashSet::new();
    let mut existing_ids: HashMap<Uuid, usize> = HashMap::new();
    for row in txn.query_all_raw(statement(CHECK, values)).await? {
        let Some(n) = row.try_get::<Option<i64>>("", "n")? else {
            last_seq.insert(row.try_get::<Uuid>("", "chat_id")?, row.try_get::<i64>("", "last_seq")?);
            continue;
        };
        // WITH ORDINALITY counts from 1.
        let index = usize::try_from(n - 1).map_err(anyhow::Error::from)?;
        let send = sends.get(index).ok_or_else(|| anyhow::anyhow!("a checked send is not in the batch"))?;
        if row.try_get::<bool>("", "member")? {
            members.insert((send.chat_id, send.sender));
        }
        if let Some(id) = row.try_get::<Option<Uuid>>("", "existing")? {
            existing_ids.insert(id, index);
        }
    }
    // Retries are rare: their originals are read only when there are some.
    let mut existing = HashMap::new();
    if !existing_ids.is_empty() {
        let originals =
            message::Entity::find().filter(message::Column::Id.is_in(existing_ids.keys().copied())).all(txn).await?;
        for original in originals {
            if let Some(index) = existing_ids.get(&original.id) {
                existing.insert(key_of(&sends[*index]), original.to_dto());
            }
        }
    }
    Ok(Checked { last_seq, members, existing })
}

async fn write(
    txn: &DatabaseTransaction,
    messages: &[MessageDto],
    chats: &[(Uuid, i64)],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Failed> {
    let newest = newest_of_senders(messages);
    let values = vec![
        now.into(),
        chats.iter().map(|(id, _)| *id).collect::<Vec<_>>().into(),
        chats.iter().map(|(_, seq)| *seq).collect::<Vec<_>>().into(),
        newest.keys().map(|(chat_id, _)| *chat_id).collect::<Vec<_>>().into(),
        newest.keys().map(|(_, sender)| *sender).collect::<Vec<_>>().into(),
        newest.values().copied().collect::<Vec<_>>().into(),
        messages.iter().map(|m| m.id).collect::<Vec<_>>().into(),
        messages.iter().map(|m| m.chat_id).collect::<Vec<_>>().into(),
        messages.iter().map(|m| m.seq).collect::<Vec<_>>().into(),
        messages.iter().map(|m| m.sender_id).collect::<Vec<_>>().into(),
        messages.iter().map(|m| m.client_msg_id.clone()).collect::<Vec<_>>().into(),
        messages.iter().map(|m| m.content.clone()).collect::<Vec<_>>().into(),
        // The driver binds arrays without NULLs: 0 (never a seq) stands for "not a reply".
        messages.iter().map(|m| m.reply_to.unwrap_or(0)).collect::<Vec<_>>().into(),
    ];
    let inserted = txn.execute_raw(statement(WRITE, values)).await?;
    if inserted.rows_affected() != messages.len() as u64 {
        return Err(Failed::Write(anyhow::anyhow!(
            "{} of {} messages inserted",
            inserted.rows_affected(),
            messages.len()
        )));
    }
    Ok(())
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}
