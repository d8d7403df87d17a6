use async_graphql::{Context, Object, Result, ResultExt};
use converge_shared::dto::{ChatDto, CreateChatRequest, EditMessageRequest, MessageDto, Role, SendMessageRequest};
use uuid::Uuid;

use super::{app, caller};
use crate::service::{chats, edits, messages};

pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates a group, or a direct chat (returning the existing one if the pair already has one).
    /// Chats made and members added count against your `CHAT_INVITES_PER_MINUTE`; beyond it the
    /// error's code is `rate_limited` and its `retryAfter` the seconds to wait.
    async fn create_chat(&self, ctx: &Context<'_>, input: CreateChatRequest) -> Result<ChatDto> {
        Ok(chats::create(app(ctx), caller(ctx)?, input).await.extend()?.0)
    }

    /// Stores a message and returns it with its seq once committed. A retry with the same
    /// `clientMsgId` returns the original message. Sends, edits, deletions and reactions count
    /// against your `USER_WRITES_PER_SECOND`; beyond it the error's code is `rate_limited` and its
    /// `retryAfter` the seconds to wait.
    async fn send_message(&self, ctx: &Context<'_>, chat_id: Uuid, input: SendMessageRequest) -> Result<MessageDto> {
        messages::send(app(ctx), caller(ctx)?.user_id, chat_id, input).await.extend()
    }

    /// Replaces the content of one of your messages; returns it as it is now. With `replaces` (the
    /// content you last saw), it is refused with `edit_conflict` if the message was changed
    /// meanwhile, rather than undo that change. Rate limited like `sendMessage`.
    async fn edit_message(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
        seq: i64,
        content: String,
        replaces: Option<String>,
    ) -> Result<MessageDto> {
        let request = EditMessageRequest { content, replaces };
        edits::edit(app(ctx), caller(ctx)?.user_id, chat_id, seq, request).await.extend()
    }

    /// Deletes a message (yours, or any in a group you own or administer); returns what is left of it.
    /// Rate limited like `sendMessage`.
    async fn delete_message(&self, ctx: &Context<'_>, chat_id: Uuid, seq: i64) -> Result<MessageDto> {
        edits::delete(app(ctx), caller(ctx)?.user_id, chat_id, seq).await.extend()
    }

    /// Adds your reaction `emoji` to a message; returns it as it is now. Rate limited like
    /// `sendMessage`.
    async fn add_reaction(&self, ctx: &Context<'_>, chat_id: Uuid, seq: i64, emoji: String) -> Result<MessageDto> {
        edits::react(app(ctx), caller(ctx)?.user_id, chat_id, seq, &emoji, true).await.extend()
    }

    /// Takes your reaction `emoji` back; returns the message as it is now. Rate limited like
    /// `sendMessage`.
    async fn remove_reaction(&self, ctx: &Context<'_>, chat_id: Uuid, seq: i64, emoji: String) -> Result<MessageDto> {
        edits::react(app(ctx), caller(ctx)?.user_id, chat_id, seq, &emoji, false).await.extend()
    }

    /// Marks everything up to `seq` as read (the watermark never moves back).
    async fn mark_as_read(&self, ctx: &Context<'_>, chat_id: Uuid, seq: i64) -> Result<bool> {
        messages::mark_read(app(ctx), caller(ctx)?.user_id, chat_id, seq).await.extend()?;
        Ok(true)
    }

    /// Renames a group (owners and admins).
    async fn rename_chat(&self, ctx: &Context<'_>, chat_id: Uuid, title: String) -> Result<ChatDto> {
        chats::rename(app(ctx), caller(ctx)?, chat_id, &title).await.extend()
    }

    /// Sets a member's role (the group's owner only); `OWNER` hands the group over and makes you an admin.
    async fn set_participant_role(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
        user_id: Uuid,
        role: Role,
    ) -> Result<ChatDto> {
        chats::set_role(app(ctx), caller(ctx)?, chat_id, user_id, role).await.extend()
    }

    /// Adds users to a group (owners and admins). Rate limited like `createChat`.
    async fn add_participants(&self, ctx: &Context<'_>, chat_id: Uuid, user_ids: Vec<Uuid>) -> Result<ChatDto> {
        chats::add_participants(app(ctx), caller(ctx)?, chat_id, user_ids).await.extend()
    }

    /// Removes a user from a group (owners and admins; anyone may remove themselves).
    async fn remove_participant(&self, ctx: &Context<'_>, chat_id: Uuid, user_id: Uuid) -> Result<bool> {
        chats::remove_participant(app(ctx), caller(ctx)?, chat_id, user_id).await.extend()?;
        Ok(true)
    }

    /// Leaves a group.
    async fn leave_chat(&self, ctx: &Context<'_>, chat_id: Uuid) -> Result<bool> {
        let caller = caller(ctx)?;
        chats::remove_participant(app(ctx), caller, chat_id, caller.user_id).await.extend()?;
        Ok(true)
    }
}
