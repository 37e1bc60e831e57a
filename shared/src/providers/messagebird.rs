//! WhatsApp through MessageBird's Conversations API: verify `MessageBird-Signature-JWT` (and Bird's HMAC
//! headers), normalize inbound messages and status updates, send text and template (HSM) messages.

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

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
/// Used when a 429 carries no `Retry-After`.
/// The webhook list is paged; a channel has a handful of webhooks, so a few pages are plenty.
const WEBHOOK_PAGE_SIZE: usize = 20;
const WEBHOOK_MAX_PAGES: usize = 50;
const INVALID_KEY: &str = "MessageBird refused the access key / MessageBird не принял ключ доступа";
const UNKNOWN_CHANNEL: &str =
    "no such channel for this access key / канал с таким ID не найден для этого ключа доступа";

mod signature;

pub use signature::{JwtError, sign_webhook, verify_request_signature, verify_signature_jwt};

use signature::verify_request;

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
mod tests;
