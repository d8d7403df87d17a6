//! The hub: this instance's connections, the chats they follow, and in-order fan-out.
//!
//! Events arrive from the relay possibly out of seq order (two senders commit 5 and 6, the
//! publisher of 6 is quicker). Each followed chat has a feed that delivers messages strictly in seq
//! order: a message ahead of the next expected seq waits, and a gap that does not fill within
//! [`GAP_BOUND`] is read from the database, where every acknowledged message already is.
//!
//! The state sits behind a synchronous mutex that is never held across an `.await`; fan-out never
//! waits on a connection: each has a bounded queue, and a connection whose queue is full is cut off
//! (it reconnects and resumes from its last seq) so it cannot slow the room.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytestring::ByteString;
use converge_shared::api_error::ApiError;
use converge_shared::dto::MessageDto;
use converge_shared::error::ErrorCode;
use converge_shared::protocol::ServerFrame;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::relay::{ChatEvent, Relay, Topic};

/// How long a later message waits for an earlier one before the earlier one is read from the database.
pub const GAP_BOUND: Duration = Duration::from_millis(150);

pub type ConnId = u64;

/// A connection's queue of deliveries. flume's bounded queue allocates its slots as they fill: an
/// idle connection holds the channel's header alone, where tokio's queue allocated a block of 32
/// slots and two cache-padded halves up front (1.3 KB per connection, measured with heaptrack).
pub type DeliverySender = flume::Sender<Delivery>;
pub type DeliveryReceiver = flume::Receiver<Delivery>;

/// A queue for a connection's deliveries holding at most `capacity` of them.
pub fn delivery_queue(capacity: usize) -> (DeliverySender, DeliveryReceiver) {
    flume::bounded(capacity.max(1))
}

/// What the hub hands a connection.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A frame of a chat, one allocation shared by every follower.
    Frame(Arc<Fanout>),
    /// The user joined this chat: follow it and announce it.
    Joined(Uuid),
    /// The user left this chat: stop following it.
    Left(Uuid),
    /// These sessions of the user ended: a connection opened with one of them closes.
    SessionsEnded(Arc<Vec<Uuid>>),
}

/// A chat event as the hub fans it out: serialized once for every WebSocket follower (`text`) and
/// typed for GraphQL subscribers (`frame`). Messages carry their seq so a follower can drop what it
/// already sent; `from` is the user whose action it reports, who does not need to hear of it.
#[derive(Debug)]
pub struct Fanout {
    pub chat_id: Uuid,
    pub seq: Option<i64>,
    pub from: Option<Uuid>,
    pub frame: ServerFrame,
    pub text: ByteString,
    /// When the hub fanned it out: a connection measures how long a delivery waited for it.
    pub at: std::time::Instant,
}

impl Fanout {
    /// The frame serialized once, stamped now; `None` (logged) if it cannot be serialized.
    fn of(chat_id: Uuid, seq: Option<i64>, from: Option<Uuid>, frame: ServerFrame) -> Option<Arc<Self>> {
        match serde_json::to_string(&frame) {
            Ok(text) => Some(Arc::new(Self {
                chat_id,
                seq,
                from,
                frame,
                text: ByteString::from(text),
                at: std::time::Instant::now(),
            })),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a frame");
                None
            }
        }
    }
}

/// Reads what the feeds need from the database: the messages of a gap, and where a chat's
/// receipts stand.
#[async_trait::async_trait]
pub trait MessageSource: Send + Sync + 'static {
    async fn messages_between(&self, chat_id: Uuid, from_seq: i64, to_seq: i64) -> anyhow::Result<Vec<MessageDto>>;
    /// Every participant's read and delivered watermarks in these chats.
    async fn watermarks(&self, chats: &[Uuid]) -> anyhow::Result<Vec<Watermark>>;
}

/// Where one participant of a chat stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    pub chat_id: Uuid,
    pub user_id: Uuid,
    pub read: i64,
    pub delivered: i64,
}

