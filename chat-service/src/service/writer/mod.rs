//! Group commit for messages: many sends, one transaction, one WAL flush.
//!
//! Every send of this instance goes through one writer task. While a batch commits, the next one
//! gathers; under load a batch holds many messages, so the cost of a durable commit (an fsync) is
//! shared by all of them. A committed batch goes straight to the [`Announcer`], and its sends are
//! answered once it is announced. What a send is promised does not change: its seq is taken from
//! `chats.last_seq` inside the transaction that stores it (row locks order instances; a failed
//! batch gives its numbers back), and it is acknowledged only after the commit.
//!
//! How a batch is stored depends on the database: [`postgres`] does it in one statement (arrays
//! as parameters, so it is prepared and planned once per connection), which decides each send as
//! [`plan`] does; [`portable`] (SQLite, and the replay below) reads first, decides with [`plan`],
//! and writes in a short transaction, since SQLite cannot turn a reading transaction into a
//! writing one while another connection writes.
//!
//! A batch whose write fails as a whole (a concurrent retry of the same `clientMsgId` that got
//! past the checks, a deadlock, a lost connection) is replayed send by send, so one bad send
//! never fails the others.

mod portable;
mod postgres;

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;

use chrono::{DateTime, SubsecRound, Utc};
use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::{ImageDto, MessageDto, SendMessageRequest};
use converge_shared::error::ErrorCode;
use futures_util::FutureExt;
use sea_orm::{DatabaseConnection, DbBackend};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::announcer::Announcer;

/// Sends waiting for the writer; beyond this, senders wait (back-pressure on their connections).
const QUEUE: usize = 4096;
/// Most sends in one transaction (bounded by latency more than by the database).
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
    /// The image of `request.attachment_id`, checked to be the sender's.
    image: Option<Box<ImageDto>>,
    reply: oneshot::Sender<ApiResult<Stored>>,
}

impl MessageWriter {
    /// Starts the writer task on the current runtime; it hands every committed batch to `announcer`.
    pub fn spawn(db: DatabaseConnection, announcer: Announcer) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, announcer, pending));
        Self { queue }
    }

    /// Starts the writer on a thread of its own, with the database connections `connect` makes
    /// there, so that a batch's answer is read as soon as it arrives rather than once the main
    /// thread's other tasks (the announcer, the relay) give way. Returns once connected.
    pub async fn spawn_on_own_thread<F, Fut>(connect: F, announcer: Announcer) -> anyhow::Result<Self>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<DatabaseConnection, sea_orm::DbErr>>,
    {
        let (queue, pending) = mpsc::channel(QUEUE);
        let (connected, is_connected) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("message-writer".into()).spawn(move || {
            runtime.block_on(async move {
                match connect().await {
                    Ok(db) => {
                        let _ = connected.send(Ok(()));
                        run(db, announcer, pending).await;
                    }
                    Err(e) => {
                        let _ = connected.send(Err(e));
                    }
                }
            })
        })?;
        is_connected.await.map_err(|_| anyhow::anyhow!("the message writer's thread stopped"))??;
        Ok(Self { queue })
    }

    /// Stores a validated send (with its attachment's `image`, checked to be the sender's) and
    /// returns the message with its seq, once committed and announced.
    pub async fn store(
        &self,
        sender: Uuid,
        chat_id: Uuid,
        request: SendMessageRequest,
        image: Option<Box<ImageDto>>,
    ) -> ApiResult<Stored> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { sender, chat_id, request, image, reply };
        self.queue.send(pending).await.map_err(|_| anyhow::anyhow!("the message writer has stopped"))?;
        answer.await.map_err(|_| anyhow::anyhow!("the message writer dropped a send"))?
    }
}

