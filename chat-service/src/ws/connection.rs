//! One WebSocket connection: authenticate, follow the user's chats, then serve client frames and
//! hub deliveries in one task until either side ends.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use converge_shared::api_error::ApiError;
use converge_shared::auth::Authenticator;
use converge_shared::dto::{ChatDto, EditMessageRequest, MessageDto, ResumePoints, SendMessageRequest};
use converge_shared::error::ErrorCode;
use converge_shared::protocol::{CLIENT_FRAME_TYPES, ClientFrame, ReadyUser, ServerFrame, close_code};
use converge_shared::rate_limit::per_second_with_double_burst;
use converge_shared::token::{AccessClaims, TokenError};
use governor::clock::DefaultClock;
use governor::{DefaultDirectRateLimiter, RateLimiter};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use uuid::Uuid;

use crate::context::AppContext;
use crate::hub::{ConnId, Delivery, DeliveryReceiver, RegisterError, delivery_queue};
use crate::service::{arrivals, chats, edits, history, messages, users};

/// One clock for every connection's frame limiter: making a clock probes the CPU (`cpuid`, which
/// exits to the hypervisor on a VM), a cost a reconnect storm paid once per connection.
static LIMITER_CLOCK: LazyLock<DefaultClock> = LazyLock::new(DefaultClock::default);

/// Looked up once: every delivery records into it, and a lookup by name hashes the key each time.
/// The recorder is installed when the application is built, before any connection exists.
static DELIVERY_WAIT: LazyLock<metrics::Histogram> = LazyLock::new(|| metrics::histogram!("delivery_wait_seconds"));

