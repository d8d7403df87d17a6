//! How chat events travel between chat-service instances.
//!
//! Everything that happens in a chat is published on a [`Topic`]; every instance subscribes to the
//! topics its connected clients care about, and hands what it receives to its [`crate::hub::Hub`].
//! The embedded default uses [`local::LocalRelay`] (one process); the scaled deployment uses Redis
//! pub/sub behind the same trait.

pub mod local;
pub mod redis;

use std::sync::Arc;

use converge_shared::dto::{MessageDto, Role};
use converge_shared::sessions::{EndedSessions, SessionsEnded};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// Where an event is published: a chat's events go to its members; membership changes also go to
/// the user concerned, who may not be subscribed to the chat yet. `SessionsEnded` is user-service's
/// (every instance hears it, and no instance publishes on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Chat(Uuid),
    User(Uuid),
    SessionsEnded,
}

/// Something that happened, as relayed between instances.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ChatEvent {
    /// A message is durably stored with this seq.
    Message(MessageDto),
    /// A stored message was edited or deleted: this is it now.
    Updated(MessageDto),
    Read {
        chat_id: Uuid,
        user_id: Uuid,
        seq: i64,
    },
    /// Every participant has received everything up to `seq`.
    Delivered {
        chat_id: Uuid,
        seq: i64,
    },
    Typing {
        chat_id: Uuid,
        user_id: Uuid,
        typing: bool,
    },
    /// `user_id` became a participant of `chat_id` (including by creating it).
    Joined {
        chat_id: Uuid,
        user_id: Uuid,
    },
    /// `user_id` is no longer a participant of `chat_id`.
    Left {
        chat_id: Uuid,
        user_id: Uuid,
    },
    /// A group has a new title.
    Renamed {
        chat_id: Uuid,
        title: String,
    },
    /// `user_id`'s role in the group `chat_id` is now `role`.
    RoleChanged {
        chat_id: Uuid,
        user_id: Uuid,
        role: Role,
    },
    /// `user_id`, a participant of `chat_id`, has a new display name or picture.
    ProfileChanged {
        chat_id: Uuid,
        user_id: Uuid,
        display_name: String,
        avatar_url: Option<String>,
    },
    /// `user_id` came online (first connection anywhere) or went offline (last one closed, or its
    /// instance died), told to each of their chats.
    Presence {
        chat_id: Uuid,
        user_id: Uuid,
        online: bool,
    },
    /// Sessions of `user_id` ended at user-service ([`converge_shared::sessions`]): their
    /// connections close. Handed to the hub by whatever heard it; never published by an instance.
    SessionsEnded {
        user_id: Uuid,
        sessions: Vec<Uuid>,
    },
}

/// Hands ended sessions to the hub and to the authenticator's list, as they are heard.
#[derive(Clone)]
pub struct SessionsHeard {
    pub ended: Arc<EndedSessions>,
    pub inbound: Inbound,
}

impl SessionsHeard {
    pub async fn heard(&self, event: SessionsEnded) {
        // Refused from now on, before the connections hear of it: a request made meanwhile with
        // such a token cannot get through.
        self.ended.record(&event);
        metrics::counter!("sessions_ended_heard_total").increment(event.sessions.len() as u64);
        let SessionsEnded { user_id, sessions, .. } = event;
        let _ = self.inbound.send((Topic::User(user_id), ChatEvent::SessionsEnded { user_id, sessions })).await;
    }

    /// Listens on this process's bus: the embedded default's user-service announces there.
    pub fn listen_in_process(self) {
        let mut bus = converge_shared::sessions::local_bus().subscribe();
        tokio::spawn(async move {
            loop {
                match bus.recv().await {
                    Ok(event) => self.heard(event).await,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "ended sessions missed on the in-process bus");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}

/// Received events are handed to the hub through this channel.
pub type Inbound = mpsc::Sender<(Topic, ChatEvent)>;

/// What runs once published events are on their way: a batch's sends are answered.
pub type Sent = Box<dyn FnOnce() + Send>;

/// Publishes and subscribes chat events. Publishing is at most once: a subscriber that misses an
/// event catches up from the database by seq, so the relay never needs to be reliable.
#[async_trait::async_trait]
pub trait Relay: Send + Sync + 'static {
    async fn publish(&self, topic: Topic, event: &ChatEvent) -> anyhow::Result<()>;
    /// Publishes several events in order; over Redis in one round trip.
    async fn publish_many(&self, events: &[(Topic, ChatEvent)]) -> anyhow::Result<()> {
        for (topic, event) in events {
            self.publish(*topic, event).await?;
        }
        Ok(())
    }
    /// Publishes as [`Relay::publish_many`] does, and runs `sent` (taking it) as soon as the events
    /// are on their way to the other instances — over Redis, once the `PUBLISH` pipeline is
    /// written — before this instance's own followers are handed them and before Redis answers.
    /// If the publish fails before that, `sent` is left for the caller to run.
    async fn publish_many_then(&self, events: &[(Topic, ChatEvent)], sent: &mut Option<Sent>) -> anyhow::Result<()> {
        // One instance: nothing to wait for before handing the events to its own followers.
        if let Some(sent) = sent.take() {
            sent();
        }
        self.publish_many(events).await
    }
    /// Starts receiving a topic's events. Calls are counted: a topic stays subscribed until
    /// unsubscribed as often as subscribed.
    async fn subscribe(&self, topic: Topic) -> anyhow::Result<()>;
    async fn unsubscribe(&self, topic: Topic) -> anyhow::Result<()>;
    /// `up` when events flow, for `/ready`.
    fn status(&self) -> &'static str;
}