/// Why [`Hub::register`] refused a connection.
#[derive(Debug)]
pub enum RegisterError {
    /// The user holds `at_most` connections on this instance already.
    TooMany { at_most: usize },
    /// The relay could not subscribe to the user's events.
    Relay(anyhow::Error),
}

impl From<RegisterError> for ApiError {
    fn from(err: RegisterError) -> Self {
        match err {
            RegisterError::TooMany { at_most } => ApiError::new(
                ErrorCode::RateLimited,
                format!("one user may hold {at_most} connections and subscriptions here; close one first"),
            ),
            RegisterError::Relay(cause) => cause.into(),
        }
    }
}

pub struct Hub {
    state: Mutex<State>,
    relay: Arc<dyn Relay>,
    source: Arc<dyn MessageSource>,
    next_conn: AtomicU64,
    /// Woken whenever a feed gains or loses a subscriber, or a user a connection.
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    conns: HashMap<ConnId, Conn>,
    /// Connections per user, for membership events.
    by_user: HashMap<Uuid, HashSet<ConnId>>,
    feeds: HashMap<Uuid, Feed>,
}

struct Conn {
    user_id: Uuid,
    /// `None` once the connection was cut for falling behind: it sees its queue end and goes.
    tx: Option<DeliverySender>,
    /// The feeds this connection is a subscriber of: what `unregister` leaves, so a disconnect
    /// costs the connection's chats, not every feed of the instance, under the lock fan-out needs.
    following: Vec<Uuid>,
}

impl Conn {
    /// Drops the only sender of the connection's queue: the connection sees its end and disconnects.
    fn cut(&mut self) {
        if self.tx.take().is_some() {
            metrics::counter!("ws_slow_disconnects_total").increment(1);
        }
    }
}

impl State {
    /// Makes `conn` a subscriber of the feed of `chat_id`, if there is one (whether there is); a
    /// connection already gone stays out, so no feed keeps a subscriber `unregister` would not remove.
    fn join_feed(&mut self, conn: ConnId, chat_id: Uuid) -> bool {
        let Some(feed) = self.feeds.get_mut(&chat_id) else { return false };
        if let Some(entry) = self.conns.get_mut(&conn)
            && feed.subscribers.insert(conn)
        {
            entry.following.push(chat_id);
        }
        true
    }

    /// Takes `conn` off the feed of `chat_id`, dropping the feed when it was the last subscriber;
    /// whether it dropped it, so the caller leaves the relay topic.
    fn leave_feed(&mut self, conn: ConnId, chat_id: Uuid) -> bool {
        let Some(feed) = self.feeds.get_mut(&chat_id) else { return false };
        feed.subscribers.remove(&conn);
        let emptied = feed.subscribers.is_empty();
        if emptied {
            self.feeds.remove(&chat_id);
        }
        emptied
    }
}

struct Feed {
    subscribers: HashSet<ConnId>,
    /// The seq the feed delivers next.
    next_seq: i64,
    /// Messages that arrived ahead of `next_seq`.
    pending: BTreeMap<i64, MessageDto>,
    gap_check_scheduled: bool,
}

