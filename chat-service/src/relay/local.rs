//! The in-process relay of the embedded default: one instance, so publishing is delivering.

use super::{ChatEvent, Inbound, Relay, Topic};

pub struct LocalRelay {
    inbound: Inbound,
}

impl LocalRelay {
    pub fn new(inbound: Inbound) -> Self {
        Self { inbound }
    }
}

#[async_trait::async_trait]
impl Relay for LocalRelay {
    async fn publish(&self, topic: Topic, event: &ChatEvent) -> anyhow::Result<()> {
        // The hub drops events of topics nobody here follows, so there is no subscription to check.
        self.inbound.send((topic, event.clone())).await.map_err(|_| anyhow::anyhow!("the hub has stopped"))
    }

    async fn subscribe(&self, _topic: Topic) -> anyhow::Result<()> {
        Ok(())
    }

    async fn unsubscribe(&self, _topic: Topic) -> anyhow::Result<()> {
        Ok(())
    }

    fn status(&self) -> &'static str {
        "local"
    }
}
