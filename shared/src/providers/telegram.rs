//! Telegram Bot API: verify and normalize webhook updates, call the Bot API (getMe, setWebhook, sendMessage).

use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use async_trait::async_trait;
use serde_json::Map;

use super::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, Outgoing, ProviderError, Reply, Sent,
    WebhookError, WebhookRequest, required_credential, transport_error,
};
use crate::domain::Account;
use crate::domain::{Attachment, AttachmentKind, Customer, InboundKind, InboundMessage};
use crate::error::{Error, Result as AppResult};
use crate::secret::Secret;

pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

const PROVIDER: &str = "telegram";
/// The update types we subscribe to; `parse_update` acknowledges and drops anything else.
const ALLOWED_UPDATES: [&str; 3] = ["message", "edited_message", "callback_query"];
/// Telegram caps `callback_data` at 64 bytes and refuses the whole message if a button exceeds it.
const CALLBACK_DATA_MAX_BYTES: usize = 64;
/// Used when a 429 carries no `retry_after`: short enough not to stall a queue, long enough not to hammer.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
const INVALID_TOKEN: &str = "Bot not found / Бот не найден";

/// Checks the header Telegram sends with every webhook request once `setWebhook` was given a
/// `secret_token`: there is no signature, so this shared secret is the only proof of origin.
pub fn verify(secret_header: Option<&str>, expected: &Secret) -> Result<(), WebhookError> {
    match secret_header {
        // With an empty expected secret an empty header would match: a channel without one accepts nothing.
        Some(candidate) if !expected.expose().is_empty() && expected.matches(candidate) => Ok(()),
        _ => Err(WebhookError::Unauthorized),
    }
}

