//! The connections: a few shard tasks, each multiplexing many WebSockets, each checking every
//! delivery and running its part of the open-loop send schedule.
//!
//! # Layout
//! - A connection's global index `i` lives in shard `i % shards`, slot `i / shards`.
//! - Connecting (TCP, upgrade, `auth`, `ready`) runs outside the shards, many at a time; the
//!   finished stream is handed to its shard ([`Cmd::Adopt`]). Frames that arrive in between wait
//!   in the socket, so nothing is missed.
//! - A shard reads frames with one [`SelectAll`] over its connections' read halves and parses only
//!   the members it needs ([`Incoming`]), borrowing from the frame: no allocation per delivery
//!   besides tungstenite's frame buffer.
//! - Latency is measured from the *scheduled* send time, which travels in the message itself
//!   (`clientMsgId` = `{scheduled µs}-{sender instance}-{n}`, `req` = scheduled µs), so a stalled
//!   server or a stalled generator cannot hide: a late send is late from its schedule.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use converge_shared::dto::ResumePoints;
use converge_shared::protocol::ClientFrame;
use futures_util::stream::{SelectAll, SplitSink};
use futures_util::{SinkExt, Stream, StreamExt, stream};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::arrival::{self, StampedWs};
use crate::checker::{Arrival, SeqChecker};
use crate::pacer::{Pacer, PacerKind};

pub type Ws = StampedWs;

/// Bytes read from a socket at a time.
pub const READ_BUFFER: usize = 4096;

/// The moment all timestamps of this process count from.
pub fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

pub fn micros_since_origin(at: Instant) -> u64 {
    at.saturating_duration_since(origin()).as_micros() as u64
}

/// A latency histogram in microseconds, 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// What a connection is: who, where, which chats it follows and in which one it sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnSpec {
    pub token: String,
    pub url: String,
    /// Index of the chat-service instance (its URL) this connection talks to.
    pub instance: u8,
    /// Chat ids with their bench-wide chat index.
    pub chats: Vec<(Uuid, u32)>,
    /// The chat (an index into `chats`) this connection sends in, if it sends.
    pub sends_in: Option<usize>,
}

/// What [`Fleet::connect_as_many`] did.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Connected {
    pub opened: usize,
    pub attempted: usize,
    /// The first failure, described.
    pub failure: Option<String>,
}

/// An error's text and its root cause's, once: `{:#}` would repeat an io error's text, which
/// tungstenite's error wraps and shows as well.
pub fn describe(error: &anyhow::Error) -> String {
    let (outer, root) = (error.to_string(), error.root_cause().to_string());
    if outer.contains(&root) { outer } else { format!("{outer}: {root}") }
}

/// Adds counts by key (of errors, closes, frame kinds) into `into`.
pub fn add_counts<K: std::hash::Hash + Eq>(into: &mut HashMap<K, u64>, from: HashMap<K, u64>) {
    for (key, n) in from {
        *into.entry(key).or_default() += n;
    }
}

/// The chats listed by `ready`: only ids and where each stands.
#[derive(Deserialize)]
struct ReadyFrame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    chats: Vec<ReadyChat>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadyChat {
    id: Uuid,
    last_seq: i64,
}

/// What a connection's `ready` said.
pub struct Ready {
    /// Each chat's `lastSeq` at that moment.
    seqs: HashMap<Uuid, i64>,
    /// The frame's size: what the server wrote before the connection went idle.
    bytes: usize,
}

/// Connects, authenticates (resuming from `resume` if given) and waits for `ready`.
pub async fn connect(url: &str, token: &str, resume: Option<ResumePoints>) -> Result<(Ws, Ready)> {
    let handshake = async {
        let mut ws = arrival::open(url).await?;
        let auth = serde_json::to_string(&ClientFrame::Auth {
            req: None,
            token: token.to_owned(),
            resume,
            edits_after: None,
        })?;
        ws.send(Message::text(auth)).await?;
        while let Some(message) = ws.next().await {
            match message? {
                Message::Text(text) => {
                    let ready: ReadyFrame = serde_json::from_str(text.as_str()).context("reading ready")?;
                    if ready.kind != "ready" {
                        bail!("expected ready, got {}", text.as_str());
                    }
                    let seqs = ready.chats.into_iter().map(|c| (c.id, c.last_seq)).collect();
                    return Ok((ws, Ready { seqs, bytes: text.len() }));
                }
                Message::Close(frame) => bail!("closed before ready: {frame:?}"),
                _ => {}
            }
        }
        bail!("connection ended before ready")
    };
    tokio::time::timeout(Duration::from_secs(60), handshake).await.context("connect timed out")?
}

/// Members of server frames the generator looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    req: Option<u64>,
    #[serde(default, borrow)]
    message: Option<IncomingMessage<'a>>,
    #[serde(default, borrow)]
    code: Option<&'a str>,
}

