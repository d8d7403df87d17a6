//! The relay of the scaled deployment: Redis pub/sub, one channel per chat and one per user.
//!
//! - **Interest-based.** The hub's counted subscribe/unsubscribe become `SUBSCRIBE`/`UNSUBSCRIBE`
//!   on the first/last local interest in a topic, so an instance receives only the traffic of chats
//!   its own clients follow.
//! - **One pub/sub connection per instance**, a RESP3 [`ConnectionManager`] with a push sender and
//!   automatic resubscription, owned by one task (the subscriber) that serializes subscription
//!   changes and watches the connection's health. Commands (`PUBLISH`, the window, presence) go
//!   through a deadpool-redis pool.
//! - **Local without Redis.** A published event is handed to this instance's hub directly (just
//!   after its `PUBLISH` is written), and Redis carries it to the others; an instance ignores its
//!   own events coming back from Redis. So local fan-out never depends on Redis.
//! - **At most once, then catch up.** Events published while an instance is cut off from Redis are
//!   lost to it. When the subscriber sees the connection come back (and has resubscribed) it signals
//!   `reconnected`; the hub then catches every followed chat up from the database by seq.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
use converge_shared::sessions::SessionsEnded;
use deadpool_redis::{Pool, Runtime};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::io::tcp::TcpSettings;
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

use super::{ChatEvent, Inbound, Relay, Sent, SessionsHeard, Topic};

/// How long one Redis command may take before it counts as failed: a send never waits longer on Redis.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1500);
/// Health checks of the pub/sub connection while it is up.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// Subscription changes applied with one command each way.
const MAX_CHANGES_AT_ONCE: usize = 1024;
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(3);

/// Names of everything Converge keeps in Redis, under one prefix (so several deployments, or
/// parallel tests, can share a server). The `{…}` part is the Redis Cluster hash tag: a chat's
/// channel and window hash to the same slot.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    pub fn channel(&self, topic: Topic) -> String {
        match topic {
            Topic::Chat(id) => format!("{}chat:{{{id}}}", self.prefix),
            Topic::User(id) => format!("{}user:{{{id}}}", self.prefix),
            Topic::SessionsEnded => converge_shared::sessions::channel(&self.prefix),
        }
    }

    fn topic_of(&self, channel: &str) -> Option<Topic> {
        if channel == self.channel(Topic::SessionsEnded) {
            return Some(Topic::SessionsEnded);
        }
        let rest = channel.strip_prefix(self.prefix.as_str())?;
        let (kind, id) = rest.split_once(':')?;
        let id: Uuid = id.strip_prefix('{')?.strip_suffix('}')?.parse().ok()?;
        match kind {
            "chat" => Some(Topic::Chat(id)),
            "user" => Some(Topic::User(id)),
            _ => None,
        }
    }

    /// A chat's hot window of recent messages (a sorted set scored by seq).
    pub fn window(&self, chat_id: Uuid) -> String {
        format!("{}window:{{{chat_id}}}", self.prefix)
    }

    /// The instances that hold a user's connections (a sorted set scored by expiry).
    pub fn presence_user(&self, user_id: Uuid) -> String {
        format!("{}presence:user:{{{user_id}}}", self.prefix)
    }

    /// The users an instance has connected (a set), for cleaning up after a dead instance.
    pub fn presence_instance(&self, instance: Uuid) -> String {
        format!("{}presence:instance:{instance}", self.prefix)
    }

    /// Live instances, scored by the expiry of their heartbeat.
    pub fn instances(&self) -> String {
        format!("{}instances", self.prefix)
    }
}

/// A deadpool-redis pool whose connections fail fast when Redis is away.
pub fn pool(url: &str) -> anyhow::Result<Pool> {
    let manager = deadpool_redis::Manager::new(connection_info(url)?).context("REDIS_URL")?;
    let mut config = deadpool_redis::PoolConfig::new(16);
    config.timeouts.wait = Some(COMMAND_TIMEOUT);
    config.timeouts.create = Some(COMMAND_TIMEOUT);
    config.timeouts.recycle = Some(COMMAND_TIMEOUT);
    Pool::builder(manager).config(config).runtime(Runtime::Tokio1).build().context("creating the Redis pool")
}

/// `url`'s connection settings, with Nagle's algorithm off (redis-rs leaves it on): commands share
/// a connection, and one written while the last one's answer is on its way must not wait for it.
fn connection_info(url: &str) -> anyhow::Result<redis::ConnectionInfo> {
    let info = url.into_connection_info().context("parsing REDIS_URL")?;
    Ok(info.set_tcp_settings(TcpSettings::default().set_nodelay(true)))
}

