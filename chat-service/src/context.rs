//! The state every request handler and connection shares, built once at start.

use std::sync::Arc;

use converge_shared::rate_limit::PerKeyLimit;
use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::hub::Hub;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppContext {
    /// The `converge_chat` database.
    pub db: DatabaseConnection,
    /// This instance's connections and their feeds; publishes through the relay.
    pub hub: Arc<Hub>,
    /// Asks user-service about users this service has not met.
    pub http: reqwest::Client,
    pub config: Arc<Config>,
    /// Turns true when the instance begins to shut down: connections close with 1012 so clients
    /// reconnect elsewhere and resume.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Each chat's recent messages (Redis in the scaled deployment, none embedded).
    pub window: Arc<dyn crate::window::HotWindow>,
    /// Gathers delivery receipts and records them every `DELIVERY_RECEIPT_MS`.
    pub receipts: crate::service::receipts::DeliveryReceipts,
    /// Commits sends in batches (one transaction, one WAL flush for many messages) and announces
    /// them (hot window and relay, many per Redis round trip).
    pub writer: crate::service::writer::MessageWriter,
    /// Starts connections: follows their chats and reads the views, many connections per query.
    pub arrivals: crate::service::arrivals::Arrivals,
    /// Who is online, across instances.
    pub presence: crate::presence::Presence,
    /// Uploaded images: their store, and the decoders' share of the CPUs.
    pub uploads: crate::service::attachments::Uploads,
    /// Each user's budget of message writes (`USER_WRITES_PER_SECOND`), whichever door they use.
    pub write_limits: Arc<PerKeyLimit<uuid::Uuid>>,
    /// Each user's budget of chats created and participants added (`CHAT_INVITES_PER_MINUTE`).
    pub invite_limits: Arc<PerKeyLimit<uuid::Uuid>>,
}

/// Who is acting: the subject of a verified access token, never an id a client sent.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: uuid::Uuid,
    pub name: String,
    /// Forwarded to user-service to look up other users on the caller's behalf.
    pub token: String,
}
