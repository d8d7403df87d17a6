//! The hot window: each chat's most recent messages, kept where every instance reads them cheaply.
//!
//! In the scaled deployment it is a Redis sorted set per chat, scored by seq, written after each
//! commit and trimmed to `CHAT_WINDOW_SIZE`. It is a cache, never the truth: a read is served from
//! it only when it holds *every* seq of the range asked for, so a window emptied by a Redis restart
//! or `FLUSHALL`, trimmed, or missing the writes of an outage simply sends the read to the database.
//! The embedded default has no window ([`NoWindow`]): one process on a local database gains nothing
//! from a second copy of the same rows.

use std::sync::Arc;
use std::time::Duration;

use converge_shared::dto::MessageDto;
use uuid::Uuid;

use crate::hub::{MessageSource, Watermark};
use crate::relay::redis::{Keys, SharedConnection};

/// An idle chat's window is dropped after this long; the next message starts it again.
const IDLE_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

#[async_trait::async_trait]
pub trait HotWindow: Send + Sync + 'static {
    /// Remembers committed messages (one Redis round trip for all of them).
    async fn push(&self, messages: &[MessageDto]) -> anyhow::Result<()>;
    /// Drops the copy of the message at `seq` (it is being changed): reads of a range holding it go
    /// to the database until a new copy is pushed.
    async fn forget(&self, chat_id: Uuid, seq: i64) -> anyhow::Result<()>;
    /// The messages with seq `from..=to`, if the window holds all of them; `None` sends the read to
    /// the database.
    async fn range(&self, chat_id: Uuid, from: i64, to: i64) -> anyhow::Result<Option<Vec<MessageDto>>>;
}

/// The embedded default: no window, every read goes to the database.
pub struct NoWindow;

#[async_trait::async_trait]
impl HotWindow for NoWindow {
    async fn push(&self, _messages: &[MessageDto]) -> anyhow::Result<()> {
        Ok(())
    }

    async fn forget(&self, _chat_id: Uuid, _seq: i64) -> anyhow::Result<()> {
        Ok(())
    }

    async fn range(&self, _chat_id: Uuid, _from: i64, _to: i64) -> anyhow::Result<Option<Vec<MessageDto>>> {
        Ok(None)
    }
}

pub struct RedisWindow {
    redis: SharedConnection,
    keys: Keys,
    size: usize,
}

impl RedisWindow {
    pub fn new(redis: SharedConnection, keys: Keys, size: usize) -> Self {
        Self { redis, keys, size: size.max(1) }
    }
}

#[async_trait::async_trait]
impl HotWindow for RedisWindow {
    async fn push(&self, messages: &[MessageDto]) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        for message in messages {
            pipe.zadd(self.keys.window(message.chat_id), serde_json::to_string(message)?, message.seq).ignore();
        }
        // Trimmed and kept alive once per chat, not once per message.
        let mut chats: Vec<Uuid> = messages.iter().map(|m| m.chat_id).collect();
        chats.sort_unstable();
        chats.dedup();
        for chat_id in chats {
            let key = self.keys.window(chat_id);
            pipe.zremrangebyrank(&key, 0, -(self.size as isize) - 1).ignore();
            pipe.expire(&key, IDLE_EXPIRY.as_secs() as i64).ignore();
        }
        let pipe = &pipe;
        self.redis.run("window write", |mut conn| async move { pipe.query_async::<()>(&mut conn).await }).await
    }

    async fn forget(&self, chat_id: Uuid, seq: i64) -> anyhow::Result<()> {
        let key = &self.keys.window(chat_id);
        self.redis
            .run("window forget", |mut conn| async move {
                redis::cmd("ZREMRANGEBYSCORE").arg(key).arg(seq).arg(seq).query_async::<()>(&mut conn).await
            })
            .await
    }

    async fn range(&self, chat_id: Uuid, from: i64, to: i64) -> anyhow::Result<Option<Vec<MessageDto>>> {
        if from > to || to - from >= self.size as i64 {
            metrics::counter!("window_reads_total", "served" => "database").increment(1);
            return Ok(None);
        }
        let key = &self.keys.window(chat_id);
        let members: Vec<String> = self
            .redis
            .run("window read", |mut conn| async move {
                redis::cmd("ZRANGE").arg(key).arg(from).arg(to).arg("BYSCORE").query_async(&mut conn).await
            })
            .await?;
        let messages: Vec<MessageDto> = members.iter().filter_map(|m| serde_json::from_str(m).ok()).collect();
        let complete = messages.len() as i64 == to - from + 1
            && messages.iter().zip(from..).all(|(m, seq)| m.seq == seq && m.chat_id == chat_id);
        let served = if complete { "window" } else { "database" };
        metrics::counter!("window_reads_total", "served" => served).increment(1);
        Ok(complete.then_some(messages))
    }
}

/// Gaps are read from the window when it covers them, from the database otherwise.
pub struct WindowedSource {
    pub window: Arc<dyn HotWindow>,
    pub database: Arc<dyn MessageSource>,
}

#[async_trait::async_trait]
impl MessageSource for WindowedSource {
    async fn messages_between(&self, chat_id: Uuid, from_seq: i64, to_seq: i64) -> anyhow::Result<Vec<MessageDto>> {
        match self.window.range(chat_id, from_seq, to_seq).await {
            Ok(Some(messages)) => return Ok(messages),
            Ok(None) => {}
            Err(e) => tracing::debug!(%chat_id, error = format!("{e:#}"), "window unavailable; reading the database"),
        }
        self.database.messages_between(chat_id, from_seq, to_seq).await
    }

    async fn watermarks(&self, chats: &[Uuid]) -> anyhow::Result<Vec<Watermark>> {
        self.database.watermarks(chats).await
    }
}
