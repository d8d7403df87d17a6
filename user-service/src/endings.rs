//! Announcing ended sessions ([`converge_shared::sessions`]): after a logout, "sign out
//! everywhere", a password change, a deactivation or a stolen refresh token has been committed,
//! every verifier of access tokens hears which sessions ended, and refuses their tokens from then
//! on instead of until they expire. This service refuses them at once itself, and over Redis it
//! hears the other replicas' announcements too.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use converge_shared::sessions::{EndedSessions, SessionsEnded, channel, local_bus};
use converge_shared::token::LEEWAY_SECS;
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use futures_util::StreamExt;
use redis::AsyncCommands;
use uuid::Uuid;

use crate::config::Config;

/// How long an announcement may wait for Redis: it runs before the request that ended the sessions
/// is answered, so that the answer means "announced", and a Redis gone quiet must not hold it long.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds of the wait before listening again after the connection to Redis is lost.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(3);

pub struct SessionEndings {
    /// What this service's own authenticator refuses.
    pub ended: Arc<EndedSessions>,
    /// Where the others hear of it: Redis, or (`None`) this process's bus.
    redis: Option<(Pool, String)>,
    access_token_ttl_secs: i64,
}

impl SessionEndings {
    /// Over Redis when `REDIS_URL` is set; connections are made when first needed, so user-service
    /// starts and serves while Redis is away.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let ended: Arc<EndedSessions> = Arc::default();
        let redis = match config.redis_url.as_deref().filter(|url| !url.trim().is_empty()) {
            Some(url) => {
                let mut redis = deadpool_redis::Config::from_url(url);
                let timeout = Some(REDIS_TIMEOUT);
                let timeouts = Timeouts { wait: timeout, create: timeout, recycle: timeout };
                redis.pool = Some(PoolConfig { timeouts, ..PoolConfig::new(4) });
                let pool = redis.create_pool(Some(Runtime::Tokio1)).context("REDIS_URL")?;
                let channel = channel(&config.redis_prefix);
                listen(redis::Client::open(url).context("REDIS_URL")?, channel.clone(), ended.clone());
                Some((pool, channel))
            }
            None => None,
        };
        Ok(Self { ended, redis, access_token_ttl_secs: config.access_token_ttl_secs })
    }

    /// `sessions` of `user_id` have ended (committed). Not being heard is logged, not an error: the
    /// sessions are ended all the same, and their tokens expire within their lifetime.
    pub async fn announce(&self, user_id: Uuid, sessions: Vec<Uuid>) {
        if sessions.is_empty() {
            return;
        }
        // Tokens issued up to now live at most this long (and are accepted `LEEWAY_SECS` more).
        let until = chrono::Utc::now().timestamp() + self.access_token_ttl_secs + LEEWAY_SECS;
        let event = SessionsEnded { user_id, sessions, until };
        self.ended.record(&event);
        match &self.redis {
            None => {
                // No receiver (chat-service runs elsewhere, with no Redis to hear on) is no error.
                let _ = local_bus().send(event);
            }
            Some((pool, channel)) => {
                if let Err(e) = publish(pool, channel, &event).await {
                    tracing::warn!(user.id = %user_id, error = format!("{e:#}"), "could not announce ended sessions over Redis");
                }
            }
        }
    }
}

/// Hears every replica's announcements (this one's too, recorded twice to no effect), so that a
/// session ended through one replica is refused by all. At most once, as on chat-service: what is
/// announced while the connection is down is not heard, and those tokens expire in their time.
fn listen(client: redis::Client, channel: String, ended: Arc<EndedSessions>) {
    tokio::spawn(async move {
        let mut backoff = BACKOFF_MIN;
        loop {
            match hear(&client, &channel, &ended).await {
                // It had worked: the connection was lost. Listen again soon.
                Ok(()) => backoff = BACKOFF_MIN,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "cannot listen for ended sessions on Redis; trying again");
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            tokio::time::sleep(backoff).await;
        }
    });
}

async fn hear(client: &redis::Client, channel: &str, ended: &EndedSessions) -> anyhow::Result<()> {
    let mut pubsub = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub()).await??;
    pubsub.subscribe(channel).await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        match serde_json::from_slice::<SessionsEnded>(message.get_payload_bytes()) {
            Ok(event) => ended.record(&event),
            Err(e) => tracing::warn!(error = %e, "unreadable ended sessions"),
        }
    }
    Ok(())
}

async fn publish(pool: &Pool, channel: &str, event: &SessionsEnded) -> anyhow::Result<()> {
    let payload = serde_json::to_string(event)?;
    let mut conn = pool.get().await?;
    let _: i64 = tokio::time::timeout(REDIS_TIMEOUT, conn.publish(channel, payload)).await??;
    Ok(())
}
