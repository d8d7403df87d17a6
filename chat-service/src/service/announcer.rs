//! After a commit, the stored messages are announced: added to the hot window and published to
//! their chats' followers on every instance. The writer hands each committed batch straight to this
//! task, so a message is published as soon as it is durable, not when its sender's connection (on
//! a worker busy with other connections' deliveries) gets to it. One task does it for the
//! instance, for as many batches as are waiting: while one Redis round trip is under way the next
//! batches gather, so under load a round trip carries many messages (the window's `ZADD`s in one
//! pipeline, the `PUBLISH`es in another, side by side) instead of two round trips per message.
//!
//! Messages are announced in the order the writer stored them, and a batch's sends are answered
//! once its messages are on their way to every instance (over Redis: the `PUBLISH` pipeline
//! written): an acknowledged message has been handed to the relay. They are answered before this
//! instance's own followers are handed the messages, and without waiting for Redis's answer or the
//! hot window's write — in a big group the sender's connection would otherwise wait, on its worker,
//! behind every local delivery. A read that finds the window without the message goes to the
//! database (the window serves only ranges it holds whole, up to the chat's committed `last_seq`).

use std::sync::Arc;

use converge_shared::dto::MessageDto;
use tokio::sync::mpsc;

use crate::relay::{ChatEvent, Relay, Sent, Topic};
use crate::window::HotWindow;

/// Batches waiting to be announced; beyond this, the writer waits.
const QUEUE: usize = 1024;
/// Most batches in one round trip.
const MAX_BATCHES: usize = 64;

/// What runs once a batch is on its way to every instance: its sends are answered.
pub type Then = Sent;

/// The handle the writer announces through; cheap to clone.
#[derive(Clone)]
pub struct Announcer {
    queue: mpsc::Sender<(Vec<MessageDto>, Then)>,
}

impl Announcer {
    /// Starts the announcing task on the current runtime.
    pub fn spawn(window: Arc<dyn HotWindow>, relay: Arc<dyn Relay>) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(run(window, relay, waiting));
        Self { queue }
    }

    /// Announces a committed batch's messages, running `then` once they are on their way. A failure
    /// to announce loses nothing (reads fall back to the database, followers catch up by seq), so
    /// it is logged and counted, and `then` runs all the same.
    pub async fn announce(&self, messages: Vec<MessageDto>, then: Then) {
        if let Err(mpsc::error::SendError((_, then))) = self.queue.send((messages, then)).await {
            // The task is gone (the instance is stopping): answer rather than leave the sends waiting.
            then();
        }
    }
}

async fn run(window: Arc<dyn HotWindow>, relay: Arc<dyn Relay>, mut waiting: mpsc::Receiver<(Vec<MessageDto>, Then)>) {
    let mut batches = Vec::with_capacity(MAX_BATCHES);
    while waiting.recv_many(&mut batches, MAX_BATCHES).await > 0 {
        let (batches_messages, thens): (Vec<Vec<MessageDto>>, Vec<Then>) = batches.drain(..).unzip();
        let messages: Vec<MessageDto> = batches_messages.into_iter().flatten().collect();
        let mut answer: Option<Sent> = Some(Box::new(move || thens.into_iter().for_each(|then| then())));
        if !messages.is_empty() {
            let events: Vec<(Topic, ChatEvent)> =
                messages.iter().map(|m| (Topic::Chat(m.chat_id), ChatEvent::Message(m.clone()))).collect();
            let started = std::time::Instant::now();
            let (pushed, published) =
                tokio::join!(window.push(&messages), relay.publish_many_then(&events, &mut answer));
            metrics::histogram!("announce_seconds").record(started.elapsed().as_secs_f64());
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
        }
        // Not answered by the relay (nothing to publish, or it failed first): answered now.
        if let Some(answer) = answer.take() {
            answer();
        }
    }
}
