//! Viber REST Bot API: verify and normalize callbacks, call the API (get_account_info, set_webhook,
//! send_message with text, pictures, videos and files by link), download the media links callbacks carry.

use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, FetchError, Outgoing, OutgoingMedia,
    ProviderError, Sent, StatusUpdate, WebhookError, WebhookRequest, required_credential, transport_error,
};
use crate::domain::{Account, Attachment, AttachmentKind, Customer, InboundKind, InboundMessage, OutStatus};
use crate::error::{Error, Result as AppResult};
use crate::ports::media::MediaSink;
use crate::providers::Http;
use crate::secret::Secret;

pub const DEFAULT_API_BASE: &str = "https://chatapi.viber.com/pa";
pub const SIGNATURE_HEADER: &str = "X-Viber-Content-Signature";
pub const AUTH_HEADER: &str = "X-Viber-Auth-Token";
/// The callbacks we ask for besides messages (which Viber always sends).
pub const EVENT_TYPES: [&str; 6] =
    ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"];

const PROVIDER: &str = "viber";
/// The channel's credentials: the bot's token (it also keys the callbacks' HMAC) and the name every sent
/// message must carry as its sender, taken from the account at connect.
const TOKEN: &str = "token";
const SENDER_NAME: &str = "sender_name";
/// Viber cuts the sender's name at 28 characters.
const SENDER_NAME_MAX_CHARS: usize = 28;
const FALLBACK_SENDER_NAME: &str = "Support";
/// A keyboard holds at most 24 buttons.
const KEYBOARD_MAX_BUTTONS: usize = 24;
/// A 429 from the infrastructure without Retry-After.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Status 12 (tooManyRequests): Viber's send limit is counted per hour, so a second later is too early.
const TOO_MANY_REQUESTS_RETRY: Duration = Duration::from_secs(60);
const INVALID_TOKEN: &str = "Bot not found / Бот не найден";
/// The longest description of a picture message, in characters.
pub const CAPTION_MAX_CHARS: usize = 768;
/// The largest picture message (JPEG, PNG or GIF); a larger image goes as a file.
pub const PICTURE_LIMIT: u64 = 1024 * 1024;
/// The largest video message.
pub const VIDEO_LIMIT: u64 = 26 * 1024 * 1024;
/// The largest file message.
pub const FILE_LIMIT: u64 = 50 * 1024 * 1024;
/// The longest `file_name` of a file message.
const FILE_NAME_MAX_CHARS: usize = 256;

/// Checks `X-Viber-Content-Signature`: the hex HMAC-SHA256 of the raw body keyed with the bot's token,
/// compared in constant time.
pub fn verify_signature(body: &[u8], signature: Option<&str>, token: &Secret) -> Result<(), WebhookError> {
    let signature = signature.and_then(|s| decode_hex(s.trim())).ok_or(WebhookError::Unauthorized)?;
    if token.expose().is_empty() {
        return Err(WebhookError::Unauthorized);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.expose().as_bytes()).map_err(|_| WebhookError::Unauthorized)?;
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| WebhookError::Unauthorized)
}

/// The signature Viber sends with `body`: for simulating Viber (tests, the local runner with curl).
pub fn signature(body: &[u8], token: &Secret) -> String {
    // HMAC takes keys of any length: the error case cannot happen.
    Hmac::<Sha256>::new_from_slice(token.expose().as_bytes())
        .map(|mut mac| {
            mac.update(body);
            mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
        })
        .unwrap_or_default()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16);
    text.as_bytes().chunks(2).map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)).collect()
}

/// What one verified callback carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    Message(InboundMessage),
    Status(StatusUpdate),
    /// `webhook` (the check `set_webhook` makes), `conversation_started`, `subscribed`, `unsubscribed`, a
    /// message with nothing to show, an event we do not use: answered 200, nothing stored.
    Acknowledged,
}

#[derive(Deserialize)]
struct RawCallback {
    event: String,
    timestamp: Option<i64>,
    message_token: Option<Value>,
    sender: Option<Sender>,
    message: Option<ViberMessage>,
    desc: Option<String>,
}

#[derive(Deserialize)]
struct Sender {
    id: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct ViberMessage {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    media: Option<String>,
    file_name: Option<String>,
    size: Option<u64>,
    sticker_id: Option<i64>,
    contact: Option<Contact>,
    location: Option<Location>,
}

#[derive(Deserialize)]
struct Contact {
    name: Option<String>,
    phone_number: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    lat: f64,
    lon: f64,
}

/// Parses one (already verified) callback.
pub fn parse_callback(body: &[u8]) -> Result<Callback, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    // serde also accepts a JSON array for a struct (fields by position).
    if !value.is_object() {
        return Err(malformed("the body is not a JSON object".into()));
    }
    let raw = RawCallback::deserialize(value).map_err(|e| malformed(e.to_string()))?;
    match raw.event.as_str() {
        "message" => normalize_message(raw),
        "delivered" | "seen" | "failed" => {
            let status = match raw.event.as_str() {
                "failed" => OutStatus::Failed,
                // We keep no "read" state: seen implies delivered.
                _ => OutStatus::Delivered,
            };
            let provider_message_id = message_token(raw.message_token.as_ref())?;
            let reason = if status == OutStatus::Failed { raw.desc } else { None };
            Ok(Callback::Status(StatusUpdate { provider_message_id, status, reason }))
        }
        _ => Ok(Callback::Acknowledged),
    }
}

/// `message_token` is a 64-bit integer that exceeds 2^53: read from the JSON number, never through f64.
fn message_token(value: Option<&Value>) -> Result<String, WebhookError> {
    match value {
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Ok(s.clone()),
        Some(_) => Err(malformed("message_token is not an integer".into())),
        None => Err(malformed("no message_token".into())),
    }
}

