//! The WebSocket protocol of chat-service (`/ws`): one JSON object per text frame, tagged by `type`.
//! docs/protocol.md is the prose version of this file.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::dto::{ChatDto, MessageDto, ResumePoints, Role};
use crate::error::{ErrorCode, FieldErrors};

/// What a client sends. `req` is any JSON value the client picks; the answer to that frame (`ack`,
/// `error`, `pong`, `resumed`, `authenticated`) carries it back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum ClientFrame {
    /// The first frame: the access token, and optionally where to resume each chat. On an open
    /// connection, a fresh token for the same user, before the current one expires (answered by
    /// `authenticated`, or an `error` that leaves the current token in force).
    Auth {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<ResumePoints>,
        /// Per chat, the `editSeq` up to which the client has every edit and deletion: the later
        /// ones are sent as `message_updated`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edits_after: Option<ResumePoints>,
    },
    SendMessage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        chat_id: Uuid,
        client_msg_id: String,
        #[serde(default)]
        content: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachment_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<i64>,
    },
    /// Replaces the content of one of the user's messages (answered by `ack` with the message).
    EditMessage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        chat_id: Uuid,
        seq: i64,
        content: String,
        /// The content the edit replaces: refused with `edit_conflict` if the message reads
        /// otherwise (see [`crate::dto::EditMessageRequest::replaces`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<String>,
    },
    /// Deletes a message: the user's own, or any in a group they own or administer (answered by
    /// `ack` with what is left of it).
    DeleteMessage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        chat_id: Uuid,
        seq: i64,
    },
    /// Adds the user's reaction `emoji` to a message (answered by `ack` with the message).
    AddReaction {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        chat_id: Uuid,
        seq: i64,
        emoji: String,
    },
    /// Takes the user's reaction `emoji` back (answered by `ack` with the message).
    RemoveReaction {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        chat_id: Uuid,
        seq: i64,
        emoji: String,
    },
    MarkAsRead {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        chat_id: Uuid,
        seq: i64,
    },
    TypingStart {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        chat_id: Uuid,
    },
    TypingStop {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        chat_id: Uuid,
    },
    /// Sends every message after each chat's seq, in order, and the changes after each chat's
    /// `editsAfter`, then continues live.
    Resume {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        #[serde(default)]
        chats: ResumePoints,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edits_after: Option<ResumePoints>,
    },
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
    },
}

/// The `type` values a client may send.
pub const CLIENT_FRAME_TYPES: &[&str] = &[
    "auth",
    "send_message",
    "edit_message",
    "delete_message",
    "add_reaction",
    "remove_reaction",
    "mark_as_read",
    "typing_start",
    "typing_stop",
    "resume",
    "ping",
];

/// The signed-in user, as `ready` announces them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReadyUser {
    pub id: Uuid,
    pub display_name: String,
}