/// Messages read from the database per query while catching a client up.
const BACKLOG_PAGE: u64 = 500;
/// How long one frame may take to reach a client before it counts as stalled.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Database writes (sends, read marks) a connection may have queued; while full, the connection
/// stops reading client frames, which pushes back on the client through TCP.
const MAX_PENDING_WRITES: usize = 32;
/// How long a closing connection waits for its queued writes, so acknowledged means answered.
const FINISH_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection ends: the close code and reason sent, if any.
struct Close(u16, &'static str);

/// Serves one upgraded connection to its end.
///
/// Not an `async fn`: its arguments, and every local of the handshake, would stay in the task's
/// state for the connection's whole life. Opening runs boxed and is freed before serving, so an
/// idle connection's task holds only what serving needs.
pub fn run(
    ctx: AppContext,
    auth: Arc<Authenticator>,
    session: Session,
    stream: AggregatedMessageStream,
    header_token: Option<String>,
) -> impl Future<Output = ()> {
    let opening = Box::pin(open(ctx, auth, session, stream, header_token));
    async move {
        let Some(Opened { mut connection, mut stream, inbox, handshake }) = opening.await else { return };
        // Started apart from serving, so that the handshake is not part of the serving state.
        let outcome = match Box::pin(connection.start(handshake)).await {
            Ok(()) => connection.serve(&mut stream, &inbox).await,
            Err(close) => close,
        };
        Box::pin(connection.finish(outcome)).await;
    }
}

/// A connection past its handshake, registered with the hub.
struct Opened {
    connection: Connection,
    stream: AggregatedMessageStream,
    inbox: DeliveryReceiver,
    handshake: Handshake,
}

/// What the first `auth` said that only starting the connection needs: dropped once it started,
/// so an idle connection does not carry it.
struct Handshake {
    resume: Option<Resuming>,
    /// The token's display name, and the profile version it is from.
    name: String,
    profile_at: Option<i64>,
}

/// What a client asks to be resumed: messages after a seq, changes after an `editSeq`, per chat.
struct Resuming {
    chats: ResumePoints,
    edits_after: Option<ResumePoints>,
}

impl Resuming {
    /// `None` when the frame asks for neither.
    fn of(chats: Option<ResumePoints>, edits_after: Option<ResumePoints>) -> Option<Self> {
        (chats.is_some() || edits_after.is_some()).then(|| Self { chats: chats.unwrap_or_default(), edits_after })
    }
}

/// Authenticates and registers a connection; `None` once it has been closed instead.
async fn open(
    ctx: AppContext,
    auth: Arc<Authenticator>,
    mut session: Session,
    mut stream: AggregatedMessageStream,
    header_token: Option<String>,
) -> Option<Opened> {
    let deadline = Instant::now() + Duration::from_secs(ctx.config.ws_auth_timeout_secs);
    let authenticated = authenticate(&auth, &mut session, &mut stream, header_token, deadline).await;
    let (claims, resume) = match authenticated {
        Ok(authenticated) => authenticated,
        Err(Close(code, reason)) => {
            close(session, code, reason).await;
            return None;
        }
    };
    let (tx, inbox) = delivery_queue(ctx.config.ws_outbound_queue);
    let conn_id = match ctx.hub.register(claims.sub, tx, ctx.config.max_connections_per_user).await {
        Ok(id) => id,
        Err(too_many @ RegisterError::TooMany { .. }) => {
            send_before_close(&mut session, None, too_many.into()).await;
            close(session, close_code::TOO_MANY_CONNECTIONS, "too many connections").await;
            return None;
        }
        Err(RegisterError::Relay(e)) => {
            tracing::warn!(error = format!("{e:#}"), "cannot register a connection");
            close(session, close_code::SERVICE_RESTART, "relay unavailable").await;
            return None;
        }
    };
    // Its session may have ended after the token was checked and before the hub knew of this
    // connection to tell it: ended sessions are recorded before the hub is told, so this sees it.
    if claims.sid.is_some_and(|sid| auth.ended_sessions().has_ended(sid)) {
        ctx.hub.unregister(conn_id).await;
        send_before_close(&mut session, None, TokenError::SessionEnded.into()).await;
        close(session, close_code::UNAUTHORIZED, "session ended").await;
        return None;
    }
    let connection = Connection {
        limiter: RateLimiter::direct_with_clock(
            per_second_with_double_burst(ctx.config.ws_frames_per_second),
            LIMITER_CLOCK.clone(),
        ),
        ctx,
        auth,
        session,
        conn_id,
        user_id: claims.sub,
        token_session: claims.sid,
        token_accepted_until: claims.accepted_until(),
        last_sent: HashMap::new(),
        typing: HashMap::new(),
        last_heard: Instant::now(),
        presence_joined: false,
        writes: None,
    };
    let handshake = Handshake { resume, name: claims.name, profile_at: claims.profile_at };
    Some(Opened { connection, stream, inbox, handshake })
}

/// A database write queued by a connection, done in order by its [`write_worker`].
enum Write {
    Send { req: Option<Value>, chat_id: Uuid, request: SendMessageRequest },
    Edit { req: Option<Value>, chat_id: Uuid, seq: i64, request: EditMessageRequest },
    Delete { req: Option<Value>, chat_id: Uuid, seq: i64 },
    React { req: Option<Value>, chat_id: Uuid, seq: i64, emoji: String, on: bool },
    Read { req: Option<Value>, chat_id: Uuid, seq: i64 },
}

/// What the worker hands back for the client.
///
/// Writes and answers travel boxed: tokio allocates a channel's first block of 32 slots up front,
/// and every idle connection carries these two channels.
enum Answer {
    Frame(Box<ServerFrame>),
    Error(Option<Value>, ApiError),
}

/// A connection's [`write_worker`]: its queue of writes and the answers coming back.
struct Writes {
    jobs: mpsc::Sender<Box<Write>>,
    answers: mpsc::Receiver<Box<Answer>>,
}

impl Writes {
    fn start(ctx: &AppContext, user_id: Uuid) -> Self {
        let (jobs, queue) = mpsc::channel(MAX_PENDING_WRITES);
        let (answered, answers) = mpsc::channel(MAX_PENDING_WRITES);
        // Detached: a worker finishes the writes already queued even if its connection is gone.
        tokio::spawn(write_worker(ctx.clone(), user_id, queue, answered));
        Self { jobs, answers }
    }
}

/// Does a connection's writes one after another, off the connection's loop: the loop keeps
/// draining deliveries while a send waits for its commit, and a client's sends keep their order.
async fn write_worker(
    ctx: AppContext,
    user_id: Uuid,
    mut jobs: mpsc::Receiver<Box<Write>>,
    answers: mpsc::Sender<Box<Answer>>,
) {
    while let Some(job) = jobs.recv().await {
        let answer = match *job {
            // Boxed: the worker waits with an empty queue most of its life.
            Write::Send { req, chat_id, request } => {
                match Box::pin(messages::send(&ctx, user_id, chat_id, request)).await {
                    Ok(message) => Answer::Frame(Box::new(ServerFrame::Ack { req, message })),
                    Err(e) => Answer::Error(req, e),
                }
            }
            Write::Edit { req, chat_id, seq, request } => {
                answer_with_message(req, Box::pin(edits::edit(&ctx, user_id, chat_id, seq, request)).await)
            }
            Write::Delete { req, chat_id, seq } => {
                answer_with_message(req, Box::pin(edits::delete(&ctx, user_id, chat_id, seq)).await)
            }
            Write::React { req, chat_id, seq, emoji, on } => {
                answer_with_message(req, Box::pin(edits::react(&ctx, user_id, chat_id, seq, &emoji, on)).await)
            }
            Write::Read { req, chat_id, seq } => match Box::pin(messages::mark_read(&ctx, user_id, chat_id, seq)).await
            {
                Ok(()) => continue,
                Err(e) => Answer::Error(req, e),
            },
        };
        // The connection may be gone: the write is done all the same, the client retries by clientMsgId.
        let _ = answers.send(Box::new(answer)).await;
    }
}

/// An edit's or deletion's answer: the message as it is now, or why not.
fn answer_with_message(req: Option<Value>, changed: Result<MessageDto, ApiError>) -> Answer {
    match changed {
        Ok(message) => Answer::Frame(Box::new(ServerFrame::Ack { req, message })),
        Err(e) => Answer::Error(req, e),
    }
}

/// Waits for a valid `auth` frame (or uses the upgrade request's bearer token).
async fn authenticate(
    auth: &Authenticator,
    session: &mut Session,
    stream: &mut AggregatedMessageStream,
    header_token: Option<String>,
    deadline: Instant,
) -> Result<(AccessClaims, Option<Resuming>), Close> {
    let (token, resume) = match header_token {
        Some(token) => (token, None),
        None => loop {
            let message = tokio::select! {
                _ = sleep_until(deadline) => return Err(Close(close_code::UNAUTHORIZED, "no auth frame in time")),
                message = stream.recv() => message,
            };
            match message {
                Some(Ok(AggregatedMessage::Text(text))) => match serde_json::from_str::<ClientFrame>(&text) {
                    Ok(ClientFrame::Auth { token, resume, edits_after, .. }) => {
                        break (token, Resuming::of(resume, edits_after));
                    }
                    Ok(_) => return Err(Close(close_code::UNAUTHORIZED, "the first frame must be auth")),
                    Err(e) => {
                        // Say what was wrong (a malformed resume, say) before closing.
                        let (req, error) = describe_bad_frame(&text, e);
                        send_before_close(session, req, error).await;
                        return Err(Close(close_code::UNAUTHORIZED, "the first frame must be a valid auth frame"));
                    }
                },
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    let _ = session.pong(&bytes).await;
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                Some(Ok(AggregatedMessage::Binary(_))) => {
                    return Err(Close(close_code::POLICY_VIOLATION, "binary frames are not supported"));
                }
                Some(Ok(AggregatedMessage::Close(_))) | None => return Err(Close(1000, "")),
                Some(Err(e)) => return Err(protocol_error(e)),
            }
        },
    };
    match auth.verify(&token).await {
        Ok(claims) => Ok((claims, resume)),
        Err(e) => {
            // token_expired tells the client to refresh and retry; invalid_token to sign in again.
            send_before_close(session, None, ApiError::from(e)).await;
            Err(Close(close_code::UNAUTHORIZED, "invalid token"))
        }
    }
}

/// The next answer of the connection's write worker; never, while it has none.
async fn next_answer(writes: &mut Option<Writes>) -> Option<Box<Answer>> {
    match writes {
        Some(writes) => writes.answers.recv().await,
        None => std::future::pending().await,
    }
}

/// An `error` frame on a connection about to close.
async fn send_before_close(session: &mut Session, req: Option<Value>, error: ApiError) {
    let body = error.envelope().error;
    let retry_after = error.retry_after_secs();
    let frame = ServerFrame::Error { req, code: body.code, message: body.message, fields: body.fields, retry_after };
    if let Ok(text) = serde_json::to_string(&frame) {
        let _ = session.text(text).await;
    }
}

/// How a connection whose frames break the WebSocket protocol is closed.
fn protocol_error(error: actix_ws::ProtocolError) -> Close {
    match error {
        actix_ws::ProtocolError::Overflow => Close(close_code::MESSAGE_TOO_BIG, "frame too large"),
        // actix-ws reports a fragmented message over the limit only by this text.
        actix_ws::ProtocolError::Io(e) if e.to_string().contains("maximum continuation size") => {
            Close(close_code::MESSAGE_TOO_BIG, "message too large")
        }
        _ => Close(close_code::PROTOCOL_ERROR, "WebSocket protocol error"),
    }
}

/// The `req` of a frame that did not parse as a [`ClientFrame`], and the error that says why.
fn describe_bad_frame(text: &str, parse_error: serde_json::Error) -> (Option<Value>, ApiError) {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => return (None, ApiError::new(ErrorCode::InvalidFrame, format!("not JSON: {e}"))),
    };
    let req = value.get("req").cloned();
    let error = match value.get("type").and_then(Value::as_str) {
        None => ApiError::new(ErrorCode::InvalidFrame, "a frame needs a string \"type\""),
        Some(kind) if !CLIENT_FRAME_TYPES.contains(&kind) => {
            ApiError::new(ErrorCode::UnknownType, format!("unknown frame type {kind:?}"))
        }
        Some(_) => ApiError::new(ErrorCode::InvalidFrame, bad_member(&value).unwrap_or(parse_error.to_string())),
    };
    (req, error)
}

