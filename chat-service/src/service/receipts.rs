//! Delivery receipts, gathered: connections report what reached their user; every interval one
//! task records the highest seq per user and chat in one write, then announces per chat the seq
//! every participant has received (`messages_delivered`) where it rose. In a busy group every
//! member's connection receives every message: an event per member per interval, sent to every
//! member, would grow with the square of the group and outweigh the messages themselves.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use converge_shared::entities::chat::participant;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, Statement};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use uuid::Uuid;

use super::{messages, publish};
use crate::context::AppContext;
use crate::relay::{ChatEvent, Topic};

/// Reports waiting for the task; when full, a report is dropped (a later delivery or a read
/// raises the watermark anyway).
const QUEUE: usize = 16 * 1024;
/// Chats whose announced watermark is remembered; beyond this the memory starts over (at worst a
/// watermark is announced twice).
const MAX_REMEMBERED: usize = 100_000;

/// Where connections report deliveries; cheap to clone.
#[derive(Clone)]
pub struct DeliveryReceipts {
    reports: mpsc::Sender<Report>,
}

/// One connection's word that a user has everything up to `seq` of a chat.
pub struct Report {
    chat_id: Uuid,
    user_id: Uuid,
    seq: i64,
}

impl DeliveryReceipts {
    /// The handle, and what [`run`] needs to start once the context exists.
    pub fn new() -> (Self, mpsc::Receiver<Report>) {
        let (reports, pending) = mpsc::channel(QUEUE);
        (Self { reports }, pending)
    }

    /// Everything up to `seq` in `chat_id` has reached one of `user_id`'s connections.
    pub fn delivered(&self, chat_id: Uuid, user_id: Uuid, seq: i64) {
        if self.reports.try_send(Report { chat_id, user_id, seq }).is_err() {
            metrics::counter!("delivery_receipts_dropped_total").increment(1);
        }
    }
}

/// Gathers reports for `interval` after the first one, records them, and announces each chat's
/// delivered-to-all watermark where it rose.
pub async fn run(ctx: AppContext, mut pending: mpsc::Receiver<Report>, interval: Duration) {
    // What this instance last announced per chat; another instance may announce the same value
    // again, which clients take as a no-op.
    let mut announced: HashMap<Uuid, i64> = HashMap::new();
    while let Some(first) = pending.recv().await {
        let mut highest: HashMap<(Uuid, Uuid), i64> = HashMap::from([((first.chat_id, first.user_id), first.seq)]);
        let due = Instant::now() + interval;
        loop {
            tokio::select! {
                report = pending.recv() => match report {
                    Some(Report { chat_id, user_id, seq }) => {
                        let entry = highest.entry((chat_id, user_id)).or_default();
                        *entry = (*entry).max(seq);
                    }
                    None => break,
                },
                () = sleep_until(due) => break,
            }
        }
        let chats: HashSet<Uuid> = highest.keys().map(|(chat_id, _)| *chat_id).collect();
        let recorded = async {
            record(&ctx, &highest).await?;
            delivered_to_all(&ctx, &chats).await
        };
        match recorded.await {
            Ok(watermarks) => {
                for (chat_id, seq) in watermarks {
                    if announced.get(&chat_id).is_some_and(|done| *done >= seq) || seq == 0 {
                        continue;
                    }
                    announced.insert(chat_id, seq);
                    publish(&ctx, Topic::Chat(chat_id), ChatEvent::Delivered { chat_id, seq }).await;
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot record delivery receipts"),
        }
        if announced.len() > MAX_REMEMBERED {
            announced.clear();
        }
    }
}

/// Raises delivered watermarks. The rows are locked in (chat, user) order first, the order the
/// message writer locks its senders' rows in: two statements that lock rows in different orders
/// can deadlock, and PostgreSQL takes `deadlock_timeout` (1 s) to break the tie.
const RAISE_DELIVERED: &str = "WITH raised AS ( \
       SELECT p.chat_id, p.user_id, v.seq FROM chat_participants p \
       JOIN unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS v(chat_id, user_id, seq) \
         ON p.chat_id = v.chat_id AND p.user_id = v.user_id AND p.last_delivered_seq < v.seq \
       ORDER BY p.chat_id, p.user_id FOR UPDATE OF p) \
     UPDATE chat_participants AS p SET last_delivered_seq = GREATEST(p.last_delivered_seq, r.seq) \
     FROM raised r WHERE p.chat_id = r.chat_id AND p.user_id = r.user_id";

/// Raises the delivered watermarks.
async fn record(ctx: &AppContext, highest: &HashMap<(Uuid, Uuid), i64>) -> anyhow::Result<()> {
    if ctx.db.get_database_backend() != DbBackend::Postgres {
        for (&(chat_id, user_id), &seq) in highest {
            messages::raise_watermark(&ctx.db, participant::Column::LastDeliveredSeq, user_id, chat_id, seq).await?;
        }
        return Ok(());
    }
    let values = vec![
        highest.keys().map(|(chat_id, _)| *chat_id).collect::<Vec<_>>().into(),
        highest.keys().map(|(_, user_id)| *user_id).collect::<Vec<_>>().into(),
        highest.values().copied().collect::<Vec<_>>().into(),
    ];
    ctx.db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, RAISE_DELIVERED, values)).await?;
    Ok(())
}

/// Per chat, the seq every participant has received or read.
async fn delivered_to_all(ctx: &AppContext, chats: &HashSet<Uuid>) -> anyhow::Result<Vec<(Uuid, i64)>> {
    let received =
        Expr::cust("MIN(CASE WHEN last_read_seq > last_delivered_seq THEN last_read_seq ELSE last_delivered_seq END)");
    Ok(participant::Entity::find()
        .select_only()
        .column(participant::Column::ChatId)
        .column_as(received, "seq")
        .filter(participant::Column::ChatId.is_in(chats.iter().copied()))
        .group_by(participant::Column::ChatId)
        .into_tuple::<(Uuid, i64)>()
        .all(&ctx.db)
        .await?)
}