fn normalize_message(raw: RawCallback) -> Result<Callback, WebhookError> {
    let token = message_token(raw.message_token.as_ref())?;
    // The sender's id is the customer: an empty one is no sender (found by fuzzing).
    let sender = raw
        .sender
        .filter(|s| !s.id.is_empty())
        .ok_or_else(|| malformed("a message without sender".into()))?;
    let message = raw.message.ok_or_else(|| malformed("a message event without message".into()))?;
    let media = |kind: AttachmentKind| {
        message.media.clone().filter(|m| !m.is_empty()).map(|file_ref| Attachment {
            kind,
            file_ref,
            mime: None,
            size: message.size,
            name: message.file_name.clone(),
        })
    };
    // `text` is the caption of pictures and videos; other fields of other types are noise (the official
    // sample of a text message carries `media` and `location` too).
    let caption = message.text.clone();
    let (text, attachment) = match message.kind.as_str() {
        "text" => (caption, None),
        "picture" => (caption, media(AttachmentKind::Image)),
        "video" => (caption, media(AttachmentKind::Video)),
        "file" => (None, media(AttachmentKind::Document)),
        "sticker" => {
            let sticker = media(AttachmentKind::Sticker).or_else(|| {
                message.sticker_id.map(|id| Attachment {
                    kind: AttachmentKind::Sticker,
                    file_ref: format!("sticker{id}"),
                    mime: None,
                    size: None,
                    name: None,
                })
            });
            (None, sticker)
        }
        "contact" => {
            let contact = message.contact.as_ref().and_then(|c| {
                Some(Attachment {
                    kind: AttachmentKind::Contact,
                    file_ref: c.phone_number.clone().filter(|p| !p.is_empty())?,
                    mime: None,
                    size: None,
                    name: c.name.clone(),
                })
            });
            (None, contact)
        }
        "location" => {
            let location = message.location.as_ref().map(|l| Attachment {
                kind: AttachmentKind::Location,
                file_ref: format!("{},{}", l.lat, l.lon),
                mime: None,
                size: None,
                name: None,
            });
            (None, location)
        }
        // A link: the URL is in `media`.
        "url" => (message.media.clone(), None),
        // rich_media and types added later: their text, if any.
        _ => (caption, None),
    };
    let text = text.filter(|t| !t.trim().is_empty());
    if text.is_none() && attachment.is_none() {
        return Ok(Callback::Acknowledged);
    }
    let sent_at = match raw.timestamp {
        Some(ms) => {
            Some(Timestamp::from_millisecond(ms).map_err(|e| malformed(format!("timestamp {ms}: {e}")))?)
        }
        None => None,
    };
    Ok(Callback::Message(InboundMessage {
        dedup_key: token.clone(),
        // A press on a reply button arrives as a plain text message (its ActionBody): nothing tells it
        // apart.
        kind: InboundKind::Message,
        customer: Customer { id: sender.id, name: sender.name.filter(|n| !n.is_empty()), handle: None },
        provider_message_id: Some(token),
        text,
        attachments: attachment.into_iter().collect(),
        sent_at,
    }))
}

fn malformed(reason: String) -> WebhookError {
    WebhookError::Malformed { provider: PROVIDER, reason }
}

/// The `keyboard` of `send_message` for quick replies: one full-width reply button per row; a press sends
/// the label back as the customer's text message.
pub fn keyboard(buttons: &[String]) -> Option<Value> {
    let buttons: Vec<Value> = buttons
        .iter()
        .filter(|label| !label.trim().is_empty())
        .take(KEYBOARD_MAX_BUTTONS)
        .map(|label| {
            json!({"ActionType": "reply", "ActionBody": label, "Text": label, "Columns": 6, "Rows": 1})
        })
        .collect();
    if buttons.is_empty() {
        return None;
    }
    Some(json!({"Type": "keyboard", "DefaultHeight": false, "Buttons": buttons}))
}

/// The token travels in a header: anything that cannot be a header value cannot be a token.
pub fn is_plausible_token(token: &str) -> bool {
    (10..=200).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_graphic())
}

/// The bot a token belongs to, as `get_account_info` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BotAccount {
    /// `pa:...`
    pub id: String,
    pub name: String,
    pub uri: Option<String>,
}

/// Calls the Viber REST Bot API. The token is passed per call: one process serves many bots.
#[derive(Debug, Clone)]
pub struct ViberClient {
    http: Http,
    base: String,
}

impl ViberClient {
    pub fn new(http: impl Into<Http>, base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        Self { http: http.into(), base }
    }

    /// `VIBER_API_BASE` points the client at a fake (local runner, tests).
    pub fn from_env(http: Http) -> Self {
        let base = super::base_url_from_env("VIBER_API_BASE", DEFAULT_API_BASE);
        Self::new(http, base)
    }

    /// Validates a token and names the bot. A refused token (HTTP 200, status 2) is `InvalidCredentials`.
    pub async fn get_account_info(&self, token: &Secret) -> Result<BotAccount, ProviderError> {
        self.call(token, "get_account_info", &json!({})).await
    }

    /// Points the bot's callbacks at `url`. Viber checks the URL with a `webhook` callback before answering.
    pub async fn set_webhook(&self, token: &Secret, url: &str) -> Result<(), ProviderError> {
        let body = json!({"url": url, "event_types": EVENT_TYPES, "send_name": true, "send_photo": false});
        self.call::<Value>(token, "set_webhook", &body).await.map(drop)
    }

    /// An empty URL removes the webhook.
    pub async fn remove_webhook(&self, token: &Secret) -> Result<(), ProviderError> {
        self.call::<Value>(token, "set_webhook", &json!({"url": ""})).await.map(drop)
    }