impl Hub {
    pub fn new(relay: Arc<dyn Relay>, source: Arc<dyn MessageSource>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            relay,
            source,
            next_conn: AtomicU64::new(1),
            changed: tokio::sync::Notify::new(),
        })
    }

    pub fn relay(&self) -> &Arc<dyn Relay> {
        &self.relay
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Fan-out code does not panic while holding the lock; if it ever did, the state is still a
        // set of maps that stay usable, so carry on rather than take the instance down.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection of `user_id` that receives through `tx`, unless the user holds `at_most`
    /// on this instance already.
    pub async fn register(&self, user_id: Uuid, tx: DeliverySender, at_most: usize) -> Result<ConnId, RegisterError> {
        let at_most = at_most.max(1);
        self.relay.subscribe(Topic::User(user_id)).await.map_err(RegisterError::Relay)?;
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        // Counted and added under one lock, so connections opened at once cannot all slip in.
        let added = {
            let mut state = self.state();
            // Never left empty: `at_most` is at least 1, so a refusal finds connections there.
            let held = state.by_user.entry(user_id).or_default();
            let room = held.len() < at_most;
            if room {
                held.insert(id);
                state.conns.insert(id, Conn { user_id, tx: Some(tx), following: Vec::new() });
                metrics::gauge!("ws_connections").set(state.conns.len() as f64);
            }
            room
        };
        if !added {
            self.unsubscribe_quietly(Topic::User(user_id)).await;
            return Err(RegisterError::TooMany { at_most });
        }
        self.changed.notify_waiters();
        Ok(id)
    }

    /// Removes a connection and everything it followed.
    pub async fn unregister(&self, conn: ConnId) {
        let (user_id, emptied) = {
            let mut state = self.state();
            let Some(entry) = state.conns.remove(&conn) else { return };
            if let Some(conns) = state.by_user.get_mut(&entry.user_id) {
                conns.remove(&conn);
                if conns.is_empty() {
                    state.by_user.remove(&entry.user_id);
                }
            }
            let emptied: Vec<Uuid> =
                entry.following.into_iter().filter(|chat_id| state.leave_feed(conn, *chat_id)).collect();
            metrics::gauge!("ws_connections").set(state.conns.len() as f64);
            (entry.user_id, emptied)
        };
        self.changed.notify_waiters();
        for chat_id in emptied {
            self.unsubscribe_quietly(Topic::Chat(chat_id)).await;
        }
        self.unsubscribe_quietly(Topic::User(user_id)).await;
    }

    /// Starts delivering `chat_id`'s live events to `conn`. `current_last_seq` must be read from the
    /// database *after* this call's relay subscription, which [`Hub::follow`] guarantees by taking a
    /// closure: it is the baseline of a new feed (earlier messages come from the database).
    pub async fn follow<F, Fut>(&self, conn: ConnId, chat_id: Uuid, last_seq: F) -> anyhow::Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<i64>>,
    {
        if self.state().feeds.get(&chat_id).is_some_and(|f| f.subscribers.contains(&conn)) {
            return Ok(());
        }
        let needs_feed = !self.state().feeds.contains_key(&chat_id);
        if needs_feed {
            self.relay.subscribe(Topic::Chat(chat_id)).await?;
            let baseline = match last_seq().await {
                Ok(seq) => seq,
                Err(e) => {
                    self.unsubscribe_quietly(Topic::Chat(chat_id)).await;
                    return Err(e);
                }
            };
            let subscription_unused = {
                let mut state = self.state();
                // A connection that ended meanwhile gets no feed: nobody would end it.
                let gone = !state.conns.contains_key(&conn);
                let exists = state.feeds.contains_key(&chat_id);
                if !gone && !exists {
                    state.feeds.insert(
                        chat_id,
                        Feed {
                            subscribers: HashSet::new(),
                            next_seq: baseline + 1,
                            pending: BTreeMap::new(),
                            gap_check_scheduled: false,
                        },
                    );
                }
                state.join_feed(conn, chat_id);
                // Another connection created the feed meanwhile, or nobody needs it.
                gone || exists
            };
            self.changed.notify_waiters();
            if subscription_unused {
                // Keep the relay's count of this topic balanced.
                self.unsubscribe_quietly(Topic::Chat(chat_id)).await;
            }
            return Ok(());
        }
        let joined = self.state().join_feed(conn, chat_id);
        if joined {
            self.changed.notify_waiters();
            return Ok(());
        }
        // The feed went away between the two looks: start it again.
        Box::pin(self.follow(conn, chat_id, last_seq)).await
    }

    /// Stops delivering `chat_id` to `conn`.
    pub async fn unfollow(&self, conn: ConnId, chat_id: Uuid) {
        let emptied = {
            let mut state = self.state();
            if let Some(entry) = state.conns.get_mut(&conn) {
                entry.following.retain(|followed| *followed != chat_id);
            }
            state.leave_feed(conn, chat_id)
        };
        self.changed.notify_waiters();
        if emptied {
            self.unsubscribe_quietly(Topic::Chat(chat_id)).await;
        }
    }

    async fn unsubscribe_quietly(&self, topic: Topic) {
        if let Err(e) = self.relay.unsubscribe(topic).await {
            tracing::warn!(?topic, error = format!("{e:#}"), "unsubscribe failed");
        }
    }

    /// Handles one event from the relay.
    pub fn dispatch(self: &Arc<Self>, topic: Topic, event: ChatEvent) {
        match (topic, event) {
            (Topic::Chat(_), ChatEvent::Message(message)) => self.on_message(message),
            (Topic::Chat(chat_id), ChatEvent::Updated(message)) => {
                self.broadcast(chat_id, None, None, ServerFrame::MessageUpdated { message });
            }
            (Topic::Chat(chat_id), ChatEvent::Read { user_id, seq, .. }) => {
                self.broadcast(chat_id, None, None, ServerFrame::MessagesRead { chat_id, user_id, seq });
            }
            (Topic::Chat(chat_id), ChatEvent::Delivered { seq, .. }) => {
                self.broadcast(chat_id, None, None, ServerFrame::MessagesDelivered { chat_id, seq });
            }
            (Topic::Chat(chat_id), ChatEvent::Typing { user_id, typing, .. }) => {
                self.broadcast(chat_id, None, Some(user_id), ServerFrame::UserTyping { chat_id, user_id, typing });
            }
            (Topic::Chat(chat_id), ChatEvent::Presence { user_id, online, .. }) => {
                self.broadcast(chat_id, None, Some(user_id), ServerFrame::Presence { chat_id, user_id, online });
            }
            (Topic::Chat(chat_id), ChatEvent::Joined { user_id, .. }) => {
                self.broadcast(chat_id, None, None, ServerFrame::ParticipantJoined { chat_id, user_id });
            }
            (Topic::Chat(chat_id), ChatEvent::Left { user_id, .. }) => {
                self.broadcast(chat_id, None, None, ServerFrame::ParticipantLeft { chat_id, user_id });
            }
            (Topic::Chat(chat_id), ChatEvent::Renamed { title, .. }) => {
                self.broadcast(chat_id, None, None, ServerFrame::ConversationUpdated { chat_id, title });
            }
            (Topic::Chat(chat_id), ChatEvent::RoleChanged { user_id, role, .. }) => {
                self.broadcast(chat_id, None, None, ServerFrame::ParticipantRoleChanged { chat_id, user_id, role });
            }
            (Topic::Chat(chat_id), ChatEvent::ProfileChanged { user_id, display_name, avatar_url, .. }) => {
                let frame = ServerFrame::ParticipantUpdated { chat_id, user_id, display_name, avatar_url };
                self.broadcast(chat_id, None, None, frame);
            }
            // A big group's read, told to the reader's own connections only.
            (Topic::User(reader), ChatEvent::Read { chat_id, user_id, seq }) if reader == user_id => {
                if let Some(fanout) =
                    Fanout::of(chat_id, None, None, ServerFrame::MessagesRead { chat_id, user_id, seq })
                {
                    self.to_user(reader, Delivery::Frame(fanout));
                }
            }
            (Topic::User(user_id), ChatEvent::Joined { chat_id, .. }) => {
                self.to_user(user_id, Delivery::Joined(chat_id))
            }
            (Topic::User(user_id), ChatEvent::Left { chat_id, .. }) => self.to_user(user_id, Delivery::Left(chat_id)),
            (Topic::User(user_id), ChatEvent::SessionsEnded { sessions, .. }) => {
                self.to_user(user_id, Delivery::SessionsEnded(Arc::new(sessions)))
            }
            (topic, event) => tracing::debug!(?topic, ?event, "event on an unexpected topic"),
        }
    }

    fn on_message(self: &Arc<Self>, message: MessageDto) {
        let chat_id = message.chat_id;
        let mut ready = Vec::new();
        let schedule_gap_check = {
            let mut state = self.state();
            let Some(feed) = state.feeds.get_mut(&chat_id) else { return };
            if message.seq < feed.next_seq {
                return;
            }
            feed.pending.insert(message.seq, message);
            while let Some(next) = feed.pending.remove(&feed.next_seq) {
                feed.next_seq += 1;
                ready.push(next);
            }
            let schedule = !feed.pending.is_empty() && !feed.gap_check_scheduled;
            if schedule {
                feed.gap_check_scheduled = true;
            }
            schedule
        };
        for message in ready {
            self.deliver_message(message);
        }
        if schedule_gap_check {
            self.schedule_gap_check(chat_id);
        }
    }

    fn schedule_gap_check(self: &Arc<Self>, chat_id: Uuid) {
        let hub = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(GAP_BOUND).await;
            hub.fill_gap(chat_id).await;
        });
    }

    /// Reads the messages still missing before the first pending one, and delivers everything in order.
    async fn fill_gap(self: &Arc<Self>, chat_id: Uuid) {
        let range = {
            let mut state = self.state();
            let Some(feed) = state.feeds.get_mut(&chat_id) else { return };
            feed.gap_check_scheduled = false;
            feed.pending.keys().next().map(|first| (feed.next_seq, *first - 1))
        };
        let Some((from, to)) = range else { return };
        if from > to {
            return;
        }
        metrics::counter!("relay_gaps_filled_total").increment(1);
        match self.source.messages_between(chat_id, from, to).await {
            Ok(messages) => {
                for message in messages {
                    self.on_message(message);
                }
            }
            Err(e) => tracing::warn!(%chat_id, error = format!("{e:#}"), "cannot read a gap"),
        }
        // Whatever is still pending (the database had nothing for the gap) gets another check.
        let reschedule = {
            let mut state = self.state();
            state.feeds.get_mut(&chat_id).is_some_and(|feed| {
                let again = !feed.pending.is_empty() && !feed.gap_check_scheduled;
                feed.gap_check_scheduled |= again;
                again
            })
        };
        if reschedule {
            self.schedule_gap_check(chat_id);
        }
    }

    fn deliver_message(&self, message: MessageDto) {
        let latency = (chrono::Utc::now() - message.created_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
        metrics::histogram!("fanout_latency_seconds").record(latency.max(0.0));
        let (chat_id, seq) = (message.chat_id, message.seq);
        self.broadcast(chat_id, Some(seq), None, ServerFrame::NewMessage { message });
    }

    /// Sends a frame, serialized once, to every local follower of a chat.
    fn broadcast(&self, chat_id: Uuid, seq: Option<i64>, from: Option<Uuid>, frame: ServerFrame) {
        let Some(fanout) = Fanout::of(chat_id, seq, from, frame) else { return };
        let mut state = self.state();
        let State { conns, feeds, .. } = &mut *state;
        let Some(feed) = feeds.get(&chat_id) else { return };
        let mut overflowed = Vec::new();
        let mut delivered = 0;
        for conn_id in &feed.subscribers {
            let Some(tx) = conns.get(conn_id).and_then(|conn| conn.tx.as_ref()) else { continue };
            if tx.try_send(Delivery::Frame(Arc::clone(&fanout))).is_ok() {
                delivered += 1;
            } else {
                overflowed.push(*conn_id);
            }
        }
        metrics::counter!("fanout_deliveries_total").increment(delivered);
        for conn_id in overflowed {
            if let Some(conn) = conns.get_mut(&conn_id) {
                conn.cut();
            }
        }
    }

    fn to_user(&self, user_id: Uuid, delivery: Delivery) {
        let mut state = self.state();
        let State { conns, by_user, .. } = &mut *state;
        for conn_id in by_user.get(&user_id).into_iter().flatten() {
            if let Some(conn) = conns.get_mut(conn_id)
                && conn.tx.as_ref().is_some_and(|tx| tx.try_send(delivery.clone()).is_err())
            {
                // Like a lost message, a lost membership change must not go unnoticed: the
                // connection is cut and learns its chats again from `ready` when it reconnects.
                conn.cut();
            }
        }
    }

    /// Events this instance would deliver for a chat right now: for tests and `/metrics`.
    pub fn followers(&self, chat_id: Uuid) -> usize {
        self.state().feeds.get(&chat_id).map_or(0, |f| f.subscribers.len())
    }

    /// Resolves once the number of local connections or subscriptions following `chat_id`
    /// satisfies `wanted`: what a test awaits to know a subscription without a backlog is live, or
    /// that a connection that ended has left its feeds.
    pub async fn followers_become(&self, chat_id: Uuid, wanted: impl Fn(usize) -> bool) {
        self.until(|| wanted(self.followers(chat_id))).await;
    }

    /// How many local connections and subscriptions `user_id` has.
    pub fn connections_of(&self, user_id: Uuid) -> usize {
        self.state().by_user.get(&user_id).map_or(0, HashSet::len)
    }

    /// Resolves once the number of `user_id`'s local connections and subscriptions satisfies
    /// `wanted`: what a test awaits to know a subscription that follows no chat (`myChats`) is live.
    pub async fn connections_become(&self, user_id: Uuid, wanted: impl Fn(usize) -> bool) {
        self.until(|| wanted(self.connections_of(user_id))).await;
    }

    /// Resolves once `done` holds, looking again whenever connections or feeds change.
    async fn until(&self, done: impl Fn() -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the look, so a change between the look and the wait still wakes us.
            changed.as_mut().enable();
            if done() {
                return;
            }
            changed.await;
        }
    }

    /// Delivers, in order, every stored message each followed chat has beyond what its feed has
    /// delivered, then where the chat's receipts stand: after the relay reconnects, events
    /// published while it was away are lost to this instance, but never to its clients. Reads are
    /// told as [`crate::service::messages::mark_read`] tells them: to the chat where it has at most
    /// `reads_shared_up_to` participants, otherwise to each reader's own connections.
    pub async fn catch_up_all(self: &Arc<Self>, reads_shared_up_to: usize) {
        const PAGE: i64 = 500;
        // Chats whose receipts one query reads.
        const RECEIPTS_PAGE: usize = 500;
        let chats: Vec<Uuid> = self.state().feeds.keys().copied().collect();
        metrics::counter!("relay_catch_ups_total").increment(1);
        for &chat_id in &chats {
            loop {
                let Some(from) = self.state().feeds.get(&chat_id).map(|feed| feed.next_seq) else { break };
                match self.source.messages_between(chat_id, from, from + PAGE - 1).await {
                    Ok(messages) => {
                        let full = messages.len() as i64 == PAGE;
                        for message in messages {
                            self.on_message(message);
                        }
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%chat_id, error = format!("{e:#}"), "cannot catch a chat up");
                        break;
                    }
                }
            }
        }
        // Then the receipts, a page of chats per query.
        for page in chats.chunks(RECEIPTS_PAGE) {
            match self.source.watermarks(page).await {
                Ok(watermarks) => self.tell_receipts(watermarks, reads_shared_up_to),
                Err(e) => tracing::warn!(chats = page.len(), error = format!("{e:#}"), "cannot catch receipts up"),
            }
        }
    }

    /// Tells each chat's followers where its reads and deliveries stand. Most of it they know
    /// already; clients take a watermark they are past as a no-op.
    fn tell_receipts(self: &Arc<Self>, watermarks: Vec<Watermark>, reads_shared_up_to: usize) {
        let mut by_chat: HashMap<Uuid, Vec<Watermark>> = HashMap::new();
        for w in watermarks {
            by_chat.entry(w.chat_id).or_default().push(w);
        }
        for (chat_id, watermarks) in by_chat {
            let shared = watermarks.len() <= reads_shared_up_to;
            for w in watermarks.iter().filter(|w| w.read > 0) {
                let told = if shared { Topic::Chat(chat_id) } else { Topic::User(w.user_id) };
                self.dispatch(told, ChatEvent::Read { chat_id, user_id: w.user_id, seq: w.read });
            }
            // What is read is delivered: the receipts task's delivered-to-all watermark.
            if let Some(seq) = watermarks.iter().map(|w| w.read.max(w.delivered)).min().filter(|seq| *seq > 0) {
                self.dispatch(Topic::Chat(chat_id), ChatEvent::Delivered { chat_id, seq });
            }
        }
    }
}