async fn run(db: DatabaseConnection, announcer: Announcer, mut pending: mpsc::Receiver<Pending>) {
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("message_batch_size").record(batch.len() as f64);
        let sends = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        let started = std::time::Instant::now();
        let outcome = async {
            if postgres {
                postgres::store_batch(&db, &sends).await
            } else if sends.len() == 1 {
                Ok(vec![portable::store_one(&db, &sends[0]).await])
            } else {
                portable::store_batch(&db, &sends).await
            }
        };
        // A bug that panics fails its batch, not every later send of the instance.
        let outcome = AssertUnwindSafe(outcome).catch_unwind().await.unwrap_or_else(|_| {
            tracing::error!(sends = sends.len(), "the message writer panicked; the batch was rolled back");
            Err(Failed::Unchecked(anyhow::anyhow!("the message writer failed").into()))
        });
        let results = match outcome {
            Ok(results) => results,
            // Nothing was written: every send gets the same answer.
            Err(Failed::Unchecked(e)) => sends.iter().map(|_| Err(e.duplicate())).collect(),
            Err(Failed::Write(e)) => {
                // Replay one by one: each send gets its own outcome, as if it had come alone.
                tracing::debug!(error = %e, sends = sends.len(), "a batch failed; storing its sends one by one");
                metrics::counter!("message_batch_replays_total").increment(1);
                let mut results = Vec::with_capacity(sends.len());
                for send in &sends {
                    results.push(portable::store_one(&db, send).await);
                }
                results
            }
        };
        metrics::histogram!("message_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("chat_messages_total").increment(results.iter().flatten().filter(|s| s.fresh).count() as u64);
        let messages = to_announce(&results);
        // Announced from here, not by each sender: publishing waits for no sender's connection.
        let answer = move || {
            for (send, result) in sends.into_iter().zip(results) {
                let _ = send.reply.send(result);
            }
        };
        announcer.announce(messages, Box::new(answer)).await;
    }
}

/// What a batch announces: the messages it stored, and the originals its retries found. A retry
/// may follow a commit that was never announced — its instance stopped between the commit and the
/// publish, or the link to the database broke after the commit and the replay below found the
/// batch's messages already stored — and announcing the original again costs nothing where it
/// was: feeds and connections drop a seq they are past.
fn to_announce(results: &[ApiResult<Stored>]) -> Vec<MessageDto> {
    let mut messages: Vec<MessageDto> = Vec::with_capacity(results.len());
    for stored in results.iter().flatten() {
        // A retry within the batch found a message already in the list; retries are rare.
        if stored.fresh || !messages.iter().any(|m| m.id == stored.message.id) {
            messages.push(stored.message.clone());
        }
    }
    messages
}

/// Why a batch stored nothing.
enum Failed {
    /// Reading the chats, memberships or earlier sends failed.
    Unchecked(ApiError),
    /// Writing failed and was rolled back; the sends may still be storable one by one.
    Write(anyhow::Error),
}

impl From<sea_orm::DbErr> for Failed {
    fn from(e: sea_orm::DbErr) -> Self {
        Failed::Write(e.into())
    }
}

/// Identifies a send for idempotency: the same key is the same message.
type SendKey = (Uuid, Uuid, String);

fn key_of(send: &Pending) -> SendKey {
    (send.chat_id, send.sender, send.request.client_msg_id.clone())
}

/// What the database says about a batch before anything is written.
struct Checked {
    /// The batch's chats and their `last_seq`, no newer than the commit's.
    last_seq: HashMap<Uuid, i64>,
    /// (chat, sender) pairs where the sender is a participant.
    members: HashSet<(Uuid, Uuid)>,
    /// Messages already stored under a send's key: retries.
    existing: HashMap<SendKey, MessageDto>,
}

/// What to do with one send of a batch.
enum Step {
    /// Answer without writing: refused, or a retry of a stored message (boxed: rare, and a
    /// message is large next to the other steps).
    Answer(Box<ApiResult<Stored>>),
    /// Store it.
    Store,
    /// A retry of the send at this index of the same batch: answer as that one.
    SameAs(usize),
}