/// Why a frame of a known type was refused, naming its member: serde says what was wrong with a
/// value ("invalid type: string \"2\", expected i64"), not whose it was. The member is the one
/// without which the frame parses, or is refused only for missing it. A missing member is named
/// by serde itself (`None` then), and a frame of more members than any frame has is not searched:
/// each try parses the frame again.
fn bad_member(frame: &Value) -> Option<String> {
    const MOST_MEMBERS: usize = 8;
    let reason = ClientFrame::deserialize(frame).err()?.to_string();
    if reason.starts_with("missing field") || frame.as_object()?.len() > MOST_MEMBERS {
        return None;
    }
    let mut candidate = frame.clone();
    let keys: Vec<String> =
        frame.as_object()?.keys().filter(|k| !matches!(k.as_str(), "type" | "req")).cloned().collect();
    for key in keys {
        let members = candidate.as_object_mut()?;
        let taken = members.remove(&key)?;
        let culprit = match ClientFrame::deserialize(&candidate) {
            Ok(_) => true,
            Err(e) => e.to_string() == format!("missing field `{key}`"),
        };
        if culprit {
            return Some(format!("{key}: {reason}"));
        }
        candidate.as_object_mut()?.insert(key, taken);
    }
    None
}

async fn close(session: Session, code: u16, reason: &str) {
    let reason =
        CloseReason { code: CloseCode::from(code), description: (!reason.is_empty()).then(|| reason.to_owned()) };
    let _ = session.close(Some(reason)).await;
}