/// Whether `token` has the shape of a bot token (`<bot id>:<secret>`). Checked before any call because the
/// token becomes part of the request path: a `/`, `?` or `#` in it would send the request somewhere else.
pub fn is_plausible_token(token: &str) -> bool {
    let Some((bot_id, secret)) = token.split_once(':') else {
        return false;
    };
    !bot_id.is_empty()
        && bot_id.len() <= 20
        && bot_id.bytes().all(|b| b.is_ascii_digit())
        && (20..=100).contains(&secret.len())
        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The webhook response body that makes Telegram run `answerCallbackQuery` itself: the button stops
/// spinning without a call of our own (Telegram does not report the result of such a call).
pub fn answer_callback_in_reply(callback_query_id: &str) -> String {
    json!({ "method": "answerCallbackQuery", "callback_query_id": callback_query_id }).to_string()
}

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
        customer: Customer { id: message.chat.id.to_string(), name },
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
    let reply_to = query.message.and_then(|m| m.chat).map_or(query.from.id, |chat| chat.id);
    Some(InboundMessage {
        dedup_key,
        kind: InboundKind::ButtonReply,
        customer: Customer { id: reply_to.to_string(), name: query.from.display_name() },
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

/// The bot a token belongs to, as `getMe` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BotAccount {
    pub id: i64,
    pub username: String,
    pub first_name: String,
}

/// Calls the Bot API. The token is passed per call because one process serves many bots (one per channel).
#[derive(Debug, Clone)]
pub struct TelegramClient {
    http: reqwest::Client,
    base: String,
}

impl TelegramClient {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        Self { http, base }
    }

    /// `TELEGRAM_API_BASE` points the client at a fake (local runner, tests) or a self-hosted Bot API server.
    pub fn from_env(http: reqwest::Client) -> Self {
        let base = super::base_url_from_env("TELEGRAM_API_BASE", DEFAULT_API_BASE);
        Self::new(http, base)
    }

    /// Validates a token and names the bot. A refused token is `InvalidCredentials`.
    pub async fn get_me(&self, token: &Secret) -> Result<BotAccount, ProviderError> {
        self.call(token, "getMe", &json!({}), Purpose::CredentialCheck).await
    }

    pub async fn set_webhook(
        &self,
        token: &Secret,
        url: &str,
        secret_token: &Secret,
    ) -> Result<(), ProviderError> {
        let body = json!({
            "url": url,
            "secret_token": secret_token.expose(),
            "allowed_updates": ALLOWED_UPDATES,
        });
        self.call::<Value>(token, "setWebhook", &body, Purpose::Operation).await.map(drop)
    }

    pub async fn delete_webhook(&self, token: &Secret) -> Result<(), ProviderError> {
        self.call::<Value>(token, "deleteWebhook", &json!({}), Purpose::Operation).await.map(drop)
    }

    pub async fn send_message(&self, token: &Secret, out: &Outgoing) -> Result<Sent, ProviderError> {
        let body = send_message_body(out);
        let sent: SentMessage = self.call(token, "sendMessage", &body, Purpose::Operation).await?;
        Ok(Sent { provider_message_id: Some(sent.message_id.to_string()) })
    }

    /// Must follow every button press, or the customer's app keeps showing a spinner on the button.
    pub async fn answer_callback_query(
        &self,
        token: &Secret,
        callback_query_id: &str,
    ) -> Result<(), ProviderError> {
        let body = json!({ "callback_query_id": callback_query_id });
        self.call::<Value>(token, "answerCallbackQuery", &body, Purpose::Operation).await.map(drop)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        token: &Secret,
        method: &str,
        body: &Value,
        purpose: Purpose,
    ) -> Result<T, ProviderError> {
        // The token is part of the URL, so reqwest's errors go through `transport_error`, which drops it.
        let url = format!("{}/bot{}/{}", self.base, token.expose(), method);
        let response = self.http.post(url).json(body).send().await.map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?;
        let outcome = interpret(status, &bytes, purpose, token);
        if let Err(error) = &outcome {
            tracing::warn!(method, status = status.as_u16(), %error, "telegram call failed");
        }
        outcome
    }
}

fn send_message_body(out: &Outgoing) -> Value {
    // A numeric chat id goes as a number; Telegram also takes "@channelname", which must stay a string.
    let chat_id = out.customer_id.parse::<i64>().map_or_else(|_| json!(out.customer_id), |id| json!(id));
    let mut body = json!({ "chat_id": chat_id, "text": out.text });
    if !out.buttons.is_empty() {
        let rows: Vec<Value> = out
            .buttons
            .iter()
            .map(|label| {
                let data = truncate_bytes(label, CALLBACK_DATA_MAX_BYTES);
                json!([{ "text": label, "callback_data": data }])
            })
            .collect();
        body["reply_markup"] = json!({ "inline_keyboard": rows });
    }
    body
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// `getMe`: here 401/403/404 mean the token is wrong, which the caller shows to the user.
    CredentialCheck,
    Operation,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    ok: bool,
    result: Option<Value>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
}

#[derive(Deserialize)]
struct SentMessage {
    message_id: i64,
}

/// The one place a Bot API answer becomes a result or a `ProviderError`.
fn interpret<T: DeserializeOwned>(
    status: StatusCode,
    body: &[u8],
    purpose: Purpose,
    token: &Secret,
) -> Result<T, ProviderError> {
    let envelope = serde_json::from_slice::<Envelope>(body).ok();
    let understood = envelope.is_some();
    let (error_code, description, retry_after) = match envelope {
        Some(Envelope { ok: true, result: Some(result), .. }) if status.is_success() => {
            return serde_json::from_value(result)
                .map_err(|_| ProviderError::Unavailable("unexpected result from Telegram".into()));
        }
        Some(e) => (e.error_code, e.description, e.parameters.and_then(|p| p.retry_after)),
        None => (None, None, None),
    };
    // Telegram's `error_code` mirrors the HTTP status; it is the only code when a proxy answered 200.
    let code = error_code.unwrap_or(status.as_u16());
    // Descriptions never contain the token today; redacting keeps it that way if one ever echoes the URL.
    let description =
        description.map(|d| token.redacted(&d)).unwrap_or_else(|| format!("HTTP {}", status.as_u16()));

    match code {
        429 => Err(ProviderError::RateLimited {
            retry_after: retry_after.map_or(DEFAULT_RETRY_AFTER, Duration::from_secs),
        }),
        401 | 403 | 404 if purpose == Purpose::CredentialCheck => {
            Err(ProviderError::InvalidCredentials(INVALID_TOKEN.into()))
        }
        400..=499 => Err(ProviderError::Rejected(description)),
        // A readable `ok:false` on a 2xx: Telegram looked at the call and refused it.
        200..=299 if understood => Err(ProviderError::Rejected(description)),
        // 5xx, or something that is not the Bot API talking (a gateway page): worth another try.
        _ => Err(ProviderError::Unavailable(description)),
    }
}

/// The channel's credentials: the bot token, and the `secret_token` Telegram echoes in its header.
const TOKEN: &str = "token";

#[async_trait]
impl ChannelProvider for TelegramClient {
    async fn connect(&self, credentials: &Map<String, Value>) -> AppResult<Connection> {
        let bot_not_found = || Error::rule("bot_not_found", "credentials.token", INVALID_TOKEN);
        let token = required_credential(credentials, TOKEN)?;
        if !is_plausible_token(token.expose()) {
            return Err(bot_not_found());
        }
        let bot = match self.get_me(&token).await {
            Ok(bot) => bot,
            Err(ProviderError::InvalidCredentials(_)) => return Err(bot_not_found()),
            Err(other) => return Err(other.into()),
        };
        Ok(Connection {
            account: Account { id: bot.id.to_string(), name: bot.username },
            masked: [(TOKEN.to_owned(), token.masked())].into(),
            secrets: ChannelSecrets::default().with(TOKEN, token),
        })
    }

    async fn register_webhook(&self, secrets: &ChannelSecrets, url: &str) -> AppResult<()> {
        let secret_token = secrets.require(ChannelSecrets::WEBHOOK_SECRET)?;
        Ok(self.set_webhook(secrets.require(TOKEN)?, url, secret_token).await?)
    }

    async fn remove_webhook(&self, secrets: &ChannelSecrets) -> AppResult<()> {
        Ok(self.delete_webhook(secrets.require(TOKEN)?).await?)
    }

    fn receive(&self, secrets: &ChannelSecrets, request: &WebhookRequest) -> Result<Delivery, WebhookError> {
        verify(request.header(SECRET_HEADER), secrets.for_verifying(ChannelSecrets::WEBHOOK_SECRET)?)?;
        let Some(inbound) = parse_update(&request.body)? else {
            return Ok(Delivery::default());
        };
        // A button press must be answered or the customer's client shows a spinner; Telegram runs a method
        // given in the webhook's response, which saves a round trip.
        let reply = match (&inbound.kind, &inbound.provider_message_id) {
            (InboundKind::ButtonReply, Some(callback_id)) => {
                Reply::json(answer_callback_in_reply(callback_id))
            }
            _ => Reply::default(),
        };
        Ok(Delivery { messages: vec![inbound], statuses: Vec::new(), reply })
    }

    async fn send(&self, secrets: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError> {
        let token =
            secrets.get(TOKEN).ok_or_else(|| ProviderError::InvalidCredentials("no bot token".into()))?;
        self.send_message(token, out).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;
    use wiremock::matchers::{body_partial_json, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const TOKEN: &str = "123456:AAE-secretTokenValue_xyz";

    fn parsed(body: &[u8]) -> InboundMessage {
        parse_update(body).unwrap().expect("a message")
    }

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp::from_second(seconds).unwrap())
    }

    fn test_customer() -> Customer {
        Customer { id: "1111111".into(), name: Some("Test Firstname Test Lastname".into()) }
    }

    fn assert_malformed(body: &[u8]) {
        match parse_update(body) {
            Err(WebhookError::Malformed { provider: "telegram", .. }) => {}
            other => panic!("{}: expected Malformed, got {other:?}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn parses_text_fixture() {
        let body = fixture("telegram_text.json");
        let m = parsed(&body);
        assert_eq!(m.kind, InboundKind::Message);
        assert_eq!(m.customer, test_customer());
        assert_eq!(m.provider_message_id.as_deref(), Some("1365"));
        assert_eq!(m.text.as_deref(), Some("/start"));
        assert!(m.attachments.is_empty());
        assert_eq!(m.sent_at, ts(1441645532));
        assert!(m.dedup_key.starts_with("10000:"));
        assert_eq!(m.dedup_key.len(), "10000:".len() + 16);
    }

    #[test]
    fn parses_edited_message_fixture() {
        let m = parsed(&fixture("telegram_edited_message.json"));
        assert_eq!(m.kind, InboundKind::Edit);
        assert_eq!(m.customer, test_customer());
        assert_eq!(m.provider_message_id.as_deref(), Some("1365"));
        assert_eq!(m.text.as_deref(), Some("Edited text"));
        assert!(m.attachments.is_empty());
        assert_eq!(m.sent_at, ts(1441646600));
    }

    #[test]
    fn parses_document_fixture() {
        let m = parsed(&fixture("telegram_document.json"));
        assert_eq!(m.kind, InboundKind::Message);
        assert_eq!(m.customer, test_customer());
        assert_eq!(m.provider_message_id.as_deref(), Some("1365"));
        assert_eq!(m.text, None);
        assert_eq!(
            m.attachments,
            vec![Attachment {
                kind: AttachmentKind::Document,
                file_ref: "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX".into(),
                mime: Some("application/pdf".into()),
                size: Some(536392),
                name: Some("Testfile.pdf".into()),
            }]
        );
        assert_eq!(m.sent_at, ts(1441645532));
    }

    #[test]
    fn parses_callback_query_fixture() {
        let m = parsed(&fixture("telegram_callback_query.json"));
        assert_eq!(m.kind, InboundKind::ButtonReply);
        // No `message` (inline-mode button): the reply goes to the presser's private chat.
        assert_eq!(m.customer, test_customer());
        assert_eq!(m.provider_message_id.as_deref(), Some("4382bfdwdsb323b2d9"));
        assert_eq!(m.text.as_deref(), Some("Data from button callback"));
        assert!(m.attachments.is_empty());
        assert_eq!(m.sent_at, None);
    }

    #[test]
    fn callback_query_replies_to_the_chat_of_the_message() {
        let body = br#"{"update_id":5,"callback_query":{"id":"77","from":{"id":42,"first_name":"Ann"},
            "message":{"message_id":9,"date":1700000000,"chat":{"id":-1001234567890123,"type":"supergroup","title":"Shop"}},
            "data":"yes"}}"#;
        let m = parsed(body);
        assert_eq!(m.customer, Customer { id: "-1001234567890123".into(), name: Some("Ann".into()) });
        assert_eq!(m.text.as_deref(), Some("yes"));
    }

    #[test]
    fn photo_in_a_supergroup_with_a_big_update_id() {
        let body = br#"{"update_id":9007199254740993,"message":{"message_id":77,"date":1700000000,
            "chat":{"id":-1001234567890123,"type":"supergroup","title":"Support"},
            "from":{"id":5,"is_bot":false,"first_name":"","username":"jdoe"},
            "photo":[{"file_id":"small","file_unique_id":"s","width":90,"height":90,"file_size":1000},
                     {"file_id":"large","file_unique_id":"l","width":1280,"height":960,"file_size":98765}],
            "caption":"look"}}"#;
        let m = parsed(body);
        assert!(m.dedup_key.starts_with("9007199254740993:"));
        assert_eq!(m.customer, Customer { id: "-1001234567890123".into(), name: Some("jdoe".into()) });
        assert_eq!(m.text.as_deref(), Some("look"));
        assert_eq!(
            m.attachments,
            vec![Attachment {
                kind: AttachmentKind::Image,
                file_ref: "large".into(),
                mime: Some("image/jpeg".into()),
                size: Some(98765),
                name: None,
            }]
        );
        assert_eq!(m.sent_at, ts(1700000000));
    }

    #[test]
    fn location_contact_voice_and_sticker() {
        let cases: [(&[u8], Attachment); 4] = [
            (
                br#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1},"location":{"latitude":55.75,"longitude":37.6175}}}"#,
                Attachment {
                    kind: AttachmentKind::Location,
                    file_ref: "55.75,37.6175".into(),
                    mime: None,
                    size: None,
                    name: None,
                },
            ),
            (
                br#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1},"contact":{"phone_number":"+79001234567","first_name":"Ivan"}}}"#,
                Attachment {
                    kind: AttachmentKind::Contact,
                    file_ref: "+79001234567".into(),
                    mime: None,
                    size: None,
                    name: Some("Ivan".into()),
                },
            ),
            (
                br#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1},"voice":{"file_id":"v1","file_unique_id":"u","duration":3,"mime_type":"audio/ogg","file_size":4000}}}"#,
                Attachment {
                    kind: AttachmentKind::Voice,
                    file_ref: "v1".into(),
                    mime: Some("audio/ogg".into()),
                    size: Some(4000),
                    name: None,
                },
            ),
            (
                br#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1},"sticker":{"file_id":"st","file_unique_id":"u","width":512,"height":512,"is_animated":false,"is_video":false,"type":"regular"}}}"#,
                Attachment {
                    kind: AttachmentKind::Sticker,
                    file_ref: "st".into(),
                    mime: None,
                    size: None,
                    name: None,
                },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(parsed(body).attachments, vec![expected]);
        }
    }

    #[test]
    fn ignores_other_update_types_and_service_messages() {
        let ignored: [&[u8]; 4] = [
            br#"{"update_id":1,"channel_post":{"message_id":1,"date":1,"chat":{"id":-100123,"type":"channel"},"text":"hi"}}"#,
            br#"{"update_id":2,"my_chat_member":{"chat":{"id":1},"from":{"id":1},"date":1}}"#,
            br#"{"update_id":3,"poll":{"id":"p","question":"?","options":[]}}"#,
            br#"{"update_id":4,"message":{"message_id":1,"date":1,"chat":{"id":-100123},"new_chat_members":[{"id":9,"first_name":"X"}]}}"#,
        ];
        for body in ignored {
            assert_eq!(parse_update(body), Ok(None), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert_malformed(b"not json");
        assert_malformed(b"");
        assert_malformed(b"[10000, null, null, null]");
        assert_malformed(br#"{"message":{"message_id":1,"date":1,"chat":{"id":1},"text":"x"}}"#);
        assert_malformed(
            br#"{"update_id":"10000","message":{"message_id":1,"date":1,"chat":{"id":1},"text":"x"}}"#,
        );
        assert_malformed(br#"{"update_id":1.5}"#);
        assert_malformed(
            br#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":"abc"},"text":"x"}}"#,
        );
    }

    #[test]
    fn a_retry_has_the_same_key_and_different_updates_do_not() {
        let original = fixture("telegram_text.json");
        let value: Value = serde_json::from_slice(&original).unwrap();
        let compact = serde_json::to_vec(&value).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        let reordered = br#"{"message":{"text":"/start","message_id":1365,"from":{"username":"Testusername","first_name":"Test Firstname","id":1111111,"last_name":"Test Lastname"},"date":1441645532,"chat":{"username":"Testusername","first_name":"Test Firstname","type":"private","id":1111111,"last_name":"Test Lastname"}},"update_id":10000}"#;
        let key = parsed(&original).dedup_key;
        assert_eq!(parsed(&compact).dedup_key, key);
        assert_eq!(parsed(&pretty).dedup_key, key);
        assert_eq!(parsed(reordered).dedup_key, key);

        let mut keys: Vec<String> = [
            "telegram_text.json",
            "telegram_edited_message.json",
            "telegram_document.json",
            "telegram_callback_query.json",
        ]
        .iter()
        .map(|name| parsed(&fixture(name)).dedup_key)
        .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 4, "{keys:?}");
    }

    #[test]
    fn verifies_the_secret_header() {
        let secret = Secret::new("s3cr3t-Token_1");
        assert_eq!(verify(Some("s3cr3t-Token_1"), &secret), Ok(()));
        assert_eq!(verify(Some("s3cr3t-Token_2"), &secret), Err(WebhookError::Unauthorized));
        assert_eq!(verify(Some(""), &secret), Err(WebhookError::Unauthorized));
        assert_eq!(verify(None, &secret), Err(WebhookError::Unauthorized));
        assert_eq!(verify(Some(""), &Secret::new("")), Err(WebhookError::Unauthorized));
    }

    #[test]
    fn recognizes_token_shapes() {
        assert!(is_plausible_token("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"));
        assert!(is_plausible_token(TOKEN));
        for bad in [
            "",
            "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            ":AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            "12a:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            "123456789:short",
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5/../x",
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5?x=1",
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PAL saw",
        ] {
            assert!(!is_plausible_token(bad), "{bad}");
        }
    }

    #[test]
    fn answers_a_callback_in_the_webhook_reply() {
        let reply: Value = serde_json::from_str(&answer_callback_in_reply("4382\"bfd")).unwrap();
        assert_eq!(reply, json!({"method": "answerCallbackQuery", "callback_query_id": "4382\"bfd"}));
    }

    #[test]
    fn truncates_callback_data_on_a_char_boundary() {
        let cyrillic = "д".repeat(40); // 80 bytes
        let cut = truncate_bytes(&cyrillic, 64);
        assert_eq!(cut.len(), 64);
        let odd = format!("a{cyrillic}"); // 81 bytes: byte 64 falls inside a character
        assert_eq!(truncate_bytes(&odd, 64).len(), 63);
        assert_eq!(truncate_bytes("short", 64), "short");
    }

    // --- client, against a fake Bot API ---

    fn token() -> Secret {
        Secret::new(TOKEN)
    }

    fn api_path(method: &str) -> String {
        format!("/bot{TOKEN}/{method}")
    }

    async fn client_for(server: &MockServer) -> TelegramClient {
        TelegramClient::new(reqwest::Client::new(), format!("{}/", server.uri()))
    }

    fn assert_token_hidden(error: &ProviderError) {
        assert!(!format!("{error}").contains(TOKEN), "Display leaks the token: {error}");
        assert!(!format!("{error:?}").contains(TOKEN), "Debug leaks the token: {error:?}");
        assert!(!format!("{error}").contains("secretTokenValue"));
    }

    async fn respond(server: &MockServer, api_method: &str, template: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path(api_path(api_method)))
            .respond_with(template)
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn get_me_names_the_bot() {
        let server = MockServer::start().await;
        let body = json!({
            "ok": true,
            "result": {"id": 987654321, "is_bot": true, "first_name": "Shop", "username": "shop_bot"},
        });
        respond(&server, "getMe", ResponseTemplate::new(200).set_body_json(body)).await;
        let bot = client_for(&server).await.get_me(&token()).await.unwrap();
        assert_eq!(bot, BotAccount { id: 987654321, username: "shop_bot".into(), first_name: "Shop".into() });
    }

    #[tokio::test]
    async fn get_me_with_a_bad_token_is_invalid_credentials() {
        for (status, body) in [
            (401, json!({"ok":false,"error_code":401,"description":"Unauthorized"})),
            (404, json!({"ok":false,"error_code":404,"description":"Not Found"})),
        ] {
            let server = MockServer::start().await;
            respond(&server, "getMe", ResponseTemplate::new(status).set_body_json(body)).await;
            let error = client_for(&server).await.get_me(&token()).await.unwrap_err();
            assert_eq!(error, ProviderError::InvalidCredentials("Bot not found / Бот не найден".into()));
            assert_token_hidden(&error);
        }
    }

    #[tokio::test]
    async fn throttling_carries_retry_after() {
        let server = MockServer::start().await;
        let body = json!({
            "ok": false,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        });
        respond(&server, "sendMessage", ResponseTemplate::new(429).set_body_json(body)).await;
        let out = Outgoing {
            customer_id: "1".into(),
            text: "hi".into(),
            buttons: vec![],
            idempotency_key: "k".into(),
            thread: None,
        };
        let error = client_for(&server).await.send_message(&token(), &out).await.unwrap_err();
        assert_eq!(error, ProviderError::RateLimited { retry_after: Duration::from_secs(7) });
        assert!(error.is_retryable());
        assert_token_hidden(&error);
    }

    #[tokio::test]
    async fn server_errors_are_unavailable() {
        let server = MockServer::start().await;
        respond(&server, "getMe", ResponseTemplate::new(500).set_body_string("oops")).await;
        let error = client_for(&server).await.get_me(&token()).await.unwrap_err();
        assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
        assert_token_hidden(&error);
    }

    #[tokio::test]
    async fn a_time_out_is_unavailable() {
        let server = MockServer::start().await;
        let body =
            json!({"ok":true,"result":{"id":1,"is_bot":true,"first_name":"Slow","username":"slow_bot"}});
        respond(
            &server,
            "getMe",
            ResponseTemplate::new(200).set_body_json(body).set_delay(Duration::from_secs(2)),
        )
        .await;
        let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
        let client = TelegramClient::new(http, server.uri());
        let error = client.get_me(&token()).await.unwrap_err();
        assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
        assert_token_hidden(&error);
    }

    #[tokio::test]
    async fn a_connection_failure_does_not_leak_the_token() {
        // A port that was free a moment ago: nothing listens there, so the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = TelegramClient::new(reqwest::Client::new(), format!("http://127.0.0.1:{port}"));
        let error = client.get_me(&token()).await.unwrap_err();
        assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
        assert_token_hidden(&error);
    }

    #[tokio::test]
    async fn send_message_sends_chat_id_text_and_inline_keyboard() {
        let server = MockServer::start().await;
        let long = "x".repeat(70);
        let expected = json!({
            "chat_id": -1001234567890123_i64,
            "text": "Pick one",
            "reply_markup": {"inline_keyboard": [
                [{"text": "Yes", "callback_data": "Yes"}],
                [{"text": long, "callback_data": "x".repeat(64)}],
            ]},
        });
        Mock::given(method("POST"))
            .and(path(api_path("sendMessage")))
            .and(body_partial_json(expected))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "ok": true,
                "result": {
                    "message_id": 4242,
                    "date": 1700000000,
                    "chat": {"id": -1001234567890123_i64, "type": "supergroup"},
                    "text": "Pick one",
                },
            })))
            .expect(1)
            .mount(&server)
            .await;
        let out = Outgoing {
            customer_id: "-1001234567890123".into(),
            text: "Pick one".into(),
            buttons: vec!["Yes".into(), long.clone()],
            idempotency_key: "k".into(),
            thread: None,
        };
        let sent = client_for(&server).await.send_message(&token(), &out).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("4242".into()) });
    }

    #[tokio::test]
    async fn send_message_refusals_are_rejected_without_the_token() {
        let server = MockServer::start().await;
        // A description that echoes the token must not carry it into our errors.
        let body = json!({
            "ok": false,
            "error_code": 403,
            "description": format!("Forbidden: bot{TOKEN} was blocked by the user"),
        });
        respond(&server, "sendMessage", ResponseTemplate::new(403).set_body_json(body)).await;
        let out = Outgoing {
            customer_id: "@some_channel".into(),
            text: "hi".into(),
            buttons: vec![],
            idempotency_key: "k".into(),
            thread: None,
        };
        let error = client_for(&server).await.send_message(&token(), &out).await.unwrap_err();
        assert!(
            matches!(&error, ProviderError::Rejected(d) if d.contains("blocked by the user")),
            "{error:?}"
        );
        assert!(!error.is_retryable());
        assert_token_hidden(&error);
    }

    #[tokio::test]
    async fn set_webhook_registers_url_secret_and_update_types() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(api_path("setWebhook")))
            .and(body_partial_json(json!({
                "url": "https://example.com/wh/telegram/abc",
                "secret_token": "hook-secret_123",
                "allowed_updates": ["message", "edited_message", "callback_query"],
            })))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok":true,"result":true,"description":"Webhook was set"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        client_for(&server)
            .await
            .set_webhook(&token(), "https://example.com/wh/telegram/abc", &Secret::new("hook-secret_123"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn delete_webhook_and_answer_callback_query() {
        let server = MockServer::start().await;
        respond(
            &server,
            "deleteWebhook",
            ResponseTemplate::new(200).set_body_json(json!({"ok":true,"result":true})),
        )
        .await;
        Mock::given(method("POST"))
            .and(path(api_path("answerCallbackQuery")))
            .and(body_partial_json(json!({"callback_query_id": "4382bfdwdsb323b2d9"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok":true,"result":true})))
            .expect(1)
            .mount(&server)
            .await;
        let client = client_for(&server).await;
        client.delete_webhook(&token()).await.unwrap();
        client.answer_callback_query(&token(), "4382bfdwdsb323b2d9").await.unwrap();
    }

    #[test]
    fn maps_responses_in_one_place() {
        let t = token();
        let op = Purpose::Operation;
        let r = |status: u16, body: &str| {
            interpret::<Value>(StatusCode::from_u16(status).unwrap(), body.as_bytes(), op, &t)
        };
        assert_eq!(r(200, r#"{"ok":true,"result":true}"#), Ok(json!(true)));
        // A proxy that answers 200 but passes Telegram's error through.
        assert_eq!(
            r(200, r#"{"ok":false,"error_code":429,"description":"Too Many Requests"}"#),
            Err(ProviderError::RateLimited { retry_after: DEFAULT_RETRY_AFTER })
        );
        assert_eq!(
            r(200, r#"{"ok":false,"description":"nope"}"#),
            Err(ProviderError::Rejected("nope".into()))
        );
        assert_eq!(
            r(400, r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#),
            Err(ProviderError::Rejected("Bad Request: chat not found".into()))
        );
        assert_eq!(
            r(401, r#"{"ok":false,"error_code":401}"#),
            Err(ProviderError::Rejected("HTTP 401".into()))
        );
        assert_eq!(r(502, "<html>Bad Gateway</html>"), Err(ProviderError::Unavailable("HTTP 502".into())));
        assert!(matches!(r(200, "garbage"), Err(ProviderError::Unavailable(_))));
        assert_eq!(
            interpret::<BotAccount>(
                StatusCode::OK,
                br#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
                Purpose::CredentialCheck,
                &t
            ),
            Err(ProviderError::InvalidCredentials(INVALID_TOKEN.into()))
        );
    }

    #[test]
    fn base_url_loses_its_trailing_slash() {
        let client = TelegramClient::new(reqwest::Client::new(), "http://localhost:9000/");
        assert_eq!(client.base, "http://localhost:9000");
    }
}
