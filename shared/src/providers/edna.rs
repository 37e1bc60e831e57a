//! WhatsApp through edna Pulse: channel-profile and cascade lookup, callback registration, inbound messages
//! and status callbacks (edna signs nothing: a secret URL segment proves origin), sending through a cascade.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, FetchError, Outgoing, OutgoingMedia,
    ProviderError, Purpose, Sent, StatusUpdate, WebhookError, WebhookRequest, failure_description,
    first_string_at, json_answer, required_credential, retry_after_header, text_with_options,
    transport_error,
};
use crate::domain::{
    Account, Attachment, AttachmentKind, Customer, InboundKind, InboundMessage, OutStatus, Template,
};
use crate::error::{Error, Result as AppResult};
use crate::ports::channel::{Recipient, TemplateInfo};
use crate::ports::media::MediaSink;
use crate::providers::Http;
use crate::secret::Secret;

/// The international contour; Russian accounts live on `https://app.edna.ru` (set `EDNA_API_BASE`).
pub const DEFAULT_API_BASE: &str = "https://app.edna.io";
pub const API_KEY_HEADER: &str = "X-API-KEY";

/// The admin's credentials.
pub const SUBJECT: &str = "subject";
pub const API_KEY: &str = "api_key";
/// Found at connect time and kept with the credentials: the callbacks and sends need them.
pub const SUBJECT_ID: &str = "subject_id";
pub const CASCADE_ID: &str = "cascade_id";

const PROVIDER: &str = "whatsapp-edna";
const INVALID_KEY: &str = "edna refused the API key / edna не приняла API-ключ";

// --- WhatsApp's media rules (shared by the edna, MessageBird and Infobip modules) ---

/// How WhatsApp shows a file we send: the four media message types of the WhatsApp Business API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhatsappMedia {
    Image,
    Video,
    Audio,
    Document,
}

/// WhatsApp's size limits per media type (decimal megabytes, the stricter reading): images 5 MB, video and
/// audio 16 MB, documents 100 MB.
pub(crate) fn whatsapp_media_limit(kind: AttachmentKind) -> Option<u64> {
    const MB: u64 = 1_000_000;
    match kind {
        AttachmentKind::Image => Some(5 * MB),
        AttachmentKind::Video | AttachmentKind::Audio | AttachmentKind::Voice => Some(16 * MB),
        AttachmentKind::Document => Some(100 * MB),
        AttachmentKind::Sticker
        | AttachmentKind::Location
        | AttachmentKind::Contact
        | AttachmentKind::Other => None,
    }
}

/// The longest caption WhatsApp shows under an image, a video or a document.
pub(crate) const WHATSAPP_CAPTION_MAX_CHARS: usize = 1024;

impl WhatsappMedia {
    /// The message type a file goes out as. WhatsApp plays only some formats (images: JPEG and PNG; video:
    /// MP4 and 3GPP; audio: AAC, MP4, MPEG, AMR, OGG/Opus): a file of its kind in another format (a GIF, a
    /// WebM) still reaches the customer, as a document.
    pub(crate) fn of(media: &OutgoingMedia) -> Self {
        let mime = media.mime.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let plays = |types: &[&str]| types.contains(&mime.as_str());
        match media.kind {
            AttachmentKind::Image if plays(&["image/jpeg", "image/png"]) => WhatsappMedia::Image,
            AttachmentKind::Video if plays(&["video/mp4", "video/3gpp"]) => WhatsappMedia::Video,
            AttachmentKind::Audio | AttachmentKind::Voice
                if plays(&[
                    "audio/aac",
                    "audio/mp4",
                    "audio/mpeg",
                    "audio/amr",
                    "audio/ogg",
                    "audio/opus",
                ]) =>
            {
                WhatsappMedia::Audio
            }
            _ => WhatsappMedia::Document,
        }
    }

    /// Whether WhatsApp shows a caption under this type (audio has none).
    pub(crate) fn takes_caption(self) -> bool {
        self != WhatsappMedia::Audio
    }
}

// --- verification and parsing ---

/// edna signs nothing: the channel's webhook URL ends with an unguessable secret, compared here in
/// constant time. A channel without a secret accepts nothing.
pub fn verify_path_secret(path_secret: Option<&str>, expected: &Secret) -> Result<(), WebhookError> {
    match path_secret {
        Some(candidate) if !expected.expose().is_empty() && expected.matches(candidate) => Ok(()),
        _ => Err(WebhookError::Unauthorized),
    }
}

/// What one verified callback carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
}

/// Normalizes one callback: an incoming message (`messageContent`) or a status of one of ours
/// (`requestId` + `status`; both callback URLs point here). An empty body (edna checking the URL), a JSON
/// array (template-status callbacks) and objects of no known kind are acknowledged and ignored.
pub fn parse_callback(body: &[u8]) -> Result<Parsed, WebhookError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Parsed::default());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let Some(object) = value.as_object() else {
        return if value.is_array() {
            Ok(Parsed::default())
        } else {
            Err(malformed("the body is not a JSON object".into()))
        };
    };
    if object.contains_key("messageContent") {
        let inbound = EdnaInbound::deserialize(&value).map_err(|e| malformed(e.to_string()))?;
        // The subscriber is the customer: with an empty one every such message would share one dialog.
        if inbound.subscriber.identifier.is_empty() {
            return Err(malformed("a message without a subscriber".into()));
        }
        return Ok(Parsed {
            messages: normalize_inbound(inbound).into_iter().collect(),
            statuses: Vec::new(),
        });
    }
    if object.contains_key("requestId") && object.contains_key("status") {
        let status = EdnaStatus::deserialize(&value).map_err(|e| malformed(e.to_string()))?;
        return Ok(Parsed { messages: Vec::new(), statuses: status_update(status).into_iter().collect() });
    }
    Ok(Parsed::default())
}

fn malformed(reason: String) -> WebhookError {
    WebhookError::Malformed { provider: PROVIDER, reason }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EdnaInbound {
    /// edna's incoming-message id: the dedup key. Ids pass 2^32 already (14558923001 in a capture).
    id: i64,
    subscriber: Subscriber,
    user_info: Option<UserInfo>,
    message_content: Content,
    received_at: Option<String>,
}

#[derive(Deserialize)]
struct Subscriber {
    /// The customer's phone number, international format without `+`.
    identifier: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserInfo {
    user_name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(rename = "type")]
    kind: String,
    attachment: Option<EdnaAttachment>,
    location: Option<Location>,
    caption: Option<String>,
    text: Option<String>,
    payload: Option<String>,
    items: Option<Vec<ListItem>>,
}

#[derive(Deserialize)]
struct EdnaAttachment {
    /// A pre-signed file URL that expires: fetch it soon.
    url: String,
    name: Option<String>,
    size: Option<u64>,
}

#[derive(Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
    address: Option<String>,
}

#[derive(Deserialize)]
struct ListItem {
    identifier: Option<String>,
    title: Option<String>,
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
}