/// What woke a serving connection.
enum Event {
    Client(Option<Result<AggregatedMessage, actix_ws::ProtocolError>>),
    Answer(Box<Answer>),
    /// `None` when the hub dropped the connection's queue: it fell too far behind.
    Delivery(Option<Delivery>),
    /// Whether the shutdown signal's sender is gone (which means shutting down as well).
    Shutdown(bool),
    Heartbeat,
    TypingExpired,
}

struct Connection {
    ctx: AppContext,
    /// Verifies the fresh tokens of `auth` frames on the open connection.
    auth: Arc<Authenticator>,
    session: Session,
    conn_id: ConnId,
    user_id: Uuid,
    /// The session of the latest accepted token (none for a token issued to an app): when it ends
    /// at user-service, the connection closes.
    token_session: Option<Uuid>,
    /// When the latest accepted token stops being accepted: past it the connection serves nothing
    /// more and closes, as a request with that token would be refused.
    token_accepted_until: DateTime<Utc>,
    /// Per followed chat, the highest seq sent to this client: what makes resume and live join
    /// without duplicates, and the set of chats this connection may touch.
    last_sent: HashMap<Uuid, i64>,
    /// Chats the user is typing in, and when that expires.
    typing: HashMap<Uuid, Instant>,
    last_heard: Instant,
    /// Whether `start` told presence of this connection (and `finish` must tell it of the end).
    presence_joined: bool,
    limiter: DefaultDirectRateLimiter,
    /// The connection's [`write_worker`], started by its first write: most connections only
    /// read, and an idle one should not carry a task and two queues.
    writes: Option<Writes>,
}