/// One connection taken from the pool and shared by every command of a hot path (publishing, the
/// hot window, presence). A multiplexed connection carries concurrent commands, and deadpool checks
/// a connection with an `UNWATCH` + `PING` round trip at every checkout: checking one out per
/// command made every publish two round trips. A command that finds the connection broken (Redis
/// restarted, the link dropped) is run once more on a fresh one from the pool — whose check is
/// what used to catch that — and after a failure or timeout the next command starts afresh.
#[derive(Clone)]
pub struct SharedConnection {
    pool: Pool,
    held: Arc<std::sync::Mutex<Option<MultiplexedConnection>>>,
}

impl SharedConnection {
    pub fn new(pool: Pool) -> Self {
        Self { pool, held: Arc::default() }
    }

    /// Runs `command` on the shared connection within [`COMMAND_TIMEOUT`]; `what` names it in errors.
    /// A command may run twice when the link broke after Redis ran it: every command given here is
    /// idempotent (window writes, presence scripts) or repeats harmlessly (an event delivered twice
    /// is dropped by seq, a presence or typing state told twice changes nothing).
    pub async fn run<T, F, Fut>(&self, what: &str, command: F) -> anyhow::Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            match command(self.connection().await?).await {
                Err(e) if e.is_unrecoverable_error() => {
                    self.held().take();
                    anyhow::Ok(command(self.connection().await?).await?)
                }
                done => anyhow::Ok(done?),
            }
        };
        let outcome = match tokio::time::timeout(COMMAND_TIMEOUT, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow::anyhow!("{what} timed out")),
        };
        if outcome.is_err() {
            self.held().take();
        }
        outcome
    }

    async fn connection(&self) -> anyhow::Result<MultiplexedConnection> {
        if let Some(conn) = self.held().as_ref() {
            return Ok(conn.clone());
        }
        let fresh = deadpool_redis::Connection::take(self.pool.get().await?);
        // Another command may have taken one meanwhile: keep the first, so all share it.
        Ok(self.held().get_or_insert(fresh).clone())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        // Nothing panics while holding it; the slot is valid either way.
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What travels on a channel: the event and the instance that published it.
#[derive(Serialize, Deserialize)]
struct Envelope<E> {
    /// The publishing instance, which has already delivered the event locally.
    o: Uuid,
    e: E,
}

/// The payload of an event published by `origin` (nil: by a Redis script, for every instance).
pub fn envelope(origin: Uuid, event: &ChatEvent) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&Envelope { o: origin, e: event })?)
}

pub struct RedisRelay {
    instance: Uuid,
    keys: Keys,
    publisher: SharedConnection,
    inbound: Inbound,
    subscriber: mpsc::Sender<Change>,
    up: Arc<AtomicBool>,
}

/// A subscription change for the subscriber task; answered once it is in effect (or Redis is away).
struct Change {
    topic: Topic,
    subscribe: bool,
    done: oneshot::Sender<()>,
}