/// Decides each send, in the order the one-by-one path checks.
fn plan(checked: &Checked, sends: &[Pending]) -> Vec<Step> {
    let mut first_of_key: HashMap<SendKey, usize> = HashMap::new();
    sends
        .iter()
        .enumerate()
        .map(|(index, send)| {
            let Some(last_seq) = checked.last_seq.get(&send.chat_id) else {
                return Step::Answer(Box::new(Err(super::chat_not_found())));
            };
            if !checked.members.contains(&(send.chat_id, send.sender)) {
                return Step::Answer(Box::new(Err(super::forbidden())));
            }
            let key = key_of(send);
            if let Some(message) = checked.existing.get(&key) {
                return Step::Answer(Box::new(Ok(Stored { message: message.clone(), fresh: false })));
            }
            // A message the client has seen was committed before this batch was read.
            if let Some(reply_to) = send.request.reply_to
                && (reply_to < 1 || reply_to > *last_seq)
            {
                return Step::Answer(Box::new(Err(invalid_reply_to())));
            }
            match first_of_key.get(&key) {
                Some(first) => Step::SameAs(*first),
                None => {
                    first_of_key.insert(key, index);
                    Step::Store
                }
            }
        })
        .collect()
}

/// Numbers the sends to store: each chat continues from its `last_seq`, in arrival order.
/// Returns the new messages (in the order of `Step::Store` in `steps`) and each chat's new
/// `last_seq`.
fn number(
    checked: &Checked,
    sends: &[Pending],
    steps: &[Step],
    now: DateTime<Utc>,
) -> (Vec<MessageDto>, Vec<(Uuid, i64)>) {
    let mut last_seq = checked.last_seq.clone();
    let mut bumped: Vec<Uuid> = Vec::new();
    let mut messages = Vec::new();
    for (send, step) in sends.iter().zip(steps) {
        if !matches!(step, Step::Store) {
            continue;
        }
        let last = last_seq.entry(send.chat_id).or_default();
        if !bumped.contains(&send.chat_id) {
            bumped.push(send.chat_id);
        }
        *last += 1;
        messages.push(new_message(send, *last, now));
    }
    bumped.sort();
    let chats = bumped.into_iter().map(|id| (id, last_seq[&id])).collect();
    (messages, chats)
}

/// Each sender's newest seq per chat in `messages`: their read and delivered marks rise to it.
fn newest_of_senders(messages: &[MessageDto]) -> HashMap<(Uuid, Uuid), i64> {
    let mut newest: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    for message in messages {
        let seq = newest.entry((message.chat_id, message.sender_id)).or_default();
        *seq = Ord::max(*seq, message.seq);
    }
    newest
}

/// Every send's answer, once the batch's messages (`stored`, in step order) are committed.
fn answers(steps: Vec<Step>, stored: Vec<MessageDto>) -> Vec<ApiResult<Stored>> {
    let mut stored = stored.into_iter();
    let mut results: Vec<ApiResult<Stored>> = Vec::with_capacity(steps.len());
    for step in steps {
        let result = match step {
            Step::Answer(answer) => *answer,
            Step::Store => match stored.next() {
                Some(message) => Ok(Stored { message, fresh: true }),
                None => Err(anyhow::anyhow!("a stored message went missing from its batch").into()),
            },
            Step::SameAs(first) => match &results[first] {
                Ok(original) => Ok(Stored { message: original.message.clone(), fresh: false }),
                Err(e) => Err(e.duplicate()),
            },
        };
        results.push(result);
    }
    results
}

fn invalid_reply_to() -> ApiError {
    ApiError::new(ErrorCode::InvalidSeq, "replyTo must be the seq of an earlier message")
}

