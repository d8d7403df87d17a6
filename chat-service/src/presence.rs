//! Presence: who is online, across instances, with expiry so a dead instance leaves no ghosts.
//!
//! One task per instance owns the local connection counts per user and talks to the store, so the
//! first and last connection of a user on this instance are seen in order. A user is online while
//! any instance holds a connection of theirs:
//!
//! - **Redis** (scaled): `presence:user:{id}` is a sorted set of instance ids scored by expiry
//!   (now + `PRESENCE_TTL_SECS`), refreshed by each instance's heartbeat. Joining and leaving run as
//!   one Lua script each, which also publishes the flip to the user's chats when the set goes from
//!   empty to one entry or back: Redis runs scripts one at a time, so flips of one user are published
//!   in the order they happened, whichever instances cause them. Each instance also keeps
//!   `instances` (heartbeat expiry per instance) and the set of users it holds; any live instance
//!   that sees another's heartbeat expire removes that instance's entries and announces the users
//!   left with none (exactly one reaper wins each removal).
//! - **Local** (embedded): the counts are the whole truth; flips go through the in-process relay.
//!
//! Presence is shared only in chats of at most `PRESENCE_MAX_CHAT_MEMBERS` participants
//! ([`Presence::shared_in`]): announcing every member's flips to every other member costs
//! members² frames when a large group comes online.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::Pool;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::relay::redis::{COMMAND_TIMEOUT, Keys, SharedConnection};
use crate::relay::{ChatEvent, Relay, Topic};
use crate::service::chats;

/// Adds this instance to a user's set; publishes `online` to the user's chats if it is the only one.
/// KEYS[1] user set; ARGV: now, expiry, instance, ttl ms, then (channel, payload) pairs.
const JOIN: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4] * 10)
if redis.call('ZCARD', KEYS[1]) == 1 then
  for i = 5, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
  return 1
end
return 0
";

/// Removes an instance from a user's set; publishes `offline` if none is left. With ARGV[3] = '1'
/// (a reaper), only the caller that actually removed the entry announces.
/// KEYS[1] user set; ARGV: now, instance, reaping, then (channel, payload) pairs.
const LEAVE: &str = r"
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 and (removed == 1 or ARGV[3] == '0') then
  for i = 4, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
  return 1
end
return 0
";

/// A handle on this instance's presence task.
#[derive(Clone)]
pub struct Presence {
    ops: mpsc::Sender<Op>,
    /// Reads go straight to Redis: behind the task's queue of joins and leaves, a connection's
    /// `ready` would wait for every connection that arrived before it (a reconnect storm).
    redis: Option<(SharedConnection, Keys)>,
    max_chat_members: usize,
}

enum Op {
    Connected(Uuid, Vec<Uuid>),
    Disconnected(Uuid),
    Online(Vec<Uuid>, oneshot::Sender<HashSet<Uuid>>),
}

/// Where presence lives beyond this instance.
#[derive(Clone)]
pub struct RedisPresence {
    /// For the heartbeat and reaping: heavy, rare, and not to queue ahead of joins.
    pub pool: Pool,
    /// For what every connection's start and end waits on: reading who is online, joins, leaves.
    pub shared: SharedConnection,
    pub keys: Keys,
    pub instance: Uuid,
    pub ttl: Duration,
}

impl Presence {
    /// Starts the presence task. `redis: None` is the embedded default.
    pub fn start(
        db: DatabaseConnection,
        relay: Arc<dyn Relay>,
        redis: Option<RedisPresence>,
        max_chat_members: usize,
    ) -> Self {
        let (ops, rx) = mpsc::channel(4096);
        let reader = redis.as_ref().map(|r| (r.shared.clone(), r.keys.clone()));
        let flips = Flips { db, max_chat_members };
        let task = Task {
            flips,
            relay,
            redis,
            counts: HashMap::new(),
            retry_join: HashSet::new(),
            retry_leave: HashSet::new(),
            reaper: None,
        };
        tokio::spawn(task.run(rx));
        Self { ops, redis: reader, max_chat_members }
    }

    /// Whether presence is shared in a chat of `members` participants.
    pub fn shared_in(&self, members: usize) -> bool {
        members <= self.max_chat_members
    }

    /// A connection of `user_id` opened on this instance. `shared_chats` are the user's chats where
    /// presence is shared, as the connection has just read them: the join needs no query of its own.
    pub async fn connected(&self, user_id: Uuid, shared_chats: Vec<Uuid>) {
        let _ = self.ops.send(Op::Connected(user_id, shared_chats)).await;
    }