impl RedisRelay {
    /// Starts the relay: events received go to `inbound`; every (re)connection of the pub/sub
    /// connection, once resubscribed, is signalled on the returned receiver. Redis need not be
    /// up yet: the relay connects in the background and reports `down` until it is.
    pub fn start(
        url: &str,
        keys: Keys,
        pool: Pool,
        instance: Uuid,
        inbound: Inbound,
        sessions: SessionsHeard,
    ) -> anyhow::Result<(Self, mpsc::Receiver<()>)> {
        let info = connection_info(url)?;
        // Push messages (pub/sub without a dedicated blocking connection) need RESP3.
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings)).context("REDIS_URL")?;
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(push_tx)
            .set_automatic_resubscription()
            .set_number_of_retries(1)
            .set_min_delay(BACKOFF_MIN)
            .set_max_delay(BACKOFF_MAX)
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let conn = ConnectionManager::new_lazy_with_config(client, config).context("the pub/sub connection")?;
        let up = Arc::new(AtomicBool::new(false));
        let disconnected = Arc::new(Notify::new());
        let (reconnected_tx, reconnected_rx) = mpsc::channel(4);
        let (changes_tx, changes_rx) = mpsc::channel(1024);
        let heard = Heard { keys: keys.clone(), instance, inbound: inbound.clone(), sessions };
        tokio::spawn(receive(push_rx, heard, disconnected.clone(), up.clone()));
        let subscriber = Subscriber {
            conn,
            keys: keys.clone(),
            // Ended sessions are heard for as long as the instance runs, whoever is connected.
            counts: HashMap::from([(Topic::SessionsEnded, 1)]),
            unsubscribed_while_down: HashSet::new(),
            up: up.clone(),
            reconnected: reconnected_tx,
        };
        tokio::spawn(subscriber.run(changes_rx, disconnected));
        Ok((
            Self { instance, keys, publisher: SharedConnection::new(pool), inbound, subscriber: changes_tx, up },
            reconnected_rx,
        ))
    }

    /// Publishes the events in one pipeline and hands them to local followers, who never wait
    /// for Redis. The pipeline is on its way to Redis first: handed the events first, this
    /// instance's fan-out (hundreds of writes in a big group) could take the core the write to
    /// Redis was waiting for, and every other instance's fan-out starts only when it arrives.
    /// `sent` runs between the two, so its answers are not queued behind the local fan-out.
    async fn publish_all(&self, events: &[(Topic, &ChatEvent)], sent: &mut Option<Sent>) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        for (topic, event) in events {
            pipe.cmd("PUBLISH").arg(self.keys.channel(*topic)).arg(envelope(self.instance, event)?).ignore();
        }
        let pipe = &pipe;
        let mut published =
            pin!(self.publisher.run("PUBLISH", |mut conn| async move { pipe.query_async::<()>(&mut conn).await }));
        // Queued on the connection; the yield lets its task write it out.
        let done = match futures_util::poll!(published.as_mut()) {
            Poll::Ready(done) => Some(done),
            Poll::Pending => {
                tokio::task::yield_now().await;
                None
            }
        };
        // Answered before this instance's own followers are woken: in a big group the sender's
        // connection would otherwise wait on its worker behind every local delivery.
        if let Some(sent) = sent.take() {
            sent();
        }
        for (topic, event) in events {
            self.inbound.send((*topic, (*event).clone())).await.map_err(|_| anyhow::anyhow!("the hub has stopped"))?;
        }
        match done {
            Some(done) => done?,
            None => published.await?,
        }
        for (topic, _) in events {
            metrics::counter!("relay_events_published_total", "kind" => kind(*topic)).increment(1);
        }
        Ok(())
    }

    async fn change(&self, topic: Topic, subscribe: bool) -> anyhow::Result<()> {
        let (done, answered) = oneshot::channel();
        self.subscriber
            .send(Change { topic, subscribe, done })
            .await
            .map_err(|_| anyhow::anyhow!("the Redis subscriber has stopped"))?;
        answered.await.map_err(|_| anyhow::anyhow!("the Redis subscriber has stopped"))
    }
}

fn kind(topic: Topic) -> &'static str {
    match topic {
        Topic::Chat(_) => "chat",
        Topic::User(_) => "user",
        Topic::SessionsEnded => "sessions_ended",
    }
}

#[async_trait::async_trait]
impl Relay for RedisRelay {
    async fn publish(&self, topic: Topic, event: &ChatEvent) -> anyhow::Result<()> {
        self.publish_all(&[(topic, event)], &mut None).await
    }

    async fn publish_many(&self, events: &[(Topic, ChatEvent)]) -> anyhow::Result<()> {
        self.publish_many_then(events, &mut None).await
    }

    async fn publish_many_then(&self, events: &[(Topic, ChatEvent)], sent: &mut Option<Sent>) -> anyhow::Result<()> {
        let events: Vec<(Topic, &ChatEvent)> = events.iter().map(|(topic, event)| (*topic, event)).collect();
        self.publish_all(&events, sent).await
    }

    async fn subscribe(&self, topic: Topic) -> anyhow::Result<()> {
        self.change(topic, true).await
    }

    async fn unsubscribe(&self, topic: Topic) -> anyhow::Result<()> {
        self.change(topic, false).await
    }

    fn status(&self) -> &'static str {
        if self.up.load(Ordering::Relaxed) { "up" } else { "down" }
    }
}

/// Where received events go.
struct Heard {
    keys: Keys,
    /// This instance: its own events come back, and are skipped.
    instance: Uuid,
    inbound: Inbound,
    sessions: SessionsHeard,
}

