//! Delivery receipts, gathered: connections report what reached their user; every interval one
//! task records the highest seq per user and chat in one write and announces each watermark that
//! moved. In a busy group every member's connection receives every message, so a write and an
//! event per delivery would outweigh the messages themselves.

use std::collections::HashMap;
use std::time::Duration;

use converge_shared::entities::chat::participant;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use uuid::Uuid;

use super::{messages, publish};
use crate::context::AppContext;
use crate::relay::{ChatEvent, Topic};

/// Reports waiting for the task; when full, a report is dropped (a later delivery or a read
/// raises the watermark anyway).
const QUEUE: usize = 16 * 1024;

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

/// Gathers reports for `interval` after the first one, records them, announces what moved.
pub async fn run(ctx: AppContext, mut pending: mpsc::Receiver<Report>, interval: Duration) {
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
        match record(&ctx, &highest).await {
            Ok(moved) => {
                for (chat_id, user_id, seq) in moved {
                    publish(&ctx, Topic::Chat(chat_id), ChatEvent::Delivered { chat_id, user_id, seq }).await;
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot record delivery receipts"),
        }
    }
}

/// Raises the delivered watermarks; the ones that moved.
async fn record(ctx: &AppContext, highest: &HashMap<(Uuid, Uuid), i64>) -> anyhow::Result<Vec<(Uuid, Uuid, i64)>> {
    if ctx.db.get_database_backend() != DbBackend::Postgres {
        let mut moved = Vec::new();
        for (&(chat_id, user_id), &seq) in highest {
            if messages::raise_watermark(&ctx.db, participant::Column::LastDeliveredSeq, user_id, chat_id, seq).await? {
                moved.push((chat_id, user_id, seq));
            }
        }
        return Ok(moved);
    }
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(highest.len() * 3);
    let mut rows = Vec::with_capacity(highest.len());
    for (&(chat_id, user_id), &seq) in highest {
        values.extend([chat_id.into(), user_id.into(), seq.into()]);
        let at = values.len();
        rows.push(format!("(${}::uuid, ${}::uuid, ${}::bigint)", at - 2, at - 1, at));
    }
    let sql = format!(
        "UPDATE chat_participants AS p SET last_delivered_seq = v.seq \
         FROM (VALUES {}) AS v(chat_id, user_id, seq) \
         WHERE p.chat_id = v.chat_id AND p.user_id = v.user_id AND p.last_delivered_seq < v.seq \
         RETURNING p.chat_id, p.user_id, p.last_delivered_seq",
        rows.join(", ")
    );
    let result = ctx.db.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
    result
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<Uuid>("", "chat_id")?,
                row.try_get::<Uuid>("", "user_id")?,
                row.try_get::<i64>("", "last_delivered_seq")?,
            ))
        })
        .collect()
}
