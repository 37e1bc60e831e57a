//! WhatsApp through Infobip: the account's base URL and senders, batched inbound messages and delivery
//! reports (Infobip signs nothing we can rely on: a secret URL segment proves origin), text and reply
//! buttons.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::edna::{WHATSAPP_CAPTION_MAX_CHARS, WhatsappMedia, whatsapp_media_limit};
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
use crate::providers::Http;
use std::sync::OnceLock;

use crate::net::{GuardedClient, OutboundPolicy};
use crate::ports::media::MediaSink;
use crate::secret::Secret;

/// The admin's credentials: the API key, the account's personal base URL, and the WhatsApp sender number.
pub const API_KEY: &str = "api_key";
pub const BASE_URL: &str = "base_url";
pub const SENDER: &str = "sender";
/// Set to `1` to let the base URL point at a loopback fake (local runner against a simulated Infobip).
pub const ALLOW_LOOPBACK_ENV: &str = crate::net::ALLOW_LOOPBACK_ENV;

const PROVIDER: &str = "whatsapp-infobip";
/// WhatsApp's limits for reply buttons.
const MAX_BUTTONS: usize = 3;
const BUTTON_TITLE_MAX_CHARS: usize = 20;
const BUTTON_ID_MAX_BYTES: usize = 256;
const BUTTON_BODY_MAX_CHARS: usize = 1024;
const SENDERS_PAGE_SIZE: usize = 200;
const INVALID_KEY: &str = "Infobip refused the API key / Infobip не принял API-ключ";
const INVALID_BASE_URL: &str = "must be the account's Infobip base URL, like https://xxxxx.api.infobip.com / \
                                укажите Base URL аккаунта Infobip, например https://xxxxx.api.infobip.com";
const UNKNOWN_SENDER: &str =
    "not a WhatsApp sender of this Infobip account / это не WhatsApp-номер аккаунта Infobip";

// --- the base URL ---

