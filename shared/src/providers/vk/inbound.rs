//! Callback API requests: the shared `secret` VK puts in each body, the envelope, and `message_new`
//! normalized into an `InboundMessage` with its attachments.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::PROVIDER;
use crate::domain::{Attachment, AttachmentKind, Customer, InboundKind, InboundMessage};
use crate::providers::WebhookError;
use crate::secret::Secret;

/// Checks the `secret` VK puts in the body of every event once the callback server has a secret key. VK
/// signs nothing, so this shared secret is the only proof of origin.
pub fn verify_secret(candidate: Option<&str>, expected: &Secret) -> Result<(), WebhookError> {
    match candidate {
        Some(candidate) if !expected.expose().is_empty() && expected.matches(candidate) => Ok(()),
        _ => Err(WebhookError::Unauthorized),
    }
}

/// The envelope of every Callback API request.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackEvent {
    pub kind: String,
    pub group_id: i64,
    pub event_id: Option<String>,
    pub secret: Option<String>,
    pub object: Option<Value>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    group_id: i64,
    event_id: Option<String>,
    secret: Option<String>,
    object: Option<Value>,
}

/// Reads the envelope of a Callback API request (its `secret` is not checked here).
pub fn parse_callback(body: &[u8]) -> Result<CallbackEvent, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    // serde also accepts a JSON array for a struct (fields by position).
    if !value.is_object() {
        return Err(malformed("the body is not a JSON object".into()));
    }
    let envelope = Envelope::deserialize(value).map_err(|e| malformed(e.to_string()))?;
    Ok(CallbackEvent {
        kind: envelope.kind,
        group_id: envelope.group_id,
        event_id: envelope.event_id.filter(|id| !id.is_empty()),
        secret: envelope.secret,
        object: envelope.object,
    })
}

/// Normalizes a `message_new` event. `Ok(None)`: nothing a contact center can show (a service message such
/// as a member joining a chat), acknowledged and dropped.
pub fn normalize_message_new(event: &CallbackEvent) -> Result<Option<InboundMessage>, WebhookError> {
    let object = event.object.as_ref().ok_or_else(|| malformed("message_new without an object".into()))?;
    // Since API 5.103 the object is {message, client_info}; before, it was the message itself.
    let message = object.get("message").unwrap_or(object);
    let message = VkMessage::deserialize(message).map_err(|e| malformed(format!("message: {e}")))?;
    if message.out == 1 {
        return Ok(None);
    }
    let dedup_key = match (&event.event_id, message.conversation_message_id) {
        (Some(event_id), _) => event_id.clone(),
        (None, Some(cmid)) => format!("{}:{cmid}", message.peer_id),
        (None, None) if message.id > 0 => format!("{}:id{}", message.peer_id, message.id),
        (None, None) => return Err(malformed("no event_id and no message id".into())),
    };
    let text = Some(message.text.clone()).filter(|t| !t.is_empty());
    let attachments = attachments_of(&message);
    if text.is_none() && attachments.is_empty() {
        return Ok(None);
    }
    // `id` is 0 in group chats; the conversation's own counter identifies the message there.
    let provider_message_id = if message.id > 0 {
        Some(message.id.to_string())
    } else {
        message.conversation_message_id.map(|cmid| format!("{}_{cmid}", message.peer_id))
    };
    let sent_at =
        Timestamp::from_second(message.date).map_err(|e| malformed(format!("date {}: {e}", message.date)))?;
    // A press on one of our text buttons arrives as a message carrying the button's payload.
    let kind = if message.payload.is_some() { InboundKind::ButtonReply } else { InboundKind::Message };
    Ok(Some(InboundMessage {
        dedup_key,
        kind,
        // Replies go to the peer: the person in a private dialog, the chat (2000000000 + id) in a group chat.
        // VK sends no names with events.
        customer: Customer { id: message.peer_id.to_string(), name: None, handle: None },
        provider_message_id,
        text,
        attachments,
        sent_at: Some(sent_at),
    }))
}

fn malformed(reason: String) -> WebhookError {
    WebhookError::Malformed { provider: PROVIDER, reason }
}

// Only the fields we read; ids are i64 (peer ids of chats are 2000000000 + n, owner ids may be negative).

#[derive(Deserialize)]
struct VkMessage {
    #[serde(default)]
    id: i64,
    date: i64,
    peer_id: i64,
    #[serde(default)]
    out: i64,
    #[serde(default)]
    text: String,
    conversation_message_id: Option<i64>,
    #[serde(default)]
    attachments: Vec<RawAttachment>,
    payload: Option<String>,
    geo: Option<Geo>,
}