/// The events the relay hands this instance, on their way to the hub.
pub type Incoming = mpsc::Receiver<(Topic, ChatEvent)>;

/// Where the hub's fan-out will run: the first HTTP worker to start takes the inbound events and
/// pumps them into the hub on its own thread. Connections live on the workers, so there a delivery
/// wakes its connection without crossing threads — on the instance's main thread every delivery
/// did (docs/benchmarks-history.md measures the difference). A worker that stops gives the events back for
/// the next one to start.
#[derive(Clone)]
pub struct Pump {
    hub: Arc<Hub>,
    waiting: Arc<Mutex<Option<Incoming>>>,
}

impl Pump {
    pub fn new(hub: Arc<Hub>, inbound: Incoming) -> Self {
        Self { hub, waiting: Arc::new(Mutex::new(Some(inbound))) }
    }

    /// Starts pumping on the current thread's runtime, unless a pump already runs.
    pub fn start_here(&self) {
        let taken = self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(inbound) = taken {
            let lease = Lease { inbound: Some(inbound), waiting: self.waiting.clone() };
            tokio::spawn(pump(self.hub.clone(), lease));
        }
    }
}

/// The inbound events, held by a running pump and given back when it is dropped.
struct Lease {
    inbound: Option<Incoming>,
    waiting: Arc<Mutex<Option<Incoming>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(inbound) = self.inbound.take() {
            *self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(inbound);
        }
    }
}

