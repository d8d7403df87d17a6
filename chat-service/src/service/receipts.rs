//! Delivery receipts, gathered: connections report what reached their user; every interval one
//! task records the highest seq per user and chat in one write, then announces per chat the seq
//! every participant has received (`messages_delivered`) where it rose, a few chats at a time over
//! half an interval (all at once, they were a burst of frames). In a busy group every
//! member's connection receives every message: an event per member per interval, sent to every
//! member, would grow with the square of the group and outweigh the messages themselves.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use converge_shared::entities::chat::participant;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QuerySelect, Statement,
};
use tokio::sync::Notify;
use uuid::Uuid;

use super::{messages, publish_all};
use crate::context::AppContext;
use crate::relay::{ChatEvent, Relay, Topic};

/// Chats whose announced watermark is remembered; beyond this the memory starts over (at worst a
/// watermark is announced twice).
const MAX_REMEMBERED: usize = 100_000;
/// A round's announcements go out in at most this many slices, spread over half the interval.
const SLICES: usize = 50;

/// Where connections report deliveries; cheap to clone. Reports of the same user and chat merge
/// into the highest seq until the task takes them. Every delivery reports, so a report is a map
/// update under a lock held for nanoseconds: a queue to the task cost a push per delivery and, as
/// the task kept up, a wake-up of its thread for most of them.
#[derive(Clone, Default)]
pub struct DeliveryReceipts {
    gathered: Arc<Gathered>,
}

#[derive(Default)]
struct Gathered {
    highest: Mutex<HashMap<(Uuid, Uuid), i64>>,
    /// Signalled by the first report into an empty map: the task's interval starts there.
    first: Notify,
}

impl DeliveryReceipts {
    /// Everything up to `seq` in `chat_id` has reached one of `user_id`'s connections.
    pub fn delivered(&self, chat_id: Uuid, user_id: Uuid, seq: i64) {
        let first = {
            let mut highest = self.highest();
            let first = highest.is_empty();
            let entry = highest.entry((chat_id, user_id)).or_default();
            *entry = (*entry).max(seq);
            first
        };
        if first {
            self.gathered.first.notify_one();
        }
    }

    /// The reports gathered during `interval` after the first one.
    async fn gather(&self, interval: Duration) -> HashMap<(Uuid, Uuid), i64> {
        self.gathered.first.notified().await;
        tokio::time::sleep(interval).await;
        std::mem::take(&mut *self.highest())
    }

    fn highest(&self) -> MutexGuard<'_, HashMap<(Uuid, Uuid), i64>> {
        // Nothing panics while holding it; a map of watermarks stays usable if something did.
        self.gathered.highest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Gathers reports for `interval` after the first one, records them, and announces each chat's
/// delivered-to-all watermark where it rose, spread over half the interval.
pub async fn run(ctx: AppContext, interval: Duration) {
    // What this instance last announced per chat; another instance may announce the same value
    // again, which clients take as a no-op.
    let mut announced: HashMap<Uuid, i64> = HashMap::new();
    loop {
        let highest = ctx.receipts.gather(interval).await;
        if highest.is_empty() {
            continue;
        }
        let chats: HashSet<Uuid> = highest.keys().map(|(chat_id, _)| *chat_id).collect();
        let recorded = async {
            record(&ctx.db, &highest).await?;
            delivered_to_all(&ctx.db, &chats).await
        };
        match recorded.await {
            Ok(watermarks) => {
                let rose: Vec<(Uuid, i64)> = watermarks
                    .into_iter()
                    .filter(|(chat_id, seq)| *seq > 0 && announced.get(chat_id).is_none_or(|done| done < seq))
                    .collect();
                announced.extend(rose.iter().copied());
                announce(&**ctx.hub.relay(), &rose, interval / 2).await;
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot record delivery receipts"),
        }
        if announced.len() > MAX_REMEMBERED {
            announced.clear();
        }
    }
}

/// Announces each chat's new watermark, a slice of chats at a time over `over`. Announced at
/// once, a round's `messages_delivered` — one per chat, each sent to every member — reached the
/// connections as a burst that the messages arriving with it queued behind: in the benchmark's
/// grid the p99 of a message's delivery was twice to three times what it was without them
/// (docs/benchmarks-history.md).
async fn announce(relay: &dyn Relay, rose: &[(Uuid, i64)], over: Duration) {
    if rose.is_empty() {
        return;
    }
    let size = rose.len().div_ceil(SLICES);
    let pause = over / rose.len().div_ceil(size) as u32;
    for (i, slice) in rose.chunks(size).enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        let events: Vec<(Topic, ChatEvent)> =
            slice.iter().map(|&(chat_id, seq)| (Topic::Chat(chat_id), ChatEvent::Delivered { chat_id, seq })).collect();
        publish_all(relay, &events).await;
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
async fn record(db: &DatabaseConnection, highest: &HashMap<(Uuid, Uuid), i64>) -> anyhow::Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        for (&(chat_id, user_id), &seq) in highest {
            messages::raise_watermark(db, participant::Column::LastDeliveredSeq, user_id, chat_id, seq).await?;
        }
        return Ok(());
    }
    let values = vec![
        highest.keys().map(|(chat_id, _)| *chat_id).collect::<Vec<_>>().into(),
        highest.keys().map(|(_, user_id)| *user_id).collect::<Vec<_>>().into(),
        highest.values().copied().collect::<Vec<_>>().into(),
    ];
    db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, RAISE_DELIVERED, values)).await?;
    Ok(())
}