/// `None` for a message that carries nothing a contact center can show (a product card without text, ...).
fn normalize_inbound(inbound: EdnaInbound) -> Option<InboundMessage> {
    let content = inbound.message_content;
    let mut kind = InboundKind::Message;
    let mut text = non_empty(content.text).or_else(|| non_empty(content.caption));
    let mut attachments = Vec::new();
    let media_kind = match content.kind.as_str() {
        "IMAGE" => Some(AttachmentKind::Image),
        "DOCUMENT" => Some(AttachmentKind::Document),
        "AUDIO" => Some(AttachmentKind::Audio),
        "VOICE" => Some(AttachmentKind::Voice),
        "VIDEO" => Some(AttachmentKind::Video),
        "STICKER" => Some(AttachmentKind::Sticker),
        _ => None,
    };
    match (content.kind.as_str(), media_kind) {
        (_, Some(media_kind)) => {
            if let Some(file) = content.attachment.filter(|a| !a.url.is_empty()) {
                attachments.push(Attachment {
                    kind: media_kind,
                    file_ref: file.url,
                    mime: None,
                    size: file.size,
                    name: non_empty(file.name),
                });
            }
        }
        ("LOCATION", None) => {
            if let Some(location) = content.location {
                attachments.push(Attachment {
                    kind: AttachmentKind::Location,
                    file_ref: format!("{},{}", location.latitude, location.longitude),
                    mime: None,
                    size: None,
                    name: non_empty(location.address),
                });
            }
        }
        // A quick-reply button: its payload (the button's code) is what a chatbot matches on.
        ("BUTTON", None) => {
            if let Some(pressed) = non_empty(content.payload).or(text.take()) {
                kind = InboundKind::ButtonReply;
                text = Some(pressed);
            }
        }
        ("LIST_PICKER", None) => {
            let picked = content.items.into_iter().flatten().next();
            if let Some(picked) = picked.and_then(|i| non_empty(i.identifier).or_else(|| non_empty(i.title)))
            {
                kind = InboundKind::ButtonReply;
                text = Some(picked);
            }
        }
        _ => {}
    }
    if text.is_none() && attachments.is_empty() {
        return None;
    }
    let name = inbound.user_info.and_then(|u| {
        let full = [u.first_name, u.last_name]
            .into_iter()
            .flatten()
            .filter(|part| !part.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if full.is_empty() { non_empty(u.user_name) } else { Some(full) }
    });
    Some(InboundMessage {
        dedup_key: inbound.id.to_string(),
        kind,
        customer: Customer { id: inbound.subscriber.identifier, name, handle: None },
        provider_message_id: Some(inbound.id.to_string()),
        text,
        attachments,
        sent_at: inbound.received_at.as_deref().and_then(|t| t.parse::<Timestamp>().ok()),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EdnaStatus {
    /// Ours: the `requestId` we sent, which is also what `send` reports as the provider message id.
    request_id: String,
    status: String,
    error: Option<Value>,
    comment: Option<String>,
}

fn status_update(status: EdnaStatus) -> Option<StatusUpdate> {
    // No request id: it cannot be about any message of ours.
    if status.request_id.is_empty() {
        return None;
    }
    let mapped = match status.status.to_ascii_uppercase().as_str() {
        "SENT" => OutStatus::Sent,
        "DELIVERED" | "READ" => OutStatus::Delivered,
        "UNDELIVERED" | "FAILED" | "CANCELLED" | "EXPIRED" | "REJECTED" => OutStatus::Failed,
        // Intermediate states (queued, scheduled, ...) change nothing we show.
        _ => return None,
    };
    let reason = match (mapped, status.error) {
        (OutStatus::Failed, Some(Value::String(error))) if !error.is_empty() => Some(error),
        (OutStatus::Failed, Some(error)) if !error.is_null() => Some(error.to_string()),
        (OutStatus::Failed, _) => Some(non_empty(status.comment).unwrap_or(status.status)),
        _ => None,
    };
    Some(StatusUpdate { provider_message_id: status.request_id, status: mapped, reason })
}

// --- client ---

/// One of the account's channels, as `channel-profile` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelProfile {
    pub subject: String,
    /// Only present for registered, active channels.
    pub subject_id: Option<i64>,
    /// The WhatsApp phone number.
    pub channel_attribute: Option<String>,
    #[serde(default)]
    pub active: bool,
    pub registration_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cascade {
    id: i64,
    status: Option<String>,
    stages_count: Option<Value>,
    #[serde(default)]
    stages: Vec<CascadeStage>,
}

#[derive(Deserialize)]
struct CascadeStage {
    subject: Option<CascadeSubject>,
}

#[derive(Deserialize)]
struct CascadeSubject {
    subject: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// A template as `message-matchers/get-by-request` lists it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageMatcher {
    name: Option<String>,
    channel_type: Option<String>,
    language: Option<String>,
    status: Option<String>,
    content: Option<MatcherContent>,
}

#[derive(Deserialize)]
struct MatcherContent {
    text: Option<String>,
}

/// Calls the edna Pulse API. The API key is passed per call: one process serves many channels.
#[derive(Debug, Clone)]
pub struct EdnaClient {
    http: Http,
    base: String,
}

impl EdnaClient {
    pub fn new(http: impl Into<Http>, base: impl Into<String>) -> Self {
        Self { http: http.into(), base: base.into().trim_end_matches('/').to_owned() }
    }

    /// `EDNA_API_BASE` selects the contour (`https://app.edna.ru`) or points the client at a fake.
    pub fn from_env(http: Http) -> Self {
        let base = super::base_url_from_env("EDNA_API_BASE", DEFAULT_API_BASE);
        Self::new(http, base)
    }

    /// The account's WhatsApp channels. A refused key is `InvalidCredentials`.
    pub async fn channel_profiles(&self, api_key: &Secret) -> Result<Vec<ChannelProfile>, ProviderError> {
        let mut url = self.endpoint(&["api", "channel-profile"])?;
        url.query_pairs_mut().append_pair("types", "WHATSAPP");
        self.call(Method::GET, url, api_key, None, Purpose::CredentialCheck).await
    }

    /// The cascade to send through for `subject`: an active cascade whose first step is this WhatsApp
    /// channel, a single-step one preferred (edna creates one per channel; longer ones fall back to SMS).
    pub async fn cascade_for(&self, api_key: &Secret, subject: &str) -> Result<Option<i64>, ProviderError> {
        let url = self.endpoint(&["api", "cascade", "get-all"])?;
        let cascades: Vec<Cascade> =
            self.call(Method::POST, url, api_key, Some(&json!({})), Purpose::CredentialCheck).await?;
        let mut candidates: Vec<(bool, i64)> = cascades
            .into_iter()
            .filter(|c| c.status.as_deref().is_none_or(|s| s.eq_ignore_ascii_case("ACTIVE")))
            .filter(|c| {
                c.stages.first().and_then(|s| s.subject.as_ref()).is_some_and(|s| {
                    s.subject.as_deref() == Some(subject)
                        && s.kind.as_deref().is_none_or(|k| k.eq_ignore_ascii_case("WHATSAPP"))
                })
            })
            .map(|c| {
                let steps =
                    c.stages_count.as_ref().and_then(|n| n.as_i64().or_else(|| n.as_str()?.parse().ok()));
                (steps != Some(1), c.id)
            })
            .collect();
        candidates.sort();
        Ok(candidates.first().map(|(_, id)| *id))
    }

    /// Points the channel's incoming-message and status callbacks at `url`. edna checks the URL with a HEAD
    /// request first (answered 200 by the webhook route).
    pub async fn set_callbacks(
        &self,
        api_key: &Secret,
        subject_id: i64,
        url: &str,
    ) -> Result<(), ProviderError> {
        let body = json!({"subjectId": subject_id, "inMessageCallbackUrl": url, "statusCallbackUrl": url});
        let endpoint = self.endpoint(&["api", "callback", "set"])?;
        self.call::<Value>(Method::POST, endpoint, api_key, Some(&body), Purpose::Operation).await.map(drop)
    }

    /// Sends a message through the channel's cascade, with `requestId` = our outgoing message id: edna
    /// cancels a duplicate `requestId` within 20 minutes, so a retried send does not reach the customer twice.
    /// Quick replies become numbered options (edna's button format for session messages is not confirmed).
    ///
    /// edna ignores the text of a message that carries a file ("If the attachment field is specified ...
    /// the text field will be ignored", Message Examples in the edna Pulse docs), so there are no captions:
    /// the text goes first as a message of its own, then each file as one (by its link, which edna fetches).
    /// The first message has our id as `requestId`, the n-th `{id}-{n}`: a retried send repeats the same
    /// ids and edna drops them all. The first one's id is the one reported (its status callbacks count).
    pub async fn send_message(
        &self,
        api_key: &Secret,
        cascade_id: i64,
        out: &Outgoing,
    ) -> Result<Sent, ProviderError> {
        let mut contents = Vec::with_capacity(out.attachments.len() + 1);
        if !out.text.trim().is_empty() || !out.buttons.is_empty() || out.attachments.is_empty() {
            contents.push(json!({"contentType": "TEXT", "text": text_with_options(&out.text, &out.buttons)}));
        }
        contents.extend(out.attachments.iter().map(media_content));
        let url = self.endpoint(&["api", "cascade", "schedule"])?;
        for (i, content) in contents.into_iter().enumerate() {
            let request_id = match i {
                0 => out.idempotency_key.clone(),
                n => format!("{}-{n}", out.idempotency_key),
            };
            let body = json!({
                "requestId": request_id,
                "cascadeId": cascade_id,
                "subscriberFilter": {"address": out.customer_id, "type": "PHONE"},
                "content": {"whatsappContent": content},
            });
            self.call::<Value>(Method::POST, url.clone(), api_key, Some(&body), Purpose::Operation).await?;
        }
        // Status callbacks name the message by our requestId, so that is the id to match them with.
        Ok(Sent { provider_message_id: Some(out.idempotency_key.clone()) })
    }

    /// The channel's WhatsApp templates (`POST /api/message-matchers/get-by-request` with the subject
    /// id; operator templates, the ones registered with WhatsApp): status in lower case, the body's text
    /// from `content.text`, its placeholders counted.
    pub async fn templates(
        &self,
        api_key: &Secret,
        subject_id: i64,
    ) -> Result<Vec<TemplateInfo>, ProviderError> {
        let url = self.endpoint(&["api", "message-matchers", "get-by-request"])?;
        let body = json!({"subjectId": subject_id, "matcherTypes": ["OPERATOR"]});
        let matchers: Vec<MessageMatcher> =
            self.call(Method::POST, url, api_key, Some(&body), Purpose::Operation).await?;
        Ok(matchers
            .into_iter()
            .filter(|m| m.channel_type.as_deref().is_none_or(|t| t.eq_ignore_ascii_case("WHATSAPP")))
            .filter_map(|m| {
                let text = m.content.and_then(|c| c.text);
                Some(TemplateInfo {
                    name: m.name.filter(|n| !n.is_empty())?,
                    language: m.language.unwrap_or_default(),
                    status: m.status.unwrap_or_default().to_lowercase(),
                    parameters: text.as_deref().map_or(0, super::placeholder_count),
                    text,
                })
            })
            .collect())
    }

    /// Sends an approved template. edna recognizes a template by its content: the message is the
    /// template's registered text with the placeholders filled in (`contentType: TEXT`), sent through the
    /// cascade with `requestId` = our outgoing message id. The text is looked up by name and language
    /// (case aside) among the channel's templates; an unknown, unapproved or wrongly filled template is
    /// refused before anything is sent.
    pub async fn send_template(
        &self,
        api_key: &Secret,
        subject_id: i64,
        cascade_id: i64,
        out: &Outgoing,
        template: &Template,
    ) -> Result<Sent, ProviderError> {
        let templates = self.templates(api_key, subject_id).await?;
        let found = templates.into_iter().find(|t| {
            t.name == template.name
                && (t.language.is_empty() || t.language.eq_ignore_ascii_case(&template.language))
        });
        let refused = |reason: String| Err(ProviderError::Rejected(reason));
        let Some(found) = found else {
            return refused(format!(
                "edna knows no WhatsApp template {} in language {}",
                template.name, template.language
            ));
        };
        if !found.is_approved() {
            return refused(format!("the template {} is {} at edna, not approved", found.name, found.status));
        }
        let Some(text) = found.text.filter(|t| !t.trim().is_empty()) else {
            return refused(format!("edna gives no text for the template {}", found.name));
        };
        if found.parameters != template.parameters.len() {
            return refused(format!(
                "the template {} takes {} values, not {}",
                found.name,
                found.parameters,
                template.parameters.len()
            ));
        }
        let body = json!({
            "requestId": out.idempotency_key,
            "cascadeId": cascade_id,
            "subscriberFilter": {"address": out.customer_id, "type": "PHONE"},
            "content": {"whatsappContent": {
                "contentType": "TEXT",
                "text": super::fill_placeholders(&text, &template.parameters),
            }},
        });
        let url = self.endpoint(&["api", "cascade", "schedule"])?;
        self.call::<Value>(Method::POST, url, api_key, Some(&body), Purpose::Operation).await?;
        Ok(Sent { provider_message_id: Some(out.idempotency_key.clone()) })
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        super::endpoint(&self.base, "edna", segments)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        api_key: &Secret,
        body: Option<&Value>,
        purpose: Purpose,
    ) -> Result<T, ProviderError> {
        let path = url.path().to_owned();
        let mut request = self.http.request(method, url).header(API_KEY_HEADER, api_key.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after_header(response.headers());
        let bytes = response.bytes().await.map_err(transport_error)?;
        let outcome = interpret(status, retry_after, &bytes, purpose, api_key);
        if let Err(error) = &outcome {
            tracing::warn!(path, status = status.as_u16(), %error, "edna call failed");
        }
        outcome
    }
}

/// The one place an edna answer becomes a result or a `ProviderError`. edna's error bodies are not
/// documented in one shape: the first readable description is taken.
fn interpret<T: DeserializeOwned>(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    purpose: Purpose,
    api_key: &Secret,
) -> Result<T, ProviderError> {
    if status.is_success() {
        return json_answer(body, "edna");
    }
    let found = first_string_at(body, &["/detail", "/message", "/error", "/title", "/code"]);
    let description = failure_description(status.as_u16(), found, &[api_key]);
    Err(super::http_failure(status.as_u16(), description, retry_after, purpose.refusal(INVALID_KEY)))
}

/// The `whatsappContent` of one file sent by its link (edna's Message Examples: `contentType` IMAGE,
/// DOCUMENT, VIDEO or AUDIO with `attachment {url, name, size}`).
fn media_content(media: &OutgoingMedia) -> Value {
    let content_type = match WhatsappMedia::of(media) {
        WhatsappMedia::Image => "IMAGE",
        WhatsappMedia::Video => "VIDEO",
        WhatsappMedia::Audio => "AUDIO",
        WhatsappMedia::Document => "DOCUMENT",
    };
    json!({
        "contentType": content_type,
        "attachment": {"url": media.url, "name": media.file_name(), "size": media.size},
    })
}

fn number_secret(secrets: &ChannelSecrets, name: &str) -> Option<i64> {
    secrets.get(name).and_then(|s| s.expose().parse().ok())
}

#[async_trait]
impl ChannelProvider for EdnaClient {
    async fn connect(&self, credentials: &Map<String, Value>) -> AppResult<Connection> {
        let subject = required_credential(credentials, SUBJECT)?;
        let api_key = required_credential(credentials, API_KEY)?;
        let subject_rule = |code, message: &str| Error::rule(code, format!("credentials.{SUBJECT}"), message);
        let invalid_key = || Error::rule("invalid_api_key", format!("credentials.{API_KEY}"), INVALID_KEY);
        let profiles = match self.channel_profiles(&api_key).await {
            Ok(profiles) => profiles,
            Err(ProviderError::InvalidCredentials(_)) => return Err(invalid_key()),
            Err(other) => return Err(other.into()),
        };
        let profile = profiles.into_iter().find(|p| p.subject == subject.expose()).ok_or_else(|| {
            subject_rule(
                "subject_not_found",
                "no WhatsApp channel with this subject in the edna account / в кабинете edna нет канала \
                 WhatsApp с такой подписью",
            )
        })?;
        let Some(subject_id) = profile.subject_id.filter(|_| profile.active) else {
            return Err(subject_rule(
                "channel_not_active",
                "the edna WhatsApp channel is not registered and active yet / канал WhatsApp в edna ещё не \
                 зарегистрирован или не активен",
            ));
        };
        let cascade_id = match self.cascade_for(&api_key, subject.expose()).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                return Err(subject_rule(
                    "cascade_not_found",
                    "no active cascade sends through this channel; create one in edna Pulse / нет активного \
                     каскада для этого канала, создайте его в edna Pulse",
                ));
            }
            Err(ProviderError::InvalidCredentials(_)) => return Err(invalid_key()),
            Err(other) => return Err(other.into()),
        };
        // The number is the account: what the admin sees and what "one account, one channel" keys on.
        let number = profile.channel_attribute.filter(|n| !n.trim().is_empty());
        let account_id = number.unwrap_or_else(|| subject.expose().to_owned());
        let masked =
            BTreeMap::from([(SUBJECT.to_owned(), subject.masked()), (API_KEY.to_owned(), api_key.masked())]);
        let secrets = ChannelSecrets::default()
            .with(SUBJECT, subject)
            .with(API_KEY, api_key)
            .with(SUBJECT_ID, Secret::new(subject_id.to_string()))
            .with(CASCADE_ID, Secret::new(cascade_id.to_string()));
        Ok(Connection { account: Account { id: account_id.clone(), name: account_id }, secrets, masked })
    }

    fn secret_in_webhook_path(&self) -> bool {
        true
    }

    fn registers_webhook(&self) -> bool {
        true
    }

    async fn register_webhook(&self, secrets: &ChannelSecrets, url: &str) -> AppResult<()> {
        let subject_id = number_secret(secrets, SUBJECT_ID)
            .ok_or_else(|| Error::Internal("the channel's credentials lack subject_id".into()))?;
        Ok(self.set_callbacks(secrets.require(API_KEY)?, subject_id, url).await?)
    }

    /// Clears the callback URLs. Whether edna accepts empty URLs is not documented: a refusal is logged and
    /// the disconnect goes on (the channel's secret is gone, so edna's further calls are refused anyway).
    async fn remove_webhook(&self, secrets: &ChannelSecrets) -> AppResult<()> {
        let Some(subject_id) = number_secret(secrets, SUBJECT_ID) else {
            return Ok(());
        };
        match self.set_callbacks(secrets.require(API_KEY)?, subject_id, "").await {
            Ok(()) => Ok(()),
            Err(ProviderError::Rejected(reason)) => {
                tracing::warn!(%reason, "edna refused to clear the callback URLs");
                Ok(())
            }
            Err(other) => Err(other.into()),
        }
    }

    fn receive(&self, secrets: &ChannelSecrets, request: &WebhookRequest) -> Result<Delivery, WebhookError> {
        verify_path_secret(
            request.path_secret.as_deref(),
            secrets.for_verifying(ChannelSecrets::WEBHOOK_SECRET)?,
        )?;
        let parsed = parse_callback(&request.body)?;
        Ok(Delivery { messages: parsed.messages, statuses: parsed.statuses, reply: Default::default() })
    }

    async fn send(&self, secrets: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError> {
        let missing =
            || ProviderError::InvalidCredentials("the channel has no edna API key or cascade".into());
        let api_key = secrets.get(API_KEY).ok_or_else(missing)?;
        let cascade_id = number_secret(secrets, CASCADE_ID).ok_or_else(missing)?;
        match &out.template {
            Some(template) => {
                let subject_id = number_secret(secrets, SUBJECT_ID).ok_or_else(missing)?;
                self.send_template(api_key, subject_id, cascade_id, out, template).await
            }
            None => self.send_message(api_key, cascade_id, out).await,
        }
    }

    fn service_window(&self) -> Option<jiff::SignedDuration> {
        Some(super::WHATSAPP_SERVICE_WINDOW)
    }

    /// WhatsApp numbers are written to first only by template (the use case checks).
    fn first_contact(&self, to: &Recipient) -> Option<String> {
        super::whatsapp_number(to, false)
    }

    fn sends_templates(&self) -> bool {
        true
    }

    async fn list_templates(&self, secrets: &ChannelSecrets) -> AppResult<Option<Vec<TemplateInfo>>> {
        let subject_id = number_secret(secrets, SUBJECT_ID)
            .ok_or_else(|| Error::Internal("the channel's credentials lack subject_id".into()))?;
        Ok(Some(self.templates(secrets.require(API_KEY)?, subject_id).await?))
    }

    /// edna's file links are pre-signed (they expire): a plain GET, no API key.
    async fn fetch_media(
        &self,
        _secrets: &ChannelSecrets,
        attachment: &Attachment,
        sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        super::media::download_link(&self.http, &attachment.file_ref, sink).await
    }

    fn media_limit(&self, kind: AttachmentKind) -> Option<u64> {
        whatsapp_media_limit(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChannelId, Provider};
    use crate::test_support::fixture;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const KEY: &str = "edna-api-key-0123456789abcdef";
    const HOOK_SECRET: &str = "HookSecret0123456789HookSecret0123456789HookSecr";

    fn ts(text: &str) -> Option<Timestamp> {
        Some(text.parse().unwrap())
    }

    fn one_message(body: &[u8]) -> InboundMessage {
        let mut parsed = parse_callback(body).unwrap();
        assert!(parsed.statuses.is_empty());
        assert_eq!(parsed.messages.len(), 1, "{parsed:?}");
        parsed.messages.remove(0)
    }

    #[test]
    fn parses_the_text_fixture() {
        assert_eq!(
            one_message(&fixture("edna_text.json")),
            InboundMessage {
                dedup_key: "101".into(),
                kind: InboundKind::Message,
                customer: Customer { id: "35700000000".into(), name: Some("alex".into()), handle: None },
                provider_message_id: Some("101".into()),
                text: Some("Thank you for your help".into()),
                attachments: vec![],
                sent_at: ts("2022-04-29T15:30:08Z"),
            }
        );
    }

    #[test]
    fn parses_the_image_fixture() {
        assert_eq!(
            one_message(&fixture("edna_image_unverified.json")),
            InboundMessage {
                dedup_key: "14558923001".into(),
                kind: InboundKind::Message,
                customer: Customer { id: "194089586".into(), name: Some("Lyubov".into()), handle: None },
                provider_message_id: Some("14558923001".into()),
                text: None,
                attachments: vec![Attachment {
                    kind: AttachmentKind::Image,
                    file_ref: "https://files.mfms.ru/imfiles4s/ednapulse_prodbot/Q8PJu5KqTCCbMvPjm9KG9g.webp?AWSAccessKeyId=imfiles4s&Expires=1778001117&Signature=...".into(),
                    mime: None,
                    size: None,
                    name: None,
                }],
                sent_at: ts("2026-04-28T17:11:57Z"),
            }
        );
    }

    #[test]
    fn parses_the_status_fixture() {
        let parsed = parse_callback(&fixture("edna_status_delivered.json")).unwrap();
        assert!(parsed.messages.is_empty());
        assert_eq!(
            parsed.statuses,
            vec![StatusUpdate {
                provider_message_id: "test-00135".into(),
                status: OutStatus::Delivered,
                reason: None
            }]
        );
    }

    fn inbound(content: Value) -> Vec<u8> {
        json!({"id": 7, "subject": "s", "subjectId": 1, "subscriber": {"id": 2, "identifier": "79000000000"},
               "userInfo": {"userName": "u", "firstName": "Ivan", "lastName": "Petrov"},
               "messageContent": content, "receivedAt": "2024-05-01T10:00:00Z"})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn normalizes_media_location_buttons_and_list_picks() {
        let document = one_message(&inbound(json!({"type": "DOCUMENT", "caption": "the contract",
            "attachment": {"url": "https://files.example/c.pdf", "name": "c.pdf", "size": 5123}})));
        assert_eq!(document.customer.name.as_deref(), Some("Ivan Petrov"));
        assert_eq!(document.text.as_deref(), Some("the contract"));
        assert_eq!(
            document.attachments,
            vec![Attachment {
                kind: AttachmentKind::Document,
                file_ref: "https://files.example/c.pdf".into(),
                mime: None,
                size: Some(5123),
                name: Some("c.pdf".into()),
            }]
        );
        for (kind, expected) in [
            ("AUDIO", AttachmentKind::Audio),
            ("VOICE", AttachmentKind::Voice),
            ("VIDEO", AttachmentKind::Video),
            ("STICKER", AttachmentKind::Sticker),
        ] {
            let m = one_message(&inbound(json!({"type": kind, "attachment": {"url": "https://f/x"}})));
            assert_eq!(m.attachments[0].kind, expected);
        }
        let location = one_message(&inbound(json!({"type": "LOCATION",
            "location": {"latitude": 55.75, "longitude": 37.61, "address": "Red Square"}})));
        assert_eq!(location.attachments[0].kind, AttachmentKind::Location);
        assert_eq!(location.attachments[0].file_ref, "55.75,37.61");
        assert_eq!(location.attachments[0].name.as_deref(), Some("Red Square"));
        let button = one_message(&inbound(json!({"type": "BUTTON", "text": "Yes", "payload": "YES_CODE"})));
        assert_eq!((button.kind, button.text.as_deref()), (InboundKind::ButtonReply, Some("YES_CODE")));
        let list = one_message(&inbound(json!({"type": "LIST_PICKER",
            "items": [{"identifier": "01", "title": "item 1", "subtitle": null}]})));
        assert_eq!((list.kind, list.text.as_deref()), (InboundKind::ButtonReply, Some("01")));
        // Nothing to show: acknowledged, nothing stored.
        let empty = parse_callback(&inbound(json!({"type": "PRODUCT", "text": null}))).unwrap();
        assert_eq!(empty, Parsed::default());
    }

    #[test]
    fn maps_statuses() {
        let status = |s: &str, error: Value| {
            let body = json!({"requestId": "r1", "messageId": 1, "status": s, "error": error}).to_string();
            parse_callback(body.as_bytes()).unwrap().statuses.into_iter().next()
        };
        assert_eq!(status("SENT", Value::Null).map(|s| s.status), Some(OutStatus::Sent));
        assert_eq!(status("READ", Value::Null).map(|s| s.status), Some(OutStatus::Delivered));
        let failed = status("UNDELIVERED", json!("subscriber blocked")).unwrap();
        assert_eq!(
            (failed.status, failed.reason.as_deref()),
            (OutStatus::Failed, Some("subscriber blocked"))
        );
        assert_eq!(status("FAILED", Value::Null).and_then(|s| s.reason), Some("FAILED".into()));
        assert_eq!(status("ENQUEUED", Value::Null), None);
    }

    #[test]
    fn url_checks_and_unknown_callbacks_are_acknowledged() {
        for body in [&b""[..], b"  \n", b"{}", b"[{\"id\":0,\"name\":\"template\"}]", br#"{"event":"other"}"#]
        {
            assert_eq!(parse_callback(body).unwrap(), Parsed::default(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn refuses_malformed_bodies() {
        for body in [
            &b"not json"[..],
            b"42",
            br#"{"messageContent": {"type": "TEXT", "text": "x"}}"#,
            br#"{"id": "abc", "subscriber": {"identifier": "1"}, "messageContent": {"type": "TEXT"}}"#,
            br#"{"id": 1, "subscriber": {"identifier": "1"}, "messageContent": {"text": "no type"}}"#,
            br#"{"requestId": 5, "status": "SENT"}"#,
        ] {
            match parse_callback(body) {
                Err(WebhookError::Malformed { provider: "whatsapp-edna", .. }) => {}
                other => panic!("{}: expected Malformed, got {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    fn channel_secrets() -> ChannelSecrets {
        ChannelSecrets::default()
            .with(SUBJECT, Secret::new("test_subject_WA"))
            .with(API_KEY, Secret::new(KEY))
            .with(SUBJECT_ID, Secret::new("345"))
            .with(CASCADE_ID, Secret::new("11"))
            .with(ChannelSecrets::WEBHOOK_SECRET, Secret::new(HOOK_SECRET))
    }

    fn request(body: Vec<u8>, path_secret: Option<&str>) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            headers: vec![],
            body,
            path_secret: path_secret.map(str::to_owned),
            webhook_url: String::new(),
        }
    }

    #[test]
    fn receive_needs_the_path_secret_before_anything_is_parsed() {
        let client = EdnaClient::new(reqwest::Client::new(), "http://127.0.0.1:9");
        let ok = client
            .receive(&channel_secrets(), &request(fixture("edna_text.json"), Some(HOOK_SECRET)))
            .unwrap();
        assert_eq!(ok.messages.len(), 1);
        assert_eq!(ok.reply, Default::default());
        for wrong in [None, Some(""), Some("wrong"), Some(&HOOK_SECRET[..47])] {
            assert_eq!(
                client.receive(&channel_secrets(), &request(fixture("edna_text.json"), wrong)),
                Err(WebhookError::Unauthorized)
            );
            // Not even a malformed body gets as far as the parser.
            assert_eq!(
                client.receive(&channel_secrets(), &request(b"{nope".to_vec(), wrong)),
                Err(WebhookError::Unauthorized)
            );
        }
        let no_secret = ChannelSecrets::default().with(API_KEY, Secret::new(KEY));
        assert_eq!(client.receive(&no_secret, &request(vec![], Some(""))), Err(WebhookError::Unauthorized));
        let probe = client.receive(&channel_secrets(), &request(vec![], Some(HOOK_SECRET))).unwrap();
        assert_eq!(probe, Delivery::default());
    }

    #[test]
    fn webhook_url_carries_the_secret() {
        let client = EdnaClient::new(reqwest::Client::new(), "http://127.0.0.1:9");
        let channel = ChannelId::generate();
        assert_eq!(
            client.webhook_url("https://x.test", Provider::WhatsappEdna, &channel, &channel_secrets()),
            format!("https://x.test/webhooks/whatsapp-edna/{channel}/{HOOK_SECRET}")
        );
    }

    // --- client, against a fake edna API ---

    async fn fake_account(server: &MockServer) {
        Mock::given(method("GET"))
            .and(path("/api/channel-profile"))
            .and(query_param("types", "WHATSAPP"))
            .and(header("x-api-key", KEY))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"id": 1, "name": "Other", "subjectId": 100, "subject": "other_WA", "active": true, "type": "WHATSAPP"},
                {"id": 2, "name": "Shop", "subjectId": 345, "channelAttribute": "35700000000",
                 "subject": "test_subject_WA", "active": true, "registrationStatus": "DONE_BUSINESS_VERIFICATION",
                 "type": "WHATSAPP"},
                {"id": 3, "name": "New", "subject": "pending_WA", "active": false, "registrationStatus": "NEED_VERIFY"},
            ])))
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/cascade/get-all"))
            .and(header("x-api-key", KEY))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"id": 20, "name": "wa-sms", "status": "ACTIVE", "stagesCount": 2, "stages": [
                    {"order": 0, "uuid": "a", "subject": {"id": 345, "subject": "test_subject_WA", "type": "WHATSAPP"},
                     "stages": [{"order": 1, "subject": {"id": 9, "subject": "sms", "type": "SMS"}, "stages": []}]}]},
                {"id": 11, "name": "wa", "status": "ACTIVE", "stagesCount": 1, "stages": [
                    {"order": 0, "uuid": "b", "subject": {"id": 345, "subject": "test_subject_WA", "type": "WHATSAPP"},
                     "stages": []}]},
                {"id": 5, "name": "off", "status": "DISABLED", "stagesCount": 1, "stages": [
                    {"order": 0, "subject": {"id": 345, "subject": "test_subject_WA", "type": "WHATSAPP"}}]},
            ])))
            .mount(server)
            .await;
    }

    fn credentials(subject: &str, key: &str) -> Map<String, Value> {
        json!({"subject": subject, "api_key": key}).as_object().cloned().unwrap()
    }

    fn rule_text(error: &Error) -> String {
        match error {
            Error::Rule(rule) => format!("{rule:?} {error}"),
            other => panic!("expected a rule violation, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn connect_finds_the_number_the_subject_id_and_a_single_step_cascade() {
        let server = MockServer::start().await;
        fake_account(&server).await;
        let client = EdnaClient::new(reqwest::Client::new(), format!("{}/", server.uri()));
        let connection = client.connect(&credentials("test_subject_WA", KEY)).await.unwrap();
        assert_eq!(connection.account, Account { id: "35700000000".into(), name: "35700000000".into() });
        assert_eq!(connection.secrets.get(SUBJECT_ID).map(Secret::expose), Some("345"));
        assert_eq!(connection.secrets.get(CASCADE_ID).map(Secret::expose), Some("11"));
        assert_eq!(connection.masked.get(API_KEY).map(String::as_str), Some("****cdef"));
        assert!(!format!("{connection:?}").contains(KEY));
    }

    #[tokio::test]
    async fn connect_refusals_name_the_credential_at_fault() {
        let server = MockServer::start().await;
        fake_account(&server).await;
        Mock::given(method("GET"))
            .and(path("/api/channel-profile"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"detail": "Unauthorized"})))
            .mount(&server)
            .await;
        let client = EdnaClient::new(reqwest::Client::new(), server.uri());
        let bad_key = client.connect(&credentials("test_subject_WA", "wrong-key")).await.unwrap_err();
        assert!(rule_text(&bad_key).contains("credentials.api_key"), "{bad_key:?}");
        assert!(format!("{bad_key}").contains("edna refused the API key"));
        let unknown = client.connect(&credentials("nobody_WA", KEY)).await.unwrap_err();
        assert!(rule_text(&unknown).contains("credentials.subject"));
        let pending = client.connect(&credentials("pending_WA", KEY)).await.unwrap_err();
        assert!(rule_text(&pending).contains("channel_not_active"));
        let no_cascade = client.connect(&credentials("other_WA", KEY)).await.unwrap_err();
        assert!(rule_text(&no_cascade).contains("cascade_not_found"));
        let missing = client.connect(&credentials("", KEY)).await.unwrap_err();
        assert!(rule_text(&missing).contains("credentials.subject"));
    }

    #[tokio::test]
    async fn registers_both_callbacks_with_the_subject_id() {
        let server = MockServer::start().await;
        let url = format!("https://omnichat.example.test/webhooks/whatsapp-edna/c1/{HOOK_SECRET}");
        Mock::given(method("POST"))
            .and(path("/api/callback/set"))
            .and(header("x-api-key", KEY))
            .and(body_json(json!({"subjectId": 345, "inMessageCallbackUrl": url, "statusCallbackUrl": url})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/callback/set"))
            .and(body_json(json!({"subjectId": 345, "inMessageCallbackUrl": "", "statusCallbackUrl": ""})))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"detail": "url is invalid"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = EdnaClient::new(reqwest::Client::new(), server.uri());
        client.register_webhook(&channel_secrets(), &url).await.unwrap();
        // A refusal to clear the URLs does not stop a disconnect.
        client.remove_webhook(&channel_secrets()).await.unwrap();
    }

    fn outgoing(buttons: &[&str]) -> Outgoing {
        Outgoing {
            attachments: Vec::new(),
            customer_id: "79000000000".into(),
            text: "Your order is ready".into(),
            buttons: buttons.iter().map(|b| (*b).to_owned()).collect(),
            idempotency_key: "out-42".into(),
            thread: None,
            automatic: false,
            template: None,
        }
    }

    #[tokio::test]
    async fn sends_text_through_the_cascade_with_our_request_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/cascade/schedule"))
            .and(header("x-api-key", KEY))
            .and(body_json(json!({
                "requestId": "out-42",
                "cascadeId": 11,
                "subscriberFilter": {"address": "79000000000", "type": "PHONE"},
                "content": {"whatsappContent": {"contentType": "TEXT", "text": "Your order is ready\n\n1. Thanks\n2. Call me"}},
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"requestId": "out-42"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = EdnaClient::new(reqwest::Client::new(), server.uri());
        let sent = client.send(&channel_secrets(), &outgoing(&["Thanks", "Call me"])).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("out-42".into()) });
    }

    #[tokio::test]
    async fn throttling_server_errors_and_time_outs_hide_the_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/cascade/schedule"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "12"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/cascade/schedule"))
            .respond_with(ResponseTemplate::new(500).set_body_json(json!({"message": format!("boom {KEY}")})))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/cascade/schedule"))
            .respond_with(
                ResponseTemplate::new(400).set_body_json(json!({"detail": "subscriber address is invalid"})),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/cascade/schedule"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
            .mount(&server)
            .await;
        let client = EdnaClient::new(reqwest::Client::new(), server.uri());
        let throttled = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert_eq!(throttled, ProviderError::RateLimited { retry_after: Duration::from_secs(12) });
        let down = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert!(matches!(down, ProviderError::Unavailable(_)) && down.is_retryable(), "{down:?}");
        let rejected = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert_eq!(rejected, ProviderError::Rejected("HTTP 400: subscriber address is invalid".into()));
        let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
        let timed_out =
            EdnaClient::new(http, server.uri()).send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert!(matches!(timed_out, ProviderError::Unavailable(_)), "{timed_out:?}");
        for error in [throttled, down, rejected, timed_out] {
            let text = format!("{error} {error:?}");
            assert!(!text.contains(KEY) && !text.contains(HOOK_SECRET), "{text}");
        }
        let missing = client.send(&ChannelSecrets::default(), &outgoing(&[])).await.unwrap_err();
        assert!(matches!(missing, ProviderError::InvalidCredentials(_)));
    }

    // --- media ---

    #[test]
    fn the_image_fixture_gives_a_fetchable_link() {
        let client = EdnaClient::new(reqwest::Client::new(), "http://127.0.0.1:9");
        let message = one_message(&fixture("edna_image_unverified.json"));
        let image = &message.attachments[0];
        assert_eq!(image.kind, AttachmentKind::Image);
        assert!(image.file_ref.starts_with("https://files.mfms.ru/imfiles4s/"), "{}", image.file_ref);
        assert!(client.fetchable(image));
        let location = Attachment {
            kind: AttachmentKind::Location,
            file_ref: "1.5,2.5".into(),
            mime: None,
            size: None,
            name: None,
        };
        assert!(!client.fetchable(&location));
    }

    #[tokio::test]
    async fn fetches_an_attachment_by_its_link_without_the_key() {
        let server = MockServer::start().await;
        let bytes = b"\x89PNG\r\n\x1a\n edna image bytes".to_vec();
        Mock::given(method("GET"))
            .and(path("/files/photo.png"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.clone(), "image/png"))
            .mount(&server)
            .await;
        let body = json!({"id": 7, "subscriber": {"identifier": "79000000000"},
            "messageContent": {"type": "IMAGE", "caption": "look",
                "attachment": {"url": format!("{}/files/photo.png?Expires=1", server.uri()), "name": "photo.png", "size": 25}}});
        let message = one_message(body.to_string().as_bytes());
        let client = EdnaClient::new(reqwest::Client::new(), "http://127.0.0.1:9");
        let attachment = &message.attachments[0];
        assert!(client.fetchable(attachment));
        let mut sink = MediaSink::new(1024).await.unwrap();
        let declared = client.fetch_media(&channel_secrets(), attachment, &mut sink).await.unwrap();
        assert_eq!(declared.as_deref(), Some("image/png"));
        assert_eq!(std::fs::read(sink.path()).unwrap(), bytes);
        let requests = server.received_requests().await.unwrap();
        assert!(requests.iter().all(|r| !r.headers.contains_key(API_KEY_HEADER)), "no key on file links");
        // Too large for the sink: refused, nothing kept.
        let mut small = MediaSink::new(4).await.unwrap();
        let too_large = client.fetch_media(&channel_secrets(), attachment, &mut small).await;
        assert_eq!(too_large, Err(FetchError::TooLarge { limit: 4 }));
    }

    fn image(url: &str) -> OutgoingMedia {
        crate::test_support::linked_file(AttachmentKind::Image, "image/png", "receipt.png", 2048, url)
    }

    #[tokio::test]
    async fn sends_the_text_then_each_file_by_its_link() {
        let server = MockServer::start().await;
        let link = "https://media.example.test/o/receipt.png?X-Amz-Signature=abc";
        Mock::given(method("POST"))
            .and(path("/api/cascade/schedule"))
            .and(header("x-api-key", KEY))
            .and(body_json(json!({
                "requestId": "out-42",
                "cascadeId": 11,
                "subscriberFilter": {"address": "79000000000", "type": "PHONE"},
                "content": {"whatsappContent": {"contentType": "TEXT", "text": "Your receipt"}},
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"requestId": "out-42"})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/cascade/schedule"))
            .and(header("x-api-key", KEY))
            .and(body_json(json!({
                "requestId": "out-42-1",
                "cascadeId": 11,
                "subscriberFilter": {"address": "79000000000", "type": "PHONE"},
                "content": {"whatsappContent": {"contentType": "IMAGE",
                    "attachment": {"url": link, "name": "receipt.png", "size": 2048}}},
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"requestId": "out-42-1"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = EdnaClient::new(reqwest::Client::new(), server.uri());
        let mut out = outgoing(&[]);
        out.text = "Your receipt".into();
        out.attachments = vec![image(link)];
        let sent = client.send(&channel_secrets(), &out).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("out-42".into()) });
    }

    #[tokio::test]
    async fn a_file_without_text_is_one_message_and_unplayable_formats_go_as_documents() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/cascade/schedule"))
            .and(body_json(json!({
                "requestId": "out-42",
                "cascadeId": 11,
                "subscriberFilter": {"address": "79000000000", "type": "PHONE"},
                "content": {"whatsappContent": {"contentType": "DOCUMENT",
                    "attachment": {"url": "https://m.test/a.gif", "name": "file.gif", "size": 2048}}},
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(1)
            .mount(&server)
            .await;
        let client = EdnaClient::new(reqwest::Client::new(), server.uri());
        let mut out = outgoing(&[]);
        out.text = String::new();
        out.attachments =
            vec![OutgoingMedia { name: None, mime: "image/gif".into(), ..image("https://m.test/a.gif") }];
        let sent = client.send(&channel_secrets(), &out).await.unwrap();
        assert_eq!(sent.provider_message_id.as_deref(), Some("out-42"));
    }

    #[test]
    fn media_limits_are_whatsapps() {
        let client = EdnaClient::new(reqwest::Client::new(), "http://127.0.0.1:9");
        assert_eq!(client.media_limit(AttachmentKind::Image), Some(5_000_000));
        assert_eq!(client.media_limit(AttachmentKind::Video), Some(16_000_000));
        assert_eq!(client.media_limit(AttachmentKind::Audio), Some(16_000_000));
        assert_eq!(client.media_limit(AttachmentKind::Document), Some(100_000_000));
        assert_eq!(client.media_limit(AttachmentKind::Sticker), None);
        assert!(!client.sends_media_from_file());
    }

    /// Found by fuzzing (fuzz/regressions/edna/): an empty subscriber became the customer id, and a status
    /// with an empty request id was reported.
    #[test]
    fn a_message_without_a_subscriber_is_refused_and_a_status_without_a_request_id_ignored() {
        let message = br#"{"id":101,"subject":"s","subscriber":{"identifier":""},
            "messageContent":{"type":"TEXT","text":"hi"}}"#;
        assert!(matches!(parse_callback(message), Err(WebhookError::Malformed { .. })));
        let status = br#"{"requestId":"","status":"DELIVERED"}"#;
        assert_eq!(parse_callback(status), Ok(Parsed::default()));
    }

    // --- templates ---

    async fn fake_templates(server: &MockServer) {
        let matcher = |id: i64, name: &str, channel: &str, language: &str, status: &str, text: &str| {
            json!({"id": id, "name": name, "channelType": channel, "language": language,
                   "content": {"attachment": null, "action": null, "caption": null,
                               "header": {"headerType": "TEXT", "text": "Shop"}, "text": text,
                               "footer": {"text": "Reply STOP to unsubscribe"}, "keyboard": null,
                               "textExampleParams": ["Ann", "A-42"]},
                   "contentType": "TEXT", "category": "UTILITY", "status": status, "locked": false,
                   "type": "OPERATOR", "createdAt": "2024-03-01T10:00:00.000Z", "updatedAt": "2024-03-02T10:00:00.000Z"})
        };
        Mock::given(method("POST"))
            .and(path("/api/message-matchers/get-by-request"))
            .and(header("x-api-key", KEY))
            .and(body_json(json!({"subjectId": 345, "matcherTypes": ["OPERATOR"]})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                matcher(
                    1,
                    "order_ready",
                    "WHATSAPP",
                    "EN",
                    "APPROVED",
                    "Hi {{1}}, order {{2}} is ready. Bye {{1}}!"
                ),
                matcher(2, "promo", "WHATSAPP", "RU", "REJECTED", "Скидка {{1}}%"),
                matcher(3, "sms_note", "SMS", "EN", "APPROVED", "Code {{1}}"),
                matcher(4, "greeting", "WHATSAPP", "EN", "PENDING", "Hello!"),
            ])))
            .mount(server)
            .await;
    }

    fn template_outgoing(name: &str, parameters: &[&str]) -> Outgoing {
        Outgoing {
            text: String::new(),
            template: Some(Template {
                name: name.into(),
                language: "en".into(),
                parameters: parameters.iter().map(|p| (*p).to_owned()).collect(),
            }),
            ..outgoing(&[])
        }
    }

    #[tokio::test]
    async fn lists_the_channels_whatsapp_templates() {
        let server = MockServer::start().await;
        fake_templates(&server).await;
        let client = EdnaClient::new(reqwest::Client::new(), server.uri());
        let templates = client.list_templates(&channel_secrets()).await.unwrap().unwrap();
        assert_eq!(
            templates,
            vec![
                TemplateInfo {
                    name: "order_ready".into(),
                    language: "EN".into(),
                    status: "approved".into(),
                    text: Some("Hi {{1}}, order {{2}} is ready. Bye {{1}}!".into()),
                    parameters: 2,
                },
                TemplateInfo {
                    name: "promo".into(),
                    language: "RU".into(),
                    status: "rejected".into(),
                    text: Some("Скидка {{1}}%".into()),
                    parameters: 1,
                },
                TemplateInfo {
                    name: "greeting".into(),
                    language: "EN".into(),
                    status: "pending".into(),
                    text: Some("Hello!".into()),
                    parameters: 0,
                },
            ]
        );
    }

    #[tokio::test]
    async fn sends_a_template_as_its_filled_text_through_the_cascade_with_our_request_id() {
        let server = MockServer::start().await;
        fake_templates(&server).await;
        Mock::given(method("POST"))
            .and(path("/api/cascade/schedule"))
            .and(header("x-api-key", KEY))
            .and(body_json(json!({
                "requestId": "out-42",
                "cascadeId": 11,
                "subscriberFilter": {"address": "79000000000", "type": "PHONE"},
                "content": {"whatsappContent": {"contentType": "TEXT",
                                                "text": "Hi Ann, order A-42 is ready. Bye Ann!"}},
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"requestId": "out-42"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = EdnaClient::new(reqwest::Client::new(), server.uri());
        assert!(client.sends_templates());
        assert_eq!(client.service_window(), Some(jiff::SignedDuration::from_hours(24)));
        let sent = client
            .send(&channel_secrets(), &template_outgoing("order_ready", &["Ann", "A-42"]))
            .await
            .unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("out-42".into()) });
    }

    #[tokio::test]
    async fn unknown_unapproved_or_wrongly_filled_templates_are_refused_unsent() {
        let server = MockServer::start().await;
        fake_templates(&server).await;
        Mock::given(method("POST"))
            .and(path("/api/cascade/schedule"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(0)
            .mount(&server)
            .await;
        let client = EdnaClient::new(reqwest::Client::new(), server.uri());
        for (name, parameters, reason) in [
            ("nope", &["x"][..], "no WhatsApp template nope"),
            ("sms_note", &["1"][..], "no WhatsApp template sms_note"),
            ("greeting", &[][..], "pending"),
            ("order_ready", &["Ann"][..], "takes 2 values, not 1"),
        ] {
            let error =
                client.send(&channel_secrets(), &template_outgoing(name, parameters)).await.unwrap_err();
            assert!(matches!(&error, ProviderError::Rejected(r) if r.contains(reason)), "{name}: {error:?}");
            assert!(!error.is_retryable());
        }
    }
}
