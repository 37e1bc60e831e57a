//! The normalized message: one shape for every provider, in either direction.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ChannelId, Customer, Dialog, DialogId, EmployeeId, MessageId, TenantId};

/// The longest outgoing text (a reply, an auto-reply, a chatbot's answer), in characters, where the
/// provider allows no more (Telegram, VK, WhatsApp); each provider states its own limit
/// (`ChannelProvider::max_text_chars`).
pub const MAX_REPLY_CHARS: usize = 4096;
/// The longest text any provider takes (e-mail): the bound of a reply's body before its channel is known.
pub const MAX_ANY_REPLY_CHARS: usize = 100_000;
/// Quick-reply buttons one outgoing message may carry.
pub const MAX_BUTTONS: usize = 10;
/// The longest button label, in characters.
pub const MAX_BUTTON_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    Video,
    Audio,
    Voice,
    Document,
    Sticker,
    Location,
    Contact,
    Other,
}

/// A file or object the provider holds: we keep its reference, not its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    /// The provider's reference (file id, URL): enough to fetch it from the provider later.
    pub file_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What kind of customer action an inbound message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundKind {
    Message,
    /// The customer edited an earlier message; stored as a new message that says so.
    Edit,
    /// The customer pressed a quick-reply button; `text` is the button's payload.
    ButtonReply,
}

/// What a provider module makes of one inbound delivery, before it belongs to a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// Identifies the delivery at the provider: a retry carries the same key, a different message never does.
    pub dedup_key: String,
    pub kind: InboundKind,
    pub customer: Customer,
    pub provider_message_id: Option<String>,
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
    /// When the provider says the customer sent it.
    pub sent_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutStatus {
    Pending,
    Sent,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub tenant_id: TenantId,
    pub channel_id: ChannelId,
    pub dialog_id: DialogId,
    pub direction: Direction,
    pub kind: InboundKind,
    pub customer_id: String,
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Quick-reply buttons shown with an outgoing message.
    #[serde(default)]
    pub buttons: Vec<String>,
    pub provider_message_id: Option<String>,
    /// The provider's time of the message (inbound), or when it went out (outbound).
    pub sent_at: Option<Timestamp>,
    /// When we stored it.
    pub received_at: Timestamp,
    /// Outbound only.
    #[serde(default)]
    pub status: Option<OutStatus>,
    /// Outbound only: the employee who wrote it (none for auto-replies and chatbots).
    #[serde(default)]
    pub author_id: Option<EmployeeId>,
    /// Outbound only: why it failed, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Outbound only: sent by the system (an auto-reply, a chatbot's answer), not by a person.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub automatic: bool,
}

impl Message {
    pub fn inbound(
        tenant_id: TenantId,
        channel_id: ChannelId,
        dialog_id: DialogId,
        inbound: &InboundMessage,
        received_at: Timestamp,
    ) -> Self {
        Self {
            id: MessageId::generate(),
            tenant_id,
            channel_id,
            dialog_id,
            direction: Direction::In,
            kind: inbound.kind,
            customer_id: inbound.customer.id.clone(),
            text: inbound.text.clone(),
            attachments: inbound.attachments.clone(),
            buttons: Vec::new(),
            provider_message_id: inbound.provider_message_id.clone(),
            sent_at: inbound.sent_at,
            received_at,
            status: None,
            author_id: None,
            failure: None,
            automatic: false,
        }
    }

    /// An outgoing message, pending until the provider accepts it.
    pub fn outbound(
        dialog: &Dialog,
        text: String,
        buttons: Vec<String>,
        author_id: Option<EmployeeId>,
        at: Timestamp,
    ) -> Self {
        Self {
            id: MessageId::generate(),
            tenant_id: dialog.tenant_id.clone(),
            channel_id: dialog.channel_id.clone(),
            dialog_id: dialog.id.clone(),
            direction: Direction::Out,
            kind: InboundKind::Message,
            customer_id: dialog.customer.id.clone(),
            text: Some(text),
            attachments: Vec::new(),
            buttons,
            provider_message_id: None,
            sent_at: None,
            received_at: at,
            status: Some(OutStatus::Pending),
            author_id,
            failure: None,
            automatic: false,
        }
    }

    /// The same message, marked as sent by the system rather than a person.
    pub fn sent_automatically(self) -> Self {
        Self { automatic: true, ..self }
    }
}
