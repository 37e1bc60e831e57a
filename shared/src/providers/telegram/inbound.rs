//! Webhook updates normalized: messages, edited messages and button presses (callback queries) into
//! `InboundMessage`s with their attachments, keyed so a re-delivered update is recognized.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::PROVIDER;
use crate::domain::{Attachment, AttachmentKind, Customer, InboundKind, InboundMessage};
use crate::providers::WebhookError;

/// Normalizes one webhook `Update`.
///
/// `Ok(None)` means "acknowledge and ignore": an update type we do not handle, or a message that carries
/// nothing a contact center can show (service messages such as `new_chat_members`). Answering 2xx for
/// those stops Telegram from re-delivering them for 24 h.
pub fn parse_update(body: &[u8]) -> Result<Option<InboundMessage>, WebhookError> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    // Checked before deserializing because serde also accepts a JSON array for a struct (field by position).
    if !value.is_object() {
        return Err(malformed("the body is not a JSON object".into()));
    }
    let update = Update::deserialize(&value).map_err(|e| malformed(e.to_string()))?;

    let dedup_key = dedup_key(update.update_id, &mut value)?;

    if let Some(message) = update.message {
        return normalize_message(message, InboundKind::Message, dedup_key);
    }
    if let Some(message) = update.edited_message {
        return normalize_message(message, InboundKind::Edit, dedup_key);
    }
    if let Some(query) = update.callback_query {
        return Ok(normalize_callback_query(query, dedup_key));
    }
    Ok(None)
}

/// `update_id` alone is not a safe key: every official sample (and so every test tool replaying them) uses
/// 10000 for different updates, two of them even share `message_id` 1365. A retry, on the other hand,
/// re-sends the identical update. So the key is the update id plus a digest of the update's content, taken
/// over a canonical form (parsed and re-serialized: sorted keys, no whitespace) so that a retry that differs
/// only in formatting still lands on the same key.
fn dedup_key(update_id: i64, value: &mut Value) -> Result<String, WebhookError> {
    // A no-op with serde_json's default BTreeMap; keeps keys sorted should a dependency ever switch on the
    // `preserve_order` feature for the whole build.
    value.sort_all_objects();
    let canonical = serde_json::to_vec(value).map_err(|e| malformed(e.to_string()))?;
    let digest = Sha256::digest(&canonical);
    let hex: String = digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("{update_id}:{hex}"))
}

fn malformed(reason: String) -> WebhookError {
    WebhookError::Malformed { provider: PROVIDER, reason }
}

fn normalize_message(
    message: TgMessage,
    kind: InboundKind,
    dedup_key: String,
) -> Result<Option<InboundMessage>, WebhookError> {
    let text = message.text.clone().or_else(|| message.caption.clone()).filter(|t| !t.is_empty());
    let attachments = attachments_of(&message);
    if text.is_none() && attachments.is_empty() {
        return Ok(None);
    }
    // An edit is stored as a new message, so its moment is when the customer edited, not the original date.
    let seconds = match kind {
        InboundKind::Edit => message.edit_date.unwrap_or(message.date),
        _ => message.date,
    };
    let sent_at = Timestamp::from_second(seconds).map_err(|e| malformed(format!("date {seconds}: {e}")))?;
    // In groups `from` is the person and `chat` the group: the name is the person's, replies go to the chat.
    let name = match &message.from {
        Some(user) => user.display_name(),
        None => display_name(
            message.chat.first_name.as_deref(),
            message.chat.last_name.as_deref(),
            message.chat.username.as_deref(),
        )
        .or_else(|| message.chat.title.clone()),
    };
    Ok(Some(InboundMessage {
        dedup_key,
        kind,
        // The identity is the chat (replies go there): its public @username, a person's or a group's.
        customer: Customer {
            id: message.chat.id.to_string(),
            name,
            handle: non_empty(message.chat.username.clone()),
        },
        provider_message_id: Some(message.message_id.to_string()),
        text,
        attachments,
        sent_at: Some(sent_at),
    }))
}

fn normalize_callback_query(query: CallbackQuery, dedup_key: String) -> Option<InboundMessage> {
    // Without `data` the press is a game launch (`game_short_name`), which is not a quick reply.
    let data = query.data.filter(|d| !d.is_empty())?;
    // A button under an inline-mode message has no `message`; the presser's private chat is then the
    // only place a reply can go.
    let chat = query.message.and_then(|m| m.chat);
    let reply_to = chat.as_ref().map_or(query.from.id, |chat| chat.id);
    let handle = match chat {
        Some(chat) => chat.username,
        None => query.from.username.clone(),
    };
    Some(InboundMessage {
        dedup_key,
        kind: InboundKind::ButtonReply,
        customer: Customer {
            id: reply_to.to_string(),
            name: query.from.display_name(),
            handle: non_empty(handle),
        },
        provider_message_id: Some(query.id),
        text: Some(data),
        attachments: Vec::new(),
        // A callback query carries no time of its own; `message.date` is when the bot's message was sent.
        sent_at: None,
    })
}

