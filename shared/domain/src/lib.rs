//! The contact center's domain: what a tenant, channel, customer, dialog and message are, and their rules.
//! No AWS, HTTP or storage types here.

pub mod channel;
pub mod customer;
pub mod dialog;
pub mod hours;
pub mod ids;
pub mod message;
pub mod people;
pub mod routing;
pub mod settings;
pub mod tenant;

pub use channel::{Account, Channel, ChannelStatus, Provider};
pub use customer::{CustomerProfile, Identity, MIN_QUERY_CHARS};
pub use dialog::{Customer, Dialog, DialogStatus};
pub use ids::{ChannelId, ChatbotId, CustomerId, DialogId, EmployeeId, GroupId, MessageId, TenantId};
pub use message::{
    Attachment, AttachmentKind, Direction, InboundKind, InboundMessage, MAX_ANY_REPLY_CHARS,
    MAX_BUTTON_CHARS, MAX_BUTTONS, MAX_REPLY_CHARS, Media, MediaStatus, Message, OutStatus, StoredObject,
    Template,
};
pub use settings::ChannelSettings;
pub use tenant::{Features, Tenant};

/// A broken rule of the domain, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleViolation {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl RuleViolation {
    pub fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code, field: field.into(), message: message.into() }
    }
}