/// An `error` frame, whose `message` is text.
#[derive(Deserialize)]
struct IncomingError<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    req: Option<u64>,
    #[serde(default, borrow)]
    code: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingMessage<'a> {
    #[serde(borrow)]
    chat_id: &'a str,
    seq: i64,
    #[serde(borrow)]
    client_msg_id: &'a str,
    /// The server's stamp, taken where its writer picks the send up: read only from acks.
    #[serde(default, borrow)]
    created_at: Option<&'a str>,
}

/// The frame types counted (not checked) by name; anything else is `other`.
fn other_kind(kind: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "messages_delivered",
        "messages_read",
        "presence",
        "user_typing",
        "participant_joined",
        "participant_left",
        "conversation_created",
        "resumed",
        "pong",
    ];
    KNOWN.iter().find(|k| **k == kind).copied().unwrap_or("other")
}

/// The server's wall-clock stamp on a message (`createdAt`), taken when its writer picks the send
/// up. Latencies here run on the monotonic clock from the schedule; the stamp splits one at the
/// moment it is read: `after` = wall clock now − stamp (one clock, the box's, on both sides), and
/// `before` = the rest. No pairing of the two clocks, so no drift between them.
struct Stamp(chrono::DateTime<chrono::Utc>);

/// A latency in µs, split at the server's stamp.
struct Split {
    before: u64,
    after: u64,
}

impl Stamp {
    fn parse(text: &str) -> Option<Self> {
        chrono::DateTime::parse_from_rfc3339(text).ok().map(|at| Self(at.to_utc()))
    }

    fn split(&self, latency: u64) -> Split {
        let after = (chrono::Utc::now() - self.0).num_microseconds().unwrap_or(0).clamp(0, latency as i64) as u64;
        Split { before: latency - after, after }
    }
}

/// Reads `{scheduled µs}-{instance}-{n}`.
fn parse_client_msg_id(id: &str) -> Option<(u64, u8)> {
    let mut parts = id.split('-');
    let scheduled = parts.next()?.parse().ok()?;
    let instance = parts.next()?.parse().ok()?;
    Some((scheduled, instance))
}

/// One followed chat of one connection.
struct Track {
    chat: u32,
    id: String,
    check: SeqChecker,
}

struct Conn {
    sink: Option<SplitSink<Ws, Message>>,
    /// Bumped on every (re)connection, so the end of an old stream is told from the new one.
    generation: u32,
    instance: u8,
    url: String,
    token: String,
    tracks: Vec<Track>,
    sends_in: Option<usize>,
    sent: u64,
}

impl Conn {
    /// Where the client stands in each chat: what it resumes from.
    fn resume_points(&self) -> ResumePoints {
        self.tracks.iter().map(|t| (t.id.parse().unwrap_or_default(), t.check.last_seen())).collect()
    }
}

/// Open-loop sending: send `i` is due at `start + i × interval`, whatever happened before.
struct Schedule {
    senders: Vec<usize>,
    start: Instant,
    interval: Duration,
    end: Instant,
    limit: u64,
    issued: u64,
}

impl Schedule {
    fn due(&self) -> Instant {
        self.start + self.interval.mul_f64(self.issued as f64)
    }
}

/// Everything a shard measured since its last report.
pub struct ShardReport {
    pub sent: u64,
    pub send_failures: u64,
    pub acked: u64,
    pub errors: HashMap<String, u64>,
    pub closes: HashMap<String, u64>,
    /// Reconnections (with resume) after the server closed a connection.
    pub reconnects: u64,
    /// Frames other than `new_message`, `ack` and `error`, by type.
    pub other_frames: HashMap<&'static str, u64>,
    pub deliveries: u64,
    pub deliver: Histogram<u64>,
    pub deliver_cross: Histogram<u64>,
    /// The same deliveries up to when each frame reached the client's socket, leaving out how long
    /// the generator took to read it ([`crate::arrival`]).
    pub deliver_at_socket: Histogram<u64>,
    pub deliver_cross_at_socket: Histogram<u64>,
    pub ack: Histogram<u64>,
    /// An ack's latency split at the server's stamp on the message (see [`Stamp`]).
    pub before_stamp: Histogram<u64>,
    pub stamp_to_ack: Histogram<u64>,
    /// How late the generator itself issued each send after its scheduled time: its timer's and
    /// its runtime's share of every latency above, which no server can remove.
    pub send_lateness: Histogram<u64>,
    /// Cumulative since the shard started (the caller takes differences).
    pub duplicates: u64,
    pub order_violations: u64,
    /// Per chat index, the highest seq acknowledged to a sender of this shard.
    pub acked_max: HashMap<u32, i64>,
    /// Per (chat, seq): its slowest delivery (only with `track_last`).
    pub last_recipient: HashMap<(u32, i64), LastRecipient>,
    /// Per (chat, seq): µs from the schedule to the server's stamp (only with `track_last`).
    pub stamped: HashMap<(u32, i64), u64>,
}