/// The base URL as `scheme://host[:port]`, or `None` when it is not one to call with the API key: https on
/// an Infobip host (`xxxxx.api.infobip.com`, or the older `xxxxx.infobip.com`), no credentials, path, query
/// or fragment. With `allow_loopback`, `http(s)://127.0.0.1|localhost|[::1]:port` is accepted too (fakes).
/// A bare host (`xxxxx.api.infobip.com`, as the portal shows it) is taken as https.
pub fn normalize_base_url(raw: &str, allow_loopback: bool) -> Option<String> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") { raw.to_owned() } else { format!("https://{raw}") };
    let url = Url::parse(&with_scheme).ok()?;
    let clean = url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && matches!(url.path(), "" | "/");
    if !clean {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]");
    let acceptable = if loopback {
        allow_loopback && matches!(url.scheme(), "http" | "https")
    } else {
        url.scheme() == "https"
            && url.port().is_none()
            && host.ends_with(".infobip.com")
            && host.split('.').all(|label| !label.is_empty())
    };
    if !acceptable {
        return None;
    }
    Some(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// A sender number as Infobip writes it: international format, digits only.
pub fn normalize_sender(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')')).collect();
    ((3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

// --- verification and parsing ---

/// Infobip signs nothing we can rely on: the channel's webhook URL ends with an unguessable secret,
/// compared here in constant time. A channel without a secret accepts nothing.
pub fn verify_path_secret(path_secret: Option<&str>, expected: &Secret) -> Result<(), WebhookError> {
    match path_secret {
        Some(candidate) if !expected.expose().is_empty() && expected.matches(candidate) => Ok(()),
        _ => Err(WebhookError::Unauthorized),
    }
}

/// What one verified request carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
}

/// Normalizes one batched body: each of `results[]` is an inbound message (it has `message`) or a delivery
/// report on one of ours (it has `status`); seen reports and anything else are acknowledged and ignored.
pub fn parse_batch(body: &[u8]) -> Result<Parsed, WebhookError> {
    let batch: Batch = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let mut parsed = Parsed::default();
    for result in batch.results {
        if result.get("message").is_some_and(Value::is_object) {
            let inbound = IbInbound::deserialize(&result).map_err(|e| malformed(e.to_string()))?;
            // The id is the dedup key and the sender the customer: neither may be empty (found by fuzzing).
            if inbound.message_id.is_empty() || inbound.from.is_empty() {
                return Err(malformed("a message without an id or a sender".into()));
            }
            parsed.messages.extend(normalize_inbound(inbound));
        } else if result.get("status").is_some_and(Value::is_object) {
            let report = IbReport::deserialize(&result).map_err(|e| malformed(e.to_string()))?;
            // A report without a message id cannot be about any message of ours.
            parsed.statuses.extend(status_update(report).filter(|s| !s.provider_message_id.is_empty()));
        }
    }
    Ok(parsed)
}

fn malformed(reason: String) -> WebhookError {
    WebhookError::Malformed { provider: PROVIDER, reason }
}

#[derive(Deserialize)]
struct Batch {
    results: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IbInbound {
    /// The customer's number, international format without `+`.
    from: String,
    received_at: Option<String>,
    /// The WhatsApp message id: the dedup key.
    message_id: String,
    message: Value,
    contact: Option<IbContact>,
}

#[derive(Deserialize)]
struct IbContact {
    name: Option<String>,
}

/// Infobip writes `2019-07-19T11:23:26.998+0000` (no colon in the offset), which RFC 3339 parsing refuses.
fn parse_time(text: &str) -> Option<Timestamp> {
    text.parse::<Timestamp>()
        .ok()
        .or_else(|| jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%.f%z", text).ok()?.to_timestamp().ok())
}

fn normalize_inbound(inbound: IbInbound) -> Option<InboundMessage> {
    let message = &inbound.message;
    let str_at = |key: &str| message.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
    let message_type = str_at("type").unwrap_or("TEXT").to_ascii_uppercase();
    let mut kind = InboundKind::Message;
    let mut text = str_at("text").or_else(|| str_at("caption")).map(str::to_owned);
    let mut attachments = Vec::new();
    let media = match message_type.as_str() {
        "IMAGE" => Some(AttachmentKind::Image),
        "DOCUMENT" => Some(AttachmentKind::Document),
        "AUDIO" => Some(AttachmentKind::Audio),
        "VOICE" => Some(AttachmentKind::Voice),
        "VIDEO" => Some(AttachmentKind::Video),
        "STICKER" => Some(AttachmentKind::Sticker),
        _ => None,
    };
    match (message_type.as_str(), media) {
        // The media URL is on the account's API and needs the API key to download.
        (_, Some(media)) => {
            if let Some(url) = str_at("url") {
                attachments.push(Attachment {
                    kind: media,
                    file_ref: url.to_owned(),
                    mime: None,
                    size: None,
                    name: None,
                });
            }
        }
        ("LOCATION", None) => {
            let coordinate = |key: &str| message.get(key).and_then(Value::as_f64);
            if let (Some(latitude), Some(longitude)) = (coordinate("latitude"), coordinate("longitude")) {
                attachments.push(Attachment {
                    kind: AttachmentKind::Location,
                    file_ref: format!("{latitude},{longitude}"),
                    mime: None,
                    size: None,
                    name: str_at("name").or_else(|| str_at("address")).map(str::to_owned),
                });
            }
        }
        // Reply buttons and list rows come back with the id we gave them; template buttons with a payload.
        ("INTERACTIVE_BUTTON_REPLY" | "INTERACTIVE_LIST_REPLY", None) => {
            if let Some(pressed) = str_at("id").or_else(|| str_at("title")) {
                kind = InboundKind::ButtonReply;
                text = Some(pressed.to_owned());
            }
        }
        ("BUTTON", None) => {
            if let Some(pressed) = str_at("payload").or_else(|| str_at("text")) {
                kind = InboundKind::ButtonReply;
                text = Some(pressed.to_owned());
            }
        }
        _ => {}
    }
    if text.is_none() && attachments.is_empty() {
        return None;
    }
    let name = inbound.contact.and_then(|c| c.name).filter(|n| !n.trim().is_empty());
    Some(InboundMessage {
        dedup_key: inbound.message_id.clone(),
        kind,
        customer: Customer { id: inbound.from, name, handle: None },
        provider_message_id: Some(inbound.message_id),
        text,
        attachments,
        sent_at: inbound.received_at.as_deref().and_then(parse_time),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IbReport {
    message_id: String,
    status: IbStatus,
    error: Option<IbError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IbStatus {
    group_name: Option<String>,
    name: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct IbError {
    name: Option<String>,
    description: Option<String>,
}

fn status_update(report: IbReport) -> Option<StatusUpdate> {
    let status = match report.status.group_name.as_deref()?.to_ascii_uppercase().as_str() {
        "PENDING" => OutStatus::Sent,
        "DELIVERED" => OutStatus::Delivered,
        "UNDELIVERABLE" | "EXPIRED" | "REJECTED" => OutStatus::Failed,
        _ => return None,
    };
    let reason = (status == OutStatus::Failed).then(|| {
        let error = report.error.and_then(|e| e.description.or(e.name)).filter(|e| !e.is_empty());
        error.or(report.status.description).or(report.status.name).unwrap_or_else(|| "undeliverable".into())
    });
    Some(StatusUpdate { provider_message_id: report.message_id, status, reason })
}

// --- client ---

/// Calls an account's Infobip API. Key and base URL are per account, so both are passed per call. The
/// base URL is the admin's: calls go through a client of the outbound policy (`crate::net`), which connects
/// only to public addresses the host resolves to at call time, and follows no redirect.
#[derive(Debug, Clone)]
pub struct InfobipClient {
    policy: OutboundPolicy,
    /// Built on the first call, not at start-up: most containers never serve an Infobip channel, and a
    /// client's TLS set-up reads the system's certificate store.
    http: OnceLock<GuardedClient>,
}

impl InfobipClient {
    /// The API key and the validated base URL from the admin's credentials: an Infobip host that resolves
    /// to public addresses only.
    async fn api_access(&self, credentials: &Map<String, Value>) -> AppResult<(Secret, String)> {
        let api_key = required_credential(credentials, API_KEY)?;
        let base_url = required_credential(credentials, BASE_URL)?;
        let invalid =
            |message: String| Error::rule("invalid_base_url", format!("credentials.{BASE_URL}"), message);
        let base_url = normalize_base_url(base_url.expose(), self.policy.allows_loopback())
            .ok_or_else(|| invalid(INVALID_BASE_URL.to_owned()))?;
        let url = Url::parse(&base_url).map_err(|_| invalid(INVALID_BASE_URL.to_owned()))?;
        self.policy.check_url_resolves(&url).await.map_err(|refusal| invalid(refusal.message()))?;
        Ok((api_key, base_url))
    }
}

impl InfobipClient {
    /// Accepts only Infobip's https hosts on public addresses as base URLs. The shared client is not used:
    /// the admin's base URL needs the outbound policy's own.
    pub fn new(_shared: impl Into<Http>) -> Self {
        Self { policy: OutboundPolicy::strict(), http: OnceLock::new() }
    }

    fn http(&self) -> &GuardedClient {
        self.http.get_or_init(|| self.policy.client(super::CONNECT_TIMEOUT, super::REQUEST_TIMEOUT))
    }

    /// Also accepts loopback base URLs, for tests and a local runner with a fake Infobip.
    pub fn allowing_loopback(self) -> Self {
        Self { policy: OutboundPolicy::allowing_loopback(), http: OnceLock::new() }
    }

    /// `OMNICHAT_ALLOW_LOOPBACK_PROVIDERS=1` lets base URLs point at a loopback fake.
    pub fn from_env(http: Http) -> Self {
        let client = Self::new(http);
        if std::env::var(ALLOW_LOOPBACK_ENV).is_ok_and(|v| v.trim() == "1") {
            client.allowing_loopback()
        } else {
            client
        }
    }

    /// The account's WhatsApp sender numbers (digits only), for the admin to pick from.
    pub async fn list_senders(&self, api_key: &Secret, base_url: &str) -> Result<Vec<String>, ProviderError> {
        let mut url = self.endpoint(base_url, &["whatsapp", "2", "senders"])?;
        url.query_pairs_mut().append_pair("limit", &SENDERS_PAGE_SIZE.to_string());
        let list: SenderList = self.call(Method::GET, url, api_key, None, Purpose::CredentialCheck).await?;
        Ok(list.results.into_iter().filter_map(|s| s.sender).collect())
    }

    /// Whether `sender` is one of the account's WhatsApp senders. The sender list is asked first; where it
    /// is not available, the quality endpoint (which answers only for the account's own senders) decides.
    pub async fn has_sender(
        &self,
        api_key: &Secret,
        base_url: &str,
        sender: &str,
    ) -> Result<bool, ProviderError> {
        match self.list_senders(api_key, base_url).await {
            Ok(senders) => Ok(senders.iter().any(|s| normalize_sender(s).as_deref() == Some(sender))),
            Err(ProviderError::Rejected(_)) => {
                let mut url = self.endpoint(base_url, &["whatsapp", "1", "senders", "quality"])?;
                url.query_pairs_mut().append_pair("senders", sender);
                let quality: SenderList =
                    match self.call(Method::GET, url, api_key, None, Purpose::CredentialCheck).await {
                        Ok(quality) => quality,
                        Err(ProviderError::Rejected(_)) => return Ok(false),
                        Err(other) => return Err(other),
                    };
                Ok(quality
                    .results
                    .iter()
                    .any(|s| s.sender.as_deref().and_then(normalize_sender).as_deref() == Some(sender)))
            }
            Err(other) => Err(other),
        }
    }

    /// Sends a text, or up to three reply buttons (more, or a body too long for buttons, become numbered
    /// options in a text). Our outgoing message id goes along as `messageId`, which delivery reports echo.
    ///
    /// Files go one message each, by their link (Infobip fetches it): `/whatsapp/1/message/image|video|
    /// audio|document` with `content.mediaUrl`. The text is the first file's caption where WhatsApp shows
    /// one (not under audio, at most 1024 characters, no reply buttons), else a message of its own, first.
    /// The first message carries our id as `messageId`, the n-th `{id}-{n}`; the first one's id is reported.
    pub async fn send_message(
        &self,
        api_key: &Secret,
        base_url: &str,
        sender: &str,
        out: &Outgoing,
    ) -> Result<Sent, ProviderError> {
        let text = text_with_options(&out.text, &out.buttons);
        let has_text = !out.text.trim().is_empty() || !out.buttons.is_empty();
        let caption = (has_text
            && out.buttons.is_empty()
            && text.chars().count() <= WHATSAPP_CAPTION_MAX_CHARS
            && out.attachments.first().is_some_and(|first| WhatsappMedia::of(first).takes_caption()))
        .then_some(text.as_str());
        let mut requests = Vec::with_capacity(out.attachments.len() + 1);
        if out.attachments.is_empty() || (has_text && caption.is_none()) {
            requests.push(message_request(sender, out));
        }
        for (i, media) in out.attachments.iter().enumerate() {
            requests.push(media_request(sender, &out.customer_id, media, caption.filter(|_| i == 0)));
        }
        let mut first = None;
        for (n, (segments, mut body)) in requests.into_iter().enumerate() {
            let message_id = match n {
                0 => out.idempotency_key.clone(),
                n => format!("{}-{n}", out.idempotency_key),
            };
            body["messageId"] = Value::String(message_id.clone());
            let url = self.endpoint(base_url, &segments)?;
            let sent: SendResponse =
                self.call(Method::POST, url, api_key, Some(&body), Purpose::Operation).await?;
            first.get_or_insert(sent.message_id.unwrap_or(message_id));
        }
        Ok(Sent { provider_message_id: first })
    }

    /// Downloads an inbound message's file with the API key, through the outbound policy's client. The key
    /// goes only to the channel's own base URL: a link there is fetched as it is; Infobip's documented
    /// media link on another Infobip host (`https://api.infobip.com/whatsapp/1/senders/{sender}/media/{id}`)
    /// is fetched by the same path from the channel's base URL; any other link is refused unfetched.
    pub async fn download_media(
        &self,
        api_key: &Secret,
        base_url: &str,
        link: &str,
        sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        let base = normalize_base_url(base_url, self.policy.allows_loopback())
            .and_then(|base| Url::parse(&base).ok())
            .ok_or_else(|| ProviderError::Rejected("the Infobip base URL is not acceptable".into()))?;
        let link = Url::parse(link)
            .map_err(|_| FetchError::Unsupported("the attachment's link is not a URL".into()))?;
        let same_origin = link.scheme() == base.scheme()
            && link.host_str().map(str::to_ascii_lowercase).as_deref() == base.host_str()
            && link.port_or_known_default() == base.port_or_known_default();
        let url = if same_origin && link.username().is_empty() && link.password().is_none() {
            link
        } else if let Some(segments) = infobip_media_path(&link) {
            let mut url = base.clone();
            url.path_segments_mut()
                .map_err(|_| ProviderError::Rejected("the Infobip base URL cannot have a path".into()))?
                .pop_if_empty()
                .extend(segments);
            url
        } else {
            return Err(FetchError::Unsupported(
                "the attachment's link is not on the channel's Infobip base URL; the API key is not sent there"
                    .into(),
            ));
        };
        let request = self.http().request(Method::GET, url).map_err(|refusal| {
            ProviderError::Rejected(format!("the Infobip base URL is refused: {refusal}"))
        })?;
        let request = request.header("Authorization", format!("App {}", api_key.expose()));
        super::media::download(request, &[api_key], sink).await
    }

    /// Sends an approved template (`POST /whatsapp/1/message/template`): the one message WhatsApp lets a
    /// business send outside the customer-service window. Our outgoing message id goes as `messageId`.
    pub async fn send_template(
        &self,
        api_key: &Secret,
        base_url: &str,
        sender: &str,
        out: &Outgoing,
        template: &Template,
    ) -> Result<Sent, ProviderError> {
        let body = json!({"messages": [{
            "from": sender,
            "to": out.customer_id,
            "messageId": out.idempotency_key,
            "content": {
                "templateName": template.name,
                "templateData": {"body": {"placeholders": template.parameters}},
                "language": template.language,
            },
        }]});
        let url = self.endpoint(base_url, &["whatsapp", "1", "message", "template"])?;
        let sent: TemplateSendResponse =
            self.call(Method::POST, url, api_key, Some(&body), Purpose::Operation).await?;
        let id = sent.messages.into_iter().find_map(|m| m.message_id).filter(|id| !id.is_empty());
        Ok(Sent { provider_message_id: Some(id.unwrap_or_else(|| out.idempotency_key.clone())) })
    }

    /// The sender's templates (`GET /whatsapp/2/senders/{sender}/templates`): status in lower case, the
    /// body's text from `structure.body.text`, its placeholders counted.
    pub async fn templates(
        &self,
        api_key: &Secret,
        base_url: &str,
        sender: &str,
    ) -> Result<Vec<TemplateInfo>, ProviderError> {
        let url = self.endpoint(base_url, &["whatsapp", "2", "senders", sender, "templates"])?;
        let list: TemplateList = self.call(Method::GET, url, api_key, None, Purpose::Operation).await?;
        Ok(list
            .templates
            .into_iter()
            .filter_map(|t| {
                let text = t.structure.and_then(|s| s.body).and_then(|b| b.text);
                Some(TemplateInfo {
                    name: t.name.filter(|n| !n.is_empty())?,
                    language: t.language.unwrap_or_default(),
                    status: t.status.unwrap_or_default().to_lowercase(),
                    parameters: text.as_deref().map_or(0, super::placeholder_count),
                    text,
                })
            })
            .collect())
    }

    fn endpoint(&self, base_url: &str, segments: &[&str]) -> Result<Url, ProviderError> {
        let base = normalize_base_url(base_url, self.policy.allows_loopback())
            .ok_or_else(|| ProviderError::Rejected("the Infobip base URL is not acceptable".into()))?;
        let mut url = Url::parse(&base)
            .map_err(|_| ProviderError::Rejected("the Infobip base URL is not a URL".into()))?;
        url.path_segments_mut()
            .map_err(|_| ProviderError::Rejected("the Infobip base URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
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
        let request = self.http().request(method, url).map_err(|refusal| {
            ProviderError::Rejected(format!("the Infobip base URL is refused: {refusal}"))
        })?;
        let mut request = request.header("Authorization", format!("App {}", api_key.expose()));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after_header(response.headers());
        let bytes = response.bytes().await.map_err(transport_error)?;
        let outcome = interpret(status, retry_after, &bytes, purpose, api_key);
        if let Err(error) = &outcome {
            tracing::warn!(path, status = status.as_u16(), %error, "infobip call failed");
        }
        outcome
    }
}

/// The endpoint and body of one outgoing message, in Infobip's documented formats.
fn message_request(sender: &str, out: &Outgoing) -> (Vec<&'static str>, Value) {
    let buttons: Vec<&String> = out.buttons.iter().filter(|b| !b.trim().is_empty()).collect();
    let fits_buttons = !buttons.is_empty()
        && buttons.len() <= MAX_BUTTONS
        && !out.text.trim().is_empty()
        && out.text.chars().count() <= BUTTON_BODY_MAX_CHARS;
    if fits_buttons {
        let buttons: Vec<Value> = buttons
            .iter()
            .map(|label| {
                let title: String = label.chars().take(BUTTON_TITLE_MAX_CHARS).collect();
                json!({"type": "REPLY", "id": truncate_bytes(label, BUTTON_ID_MAX_BYTES), "title": title})
            })
            .collect();
        let body = json!({
            "from": sender,
            "to": out.customer_id,
            "messageId": out.idempotency_key,
            "content": {"body": {"text": out.text}, "action": {"buttons": buttons}},
        });
        return (vec!["whatsapp", "1", "message", "interactive", "buttons"], body);
    }
    let body = json!({
        "from": sender,
        "to": out.customer_id,
        "messageId": out.idempotency_key,
        "content": {"text": text_with_options(&out.text, &out.buttons)},
    });
    (vec!["whatsapp", "1", "message", "text"], body)
}

/// The endpoint and body of one file sent by its link (`messageId` is set by the caller).
fn media_request(
    sender: &str,
    to: &str,
    media: &OutgoingMedia,
    caption: Option<&str>,
) -> (Vec<&'static str>, Value) {
    let kind = WhatsappMedia::of(media);
    let endpoint = match kind {
        WhatsappMedia::Image => "image",
        WhatsappMedia::Video => "video",
        WhatsappMedia::Audio => "audio",
        WhatsappMedia::Document => "document",
    };
    let mut content = json!({"mediaUrl": media.url});
    if let Some(caption) = caption.filter(|_| kind.takes_caption()) {
        content["caption"] = Value::String(caption.to_owned());
    }
    if kind == WhatsappMedia::Document {
        content["filename"] = Value::String(media.file_name());
    }
    (vec!["whatsapp", "1", "message", endpoint], json!({"from": sender, "to": to, "content": content}))
}

/// The path segments of Infobip's documented inbound media link, `/whatsapp/1/senders/{sender}/media/{id}`
/// on an https Infobip host; `None` for any other link.
fn infobip_media_path(link: &Url) -> Option<Vec<String>> {
    let host = link.host_str()?.to_ascii_lowercase();
    let infobip = link.scheme() == "https"
        && link.port().is_none()
        && link.username().is_empty()
        && link.password().is_none()
        && (host == "api.infobip.com" || host.ends_with(".infobip.com"));
    if !infobip || link.query().is_some() {
        return None;
    }
    let segments: Vec<&str> = link.path_segments()?.collect();
    let plausible = |s: &str| {
        !s.is_empty()
            && s.len() <= 256
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s != "."
            && s != ".."
    };
    match segments.as_slice() {
        ["whatsapp", "1", "senders", sender, "media", id] if plausible(sender) && plausible(id) => {
            Some(segments.iter().map(|s| (*s).to_owned()).collect())
        }
        _ => None,
    }
}

/// The longest prefix of `text` that fits in `max` bytes without splitting a character.
fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[derive(Deserialize)]
struct SenderList {
    #[serde(default)]
    results: Vec<SenderItem>,
}

#[derive(Deserialize)]
struct SenderItem {
    sender: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendResponse {
    message_id: Option<String>,
}

#[derive(Deserialize)]
struct TemplateSendResponse {
    #[serde(default)]
    messages: Vec<SendResponse>,
}

#[derive(Deserialize)]
struct TemplateList {
    #[serde(default)]
    templates: Vec<IbTemplate>,
}

#[derive(Deserialize)]
struct IbTemplate {
    name: Option<String>,
    language: Option<String>,
    status: Option<String>,
    structure: Option<IbStructure>,
}

#[derive(Deserialize)]
struct IbStructure {
    body: Option<IbBody>,
}

#[derive(Deserialize)]
struct IbBody {
    text: Option<String>,
}

/// The one place an Infobip answer becomes a result or a `ProviderError`. Classic APIs describe errors at
/// requestError.serviceException.text; newer ones in description / errorCode.
fn interpret<T: DeserializeOwned>(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    purpose: Purpose,
    api_key: &Secret,
) -> Result<T, ProviderError> {
    if status.is_success() {
        return json_answer(body, "Infobip");
    }
    let found = first_string_at(body, &["/requestError/serviceException/text", "/description", "/errorCode"]);
    let description = failure_description(status.as_u16(), found, &[api_key]);
    Err(super::http_failure(status.as_u16(), description, retry_after, purpose.refusal(INVALID_KEY)))
}

#[async_trait]
impl ChannelProvider for InfobipClient {
    async fn list_accounts(&self, credentials: &Map<String, Value>) -> AppResult<Vec<Account>> {
        let (api_key, base_url) = self.api_access(credentials).await?;
        match self.list_senders(&api_key, &base_url).await {
            Ok(senders) => {
                Ok(senders.into_iter().map(|n| Account { name: format!("+{n}"), id: n }).collect())
            }
            Err(ProviderError::InvalidCredentials(_)) => {
                Err(Error::rule("invalid_api_key", format!("credentials.{API_KEY}"), INVALID_KEY))
            }
            Err(other) => Err(other.into()),
        }
    }

    async fn connect(&self, credentials: &Map<String, Value>) -> AppResult<Connection> {
        let (api_key, base_url) = self.api_access(credentials).await?;
        let sender = required_credential(credentials, SENDER)?;
        let unknown_sender =
            || Error::rule("unknown_sender", format!("credentials.{SENDER}"), UNKNOWN_SENDER);
        let sender = normalize_sender(sender.expose()).ok_or_else(unknown_sender)?;
        match self.has_sender(&api_key, &base_url, &sender).await {
            Ok(true) => {}
            Ok(false) => return Err(unknown_sender()),
            Err(ProviderError::InvalidCredentials(_)) => {
                return Err(Error::rule("invalid_api_key", format!("credentials.{API_KEY}"), INVALID_KEY));
            }
            Err(other) => return Err(other.into()),
        }
        // Infobip's base URL and sender number are not secrets: the admin sees them as entered.
        let masked = BTreeMap::from([
            (API_KEY.to_owned(), api_key.masked()),
            (BASE_URL.to_owned(), base_url.clone()),
            (SENDER.to_owned(), sender.clone()),
        ]);
        let secrets = ChannelSecrets::default()
            .with(API_KEY, api_key)
            .with(BASE_URL, Secret::new(base_url))
            .with(SENDER, Secret::new(sender.clone()));
        Ok(Connection {
            account: Account { id: sender.clone(), name: format!("+{sender}") },
            secrets,
            masked,
        })
    }

    /// Infobip has no API here to register the URL: the admin pastes this URL (secret included) into the
    /// sender's inbound and delivery-report settings.
    fn secret_in_webhook_path(&self) -> bool {
        true
    }

    fn receive(&self, secrets: &ChannelSecrets, request: &WebhookRequest) -> Result<Delivery, WebhookError> {
        verify_path_secret(
            request.path_secret.as_deref(),
            secrets.for_verifying(ChannelSecrets::WEBHOOK_SECRET)?,
        )?;
        let parsed = parse_batch(&request.body)?;
        Ok(Delivery { messages: parsed.messages, statuses: parsed.statuses, reply: Default::default() })
    }

    async fn send(&self, secrets: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError> {
        let missing = || ProviderError::InvalidCredentials("the channel has no Infobip credentials".into());
        let api_key = secrets.get(API_KEY).ok_or_else(missing)?;
        let base_url = secrets.get(BASE_URL).ok_or_else(missing)?;
        let sender = secrets.get(SENDER).ok_or_else(missing)?;
        match &out.template {
            Some(template) => {
                self.send_template(api_key, base_url.expose(), sender.expose(), out, template).await
            }
            None => self.send_message(api_key, base_url.expose(), sender.expose(), out).await,
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
        let templates = self
            .templates(
                secrets.require(API_KEY)?,
                secrets.require(BASE_URL)?.expose(),
                secrets.require(SENDER)?.expose(),
            )
            .await?;
        Ok(Some(templates))
    }

    /// Inbound media links are on the account's API and need the API key (`Authorization: App`).
    async fn fetch_media(
        &self,
        secrets: &ChannelSecrets,
        attachment: &Attachment,
        sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        let missing = || ProviderError::InvalidCredentials("the channel has no Infobip credentials".into());
        let api_key = secrets.get(API_KEY).ok_or_else(missing)?;
        let base_url = secrets.get(BASE_URL).ok_or_else(missing)?;
        self.download_media(api_key, base_url.expose(), &attachment.file_ref, sink).await
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

    const KEY: &str = "003026bbc133714df1834b8638bb496e-8f4b3c9a";
    const HOOK_SECRET: &str = "HookSecret0123456789HookSecret0123456789HookSecr";

    #[test]
    fn parses_the_text_fixture() {
        let parsed = parse_batch(&fixture("infobip_text.json")).unwrap();
        assert!(parsed.statuses.is_empty());
        assert_eq!(
            parsed.messages,
            vec![InboundMessage {
                dedup_key: "ABEGOFl3VCQoAhBalbc6rTQT6mgS29EmGZ7a".into(),
                kind: InboundKind::Message,
                customer: Customer { id: "385919998888".into(), name: Some("Frank".into()), handle: None },
                provider_message_id: Some("ABEGOFl3VCQoAhBalbc6rTQT6mgS29EmGZ7a".into()),
                text: Some("Support hello".into()),
                attachments: vec![],
                sent_at: Some("2019-07-19T11:23:26.998Z".parse().unwrap()),
            }]
        );
    }

    #[test]
    fn parses_the_delivery_report_fixture() {
        let parsed = parse_batch(&fixture("infobip_delivery_report.json")).unwrap();
        assert!(parsed.messages.is_empty());
        assert_eq!(
            parsed.statuses,
            vec![StatusUpdate {
                provider_message_id: "fb469d73-d362-463f-b30f-1e959b53badc".into(),
                status: OutStatus::Delivered,
                reason: None,
            }]
        );
    }

    fn batch(results: Value) -> Vec<u8> {
        json!({"results": results, "messageCount": 1, "pendingMessageCount": 0}).to_string().into_bytes()
    }

    fn inbound(id: &str, message: Value) -> Value {
        json!({"from": "385919998888", "to": "447860099299", "integrationType": "WHATSAPP",
               "receivedAt": "2024-01-02T03:04:05.000+0100", "messageId": id, "message": message,
               "contact": {"name": ""}})
    }

    #[test]
    fn every_result_of_a_batch_is_normalized() {
        let body = batch(json!([
            inbound("a", json!({"type": "IMAGE", "caption": "photo", "url": "https://api.infobip.com/whatsapp/1/senders/447860099299/media/1"})),
            inbound("b", json!({"type": "LOCATION", "longitude": 15.97, "latitude": 45.81, "name": "Zagreb"})),
            inbound("c", json!({"type": "INTERACTIVE_BUTTON_REPLY", "id": "Yes", "title": "Yes"})),
            inbound("d", json!({"type": "BUTTON", "text": "Stop", "payload": "STOP_PROMO"})),
            inbound("e", json!({"type": "VOICE", "url": "https://api.infobip.com/media/2"})),
            inbound("f", json!({"type": "CONTACT", "contacts": []})),
            {"messageId": "seen-1", "to": "385919998888", "seenAt": "2024-01-02T03:04:05.000+0000"},
            {"messageId": "out-9", "to": "385919998888",
             "status": {"groupName": "UNDELIVERABLE", "name": "UNDELIVERABLE_NOT_DELIVERED", "description": "Message sent not delivered"},
             "error": {"id": 7, "name": "EC_INVALID_NUMBER", "description": "Invalid number", "permanent": true}},
            {"messageId": "out-8", "status": {"groupName": "PENDING", "name": "PENDING_ENROUTE"}},
        ]));
        let parsed = parse_batch(&body).unwrap();
        let ids: Vec<&str> = parsed.messages.iter().map(|m| m.dedup_key.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "e"]);
        let image = &parsed.messages[0];
        assert_eq!(image.customer, Customer { id: "385919998888".into(), name: None, handle: None });
        assert_eq!(image.text.as_deref(), Some("photo"));
        assert_eq!(image.attachments[0].kind, AttachmentKind::Image);
        assert_eq!(image.sent_at, Some("2024-01-02T02:04:05Z".parse().unwrap()));
        assert_eq!(parsed.messages[1].attachments[0].file_ref, "45.81,15.97");
        assert_eq!(parsed.messages[1].attachments[0].name.as_deref(), Some("Zagreb"));
        assert_eq!(
            (parsed.messages[2].kind, parsed.messages[2].text.as_deref()),
            (InboundKind::ButtonReply, Some("Yes"))
        );
        assert_eq!(parsed.messages[3].text.as_deref(), Some("STOP_PROMO"));
        assert_eq!(parsed.messages[4].attachments[0].kind, AttachmentKind::Voice);
        assert_eq!(
            parsed.statuses,
            vec![
                StatusUpdate {
                    provider_message_id: "out-9".into(),
                    status: OutStatus::Failed,
                    reason: Some("Invalid number".into())
                },
                StatusUpdate { provider_message_id: "out-8".into(), status: OutStatus::Sent, reason: None },
            ]
        );
        assert_eq!(parse_batch(&batch(json!([]))).unwrap(), Parsed::default());
    }

    #[test]
    fn refuses_malformed_bodies() {
        for body in [
            &b"not json"[..],
            b"",
            b"[]",
            b"{}",
            br#"{"results": {}}"#,
            br#"{"results": [{"message": {"type": "TEXT", "text": "x"}}]}"#,
            br#"{"results": [{"messageId": 5, "status": {"groupName": "DELIVERED"}}]}"#,
        ] {
            match parse_batch(body) {
                Err(WebhookError::Malformed { provider: "whatsapp-infobip", .. }) => {}
                other => panic!("{}: expected Malformed, got {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn base_urls_must_be_infobip_https_hosts() {
        for (raw, expected) in [
            ("https://xyz12.api.infobip.com", "https://xyz12.api.infobip.com"),
            ("https://XYZ12.api.infobip.com/", "https://xyz12.api.infobip.com"),
            ("xyz12.api.infobip.com", "https://xyz12.api.infobip.com"),
            ("  https://example.infobip.com ", "https://example.infobip.com"),
        ] {
            assert_eq!(normalize_base_url(raw, false).as_deref(), Some(expected), "{raw}");
        }
        for raw in [
            "http://xyz12.api.infobip.com",
            "https://infobip.com",
            "https://xyz12.api.infobip.com.evil.test",
            "https://evil.test/?x=.infobip.com",
            "https://user:pass@xyz12.api.infobip.com",
            "https://xyz12.api.infobip.com/sms",
            "https://xyz12.api.infobip.com:8443",
            "https://xyz12.api.infobip.com?x=1",
            "https://xyz12.api.infobip.com.",
            "http://127.0.0.1:8080",
            "http://169.254.169.254",
            "",
            "not a url",
        ] {
            assert_eq!(normalize_base_url(raw, false), None, "{raw}");
        }
        assert_eq!(
            normalize_base_url("http://127.0.0.1:8080/", true).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(normalize_base_url("http://localhost:9", true).as_deref(), Some("http://localhost:9"));
        assert_eq!(normalize_base_url("http://[::1]:9", true).as_deref(), Some("http://[::1]:9"));
        assert_eq!(normalize_base_url("http://10.0.0.1:9", true), None);
        assert_eq!(normalize_base_url("ftp://127.0.0.1:9", true), None);
    }

    #[tokio::test]
    async fn without_the_development_setting_no_call_reaches_this_machine() {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
            .expect(0)
            .mount(&server)
            .await;
        let strict = InfobipClient::new(reqwest::Client::new());
        let error = strict.list_senders(&Secret::new(KEY), &server.uri()).await.unwrap_err();
        assert!(matches!(error, ProviderError::Rejected(_)), "{error:?}");
        let error = strict.connect(&credentials(&server.uri(), KEY, "+44 7860 099299")).await.unwrap_err();
        match error {
            Error::Rule(rule) => {
                assert_eq!(rule.field, "credentials.base_url");
                assert!(rule.message.contains(" / "), "English / Russian: {rule}");
            }
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn senders_are_digits() {
        assert_eq!(normalize_sender("+44 (113) 496-0000").as_deref(), Some("441134960000"));
        assert_eq!(normalize_sender("441134960000").as_deref(), Some("441134960000"));
        for bad in ["", "+", "abc", "4411/../x", "12", "123456789012345678901"] {
            assert_eq!(normalize_sender(bad), None, "{bad}");
        }
    }

    fn channel_secrets(base: &str) -> ChannelSecrets {
        ChannelSecrets::default()
            .with(API_KEY, Secret::new(KEY))
            .with(BASE_URL, Secret::new(base))
            .with(SENDER, Secret::new("447860099299"))
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
        let client = InfobipClient::new(reqwest::Client::new());
        let secrets = channel_secrets("https://x.api.infobip.com");
        let delivery =
            client.receive(&secrets, &request(fixture("infobip_text.json"), Some(HOOK_SECRET))).unwrap();
        assert_eq!(delivery.messages.len(), 1);
        for wrong in [None, Some(""), Some("nope")] {
            assert_eq!(
                client.receive(&secrets, &request(fixture("infobip_text.json"), wrong)),
                Err(WebhookError::Unauthorized)
            );
            assert_eq!(
                client.receive(&secrets, &request(b"{".to_vec(), wrong)),
                Err(WebhookError::Unauthorized)
            );
        }
        assert!(matches!(
            client.receive(&secrets, &request(b"{".to_vec(), Some(HOOK_SECRET))),
            Err(WebhookError::Malformed { .. })
        ));
        let channel = ChannelId::generate();
        assert_eq!(
            client.webhook_url("https://x.test", Provider::WhatsappInfobip, &channel, &secrets),
            format!("https://x.test/webhooks/whatsapp-infobip/{channel}/{HOOK_SECRET}")
        );
    }

    // --- client, against a fake Infobip API ---

    fn credentials(base: &str, key: &str, sender: &str) -> Map<String, Value> {
        json!({"api_key": key, "base_url": base, "sender": sender}).as_object().cloned().unwrap()
    }

    fn rule_text(error: &Error) -> String {
        match error {
            Error::Rule(rule) => format!("{rule:?} {error}"),
            other => panic!("expected a rule violation, got {other:?}"),
        }
    }

    async fn fake_senders(server: &MockServer) {
        Mock::given(method("GET"))
            .and(path("/whatsapp/2/senders"))
            .and(header("authorization", format!("App {KEY}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
                {"sender": "447860099299", "displayName": "Acme", "connectionStatus": "CONNECTED"},
                {"sender": "447860099300", "displayName": "Acme 2", "connectionStatus": "CONNECTED"},
            ], "paging": {"page": 0, "size": 2, "totalPages": 1, "totalResults": 2}})))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/whatsapp/2/senders"))
            .respond_with(
                ResponseTemplate::new(401).set_body_json(json!({"requestError": {"serviceException": {
                "messageId": "UNAUTHORIZED", "text": "Invalid login details"}}})),
            )
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn connect_checks_the_sender_among_the_accounts_senders() {
        let server = MockServer::start().await;
        fake_senders(&server).await;
        let client = InfobipClient::new(reqwest::Client::new()).allowing_loopback();
        assert_eq!(
            client.list_senders(&Secret::new(KEY), &server.uri()).await.unwrap(),
            ["447860099299", "447860099300"]
        );
        let connection = client.connect(&credentials(&server.uri(), KEY, "+44 7860 099299")).await.unwrap();
        assert_eq!(connection.account, Account { id: "447860099299".into(), name: "+447860099299".into() });
        assert_eq!(connection.secrets.get(BASE_URL).map(Secret::expose), Some(server.uri().as_str()));
        assert_eq!(connection.masked.get(API_KEY).map(String::as_str), Some("****3c9a"));
        assert!(!format!("{connection:?}").contains(KEY));

        let other = client.connect(&credentials(&server.uri(), KEY, "447000000000")).await.unwrap_err();
        assert!(rule_text(&other).contains("credentials.sender"));
        let bad_key = client.connect(&credentials(&server.uri(), "wrong", "447860099299")).await.unwrap_err();
        assert!(rule_text(&bad_key).contains("credentials.api_key"));
        assert!(format!("{bad_key}").contains("Infobip refused the API key"));
        // Without the loopback allowance, a local URL is refused before any call.
        let strict = InfobipClient::new(reqwest::Client::new());
        let refused = strict.connect(&credentials(&server.uri(), KEY, "447860099299")).await.unwrap_err();
        assert!(rule_text(&refused).contains("credentials.base_url"));
        let not_https =
            strict.connect(&credentials("http://x.api.infobip.com", KEY, "447860099299")).await.unwrap_err();
        assert!(rule_text(&not_https).contains("credentials.base_url"));
        for error in [other, bad_key, refused, not_https] {
            assert!(!format!("{error} {error:?}").contains(KEY));
        }
    }

    #[tokio::test]
    async fn falls_back_to_the_quality_endpoint_when_the_sender_list_is_not_available() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/whatsapp/2/senders"))
            .respond_with(
                ResponseTemplate::new(404).set_body_json(json!({"requestError": {"serviceException": {
                "messageId": "NOT_FOUND", "text": "Not found"}}})),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/whatsapp/1/senders/quality"))
            .and(query_param("senders", "447860099299"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
                {"sender": "447860099299", "qualityRating": "HIGH", "status": "CONNECTED", "currentLimit": "TIER_1K"}]})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/whatsapp/1/senders/quality"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
            .mount(&server)
            .await;
        let client = InfobipClient::new(reqwest::Client::new()).allowing_loopback();
        client.connect(&credentials(&server.uri(), KEY, "447860099299")).await.unwrap();
        let other = client.connect(&credentials(&server.uri(), KEY, "447000000000")).await.unwrap_err();
        assert!(rule_text(&other).contains("credentials.sender"));
    }

    fn outgoing(text: &str, buttons: &[&str]) -> Outgoing {
        Outgoing {
            attachments: Vec::new(),
            customer_id: "385919998888".into(),
            text: text.into(),
            buttons: buttons.iter().map(|b| (*b).to_owned()).collect(),
            idempotency_key: "out-1".into(),
            thread: None,
            automatic: false,
            template: None,
        }
    }

    #[tokio::test]
    async fn sends_text_and_reply_buttons_in_infobips_format() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/whatsapp/1/message/text"))
            .and(header("authorization", format!("App {KEY}")))
            .and(body_json(json!({"from": "447860099299", "to": "385919998888", "messageId": "out-1",
                                  "content": {"text": "Hello"}})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"to": "385919998888", "messageCount": 1,
                "messageId": "out-1", "status": {"groupId": 1, "groupName": "PENDING", "id": 7, "name": "PENDING_ENROUTE"}})))
            .expect(1)
            .mount(&server)
            .await;
        let long_label = "A very long button label indeed";
        Mock::given(method("POST"))
            .and(path("/whatsapp/1/message/interactive/buttons"))
            .and(body_json(json!({"from": "447860099299", "to": "385919998888", "messageId": "out-1",
            "content": {"body": {"text": "Pick one"}, "action": {"buttons": [
                {"type": "REPLY", "id": "Yes", "title": "Yes"},
                {"type": "REPLY", "id": long_label, "title": "A very long button l"},
            ]}}})))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"messageId": "ib-2", "status": {"groupName": "PENDING"}})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/whatsapp/1/message/text"))
            .and(body_json(json!({"from": "447860099299", "to": "385919998888", "messageId": "out-1",
                                  "content": {"text": "Pick one\n\n1. A\n2. B\n3. C\n4. D"}})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messageId": "ib-3"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = InfobipClient::new(reqwest::Client::new()).allowing_loopback();
        let secrets = channel_secrets(&server.uri());
        let sent = client.send(&secrets, &outgoing("Hello", &[])).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("out-1".into()) });
        let sent = client.send(&secrets, &outgoing("Pick one", &["Yes", long_label])).await.unwrap();
        assert_eq!(sent.provider_message_id.as_deref(), Some("ib-2"));
        let sent = client.send(&secrets, &outgoing("Pick one", &["A", "B", "C", "D"])).await.unwrap();
        assert_eq!(sent.provider_message_id.as_deref(), Some("ib-3"));
    }

    #[tokio::test]
    async fn throttling_server_errors_and_time_outs_hide_the_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/whatsapp/1/message/text"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3").set_body_json(json!({
                "requestError": {"serviceException": {"messageId": "TOO_MANY_REQUESTS", "text": "Too many requests"}}})))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/whatsapp/1/message/text"))
            .respond_with(ResponseTemplate::new(500).set_body_string(KEY))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/whatsapp/1/message/text"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"errorCode": "E400",
                "description": format!("Invalid destination, key {KEY}")})))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/whatsapp/1/message/text"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
            .mount(&server)
            .await;
        let client = InfobipClient::new(reqwest::Client::new()).allowing_loopback();
        let secrets = channel_secrets(&server.uri());
        let throttled = client.send(&secrets, &outgoing("x", &[])).await.unwrap_err();
        assert_eq!(throttled, ProviderError::RateLimited { retry_after: Duration::from_secs(3) });
        let down = client.send(&secrets, &outgoing("x", &[])).await.unwrap_err();
        assert_eq!(down, ProviderError::Unavailable("HTTP 500".into()));
        let rejected = client.send(&secrets, &outgoing("x", &[])).await.unwrap_err();
        assert_eq!(rejected, ProviderError::Rejected("HTTP 400: Invalid destination, key ****".into()));
        let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
        let timed_out = InfobipClient::new(http)
            .allowing_loopback()
            .send(&secrets, &outgoing("x", &[]))
            .await
            .unwrap_err();
        assert!(matches!(timed_out, ProviderError::Unavailable(_)), "{timed_out:?}");
        // A stored base URL the client does not accept is refused without a call.
        let strict =
            InfobipClient::new(reqwest::Client::new()).send(&secrets, &outgoing("x", &[])).await.unwrap_err();
        assert!(matches!(strict, ProviderError::Rejected(_)));
        for error in [throttled, down, rejected, timed_out, strict] {
            let text = format!("{error} {error:?}");
            assert!(!text.contains(KEY) && !text.contains(HOOK_SECRET), "{text}");
        }
    }

    // --- media ---

    #[test]
    fn the_image_fixture_gives_a_fetchable_media_link_and_its_caption() {
        let parsed = parse_batch(&fixture("infobip_image.json")).unwrap();
        let message = &parsed.messages[0];
        assert_eq!(message.text.as_deref(), Some("Broken on arrival"));
        let image = &message.attachments[0];
        assert_eq!(image.kind, AttachmentKind::Image);
        assert_eq!(
            image.file_ref,
            "https://api.infobip.com/whatsapp/1/senders/447860099299/media/3966813530218966"
        );
        assert!(InfobipClient::new(reqwest::Client::new()).fetchable(image));
    }

    fn media_attachment(url: String) -> Attachment {
        Attachment { kind: AttachmentKind::Image, file_ref: url, mime: None, size: None, name: None }
    }

    async fn fake_media(server: &MockServer, bytes: &[u8]) {
        Mock::given(method("GET"))
            .and(path("/whatsapp/1/senders/447860099299/media/3966813530218966"))
            .and(header("authorization", format!("App {KEY}")))
            .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.to_vec(), "image/jpeg"))
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn fetches_media_with_the_app_key_from_the_channels_base_url() {
        let server = MockServer::start().await;
        let bytes = b"\xff\xd8\xff\xe0 jpeg bytes from Infobip";
        fake_media(&server, bytes).await;
        let client = InfobipClient::new(reqwest::Client::new()).allowing_loopback();
        let secrets = channel_secrets(&server.uri());
        let on_base = media_attachment(format!(
            "{}/whatsapp/1/senders/447860099299/media/3966813530218966",
            server.uri()
        ));
        let mut sink = MediaSink::new(1 << 20).await.unwrap();
        let declared = client.fetch_media(&secrets, &on_base, &mut sink).await.unwrap();
        assert_eq!(declared.as_deref(), Some("image/jpeg"));
        assert_eq!(std::fs::read(sink.path()).unwrap(), bytes);
        // The documented link on api.infobip.com is fetched by its path from the channel's own base URL.
        let fixture_link =
            parse_batch(&fixture("infobip_image.json")).unwrap().messages[0].attachments[0].clone();
        let mut sink = MediaSink::new(1 << 20).await.unwrap();
        client.fetch_media(&secrets, &fixture_link, &mut sink).await.unwrap();
        assert_eq!(std::fs::read(sink.path()).unwrap(), bytes);
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 2);
        // Too large for the sink.
        let mut small = MediaSink::new(8).await.unwrap();
        let too_large = client.fetch_media(&secrets, &on_base, &mut small).await;
        assert_eq!(too_large, Err(FetchError::TooLarge { limit: 8 }));
    }

    #[tokio::test]
    async fn the_app_key_never_goes_to_another_host() {
        let base = MockServer::start().await;
        let elsewhere = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"x".to_vec()))
            .expect(0)
            .mount(&elsewhere)
            .await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"x".to_vec()))
            .expect(0)
            .mount(&base)
            .await;
        let client = InfobipClient::new(reqwest::Client::new()).allowing_loopback();
        let secrets = channel_secrets(&base.uri());
        for link in [
            format!("{}/whatsapp/1/senders/447860099299/media/1", elsewhere.uri()),
            format!(
                "{}/whatsapp/1/senders/447860099299/media/1",
                base.uri().replace("127.0.0.1", "localhost")
            ),
            "https://evil.test/whatsapp/1/senders/447860099299/media/1".to_owned(),
            "https://api.infobip.com.evil.test/whatsapp/1/senders/447860099299/media/1".to_owned(),
            "https://api.infobip.com/sms/1/logs".to_owned(),
            "https://api.infobip.com/whatsapp/1/senders/447860099299/media/..".to_owned(),
            "not a url".to_owned(),
        ] {
            let mut sink = MediaSink::new(1024).await.unwrap();
            let refused = client.fetch_media(&secrets, &media_attachment(link.clone()), &mut sink).await;
            assert!(matches!(refused, Err(FetchError::Unsupported(_))), "{link}: {refused:?}");
        }
        // A base URL the outbound policy refuses (loopback without the development setting): no call.
        let strict = InfobipClient::new(reqwest::Client::new());
        let mut sink = MediaSink::new(1024).await.unwrap();
        let on_base = media_attachment(format!("{}/whatsapp/1/senders/447860099299/media/1", base.uri()));
        let refused = strict.fetch_media(&secrets, &on_base, &mut sink).await.unwrap_err();
        assert!(matches!(refused, FetchError::Provider(ProviderError::Rejected(_))), "{refused:?}");
        assert!(!format!("{refused} {refused:?}").contains(KEY));
    }

    fn image_media(url: &str) -> OutgoingMedia {
        crate::test_support::linked_file(AttachmentKind::Image, "image/jpeg", "receipt.jpg", 4096, url)
    }

    #[tokio::test]
    async fn sends_an_image_by_its_link_with_the_text_as_caption() {
        let server = MockServer::start().await;
        let link = "https://media.example.test/o/receipt.jpg?X-Amz-Signature=abc";
        Mock::given(method("POST"))
            .and(path("/whatsapp/1/message/image"))
            .and(header("authorization", format!("App {KEY}")))
            .and(body_json(json!({"from": "447860099299", "to": "385919998888", "messageId": "out-1",
                                  "content": {"mediaUrl": link, "caption": "Your receipt"}})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"to": "385919998888", "messageCount": 1,
                "messageId": "ib-img-1", "status": {"groupId": 1, "groupName": "PENDING", "id": 7, "name": "PENDING_ENROUTE"}})))
            .expect(1)
            .mount(&server)
            .await;
        let client = InfobipClient::new(reqwest::Client::new()).allowing_loopback();
        let mut out = outgoing("Your receipt", &[]);
        out.attachments = vec![image_media(link)];
        let sent = client.send(&channel_secrets(&server.uri()), &out).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("ib-img-1".into()) });
    }

    #[tokio::test]
    async fn buttons_go_first_and_documents_carry_their_file_name() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/whatsapp/1/message/interactive/buttons"))
            .and(body_json(json!({"from": "447860099299", "to": "385919998888", "messageId": "out-1",
                "content": {"body": {"text": "Sign it?"}, "action": {"buttons": [
                    {"type": "REPLY", "id": "Yes", "title": "Yes"}]}}})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messageId": "ib-1"})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/whatsapp/1/message/document"))
            .and(body_json(json!({"from": "447860099299", "to": "385919998888", "messageId": "out-1-1",
                "content": {"mediaUrl": "https://m.test/c.pdf", "filename": "contract.pdf"}})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messageId": "ib-2"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = InfobipClient::new(reqwest::Client::new()).allowing_loopback();
        let mut out = outgoing("Sign it?", &["Yes"]);
        out.attachments = vec![OutgoingMedia {
            kind: AttachmentKind::Document,
            name: Some("contract.pdf".into()),
            mime: "application/pdf".into(),
            ..image_media("https://m.test/c.pdf")
        }];
        let sent = client.send(&channel_secrets(&server.uri()), &out).await.unwrap();
        assert_eq!(sent.provider_message_id.as_deref(), Some("ib-1"));
    }

    #[test]
    fn media_limits_are_whatsapps_and_files_are_sent_by_link() {
        let client = InfobipClient::new(reqwest::Client::new());
        assert_eq!(client.media_limit(AttachmentKind::Image), Some(5_000_000));
        assert_eq!(client.media_limit(AttachmentKind::Audio), Some(16_000_000));
        assert_eq!(client.media_limit(AttachmentKind::Document), Some(100_000_000));
        assert_eq!(client.media_limit(AttachmentKind::Contact), None);
        assert!(!client.sends_media_from_file());
    }

    /// Found by fuzzing (fuzz/regressions/infobip/): an empty message id became the dedup key, an empty
    /// sender the customer id, and a report with an empty message id was passed on.
    #[test]
    fn messages_without_an_id_or_a_sender_are_refused_and_reports_without_an_id_ignored() {
        let message = |id: &str, from: &str| {
            format!(
                r#"{{"results":[{{"messageId":"{id}","from":"{from}","to":"441134960000",
                "message":{{"type":"TEXT","text":"hi"}}}}]}}"#
            )
        };
        assert!(parse_batch(message("ABC", "385919998888").as_bytes()).is_ok());
        for (id, from) in [("", "385919998888"), ("ABC", "")] {
            let parsed = parse_batch(message(id, from).as_bytes());
            assert!(matches!(parsed, Err(WebhookError::Malformed { .. })), "{id:?} {from:?}: {parsed:?}");
        }
        let report = br#"{"results":[{"messageId":"","status":{"groupName":"DELIVERED"}}]}"#;
        assert_eq!(parse_batch(report), Ok(Parsed::default()));
    }

    fn template_outgoing() -> Outgoing {
        Outgoing {
            text: String::new(),
            template: Some(Template {
                name: "order_ready".into(),
                language: "en".into(),
                parameters: vec!["Ann".into(), "A-42".into()],
            }),
            ..outgoing("", &[])
        }
    }

    #[tokio::test]
    async fn sends_a_template_with_its_placeholders_and_our_message_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/whatsapp/1/message/template"))
            .and(header("authorization", format!("App {KEY}")))
            .and(body_json(json!({"messages": [{
                "from": "447860099299",
                "to": "385919998888",
                "messageId": "out-1",
                "content": {
                    "templateName": "order_ready",
                    "templateData": {"body": {"placeholders": ["Ann", "A-42"]}},
                    "language": "en",
                },
            }]})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "messages": [{"to": "385919998888", "messageCount": 1, "messageId": "ib-template-1",
                              "status": {"groupId": 1, "groupName": "PENDING", "id": 7, "name": "PENDING_ENROUTE"}}],
                "bulkId": "bulk-1",
            })))
            .expect(1)
            .mount(&server)
            .await;
        let client = InfobipClient::new(reqwest::Client::new()).allowing_loopback();
        assert!(client.sends_templates());
        assert_eq!(client.service_window(), Some(jiff::SignedDuration::from_hours(24)));
        let sent = client.send(&channel_secrets(&server.uri()), &template_outgoing()).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("ib-template-1".into()) });
    }

    #[tokio::test]
    async fn lists_the_senders_templates_with_their_status_text_and_placeholders() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/whatsapp/2/senders/447860099299/templates"))
            .and(header("authorization", format!("App {KEY}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"templates": [
                {"id": "111", "businessAccountId": 222, "name": "order_ready", "language": "en",
                 "status": "APPROVED", "category": "UTILITY",
                 "structure": {"header": {"format": "TEXT", "text": "Order"},
                               "body": {"text": "Hi {{1}}, order {{2}} is ready. Thanks, {{1}}!"},
                               "footer": {"text": "Shop"}, "type": "TEXT"}},
                {"id": "112", "businessAccountId": 222, "name": "promo_spring", "language": "ru",
                 "status": "REJECTED", "category": "MARKETING",
                 "structure": {"body": {"text": "Скидка {{1}}%"}, "type": "TEXT"}},
                {"id": "113", "businessAccountId": 222, "name": "hello", "language": "en_US",
                 "status": "PENDING", "category": "MARKETING", "structure": {"type": "TEXT"}},
            ]})))
            .expect(1)
            .mount(&server)
            .await;
        let client = InfobipClient::new(reqwest::Client::new()).allowing_loopback();
        let templates = client.list_templates(&channel_secrets(&server.uri())).await.unwrap().unwrap();
        assert_eq!(
            templates,
            vec![
                TemplateInfo {
                    name: "order_ready".into(),
                    language: "en".into(),
                    status: "approved".into(),
                    text: Some("Hi {{1}}, order {{2}} is ready. Thanks, {{1}}!".into()),
                    parameters: 2,
                },
                TemplateInfo {
                    name: "promo_spring".into(),
                    language: "ru".into(),
                    status: "rejected".into(),
                    text: Some("Скидка {{1}}%".into()),
                    parameters: 1,
                },
                TemplateInfo {
                    name: "hello".into(),
                    language: "en_US".into(),
                    status: "pending".into(),
                    text: None,
                    parameters: 0,
                },
            ]
        );
        assert!(templates[0].is_approved() && !templates[1].is_approved());
    }
}
