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

impl AttachmentKind {
    /// Whether this kind is data in the message (a place, a phone number), not a file to fetch.
    pub fn is_data(self) -> bool {
        matches!(self, AttachmentKind::Location | AttachmentKind::Contact)
    }

    /// The kind a file of this media type is sent as.
    pub fn of_mime(mime: &str) -> Self {
        match mime.split('/').next().unwrap_or_default() {
            "image" => AttachmentKind::Image,
            "video" => AttachmentKind::Video,
            "audio" => AttachmentKind::Audio,
            _ => AttachmentKind::Document,
        }
    }
}

/// A file or object as the provider describes it: its reference (file id, URL, IMAP part), not its bytes.
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

impl Attachment {
    /// A location's latitude and longitude (kept as `"{lat},{lon}"`).
    pub fn coordinates(&self) -> Option<(f64, f64)> {
        if self.kind != AttachmentKind::Location {
            return None;
        }
        let (latitude, longitude) = self.file_ref.split_once(',')?;
        Some((latitude.trim().parse().ok()?, longitude.trim().parse().ok()?))
    }
}

/// Where a message's file stands in our own storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaStatus {
    /// Not fetched from the provider yet.
    Pending,
    /// In our storage: its bytes can be served.
    Stored,
    /// The provider would not give it (the reason is kept).
    Failed,
    /// Larger than this deployment keeps (`OMNICHAT_MAX_MEDIA_BYTES`) or the provider lets us download.
    TooLarge,
}

/// The object a file is kept as in our storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// The object's key in the media store.
    pub key: String,
    /// Sniffed from the bytes, not taken from the provider.
    pub mime: String,
    pub size: u64,
}

/// An attachment of a stored message: what the provider said of it, and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// Unique within the message.
    #[serde(default)]
    pub id: String,
    #[serde(flatten)]
    pub source: Attachment,
    /// None for what carries no bytes (a location, a contact, a sticker known only by its id) and for
    /// messages stored before media were fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MediaStatus>,
    /// Why the fetch failed, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<StoredObject>,
    /// A time-limited link to the bytes, filled in for a reader; never stored.
    #[serde(skip)]
    pub url: Option<String>,
}

impl Media {
    /// The message's `index`th attachment as the provider described it: pending when it has bytes to fetch,
    /// stored when it is data (a place, a contact), failed when the provider offers no file for it (a
    /// sticker known only by its id).
    pub fn received(index: usize, source: Attachment, fetchable: bool) -> Self {
        let (status, failure) = match (fetchable, source.kind.is_data()) {
            (true, _) => (MediaStatus::Pending, None),
            (false, true) => (MediaStatus::Stored, None),
            (false, false) => (MediaStatus::Failed, Some("the provider offers no file for it".to_owned())),
        };
        Self { id: format!("a{index}"), source, status: Some(status), failure, object: None, url: None }
    }

    /// A file of ours (an upload) sent with an outgoing message.
    pub fn uploaded(id: String, kind: AttachmentKind, name: Option<String>, object: StoredObject) -> Self {
        let source = Attachment {
            kind,
            file_ref: format!("upload:{id}"),
            mime: Some(object.mime.clone()),
            size: Some(object.size),
            name,
        };
        Self { id, source, status: Some(MediaStatus::Stored), failure: None, object: Some(object), url: None }
    }

    pub fn is_pending(&self) -> bool {
        self.status == Some(MediaStatus::Pending)
    }
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
    pub attachments: Vec<Media>,
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
    /// Outbound only: an approved template sent instead of free text (WhatsApp outside the
    /// customer-service window, or the first message of a conversation the business starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
}

/// An approved WhatsApp template and the values of its placeholders: the one message WhatsApp lets a
/// business send outside the 24 hours after the customer's last message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub name: String,
    /// As the template was approved: `en`, `en_US`, `ru`...
    pub language: String,
    /// The placeholders' values, in order ({{1}}, {{2}}...).
    #[serde(default)]
    pub parameters: Vec<String>,
}

impl Message {
    /// A customer's message as stored; `fetchable` says which of its attachments have bytes the provider can
    /// give (they start pending).
    pub fn inbound(
        tenant_id: TenantId,
        channel_id: ChannelId,
        dialog_id: DialogId,
        inbound: &InboundMessage,
        received_at: Timestamp,
        fetchable: impl Fn(&Attachment) -> bool,
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
            attachments: inbound
                .attachments
                .iter()
                .enumerate()
                .map(|(index, source)| Media::received(index, source.clone(), fetchable(source)))
                .collect(),
            buttons: Vec::new(),
            provider_message_id: inbound.provider_message_id.clone(),
            sent_at: inbound.sent_at,
            received_at,
            status: None,
            author_id: None,
            failure: None,
            automatic: false,
            template: None,
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
            text: (!text.is_empty()).then_some(text),
            attachments: Vec::new(),
            buttons,
            provider_message_id: None,
            sent_at: None,
            received_at: at,
            status: Some(OutStatus::Pending),
            author_id,
            failure: None,
            automatic: false,
            template: None,
        }
    }

    /// Whether any attachment still waits to be fetched from the provider.
    pub fn has_pending_media(&self) -> bool {
        self.attachments.iter().any(Media::is_pending)
    }

    /// The same message, carrying `attachments` (files of ours).
    pub fn with_attachments(self, attachments: Vec<Media>) -> Self {
        Self { attachments, ..self }
    }

    /// The same message, marked as sent by the system rather than a person.
    pub fn sent_automatically(self) -> Self {
        Self { automatic: true, ..self }
    }
}
