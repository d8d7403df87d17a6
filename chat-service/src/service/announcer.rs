//! After a commit, a stored message is announced: added to the hot window and published to the
//! chat's followers on every instance. One task does it for the instance, for as many messages as
//! are waiting: while one Redis round trip is under way the next messages gather, so under load a
//! round trip carries many of them (the window's `ZADD`s in one pipeline, the `PUBLISH`es in
//! another, side by side) instead of two round trips per message.
//!
//! Messages are announced in the order the writer stored them, and a send is answered only after
//! its announcement, as before: an acknowledged message has been handed to the relay.

use std::sync::Arc;

use converge_shared::dto::MessageDto;
use tokio::sync::{mpsc, oneshot};

use crate::relay::{ChatEvent, Relay, Topic};
use crate::window::HotWindow;

/// Messages waiting to be announced; beyond this, senders wait.
const QUEUE: usize = 4096;
/// Most messages in one round trip.
const MAX_BATCH: usize = 256;

/// The handle sends go through; cheap to clone.
#[derive(Clone)]
pub struct Announcer {
    queue: mpsc::Sender<(MessageDto, oneshot::Sender<()>)>,
}

impl Announcer {
    /// Starts the announcing task on the current runtime.
    pub fn spawn(window: Arc<dyn HotWindow>, relay: Arc<dyn Relay>) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(run(window, relay, waiting));
        Self { queue }
    }

    /// Announces a stored message and returns once the window and the relay have been told. A
    /// failure loses nothing (reads fall back to the database, followers catch up by seq), so it
    /// is logged and counted, never returned.
    pub async fn announce(&self, message: MessageDto) {
        let (done, announced) = oneshot::channel();
        if self.queue.send((message, done)).await.is_ok() {
            let _ = announced.await;
        }
    }
}

async fn run(
    window: Arc<dyn HotWindow>,
    relay: Arc<dyn Relay>,
    mut waiting: mpsc::Receiver<(MessageDto, oneshot::Sender<()>)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (messages, done): (Vec<MessageDto>, Vec<oneshot::Sender<()>>) = batch.drain(..).unzip();
        let events: Vec<(Topic, ChatEvent)> =
            messages.iter().map(|m| (Topic::Chat(m.chat_id), ChatEvent::Message(m.clone()))).collect();
        let (pushed, published) = tokio::join!(window.push(&messages), relay.publish_many(&events));
        if let Err(e) = pushed {
            metrics::counter!("window_write_errors_total").increment(1);
            tracing::warn!(messages = messages.len(), error = format!("{e:#}"), "cannot write the hot window");
        }
        if let Err(e) = published {
            metrics::counter!("relay_publish_errors_total").increment(1);
            tracing::warn!(
                messages = messages.len(),
                error = format!("{e:#}"),
                "publish failed; followers will catch up by seq"
            );
        }
        for done in done {
            let _ = done.send(());
        }
    }
}
