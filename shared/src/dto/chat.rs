use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

/// `direct` (two people, one chat per pair) or `group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    Direct,
    Group,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Direct => "direct",
            ChatKind::Group => "group",
        }
    }

    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "direct" => Some(ChatKind::Direct),
            "group" => Some(ChatKind::Group),
            _ => None,
        }
    }
}

/// A participant's role: owners and admins manage a group's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(role: &str) -> Self {
        match role {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            _ => Role::Member,
        }
    }

    pub fn manages_members(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// A message as every client sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Message"))]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    pub id: Uuid,
    pub chat_id: Uuid,
    /// Position in the chat: 1, 2, 3… with no gaps.
    pub seq: i64,
    pub sender_id: Uuid,
    pub client_msg_id: String,
    pub content: String,
    /// The image the message carries, if any (its caption is `content`).
    // Boxed: most messages have none, and every message is moved through the hot path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Box<ImageDto>>,
    /// The seq of the message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// When its content was last changed by its sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
    /// When it was deleted: `content` is then empty and `image` absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    /// The chat's edit count at this message's latest edit or deletion: of two copies of a
    /// message, the one with the higher `editSeq` is the newer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_seq: Option<i64>,
    /// Its reactions, in the order they were first given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionDto>,
}

/// One emoji on a message and who reacted with it (in the order they did).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Reaction"))]
#[serde(rename_all = "camelCase")]
pub struct ReactionDto {
    pub emoji: String,
    pub user_ids: Vec<Uuid>,
}

/// An image in a message. Its URLs are paths on chat-service, fetched with the same bearer token
/// as the rest of the API by any participant of a chat whose messages carry it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Image"))]
#[serde(rename_all = "camelCase")]
pub struct ImageDto {
    /// The attachment's id (what `send_message` took as `attachmentId`).
    pub id: Uuid,
    /// The image, its metadata (location, camera) removed.
    pub url: String,
    /// The image scaled down to fit 320 × 320 pixels (never up).
    pub thumbnail_url: String,
    /// Size in pixels, so a client can lay the message out before the image arrives.
    pub width: i32,
    pub height: i32,
}

impl ImageDto {
    /// Longest side of a thumbnail, in pixels.
    pub const THUMBNAIL_MAX: u32 = 320;

    pub fn new(id: Uuid, width: i32, height: i32) -> Self {
        Self {
            id,
            url: format!("/attachments/{id}"),
            thumbnail_url: format!("/attachments/{id}/thumbnail"),
            width,
            height,
        }
    }
}

/// `POST /attachments`: an uploaded image, ready to be sent in a message by its uploader.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentDto {
    pub id: Uuid,
    /// What the image is stored as: `image/png`, `image/jpeg` or `image/gif` (a WebP is stored as
    /// PNG or JPEG).
    pub content_type: String,
    pub bytes: i64,
    pub width: i32,
    pub height: i32,
    pub url: String,
    pub thumbnail_url: String,
    pub created_at: DateTime<Utc>,
}

/// A member of a chat and how far they have received and read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Participant"))]
#[serde(rename_all = "camelCase")]
pub struct ParticipantDto {
    pub user_id: Uuid,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    pub role: Role,
    pub last_delivered_seq: i64,
    pub last_read_seq: i64,
}

/// A chat as one of its participants sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Chat"))]
#[serde(rename_all = "camelCase")]
pub struct ChatDto {
    pub id: Uuid,
    pub kind: ChatKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    /// The seq of the newest message (0 when there is none).
    pub last_seq: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<MessageDto>,
    /// `lastSeq − lastReadSeq` of the viewer.
    pub unread_count: i64,
    /// How many edits and deletions the chat's messages have had (each message's `editSeq` is one
    /// of these): where to resume the chat's changes from (`editsAfter`).
    #[serde(default)]
    pub last_edit_seq: i64,
    pub participants: Vec<ParticipantDto>,
}

/// `POST /chats`: a direct chat names exactly one other user; a group has a title.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[cfg_attr(feature = "graphql", derive(async_graphql::InputObject), graphql(name = "CreateChatInput"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateChatRequest {
    pub kind: ChatKind,
    #[validate(length(min = 1, max = 128, message = "must be 1 to 128 characters"))]
    pub title: Option<String>,
    /// The other participants (the creator is added as owner).
    #[validate(length(min = 1, max = 999, message = "must name 1 to 999 users"))]
    pub participant_ids: Vec<Uuid>,
}

/// `POST /chats/{id}/messages` (and the WebSocket's `send_message`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::InputObject), graphql(name = "SendMessageInput"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessageRequest {
    /// The client's id for this message: retries with the same id return the original.
    pub client_msg_id: String,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<i64>,
}

/// `PATCH /chats/{id}/messages/{seq}` (and the WebSocket's `edit_message`): the new content.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditMessageRequest {
    pub content: String,
    /// The content this edit replaces, as the editor last saw it. If the message no longer reads
    /// so (it was edited meanwhile, on another device say), the edit is refused with
    /// `edit_conflict` instead of undoing that change. Without it the edit applies whatever the
    /// message reads. An edit whose `content` the message already has succeeds either way, so a
    /// retry of an edit that was applied is answered like the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// `PATCH /chats/{id}`: a group's new title (trimmed; 1 to 128 characters).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenameChatRequest {
    pub title: String,
}

/// `PUT /chats/{id}/participants/{userId}/role`: the participant's new role (`owner` hands the
/// group over: the caller becomes an admin).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRoleRequest {
    pub role: Role,
}

/// `POST /chats/{id}/read`: everything up to `seq` is read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MarkReadRequest {
    pub seq: i64,
}

/// `POST /chats/{id}/participants`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddParticipantsRequest {
    #[validate(length(min = 1, max = 999, message = "must name 1 to 999 users"))]
    pub user_ids: Vec<Uuid>,
}

/// Query of `GET /chats/{id}/messages`: `after` pages forward, `before` backward (newest first
/// page when neither is given); results are always in ascending seq.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams, Validate)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    #[validate(range(min = 0, message = "must not be negative"))]
    pub before: Option<i64>,
    #[validate(range(min = 0, message = "must not be negative"))]
    pub after: Option<i64>,
    /// 1 to 200, default 50.
    #[validate(range(min = 1, max = 200, message = "must be between 1 and 200"))]
    pub limit: Option<u64>,
}

/// Query of `GET /messages/search`: the messages of my chats (or of one) whose text contains `q`,
/// newest first; `before` (a message id from the previous page) pages back.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams, Validate)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// 2 to 100 characters (after trimming), matched anywhere in the text, ignoring case.
    pub q: String,
    /// Only this chat's messages.
    pub chat_id: Option<Uuid>,
    /// Only messages older than this one (the last of the previous page).
    pub before: Option<Uuid>,
    /// 1 to 50, default 20.
    #[validate(range(min = 1, max = 50, message = "must be between 1 and 50"))]
    pub limit: Option<u64>,
}

/// Messages found, newest first; `hasMore`: older ones match too (ask with `before`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "SearchResults"))]
#[serde(rename_all = "camelCase")]
pub struct SearchResults {
    pub messages: Vec<MessageDto>,
    pub has_more: bool,
}

/// A page of messages in ascending seq; `hasMore` says whether more exist in the paging direction.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    pub messages: Vec<MessageDto>,
    pub has_more: bool,
}

/// The last seq a client saw in each chat.
pub type ResumePoints = BTreeMap<Uuid, i64>;