/// Now, at the precision the databases keep (microseconds), so an acknowledged message equals
/// the same message read back later.
fn stored_now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A message as stored: a fresh id, its seq, and the send's content and image.
fn new_message(send: &Pending, seq: i64, now: DateTime<Utc>) -> MessageDto {
    MessageDto {
        id: Uuid::now_v7(),
        chat_id: send.chat_id,
        seq,
        sender_id: send.sender,
        client_msg_id: send.request.client_msg_id.clone(),
        content: send.request.content.clone(),
        image: send.image.clone(),
        reply_to: send.request.reply_to,
        created_at: now,
        edited_at: None,
        deleted_at: None,
        edit_seq: None,
        reactions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn send(chat_id: Uuid, sender: Uuid, client_msg_id: &str, reply_to: Option<i64>) -> Pending {
        let request = SendMessageRequest {
            client_msg_id: client_msg_id.into(),
            content: "hi".into(),
            attachment_id: None,
            reply_to,
        };
        Pending { sender, chat_id, request, image: None, reply: oneshot::channel().0 }
    }

    pub(super) fn code(result: &ApiResult<Stored>) -> Option<ErrorCode> {
        result.as_ref().err().map(ApiError::code)
    }

    #[test]
    fn a_batch_is_refused_stored_and_deduplicated_send_by_send() {
        let (chat, other_chat, missing) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (ana, bob, stranger) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let earlier = new_message(&send(chat, bob, "b-1", None), 7, stored_now());
        let checked = Checked {
            last_seq: HashMap::from([(chat, 7), (other_chat, 0)]),
            members: HashSet::from([(chat, ana), (chat, bob), (other_chat, ana)]),
            existing: HashMap::from([((chat, bob, "b-1".to_owned()), earlier.clone())]),
        };
        let sends = [
            send(chat, ana, "a-1", Some(7)),    // 0: stored, seq 8
            send(missing, ana, "a-2", None),    // 1: no such chat
            send(chat, stranger, "s-1", None),  // 2: not a participant
            send(chat, bob, "b-1", None),       // 3: a retry of a stored message
            send(other_chat, ana, "a-3", None), // 4: stored, seq 1 of the other chat
            send(chat, ana, "a-1", Some(7)),    // 5: a retry of 0 in the same batch
            send(chat, bob, "b-2", Some(9)),    // 6: replies to a message that does not exist yet
            send(chat, bob, "b-3", None),       // 7: stored, seq 9
        ];
        let steps = plan(&checked, &sends);
        assert!(matches!(steps[5], Step::SameAs(0)));
        let (messages, chats) = number(&checked, &sends, &steps, stored_now());
        let numbered: Vec<_> = messages.iter().map(|m| (m.chat_id, m.seq, m.client_msg_id.as_str())).collect();
        assert_eq!(numbered, [(chat, 8, "a-1"), (other_chat, 1, "a-3"), (chat, 9, "b-3")]);
        let mut expected_chats = vec![(chat, 9), (other_chat, 1)];
        expected_chats.sort();
        assert_eq!(chats, expected_chats);
        assert_eq!(
            newest_of_senders(&messages),
            HashMap::from([((chat, ana), 8), ((other_chat, ana), 1), ((chat, bob), 9)])
        );

        let results = answers(steps, messages.clone());
        assert_eq!(code(&results[1]), Some(ErrorCode::NotFound));
        assert_eq!(code(&results[2]), Some(ErrorCode::Forbidden));
        assert_eq!(code(&results[6]), Some(ErrorCode::InvalidSeq));
        let stored = |i: usize| results[i].as_ref().map(|s| (s.message.id, s.fresh)).ok();
        assert_eq!(stored(0), Some((messages[0].id, true)));
        assert_eq!(stored(3), Some((earlier.id, false)), "a retry gets the original, not a new message");
        assert_eq!(stored(4), Some((messages[1].id, true)));
        assert_eq!(stored(5), Some((messages[0].id, false)), "a retry within the batch answers as its first");
        assert_eq!(stored(7), Some((messages[2].id, true)));

        let announced: Vec<Uuid> = to_announce(&results).iter().map(|m| m.id).collect();
        assert_eq!(
            announced,
            [messages[0].id, earlier.id, messages[1].id, messages[2].id],
            "the stored messages and the original a retry found, each once"
        );
    }
}