/// Turns push messages into hub events.
async fn receive(
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    heard: Heard,
    disconnected: Arc<Notify>,
    up: Arc<AtomicBool>,
) {
    let Heard { keys, instance, inbound, sessions } = heard;
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::Message => {}
            PushKind::Disconnection => {
                up.store(false, Ordering::Relaxed);
                disconnected.notify_one();
                continue;
            }
            _ => continue,
        }
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
            (push.data.first(), push.data.get(1))
        else {
            continue;
        };
        let Some(topic) = std::str::from_utf8(channel).ok().and_then(|c| keys.topic_of(c)) else { continue };
        if topic == Topic::SessionsEnded {
            // user-service's, as it wrote it (no envelope: it is no instance).
            match serde_json::from_slice::<SessionsEnded>(payload) {
                Ok(event) => sessions.heard(event).await,
                Err(e) => tracing::warn!(error = %e, "unreadable ended sessions"),
            }
            continue;
        }
        // The event stays raw until the origin is checked: this instance's own events come back too
        // (it follows the chats it publishes to), and are skipped without being decoded.
        let envelope: Envelope<&serde_json::value::RawValue> = match serde_json::from_slice(payload) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(?topic, error = %e, "an unreadable relay event");
                continue;
            }
        };
        if envelope.o == instance {
            continue;
        }
        metrics::counter!("relay_events_received_total", "kind" => kind(topic)).increment(1);
        match serde_json::from_str::<ChatEvent>(envelope.e.get()) {
            Ok(event) => {
                if inbound.send((topic, event)).await.is_err() {
                    return;
                }
            }
            // An event kind from a newer instance during a rolling upgrade: skip it; seq catch-up covers messages.
            Err(e) => tracing::debug!(?topic, error = %e, "an unknown relay event"),
        }
    }
}

/// Owns the pub/sub connection: applies subscription changes in order and watches its health.
struct Subscriber {
    conn: ConnectionManager,
    keys: Keys,
    /// Local interest per topic; subscribed in Redis while above zero.
    counts: HashMap<Topic, usize>,
    /// Channels whose `UNSUBSCRIBE` may not have reached Redis; repeated on reconnect.
    unsubscribed_while_down: HashSet<String>,
    up: Arc<AtomicBool>,
    reconnected: mpsc::Sender<()>,
}

