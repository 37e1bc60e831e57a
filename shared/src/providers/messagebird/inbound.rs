//! Webhook bodies normalized: Conversations API `message.created` / `message.updated` events and Bird
//! `whatsapp.inbound` events into customer messages and delivery reports.

use serde::Deserialize;
use serde_json::Value;

use super::PROVIDER;
use crate::domain::{Attachment, AttachmentKind, Customer, InboundKind, InboundMessage, OutStatus};
use crate::providers::{StatusUpdate, WebhookError};

/// What one verified webhook body carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
}

/// Normalizes one webhook body: a Conversations API event (`message.created` / `message.updated`) or a Bird
/// channels event (`whatsapp.inbound`). Our own outgoing messages (`direction: sent`) are not customer
/// messages; their updates are delivery reports. Everything else is acknowledged and ignored.
pub fn parse_event(body: &[u8]) -> Result<Parsed, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(malformed("the body is not a JSON object".into()));
    }
    if let Some(event) = value.get("event").and_then(Value::as_str) {
        return parse_bird_event(event, &value);
    }
    let event = ConversationsEvent::deserialize(&value).map_err(|e| malformed(e.to_string()))?;
    let mut parsed = Parsed::default();
    match (event.kind.as_str(), event.message) {
        ("message.created", Some(message)) if message.direction.as_deref() == Some("received") => {
            parsed.messages.extend(normalize_conversations_message(message, event.contact)?);
        }
        ("message.updated", Some(message)) if message.direction.as_deref() == Some("sent") => {
            parsed.statuses.extend(status_of(&message));
        }
        ("message.created" | "message.updated", None) => {
            return Err(malformed(format!("{} without a message", event.kind)));
        }
        _ => {}
    }
    Ok(parsed)
}

fn malformed(reason: String) -> WebhookError {
    WebhookError::Malformed { provider: PROVIDER, reason }
}

