//! Group commit for messages: many sends, one transaction, one WAL flush.
//!
//! Every send of this instance goes through one writer task. While a batch commits, the next one
//! gathers; under load a batch holds many messages, so the cost of a durable commit (an fsync) is
//! shared by all of them, while a lone send is stored exactly as before, on its own. What a send
//! is promised does not change: its seq is taken from `chats.last_seq` inside the transaction that
//! stores it (row locks order instances; a failed batch gives its numbers back), and it is
//! acknowledged only after the commit.
//!
//! A batch that fails as a whole (a concurrent retry of the same `clientMsgId` on another
//! instance, a deadlock, a lost connection) is replayed send by send, so one bad send never
//! fails the others.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::{MessageDto, SendMessageRequest};
use converge_shared::entities::chat::{chat, message, participant};
use converge_shared::error::ErrorCode;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, SqlErr, Statement, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::chats::{find, require_participant};

/// Sends waiting for the writer; beyond this, senders wait (back-pressure on their connections).
const QUEUE: usize = 4096;
/// Most sends in one transaction (bounded by bind-parameter limits and by latency).
const MAX_BATCH: usize = 256;

/// A stored message, and whether this send stored it (`false`: a retry found the original).
#[derive(Debug, Clone)]
pub struct Stored {
    pub message: MessageDto,
    pub fresh: bool,
}

/// The handle sends go through; cheap to clone.
#[derive(Clone)]
pub struct MessageWriter {
    queue: mpsc::Sender<Pending>,
}

struct Pending {
    sender: Uuid,
    chat_id: Uuid,
    request: SendMessageRequest,
    reply: oneshot::Sender<ApiResult<Stored>>,
}

impl MessageWriter {
    /// Starts the writer task on the current runtime.
    pub fn spawn(db: DatabaseConnection) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, pending));
        Self { queue }
    }

    /// Stores a validated send and returns the message with its seq, once committed.
    pub async fn store(&self, sender: Uuid, chat_id: Uuid, request: SendMessageRequest) -> ApiResult<Stored> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { sender, chat_id, request, reply };
        self.queue.send(pending).await.map_err(|_| anyhow::anyhow!("the message writer has stopped"))?;
        answer.await.map_err(|_| anyhow::anyhow!("the message writer dropped a send"))?
    }
}

async fn run(db: DatabaseConnection, mut pending: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("message_batch_size").record(batch.len() as f64);
        let sends = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        if sends.len() == 1 {
            for send in sends {
                let result = store_one(&db, send.sender, send.chat_id, send.request).await;
                let _ = send.reply.send(result);
            }
        } else {
            store_batch(&db, sends).await;
        }
    }
}

/// Identifies a send for idempotency: the same key is the same message.
type SendKey = (Uuid, Uuid, String);

fn key_of(send: &Pending) -> SendKey {
    (send.chat_id, send.sender, send.request.client_msg_id.clone())
}

async fn store_batch(db: &DatabaseConnection, sends: Vec<Pending>) {
    let checked = match check(db, &sends).await {
        Ok(checked) => checked,
        Err(e) => {
            for send in sends {
                let _ = send.reply.send(Err(e.duplicate()));
            }
            return;
        }
    };
    // Answer what needs no write; keep the rest in arrival order, one per key.
    let mut accepted: Vec<Pending> = Vec::new();
    let mut followers: HashMap<SendKey, Vec<oneshot::Sender<ApiResult<Stored>>>> = HashMap::new();
    for send in sends {
        let key = key_of(&send);
        let verdict = checked.verdict(&send, &key);
        match verdict {
            Some(answer) => {
                let _ = send.reply.send(answer);
            }
            None if followers.contains_key(&key) => followers.entry(key).or_default().push(send.reply),
            None => {
                followers.insert(key, Vec::new());
                accepted.push(send);
            }
        }
    }
    if accepted.is_empty() {
        return;
    }
    let stored = match insert_all(db, &accepted).await {
        Ok(stored) => stored,
        Err(e) => {
            // Replay one by one: each send gets its own outcome, as if it had come alone.
            tracing::debug!(error = %e, sends = accepted.len(), "a batch failed; storing its sends one by one");
            metrics::counter!("message_batch_replays_total").increment(1);
            let mut stored = Vec::with_capacity(accepted.len());
            for send in &accepted {
                stored.push(store_one(db, send.sender, send.chat_id, send.request.clone()).await);
            }
            stored
        }
    };
    for (send, result) in accepted.into_iter().zip(stored) {
        let retries = followers.remove(&key_of(&send)).unwrap_or_default();
        for retry in retries {
            let again = match &result {
                Ok(stored) => Ok(Stored { message: stored.message.clone(), fresh: false }),
                Err(e) => Err(e.duplicate()),
            };
            let _ = retry.send(again);
        }
        let _ = send.reply.send(result);
    }
}

/// What the database says about a batch before anything is written.
struct Checked {
    /// The batch's chats, with a `last_seq` no newer than the commit's.
    chats: HashMap<Uuid, chat::Model>,
    members: HashSet<(Uuid, Uuid)>,
    existing: HashMap<SendKey, MessageDto>,
}