    /// Sends the text, or the files with it: one message per file (by link: Viber fetches it), the text as
    /// the first picture's description when it fits, else as a text message first; the keyboard goes with
    /// the last message. Answers the last message's token.
    pub async fn send_message(
        &self,
        token: &Secret,
        sender_name: &str,
        out: &Outgoing,
    ) -> Result<Sent, ProviderError> {
        let mut bodies = Vec::new();
        let text = (!out.text.trim().is_empty()).then_some(out.text.as_str());
        let first_is_picture = out.attachments.first().is_some_and(is_picture);
        let caption = text.filter(|text| first_is_picture && text.chars().count() <= CAPTION_MAX_CHARS);
        // Never an empty text message beside files.
        if out.attachments.is_empty() || (text.is_some() && caption.is_none()) {
            let content = json!({"type": "text", "text": out.text});
            bodies.push(message_body(sender_name, &out.customer_id, content));
        }
        for (index, media) in out.attachments.iter().enumerate() {
            let content = media_content(media, if index == 0 { caption } else { None });
            bodies.push(message_body(sender_name, &out.customer_id, content));
        }
        if let (Some(keyboard), Some(last)) = (keyboard(&out.buttons), bodies.last_mut()) {
            last["keyboard"] = keyboard;
        }
        let mut id = None;
        for body in &bodies {
            let sent: Value = self.call(token, "send_message", body).await?;
            id = match sent.get("message_token") {
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::String(s)) => Some(s.clone()),
                _ => None,
            };
        }
        Ok(Sent { provider_message_id: id })
    }

    /// Downloads a media link of a callback (it expires: fetched soon after the callback).
    pub async fn fetch_link(&self, url: &str, sink: &mut MediaSink) -> Result<Option<String>, FetchError> {
        super::media::download_link(&self.http, url, sink).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        token: &Secret,
        endpoint: &str,
        body: &Value,
    ) -> Result<T, ProviderError> {
        let url = format!("{}/{endpoint}", self.base);
        let mut auth = reqwest::header::HeaderValue::from_str(token.expose())
            .map_err(|_| ProviderError::InvalidCredentials(INVALID_TOKEN.into()))?;
        // Kept out of debug output of the request.
        auth.set_sensitive(true);
        let response =
            self.http.post(url).header(AUTH_HEADER, auth).json(body).send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(transport_error)?;
        let outcome = interpret(status, &bytes, retry_after, token);
        if let Err(error) = &outcome {
            tracing::warn!(endpoint, status = status.as_u16(), %error, "viber call failed");
        }
        outcome
    }
}

/// One `send_message` body: the receiver and sender around `content` (its `type` and fields).
fn message_body(sender_name: &str, receiver: &str, content: Value) -> Value {
    let sender_name: String = sender_name.chars().take(SENDER_NAME_MAX_CHARS).collect();
    let mut body = json!({
        "receiver": receiver,
        "min_api_version": 1,
        "sender": {"name": sender_name},
    });
    if let (Some(body), Value::Object(content)) = (body.as_object_mut(), content) {
        body.extend(content);
    }
    body
}

/// Whether a file goes as a picture message: a JPEG, PNG or GIF image of at most 1 MB.
fn is_picture(media: &OutgoingMedia) -> bool {
    media.kind == AttachmentKind::Image
        && media.size <= PICTURE_LIMIT
        && matches!(media.mime.to_ascii_lowercase().as_str(), "image/jpeg" | "image/png" | "image/gif")
}

/// The message fields of one file: a picture (with its description), an MP4 video, or a file (anything
/// else, larger images and audio included: Viber has no audio message).
fn media_content(media: &OutgoingMedia, caption: Option<&str>) -> Value {
    if is_picture(media) {
        return json!({"type": "picture", "media": media.url, "text": caption.unwrap_or_default()});
    }
    if media.kind == AttachmentKind::Video
        && media.size <= VIDEO_LIMIT
        && media.mime.eq_ignore_ascii_case("video/mp4")
    {
        return json!({"type": "video", "media": media.url, "size": media.size});
    }
    let file_name: String = media.file_name().chars().take(FILE_NAME_MAX_CHARS).collect();
    json!({"type": "file", "media": media.url, "size": media.size, "file_name": file_name})
}

/// The largest file of `kind` Viber takes: videos up to 26 MB, everything else as a file up to 50 MB
/// (images up to 1 MB go as pictures, larger ones as files). Stickers are not sent.
fn media_limit(kind: AttachmentKind) -> Option<u64> {
    match kind {
        AttachmentKind::Video => Some(VIDEO_LIMIT),
        AttachmentKind::Image | AttachmentKind::Document | AttachmentKind::Audio | AttachmentKind::Voice => {
            Some(FILE_LIMIT)
        }
        AttachmentKind::Sticker
        | AttachmentKind::Location
        | AttachmentKind::Contact
        | AttachmentKind::Other => None,
    }
}

#[derive(Deserialize)]
struct Envelope {
    status: i64,
    #[serde(default)]
    status_message: String,
}

/// The one place a Viber answer becomes a result or a `ProviderError`. Viber answers HTTP 200 to refused
/// calls too; its `status` says what happened.
fn interpret<T: DeserializeOwned>(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    token: &Secret,
) -> Result<T, ProviderError> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(ProviderError::RateLimited { retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER) });
    }
    if status.is_server_error() {
        return Err(ProviderError::Unavailable(format!("HTTP {}", status.as_u16())));
    }
    if !status.is_success() {
        return Err(ProviderError::Rejected(format!("HTTP {}", status.as_u16())));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ProviderError::Unavailable("unreadable answer from Viber".into()))?;
    let envelope = Envelope::deserialize(&value)
        .map_err(|_| ProviderError::Unavailable("unreadable answer from Viber".into()))?;
    let message = token.redacted(&envelope.status_message);
    match envelope.status {
        0 => serde_json::from_value(value)
            .map_err(|_| ProviderError::Unavailable("unexpected answer from Viber".into())),
        // invalidAuthToken; publicAccountNotFound.
        2 | 8 => Err(ProviderError::InvalidCredentials(INVALID_TOKEN.into())),
        12 => Err(ProviderError::RateLimited { retry_after: TOO_MANY_REQUESTS_RETRY }),
        1 => Err(ProviderError::Rejected(format!(
            "Viber could not use the webhook URL (status 1, {message}): it must answer 200 over HTTPS"
        ))),
        code => Err(ProviderError::Rejected(format!("Viber status {code}: {message}"))),
    }
}

#[async_trait]
impl ChannelProvider for ViberClient {
    /// Viber's send_message takes up to 7,000 characters of text.
    fn max_text_chars(&self) -> usize {
        7_000
    }

