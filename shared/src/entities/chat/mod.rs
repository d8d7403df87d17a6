//! The `converge_chat` database, owned by chat-service.

pub mod attachment;
// `entities::chat::chat` is the `chats` table of the chat database: one module per table, as in `users`.
#[allow(clippy::module_inception)]
pub mod chat;
pub mod known_user;
pub mod message;
pub mod participant;