#[derive(Deserialize)]
struct ConversationsEvent {
    #[serde(rename = "type")]
    kind: String,
    message: Option<CbMessage>,
    contact: Option<CbContact>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CbMessage {
    id: String,
    from: Option<String>,
    direction: Option<String>,
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    content: Value,
    created_datetime: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CbContact {
    /// A JSON number in real payloads: kept as a value so a large or quoted one still parses.
    msisdn: Option<Value>,
    display_name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

fn normalize_conversations_message(
    message: CbMessage,
    contact: Option<CbContact>,
) -> Result<Option<InboundMessage>, WebhookError> {
    // The id is the dedup key: with an empty one, a second such message would pass for a retry.
    if message.id.is_empty() {
        return Err(malformed("a message without an id".into()));
    }
    let msisdn = contact.as_ref().and_then(|c| c.msisdn.as_ref()).and_then(|m| match m {
        Value::Number(n) => Some(format!("+{n}")),
        Value::String(s) if !s.is_empty() => {
            Some(if s.starts_with('+') { s.clone() } else { format!("+{s}") })
        }
        _ => None,
    });
    let customer_id = message
        .from
        .clone()
        .filter(|f| !f.is_empty())
        .or(msisdn)
        .ok_or_else(|| malformed("a received message without a sender".into()))?;
    let name = contact.and_then(|c| {
        let full = [c.first_name, c.last_name]
            .into_iter()
            .flatten()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if full.is_empty() { c.display_name.filter(|n| !n.is_empty()) } else { Some(full) }
    });
    let content = &message.content;
    let str_at = |pointer: &str| content.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty());
    let mut kind = InboundKind::Message;
    let mut text = str_at("/text").map(str::to_owned);
    let mut attachments = Vec::new();
    match message.kind.as_deref().unwrap_or("text") {
        media @ ("image" | "video" | "audio" | "file") => {
            if let Some(url) = str_at(&format!("/{media}/url")) {
                let kind = match media {
                    "image" => AttachmentKind::Image,
                    "video" => AttachmentKind::Video,
                    "audio" => AttachmentKind::Audio,
                    _ => AttachmentKind::Document,
                };
                attachments.push(Attachment {
                    kind,
                    file_ref: url.to_owned(),
                    mime: None,
                    size: None,
                    name: None,
                });
            }
            text = text.or_else(|| str_at(&format!("/{media}/caption")).map(str::to_owned));
        }
        "location" => {
            let coordinate =
                |axis: &str| content.pointer(&format!("/location/{axis}")).and_then(Value::as_f64);
            if let (Some(latitude), Some(longitude)) = (coordinate("latitude"), coordinate("longitude")) {
                attachments.push(Attachment {
                    kind: AttachmentKind::Location,
                    file_ref: format!("{latitude},{longitude}"),
                    mime: None,
                    size: None,
                    name: None,
                });
            }
        }
        "whatsappSticker" => {
            if let Some(link) = str_at("/whatsappSticker/link") {
                attachments.push(Attachment {
                    kind: AttachmentKind::Sticker,
                    file_ref: link.to_owned(),
                    mime: None,
                    size: None,
                    name: None,
                });
            }
        }
        "interactive" => {
            // A reply button press: the payload is the button's id.
            if let Some(reply) = str_at("/interactive/reply/id").or_else(|| str_at("/interactive/reply/text"))
            {
                kind = InboundKind::ButtonReply;
                text = Some(reply.to_owned());
            }
        }
        _ => {}
    }
    if text.is_none() && attachments.is_empty() {
        return Ok(None);
    }
    Ok(Some(InboundMessage {
        dedup_key: message.id.clone(),
        kind,
        customer: Customer { id: customer_id, name, handle: None },
        provider_message_id: Some(message.id),
        text,
        attachments,
        sent_at: message.created_datetime.as_deref().and_then(|t| t.parse().ok()),
    }))
}

fn status_of(message: &CbMessage) -> Option<StatusUpdate> {
    if message.id.is_empty() {
        return None;
    }
    let status = match message.status.as_deref()? {
        "sent" => OutStatus::Sent,
        "delivered" | "read" => OutStatus::Delivered,
        "failed" | "rejected" | "deleted" => OutStatus::Failed,
        _ => return None,
    };
    let reason = (status == OutStatus::Failed).then(|| message.status.clone()).flatten();
    Some(StatusUpdate { provider_message_id: message.id.clone(), status, reason })
}

/// Bird's `whatsapp.inbound`: the customer's text, or a quick-reply press (`actions[].postback.payload`).
fn parse_bird_event(event: &str, value: &Value) -> Result<Parsed, WebhookError> {
    if event != "whatsapp.inbound" {
        return Ok(Parsed::default());
    }
    let payload = value.get("payload").ok_or_else(|| malformed("an event without a payload".into()))?;
    let str_at = |pointer: &str| payload.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty());
    if str_at("/direction").is_some_and(|d| d != "incoming") {
        return Ok(Parsed::default());
    }
    let id = str_at("/id").ok_or_else(|| malformed("a message without an id".into()))?;
    let customer_id = str_at("/sender/contact/identifierValue")
        .ok_or_else(|| malformed("a message without a sender".into()))?;
    // Bird keeps the WhatsApp profile name as the contact's annotation, sometimes wrapped in quotes.
    let name = str_at("/sender/contact/annotations/name")
        .map(|n| n.trim_matches('"').to_owned())
        .filter(|n| !n.is_empty());
    let postback = payload
        .pointer("/body/text/actions")
        .and_then(Value::as_array)
        .and_then(|actions| actions.iter().find_map(|a| a.pointer("/postback/payload")?.as_str()))
        .filter(|p| !p.is_empty());
    let (kind, text) = match postback {
        Some(payload) => (InboundKind::ButtonReply, Some(payload.to_owned())),
        None => (InboundKind::Message, str_at("/body/text/text").map(str::to_owned)),
    };
    let Some(text) = text else {
        return Ok(Parsed::default());
    };
    let message = InboundMessage {
        dedup_key: id.to_owned(),
        kind,
        customer: Customer { id: customer_id.to_owned(), name, handle: None },
        provider_message_id: Some(id.to_owned()),
        text: Some(text),
        attachments: Vec::new(),
        sent_at: str_at("/createdAt").and_then(|t| t.parse().ok()),
    };
    Ok(Parsed { messages: vec![message], statuses: Vec::new() })
}
