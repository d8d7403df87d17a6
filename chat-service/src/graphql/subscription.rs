use async_graphql::{
    Context, Enum, ErrorExtensions, Result, ResultExt, SimpleObject, Subscription as SubscriptionRoot, Union,
};
use converge_shared::api_error::ApiResult;
use converge_shared::dto::{ChatDto, MessageDto, Role};
use converge_shared::protocol::ServerFrame;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use super::{app, caller, until_token_expires};
use crate::service::live::{self, Membership, Update};

pub struct Subscription;

/// Someone started or stopped typing.
#[derive(SimpleObject, Clone)]
pub struct TypingEvent {
    pub chat_id: Uuid,
    pub user_id: Uuid,
    pub typing: bool,
}

#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum ReceiptKind {
    /// Every participant has received everything up to `seq` (`userId` is null).
    Delivered,
    /// `userId` has read everything up to `seq`.
    Read,
}

/// A watermark moved: one participant's read watermark, or the chat's delivered-to-all one.
#[derive(SimpleObject, Clone)]
pub struct Receipt {
    pub chat_id: Uuid,
    pub user_id: Option<Uuid>,
    pub seq: i64,
    pub kind: ReceiptKind,
}

/// A change to a chat other than its messages, receipts and typing.
#[derive(Union, Clone)]
pub enum ChatEvent {
    ChatRenamed(ChatRenamed),
    ParticipantJoined(ParticipantJoined),
    ParticipantLeft(ParticipantLeft),
    ParticipantRoleChanged(ParticipantRoleChanged),
    ParticipantUpdated(ParticipantUpdated),
    PresenceChanged(PresenceChanged),
}

/// The group was renamed.
#[derive(SimpleObject, Clone)]
pub struct ChatRenamed {
    pub chat_id: Uuid,
    pub title: String,
}

/// `userId` was added to the group.
#[derive(SimpleObject, Clone)]
pub struct ParticipantJoined {
    pub chat_id: Uuid,
    pub user_id: Uuid,
}

/// `userId` left or was removed from the group.
#[derive(SimpleObject, Clone)]
pub struct ParticipantLeft {
    pub chat_id: Uuid,
    pub user_id: Uuid,
}

/// `userId`'s role changed: set by the owner, a hand-over, or inherited when the owner left.
#[derive(SimpleObject, Clone)]
pub struct ParticipantRoleChanged {
    pub chat_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
}

/// `userId` has a new display name or picture (`avatarUrl` null: no picture).
#[derive(SimpleObject, Clone)]
pub struct ParticipantUpdated {
    pub chat_id: Uuid,
    pub user_id: Uuid,
    pub display_name: String,
    pub avatar_url: Option<String>,
}

/// `userId` came online (their first connection) or went offline (their last one closed).
#[derive(SimpleObject, Clone)]
pub struct PresenceChanged {
    pub chat_id: Uuid,
    pub user_id: Uuid,
    pub online: bool,
}

impl ChatEvent {
    /// The event a frame of the chat's live stream reports, if it is one of these.
    fn of(frame: &ServerFrame) -> Option<Self> {
        Some(match *frame {
            ServerFrame::ConversationUpdated { chat_id, ref title } => {
                Self::ChatRenamed(ChatRenamed { chat_id, title: title.clone() })
            }
            ServerFrame::ParticipantJoined { chat_id, user_id } => {
                Self::ParticipantJoined(ParticipantJoined { chat_id, user_id })
            }
            ServerFrame::ParticipantLeft { chat_id, user_id } => {
                Self::ParticipantLeft(ParticipantLeft { chat_id, user_id })
            }
            ServerFrame::ParticipantRoleChanged { chat_id, user_id, role } => {
                Self::ParticipantRoleChanged(ParticipantRoleChanged { chat_id, user_id, role })
            }
            ServerFrame::ParticipantUpdated { chat_id, user_id, ref display_name, ref avatar_url } => {
                let (display_name, avatar_url) = (display_name.clone(), avatar_url.clone());
                Self::ParticipantUpdated(ParticipantUpdated { chat_id, user_id, display_name, avatar_url })
            }
            ServerFrame::Presence { chat_id, user_id, online } => {
                Self::PresenceChanged(PresenceChanged { chat_id, user_id, online })
            }
            _ => return None,
        })
    }
}

/// A chat you were added to or removed from.
#[derive(Union, Clone)]
pub enum MyChatsEvent {
    ChatAdded(ChatAdded),
    ChatRemoved(ChatRemoved),
}

/// You were added to a chat, or created one: the chat as `chat` returns it.
#[derive(SimpleObject, Clone)]
pub struct ChatAdded {
    pub chat: Box<ChatDto>,
}

/// You left or were removed from a chat: no more of its events.
#[derive(SimpleObject, Clone)]
pub struct ChatRemoved {
    pub chat_id: Uuid,
}