    async fn connect(&self, credentials: &Map<String, Value>) -> AppResult<Connection> {
        let bot_not_found = || Error::rule("bot_not_found", "credentials.token", INVALID_TOKEN);
        let token = required_credential(credentials, TOKEN)?;
        if !is_plausible_token(token.expose()) {
            return Err(bot_not_found());
        }
        let bot = match self.get_account_info(&token).await {
            Ok(bot) => bot,
            Err(ProviderError::InvalidCredentials(_)) => return Err(bot_not_found()),
            Err(other) => return Err(other.into()),
        };
        let sender_name: String = bot.name.chars().take(SENDER_NAME_MAX_CHARS).collect();
        Ok(Connection {
            account: Account { id: bot.id, name: bot.name },
            masked: [(TOKEN.to_owned(), token.masked())].into(),
            secrets: ChannelSecrets::default().with(TOKEN, token).with(SENDER_NAME, Secret::new(sender_name)),
        })
    }

    fn registers_webhook(&self) -> bool {
        true
    }

    async fn register_webhook(&self, secrets: &ChannelSecrets, url: &str) -> AppResult<()> {
        Ok(self.set_webhook(secrets.require(TOKEN)?, url).await?)
    }

    async fn remove_webhook(&self, secrets: &ChannelSecrets) -> AppResult<()> {
        Ok(ViberClient::remove_webhook(self, secrets.require(TOKEN)?).await?)
    }

    fn receive(&self, secrets: &ChannelSecrets, request: &WebhookRequest) -> Result<Delivery, WebhookError> {
        let token = secrets.for_verifying(TOKEN)?;
        verify_signature(&request.body, request.header(SIGNATURE_HEADER), token)?;
        // Viber ignores the body of our answer (but for a welcome message on conversation_started): a bare
        // 200 it is.
        Ok(match parse_callback(&request.body)? {
            Callback::Message(message) => Delivery { messages: vec![message], ..Delivery::default() },
            Callback::Status(status) => Delivery { statuses: vec![status], ..Delivery::default() },
            Callback::Acknowledged => Delivery::default(),
        })
    }