    /// A connection of `user_id` closed on this instance.
    pub async fn disconnected(&self, user_id: Uuid) {
        let _ = self.ops.send(Op::Disconnected(user_id)).await;
    }

    /// Which of `users` are online anywhere.
    pub async fn online(&self, users: Vec<Uuid>) -> HashSet<Uuid> {
        if let Some((shared, keys)) = &self.redis
            && let Ok(online) = timed(read_online(shared, keys, &users)).await
        {
            return online;
        }
        // Embedded, or Redis unreachable: the task knows this instance's users.
        let (tx, rx) = oneshot::channel();
        if self.ops.send(Op::Online(users, tx)).await.is_err() {
            return HashSet::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// Which chats hear of a user's presence flips.
#[derive(Clone)]
struct Flips {
    db: DatabaseConnection,
    max_chat_members: usize,
}

impl Flips {
    /// The flip as published on each of the user's chats where presence is shared: `known` when
    /// the caller has them, read from the database otherwise.
    async fn events(
        &self,
        user_id: Uuid,
        online: bool,
        known: Option<Vec<Uuid>>,
    ) -> anyhow::Result<Vec<(Topic, ChatEvent)>> {
        let chat_ids = match known {
            Some(chat_ids) => chat_ids,
            None => self.shared_chats_of(&[user_id]).await?.remove(&user_id).unwrap_or_default(),
        };
        Ok(flip(user_id, online, chat_ids))
    }

    /// Each user's chats where presence is shared, in one query.
    async fn shared_chats_of(&self, users: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Vec<Uuid>>> {
        chats::small_chat_ids_of_each(&self.db, users, self.max_chat_members).await.map_err(|e| anyhow::anyhow!("{e}"))
    }
}

fn flip(user_id: Uuid, online: bool, chat_ids: Vec<Uuid>) -> Vec<(Topic, ChatEvent)> {
    chat_ids
        .into_iter()
        .map(|chat_id| (Topic::Chat(chat_id), ChatEvent::Presence { chat_id, user_id, online }))
        .collect()
}

/// Online users refreshed per Redis round trip at a heartbeat. A pooled connection's write buffer
/// keeps the size of the largest pipeline it sent: one pipeline for every online user left
/// megabytes on each pooled connection (19 MB on 7 of them with 10 000 users online).
const HEARTBEAT_USERS_PER_PIPELINE: usize = 256;

/// A dead instance's users reaped per database query and Redis round trip; like the heartbeat's,
/// the pipeline stays small enough that the pooled connection's write buffer does too.
const REAP_USERS_PER_ROUND: usize = 64;

struct Task {
    flips: Flips,
    relay: Arc<dyn Relay>,
    redis: Option<RedisPresence>,
    /// Open connections per user on this instance.
    counts: HashMap<Uuid, usize>,
    /// Users whose join or leave did not reach Redis; retried at each heartbeat.
    retry_join: HashSet<Uuid>,
    retry_leave: HashSet<Uuid>,
    /// Cleaning up after dead instances, off this task: a dead instance may have had thousands of
    /// users, and joins and leaves must not wait for them.
    reaper: Option<tokio::task::JoinHandle<()>>,
}

/// Which of `users` have an unexpired entry in Redis.
async fn read_online(shared: &SharedConnection, keys: &Keys, users: &[Uuid]) -> anyhow::Result<HashSet<Uuid>> {
    if users.is_empty() {
        return Ok(HashSet::new());
    }
    let mut pipe = redis::pipe();
    let now = now_ms();
    for user in users {
        pipe.zcount(keys.presence_user(*user), now, "+inf");
    }
    let pipe = &pipe;
    let counts: Vec<i64> =
        shared.run("presence read", |mut conn| async move { pipe.query_async(&mut conn).await }).await?;
    Ok(users.iter().zip(counts).filter(|(_, n)| *n > 0).map(|(u, _)| *u).collect())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Task {
    async fn run(mut self, mut ops: mpsc::Receiver<Op>) {
        let every =
            self.redis.as_ref().map_or(Duration::from_secs(3600), |r| (r.ttl / 3).max(Duration::from_millis(100)));
        let mut heartbeat = tokio::time::interval(every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                op = ops.recv() => match op {
                    Some(Op::Connected(user, shared_chats)) => {
                        let count = self.counts.entry(user).or_default();
                        *count += 1;
                        if *count == 1 {
                            self.retry_leave.remove(&user);
                            self.join(user, Some(shared_chats)).await;
                        }
                    }
                    Some(Op::Disconnected(user)) => {
                        let Some(count) = self.counts.get_mut(&user) else { continue };
                        *count -= 1;
                        if *count == 0 {
                            self.counts.remove(&user);
                            self.retry_join.remove(&user);
                            self.leave(user).await;
                        }
                    }
                    Some(Op::Online(users, answer)) => {
                        let online = self.online(users).await;
                        let _ = answer.send(online);
                    }
                    None => return,
                },
                _ = heartbeat.tick(), if self.redis.is_some() => self.heartbeat().await,
            }
        }
    }

    async fn announce_locally(&self, user_id: Uuid, online: bool, known: Option<Vec<Uuid>>) {
        match self.flips.events(user_id, online, known).await {
            Ok(events) => {
                for (topic, event) in events {
                    if let Err(e) = self.relay.publish(topic, &event).await {
                        tracing::warn!(error = format!("{e:#}"), "cannot announce presence");
                    }
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot announce presence"),
        }
    }

    /// Announces `user_id` online where this is their first entry; `known`: their chats where
    /// presence is shared, if the caller has them.
    async fn join(&mut self, user_id: Uuid, known: Option<Vec<Uuid>>) {
        let Some(redis) = &self.redis else { return self.announce_locally(user_id, true, known).await };
        let result = async {
            let events = self.flips.events(user_id, true, known).await?;
            let join = redis::Script::new(JOIN);
            let mut script = join.key(redis.keys.presence_user(user_id));
            let now = now_ms();
            let ttl = redis.ttl.as_millis() as i64;
            script.arg(now).arg(now + ttl).arg(redis.instance.to_string()).arg(ttl);
            push_events(&mut script, &redis.keys, &events)?;
            let (script, mine) = (&script, &redis.keys.presence_instance(redis.instance));
            redis
                .shared
                .run("presence join", |mut conn| async move {
                    let _: i64 = script.invoke_async(&mut conn).await?;
                    redis::cmd("SADD").arg(mine).arg(user_id.to_string()).query_async::<()>(&mut conn).await
                })
                .await
        };
        match timed(result).await {
            // The id in the text: tests of several instances await this line.
            Ok(()) => tracing::debug!("presence joined {user_id}"),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "presence join failed; retried at the next heartbeat");
                self.retry_join.insert(user_id);
            }
        }
    }

    async fn leave(&mut self, user_id: Uuid) {
        let Some(redis) = &self.redis else { return self.announce_locally(user_id, false, None).await };
        match timed(leave(&self.flips, redis, redis.instance, &[user_id], false)).await {
            Ok(()) => tracing::debug!("presence left {user_id}"),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "presence leave failed; retried at the next heartbeat");
                self.retry_leave.insert(user_id);
            }
        }
    }

    async fn online(&self, users: Vec<Uuid>) -> HashSet<Uuid> {
        let Some(redis) = &self.redis else {
            return users.into_iter().filter(|u| self.counts.contains_key(u)).collect();
        };
        match timed(read_online(&redis.shared, &redis.keys, &users)).await {
            Ok(online) => online,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "presence unavailable; reporting local users only");
                users.into_iter().filter(|u| self.counts.contains_key(u)).collect()
            }
        }
    }

