//! The rules of chat-service: who may read and post, how seq is assigned, what is published.
//! REST, GraphQL and the WebSocket all call these functions.

pub mod announcer;
pub mod arrivals;
pub mod attachments;
pub mod chats;
pub mod edits;
pub mod history;
pub mod live;
pub mod messages;
pub mod receipts;
pub mod search;
pub mod users;
pub mod writer;

use converge_shared::api_error::ApiError;
use converge_shared::error::ErrorCode;

use crate::relay::{ChatEvent, Relay, Topic};

/// Ids per `IN (…)` list: databases cap a statement's parameters (SQLite 32 766, PostgreSQL
/// 65 535), and chat views read for many viewers at once can name more chats and members than that.
pub(crate) const IDS_PER_QUERY: usize = 1000;

pub(crate) fn forbidden() -> ApiError {
    ApiError::new(ErrorCode::Forbidden, "you are not a participant of this chat")
}

pub(crate) fn chat_not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such chat")
}

/// Publishes an event after its change is committed. A failed publish loses nothing: followers
/// catch up from the database by seq, so it is logged, not returned.
pub(crate) async fn publish(ctx: &crate::context::AppContext, topic: Topic, event: ChatEvent) {
    publish_all(&**ctx.hub.relay(), &[(topic, event)]).await;
}

/// Publishes events in order, over Redis in one round trip; a failure is logged as [`publish`]'s.
pub(crate) async fn publish_all(relay: &dyn Relay, events: &[(Topic, ChatEvent)]) {
    if let Err(e) = relay.publish_many(events).await {
        metrics::counter!("relay_publish_errors_total").increment(1);
        let topics: Vec<Topic> = events.iter().map(|(topic, _)| *topic).take(3).collect();
        tracing::warn!(
            ?topics,
            events = events.len(),
            error = format!("{e:#}"),
            "publish failed; followers will catch up by seq"
        );
    }
}