impl ShardReport {
    fn new() -> Self {
        Self {
            sent: 0,
            send_failures: 0,
            acked: 0,
            errors: HashMap::new(),
            closes: HashMap::new(),
            reconnects: 0,
            other_frames: HashMap::new(),
            deliveries: 0,
            deliver: histogram(),
            deliver_cross: histogram(),
            deliver_at_socket: histogram(),
            deliver_cross_at_socket: histogram(),
            ack: histogram(),
            before_stamp: histogram(),
            stamp_to_ack: histogram(),
            send_lateness: histogram(),
            duplicates: 0,
            order_violations: 0,
            acked_max: HashMap::new(),
            last_recipient: HashMap::new(),
            stamped: HashMap::new(),
        }
    }

    /// Adds another shard's report into this one.
    pub fn merge(&mut self, other: ShardReport) {
        self.sent += other.sent;
        self.send_failures += other.send_failures;
        self.acked += other.acked;
        add_counts(&mut self.errors, other.errors);
        add_counts(&mut self.closes, other.closes);
        add_counts(&mut self.other_frames, other.other_frames);
        self.deliveries += other.deliveries;
        self.reconnects += other.reconnects;
        // Same bounds everywhere: adding cannot fail.
        let _ = self.deliver.add(&other.deliver);
        let _ = self.deliver_cross.add(&other.deliver_cross);
        let _ = self.deliver_at_socket.add(&other.deliver_at_socket);
        let _ = self.deliver_cross_at_socket.add(&other.deliver_cross_at_socket);
        let _ = self.ack.add(&other.ack);
        let _ = self.before_stamp.add(&other.before_stamp);
        let _ = self.stamp_to_ack.add(&other.stamp_to_ack);
        let _ = self.send_lateness.add(&other.send_lateness);
        self.duplicates += other.duplicates;
        self.order_violations += other.order_violations;
        for (chat, seq) in other.acked_max {
            let max = self.acked_max.entry(chat).or_insert(seq);
            *max = (*max).max(seq);
        }
        for (key, last) in other.last_recipient {
            self.last_recipient.entry(key).or_default().add(last);
        }
        self.stamped.extend(other.stamped);
    }
}

/// A message's slowest delivery so far, in µs from its schedule.
#[derive(Debug, Default, Clone, Copy)]
pub struct LastRecipient {
    /// Until the generator read it.
    pub slowest: u64,
    /// Until it reached the client's socket.
    pub slowest_at_socket: u64,
    pub recipients: u32,
}

impl LastRecipient {
    pub fn add(&mut self, other: LastRecipient) {
        self.slowest = self.slowest.max(other.slowest);
        self.slowest_at_socket = self.slowest_at_socket.max(other.slowest_at_socket);
        self.recipients += other.recipients;
    }
}

/// Losses and catch-up state against the chats' highest acknowledged seqs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Completeness {
    pub lost: u64,
    /// Connection-chats that have not received everything up to the target.
    pub behind: u64,
}

enum Cmd {
    Adopt {
        slot: usize,
        ws: Box<Ws>,
        spec: Option<ConnSpec>,
        seqs: HashMap<Uuid, i64>,
    },
    Schedule(Schedule),
    Report(oneshot::Sender<ShardReport>),
    Completeness(Arc<HashMap<u32, i64>>, oneshot::Sender<Completeness>),
    Disconnect(Vec<usize>, oneshot::Sender<Vec<(usize, ResumePoints)>>),
    WatchCaughtUp {
        slots: Vec<usize>,
        targets: Arc<HashMap<u32, i64>>,
        done: oneshot::Sender<Histogram<u64>>,
    },
    /// Answered once the shard's schedule has ended and every send it issued has its ack or error.
    WhenAnswered(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// A connection's slot and generation, what its stream yielded (`None` at its end), and when that
/// frame reached the socket (µs since the origin).
type Item = (usize, u32, Option<Result<Message, tokio_tungstenite::tungstenite::Error>>, Option<u64>);
type Tagged = Pin<Box<dyn Stream<Item = Item> + Send>>;

struct CatchUpWatch {
    remaining: usize,
    waiting: Vec<bool>,
    targets: Arc<HashMap<u32, i64>>,
    since: Instant,
    times: Histogram<u64>,
    done: Option<oneshot::Sender<Histogram<u64>>>,
}

/// A disconnect waiting for the server to close each connection (its read stream ends).
struct Closing {
    /// Slot → the generation its closed stream carries.
    waiting: HashMap<usize, u32>,
    points: Vec<(usize, ResumePoints)>,
    reply: Option<oneshot::Sender<Vec<(usize, ResumePoints)>>>,
}

struct Shard {
    conns: Vec<Option<Conn>>,
    reads: SelectAll<Tagged>,
    schedule: Option<Schedule>,
    /// Wakes the shard when its next send is due.
    pacer: Pacer,
    report: ShardReport,
    duplicates: u64,
    order_violations: u64,
    track_last: bool,
    watch: Option<CatchUpWatch>,
    /// Sends issued and not yet acknowledged or refused.
    unanswered: u64,
    answered_waiters: Vec<oneshot::Sender<()>>,
    /// Connections closed by [`Cmd::Disconnect`] whose server has not closed its side yet.
    closing: Vec<Closing>,
    /// This shard's own command queue, for reconnections to hand their streams back.
    commands: mpsc::WeakSender<Cmd>,
}

impl Shard {
    async fn run(mut self, mut commands: mpsc::Receiver<Cmd>) {
        loop {
            let due = self.schedule.as_ref().map(Schedule::due);
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(Cmd::Shutdown(done)) => {
                        for conn in self.conns.iter_mut().flatten() {
                            if let Some(mut sink) = conn.sink.take() {
                                let _ = sink.close().await;
                            }
                        }
                        let _ = done.send(());
                        return;
                    }
                    Some(command) => self.command(command).await,
                    None => return,
                },
                _ = self.pacer.until(due.unwrap_or_else(Instant::now)), if due.is_some() => self.send_due().await,
                Some((slot, generation, item, arrived)) = self.reads.next() => self.on_item(slot, generation, item, arrived),
            }
        }
    }

