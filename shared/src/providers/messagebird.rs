//! WhatsApp through MessageBird's Conversations API: verify `MessageBird-Signature-JWT` (and Bird's HMAC
//! headers), normalize inbound messages and status updates, send text and template (HSM) messages.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, Outgoing, ProviderError, Purpose, Sent,
    StatusUpdate, WebhookError, WebhookRequest, failure_description, json_answer, required_credential,
    retry_after_header, text_with_options, transport_error,
};
use crate::domain::{Account, Attachment, AttachmentKind, Customer, InboundKind, InboundMessage, OutStatus};
use crate::error::{Error, Result as AppResult};
use crate::secret::Secret;

pub const DEFAULT_API_BASE: &str = "https://conversations.messagebird.com";
/// The current scheme: a JWT over the URL and the body, signed with the account's signing key.
pub const SIGNATURE_JWT_HEADER: &str = "messagebird-signature-jwt";
/// Bird webhooks (and the legacy Conversations scheme): a base64 HMAC-SHA256 with a timestamp header.
pub const SIGNATURE_HEADER: &str = "messagebird-signature";
pub const TIMESTAMP_HEADER: &str = "messagebird-request-timestamp";

/// The credentials of a MessageBird channel (`namespace_id` is optional).
pub const ACCESS_KEY: &str = "access_key";
pub const CHANNEL_ID: &str = "channel_id";
pub const SIGNING_KEY: &str = "signing_key";
pub const NAMESPACE_ID: &str = "namespace_id";

const PROVIDER: &str = "whatsapp-messagebird";
const ISSUER: &str = "MessageBird";
/// The clock skew the official SDKs tolerate on `nbf` and `exp`.
const MAX_SKEW_SECONDS: i64 = 1;
/// Used when a 429 carries no `Retry-After`.
/// The webhook list is paged; a channel has a handful of webhooks, so a few pages are plenty.
const WEBHOOK_PAGE_SIZE: usize = 20;
const WEBHOOK_MAX_PAGES: usize = 50;
const INVALID_KEY: &str = "MessageBird refused the access key / MessageBird не принял ключ доступа";
const UNKNOWN_CHANNEL: &str =
    "no such channel for this access key / канал с таким ID не найден для этого ключа доступа";

// --- verification ---

/// Why a `MessageBird-Signature-JWT` was refused. The texts are those of the official SDKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is malformed")]
    Malformed,
    #[error("signing method is invalid")]
    Algorithm,
    #[error("signature is invalid")]
    Signature,
    #[error("claim iss has wrong value")]
    Issuer,
    #[error("claim nbf is in the future")]
    NotYetValid,
    #[error("claim exp is in the past")]
    Expired,
    #[error("claim jti is empty or missing")]
    MissingJti,
    #[error("claim url_hash is invalid")]
    UrlHash,
    #[error("claim payload_hash is set but actual payload is missing")]
    UnexpectedPayloadHash,
    #[error("claim payload_hash is not set but payload is present")]
    MissingPayloadHash,
    #[error("claim payload_hash is invalid")]
    PayloadHash,
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

#[derive(Deserialize)]
struct JwtClaims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    nbf: i64,
    #[serde(default)]
    exp: i64,
    #[serde(default)]
    jti: String,
    #[serde(default)]
    url_hash: String,
    #[serde(default)]
    payload_hash: Option<String>,
}

/// Verifies a `MessageBird-Signature-JWT` header: an HMAC JWT (HS256/384/512 only; `none` and everything
/// else is refused) signed with the signing key, issued by MessageBird, valid at `now` (±1 s), whose
/// `url_hash` is the SHA-256 of the exact URL MessageBird called and whose `payload_hash` is the SHA-256 of
/// the raw body (absent exactly when the body is empty).
pub fn verify_signature_jwt(
    token: &str,
    signing_key: &Secret,
    url: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<(), JwtError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: JwtHeader = decode_json_part(header_b64)?;
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| JwtError::Malformed)?;
    let key = signing_key.expose().as_bytes();
    let genuine = match header.alg.as_str() {
        "HS256" => mac_matches::<Hmac<Sha256>>(key, signing_input, &signature),
        "HS384" => mac_matches::<Hmac<Sha384>>(key, signing_input, &signature),
        "HS512" => mac_matches::<Hmac<Sha512>>(key, signing_input, &signature),
        _ => return Err(JwtError::Algorithm),
    };
    // An empty key would make anyone's token "genuine": a channel without one verifies nothing.
    if key.is_empty() || !genuine {
        return Err(JwtError::Signature);
    }
    let claims: JwtClaims = decode_json_part(claims_b64)?;
    if claims.iss != ISSUER {
        return Err(JwtError::Issuer);
    }
    let now = now.as_second();
    if now < claims.nbf.saturating_sub(MAX_SKEW_SECONDS) {
        return Err(JwtError::NotYetValid);
    }
    if now > claims.exp.saturating_add(MAX_SKEW_SECONDS) {
        return Err(JwtError::Expired);
    }
    if claims.jti.is_empty() {
        return Err(JwtError::MissingJti);
    }
    if claims.url_hash != sha256_hex(url.as_bytes()) {
        return Err(JwtError::UrlHash);
    }
    match (claims.payload_hash.filter(|h| !h.is_empty()), body.is_empty()) {
        (None, true) => Ok(()),
        (Some(_), true) => Err(JwtError::UnexpectedPayloadHash),
        (None, false) => Err(JwtError::MissingPayloadHash),
        (Some(hash), false) if hash == sha256_hex(body) => Ok(()),
        (Some(_), false) => Err(JwtError::PayloadHash),
    }
}