impl Subscriber {
    async fn run(mut self, mut changes: mpsc::Receiver<Change>, disconnected: Arc<Notify>) {
        let mut backoff = Duration::ZERO;
        let mut next_check = tokio::time::Instant::now();
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Some(change) => {
                        // Everything queued goes out in one SUBSCRIBE and one UNSUBSCRIBE: a
                        // thousand clients connecting at once must not wait on a thousand round trips.
                        let mut batch = vec![change];
                        while batch.len() < MAX_CHANGES_AT_ONCE {
                            let Ok(change) = changes.try_recv() else { break };
                            batch.push(change);
                        }
                        self.apply(batch).await;
                    }
                    None => return,
                },
                () = disconnected.notified() => {
                    tracing::warn!("Redis pub/sub connection lost; reconnecting");
                    self.up.store(false, Ordering::Relaxed);
                    metrics::gauge!("relay_up").set(0.0);
                    next_check = tokio::time::Instant::now() + BACKOFF_MIN;
                }
                () = tokio::time::sleep_until(next_check) => {
                    let was_up = self.up.load(Ordering::Relaxed);
                    if self.check(was_up).await {
                        backoff = Duration::ZERO;
                        next_check = tokio::time::Instant::now() + HEALTH_EVERY;
                    } else {
                        if was_up {
                            tracing::warn!("Redis is unreachable; sends continue, followers catch up when it returns");
                        }
                        self.up.store(false, Ordering::Relaxed);
                        metrics::gauge!("relay_up").set(0.0);
                        backoff = (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                        next_check = tokio::time::Instant::now() + backoff;
                    }
                }
            }
        }
    }

    /// Pings; after an outage also re-sends every subscription, then announces the reconnection.
    async fn check(&mut self, was_up: bool) -> bool {
        let ping = redis::cmd("PING");
        if !matches!(tokio::time::timeout(COMMAND_TIMEOUT, ping.query_async::<Value>(&mut self.conn)).await, Ok(Ok(_)))
        {
            return false;
        }
        if was_up {
            return true;
        }
        // The manager resubscribes what it saw confirmed; this also covers subscriptions made while
        // Redis was away, and drops those given up meanwhile.
        let wanted: Vec<String> = self.counts.keys().map(|t| self.keys.channel(*t)).collect();
        let stale: Vec<String> = self.unsubscribed_while_down.iter().cloned().collect();
        let resubscribe = async {
            if !stale.is_empty() {
                self.conn.unsubscribe(&stale).await?;
            }
            if !wanted.is_empty() {
                self.conn.subscribe(&wanted).await?;
            }
            redis::RedisResult::Ok(())
        };
        if !matches!(tokio::time::timeout(COMMAND_TIMEOUT * 2, resubscribe).await, Ok(Ok(()))) {
            return false;
        }
        self.unsubscribed_while_down.clear();
        self.up.store(true, Ordering::Relaxed);
        metrics::gauge!("relay_up").set(1.0);
        tracing::info!(channels = wanted.len(), "Redis pub/sub connected");
        // Everything published while we were away is lost to us: the hub catches up by seq.
        let _ = self.reconnected.try_send(());
        true
    }

    async fn apply(&mut self, batch: Vec<Change>) {
        // Per channel, whether Redis had it before this batch; only a change of that needs a command.
        let mut before: HashMap<Topic, bool> = HashMap::new();
        let mut done = Vec::with_capacity(batch.len());
        for change in batch {
            let count = self.counts.entry(change.topic).or_default();
            before.entry(change.topic).or_insert(*count > 0);
            *count = if change.subscribe { *count + 1 } else { count.saturating_sub(1) };
            if *count == 0 {
                self.counts.remove(&change.topic);
            }
            done.push(change.done);
        }
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        for (topic, was) in before {
            let channel = self.keys.channel(topic);
            match (was, self.counts.contains_key(&topic)) {
                (false, true) => {
                    self.unsubscribed_while_down.remove(&channel);
                    subscribe.push(channel);
                }
                (true, false) => unsubscribe.push(channel),
                _ => {}
            }
        }
        // While Redis is away changes are only recorded: the reconnection applies them.
        if self.up.load(Ordering::Relaxed) {
            let mut ok = true;
            if !subscribe.is_empty() {
                ok &=
                    matches!(tokio::time::timeout(COMMAND_TIMEOUT, self.conn.subscribe(&subscribe)).await, Ok(Ok(())));
            }
            if ok && !unsubscribe.is_empty() {
                ok &= matches!(
                    tokio::time::timeout(COMMAND_TIMEOUT, self.conn.unsubscribe(&unsubscribe)).await,
                    Ok(Ok(()))
                );
            }
            if !ok {
                tracing::warn!(
                    subscribe = subscribe.len(),
                    unsubscribe = unsubscribe.len(),
                    "subscription changes failed; applied when Redis returns"
                );
                self.up.store(false, Ordering::Relaxed);
                self.unsubscribed_while_down.extend(unsubscribe);
            }
        } else {
            self.unsubscribed_while_down.extend(unsubscribe);
        }
        for done in done {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_name_their_topic() {
        let keys = Keys::new("t1:");
        let id = Uuid::now_v7();
        for topic in [Topic::Chat(id), Topic::User(id), Topic::SessionsEnded] {
            assert_eq!(keys.topic_of(&keys.channel(topic)), Some(topic));
        }
        assert_eq!(keys.topic_of("t2:chat:{x}"), None);
        assert_eq!(keys.topic_of("t2:sessions-ended"), None, "another deployment's");
        assert_eq!(keys.topic_of("t1:chat:{not-a-uuid}"), None);
        assert_eq!(keys.topic_of("t1:room:{00000000-0000-0000-0000-000000000000}"), None);
    }

    /// Every connection to Redis, the pool's and the relay's pub/sub one, sends what it writes at
    /// once (`TCP_NODELAY`): under Nagle's algorithm, a command written while an earlier one's
    /// answer is still on its way waits for that answer.
    #[tokio::test]
    async fn connections_to_redis_send_without_waiting_to_fill_packets() {
        let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let redis::ConnectionAddr::Tcp(_, redis_port) = *url.as_str().into_connection_info().unwrap().addr() else {
            panic!("TEST_REDIS_URL is a redis:// URL");
        };
        let pool = pool(&url).unwrap();
        let mut pooled = pool.get().await.expect("Redis is reachable at TEST_REDIS_URL");
        let _: String = redis::cmd("PING").query_async(&mut *pooled).await.unwrap();
        let (inbound, _events) = mpsc::channel(1);
        let sessions = SessionsHeard { ended: Default::default(), inbound: inbound.clone() };
        let keys = Keys::new("nodelay-test:");
        let (_relay, mut connected) =
            RedisRelay::start(&url, keys, pool.clone(), Uuid::now_v7(), inbound, sessions).unwrap();
        connected.recv().await.expect("the relay connects");

        let nodelay = converge_testkit::tcp_nodelay_of_sockets(|_, peer| peer.port() == redis_port);
        assert!(nodelay.len() >= 2, "the pool's and the relay's connections, found {}", nodelay.len());
        assert!(nodelay.iter().all(|&on| on), "TCP_NODELAY of each: {nodelay:?}");
    }
}