    async fn command(&mut self, command: Cmd) {
        match command {
            Cmd::Adopt { slot, ws, spec, seqs } => {
                if self.conns.len() <= slot {
                    self.conns.resize_with(slot + 1, || None);
                }
                let arrivals = ws.get_ref().arrivals();
                let (sink, read) = (*ws).split();
                let conn = match (self.conns[slot].take(), spec) {
                    (_, Some(spec)) => Conn {
                        sink: None,
                        generation: 0,
                        instance: spec.instance,
                        url: spec.url.clone(),
                        token: spec.token.clone(),
                        tracks: spec
                            .chats
                            .iter()
                            .map(|(id, chat)| Track {
                                chat: *chat,
                                id: id.to_string(),
                                check: SeqChecker::new(seqs.get(id).copied().unwrap_or(0)),
                            })
                            .collect(),
                        sends_in: spec.sends_in,
                        sent: 0,
                    },
                    // A reconnection keeps what the client had seen: that is what it resumed from.
                    (Some(mut old), None) => {
                        old.generation += 1;
                        old
                    }
                    (None, None) => return,
                };
                let generation = conn.generation;
                let mut conn = conn;
                conn.sink = Some(sink);
                self.conns[slot] = Some(conn);
                let tagged = read
                    .map(move |m| (slot, generation, Some(m), arrivals.latest()))
                    .chain(stream::once(async move { (slot, generation, None, None) }));
                self.reads.push(Box::pin(tagged));
            }
            Cmd::Schedule(schedule) => self.schedule = (!schedule.senders.is_empty()).then_some(schedule),
            Cmd::Report(reply) => {
                let mut report = std::mem::replace(&mut self.report, ShardReport::new());
                report.duplicates = self.duplicates;
                report.order_violations = self.order_violations;
                let _ = reply.send(report);
            }
            Cmd::Completeness(targets, reply) => {
                let mut out = Completeness::default();
                for track in self.conns.iter().flatten().flat_map(|c| &c.tracks) {
                    let target = targets.get(&track.chat).copied().unwrap_or(0);
                    out.lost += track.check.lost(target);
                    out.behind += u64::from(!track.check.caught_up(target));
                }
                let _ = reply.send(out);
            }
            Cmd::Disconnect(slots, reply) => {
                let mut closing = Closing { waiting: HashMap::new(), points: Vec::new(), reply: Some(reply) };
                for slot in slots {
                    let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else { continue };
                    if let Some(mut sink) = conn.sink.take() {
                        let _ = sink.close().await;
                        closing.waiting.insert(slot, conn.generation);
                    }
                    conn.generation += 1;
                    closing.points.push((slot, conn.resume_points()));
                }
                self.closing.push(closing);
                self.settle_closings();
            }
            Cmd::WhenAnswered(done) => {
                self.answered_waiters.push(done);
                self.settle_answers();
            }
            Cmd::WatchCaughtUp { slots, targets, done } => {
                let mut waiting = vec![false; self.conns.len()];
                for slot in slots {
                    if let Some(w) = waiting.get_mut(slot) {
                        *w = true;
                    }
                }
                let remaining = waiting.iter().filter(|w| **w).count();
                let mut watch = CatchUpWatch {
                    remaining,
                    waiting,
                    targets,
                    since: Instant::now(),
                    times: histogram(),
                    done: Some(done),
                };
                for (slot, conn) in self.conns.iter().enumerate() {
                    if let Some(conn) = conn {
                        watch.check(slot, conn);
                    }
                }
                watch.finish_if_done();
                self.watch = Some(watch);
            }
            Cmd::Shutdown(_) => unreachable!("handled by run"),
        }
    }