#[SubscriptionRoot]
impl Subscription {
    /// Every message of a chat in seq order, without gaps or duplicates: first the stored ones after
    /// `afterSeq` (none when omitted), then new ones as they are stored. To resume after a
    /// disconnect, subscribe again with the last seq received.
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
        after_seq: Option<i64>,
    ) -> Result<impl Stream<Item = Result<MessageDto>> + use<>> {
        let updates = live::follow_chat(app(ctx), caller(ctx)?.user_id, chat_id, after_seq).await.extend()?;
        let messages = updates.filter_map(|update| async move {
            match update {
                Ok(Update::Message(message)) => Some(Ok(message)),
                Ok(Update::Event(_)) => None,
                Err(e) => Some(Err(e.extend())),
            }
        });
        Ok(until_token_expires(ctx, messages))
    }

    /// The chat's messages as they are edited or deleted, each as it is now (`editSeq` orders two
    /// copies of one message).
    async fn message_updated(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
    ) -> Result<impl Stream<Item = Result<MessageDto>> + use<>> {
        let updates = live::follow_chat(app(ctx), caller(ctx)?.user_id, chat_id, None).await.extend()?;
        let changed = events(updates, |frame| match frame {
            ServerFrame::MessageUpdated { message } => Some(message.clone()),
            _ => None,
        });
        Ok(until_token_expires(ctx, changed))
    }

    /// Other participants starting and stopping to type (typing stops by itself after a few seconds).
    async fn typing(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
    ) -> Result<impl Stream<Item = Result<TypingEvent>> + use<>> {
        let updates = live::follow_chat(app(ctx), caller(ctx)?.user_id, chat_id, None).await.extend()?;
        let typing = events(updates, |frame| match *frame {
            ServerFrame::UserTyping { chat_id, user_id, typing } => Some(TypingEvent { chat_id, user_id, typing }),
            _ => None,
        });
        Ok(until_token_expires(ctx, typing))
    }

    /// Read receipts of a chat's participants (in a group of more than
    /// `READ_RECEIPTS_MAX_CHAT_MEMBERS`, only your own); with `includeDelivered`, delivery receipts too.
    async fn read_receipts(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
        #[graphql(default = false)] include_delivered: bool,
    ) -> Result<impl Stream<Item = Result<Receipt>> + use<>> {
        let updates = live::follow_chat(app(ctx), caller(ctx)?.user_id, chat_id, None).await.extend()?;
        let receipts = events(updates, move |frame| match *frame {
            ServerFrame::MessagesRead { chat_id, user_id, seq } => {
                Some(Receipt { chat_id, user_id: Some(user_id), seq, kind: ReceiptKind::Read })
            }
            ServerFrame::MessagesDelivered { chat_id, seq } if include_delivered => {
                Some(Receipt { chat_id, user_id: None, seq, kind: ReceiptKind::Delivered })
            }
            _ => None,
        });
        Ok(until_token_expires(ctx, receipts))
    }

    /// The chat's other changes: renamed, members added, leaving or removed, roles, members' names
    /// and pictures, and members coming online or going offline (in chats of at most
    /// `PRESENCE_MAX_CHAT_MEMBERS`). Ends with `forbidden` once you leave or are removed.
    async fn chat_events(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
    ) -> Result<impl Stream<Item = Result<ChatEvent>> + use<>> {
        let updates = live::follow_chat(app(ctx), caller(ctx)?.user_id, chat_id, None).await.extend()?;
        Ok(until_token_expires(ctx, events(updates, ChatEvent::of)))
    }

    /// The chats you are added to (or create) and leave or are removed from, from now on.
    async fn my_chats(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = Result<MyChatsEvent>> + use<>> {
        let changes = live::follow_membership(app(ctx), caller(ctx)?.user_id).await.extend()?;
        let events = changes.map(|change| match change {
            Ok(Membership::Added(chat)) => Ok(MyChatsEvent::ChatAdded(ChatAdded { chat })),
            Ok(Membership::Removed(chat_id)) => Ok(MyChatsEvent::ChatRemoved(ChatRemoved { chat_id })),
            Err(e) => Err(e.extend()),
        });
        Ok(until_token_expires(ctx, events))
    }
}

/// The events of a chat's live stream that `pick` recognizes (messages are left out), and its end.
fn events<T>(
    updates: impl Stream<Item = ApiResult<Update>>,
    pick: impl Fn(&ServerFrame) -> Option<T> + Clone,
) -> impl Stream<Item = Result<T>> {
    updates.filter_map(move |update| {
        let pick = pick.clone();
        async move {
            match update {
                Ok(Update::Event(fanout)) => pick(&fanout.frame).map(Ok),
                Ok(Update::Message(_)) => None,
                Err(e) => Some(Err(e.extend())),
            }
        }
    })
}
