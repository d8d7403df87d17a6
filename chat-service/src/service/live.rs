//! Live streams for subscribers that are not WebSocket connections (GraphQL subscriptions). One
//! chat: every message after a seq in order, with no gap and no duplicate at the join between the
//! stored backlog and the live stream, then the chat's other events as they happen. The user's
//! chats: those they are added to and removed from.

use std::sync::Arc;

use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::{ChatDto, MessageDto};
use converge_shared::error::ErrorCode;
use converge_shared::protocol::ServerFrame;
use futures_util::Stream;
use uuid::Uuid;

use super::chats::{self, find, require_participant};
use super::messages;
use crate::context::AppContext;
use crate::hub::{ConnId, Delivery, DeliveryReceiver, Fanout, Hub, delivery_queue};

/// Messages read from the database per query while catching up.
const BACKLOG_PAGE: u64 = 500;

/// What a chat's live stream yields.
#[derive(Debug, Clone)]
pub enum Update {
    /// The next message, in seq order.
    Message(MessageDto),
    /// A receipt, typing change or membership change (the subscriber's own typing is left out).
    Event(Arc<Fanout>),
}

/// A change to the user's chats, as [`follow_membership`] yields it.
#[derive(Debug, Clone)]
pub enum Membership {
    /// The user was added to this chat, or created it: the chat as they see it.
    Added(Box<ChatDto>),
    /// The user left or was removed from this chat.
    Removed(Uuid),
}

/// Follows `chat_id` for `user_id`: the messages after `after_seq` (or only new ones when `None`),
/// then everything live. The stream ends with an error if the user leaves the chat or reads too
/// slowly to keep up (subscribe again from the last seq received).
pub async fn follow_chat(
    ctx: &AppContext,
    user_id: Uuid,
    chat_id: Uuid,
    after_seq: Option<i64>,
) -> ApiResult<impl Stream<Item = ApiResult<Update>> + use<>> {
    let chat = find(&ctx.db, chat_id).await?;
    require_participant(&ctx.db, chat_id, user_id).await?;
    if let Some(seq) = after_seq
        && (seq < 0 || seq > chat.last_seq)
    {
        return Err(ApiError::new(ErrorCode::InvalidSeq, format!("afterSeq must be between 0 and {}", chat.last_seq)));
    }

    let (registration, inbox) = Registration::new(ctx, user_id).await?;
    let db = ctx.db.clone();
    super::arrivals::follow(&db, &registration.hub, registration.conn, chat_id).await?;
    // Without afterSeq the subscription starts where the chat was before following, not after: a
    // message stored while it was being set up reaches the hub before the stream reads its start,
    // and was skipped as older. Now it comes from the backlog read below, or live.
    let mut last = after_seq.unwrap_or(chat.last_seq);

    Ok(async_stream::stream! {
        let _registration = registration;
        // The first pass reads the whole backlog; later passes fill a gap before a held message.
        let mut until = i64::MAX;
        let mut held: Option<MessageDto> = None;
        loop {
            while last < until {
                let page = match messages::after(&db, chat_id, last, BACKLOG_PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                let full = page.len() as u64 == BACKLOG_PAGE;
                for message in page.into_iter().filter(|m| m.seq <= until) {
                    last = message.seq;
                    yield Ok(Update::Message(message));
                }
                if !full {
                    break;
                }
            }
            if let Some(message) = held.take() {
                last = message.seq;
                yield Ok(Update::Message(message));
            }
            until = last;
            let Ok(delivery) = inbox.recv_async().await else {
                yield Err(fell_behind("subscribe again with afterSeq set to the last seq received"));
                return;
            };
            match delivery {
                Delivery::Frame(fanout) if fanout.seq.is_some() => {
                    let ServerFrame::NewMessage { message } = &fanout.frame else { continue };
                    let seq = message.seq;
                    if seq <= last {
                        continue;
                    }
                    if seq > last + 1 {
                        // Never skip: what is missing before `seq` comes from the database first.
                        until = seq - 1;
                        held = Some(message.clone());
                        continue;
                    }
                    last = seq;
                    yield Ok(Update::Message(message.clone()));
                }
                // The user's own events of their other chats (a big group's read) are not this chat's.
                Delivery::Frame(fanout) if fanout.from == Some(user_id) || fanout.chat_id != chat_id => {}
                Delivery::Frame(fanout) => {
                    // A change that overtook its message: the message is read (as it is now)
                    // first; a subscriber to changes hears of it all the same.
                    if let ServerFrame::MessageUpdated { message } = &fanout.frame
                        && message.seq > last
                    {
                        until = message.seq;
                    }
                    yield Ok(Update::Event(fanout));
                }
                Delivery::Left(left) if left == chat_id => {
                    yield Err(super::forbidden());
                    return;
                }
                // Ended sessions end subscriptions where their tokens are known (graphql's `until_token_expires`).
                Delivery::Joined(_) | Delivery::Left(_) | Delivery::SessionsEnded(_) => {}
            }
        }
    })
}

/// The chats `user_id` is added to (or creates) and leaves or is removed from while the stream
/// lasts, each added one as [`chats::get`] shows it to them. The registration follows no chat: the
/// hub hands it the user's membership changes. The stream ends with an error if the subscriber
/// reads too slowly to keep up.
pub async fn follow_membership(
    ctx: &AppContext,
    user_id: Uuid,
) -> ApiResult<impl Stream<Item = ApiResult<Membership>> + use<>> {
    let (registration, inbox) = Registration::new(ctx, user_id).await?;
    let ctx = ctx.clone();
    Ok(async_stream::stream! {
        let _registration = registration;
        while let Ok(delivery) = inbox.recv_async().await {
            match delivery {
                Delivery::Joined(chat_id) => match chats::get(&ctx, user_id, chat_id).await {
                    Ok(chat) => yield Ok(Membership::Added(Box::new(chat))),
                    // Removed again before the chat could be read: its `Left` follows.
                    Err(e) if matches!(e.code(), ErrorCode::Forbidden | ErrorCode::NotFound) => {}
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                },
                Delivery::Left(chat_id) => yield Ok(Membership::Removed(chat_id)),
                // The user's reads in big groups, for their registrations that follow those chats.
                Delivery::Frame(_) | Delivery::SessionsEnded(_) => {}
            }
        }
        yield Err(fell_behind("subscribe again, then read the chats"));
    })
}

/// Ends a stream whose queue overflowed (the hub cut it off), saying how to pick up again.
fn fell_behind(how_to_resume: &str) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("the subscriber fell behind: {how_to_resume}"))
}

/// A subscriber's place in the hub, left when the subscriber goes away (the stream is dropped).
struct Registration {
    hub: Arc<Hub>,
    conn: ConnId,
}

impl Registration {
    /// Registers a subscriber of `user_id` with the hub, and its queue of deliveries.
    async fn new(ctx: &AppContext, user_id: Uuid) -> ApiResult<(Self, DeliveryReceiver)> {
        let (tx, inbox) = delivery_queue(ctx.config.ws_outbound_queue);
        let hub = Arc::clone(&ctx.hub);
        let conn = hub.register(user_id, tx, ctx.config.max_connections_per_user).await?;
        Ok((Self { hub, conn }, inbox))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let (hub, conn) = (Arc::clone(&self.hub), self.conn);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { hub.unregister(conn).await });
        }
    }
}