    /// Does what the protocol asks of a client the server closed on (4008 too slow, 1012 restart,
    /// or a dropped connection): reconnect and resume from the last seq seen, in the background.
    fn reconnect(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else { return };
        conn.sink = None;
        // Whatever the old stream still yields is stale from now on.
        conn.generation += 1;
        let Some(commands) = self.commands.upgrade() else { return };
        self.report.reconnects += 1;
        let (url, token, resume) = (conn.url.clone(), conn.token.clone(), conn.resume_points());
        tokio::spawn(async move {
            for attempt in 1..=5u32 {
                match connect(&url, &token, Some(resume.clone())).await {
                    Ok((ws, ready)) => {
                        let (ws, seqs) = (Box::new(ws), ready.seqs);
                        let _ = commands.send(Cmd::Adopt { slot, ws, spec: None, seqs }).await;
                        return;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200) * attempt).await,
                }
            }
        });
    }

    /// Sends every message whose time has come.
    async fn send_due(&mut self) {
        let now = Instant::now();
        while let Some(schedule) = self.schedule.as_mut() {
            let due = schedule.due();
            if due > now {
                return;
            }
            if due >= schedule.end || schedule.issued >= schedule.limit {
                self.schedule = None;
                self.settle_answers();
                return;
            }
            let slot = schedule.senders[(schedule.issued % schedule.senders.len() as u64) as usize];
            schedule.issued += 1;
            let scheduled = micros_since_origin(due);
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else { continue };
            let (Some(sink), Some(chat)) = (conn.sink.as_mut(), conn.sends_in.and_then(|i| conn.tracks.get(i))) else {
                continue;
            };
            conn.sent += 1;
            let frame = ClientFrame::SendMessage {
                req: Some(scheduled.into()),
                chat_id: chat.id.parse().unwrap_or_default(),
                client_msg_id: format!("{scheduled}-{}-{}", conn.instance, conn.sent),
                content: "benchmark message".into(),
                attachment_id: None,
                reply_to: None,
            };
            let Ok(text) = serde_json::to_string(&frame) else { continue };
            self.report
                .send_lateness
                .saturating_record(Instant::now().saturating_duration_since(due).as_micros() as u64);
            match sink.send(Message::text(text)).await {
                Ok(()) => {
                    self.report.sent += 1;
                    self.unanswered += 1;
                }
                Err(_) => self.report.send_failures += 1,
            }
        }
    }

    /// A send got its ack or its error.
    fn answered(&mut self) {
        self.unanswered = self.unanswered.saturating_sub(1);
        self.settle_answers();
    }

    fn settle_answers(&mut self) {
        if self.schedule.is_none() && self.unanswered == 0 {
            for done in self.answered_waiters.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// The read stream of `slot` as it was at `generation` has ended.
    fn stream_ended(&mut self, slot: usize, generation: u32) {
        for closing in &mut self.closing {
            if closing.waiting.get(&slot) == Some(&generation) {
                closing.waiting.remove(&slot);
            }
        }
        self.settle_closings();
    }

    fn settle_closings(&mut self) {
        for closing in self.closing.iter_mut().filter(|c| c.waiting.is_empty()) {
            if let Some(reply) = closing.reply.take() {
                let _ = reply.send(std::mem::take(&mut closing.points));
            }
        }
        self.closing.retain(|c| c.reply.is_some());
    }

    fn on_item(
        &mut self,
        slot: usize,
        generation: u32,
        item: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        arrived: Option<u64>,
    ) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else { return };
        if conn.generation != generation {
            if item.is_none() {
                self.stream_ended(slot, generation);
            }
            return;
        }
        let text = match item {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or_else(|| "none".to_owned(), |f| u16::from(f.code).to_string());
                *self.report.closes.entry(code).or_default() += 1;
                self.reconnect(slot);
                return;
            }
            Some(Ok(_)) => return,
            Some(Err(_)) | None => {
                *self.report.closes.entry("dropped".into()).or_default() += 1;
                self.reconnect(slot);
                return;
            }
        };
        let now = micros_since_origin(Instant::now());
        let frame = match serde_json::from_str::<Incoming>(text.as_str()) {
            Ok(frame) => frame,
            // `error` frames carry `message` as text, not as a message object: a rare second parse.
            Err(_) => match serde_json::from_str::<IncomingError>(text.as_str()) {
                Ok(error) => Incoming { kind: error.kind, req: error.req, message: None, code: error.code },
                Err(_) => {
                    *self.report.errors.entry("unparsable".into()).or_default() += 1;
                    return;
                }
            },
        };
        match frame.kind {
            "new_message" => {
                let Some(message) = frame.message else { return };
                let Some(track) = conn.tracks.iter_mut().find(|t| t.id == message.chat_id) else { return };
                match track.check.on_seq(message.seq) {
                    Arrival::Duplicate => {
                        self.duplicates += 1;
                        return;
                    }
                    Arrival::Late => self.order_violations += 1,
                    Arrival::InOrder | Arrival::Ahead => {}
                }
                self.report.deliveries += 1;
                if let Some((scheduled, instance)) = parse_client_msg_id(message.client_msg_id) {
                    let latency = now.saturating_sub(scheduled);
                    let at_socket = arrival::latency_at_socket(arrived, scheduled, latency);
                    self.report.deliver.saturating_record(latency);
                    self.report.deliver_at_socket.saturating_record(at_socket);
                    if instance != conn.instance {
                        self.report.deliver_cross.saturating_record(latency);
                        self.report.deliver_cross_at_socket.saturating_record(at_socket);
                    }
                    if self.track_last {
                        let this = LastRecipient { slowest: latency, slowest_at_socket: at_socket, recipients: 1 };
                        self.report.last_recipient.entry((track.chat, message.seq)).or_default().add(this);
                    }
                }
                if let Some(watch) = self.watch.as_mut() {
                    watch.check(slot, conn);
                }
            }
            "ack" => {
                self.report.acked += 1;
                let latency = frame.req.map(|scheduled| now.saturating_sub(scheduled));
                if let Some(latency) = latency {
                    self.report.ack.saturating_record(latency);
                }
                if let Some(message) = frame.message
                    && let Some(track) = conn.tracks.iter().find(|t| t.id == message.chat_id)
                {
                    let max = self.report.acked_max.entry(track.chat).or_insert(message.seq);
                    *max = (*max).max(message.seq);
                    if let (Some(latency), Some(stamp)) = (latency, message.created_at.and_then(Stamp::parse)) {
                        let split = stamp.split(latency);
                        self.report.before_stamp.saturating_record(split.before);
                        self.report.stamp_to_ack.saturating_record(split.after);
                        if self.track_last {
                            self.report.stamped.insert((track.chat, message.seq), split.before);
                        }
                    }
                }
                self.answered();
            }
            "error" => {
                *self.report.errors.entry(frame.code.unwrap_or("unknown").to_owned()).or_default() += 1;
                // Sends carry a numeric req (their scheduled time): this error answers one.
                if frame.req.is_some() {
                    self.answered();
                }
            }
            other => *self.report.other_frames.entry(other_kind(other)).or_default() += 1,
        }
    }
}