    /// Refreshes this instance's entries, retries what failed, and reaps dead instances.
    async fn heartbeat(&mut self) {
        let Some(redis) = &self.redis else { return };
        let refresh = async {
            let mut conn = redis.pool.get().await?;
            let now = now_ms();
            let ttl = redis.ttl.as_millis() as i64;
            let me = redis.instance.to_string();
            let mut pipe = redis::pipe();
            pipe.zadd(redis.keys.instances(), &me, now + ttl).ignore();
            let mine = redis.keys.presence_instance(redis.instance);
            let users: Vec<Uuid> = self.counts.keys().copied().collect();
            for chunk in users.chunks(HEARTBEAT_USERS_PER_PIPELINE) {
                for user in chunk {
                    let key = redis.keys.presence_user(*user);
                    pipe.zadd(&key, &me, now + ttl).ignore();
                    pipe.pexpire(&key, ttl * 10).ignore();
                    pipe.sadd(&mine, user.to_string()).ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
                pipe.clear();
            }
            pipe.pexpire(&mine, ttl * 10).ignore();
            pipe.query_async::<()>(&mut conn).await?;
            let dead: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(redis.keys.instances())
                .arg("-inf")
                .arg(now)
                .query_async(&mut conn)
                .await?;
            anyhow::Ok(dead)
        };
        let dead = match timed(refresh).await {
            Ok(dead) => dead,
            Err(e) => return tracing::debug!(error = format!("{e:#}"), "presence heartbeat failed"),
        };
        for user in std::mem::take(&mut self.retry_join) {
            if self.counts.contains_key(&user) {
                self.join(user, None).await;
            }
        }
        for user in std::mem::take(&mut self.retry_leave) {
            if !self.counts.contains_key(&user) {
                self.leave(user).await;
            }
        }
        let Some(redis) = &self.redis else { return };
        let dead: Vec<Uuid> =
            dead.iter().filter_map(|d| d.parse::<Uuid>().ok()).filter(|d| *d != redis.instance).collect();
        // One reaper at a time; what it has not finished is still dead at the next heartbeat.
        if dead.is_empty() || self.reaper.as_ref().is_some_and(|reaper| !reaper.is_finished()) {
            return;
        }
        let (flips, redis) = (self.flips.clone(), redis.clone());
        self.reaper = Some(tokio::spawn(async move {
            for instance in dead {
                if let Err(e) = reap(&flips, &redis, instance).await {
                    tracing::warn!(%instance, error = format!("{e:#}"), "cannot clean up after a dead instance");
                }
            }
        }));
    }
}

async fn timed<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(COMMAND_TIMEOUT * 2, work).await.map_err(|_| anyhow::anyhow!("Redis timed out"))?
}

