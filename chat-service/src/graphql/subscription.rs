use async_graphql::{
    Context, Enum, ErrorExtensions, Result, ResultExt, SimpleObject, Subscription as SubscriptionRoot,
};
use converge_shared::api_error::ApiResult;
use converge_shared::dto::MessageDto;
use converge_shared::protocol::ServerFrame;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use super::{app, caller, until_token_expires};
use crate::service::live::{self, Update};

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