/// The `MessageBird-Signature-JWT` MessageBird would send for this request (HS256, valid for a minute from
/// `now`): for simulating MessageBird against a local bundle, and for tests.
pub fn sign_webhook(signing_key: &Secret, url: &str, body: &[u8], now: Timestamp, jti: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut claims = json!({
        "iss": ISSUER,
        "nbf": now.as_second(),
        "exp": now.as_second() + 60,
        "jti": jti,
        "url_hash": sha256_hex(url.as_bytes()),
    });
    if !body.is_empty() {
        claims["payload_hash"] = json!(sha256_hex(body));
    }
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let signature = match <Hmac<Sha256> as KeyInit>::new_from_slice(signing_key.expose().as_bytes()) {
        Ok(mut mac) => {
            mac.update(signing_input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("{signing_input}.{signature}")
}

/// Verifies the `MessageBird-Signature` header of Bird webhooks:
/// base64(HMAC-SHA256(key, timestamp + "\n" + URL + "\n" + SHA-256(body))). The legacy Conversations
/// scheme has the same shape with the URL's query string in place of the URL; both are accepted.
pub fn verify_request_signature(
    signature_b64: &str,
    timestamp: &str,
    url: &str,
    body: &[u8],
    signing_key: &Secret,
) -> bool {
    let key = signing_key.expose().as_bytes();
    let Ok(signature) = STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    if key.is_empty() || timestamp.is_empty() {
        return false;
    }
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let body_hash = Sha256::digest(body);
    [url, query].iter().any(|signed| {
        let mut message = Vec::with_capacity(timestamp.len() + signed.len() + 34);
        message.extend_from_slice(timestamp.as_bytes());
        message.push(b'\n');
        message.extend_from_slice(signed.as_bytes());
        message.push(b'\n');
        message.extend_from_slice(&body_hash);
        mac_matches::<Hmac<Sha256>>(key, &message, &signature)
    })
}

/// Checks a request with whichever scheme it carries: the JWT when present (no fallback), else the HMAC.
fn verify_request(
    request: &WebhookRequest,
    signing_key: &Secret,
    now: Timestamp,
) -> Result<(), WebhookError> {
    // Without the URL MessageBird called, the url_hash cannot be checked: refuse rather than skip it.
    if request.webhook_url.is_empty() {
        return Err(WebhookError::Unauthorized);
    }
    if let Some(token) = request.header(SIGNATURE_JWT_HEADER) {
        return verify_signature_jwt(token, signing_key, &request.webhook_url, &request.body, now)
            .map_err(|_| WebhookError::Unauthorized);
    }
    match (request.header(SIGNATURE_HEADER), request.header(TIMESTAMP_HEADER)) {
        (Some(signature), Some(timestamp))
            if verify_request_signature(
                signature,
                timestamp,
                &request.webhook_url,
                &request.body,
                signing_key,
            ) =>
        {
            Ok(())
        }
        _ => Err(WebhookError::Unauthorized),
    }
}

fn mac_matches<M: Mac + KeyInit>(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            // Constant time: `verify_slice` compares without an early exit.
            mac.verify_slice(tag).is_ok()
        }
        Err(_) => false,
    }
}

fn decode_json_part<T: DeserializeOwned>(part: &str) -> Result<T, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

// --- parsing ---

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
        customer: Customer { id: customer_id, name },
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
        customer: Customer { id: customer_id.to_owned(), name },
        provider_message_id: Some(id.to_owned()),
        text: Some(text),
        attachments: Vec::new(),
        sent_at: str_at("/createdAt").and_then(|t| t.parse().ok()),
    };
    Ok(Parsed { messages: vec![message], statuses: Vec::new() })
}

// --- client ---

/// A MessageBird channel as the Conversations API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelInfo {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub platform_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// An approved WhatsApp template (HSM): the only message that may start a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMessage {
    pub template_name: String,
    /// `en`, `en_US`, ...
    pub language: String,
    /// The placeholders' values, in order.
    pub params: Vec<String>,
}

/// Calls the Conversations API. The access key is passed per call: one process serves many channels.
#[derive(Debug, Clone)]
pub struct MessageBirdClient {
    http: reqwest::Client,
    base: String,
}

