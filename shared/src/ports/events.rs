//! The event bus: what happened, for the functions that react (the router, the timers).
//!
//! Contract: `publish` delivers every event or answers an error; a partial failure (EventBridge's
//! `FailedEntryCount` > 0) is an error naming how many failed. Consumers must tolerate lost events: the
//! scheduled sweeps finish what an event did not start.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{ChannelId, DialogId, MessageId, TenantId};

/// The source the events carry on EventBridge.
pub const EVENT_SOURCE: &str = "omnichat";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DomainEvent {
    DialogOpened {
        tenant_id: TenantId,
        channel_id: ChannelId,
        dialog_id: DialogId,
    },
    MessageReceived {
        tenant_id: TenantId,
        channel_id: ChannelId,
        dialog_id: DialogId,
        message_id: MessageId,
    },
    DialogClosed {
        tenant_id: TenantId,
        channel_id: ChannelId,
        dialog_id: DialogId,
    },
    /// An outgoing message could not be sent and will not be retried.
    MessageFailed {
        tenant_id: TenantId,
        dialog_id: DialogId,
        message_id: MessageId,
        reason: String,
    },
}

impl DomainEvent {
    /// EventBridge's `detail-type`, what rules match on.
    pub fn detail_type(&self) -> &'static str {
        match self {
            DomainEvent::DialogOpened { .. } => "DialogOpened",
            DomainEvent::MessageReceived { .. } => "MessageReceived",
            DomainEvent::DialogClosed { .. } => "DialogClosed",
            DomainEvent::MessageFailed { .. } => "MessageFailed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("{failed} of {total} events were not accepted: {reason}")]
    Rejected { failed: usize, total: usize, reason: String },
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError>;
}