async fn check(db: &DatabaseConnection, sends: &[Pending]) -> ApiResult<Checked> {
    let chat_ids: HashSet<Uuid> = sends.iter().map(|s| s.chat_id).collect();
    let senders: HashSet<Uuid> = sends.iter().map(|s| s.sender).collect();
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
        chats: chats.into_iter().map(|c| (c.id, c)).collect(),
        members: members.into_iter().map(|p| (p.chat_id, p.user_id)).collect(),
        existing: existing.iter().map(|m| ((m.chat_id, m.sender_id, m.client_msg_id.clone()), m.to_dto())).collect(),
    })
}

impl Checked {
    /// The answer for a send that needs no write (refused, or a retry), in the order the
    /// one-by-one path checks; `None` for a send to store.
    fn verdict(&self, send: &Pending, key: &SendKey) -> Option<ApiResult<Stored>> {
        let Some(chat) = self.chats.get(&send.chat_id) else { return Some(Err(super::chat_not_found())) };
        if !self.members.contains(&(send.chat_id, send.sender)) {
            return Some(Err(super::forbidden()));
        }
        if let Some(message) = self.existing.get(key) {
            return Some(Ok(Stored { message: message.clone(), fresh: false }));
        }
        // A message the client has seen was committed before this batch was read.
        if let Some(reply_to) = send.request.reply_to
            && (reply_to < 1 || reply_to > chat.last_seq)
        {
            return Some(Err(invalid_reply_to()));
        }
        None
    }
}

fn invalid_reply_to() -> ApiError {
    ApiError::new(ErrorCode::InvalidSeq, "replyTo must be the seq of an earlier message")
}

/// Stores every accepted send in one transaction; results in the order of `sends`.
async fn insert_all(db: &DatabaseConnection, sends: &[Pending]) -> anyhow::Result<Vec<ApiResult<Stored>>> {
    let now = stored_now();
    let mut per_chat: HashMap<Uuid, i64> = HashMap::new();
    for send in sends {
        *per_chat.entry(send.chat_id).or_default() += 1;
    }
    let mut chat_ids: Vec<Uuid> = per_chat.keys().copied().collect();
    chat_ids.sort();

    let postgres = db.get_database_backend() == DbBackend::Postgres;
    let txn = db.begin().await?;
    if postgres {
        // Lock the chats in one order so two instances' batches cannot deadlock on them.
        chat::Entity::find()
            .select_only()
            .column(chat::Column::Id)
            .filter(chat::Column::Id.is_in(chat_ids.iter().copied()))
            .order_by_asc(chat::Column::Id)
            .lock_exclusive()
            .into_tuple::<Uuid>()
            .all(&txn)
            .await?;
    }
    let last_seqs = if postgres {
        bump_chats_at_once(&txn, &per_chat, now).await?
    } else {
        bump_chats_one_by_one(&txn, &chat_ids, &per_chat, now).await?
    };
    let mut next_seq: HashMap<Uuid, i64> = HashMap::new();
    for (chat_id, last) in last_seqs {
        let count = per_chat.get(&chat_id).copied().ok_or_else(|| anyhow::anyhow!("a chat not in the batch"))?;
        next_seq.insert(chat_id, last - count + 1);
    }
    if next_seq.len() != per_chat.len() {
        anyhow::bail!("a chat vanished");
    }
    let mut messages = Vec::with_capacity(sends.len());
    let mut newest_of_sender: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    for send in sends {
        let seq = next_seq.get_mut(&send.chat_id).map(|next| {
            *next += 1;
            *next - 1
        });
        let seq = seq.ok_or_else(|| anyhow::anyhow!("a send lost its chat"))?;
        let newest = newest_of_sender.entry((send.chat_id, send.sender)).or_default();
        *newest = Ord::max(*newest, seq);
        messages.push(new_message(send.chat_id, send.sender, &send.request, seq, now));
    }
    message::Entity::insert_many(messages.iter().map(row)).exec_without_returning(&txn).await?;
    if postgres {
        raise_own_watermarks_at_once(&txn, &newest_of_sender).await?;
    } else {
        for ((chat_id, sender), seq) in newest_of_sender {
            raise_own_watermarks(&txn, chat_id, sender, seq).await?;
        }
    }
    txn.commit().await?;
    Ok(messages.into_iter().map(|message| Ok(Stored { message, fresh: true })).collect())
}