/// Per chat, the seq every participant has received or read.
async fn delivered_to_all(db: &DatabaseConnection, chats: &HashSet<Uuid>) -> anyhow::Result<Vec<(Uuid, i64)>> {
    let received =
        Expr::cust("MIN(CASE WHEN last_read_seq > last_delivered_seq THEN last_read_seq ELSE last_delivered_seq END)");
    Ok(participant::Entity::find()
        .select_only()
        .column(participant::Column::ChatId)
        .column_as(received, "seq")
        .filter(participant::Column::ChatId.is_in(chats.iter().copied()))
        .group_by(participant::Column::ChatId)
        .into_tuple::<(Uuid, i64)>()
        .all(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use converge_migrations::ServiceDb;
    use tokio::sync::mpsc;

    use super::*;
    use crate::relay::local::LocalRelay;

    /// A round's announcements leave in slices spread over the time given, every chat's once and
    /// in order: all at once, they reached the connections as one burst.
    #[tokio::test(start_paused = true)]
    async fn a_rounds_announcements_leave_in_slices_spread_over_the_time_given() {
        let (sender, mut published) = mpsc::channel(1024);
        let relay = LocalRelay::new(sender);
        let rose: Vec<(Uuid, i64)> = (1..=120).map(|seq| (Uuid::now_v7(), seq)).collect();
        let over = Duration::from_millis(500);
        let started = tokio::time::Instant::now();
        // Time stands still until every task waits, so each event is seen at the instant it left.
        let seen = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some((topic, event)) = published.recv().await {
                seen.push((started.elapsed(), topic, event));
            }
            seen
        });
        announce(&relay, &rose, over).await;
        drop(relay);
        let seen = seen.await.unwrap();

        let events: Vec<(Topic, ChatEvent)> = seen.iter().map(|(_, topic, event)| (*topic, event.clone())).collect();
        let expected: Vec<(Topic, ChatEvent)> =
            rose.iter().map(|&(chat_id, seq)| (Topic::Chat(chat_id), ChatEvent::Delivered { chat_id, seq })).collect();
        assert_eq!(events, expected);
        let mut per_instant: Vec<(Duration, usize)> = Vec::new();
        for (at, _, _) in &seen {
            match per_instant.last_mut() {
                Some((last, count)) if last == at => *count += 1,
                _ => per_instant.push((*at, 1)),
            }
        }
        let largest = per_instant.iter().map(|(_, count)| *count).max().unwrap();
        assert!(largest <= rose.len().div_ceil(SLICES), "a slice of {largest} announcements");
        let (last, _) = per_instant.last().unwrap();
        // Sleeps end on the timer's next millisecond: 39 pauses of 12.5 ms take 13 ms each (507 ms).
        assert!(*last >= over * 3 / 4 && *last <= over + over / 10, "the last slice left at {last:?}, {over:?} given");
    }

    /// Reports merge into the highest seq per user and chat; one made after a gathering is kept
    /// for the next.
    #[tokio::test]
    async fn reports_merge_into_the_highest_seq_until_gathered() {
        let receipts = DeliveryReceipts::default();
        // A report that failed to start the interval would leave the gathering waiting.
        let gather = |receipts: &DeliveryReceipts| {
            let receipts = receipts.clone();
            async move { tokio::time::timeout(Duration::from_secs(5), receipts.gather(Duration::from_millis(1))).await }
        };
        let (chat, ana, bob) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for seq in [3, 5, 4] {
            receipts.delivered(chat, ana, seq);
        }
        receipts.delivered(chat, bob, 2);
        assert_eq!(gather(&receipts).await, Ok(HashMap::from([((chat, ana), 5), ((chat, bob), 2)])));

        receipts.delivered(chat, bob, 6);
        assert_eq!(gather(&receipts).await, Ok(HashMap::from([((chat, bob), 6)])));
    }

    /// Reports for two chats' members: every watermark rises to its report, and none is lowered by
    /// a report older than what is stored.
    #[tokio::test]
    async fn every_reported_watermark_is_raised_and_none_lowered() {
        let db = sea_orm::Database::connect(converge_testkit::fresh_postgres_database().await).await.unwrap();
        ServiceDb::Chat.migrate_up(&db).await.unwrap();
        let (chats, members) = ([Uuid::now_v7(), Uuid::now_v7()], 150);
        let users: Vec<Uuid> = (0..members).map(|_| Uuid::now_v7()).collect();
        for chat in chats {
            let insert =
                "INSERT INTO chats (id, kind, created_by, created_at, last_seq) VALUES ($1, 'group', $2, now(), 50)";
            db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, insert, [chat.into(), users[0].into()]))
                .await
                .unwrap();
            let insert = "INSERT INTO chat_participants (chat_id, user_id, role, joined_at, last_delivered_seq, last_read_seq) \
                          SELECT $1, u, 'member', now(), 10, 0 FROM unnest($2::uuid[]) AS u";
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                insert,
                [chat.into(), users.clone().into()],
            ))
            .await
            .unwrap();
        }
        // Member i of chat c reported seq 5 + i + c: the first five stay at the stored 10.
        let reported: HashMap<(Uuid, Uuid), i64> = chats
            .iter()
            .enumerate()
            .flat_map(|(c, chat)| users.iter().enumerate().map(move |(i, user)| ((*chat, *user), (5 + i + c) as i64)))
            .collect();

        record(&db, &reported).await.unwrap();

        let stored: HashMap<(Uuid, Uuid), i64> = participant::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|p| ((p.chat_id, p.user_id), p.last_delivered_seq))
            .collect();
        let expected: HashMap<(Uuid, Uuid), i64> = reported.iter().map(|(key, seq)| (*key, (*seq).max(10))).collect();
        assert_eq!(stored, expected);
    }
}