/// Adds (channel, payload) pairs. The script publishes them with no origin instance, so every
/// instance, this one included, delivers them from Redis.
fn push_events(
    script: &mut redis::ScriptInvocation<'_>,
    keys: &Keys,
    events: &[(Topic, ChatEvent)],
) -> anyhow::Result<()> {
    for (topic, event) in events {
        script.arg(keys.channel(*topic)).arg(crate::relay::redis::envelope(Uuid::nil(), event)?);
    }
    Ok(())
}

/// Runs the leave script for `instance`'s entries of `users`: one query and one Redis round trip
/// for all of them, so a dead instance's thousands of users are reaped in rounds, not one by one.
async fn leave(
    flips: &Flips,
    redis: &RedisPresence,
    instance: Uuid,
    users: &[Uuid],
    reaping: bool,
) -> anyhow::Result<()> {
    let mut chats_of = flips.shared_chats_of(users).await?;
    let script = redis::Script::new(LEAVE);
    let mut pipe = redis::pipe();
    // A script run in a pipeline is not loaded on demand.
    pipe.cmd("SCRIPT").arg("LOAD").arg(LEAVE).ignore();
    let now = now_ms();
    for user in users {
        let mut invocation = script.key(redis.keys.presence_user(*user));
        invocation.arg(now).arg(instance.to_string()).arg(if reaping { "1" } else { "0" });
        push_events(&mut invocation, &redis.keys, &flip(*user, false, chats_of.remove(user).unwrap_or_default()))?;
        pipe.invoke_script(&invocation).ignore();
    }
    if !reaping {
        pipe.srem(redis.keys.presence_instance(instance), users.iter().map(Uuid::to_string).collect::<Vec<_>>())
            .ignore();
    }
    let pipe = &pipe;
    redis.shared.run("presence leave", |mut conn| async move { pipe.query_async::<()>(&mut conn).await }).await
}

/// Removes a dead instance's entries, announcing the users it leaves offline.
async fn reap(flips: &Flips, redis: &RedisPresence, instance: Uuid) -> anyhow::Result<()> {
    let users: Vec<String> = timed(async {
        let mut conn = redis.pool.get().await?;
        Ok(redis::cmd("SMEMBERS").arg(redis.keys.presence_instance(instance)).query_async(&mut conn).await?)
    })
    .await?;
    let parsed: Vec<Uuid> = users.iter().filter_map(|u| u.parse().ok()).collect();
    for round in parsed.chunks(REAP_USERS_PER_ROUND) {
        // Each round on its own clock: the whole of a big instance takes longer than one command may.
        timed(leave(flips, redis, instance, round, true)).await?;
    }
    timed(async {
        let mut conn = redis.pool.get().await?;
        redis::pipe()
            .del(redis.keys.presence_instance(instance))
            .ignore()
            .zrem(redis.keys.instances(), instance.to_string())
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    })
    .await?;
    // The id in the text: tests await this line.
    tracing::info!("cleaned up after dead instance {instance}: {} users", users.len());
    Ok(())
}