    async fn send(&self, secrets: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError> {
        let token =
            secrets.get(TOKEN).ok_or_else(|| ProviderError::InvalidCredentials("no bot token".into()))?;
        let sender_name = secrets.get(SENDER_NAME).map_or(FALLBACK_SENDER_NAME, Secret::expose);
        self.send_message(token, sender_name, out).await
    }

    /// Pictures, videos and files carry a `media` link (a sticker known only by its id is not a file).
    async fn fetch_media(
        &self,
        _secrets: &ChannelSecrets,
        attachment: &Attachment,
        sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        if !self.fetchable(attachment) {
            return Err(FetchError::not_fetched(attachment));
        }
        self.fetch_link(&attachment.file_ref, sink).await
    }

    fn media_limit(&self, kind: AttachmentKind) -> Option<u64> {
        media_limit(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;
    use wiremock::matchers::{body_json, body_partial_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const BOT_TOKEN: &str = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9";

    /// What Viber puts in `X-Viber-Content-Signature`.
    fn sign(body: &[u8], key: &str) -> String {
        signature(body, &Secret::new(key))
    }

    fn secrets() -> ChannelSecrets {
        ChannelSecrets::default()
            .with(TOKEN, Secret::new(BOT_TOKEN))
            .with(SENDER_NAME, Secret::new("Acme Support"))
            .with(ChannelSecrets::WEBHOOK_SECRET, Secret::new("unused-by-viber"))
    }

    fn request_with(body: Vec<u8>, signature: Option<String>) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            headers: signature.map(|s| ("x-viber-content-signature".to_owned(), s)).into_iter().collect(),
            body,
            ..WebhookRequest::default()
        }
    }

    fn signed(body: Vec<u8>) -> WebhookRequest {
        let signature = sign(&body, BOT_TOKEN);
        request_with(body, Some(signature))
    }

    fn client() -> ViberClient {
        ViberClient::new(reqwest::Client::new(), "http://unused.invalid")
    }

    fn receive(request: WebhookRequest) -> Result<Delivery, WebhookError> {
        client().receive(&secrets(), &request)
    }

    #[test]
    fn parses_the_text_fixture_with_its_64_bit_token() {
        let delivery = receive(signed(fixture("viber_text.json"))).unwrap();
        assert_eq!(delivery.reply, Default::default());
        assert!(delivery.statuses.is_empty());
        assert_eq!(
            delivery.messages,
            vec![InboundMessage {
                dedup_key: "4912661846655238145".into(),
                kind: InboundKind::Message,
                customer: Customer {
                    id: "01234567890A=".into(),
                    name: Some("John McClane".into()),
                    handle: None
                },
                provider_message_id: Some("4912661846655238145".into()),
                text: Some("a message to the service".into()),
                // The sample's `media` and `location` belong to other message types.
                attachments: vec![],
                sent_at: Some(Timestamp::from_millisecond(1457764197627).unwrap()),
            }]
        );
    }

    #[test]
    fn turns_the_delivered_fixture_into_a_status() {
        let delivery = receive(signed(fixture("viber_delivered.json"))).unwrap();
        assert!(delivery.messages.is_empty());
        assert_eq!(
            delivery.statuses,
            vec![StatusUpdate {
                provider_message_id: "5466297578174182639".into(),
                status: OutStatus::Delivered,
                reason: None,
            }]
        );
    }

    #[test]
    fn seen_and_failed_are_statuses_too() {
        let seen = br#"{"event":"seen","timestamp":1,"message_token":5466297578174182639,"user_id":"u"}"#;
        let failed = br#"{"event":"failed","timestamp":1,"message_token":18446744073709551615,"user_id":"u","desc":"receiver is not subscribed"}"#;
        assert_eq!(receive(signed(seen.to_vec())).unwrap().statuses[0].status, OutStatus::Delivered);
        assert_eq!(
            receive(signed(failed.to_vec())).unwrap().statuses,
            vec![StatusUpdate {
                provider_message_id: "18446744073709551615".into(),
                status: OutStatus::Failed,
                reason: Some("receiver is not subscribed".into()),
            }]
        );
    }

    #[test]
    fn acknowledges_the_webhook_check_and_conversation_started() {
        for name in ["viber_webhook_verification.json", "viber_conversation_started.json"] {
            assert_eq!(receive(signed(fixture(name))).unwrap(), Delivery::default(), "{name}");
        }
        for event in ["subscribed", "unsubscribed", "client_status", "something_new"] {
            let body =
                format!(r#"{{"event":"{event}","timestamp":1,"message_token":1,"user":{{"id":"u"}}}}"#);
            assert_eq!(receive(signed(body.into_bytes())).unwrap(), Delivery::default(), "{event}");
        }
    }

    #[test]
    fn refuses_wrong_or_missing_signatures_before_reading_anything() {
        let body = fixture("viber_text.json");
        let wrong_key = sign(&body, "another-bot-token-value");
        assert_eq!(receive(request_with(body.clone(), Some(wrong_key))), Err(WebhookError::Unauthorized));
        assert_eq!(receive(request_with(body.clone(), None)), Err(WebhookError::Unauthorized));
        assert_eq!(
            receive(request_with(body.clone(), Some("zz".repeat(32)))),
            Err(WebhookError::Unauthorized)
        );
        assert_eq!(receive(request_with(body.clone(), Some(String::new()))), Err(WebhookError::Unauthorized));
        // A signature of other bytes (a body re-serialized, or tampered with).
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert_eq!(
            receive(request_with(tampered, Some(sign(&body, BOT_TOKEN)))),
            Err(WebhookError::Unauthorized)
        );
        // A truncated signature.
        let truncated = sign(&body, BOT_TOKEN)[..32].to_owned();
        assert_eq!(receive(request_with(body.clone(), Some(truncated))), Err(WebhookError::Unauthorized));
        // Upper-case hex is the same signature.
        let upper = sign(&body, BOT_TOKEN).to_uppercase();
        assert!(receive(request_with(body.clone(), Some(upper))).is_ok());
        // Malformed bodies are not even parsed without a valid signature.
        assert_eq!(receive(request_with(b"{oops".to_vec(), None)), Err(WebhookError::Unauthorized));
        // A channel without a token verifies nothing.
        let empty = ChannelSecrets::default().with(TOKEN, Secret::new(""));
        let request = request_with(body.clone(), Some(sign(&body, "")));
        assert_eq!(client().receive(&empty, &request), Err(WebhookError::Unauthorized));
    }

    #[test]
    fn refuses_malformed_bodies() {
        let bodies: [&[u8]; 8] = [
            b"not json",
            b"",
            br#"["message", 1]"#,
            br#"{"timestamp": 1}"#,
            br#"{"event":"message","message_token":1.5,"sender":{"id":"u"},"message":{"type":"text","text":"x"}}"#,
            br#"{"event":"message","sender":{"id":"u"},"message":{"type":"text","text":"x"}}"#,
            br#"{"event":"message","message_token":1,"message":{"type":"text","text":"x"}}"#,
            br#"{"event":"delivered","timestamp":1,"user_id":"u"}"#,
        ];
        for body in bodies {
            match receive(signed(body.to_vec())) {
                Err(WebhookError::Malformed { provider: "viber", .. }) => {}
                other => panic!("{}: expected Malformed, got {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn normalizes_every_message_type() {
        let message = |json: &str| -> InboundMessage {
            let body = format!(
                r#"{{"event":"message","timestamp":1700000000000,"message_token":7,"sender":{{"id":"u1","name":""}},"message":{json}}}"#
            );
            match parse_callback(body.as_bytes()).unwrap() {
                Callback::Message(m) => m,
                other => panic!("{json}: {other:?}"),
            }
        };
        let picture =
            message(r#"{"type":"picture","text":"look","media":"https://dl.viber.com/p.jpg","size":1000}"#);
        assert_eq!(picture.text.as_deref(), Some("look"));
        assert_eq!(picture.customer, Customer { id: "u1".into(), name: None, handle: None });
        assert_eq!(
            picture.attachments,
            vec![Attachment {
                kind: AttachmentKind::Image,
                file_ref: "https://dl.viber.com/p.jpg".into(),
                mime: None,
                size: Some(1000),
                name: None,
            }]
        );
        let file =
            message(r#"{"type":"file","media":"https://dl.viber.com/f","file_name":"a.pdf","size":5}"#);
        assert_eq!(file.text, None);
        assert_eq!(
            (file.attachments[0].kind, file.attachments[0].name.as_deref(), file.attachments[0].size),
            (AttachmentKind::Document, Some("a.pdf"), Some(5))
        );
        let cases = [
            (
                r#"{"type":"video","media":"https://dl.viber.com/v.mp4","size":10,"duration":3}"#,
                AttachmentKind::Video,
                "https://dl.viber.com/v.mp4",
            ),
            (
                r#"{"type":"sticker","sticker_id":46105,"media":"https://viber.com/s.png"}"#,
                AttachmentKind::Sticker,
                "https://viber.com/s.png",
            ),
            (r#"{"type":"sticker","sticker_id":46105}"#, AttachmentKind::Sticker, "sticker46105"),
            (
                r#"{"type":"contact","contact":{"name":"Ivan","phone_number":"+79001234567"}}"#,
                AttachmentKind::Contact,
                "+79001234567",
            ),
            (
                r#"{"type":"location","location":{"lat":50.76891,"lon":6.11499}}"#,
                AttachmentKind::Location,
                "50.76891,6.11499",
            ),
        ];
        for (json, kind, file_ref) in cases {
            let m = message(json);
            assert_eq!(
                (m.attachments[0].kind, m.attachments[0].file_ref.as_str()),
                (kind, file_ref),
                "{json}"
            );
        }
        assert_eq!(
            message(r#"{"type":"contact","contact":{"name":"Ivan","phone_number":"+7900"}}"#).attachments[0]
                .name
                .as_deref(),
            Some("Ivan")
        );
        let url = message(r#"{"type":"url","media":"https://example.com/page"}"#);
        assert_eq!((url.text.as_deref(), url.attachments.len()), (Some("https://example.com/page"), 0));
        // Nothing to show: acknowledged, nothing stored.
        let empty =
            br#"{"event":"message","message_token":8,"sender":{"id":"u"},"message":{"type":"rich_media"}}"#;
        assert_eq!(parse_callback(empty), Ok(Callback::Acknowledged));
    }

    #[test]
    fn verifies_signatures_of_the_exact_bytes() {
        let token = Secret::new(BOT_TOKEN);
        let body = fixture("viber_webhook_verification.json");
        assert_eq!(verify_signature(&body, Some(&sign(&body, BOT_TOKEN)), &token), Ok(()));
        assert_eq!(verify_signature(&body, Some("abc"), &token), Err(WebhookError::Unauthorized));
        assert_eq!(decode_hex("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_hex("0g"), None);
        assert_eq!(decode_hex("abc"), None);
    }

    #[test]
    fn keyboards_are_reply_buttons() {
        assert_eq!(keyboard(&[]), None);
        assert_eq!(keyboard(&[" ".into()]), None);
        let many: Vec<String> = (0..30).map(|n| n.to_string()).collect();
        assert_eq!(keyboard(&many).unwrap()["Buttons"].as_array().unwrap().len(), KEYBOARD_MAX_BUTTONS);
    }

    // --- client, against a fake Viber API ---

    fn token() -> Secret {
        Secret::new(BOT_TOKEN)
    }

    fn assert_token_hidden(error: &impl std::fmt::Debug, display: &str) {
        assert!(!display.contains(BOT_TOKEN), "Display leaks the token: {display}");
        assert!(!format!("{error:?}").contains(BOT_TOKEN), "Debug leaks the token: {error:?}");
    }

    async fn respond(server: &MockServer, endpoint: &str, template: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path(format!("/{endpoint}")))
            .and(header(AUTH_HEADER, BOT_TOKEN))
            .respond_with(template)
            .mount(server)
            .await;
    }

    fn answer(body: Value) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(body)
    }

    fn credentials() -> Map<String, Value> {
        json!({ "token": BOT_TOKEN }).as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn connect_names_the_bot_and_keeps_its_sender_name() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/get_account_info"))
            .and(header(AUTH_HEADER, BOT_TOKEN))
            .and(body_json(json!({})))
            .respond_with(answer(json!({
                "status": 0, "status_message": "ok", "id": "pa:75346594275468546724",
                "name": "Acme Support — the very long official bot name", "uri": "acmesupport",
                "icon": "https://example.com/i.jpg", "subscribers_count": 35201,
            })))
            .expect(1)
            .mount(&server)
            .await;
        let client = ViberClient::new(reqwest::Client::new(), format!("{}/", server.uri()));
        let connection = client.connect(&credentials()).await.unwrap();
        assert_eq!(
            connection.account,
            Account {
                id: "pa:75346594275468546724".into(),
                name: "Acme Support — the very long official bot name".into()
            }
        );
        assert_eq!(connection.secrets.get(TOKEN).map(Secret::expose), Some(BOT_TOKEN));
        assert_eq!(
            connection.secrets.get(SENDER_NAME).map(Secret::expose),
            Some("Acme Support — the very long")
        );
        assert_eq!(connection.masked.get(TOKEN).map(String::as_str), Some("****0im9"));
        assert!(!format!("{connection:?}").contains(BOT_TOKEN));
    }

    #[tokio::test]
    async fn an_invalid_token_is_bot_not_found_although_http_says_200() {
        let server = MockServer::start().await;
        respond(
            &server,
            "get_account_info",
            answer(json!({"status": 2, "status_message": "invalidAuthToken"})),
        )
        .await;
        let client = ViberClient::new(reqwest::Client::new(), server.uri());
        let error = client.get_account_info(&token()).await.unwrap_err();
        assert_eq!(error, ProviderError::InvalidCredentials(INVALID_TOKEN.into()));
        assert_token_hidden(&error, &error.to_string());
        let error = client.connect(&credentials()).await.unwrap_err();
        match &error {
            Error::Rule(rule) => {
                assert_eq!((rule.code, rule.field.as_str()), ("bot_not_found", "credentials.token"));
                assert_eq!(rule.message, "Bot not found / Бот не найден");
            }
            other => panic!("{other:?}"),
        }
        assert_token_hidden(&error, &error.to_string());
        // A token that cannot travel in a header is refused without a call.
        let bad = json!({"token": "has\u{7f}control"}).as_object().unwrap().clone();
        assert!(matches!(client.connect(&bad).await, Err(Error::Rule(r)) if r.field == "credentials.token"));
    }

    #[tokio::test]
    async fn register_webhook_sets_the_url_and_event_types_and_remove_clears_it() {
        let server = MockServer::start().await;
        let url = "https://omnichat.example.test/webhooks/viber/0190a6a0-0000-7000-8000-000000000001";
        Mock::given(method("POST"))
            .and(path("/set_webhook"))
            .and(header(AUTH_HEADER, BOT_TOKEN))
            .and(body_json(json!({
                "url": url,
                "event_types": ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"],
                "send_name": true,
                "send_photo": false,
            })))
            .respond_with(answer(json!({"status": 0, "status_message": "ok",
                "event_types": ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started", "message"]})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/set_webhook"))
            .and(body_json(json!({"url": ""})))
            .respond_with(answer(json!({"status": 0, "status_message": "ok"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = ViberClient::new(reqwest::Client::new(), server.uri());
        client.register_webhook(&secrets(), url).await.unwrap();
        ChannelProvider::remove_webhook(&client, &secrets()).await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_webhook_url_is_rejected_with_a_reason() {
        let server = MockServer::start().await;
        respond(&server, "set_webhook", answer(json!({"status": 1, "status_message": "invalidUrl"}))).await;
        let client = ViberClient::new(reqwest::Client::new(), server.uri());
        let error = client.set_webhook(&token(), "https://x.example/wh").await.unwrap_err();
        assert!(matches!(&error, ProviderError::Rejected(m) if m.contains("invalidUrl")), "{error:?}");
    }

    fn outgoing(buttons: &[&str]) -> Outgoing {
        Outgoing {
            attachments: Vec::new(),
            customer_id: "01234567890A=".into(),
            text: "Hello! How can we help?".into(),
            buttons: buttons.iter().map(|b| b.to_string()).collect(),
            idempotency_key: "k".into(),
            thread: None,
            automatic: false,
            template: None,
        }
    }

    #[tokio::test]
    async fn send_message_carries_sender_name_and_a_reply_keyboard() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/send_message"))
            .and(header(AUTH_HEADER, BOT_TOKEN))
            .and(body_json(json!({
                "receiver": "01234567890A=",
                "min_api_version": 1,
                "sender": {"name": "Acme Support"},
                "type": "text",
                "text": "Hello! How can we help?",
                "keyboard": {"Type": "keyboard", "DefaultHeight": false, "Buttons": [
                    {"ActionType": "reply", "ActionBody": "Order status", "Text": "Order status", "Columns": 6, "Rows": 1},
                    {"ActionType": "reply", "ActionBody": "Talk to a human", "Text": "Talk to a human", "Columns": 6, "Rows": 1},
                ]},
            })))
            .respond_with(answer(json!({"status": 0, "status_message": "ok",
                "message_token": 5741311803571721087_u64, "chat_hostname": "SN-CHAT-05_"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = ViberClient::new(reqwest::Client::new(), server.uri());
        let sent = client.send(&secrets(), &outgoing(&["Order status", "Talk to a human"])).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("5741311803571721087".into()) });
    }

    #[tokio::test]
    async fn send_message_without_buttons_has_no_keyboard() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/send_message"))
            .and(body_partial_json(json!({"receiver": "01234567890A=", "type": "text"})))
            .respond_with(answer(json!({"status": 0, "status_message": "ok", "message_token": 1})))
            .mount(&server)
            .await;
        let client = ViberClient::new(reqwest::Client::new(), server.uri());
        client.send(&secrets(), &outgoing(&[])).await.unwrap();
        let requests = server.received_requests().await.unwrap();
        let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
        assert!(body.get("keyboard").is_none(), "{body}");
    }

    #[tokio::test]
    async fn statuses_in_a_200_are_mapped_in_one_place() {
        let cases = [
            (2, ProviderError::InvalidCredentials(INVALID_TOKEN.into())),
            (12, ProviderError::RateLimited { retry_after: TOO_MANY_REQUESTS_RETRY }),
            (6, ProviderError::Rejected("Viber status 6: receiverNotSubscribed".into())),
        ];
        for (status, expected) in cases {
            let server = MockServer::start().await;
            let message = if status == 6 { "receiverNotSubscribed" } else { "x" };
            respond(&server, "send_message", answer(json!({"status": status, "status_message": message})))
                .await;
            let client = ViberClient::new(reqwest::Client::new(), server.uri());
            let error = client.send(&secrets(), &outgoing(&[])).await.unwrap_err();
            assert_eq!(error, expected, "status {status}");
            assert_token_hidden(&error, &error.to_string());
        }
    }

    #[tokio::test]
    async fn http_throttling_server_errors_and_time_outs() {
        let server = MockServer::start().await;
        respond(&server, "send_message", ResponseTemplate::new(429).insert_header("Retry-After", "9")).await;
        let client = ViberClient::new(reqwest::Client::new(), server.uri());
        let error = client.send(&secrets(), &outgoing(&[])).await.unwrap_err();
        assert_eq!(error, ProviderError::RateLimited { retry_after: Duration::from_secs(9) });

        let server = MockServer::start().await;
        respond(&server, "send_message", ResponseTemplate::new(503)).await;
        let client = ViberClient::new(reqwest::Client::new(), server.uri());
        let error = client.send(&secrets(), &outgoing(&[])).await.unwrap_err();
        assert_eq!(error, ProviderError::Unavailable("HTTP 503".into()));

        let server = MockServer::start().await;
        respond(
            &server,
            "get_account_info",
            answer(json!({"status": 0, "id": "pa:1", "name": "Slow"})).set_delay(Duration::from_secs(2)),
        )
        .await;
        let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
        let error = ViberClient::new(http, server.uri()).get_account_info(&token()).await.unwrap_err();
        assert_eq!(error, ProviderError::Unavailable("timed out".into()));
        assert_token_hidden(&error, &error.to_string());

        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = ViberClient::new(reqwest::Client::new(), format!("http://127.0.0.1:{port}"));
        let error = client.get_account_info(&token()).await.unwrap_err();
        assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
        assert_token_hidden(&error, &error.to_string());
    }

    #[test]
    fn interpret_redacts_and_reads_unexpected_answers() {
        let t = token();
        let ok = |body: &str| interpret::<Value>(StatusCode::OK, body.as_bytes(), None, &t);
        let echoed = format!(r#"{{"status": 3, "status_message": "bad token {BOT_TOKEN}"}}"#);
        assert_eq!(ok(&echoed), Err(ProviderError::Rejected("Viber status 3: bad token ****".into())));
        assert_eq!(ok("<html>"), Err(ProviderError::Unavailable("unreadable answer from Viber".into())));
        assert_eq!(
            ok(r#"{"ok": true}"#),
            Err(ProviderError::Unavailable("unreadable answer from Viber".into()))
        );
        assert_eq!(
            interpret::<Value>(StatusCode::FORBIDDEN, b"", None, &t),
            Err(ProviderError::Rejected("HTTP 403".into()))
        );
    }

    /// Found by fuzzing (fuzz/regressions/viber/): a sender with an empty id became the customer id.
    #[test]
    fn a_message_from_a_sender_without_an_id_is_refused() {
        let body = br#"{"event":"message","timestamp":1457764197627,"message_token":4912661846655238145,
            "sender":{"id":"","name":"John McClane"},"message":{"type":"text","text":"hi"}}"#;
        assert!(matches!(parse_callback(body), Err(WebhookError::Malformed { .. })));
    }

    // --- media ---

    fn link(kind: AttachmentKind, mime: &str, name: &str, size: u64) -> OutgoingMedia {
        let url = format!("https://media.example/l/{name}?sig=abc");
        crate::test_support::linked_file(kind, mime, name, size, &url)
    }

    #[tokio::test]
    async fn the_picture_of_the_fixture_is_fetched_from_its_link() {
        let delivery = receive(signed(fixture("viber_picture.json"))).unwrap();
        let message = &delivery.messages[0];
        assert_eq!(message.text.as_deref(), Some("Photo description"));
        let picture = message.attachments[0].clone();
        assert_eq!(
            (picture.kind, picture.file_ref.as_str()),
            (AttachmentKind::Image, "http://www.images.com/img.jpg")
        );
        let server = MockServer::start().await;
        let client = ViberClient::new(reqwest::Client::new(), server.uri());
        assert!(client.fetchable(&picture));
        let jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF a picture".to_vec();
        Mock::given(method("GET"))
            .and(path("/img.jpg"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(jpeg.clone(), "image/jpeg"))
            .expect(1)
            .mount(&server)
            .await;
        let moved = Attachment { file_ref: format!("{}/img.jpg", server.uri()), ..picture };
        let mut sink = MediaSink::new(1024 * 1024).await.unwrap();
        let declared = client.fetch_media(&secrets(), &moved, &mut sink).await.unwrap();
        assert_eq!(declared.as_deref(), Some("image/jpeg"));
        assert_eq!(std::fs::read(sink.path()).unwrap(), jpeg);
    }

    #[test]
    fn a_sticker_known_only_by_its_id_is_not_fetchable() {
        let sticker = Attachment {
            kind: AttachmentKind::Sticker,
            file_ref: "sticker46105".into(),
            mime: None,
            size: None,
            name: None,
        };
        assert!(!client().fetchable(&sticker));
    }

    #[test]
    fn media_limits_follow_the_message_types() {
        assert!(!client().sends_media_from_file());
        assert_eq!(client().media_limit(AttachmentKind::Video), Some(26 * 1024 * 1024));
        for kind in
            [AttachmentKind::Image, AttachmentKind::Document, AttachmentKind::Audio, AttachmentKind::Voice]
        {
            assert_eq!(client().media_limit(kind), Some(50 * 1024 * 1024), "{kind:?}");
        }
        for kind in [
            AttachmentKind::Sticker,
            AttachmentKind::Location,
            AttachmentKind::Contact,
            AttachmentKind::Other,
        ] {
            assert_eq!(client().media_limit(kind), None, "{kind:?}");
        }
    }

    #[tokio::test]
    async fn a_picture_goes_by_link_with_the_text_as_its_description() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/send_message"))
            .and(header(AUTH_HEADER, BOT_TOKEN))
            .and(body_json(json!({
                "receiver": "01234567890A=",
                "min_api_version": 1,
                "sender": {"name": "Acme Support"},
                "type": "picture",
                "media": "https://media.example/l/look.jpg?sig=abc",
                "text": "Hello! How can we help?",
                "keyboard": {"Type": "keyboard", "DefaultHeight": false, "Buttons": [
                    {"ActionType": "reply", "ActionBody": "OK", "Text": "OK", "Columns": 6, "Rows": 1},
                ]},
            })))
            .respond_with(answer(
                json!({"status": 0, "status_message": "ok", "message_token": 5741311803571721088_u64}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let client = ViberClient::new(reqwest::Client::new(), server.uri());
        let out = Outgoing {
            attachments: vec![link(AttachmentKind::Image, "image/jpeg", "look.jpg", 200_000)],
            ..outgoing(&["OK"])
        };
        let sent = client.send(&secrets(), &out).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("5741311803571721088".into()) });
    }

    #[tokio::test]
    async fn a_long_text_goes_first_and_videos_files_and_large_images_go_as_their_types() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/send_message"))
            .respond_with(answer(json!({"status": 0, "status_message": "ok", "message_token": 9})))
            .expect(4)
            .mount(&server)
            .await;
        let client = ViberClient::new(reqwest::Client::new(), server.uri());
        let long = "x".repeat(CAPTION_MAX_CHARS + 1);
        let out = Outgoing {
            attachments: vec![
                link(AttachmentKind::Image, "image/png", "small.png", 1000),
                link(AttachmentKind::Video, "video/mp4", "clip.mp4", 2_000_000),
                link(AttachmentKind::Image, "image/jpeg", "large.jpg", 3_000_000),
            ],
            text: long.clone(),
            ..outgoing(&["OK"])
        };
        client.send(&secrets(), &out).await.unwrap();
        let bodies: Vec<Value> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        assert_eq!(
            (bodies[0]["type"].as_str(), bodies[0]["text"].as_str()),
            (Some("text"), Some(long.as_str()))
        );
        assert_eq!((bodies[1]["type"].as_str(), bodies[1]["text"].as_str()), (Some("picture"), Some("")));
        assert_eq!(bodies[2]["type"], "video");
        assert_eq!(bodies[2]["size"], 2_000_000);
        assert_eq!(bodies[3]["type"], "file");
        assert_eq!(bodies[3]["file_name"], "large.jpg");
        assert_eq!(bodies[3]["size"], 3_000_000);
        assert_eq!(bodies[3]["media"], "https://media.example/l/large.jpg?sig=abc");
        assert!(bodies[..3].iter().all(|b| b.get("keyboard").is_none()));
        assert!(bodies[3].get("keyboard").is_some());

        // Files alone: no empty text message.
        server.reset().await;
        Mock::given(method("POST"))
            .and(path("/send_message"))
            .respond_with(answer(json!({"status": 0, "status_message": "ok", "message_token": 10})))
            .expect(1)
            .mount(&server)
            .await;
        let out = Outgoing {
            attachments: vec![link(AttachmentKind::Document, "application/pdf", "a.pdf", 5)],
            text: String::new(),
            ..outgoing(&[])
        };
        let sent = client.send(&secrets(), &out).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("10".into()) });
    }
}
