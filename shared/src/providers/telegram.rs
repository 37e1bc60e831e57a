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
mod tests;
