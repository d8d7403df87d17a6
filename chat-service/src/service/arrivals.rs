//! Connections arriving: each follows every chat of its user and receives the chats' views. One
//! task serves every arrival queued meanwhile with one set of queries, whatever their number:
//! when a thousand clients reconnect at once (an instance restarting, a network coming back), six
//! queries per connection had made PostgreSQL the busiest process of the storm.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use converge_shared::api_error::ApiResult;
use converge_shared::dto::ChatDto;
use futures_util::FutureExt;
use futures_util::future::join_all;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::chats::{self, ViewSource};
use crate::hub::{ConnId, Hub};

/// Arrivals waiting for the task; beyond this, connections wait to be queued.
const QUEUE: usize = 4096;
/// Most arrivals served by one set of queries.
const MAX_BATCH: usize = 256;

/// The handle connections start through; cheap to clone.
#[derive(Clone)]
pub struct Arrivals {
    queue: mpsc::Sender<Arrival>,
}

struct Arrival {
    user_id: Uuid,
    conn: ConnId,
    reply: oneshot::Sender<ApiResult<Vec<ChatDto>>>,
}

impl Arrivals {
    /// Starts the task on the current runtime.
    pub fn spawn(db: DatabaseConnection, hub: Arc<Hub>) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, hub, waiting));
        Self { queue }
    }

    /// Follows every chat of `user_id` on `conn` and returns their views, most recently active
    /// first. The views are read after following: every message newer than a view's `lastSeq`
    /// reaches `conn` live.
    pub async fn follow_chats(&self, user_id: Uuid, conn: ConnId) -> ApiResult<Vec<ChatDto>> {
        let (reply, answer) = oneshot::channel();
        let stopped = || anyhow::anyhow!("the arrivals task has stopped");
        self.queue.send(Arrival { user_id, conn, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(db: DatabaseConnection, hub: Arc<Hub>, mut waiting: mpsc::Receiver<Arrival>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let arrivals = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        let count = arrivals.len();
        metrics::histogram!("arrivals_batch_size").record(count as f64);
        // A bug that panics fails its batch (the dropped replies answer each connection), not
        // every later connection of the instance.
        if AssertUnwindSafe(serve(&db, &hub, arrivals)).catch_unwind().await.is_err() {
            tracing::error!(arrivals = count, "serving arrivals panicked");
        }
    }
}

async fn serve(db: &DatabaseConnection, hub: &Hub, arrivals: Vec<Arrival>) {
    let users: Vec<Uuid> = arrivals.iter().map(|a| a.user_id).collect::<HashSet<_>>().into_iter().collect();
    let chats_of = match chats::chat_ids_of_each(db, &users).await {
        Ok(chats_of) => chats_of,
        Err(e) => {
            for arrival in arrivals {
                let _ = arrival.reply.send(Err(e.duplicate()));
            }
            return;
        }
    };
    // Side by side: a chat this instance does not follow yet waits for a Redis subscription.
    let followed = join_all(arrivals.iter().map(|arrival| {
        let chat_ids = chats_of.get(&arrival.user_id).cloned().unwrap_or_default();
        async move {
            for chat_id in &chat_ids {
                follow(db, hub, arrival.conn, *chat_id).await?;
            }
            anyhow::Ok(chat_ids)
        }
    }))
    .await;
    let wanted: Vec<Uuid> = followed.iter().flatten().flatten().copied().collect::<HashSet<_>>().into_iter().collect();
    let source = ViewSource::read(db, &wanted).await;
    for (arrival, followed) in arrivals.into_iter().zip(followed) {
        let views = match (&source, followed) {
            (Ok(source), Ok(chat_ids)) => Ok(source.views_of(arrival.user_id, &chat_ids)),
            (Err(e), _) => Err(e.duplicate()),
            (_, Err(e)) => Err(e.into()),
        };
        let _ = arrival.reply.send(views);
    }
}

/// Delivers `chat_id`'s live events to `conn` from now on.
pub async fn follow(db: &DatabaseConnection, hub: &Hub, conn: ConnId, chat_id: Uuid) -> anyhow::Result<()> {
    hub.follow(conn, chat_id, || async move {
        Ok(chats::find(db, chat_id).await.map_err(|e| anyhow::anyhow!("{e}"))?.last_seq)
    })
    .await
}