/// What the server sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum ServerFrame {
    /// Authenticated: the user and their chats (with `lastSeq` and unread counts).
    Ready {
        user: ReadyUser,
        chats: Vec<ChatDto>,
        /// The participants of these chats (other than the user) who are online right now; later
        /// changes arrive as `presence` frames.
        #[serde(default)]
        online: Vec<Uuid>,
        /// In chats of more participants, other members' reads are not sent (`messages_read`
        /// carries only the user's own): a client shows no read count there.
        #[serde(default)]
        read_receipts_max_chat_members: Option<usize>,
        /// When the connection's token stops being accepted: unless an `auth` frame brings a fresh
        /// one before, the connection is closed then (4001).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_expires_at: Option<DateTime<Utc>>,
    },
    /// An `auth` frame on an open connection was accepted: its token now holds the connection.
    Authenticated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        token_expires_at: DateTime<Utc>,
    },
    /// The message of a `send_message` is stored: it has its seq. For `edit_message` and
    /// `delete_message`: the change is stored, and this is the message now.
    Ack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        message: MessageDto,
    },
    /// A frame was refused; the connection stays usable.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        code: ErrorCode,
        message: String,
        /// With `validation_failed`: each refused field (camelCase) and why, as REST gives them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fields: Option<FieldErrors>,
        /// With `rate_limited`: the seconds to wait before trying again (REST's `Retry-After`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    NewMessage {
        message: MessageDto,
    },
    /// A message of a chat was edited or deleted: this is it now (`editSeq` orders the copies).
    MessageUpdated {
        message: MessageDto,
    },
    /// `userId` has read everything up to `seq` in `chatId`.
    MessagesRead {
        chat_id: Uuid,
        user_id: Uuid,
        seq: i64,
    },
    /// Every participant of `chatId` has received (or read) everything up to `seq`: a message of
    /// yours with a seq up to it is delivered to all. One event per chat, not per member, so a
    /// large group's receipts cost what its messages cost.
    MessagesDelivered {
        chat_id: Uuid,
        seq: i64,
    },
    UserTyping {
        chat_id: Uuid,
        user_id: Uuid,
        typing: bool,
    },
    /// The user was added to a chat (or created one), with its other participants who are online
    /// now (as `ready` has them for the chats known at connection time).
    ConversationCreated {
        chat: ChatDto,
        #[serde(default)]
        online: Vec<Uuid>,
    },
    /// `userId`, a participant of `chatId`, came online (their first connection, on any instance)
    /// or went offline (their last one closed, or its instance died and its entry expired). Sent
    /// once per chat you share with them; never to `userId`'s own connections.
    Presence {
        chat_id: Uuid,
        user_id: Uuid,
        online: bool,
    },
    /// `userId` was added to a group this user is in (a `conversation_created` goes to them).
    ParticipantJoined {
        chat_id: Uuid,
        user_id: Uuid,
    },
    /// `userId` left or was removed from a group this user is in.
    ParticipantLeft {
        chat_id: Uuid,
        user_id: Uuid,
    },
    /// A group was renamed.
    ConversationUpdated {
        chat_id: Uuid,
        title: String,
    },
    /// `userId`'s role in a group changed (set by the owner, a hand-over, or inherited when the
    /// owner left).
    ParticipantRoleChanged {
        chat_id: Uuid,
        user_id: Uuid,
        role: Role,
    },
    /// `userId`, a participant of `chatId`, has a new display name or picture (their own
    /// connections are told too). Sent once per chat of theirs; `avatarUrl` null: no picture.
    ParticipantUpdated {
        chat_id: Uuid,
        user_id: Uuid,
        display_name: String,
        avatar_url: Option<String>,
    },
    /// The user left or was removed from a chat: no more of its events.
    ConversationLeft {
        chat_id: Uuid,
    },
    /// A `resume` (or the auth frame's resume) has been served up to these seqs, and the changes
    /// asked for up to these `edits`; live events follow.
    Resumed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
        chats: ResumePoints,
        #[serde(default, skip_serializing_if = "ResumePoints::is_empty")]
        edits: ResumePoints,
    },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<Value>,
    },
}

/// WebSocket close codes chat-service uses, and why.
pub mod close_code {
    /// The server is shutting down or restarting: reconnect (to another instance) and resume.
    pub const SERVICE_RESTART: u16 = 1012;
    /// A frame larger than the hard limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Frames that break the WebSocket protocol itself (bad opcode, continuation out of place…).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Binary frames, or frames faster than the per-connection rate limit.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// No valid `auth` frame in time, a bad token, or the connection's token expired.
    pub const UNAUTHORIZED: u16 = 4001;
    /// No pong (or other frame) within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4002;
    /// The client did not read fast enough: its queue overflowed. Reconnect and resume.
    pub const TOO_SLOW: u16 = 4008;
    /// The user already holds as many connections and subscriptions on this instance as one user
    /// may (`MAX_CONNECTIONS_PER_USER`): close one, or reconnect later with backoff.
    pub const TOO_MANY_CONNECTIONS: u16 = 4029;
}
