//! The in-process event bus of the local runner: a broadcast channel. Like EventBridge to a Lambda, a
//! subscriber that falls behind may lose events; the scheduled sweeps cover for that.

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::ports::events::{DomainEvent, EventBus, EventError};

#[derive(Debug, Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<DomainEvent>,
}

impl InProcessBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DomainEvent> {
        self.sender.subscribe()
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError> {
        for event in events {
            // No subscriber is not an error: nobody is listening for that kind of event yet.
            let _ = self.sender.send(event.clone());
        }
        Ok(())
    }
}