impl CatchUpWatch {
    fn check(&mut self, slot: usize, conn: &Conn) {
        if !self.waiting.get(slot).copied().unwrap_or(false) {
            return;
        }
        let caught_up = conn.tracks.iter().all(|t| t.check.caught_up(self.targets.get(&t.chat).copied().unwrap_or(0)));
        if caught_up {
            self.waiting[slot] = false;
            self.remaining -= 1;
            self.times.saturating_record(self.since.elapsed().as_micros() as u64);
            self.finish_if_done();
        }
    }

    fn finish_if_done(&mut self) {
        if self.remaining == 0
            && let Some(done) = self.done.take()
        {
            let _ = done.send(std::mem::replace(&mut self.times, histogram()));
        }
    }
}

/// All connections of a run, over `shards` tasks.
pub struct Fleet {
    shards: Vec<mpsc::Sender<Cmd>>,
    pub specs: Vec<ConnSpec>,
    /// Bytes of every `ready` the fleet's connections got when they first connected.
    ready_bytes: AtomicU64,
}

impl Fleet {
    pub fn new(shards: usize, track_last: bool, pacer: PacerKind) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(1024);
                let shard = Shard {
                    commands: tx.downgrade(),
                    conns: Vec::new(),
                    reads: SelectAll::new(),
                    schedule: None,
                    pacer: Pacer::new(pacer),
                    report: ShardReport::new(),
                    duplicates: 0,
                    order_violations: 0,
                    track_last,
                    watch: None,
                    unanswered: 0,
                    answered_waiters: Vec::new(),
                    closing: Vec::new(),
                };
                tokio::spawn(shard.run(rx));
                tx
            })
            .collect();
        Self { shards, specs: Vec::new(), ready_bytes: AtomicU64::new(0) }
    }

    fn place(&self, conn: usize) -> (usize, usize) {
        (conn % self.shards.len(), conn / self.shards.len())
    }

    /// The slots, in `shard`, of those of `conns` that live there.
    fn slots_in(&self, shard: usize, conns: &[usize]) -> Vec<usize> {
        conns.iter().map(|&c| self.place(c)).filter(|(s, _)| *s == shard).map(|(_, slot)| slot).collect()
    }

    async fn tell(&self, shard: usize, command: Cmd) -> Result<()> {
        self.shards[shard].send(command).await.map_err(|_| anyhow::anyhow!("a shard stopped"))
    }

    /// The mean size of the `ready` frames of the connections opened so far.
    pub fn ready_bytes_mean(&self) -> f64 {
        self.ready_bytes.load(Ordering::Relaxed) as f64 / self.specs.len().max(1) as f64
    }

    /// Opens every connection of `specs` (appended after the existing ones), `concurrency` at a time.
    pub async fn connect(&mut self, specs: Vec<ConnSpec>, concurrency: usize) -> Result<()> {
        match self.connect_as_many(specs, concurrency).await.failure {
            None => Ok(()),
            Some(failure) => Err(anyhow::anyhow!(failure)),
        }
    }

    /// Opens connections of `specs`, `concurrency` at a time, until one fails: none is attempted
    /// after the first failure (at the box's limit each would wait for its timeout). What it did:
    /// opened, attempted, and the first failure. The ones opened stay open.
    pub async fn connect_as_many(&mut self, specs: Vec<ConnSpec>, concurrency: usize) -> Connected {
        let first = self.specs.len();
        self.specs.extend(specs.iter().cloned());
        let this = &*self;
        let failed = AtomicBool::new(false);
        let failed = &failed;
        let results: Vec<Option<Result<()>>> = stream::iter(specs.into_iter().enumerate())
            .map(|(i, spec)| async move {
                if failed.load(Ordering::Relaxed) {
                    return None;
                }
                let opened = async {
                    let (ws, ready) = connect(&spec.url, &spec.token, None).await?;
                    this.ready_bytes.fetch_add(ready.bytes as u64, Ordering::Relaxed);
                    let (shard, slot) = this.place(first + i);
                    this.tell(shard, Cmd::Adopt { slot, ws: Box::new(ws), spec: Some(spec), seqs: ready.seqs }).await
                }
                .await;
                if opened.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                Some(opened)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let attempted = results.iter().flatten().count();
        let opened = results.iter().flatten().filter(|r| r.is_ok()).count();
        let failure = results.into_iter().flatten().find_map(Result::err).map(|e| describe(&e));
        Connected { opened, attempted, failure }
    }

    /// Starts open-loop sending: `rate` messages/s in all, round-robin over `senders` (global
    /// connection indexes), for `duration` or until each sender has sent `per_sender` messages.
    pub async fn send(&self, senders: &[usize], rate: f64, duration: Duration, per_sender: Option<u64>) -> Result<()> {
        let start = Instant::now() + Duration::from_millis(20);
        let total = senders.len().max(1) as f64;
        for shard in 0..self.shards.len() {
            let mine: Vec<usize> = self.slots_in(shard, senders);
            if mine.is_empty() {
                continue;
            }
            let shard_rate = rate * mine.len() as f64 / total;
            let interval = Duration::from_secs_f64(1.0 / shard_rate);
            // Shards start out of phase so their sends interleave instead of bunching.
            let offset = interval.mul_f64(shard as f64 / self.shards.len() as f64);
            let limit = per_sender.map_or(u64::MAX, |n| n * mine.len() as u64);
            let schedule = Schedule {
                start: start + offset,
                interval,
                end: start + offset + duration,
                limit,
                issued: 0,
                senders: mine,
            };
            self.tell(shard, Cmd::Schedule(schedule)).await?;
        }
        Ok(())
    }

    /// Resolves once every shard's schedule has ended and each send it issued has been
    /// acknowledged or refused.
    pub async fn answered(&self) -> Result<()> {
        let mut waits = Vec::with_capacity(self.shards.len());
        for shard in 0..self.shards.len() {
            let (tx, rx) = oneshot::channel();
            self.tell(shard, Cmd::WhenAnswered(tx)).await?;
            waits.push(rx);
        }
        for wait in waits {
            wait.await?;
        }
        Ok(())
    }

    /// Every shard's measurements since the last report, merged.
    pub async fn report(&self) -> Result<ShardReport> {
        let mut merged = ShardReport::new();
        for shard in 0..self.shards.len() {
            let (tx, rx) = oneshot::channel();
            self.tell(shard, Cmd::Report(tx)).await?;
            merged.merge(rx.await?);
        }
        Ok(merged)
    }

    /// Losses (and connection-chats still behind) against each chat's highest acknowledged seq.
    pub async fn completeness(&self, targets: &HashMap<u32, i64>) -> Result<Completeness> {
        let targets = Arc::new(targets.clone());
        let mut total = Completeness::default();
        for shard in 0..self.shards.len() {
            let (tx, rx) = oneshot::channel();
            self.tell(shard, Cmd::Completeness(targets.clone(), tx)).await?;
            let part = rx.await?;
            total.lost += part.lost;
            total.behind += part.behind;
        }
        Ok(total)
    }

    /// Closes the given connections and returns, once the server has closed each of them too, each
    /// one's resume points (the last seq it saw per chat).
    pub async fn disconnect(&self, conns: &[usize]) -> Result<Vec<(usize, ResumePoints)>> {
        let mut out = Vec::new();
        for shard in 0..self.shards.len() {
            let slots: Vec<usize> = self.slots_in(shard, conns);
            let (tx, rx) = oneshot::channel();
            self.tell(shard, Cmd::Disconnect(slots, tx)).await?;
            out.extend(rx.await?.into_iter().map(|(slot, points)| (slot * self.shards.len() + shard, points)));
        }
        Ok(out)
    }

    /// Asks each shard to time the given connections until they have everything up to `targets`;
    /// the receivers complete with the per-connection times (µs since this call).
    pub async fn watch_caught_up(
        &self,
        conns: &[usize],
        targets: &HashMap<u32, i64>,
    ) -> Result<Vec<oneshot::Receiver<Histogram<u64>>>> {
        let targets = Arc::new(targets.clone());
        let mut receivers = Vec::new();
        for shard in 0..self.shards.len() {
            let slots: Vec<usize> = self.slots_in(shard, conns);
            if slots.is_empty() {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            self.tell(shard, Cmd::WatchCaughtUp { slots, targets: targets.clone(), done: tx }).await?;
            receivers.push(rx);
        }
        Ok(receivers)
    }

    /// Reconnects a connection with `auth.resume` and hands it back to its shard.
    pub async fn reconnect(&self, conn: usize, resume: ResumePoints) -> Result<()> {
        let spec = &self.specs[conn];
        let (ws, ready) = connect(&spec.url, &spec.token, Some(resume)).await?;
        let (shard, slot) = self.place(conn);
        self.tell(shard, Cmd::Adopt { slot, ws: Box::new(ws), spec: None, seqs: ready.seqs }).await
    }

    /// Closes every connection.
    pub async fn shutdown(&self) {
        for shard in &self.shards {
            let (tx, rx) = oneshot::channel();
            if shard.send(Cmd::Shutdown(tx)).await.is_ok() {
                let _ = rx.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_what_it_needs() {
        let text = r#"{"type":"new_message","message":{"id":"0194f108-778a-7128-a24b-e40ad23f0824","chatId":"0194f108-778a-7128-a24b-e40ad23f0825","seq":43,"senderId":"0194f108-778a-7128-a24b-e40ad23f0826","clientMsgId":"1234-1-7","content":"x \"quoted\"","createdAt":"2025-03-14T09:27:21.046730Z"}}"#;
        let frame: Incoming = serde_json::from_str(text).unwrap();
        let message = frame.message.unwrap();
        assert_eq!(
            (frame.kind, message.seq, message.chat_id),
            ("new_message", 43, "0194f108-778a-7128-a24b-e40ad23f0825")
        );
        assert_eq!(parse_client_msg_id(message.client_msg_id), Some((1234, 1)));
        assert_eq!(message.created_at, Some("2025-03-14T09:27:21.046730Z"));
        let text = r#"{"type":"error","req":9,"code":"rate_limited","message":"slow \"down\""}"#;
        assert!(serde_json::from_str::<Incoming>(text).is_err());
        let error: IncomingError = serde_json::from_str(text).unwrap();
        assert_eq!((error.code, error.req), (Some("rate_limited"), Some(9)));
    }

    #[test]
    fn a_latency_splits_at_the_servers_stamp() {
        let stamped_ago = |ms: i64| Stamp(chrono::Utc::now() - chrono::Duration::milliseconds(ms));
        // Stamped 30 ms ago, answered 50 ms after its schedule: about 20 ms before the stamp.
        let split = stamped_ago(30).split(50_000);
        assert_eq!(split.before + split.after, 50_000);
        assert!((30_000..35_000).contains(&split.after), "after the stamp: {} µs", split.after);
        // A stamp older than the whole latency (clocks are not exact) leaves nothing before it.
        let split = stamped_ago(80).split(50_000);
        assert_eq!((split.before, split.after), (0, 50_000));
        // A stamp in the future leaves nothing after it.
        let split = stamped_ago(-80).split(50_000);
        assert_eq!((split.before, split.after), (50_000, 0));
        let parsed = Stamp::parse("2025-03-14T09:27:21.046730Z").map(|s| s.0.timestamp_micros());
        assert_eq!(parsed, Some(1_741_944_441_046_730));
        assert!(Stamp::parse("yesterday").is_none());
    }
}