/// Raises each chat's `last_seq` by its share of the batch, one statement per chat; the new values.
async fn bump_chats_one_by_one<C: ConnectionTrait>(
    txn: &C,
    chat_ids: &[Uuid],
    per_chat: &HashMap<Uuid, i64>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(Uuid, i64)>> {
    let mut last_seqs = Vec::with_capacity(chat_ids.len());
    for chat_id in chat_ids {
        let count = per_chat[chat_id];
        let bumped = chat::Entity::update_many()
            .col_expr(chat::Column::LastSeq, Expr::col(chat::Column::LastSeq).add(Expr::value(count).cast_as("bigint")))
            .col_expr(chat::Column::LastMessageAt, Expr::value(now))
            .filter(chat::Column::Id.eq(*chat_id))
            .exec_with_returning(txn)
            .await?;
        if let Some(chat) = bumped.first() {
            last_seqs.push((chat.id, chat.last_seq));
        }
    }
    Ok(last_seqs)
}

/// The same in one PostgreSQL statement, whatever the number of chats (the rows are already locked
/// in id order).
async fn bump_chats_at_once<C: ConnectionTrait>(
    txn: &C,
    per_chat: &HashMap<Uuid, i64>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(Uuid, i64)>> {
    let mut values: Vec<sea_orm::Value> = vec![now.into()];
    let mut rows = Vec::with_capacity(per_chat.len());
    for (chat_id, count) in per_chat {
        values.push((*chat_id).into());
        values.push((*count).into());
        rows.push(format!("(${}::uuid, ${}::bigint)", values.len() - 1, values.len()));
    }
    let sql = format!(
        "UPDATE chats AS c SET last_seq = c.last_seq + v.n, last_message_at = $1 \
         FROM (VALUES {}) AS v(id, n) WHERE c.id = v.id RETURNING c.id, c.last_seq",
        rows.join(", ")
    );
    let result = txn.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
    result.iter().map(|row| Ok((row.try_get::<Uuid>("", "id")?, row.try_get::<i64>("", "last_seq")?))).collect()
}

/// Every sender's read and delivered watermarks raised to their newest seq, in one PostgreSQL
/// statement.
async fn raise_own_watermarks_at_once<C: ConnectionTrait>(
    txn: &C,
    newest: &HashMap<(Uuid, Uuid), i64>,
) -> anyhow::Result<()> {
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(newest.len() * 3);
    let mut rows = Vec::with_capacity(newest.len());
    for ((chat_id, sender), seq) in newest {
        values.extend([(*chat_id).into(), (*sender).into(), (*seq).into()]);
        let at = values.len();
        rows.push(format!("(${}::uuid, ${}::uuid, ${}::bigint)", at - 2, at - 1, at));
    }
    let sql = format!(
        "UPDATE chat_participants AS p SET last_read_seq = GREATEST(p.last_read_seq, v.seq), \
         last_delivered_seq = GREATEST(p.last_delivered_seq, v.seq) \
         FROM (VALUES {}) AS v(chat_id, user_id, seq) WHERE p.chat_id = v.chat_id AND p.user_id = v.user_id",
        rows.join(", ")
    );
    txn.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
    Ok(())
}

/// Now, at the precision the databases keep (microseconds), so an acknowledged message equals
/// the same message read back later.
fn stored_now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A message as stored: a fresh id, its seq, and the send's content.
fn new_message(chat_id: Uuid, sender: Uuid, request: &SendMessageRequest, seq: i64, now: DateTime<Utc>) -> MessageDto {
    MessageDto {
        id: Uuid::now_v7(),
        chat_id,
        seq,
        sender_id: sender,
        client_msg_id: request.client_msg_id.clone(),
        content: request.content.clone(),
        image_url: None,
        reply_to: request.reply_to,
        created_at: now,
    }
}

fn row(message: &MessageDto) -> message::ActiveModel {
    message::ActiveModel {
        id: Set(message.id),
        chat_id: Set(message.chat_id),
        seq: Set(message.seq),
        sender_id: Set(message.sender_id),
        client_msg_id: Set(message.client_msg_id.clone()),
        content: Set(message.content.clone()),
        attachment_id: Set(None),
        image_url: Set(message.image_url.clone()),
        reply_to: Set(message.reply_to),
        created_at: Set(message.created_at),
        edited_at: Set(None),
        deleted_at: Set(None),
    }
}

/// The sender has read (and received) what they wrote: both watermarks rise to `seq`, never fall.
async fn raise_own_watermarks<C: ConnectionTrait>(db: &C, chat_id: Uuid, sender: Uuid, seq: i64) -> ApiResult<()> {
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

/// Stores one send on its own: the path of a lone send, and of a failed batch's replay.
async fn store_one(db: &DatabaseConnection, sender: Uuid, chat_id: Uuid, req: SendMessageRequest) -> ApiResult<Stored> {
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
    let seq = bumped.first().map(|c| c.last_seq).ok_or_else(super::chat_not_found)?;
    if let Some(reply_to) = req.reply_to
        && (reply_to < 1 || reply_to >= seq)
    {
        txn.rollback().await?;
        return Err(invalid_reply_to());
    }
    let message = new_message(chat_id, sender, &req, seq, now);
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
    chat_id: Uuid,
    sender: Uuid,
    client_msg_id: &str,
) -> ApiResult<Option<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::ChatId.eq(chat_id))
        .filter(message::Column::SenderId.eq(sender))
        .filter(message::Column::ClientMsgId.eq(client_msg_id))
        .one(db)
        .await?)
}