/// `{"type": "photo", "photo": {...}}`: the body sits under the key named by `type`.
#[derive(Deserialize)]
struct RawAttachment {
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
struct Photo {
    #[serde(default)]
    sizes: Vec<PhotoSize>,
}

#[derive(Deserialize)]
struct PhotoSize {
    #[serde(rename = "type", default)]
    kind: String,
    url: String,
    #[serde(default)]
    width: u64,
    #[serde(default)]
    height: u64,
}

#[derive(Deserialize)]
struct Doc {
    id: Option<i64>,
    owner_id: Option<i64>,
    title: Option<String>,
    size: Option<u64>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct AudioMessage {
    link_ogg: Option<String>,
    link_mp3: Option<String>,
}

#[derive(Deserialize)]
struct Sticker {
    sticker_id: Option<i64>,
    #[serde(default)]
    images: Vec<StickerImage>,
}

#[derive(Deserialize)]
struct StickerImage {
    url: String,
    #[serde(default)]
    width: u64,
    #[serde(default)]
    height: u64,
}

#[derive(Deserialize)]
struct MediaRef {
    id: Option<i64>,
    owner_id: Option<i64>,
    title: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct Geo {
    coordinates: Coordinates,
}

#[derive(Deserialize)]
struct Coordinates {
    latitude: f64,
    longitude: f64,
}

fn attachments_of(message: &VkMessage) -> Vec<Attachment> {
    let mut attachments: Vec<Attachment> = message.attachments.iter().map(normalize_attachment).collect();
    if let Some(geo) = &message.geo {
        attachments.push(attachment(
            AttachmentKind::Location,
            format!("{},{}", geo.coordinates.latitude, geo.coordinates.longitude),
        ));
    }
    attachments
}

fn attachment(kind: AttachmentKind, file_ref: String) -> Attachment {
    Attachment { kind, file_ref, mime: None, size: None, name: None }
}

/// One attachment; a body of an unexpected shape degrades to an `Other` reference instead of losing the
/// customer's message.
fn normalize_attachment(raw: &RawAttachment) -> Attachment {
    let body = raw.rest.get(&raw.kind);
    let parsed = |kind: AttachmentKind| -> Option<Attachment> {
        let body = body?;
        match kind {
            AttachmentKind::Image => {
                let photo = Photo::deserialize(body).ok()?;
                largest_photo(&photo).map(|url| attachment(kind, url.to_owned()))
            }
            AttachmentKind::Document => {
                let doc = Doc::deserialize(body).ok()?;
                let file_ref = doc.url.or_else(|| media_id("doc", doc.owner_id, doc.id))?;
                Some(Attachment { kind, file_ref, mime: None, size: doc.size, name: doc.title })
            }
            AttachmentKind::Voice => {
                let voice = AudioMessage::deserialize(body).ok()?;
                let (file_ref, mime) = match (voice.link_ogg, voice.link_mp3) {
                    (Some(ogg), _) => (ogg, "audio/ogg"),
                    (None, Some(mp3)) => (mp3, "audio/mpeg"),
                    (None, None) => return None,
                };
                Some(Attachment { kind, file_ref, mime: Some(mime.to_owned()), size: None, name: None })
            }
            AttachmentKind::Sticker => {
                let sticker = Sticker::deserialize(body).ok()?;
                let largest = sticker.images.iter().max_by_key(|image| image.width * image.height);
                let file_ref = largest
                    .map(|image| image.url.clone())
                    .or_else(|| sticker.sticker_id.map(|id| format!("sticker{id}")))?;
                Some(attachment(kind, file_ref))
            }
            _ => {
                let media = MediaRef::deserialize(body).ok()?;
                let file_ref = media.url.or_else(|| media_id(&raw.kind, media.owner_id, media.id))?;
                Some(Attachment { kind, file_ref, mime: None, size: None, name: media.title })
            }
        }
    };
    let kind = match raw.kind.as_str() {
        "photo" => AttachmentKind::Image,
        "doc" => AttachmentKind::Document,
        "audio_message" => AttachmentKind::Voice,
        "sticker" => AttachmentKind::Sticker,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        _ => AttachmentKind::Other,
    };
    parsed(kind).unwrap_or_else(|| attachment(AttachmentKind::Other, raw.kind.clone()))
}

/// VK's reference to a stored object: `photo123_456`.
fn media_id(kind: &str, owner_id: Option<i64>, id: Option<i64>) -> Option<String> {
    Some(format!("{kind}{}_{}", owner_id?, id?))
}

/// The URL of the largest size. Old photos report 0×0 for every size; their size letters then decide
/// (s < m < x < y < z < w; o, p, q, r are crops).
fn largest_photo(photo: &Photo) -> Option<&str> {
    let rank = |kind: &str| "somxpqryzw".find(kind).unwrap_or(0);
    photo
        .sizes
        .iter()
        .max_by_key(|size| (size.width * size.height, rank(&size.kind)))
        .map(|size| size.url.as_str())
}