impl MessageBirdClient {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self { http, base: base.into().trim_end_matches('/').to_owned() }
    }

    /// `MESSAGEBIRD_API_BASE` points the client at a fake (local runner, tests) or the WhatsApp sandbox.
    pub fn from_env(http: reqwest::Client) -> Self {
        let base = super::base_url_from_env("MESSAGEBIRD_API_BASE", DEFAULT_API_BASE);
        Self::new(http, base)
    }

    /// The channel behind `channel_id`, or `None` when the key cannot see such a channel. A refused key is
    /// `InvalidCredentials`.
    pub async fn get_channel(
        &self,
        access_key: &Secret,
        channel_id: &str,
    ) -> Result<Option<ChannelInfo>, ProviderError> {
        let url = self.endpoint(&["v1", "channels", channel_id])?;
        let (status, retry_after, body) = self.call(Method::GET, url, access_key, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        interpret(status, retry_after, &body, Purpose::CredentialCheck, access_key).map(Some)
    }

    /// Subscribes `url` to the channel's message events.
    pub async fn create_webhook(
        &self,
        access_key: &Secret,
        channel_id: &str,
        url: &str,
    ) -> Result<(), ProviderError> {
        let body = json!({
            "channelId": channel_id,
            "events": ["message.created", "message.updated"],
            "url": url,
        });
        let endpoint = self.endpoint(&["v1", "webhooks"])?;
        self.request::<Value>(Method::POST, endpoint, access_key, Some(&body)).await.map(drop)
    }

    /// Deletes the channel's webhooks whose URL contains `needle` (the channel's webhook secret, so that
    /// the webhook of another channel on the same MessageBird channel is left alone). Answers how many.
    pub async fn delete_webhooks_matching(
        &self,
        access_key: &Secret,
        channel_id: &str,
        needle: &str,
    ) -> Result<usize, ProviderError> {
        if needle.is_empty() {
            return Ok(0);
        }
        let mut doomed = Vec::new();
        for page in 0..WEBHOOK_MAX_PAGES {
            let mut url = self.endpoint(&["v1", "webhooks"])?;
            url.query_pairs_mut()
                .append_pair("limit", &WEBHOOK_PAGE_SIZE.to_string())
                .append_pair("offset", &(page * WEBHOOK_PAGE_SIZE).to_string());
            let list: WebhookList = self.request(Method::GET, url, access_key, None).await?;
            let count = list.items.len();
            doomed.extend(
                list.items
                    .into_iter()
                    .filter(|w| w.channel_id.as_deref().is_none_or(|c| c == channel_id))
                    .filter(|w| w.url.contains(needle))
                    .map(|w| w.id),
            );
            if count < WEBHOOK_PAGE_SIZE
                || list.total_count.is_some_and(|t| (page + 1) * WEBHOOK_PAGE_SIZE >= t)
            {
                break;
            }
        }
        for id in &doomed {
            let url = self.endpoint(&["v1", "webhooks", id])?;
            self.request::<Value>(Method::DELETE, url, access_key, None).await?;
        }
        Ok(doomed.len())
    }

    /// Sends a text (quick replies become numbered options: the Conversations API's button format is not
    /// confirmed).
    pub async fn send_text(
        &self,
        access_key: &Secret,
        channel_id: &str,
        out: &Outgoing,
    ) -> Result<Sent, ProviderError> {
        let body = json!({
            "to": out.customer_id,
            "from": channel_id,
            "type": "text",
            "content": {"text": text_with_options(&out.text, &out.buttons)},
        });
        self.send_body(access_key, &body).await
    }

    /// Sends an approved template (HSM) from the channel's namespace: how a business starts a conversation.
    pub async fn send_hsm(
        &self,
        access_key: &Secret,
        channel_id: &str,
        namespace: &Secret,
        to: &str,
        template: &TemplateMessage,
    ) -> Result<Sent, ProviderError> {
        let params: Vec<Value> = template.params.iter().map(|p| json!({ "default": p })).collect();
        let body = json!({
            "to": to,
            "from": channel_id,
            "type": "hsm",
            "content": {"hsm": {
                "namespace": namespace.expose(),
                "templateName": template.template_name,
                "language": {"policy": "deterministic", "code": template.language},
                "params": params,
            }},
        });
        self.send_body(access_key, &body).await
    }

    /// Starts a conversation with a template, which WhatsApp allows only from a namespace: without one the
    /// answer is a 422 naming `credentials.namespace_id`.
    pub async fn start_conversation(
        &self,
        secrets: &ChannelSecrets,
        to: &str,
        template: &TemplateMessage,
    ) -> AppResult<Sent> {
        let namespace = require_namespace(secrets)?;
        let access_key = secrets.require(ACCESS_KEY)?;
        let channel_id = secrets.require(CHANNEL_ID)?;
        Ok(self.send_hsm(access_key, channel_id.expose(), namespace, to, template).await?)
    }

    async fn send_body(&self, access_key: &Secret, body: &Value) -> Result<Sent, ProviderError> {
        let url = self.endpoint(&["v1", "send"])?;
        let sent: SendResponse = self.request(Method::POST, url, access_key, Some(body)).await?;
        Ok(Sent { provider_message_id: Some(sent.id) })
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        let mut url = Url::parse(&self.base)
            .map_err(|_| ProviderError::Unavailable("the MessageBird base URL is not a URL".into()))?;
        url.path_segments_mut()
            .map_err(|_| ProviderError::Unavailable("the MessageBird base URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        access_key: &Secret,
        body: Option<&Value>,
    ) -> Result<T, ProviderError> {
        let (status, retry_after, bytes) = self.call(method, url, access_key, body).await?;
        interpret(status, retry_after, &bytes, Purpose::Operation, access_key)
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        access_key: &Secret,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), ProviderError> {
        let path = url.path().to_owned();
        let mut request = self
            .http
            .request(method, url)
            .header("Authorization", format!("AccessKey {}", access_key.expose()));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after_header(response.headers());
        let bytes = response.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            tracing::warn!(path, status = status.as_u16(), "messagebird call failed");
        }
        Ok((status, retry_after, bytes.to_vec()))
    }
}

#[derive(Deserialize)]
struct SendResponse {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookList {
    #[serde(default)]
    items: Vec<WebhookItem>,
    total_count: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookItem {
    id: String,
    #[serde(default)]
    url: String,
    channel_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    description: Option<String>,
}

/// The one place a Conversations API answer becomes a result or a `ProviderError`.
fn interpret<T: DeserializeOwned>(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    purpose: Purpose,
    access_key: &Secret,
) -> Result<T, ProviderError> {
    if status.is_success() {
        return json_answer(body, "MessageBird");
    }
    let found = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().find_map(|e| e.description));
    let description = failure_description(status.as_u16(), found, &[access_key]);
    Err(super::http_failure(status.as_u16(), description, retry_after, purpose.refusal(INVALID_KEY)))
}

/// Whether the business may write first on this channel: only with a namespace (template messages).
pub fn can_start_conversation(secrets: &ChannelSecrets) -> bool {
    secrets.get(NAMESPACE_ID).is_some_and(|n| !n.expose().is_empty())
}

/// The namespace for a conversation the business starts, or the 422 that says one is needed.
pub fn require_namespace(secrets: &ChannelSecrets) -> AppResult<&Secret> {
    secrets.get(NAMESPACE_ID).filter(|n| !n.expose().is_empty()).ok_or_else(|| {
        Error::rule(
            "namespace_required",
            format!("credentials.{NAMESPACE_ID}"),
            "starting a WhatsApp conversation needs a template namespace (Namespace ID) / чтобы написать \
             первым, укажите Namespace ID шаблонов",
        )
    })
}

/// Channel ids go into request paths: only the characters MessageBird's ids are made of.
fn is_plausible_channel_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[async_trait]
impl ChannelProvider for MessageBirdClient {
    async fn connect(&self, credentials: &Map<String, Value>) -> AppResult<Connection> {
        let access_key = required_credential(credentials, ACCESS_KEY)?;
        let channel_id = required_credential(credentials, CHANNEL_ID)?;
        let signing_key = required_credential(credentials, SIGNING_KEY)?;
        let namespace = credentials
            .get(NAMESPACE_ID)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(Secret::new);
        let unknown_channel =
            || Error::rule("channel_not_found", format!("credentials.{CHANNEL_ID}"), UNKNOWN_CHANNEL);
        if !is_plausible_channel_id(channel_id.expose()) {
            return Err(unknown_channel());
        }
        let channel = match self.get_channel(&access_key, channel_id.expose()).await {
            Ok(Some(channel)) => channel,
            Ok(None) => return Err(unknown_channel()),
            Err(ProviderError::InvalidCredentials(_)) => {
                return Err(Error::rule(
                    "invalid_access_key",
                    format!("credentials.{ACCESS_KEY}"),
                    INVALID_KEY,
                ));
            }
            Err(other) => return Err(other.into()),
        };
        if channel.platform_id.as_deref().is_some_and(|p| !p.eq_ignore_ascii_case("whatsapp")) {
            return Err(Error::rule(
                "not_whatsapp",
                format!("credentials.{CHANNEL_ID}"),
                "this MessageBird channel is not a WhatsApp channel / это не канал WhatsApp",
            ));
        }
        // The channel's phone number is not part of any confirmed response: the channel id is the stable
        // account id, and the channel's name (as set in the dashboard) what the admin sees.
        let name =
            channel.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| channel_id.expose().to_owned());
        let mut masked: std::collections::BTreeMap<String, String> = [
            (ACCESS_KEY.to_owned(), access_key.masked()),
            (CHANNEL_ID.to_owned(), channel_id.masked()),
            (SIGNING_KEY.to_owned(), signing_key.masked()),
        ]
        .into();
        let mut secrets = ChannelSecrets::default()
            .with(ACCESS_KEY, access_key)
            .with(CHANNEL_ID, channel_id.clone())
            .with(SIGNING_KEY, signing_key);
        if let Some(namespace) = namespace {
            masked.insert(NAMESPACE_ID.to_owned(), namespace.masked());
            secrets = secrets.with(NAMESPACE_ID, namespace);
        }
        Ok(Connection { account: Account { id: channel_id.expose().to_owned(), name }, secrets, masked })
    }

    /// MessageBird signs its requests, but the URL still carries the channel's webhook secret: it is how
    /// `remove_webhook` recognizes this channel's webhook among those of the same MessageBird channel.
    fn secret_in_webhook_path(&self) -> bool {
        true
    }

    async fn register_webhook(&self, secrets: &ChannelSecrets, url: &str) -> AppResult<()> {
        let channel_id = secrets.require(CHANNEL_ID)?;
        Ok(self.create_webhook(secrets.require(ACCESS_KEY)?, channel_id.expose(), url).await?)
    }

    async fn remove_webhook(&self, secrets: &ChannelSecrets) -> AppResult<()> {
        let Some(secret) = secrets.get(ChannelSecrets::WEBHOOK_SECRET) else {
            return Ok(());
        };
        let channel_id = secrets.require(CHANNEL_ID)?;
        self.delete_webhooks_matching(secrets.require(ACCESS_KEY)?, channel_id.expose(), secret.expose())
            .await?;
        Ok(())
    }

    fn receive(&self, secrets: &ChannelSecrets, request: &WebhookRequest) -> Result<Delivery, WebhookError> {
        let path_secret = secrets.for_verifying(ChannelSecrets::WEBHOOK_SECRET)?;
        if !request.path_secret.as_deref().is_some_and(|s| path_secret.matches(s)) {
            return Err(WebhookError::Unauthorized);
        }
        verify_request(request, secrets.for_verifying(SIGNING_KEY)?, Timestamp::now())?;
        let parsed = parse_event(&request.body)?;
        Ok(Delivery { messages: parsed.messages, statuses: parsed.statuses, reply: Default::default() })
    }

    async fn send(&self, secrets: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError> {
        let missing =
            || ProviderError::InvalidCredentials("the channel has no MessageBird credentials".into());
        let access_key = secrets.get(ACCESS_KEY).ok_or_else(missing)?;
        let channel_id = secrets.get(CHANNEL_ID).ok_or_else(missing)?;
        self.send_text(access_key, channel_id.expose(), out).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChannelId, Provider};
    use crate::test_support::fixture;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const ACCESS: &str = "live_AccessKeyValue0123456789";
    const SIGNING: &str = "signingKeyValue0123456789abcdef";
    const CHANNEL: &str = "11a976e320d04baaa01382783727e8c5";
    const HOOK_SECRET: &str = "HookSecret0123456789HookSecret0123456789HookSecr";
    const URL: &str = "https://omnichat.example.test/webhooks/whatsapp-messagebird/chan-1/HookSecret";

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    // --- signature ---

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        #[serde(default)]
        secret: String,
        url: String,
        #[serde(default)]
        payload: String,
        timestamp: String,
        token: String,
        valid: bool,
        #[serde(default)]
        reason: String,
    }

    fn expected_error(reason: &str) -> JwtError {
        match reason.trim_start_matches("invalid jwt: ") {
            "claim nbf is in the future" => JwtError::NotYetValid,
            "claim exp is in the past" => JwtError::Expired,
            "claim url_hash is invalid" => JwtError::UrlHash,
            "claim payload_hash is invalid" => JwtError::PayloadHash,
            "signature is invalid" => JwtError::Signature,
            "claim payload_hash is set but actual payload is missing" => JwtError::UnexpectedPayloadHash,
            "claim payload_hash is not set but payload is present" => JwtError::MissingPayloadHash,
            "signing method none is invalid" => JwtError::Algorithm,
            other => panic!("a reason the test does not know: {other}"),
        }
    }

    #[test]
    fn all_official_signature_jwt_vectors_pass() {
        let vectors: Vec<Vector> =
            serde_json::from_slice(&fixture("messagebird_signature_jwt_testvectors.json")).unwrap();
        assert_eq!(vectors.len(), 43);
        for v in &vectors {
            let outcome = verify_signature_jwt(
                &v.token,
                &Secret::new(&v.secret),
                &v.url,
                v.payload.as_bytes(),
                ts(&v.timestamp),
            );
            if v.valid {
                assert_eq!(outcome, Ok(()), "{}", v.name);
            } else {
                assert_eq!(outcome, Err(expected_error(&v.reason)), "{}", v.name);
            }
        }
    }

    #[test]
    fn jwt_edge_cases_are_refused() {
        let now = ts("2024-01-01T00:00:00Z");
        let key = Secret::new(SIGNING);
        let token = sign_webhook(&key, URL, b"{}", now, "jti-1");
        assert_eq!(verify_signature_jwt(&token, &key, URL, b"{}", now), Ok(()));
        // One second of skew either way is tolerated, two are not.
        assert_eq!(
            verify_signature_jwt(&token, &key, URL, b"{}", now - jiff::SignedDuration::from_secs(1)),
            Ok(())
        );
        assert_eq!(
            verify_signature_jwt(&token, &key, URL, b"{}", now - jiff::SignedDuration::from_secs(2)),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            verify_signature_jwt(&token, &key, URL, b"{}", now + jiff::SignedDuration::from_secs(62)),
            Err(JwtError::Expired)
        );
        assert_eq!(
            verify_signature_jwt(&token, &Secret::new("other"), URL, b"{}", now),
            Err(JwtError::Signature)
        );
        assert_eq!(verify_signature_jwt(&token, &Secret::new(""), URL, b"{}", now), Err(JwtError::Signature));
        assert_eq!(
            verify_signature_jwt(&token, &key, "https://evil.test/", b"{}", now),
            Err(JwtError::UrlHash)
        );
        assert_eq!(verify_signature_jwt(&token, &key, URL, b"{ }", now), Err(JwtError::PayloadHash));
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!", &token.replace('.', "")] {
            assert_eq!(verify_signature_jwt(bad, &key, URL, b"{}", now), Err(JwtError::Malformed), "{bad}");
        }
        // A token whose claims are tampered with no longer matches its signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            json!({"iss": "MessageBird", "nbf": 0, "exp": i64::MAX, "jti": "x", "url_hash": sha256_hex(URL.as_bytes())})
                .to_string(),
        );
        parts[1] = &forged;
        assert_eq!(verify_signature_jwt(&parts.join("."), &key, URL, b"", now), Err(JwtError::Signature));
        // Another issuer, signed with the right key.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            json!({"iss": "Mallory", "nbf": now.as_second(), "exp": now.as_second() + 60, "jti": "x",
                   "url_hash": sha256_hex(URL.as_bytes())})
            .to_string(),
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SIGNING.as_bytes()).unwrap();
        mac.update(format!("{header}.{claims}").as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            verify_signature_jwt(&format!("{header}.{claims}.{signature}"), &key, URL, b"", now),
            Err(JwtError::Issuer)
        );
    }

    #[test]
    fn legacy_and_bird_hmac_signatures_verify() {
        // The legacy Conversations signature of the saved real webhook (the file has a trailing newline).
        let body = fixture("messagebird_conversations_text_received.json");
        let body = body.strip_suffix(b"\n").unwrap_or(&body);
        let key = Secret::new("tN3jfxydr6DtgJhUX0zsiiGZaREoRFud");
        let signature = "it26SSv/qkoxQ5xfPe5MYF9nddcHbqMTcToqLL4+Udk=";
        assert!(verify_request_signature(signature, "1591949471", "https://example.com/hook", body, &key));
        assert!(!verify_request_signature(signature, "1591949472", "https://example.com/hook", body, &key));
        assert!(!verify_request_signature(
            signature,
            "1591949471",
            "https://example.com/hook?x=1",
            body,
            &key
        ));
        assert!(!verify_request_signature(signature, "1591949471", "https://example.com/hook", b"{}", &key));
        assert!(!verify_request_signature(
            signature,
            "1591949471",
            "https://example.com/hook",
            body,
            &Secret::new("x")
        ));
        assert!(!verify_request_signature(
            "not base64!",
            "1591949471",
            "https://example.com/hook",
            body,
            &key
        ));
        // Bird: the full URL is signed (expected value computed independently with Python's hmac).
        let bird = fixture("messagebird_bird_whatsapp_inbound_quickreply_unverified.json");
        let url = "https://omnichat.example.test/webhooks/whatsapp-messagebird/chan/secret";
        let key = Secret::new("bird-signing-key-0123456789");
        let signature = "7zwqFy2b8IcvxHAk6XSUYHi/6HG0BiHmvvJM4jL9wLU=";
        assert!(verify_request_signature(signature, "1761279226", url, &bird, &key));
        assert!(!verify_request_signature(signature, "1761279226", "https://other.test/", &bird, &key));
        assert!(!verify_request_signature(signature, "1761279226", url, &bird, &Secret::new("")));
    }

    // --- parsing ---

    #[test]
    fn parses_the_conversations_text_fixture() {
        let parsed = parse_event(&fixture("messagebird_conversations_text_received.json")).unwrap();
        assert!(parsed.statuses.is_empty());
        assert_eq!(
            parsed.messages,
            vec![InboundMessage {
                dedup_key: "b88ff4db73be4bd58c2c56cb3bbb1004".into(),
                kind: InboundKind::Message,
                customer: Customer { id: "+393383342437".into(), name: Some("393383342437".into()) },
                provider_message_id: Some("b88ff4db73be4bd58c2c56cb3bbb1004".into()),
                text: Some("hi".into()),
                attachments: vec![],
                sent_at: Some(ts("2020-06-12T08:11:10Z")),
            }]
        );
    }

    #[test]
    fn parses_the_bird_quick_reply_fixture() {
        let parsed =
            parse_event(&fixture("messagebird_bird_whatsapp_inbound_quickreply_unverified.json")).unwrap();
        assert_eq!(
            parsed.messages,
            vec![InboundMessage {
                dedup_key: "1ab6a0cb-f01b-4ec3-b589-ce0a8c271d32".into(),
                kind: InboundKind::ButtonReply,
                customer: Customer { id: "+201066101340".into(), name: Some("Malek&karma&Hamza".into()) },
                provider_message_id: Some("1ab6a0cb-f01b-4ec3-b589-ce0a8c271d32".into()),
                text: Some("شكر".into()),
                attachments: vec![],
                sent_at: Some(ts("2025-10-24T04:13:46.277Z")),
            }]
        );
    }

    fn with_message(event: &str, message: Value) -> Vec<u8> {
        json!({"type": event, "message": message, "contact": {"msisdn": 31612345678_u64, "firstName": "Jan", "lastName": "de Vries"}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn our_own_messages_are_not_customer_messages_and_their_updates_are_statuses() {
        let echo = with_message(
            "message.created",
            json!({"id": "m1", "direction": "sent", "status": "pending", "type": "text", "content": {"text": "hello"}}),
        );
        assert_eq!(parse_event(&echo).unwrap(), Parsed::default());
        for (status, expected) in [
            ("sent", Some(OutStatus::Sent)),
            ("delivered", Some(OutStatus::Delivered)),
            ("read", Some(OutStatus::Delivered)),
            ("failed", Some(OutStatus::Failed)),
            ("pending", None),
        ] {
            let body = with_message(
                "message.updated",
                json!({"id": "m1", "direction": "sent", "status": status, "type": "text", "content": {"text": "x"}}),
            );
            let statuses = parse_event(&body).unwrap().statuses;
            assert_eq!(statuses.first().map(|s| s.status), expected, "{status}");
            if let Some(update) = statuses.first() {
                assert_eq!(update.provider_message_id, "m1");
                assert_eq!(update.reason.is_some(), expected == Some(OutStatus::Failed));
            }
        }
        // Updates of received messages, conversation events and other Bird events are acknowledged.
        let received_update =
            with_message("message.updated", json!({"id": "m2", "direction": "received", "status": "read"}));
        assert_eq!(parse_event(&received_update).unwrap(), Parsed::default());
        assert_eq!(
            parse_event(br#"{"type":"conversation.created","conversation":{}}"#).unwrap(),
            Parsed::default()
        );
        assert_eq!(parse_event(br#"{"event":"whatsapp.outbound","payload":{}}"#).unwrap(), Parsed::default());
        let bird_out = br#"{"event":"whatsapp.inbound","payload":{"id":"x","direction":"outgoing"}}"#;
        assert_eq!(parse_event(bird_out).unwrap(), Parsed::default());
    }

    #[test]
    fn normalizes_media_location_and_button_replies() {
        let image = with_message(
            "message.created",
            json!({"id": "m3", "direction": "received", "from": "+31612345678", "type": "image",
                   "content": {"image": {"url": "https://media.messagebird.com/v1/media/abc", "caption": "look"}},
                   "createdDatetime": "2024-01-01T10:00:00Z"}),
        );
        let m = parse_event(&image).unwrap().messages.remove(0);
        assert_eq!(m.customer, Customer { id: "+31612345678".into(), name: Some("Jan de Vries".into()) });
        assert_eq!(m.text.as_deref(), Some("look"));
        assert_eq!(
            m.attachments,
            vec![Attachment {
                kind: AttachmentKind::Image,
                file_ref: "https://media.messagebird.com/v1/media/abc".into(),
                mime: None,
                size: None,
                name: None,
            }]
        );
        let location = with_message(
            "message.created",
            json!({"id": "m4", "direction": "received", "type": "location",
                   "content": {"location": {"latitude": 52.37, "longitude": 4.89}}}),
        );
        let m = parse_event(&location).unwrap().messages.remove(0);
        assert_eq!(m.customer.id, "+31612345678", "falls back to the contact's msisdn");
        assert_eq!(m.attachments[0].kind, AttachmentKind::Location);
        assert_eq!(m.attachments[0].file_ref, "52.37,4.89");
        assert_eq!(m.sent_at, None);
        let button = with_message(
            "message.created",
            json!({"id": "m5", "direction": "received", "from": "+3161", "type": "interactive",
                   "content": {"interactive": {"type": "button_reply", "reply": {"id": "yes", "text": "Yes"}}}}),
        );
        let m = parse_event(&button).unwrap().messages.remove(0);
        assert_eq!((m.kind, m.text.as_deref()), (InboundKind::ButtonReply, Some("yes")));
        let empty = with_message(
            "message.created",
            json!({"id": "m6", "direction": "received", "from": "+3161", "type": "hsm", "content": {}}),
        );
        assert_eq!(parse_event(&empty).unwrap(), Parsed::default());
    }

    #[test]
    fn refuses_malformed_bodies() {
        for body in [
            &b"not json"[..],
            b"",
            b"[1,2]",
            br#"{"message":{"id":"x"}}"#,
            br#"{"type":"message.created"}"#,
            br#"{"type":"message.created","message":{"direction":"received"}}"#,
            br#"{"type":"message.created","message":{"id":"x","direction":"received","content":{"text":"hi"}}}"#,
            br#"{"event":"whatsapp.inbound"}"#,
            br#"{"event":"whatsapp.inbound","payload":{"direction":"incoming","body":{"type":"text","text":{"text":"x"}}}}"#,
        ] {
            match parse_event(body) {
                Err(WebhookError::Malformed { provider: "whatsapp-messagebird", .. }) => {}
                other => panic!("{}: expected Malformed, got {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    // --- receive ---

    fn channel_secrets() -> ChannelSecrets {
        ChannelSecrets::default()
            .with(ACCESS_KEY, Secret::new(ACCESS))
            .with(CHANNEL_ID, Secret::new(CHANNEL))
            .with(SIGNING_KEY, Secret::new(SIGNING))
            .with(ChannelSecrets::WEBHOOK_SECRET, Secret::new(HOOK_SECRET))
    }

    fn signed_request(body: &[u8], token: String, path_secret: Option<&str>) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            headers: vec![(SIGNATURE_JWT_HEADER.into(), token)],
            body: body.to_vec(),
            path_secret: path_secret.map(str::to_owned),
            webhook_url: URL.into(),
        }
    }

    fn client() -> MessageBirdClient {
        MessageBirdClient::new(reqwest::Client::new(), "http://127.0.0.1:9")
    }

    #[test]
    fn receive_checks_the_path_secret_and_the_signature_before_parsing() {
        let body = fixture("messagebird_conversations_text_received.json");
        let token = sign_webhook(&Secret::new(SIGNING), URL, &body, Timestamp::now(), "jti-1");
        let delivery =
            client().receive(&channel_secrets(), &signed_request(&body, token.clone(), Some(HOOK_SECRET)));
        let delivery = delivery.unwrap();
        assert_eq!(delivery.messages.len(), 1);
        assert_eq!(delivery.reply, Default::default());

        let refused = |request: WebhookRequest| {
            assert_eq!(client().receive(&channel_secrets(), &request), Err(WebhookError::Unauthorized));
        };
        refused(signed_request(&body, token.clone(), Some("wrong")));
        refused(signed_request(&body, token.clone(), None));
        refused(signed_request(b"{\"type\":\"message.created\"}", token.clone(), Some(HOOK_SECRET)));
        let wrong_key = sign_webhook(&Secret::new("not-the-key"), URL, &body, Timestamp::now(), "jti-1");
        refused(signed_request(&body, wrong_key, Some(HOOK_SECRET)));
        let mut no_url = signed_request(&body, token.clone(), Some(HOOK_SECRET));
        no_url.webhook_url.clear();
        refused(no_url);
        let mut unsigned = signed_request(&body, token, Some(HOOK_SECRET));
        unsigned.headers.clear();
        refused(unsigned);
        // A garbage body with a valid signature is malformed, not unauthorized.
        let garbage = b"{nope".to_vec();
        let token = sign_webhook(&Secret::new(SIGNING), URL, &garbage, Timestamp::now(), "jti-2");
        assert!(matches!(
            client().receive(&channel_secrets(), &signed_request(&garbage, token, Some(HOOK_SECRET))),
            Err(WebhookError::Malformed { .. })
        ));
        // Without a signing key nothing verifies.
        let secrets =
            ChannelSecrets::default().with(ChannelSecrets::WEBHOOK_SECRET, Secret::new(HOOK_SECRET));
        let token = sign_webhook(&Secret::new(""), URL, &body, Timestamp::now(), "jti-3");
        assert_eq!(
            client().receive(&secrets, &signed_request(&body, token, Some(HOOK_SECRET))),
            Err(WebhookError::Unauthorized)
        );
    }

    #[test]
    fn receive_accepts_bird_hmac_headers() {
        let body = fixture("messagebird_bird_whatsapp_inbound_quickreply_unverified.json");
        let url = "https://omnichat.example.test/webhooks/whatsapp-messagebird/chan/secret";
        let secrets = channel_secrets().with(SIGNING_KEY, Secret::new("bird-signing-key-0123456789"));
        let mut request = WebhookRequest {
            method: "POST".into(),
            headers: vec![
                (SIGNATURE_HEADER.into(), "7zwqFy2b8IcvxHAk6XSUYHi/6HG0BiHmvvJM4jL9wLU=".into()),
                (TIMESTAMP_HEADER.into(), "1761279226".into()),
            ],
            body,
            path_secret: Some(HOOK_SECRET.into()),
            webhook_url: url.into(),
        };
        assert_eq!(client().receive(&secrets, &request).unwrap().messages.len(), 1);
        request.headers[1].1 = "1761279227".into();
        assert_eq!(client().receive(&secrets, &request), Err(WebhookError::Unauthorized));
    }

    #[test]
    fn webhook_url_carries_the_channel_secret() {
        let channel = ChannelId::generate();
        let url = client().webhook_url(
            "https://x.test",
            Provider::WhatsappMessagebird,
            &channel,
            &channel_secrets(),
        );
        assert_eq!(url, format!("https://x.test/webhooks/whatsapp-messagebird/{channel}/{HOOK_SECRET}"));
    }

    #[test]
    fn a_conversation_may_start_only_with_a_namespace() {
        assert!(!can_start_conversation(&channel_secrets()));
        let error = require_namespace(&channel_secrets()).unwrap_err();
        match error {
            Error::Rule(rule) => {
                let text = format!("{rule:?}");
                assert!(
                    text.contains("namespace_required") && text.contains("credentials.namespace_id"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        let with_namespace = channel_secrets().with(NAMESPACE_ID, Secret::new("ns-1"));
        assert!(can_start_conversation(&with_namespace));
        assert!(!can_start_conversation(&channel_secrets().with(NAMESPACE_ID, Secret::new(""))));
    }

    // --- client, against a fake Conversations API ---

    fn secrets_hidden(text: &str) {
        for secret in [ACCESS, SIGNING, HOOK_SECRET] {
            assert!(!text.contains(secret), "a secret leaked: {text}");
        }
    }

    fn credentials(extra: Value) -> Map<String, Value> {
        let mut base = json!({"access_key": ACCESS, "channel_id": CHANNEL, "signing_key": SIGNING});
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        base.as_object().cloned().unwrap()
    }

    fn field_of(error: &Error) -> String {
        match error {
            Error::Rule(rule) => format!("{rule:?}"),
            other => panic!("expected a rule violation, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn connect_names_the_channel_and_keeps_every_credential() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/v1/channels/{CHANNEL}")))
            .and(header("authorization", format!("AccessKey {ACCESS}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": CHANNEL, "name": "Acme WhatsApp", "platformId": "whatsapp", "status": "active",
                "createdDatetime": "2020-01-01T00:00:00Z"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = MessageBirdClient::new(reqwest::Client::new(), format!("{}/", server.uri()));
        let connection = client.connect(&credentials(json!({"namespace_id": "ns-1"}))).await.unwrap();
        assert_eq!(connection.account, Account { id: CHANNEL.into(), name: "Acme WhatsApp".into() });
        assert_eq!(connection.secrets.get(NAMESPACE_ID).map(Secret::expose), Some("ns-1"));
        assert_eq!(connection.secrets.get(SIGNING_KEY).map(Secret::expose), Some(SIGNING));
        assert_eq!(connection.masked.get(ACCESS_KEY).map(String::as_str), Some("****6789"));
        secrets_hidden(&format!("{connection:?}"));
        assert!(can_start_conversation(&connection.secrets));
    }

    #[tokio::test]
    async fn connect_refusals_name_the_credential_at_fault() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/v1/channels/{CHANNEL}")))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"errors": [
                {"code": 2, "description": "Request not allowed (incorrect access_key)", "parameter": "access_key"}]})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/channels/0000"))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({"errors": [{"code": 404}]})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/channels/sms1"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": "sms1", "platformId": "sms"})),
            )
            .mount(&server)
            .await;
        let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
        let bad_key = client.connect(&credentials(json!({}))).await.unwrap_err();
        assert!(field_of(&bad_key).contains("credentials.access_key"), "{bad_key:?}");
        assert!(format!("{bad_key}").contains("MessageBird refused the access key"));
        let unknown = client.connect(&credentials(json!({"channel_id": "0000"}))).await.unwrap_err();
        assert!(field_of(&unknown).contains("credentials.channel_id"));
        let not_whatsapp = client.connect(&credentials(json!({"channel_id": "sms1"}))).await.unwrap_err();
        assert!(field_of(&not_whatsapp).contains("not_whatsapp"));
        let path_trick = client.connect(&credentials(json!({"channel_id": "../balance"}))).await.unwrap_err();
        assert!(field_of(&path_trick).contains("credentials.channel_id"));
        let missing = client.connect(&credentials(json!({"signing_key": ""}))).await.unwrap_err();
        assert!(field_of(&missing).contains("credentials.signing_key"));
        for error in [bad_key, unknown, not_whatsapp, missing] {
            secrets_hidden(&format!("{error} {error:?}"));
        }
    }

    #[tokio::test]
    async fn registers_and_removes_only_this_channels_webhook() {
        let server = MockServer::start().await;
        let url = format!("https://omnichat.example.test/webhooks/whatsapp-messagebird/c1/{HOOK_SECRET}");
        Mock::given(method("POST"))
            .and(path("/v1/webhooks"))
            .and(body_json(
                json!({"channelId": CHANNEL, "events": ["message.created", "message.updated"], "url": url}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "wh1", "url": url})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/webhooks"))
            .and(query_param("offset", "0"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "offset": 0, "limit": 20, "count": 3, "totalCount": 3, "items": [
                    {"id": "wh1", "url": url, "channelId": CHANNEL, "events": ["message.created"]},
                    {"id": "wh2", "url": "https://omnichat.example.test/webhooks/whatsapp-messagebird/c2/Other", "channelId": CHANNEL},
                    {"id": "wh3", "url": url, "channelId": "another-channel"},
                ]})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/v1/webhooks/wh1"))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
        client.register_webhook(&channel_secrets(), &url).await.unwrap();
        client.remove_webhook(&channel_secrets()).await.unwrap();
    }

    fn outgoing(buttons: &[&str]) -> Outgoing {
        Outgoing {
            customer_id: "+31612345678".into(),
            text: "Pick one".into(),
            buttons: buttons.iter().map(|b| (*b).to_owned()).collect(),
            idempotency_key: "out-1".into(),
            thread: None,
        }
    }

    #[tokio::test]
    async fn sends_text_with_options_from_the_channel() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/send"))
            .and(header("authorization", format!("AccessKey {ACCESS}")))
            .and(body_json(json!({"to": "+31612345678", "from": CHANNEL, "type": "text",
                                  "content": {"text": "Pick one\n\n1. Yes\n2. No"}})))
            .respond_with(
                ResponseTemplate::new(202)
                    .set_body_json(json!({"id": "2e15efafec384e1c82e9842075e87beb", "status": "accepted"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
        let sent = client.send(&channel_secrets(), &outgoing(&["Yes", "No"])).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("2e15efafec384e1c82e9842075e87beb".into()) });
    }

    #[tokio::test]
    async fn starts_a_conversation_with_a_template_only_with_a_namespace() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/send"))
            .and(body_json(json!({"to": "+31612345678", "from": CHANNEL, "type": "hsm", "content": {"hsm": {
                "namespace": "ns-1", "templateName": "order_ready",
                "language": {"policy": "deterministic", "code": "en"},
                "params": [{"default": "Jan"}]}}})))
            .respond_with(
                ResponseTemplate::new(202).set_body_json(json!({"id": "hsm-1", "status": "accepted"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
        let template = TemplateMessage {
            template_name: "order_ready".into(),
            language: "en".into(),
            params: vec!["Jan".into()],
        };
        let refused =
            client.start_conversation(&channel_secrets(), "+31612345678", &template).await.unwrap_err();
        assert!(field_of(&refused).contains("credentials.namespace_id"));
        let secrets = channel_secrets().with(NAMESPACE_ID, Secret::new("ns-1"));
        let sent = client.start_conversation(&secrets, "+31612345678", &template).await.unwrap();
        assert_eq!(sent.provider_message_id.as_deref(), Some("hsm-1"));
    }

    #[tokio::test]
    async fn throttling_server_errors_and_time_outs_are_retryable_and_hide_the_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/send"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/send"))
            .respond_with(ResponseTemplate::new(503).set_body_string(format!("down, key {ACCESS}")))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/send"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"errors": [
                {"code": 21, "description": format!("bad request for {ACCESS}")}]})))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/send"))
            .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_secs(2)))
            .mount(&server)
            .await;
        let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
        let throttled = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert_eq!(throttled, ProviderError::RateLimited { retry_after: Duration::from_secs(7) });
        let down = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert!(matches!(down, ProviderError::Unavailable(_)) && down.is_retryable(), "{down:?}");
        let rejected = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert!(matches!(&rejected, ProviderError::Rejected(d) if d.contains("bad request")), "{rejected:?}");
        let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
        let slow = MessageBirdClient::new(http, server.uri());
        let timed_out = slow.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert!(matches!(timed_out, ProviderError::Unavailable(_)), "{timed_out:?}");
        for error in [throttled, down, rejected, timed_out] {
            secrets_hidden(&format!("{error} {error:?}"));
        }
        secrets_hidden(&format!("{:?}", channel_secrets()));
    }

    #[test]
    fn maps_responses_in_one_place() {
        let key = Secret::new(ACCESS);
        let r = |status: u16, body: &str, purpose| {
            interpret::<Value>(StatusCode::from_u16(status).unwrap(), None, body.as_bytes(), purpose, &key)
        };
        assert_eq!(r(200, r#"{"ok":1}"#, Purpose::Operation), Ok(json!({"ok": 1})));
        assert_eq!(r(204, "", Purpose::Operation), Ok(Value::Null));
        assert_eq!(
            r(401, "{}", Purpose::CredentialCheck),
            Err(ProviderError::InvalidCredentials(INVALID_KEY.into()))
        );
        assert_eq!(r(401, "{}", Purpose::Operation), Err(ProviderError::Rejected("HTTP 401".into())));
        assert_eq!(
            r(429, "{}", Purpose::Operation),
            Err(ProviderError::RateLimited { retry_after: crate::providers::DEFAULT_RETRY_AFTER })
        );
        assert!(matches!(r(200, "<html>", Purpose::Operation), Err(ProviderError::Unavailable(_))));
        assert!(matches!(r(502, "<html>", Purpose::Operation), Err(ProviderError::Unavailable(_))));
    }

    /// Found by fuzzing (fuzz/regressions/messagebird/): an empty message id became the dedup key, so every
    /// later message with an empty id would have passed for a retry of the first.
    #[test]
    fn a_message_without_an_id_is_refused_and_its_status_ignored() {
        let received = br#"{"type":"message.created","contact":{"msisdn":393383342437},
            "message":{"id":"","from":"+393383342437","direction":"received","type":"text",
            "content":{"text":"hi"}}}"#;
        assert!(matches!(parse_event(received), Err(WebhookError::Malformed { .. })));
        let updated = br#"{"type":"message.updated",
            "message":{"id":"","direction":"sent","status":"delivered","content":{}}}"#;
        assert_eq!(parse_event(updated), Ok(Parsed::default()));
    }
}