/// Pumps events from the relay into the hub until the relay stops.
async fn pump(hub: Arc<Hub>, mut lease: Lease) {
    let Some(inbound) = lease.inbound.as_mut() else { return };
    while let Some((topic, event)) = inbound.recv().await {
        hub.dispatch(topic, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::local::LocalRelay;

    struct NoMessages;

    #[async_trait::async_trait]
    impl MessageSource for NoMessages {
        async fn messages_between(&self, _: Uuid, _: i64, _: i64) -> anyhow::Result<Vec<MessageDto>> {
            Ok(Vec::new())
        }

        async fn watermarks(&self, _: &[Uuid]) -> anyhow::Result<Vec<Watermark>> {
            Ok(Vec::new())
        }
    }

    fn waiting(pump: &Pump) -> bool {
        pump.waiting.lock().unwrap().is_some()
    }

    /// Every HTTP worker asks for the pump as it starts: one runs it, and when that worker's
    /// runtime is gone the next worker to start takes it over.
    #[test]
    fn one_worker_pumps_and_a_worker_started_after_it_stops_takes_over() {
        let (sender, inbound) = mpsc::channel(8);
        let hub = Hub::new(Arc::new(LocalRelay::new(sender)), Arc::new(NoMessages));
        let pump = Pump::new(hub, inbound);
        let worker = || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

        let first = worker();
        first.block_on(async {
            pump.start_here();
            pump.start_here();
            tokio::task::yield_now().await;
        });
        assert!(!waiting(&pump), "the first worker pumps");
        let second = worker();
        second.block_on(async { pump.start_here() });
        assert!(!waiting(&pump), "a second worker starts no second pump");

        drop(first);
        assert!(waiting(&pump), "a stopped worker gives the events back");
        let third = worker();
        third.block_on(async {
            pump.start_here();
            tokio::task::yield_now().await;
        });
        assert!(!waiting(&pump), "the next worker to start pumps them");
    }
}