impl Connection {
    async fn serve(&mut self, stream: &mut AggregatedMessageStream, inbox: &DeliveryReceiver) -> Close {
        // Heard from just now: starting may have taken long (a slow database), and an idle client
        // has had no ping to answer yet.
        self.last_heard = Instant::now();
        let heartbeat_every = Duration::from_secs(self.ctx.config.ws_heartbeat_secs.max(1));
        let idle_timeout = Duration::from_secs(self.ctx.config.ws_idle_timeout_secs.max(1));
        let mut heartbeat = tokio::time::interval_at(Instant::now() + heartbeat_every, heartbeat_every);
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            if *shutdown.borrow_and_update() {
                return Close(close_code::SERVICE_RESTART, "server restarting: reconnect and resume");
            }
            let typing_expiry = self.typing.values().min().copied();
            let far = Instant::now() + Duration::from_secs(3600);
            // The select only says what happened; handling it follows, outside the select.
            let event = tokio::select! {
                message = stream.recv(), if self.writes.as_ref().is_none_or(|w| w.jobs.capacity() > 0) => {
                    Event::Client(message)
                }
                Some(answer) = next_answer(&mut self.writes) => Event::Answer(answer),
                delivery = inbox.recv_async() => Event::Delivery(delivery.ok()),
                changed = shutdown.changed() => Event::Shutdown(changed.is_err()),
                _ = heartbeat.tick() => Event::Heartbeat,
                _ = sleep_until(typing_expiry.unwrap_or(far)), if typing_expiry.is_some() => Event::TypingExpired,
            };
            let step = match event {
                // Client frames and answers are boxed: each connection's task is as large as its
                // largest state, and deliveries (kept inline, the hot path) need less.
                Event::Client(message) => Box::pin(self.on_client(message)).await,
                Event::Answer(answer) => Box::pin(self.send_answer(*answer)).await,
                Event::Delivery(Some(delivery)) => self.on_delivery(delivery).await,
                Event::Delivery(None) => Err(Close(close_code::TOO_SLOW, "too slow: reconnect and resume")),
                Event::Shutdown(false) => Ok(()),
                Event::Shutdown(true) => {
                    Err(Close(close_code::SERVICE_RESTART, "server restarting: reconnect and resume"))
                }
                Event::Heartbeat => {
                    if self.token_expired() {
                        // Boxed like the other rare paths: an error frame's state would otherwise
                        // size every connection's task.
                        Err(Box::pin(self.close_for_expired_token()).await)
                    } else if self.last_heard.elapsed() > idle_timeout {
                        Err(Close(close_code::HEARTBEAT_TIMEOUT, "no heartbeat"))
                    } else {
                        self.session.ping(b"").await.map_err(|_| Close(1000, ""))
                    }
                }
                Event::TypingExpired => {
                    Box::pin(self.expire_typing()).await;
                    Ok(())
                }
            };
            if let Err(close) = step {
                return close;
            }
        }
    }

    /// Follows every chat of the user, sends `ready`, and serves the auth frame's resume.
    async fn start(&mut self, handshake: Handshake) -> Result<(), Close> {
        let Handshake { resume, name, profile_at } = handshake;
        let internal = |e: ApiError| {
            tracing::warn!(error = %e, "cannot start a connection");
            Close(close_code::SERVICE_RESTART, "temporarily unavailable")
        };
        // Read after following: every message newer than these views arrives live.
        let mut views = self.ctx.arrivals.follow_chats(self.user_id, self.conn_id).await.map_err(internal)?;
        self.remember_name(&name, profile_at, &mut views).await.map_err(internal)?;
        for view in &views {
            self.last_sent.insert(view.id, view.last_seq);
        }
        let shared: Vec<&ChatDto> =
            views.iter().filter(|v| self.ctx.presence.shared_in(v.participants.len())).collect();
        // Paired with `disconnected` in `finish`.
        self.ctx.presence.connected(self.user_id, shared.iter().map(|v| v.id).collect()).await;
        self.presence_joined = true;
        let peers: HashSet<Uuid> = shared
            .iter()
            .flat_map(|v| v.participants.iter().map(|p| p.user_id))
            .filter(|u| *u != self.user_id)
            .collect();
        let online = self.ctx.presence.online(peers.into_iter().collect()).await.into_iter().collect();
        let user = ReadyUser { id: self.user_id, display_name: name };
        let ready = ServerFrame::Ready {
            user,
            chats: views,
            online,
            read_receipts_max_chat_members: Some(self.ctx.config.read_receipts_max_chat_members),
            token_expires_at: Some(self.token_accepted_until),
        };
        self.send_frame(&ready).await?;
        if let Some(resuming) = resume {
            self.resume(None, resuming).await?;
        }
        Ok(())
    }

    /// Keeps the token's display name in `known_users`. The views already carry the stored name
    /// whenever the user is in a chat, so a reconnect with an unchanged name costs no query.
    async fn remember_name(
        &self,
        token_name: &str,
        profile_at: Option<i64>,
        views: &mut [ChatDto],
    ) -> Result<(), ApiError> {
        let name = users::stored_name(token_name);
        let mine = views.iter_mut().flat_map(|v| v.participants.iter_mut()).filter(|p| p.user_id == self.user_id);
        let mut stored_as = None;
        for participant in mine {
            stored_as.get_or_insert_with(|| participant.display_name.clone());
            participant.display_name.clone_from(&name);
        }
        match stored_as {
            // Known by another name in their chats: they are told of the new one.
            Some(stored) if stored != name => {
                let from = users::TokenProfile { name: &name, profile_at, token: None };
                users::refresh_profile(&self.ctx, self.user_id, from, views.iter().map(|v| v.id)).await?;
            }
            Some(_) => {}
            None => users::remember(&self.ctx.db, self.user_id, &name, None).await?,
        }
        Ok(())
    }

    async fn on_client(
        &mut self,
        message: Option<Result<AggregatedMessage, actix_ws::ProtocolError>>,
    ) -> Result<(), Close> {
        self.last_heard = Instant::now();
        let message = match message {
            None | Some(Ok(AggregatedMessage::Close(_))) => return Err(Close(1000, "")),
            Some(Err(e)) => return Err(protocol_error(e)),
            Some(Ok(message)) => message,
        };
        match message {
            AggregatedMessage::Text(text) => {
                if self.limiter.check().is_err() {
                    return Err(Close(close_code::POLICY_VIOLATION, "too many frames"));
                }
                // Checked here as well as on heartbeats: no frame is served on an expired token.
                if self.token_expired() {
                    return Err(self.close_for_expired_token().await);
                }
                self.on_text(&text).await
            }
            AggregatedMessage::Binary(_) => Err(Close(close_code::POLICY_VIOLATION, "binary frames are not supported")),
            AggregatedMessage::Ping(bytes) => self.session.pong(&bytes).await.map_err(|_| Close(1000, "")),
            AggregatedMessage::Pong(_) | AggregatedMessage::Close(_) => Ok(()),
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Close> {
        if text.len() > self.ctx.config.max_frame_bytes {
            let message = format!("frames are limited to {} bytes", self.ctx.config.max_frame_bytes);
            return self.send_error(None, ApiError::new(ErrorCode::PayloadTooLarge, message)).await;
        }
        // One parse on the hot path; the diagnostics below run only for a refused frame.
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(e) => {
                let (req, error) = describe_bad_frame(text, e);
                return self.send_error(req, error).await;
            }
        };
        match frame {
            ClientFrame::Auth { req, token, resume, edits_after } => {
                Box::pin(self.renew_token(req, &token, resume.is_some() || edits_after.is_some())).await
            }
            ClientFrame::SendMessage { req, chat_id, client_msg_id, content, attachment_id, reply_to } => {
                let request = SendMessageRequest { client_msg_id, content, attachment_id, reply_to };
                self.queue_write(Write::Send { req, chat_id, request }).await
            }
            ClientFrame::EditMessage { req, chat_id, seq, content, replaces } => {
                let request = EditMessageRequest { content, replaces };
                self.queue_write(Write::Edit { req, chat_id, seq, request }).await
            }
            ClientFrame::DeleteMessage { req, chat_id, seq } => {
                self.queue_write(Write::Delete { req, chat_id, seq }).await
            }
            ClientFrame::AddReaction { req, chat_id, seq, emoji } => {
                self.queue_write(Write::React { req, chat_id, seq, emoji, on: true }).await
            }
            ClientFrame::RemoveReaction { req, chat_id, seq, emoji } => {
                self.queue_write(Write::React { req, chat_id, seq, emoji, on: false }).await
            }
            ClientFrame::MarkAsRead { req, chat_id, seq } => self.queue_write(Write::Read { req, chat_id, seq }).await,
            ClientFrame::TypingStart { req, chat_id } => Box::pin(self.set_typing(req, chat_id, true)).await,
            ClientFrame::TypingStop { req, chat_id } => Box::pin(self.set_typing(req, chat_id, false)).await,
            ClientFrame::Resume { req, chats, edits_after } => {
                Box::pin(self.resume(req, Resuming { chats, edits_after })).await
            }
            ClientFrame::Ping { req } => self.send_frame(&ServerFrame::Pong { req }).await,
        }
    }

    fn token_expired(&self) -> bool {
        Utc::now() > self.token_accepted_until
    }

    /// Says why before closing, so the client refreshes its token rather than retry this one.
    async fn close_for_expired_token(&mut self) -> Close {
        let error = ApiError::from(TokenError::Expired);
        let _ = self.send_error(None, error).await;
        Close(close_code::UNAUTHORIZED, "token expired")
    }

    /// Takes a fresh token of the same user for the rest of the connection. A refused one changes
    /// nothing: the current token holds until it expires.
    async fn renew_token(&mut self, req: Option<Value>, token: &str, with_resume: bool) -> Result<(), Close> {
        if with_resume {
            let error = ApiError::new(
                ErrorCode::InvalidFrame,
                "resume and editsAfter belong to the first auth frame; send a resume frame",
            );
            return self.send_error(req, error).await;
        }
        let claims = match self.auth.verify(token).await {
            Ok(claims) => claims,
            Err(e) => return self.send_error(req, ApiError::from(e)).await,
        };
        if claims.sub != self.user_id {
            let error =
                ApiError::new(ErrorCode::Forbidden, "the token is another user's; open a connection of its own");
            return self.send_error(req, error).await;
        }
        self.token_accepted_until = claims.accepted_until();
        self.token_session = claims.sid;
        // A token issued after a profile change carries the new name and a later profile version:
        // the chats are told of what changed.
        let from = users::TokenProfile { name: &claims.name, profile_at: claims.profile_at, token: Some(token) };
        let chats: Vec<Uuid> = self.last_sent.keys().copied().collect();
        if let Err(e) = users::refresh_profile(&self.ctx, self.user_id, from, chats).await {
            e.log("cannot record a user's new profile");
        }
        self.send_frame(&ServerFrame::Authenticated { req, token_expires_at: self.token_accepted_until }).await
    }

    /// Hands a write to the worker. The loop reads a client frame only while the queue has room,
    /// so this does not wait.
    async fn queue_write(&mut self, write: Write) -> Result<(), Close> {
        let writes = self.writes.get_or_insert_with(|| Writes::start(&self.ctx, self.user_id));
        match writes.jobs.try_send(Box::new(write)) {
            Ok(()) => Ok(()),
            Err(_) => Err(Close(close_code::SERVICE_RESTART, "temporarily unavailable")),
        }
    }

    /// Reports that a message of another user reached this client, for the delivered watermark.
    fn delivered(&self, chat_id: Uuid, seq: i64, sender: Uuid) {
        if sender != self.user_id {
            self.ctx.receipts.delivered(chat_id, self.user_id, seq);
        }
    }

    async fn set_typing(&mut self, req: Option<Value>, chat_id: Uuid, typing: bool) -> Result<(), Close> {
        if !self.last_sent.contains_key(&chat_id) {
            return self.send_error(req, crate::service::forbidden()).await;
        }
        let was_typing = if typing {
            let ttl = Duration::from_millis(self.ctx.config.typing_ttl_ms);
            self.typing.insert(chat_id, Instant::now() + ttl).is_some()
        } else {
            self.typing.remove(&chat_id).is_some()
        };
        // Repeated typing_start only extends the expiry; other clients hear of changes only.
        if typing != was_typing {
            messages::typing(&self.ctx, self.user_id, chat_id, typing).await;
        }
        Ok(())
    }

    async fn expire_typing(&mut self) {
        let now = Instant::now();
        let expired: Vec<Uuid> = self.typing.iter().filter(|(_, at)| **at <= now).map(|(chat, _)| *chat).collect();
        for chat_id in expired {
            self.typing.remove(&chat_id);
            messages::typing(&self.ctx, self.user_id, chat_id, false).await;
        }
    }

    /// Sends every message after each given seq, in order, then the changes after each given
    /// `editSeq`; live events continue after them.
    async fn resume(&mut self, req: Option<Value>, resuming: Resuming) -> Result<(), Close> {
        let mut served = ResumePoints::new();
        // Where each chat's backlog began: the messages after it went out as they are now.
        let mut resumed_from = ResumePoints::new();
        for (chat_id, seq) in resuming.chats {
            // Everything after what this connection has sent arrives live (or as a filled gap).
            let Some(&sent) = self.last_sent.get(&chat_id) else {
                self.send_error(req.clone(), crate::service::forbidden()).await?;
                continue;
            };
            // Only a client that claims more than that (it saw it elsewhere) needs the chat read.
            let last_seq = if (0..=sent).contains(&seq) {
                sent
            } else {
                match chats::find(&self.ctx.db, chat_id).await {
                    Ok(chat) => chat.last_seq,
                    Err(e) => {
                        self.send_error(req.clone(), e).await?;
                        continue;
                    }
                }
            };
            if seq < 0 || seq > last_seq {
                let error =
                    ApiError::new(ErrorCode::InvalidSeq, format!("chat {chat_id} has messages up to seq {last_seq}"));
                self.send_error(req.clone(), error).await?;
                continue;
            }
            self.last_sent.insert(chat_id, seq);
            resumed_from.insert(chat_id, seq);
            self.catch_up(chat_id, sent).await?;
            served.insert(chat_id, self.last_sent.get(&chat_id).copied().unwrap_or(seq));
        }
        let edits = match resuming.edits_after {
            Some(points) => Box::pin(self.resume_edits(&req, points, &resumed_from)).await?,
            None => ResumePoints::new(),
        };
        self.send_frame(&ServerFrame::Resumed { req, chats: served, edits }).await
    }

    /// Sends, for each chat, the messages changed after the given `editSeq` — those the client
    /// already had: up to where its backlog began (`resumed_from`), else up to what this connection
    /// has sent; later ones reach it as they are now. Returns how far each chat's changes were served.
    async fn resume_edits(
        &mut self,
        req: &Option<Value>,
        points: ResumePoints,
        resumed_from: &ResumePoints,
    ) -> Result<ResumePoints, Close> {
        let unavailable = |e: ApiError| {
            tracing::warn!(error = %e, "cannot read a chat's changes");
            Close(close_code::SERVICE_RESTART, "temporarily unavailable")
        };
        let followed: Vec<Uuid> = points.keys().copied().filter(|id| self.last_sent.contains_key(id)).collect();
        // Read before the changes: any change after this arrives live, since the chats are followed.
        let counts = edits::last_edit_seqs(&self.ctx.db, &followed).await.map_err(unavailable)?;
        let mut served = ResumePoints::new();
        for (chat_id, after) in points {
            let (Some(&sent), Some(&count)) = (self.last_sent.get(&chat_id), counts.get(&chat_id)) else {
                self.send_error(req.clone(), crate::service::forbidden()).await?;
                continue;
            };
            if after < 0 || after > count {
                let message = format!("chat {chat_id} has changes up to editSeq {count}");
                self.send_error(req.clone(), ApiError::new(ErrorCode::InvalidSeq, message)).await?;
                continue;
            }
            let had = resumed_from.get(&chat_id).copied().unwrap_or(sent);
            let mut from = after;
            while from < count {
                let page =
                    edits::changed_after(&self.ctx.db, chat_id, from, had, BACKLOG_PAGE).await.map_err(unavailable)?;
                let full = page.len() as u64 == BACKLOG_PAGE;
                for message in page {
                    from = message.edit_seq.unwrap_or(count);
                    self.send_frame(&ServerFrame::MessageUpdated { message }).await?;
                }
                if !full {
                    break;
                }
            }
            served.insert(chat_id, count);
        }
        Ok(served)
    }

    /// Sends the stored messages after what this client has, up to `until`, page by page.
    async fn catch_up(&mut self, chat_id: Uuid, until: i64) -> Result<(), Close> {
        loop {
            let from = self.last_sent.get(&chat_id).copied().unwrap_or(0);
            if from >= until {
                return Ok(());
            }
            let page = match history::backlog(&self.ctx, chat_id, from, until, BACKLOG_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a backlog");
                    return Err(Close(close_code::SERVICE_RESTART, "temporarily unavailable"));
                }
            };
            let full = page.len() as u64 == BACKLOG_PAGE;
            for message in page.into_iter().filter(|m| m.seq <= until) {
                let (seq, sender) = (message.seq, message.sender_id);
                self.send_frame(&ServerFrame::NewMessage { message }).await?;
                self.last_sent.insert(chat_id, seq);
                self.delivered(chat_id, seq, sender);
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn on_delivery(&mut self, delivery: Delivery) -> Result<(), Close> {
        match delivery {
            Delivery::Frame(fanout) => {
                let chat_id = fanout.chat_id;
                let Some(seq) = fanout.seq else {
                    let Some(&last) = self.last_sent.get(&chat_id) else { return Ok(()) };
                    if fanout.from == Some(self.user_id) {
                        return Ok(());
                    }
                    if let ServerFrame::MessageUpdated { message } = &fanout.frame
                        && message.seq > last
                    {
                        // The change overtook its message: the client gets the message as it is
                        // now, from the database, and needs no update after it.
                        return Box::pin(self.catch_up(chat_id, message.seq)).await;
                    }
                    return self.send_text(fanout.text.clone()).await;
                };
                let Some(last) = self.last_sent.get(&chat_id).copied() else { return Ok(()) };
                if seq <= last {
                    return Ok(());
                }
                if seq > last + 1 {
                    // Never skip: whatever this client lacks before `seq` comes from the database.
                    Box::pin(self.catch_up(chat_id, seq - 1)).await?;
                }
                self.send_text(fanout.text.clone()).await?;
                DELIVERY_WAIT.record(fanout.at.elapsed().as_secs_f64());
                self.last_sent.insert(chat_id, seq);
                if let ServerFrame::NewMessage { message } = &fanout.frame {
                    self.delivered(chat_id, seq, message.sender_id);
                }
                Ok(())
            }
            // Rare and deep: boxed, so an idle connection's task does not carry their size.
            Delivery::Joined(chat_id) => Box::pin(self.on_joined(chat_id)).await,
            Delivery::Left(chat_id) => Box::pin(self.on_left(chat_id)).await,
            Delivery::SessionsEnded(sessions) => match self.token_session {
                Some(sid) if sessions.contains(&sid) => {
                    let _ = self.send_error(None, TokenError::SessionEnded.into()).await;
                    Err(Close(close_code::UNAUTHORIZED, "session ended"))
                }
                _ => Ok(()),
            },
        }
    }

    /// The user was added to a chat: follow it and tell the client.
    async fn on_joined(&mut self, chat_id: Uuid) -> Result<(), Close> {
        if self.last_sent.contains_key(&chat_id) {
            return Ok(());
        }
        let joined = async {
            arrivals::follow(&self.ctx.db, &self.ctx.hub, self.conn_id, chat_id).await?;
            let chat = chats::get(&self.ctx, self.user_id, chat_id).await?;
            let online = if self.ctx.presence.shared_in(chat.participants.len()) {
                let peers = chat.participants.iter().map(|p| p.user_id).filter(|u| *u != self.user_id);
                self.ctx.presence.online(peers.collect()).await.into_iter().collect()
            } else {
                Vec::new()
            };
            Ok::<_, ApiError>((chat, online))
        }
        .await;
        match joined {
            Ok((chat, online)) => {
                self.last_sent.insert(chat_id, chat.last_seq);
                self.send_frame(&ServerFrame::ConversationCreated { chat, online }).await
            }
            Err(e) => {
                tracing::warn!(%chat_id, error = %e, "cannot follow a joined chat");
                Ok(())
            }
        }
    }

    /// The user left or was removed from a chat: stop following it and tell the client.
    async fn on_left(&mut self, chat_id: Uuid) -> Result<(), Close> {
        if self.last_sent.remove(&chat_id).is_none() {
            return Ok(());
        }
        self.typing.remove(&chat_id);
        self.ctx.hub.unfollow(self.conn_id, chat_id).await;
        self.send_frame(&ServerFrame::ConversationLeft { chat_id }).await
    }

    /// What the write worker answered: an ack, or the error of a write.
    async fn send_answer(&mut self, answer: Answer) -> Result<(), Close> {
        match answer {
            Answer::Frame(frame) => self.send_frame(&frame).await,
            Answer::Error(req, error) => self.send_error(req, error).await,
        }
    }

    async fn send_error(&mut self, req: Option<Value>, error: ApiError) -> Result<(), Close> {
        error.log("websocket request failed");
        let envelope = error.envelope();
        let mut message = envelope.error.message;
        if envelope.error.code == ErrorCode::Internal {
            // There is no response header to quote on a WebSocket; the cause is in the server log.
            message = "internal error; try again (a send with the same clientMsgId)".into();
        }
        let fields = envelope.error.fields;
        if let Some(fields) = &fields {
            // Also in words, for clients that show `message` alone.
            let details: Vec<String> = fields.iter().map(|(field, why)| format!("{field} {why}")).collect();
            message = format!("{message}: {}", details.join("; "));
        }
        metrics::counter!("ws_errors_total", "code" => envelope.error.code.as_str()).increment(1);
        let retry_after = error.retry_after_secs();
        self.send_frame(&ServerFrame::Error { req, code: envelope.error.code, message, fields, retry_after }).await
    }

    async fn send_frame(&mut self, frame: &ServerFrame) -> Result<(), Close> {
        match serde_json::to_string(frame) {
            Ok(text) => self.send_text(ByteString::from(text)).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a frame");
                Ok(())
            }
        }
    }

    async fn send_text(&mut self, text: ByteString) -> Result<(), Close> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.session.text(text)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(Close(1000, "")),
            Err(_elapsed) => Err(Close(close_code::TOO_SLOW, "too slow: reconnect and resume")),
        }
    }

    /// Leaves the hub, ends the user's typing, lets queued writes finish (answering them while the
    /// client is still there), and closes with `outcome`'s code.
    async fn finish(mut self, outcome: Close) {
        for chat_id in std::mem::take(&mut self.typing).into_keys() {
            messages::typing(&self.ctx, self.user_id, chat_id, false).await;
        }
        self.ctx.hub.unregister(self.conn_id).await;
        if self.presence_joined {
            self.ctx.presence.disconnected(self.user_id).await;
        }
        if let Some(Writes { jobs, mut answers }) = self.writes.take() {
            // Closing the queue lets the worker end after the writes already in it.
            drop(jobs);
            let client_gone = outcome.0 == 1000 || outcome.0 == close_code::TOO_SLOW;
            let answered = async {
                while let Some(answer) = answers.recv().await {
                    if client_gone {
                        continue;
                    }
                    if self.send_answer(*answer).await.is_err() {
                        break;
                    }
                }
            };
            if tokio::time::timeout(FINISH_WRITES_TIMEOUT, answered).await.is_err() {
                tracing::warn!("writes still queued at close; they finish in the background");
            }
        }
        close(self.session, outcome.0, outcome.1).await;
    }
}