fn attachments_of(message: &TgMessage) -> Vec<Attachment> {
    let mut attachments = Vec::new();
    // Telegram lists the sizes of one photo from smallest to largest.
    if let Some(largest) = message.photo.as_ref().and_then(|sizes| sizes.last()) {
        attachments.push(Attachment {
            kind: AttachmentKind::Image,
            file_ref: largest.file_id.clone(),
            mime: Some("image/jpeg".to_owned()),
            size: largest.file_size,
            name: None,
        });
    }
    let files = [
        (&message.document, AttachmentKind::Document),
        (&message.voice, AttachmentKind::Voice),
        (&message.audio, AttachmentKind::Audio),
        (&message.video, AttachmentKind::Video),
        // Round video notes and GIF-like animations are videos to an operator; dropping them would lose
        // a customer message.
        (&message.video_note, AttachmentKind::Video),
        (&message.animation, AttachmentKind::Video),
        (&message.sticker, AttachmentKind::Sticker),
    ];
    for (file, kind) in files {
        if let Some(file) = file {
            attachments.push(Attachment {
                kind,
                file_ref: file.file_id.clone(),
                mime: file.mime_type.clone(),
                size: file.file_size,
                name: file.file_name.clone(),
            });
        }
    }
    if let Some(location) = &message.location {
        attachments.push(Attachment {
            kind: AttachmentKind::Location,
            file_ref: format!("{},{}", location.latitude, location.longitude),
            mime: None,
            size: None,
            name: None,
        });
    }
    if let Some(contact) = &message.contact {
        attachments.push(Attachment {
            kind: AttachmentKind::Contact,
            file_ref: contact.phone_number.clone(),
            mime: None,
            size: None,
            name: contact.first_name.clone(),
        });
    }
    attachments
}

fn non_empty(handle: Option<String>) -> Option<String> {
    handle.map(|h| h.trim().trim_start_matches('@').to_owned()).filter(|h| !h.is_empty())
}

fn display_name(first: Option<&str>, last: Option<&str>, username: Option<&str>) -> Option<String> {
    let full =
        [first, last].into_iter().flatten().filter(|part| !part.is_empty()).collect::<Vec<_>>().join(" ");
    if full.is_empty() { username.filter(|u| !u.is_empty()).map(str::to_owned) } else { Some(full) }
}

// Only the fields we read: Telegram adds fields often, and unknown ones must not break parsing. Ids are
// i64 because supergroup and channel chat ids (-100…) do not fit in 32 bits.

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    message: Option<TgMessage>,
    edited_message: Option<TgMessage>,
    callback_query: Option<CallbackQuery>,
}

#[derive(Deserialize)]
struct TgMessage {
    message_id: i64,
    date: i64,
    edit_date: Option<i64>,
    chat: Chat,
    from: Option<User>,
    text: Option<String>,
    caption: Option<String>,
    photo: Option<Vec<PhotoSize>>,
    document: Option<FileInfo>,
    voice: Option<FileInfo>,
    audio: Option<FileInfo>,
    video: Option<FileInfo>,
    video_note: Option<FileInfo>,
    animation: Option<FileInfo>,
    sticker: Option<FileInfo>,
    location: Option<Location>,
    contact: Option<Contact>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
    title: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
}

impl User {
    fn display_name(&self) -> Option<String> {
        display_name(self.first_name.as_deref(), self.last_name.as_deref(), self.username.as_deref())
    }
}

#[derive(Deserialize)]
struct PhotoSize {
    file_id: String,
    file_size: Option<u64>,
}

/// The common shape of document, voice, audio, video and sticker.
#[derive(Deserialize)]
struct FileInfo {
    file_id: String,
    file_name: Option<String>,
    mime_type: Option<String>,
    file_size: Option<u64>,
}

#[derive(Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

#[derive(Deserialize)]
struct Contact {
    phone_number: String,
    first_name: Option<String>,
}

#[derive(Deserialize)]
struct CallbackQuery {
    id: String,
    from: User,
    /// Absent for buttons under inline-mode messages; may be an "inaccessible message" (still has `chat`).
    message: Option<CallbackOrigin>,
    data: Option<String>,
}

#[derive(Deserialize)]
struct CallbackOrigin {
    chat: Option<Chat>,
}
