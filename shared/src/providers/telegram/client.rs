//! The Bot API client: `getMe`, `setWebhook` / `deleteWebhook`, `sendMessage` with its inline keyboard,
//! files sent as multipart uploads (`sendPhoto`, `sendDocument`, ...) and fetched (`getFile`, then the
//! file server), `answerCallbackQuery`; every answer is read in one place.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{DEFAULT_API_BASE, INVALID_TOKEN};
use crate::domain::AttachmentKind;
use crate::ports::channel::{FetchError, OutgoingMedia};
use crate::ports::media::MediaSink;
use crate::providers::media::{DOWNLOAD_TIMEOUT, download};
use crate::providers::{Http, Outgoing, ProviderError, Sent, transport_error};
use crate::secret::Secret;

/// The update types we subscribe to; `parse_update` acknowledges and drops anything else.
const ALLOWED_UPDATES: [&str; 3] = ["message", "edited_message", "callback_query"];
/// Telegram caps `callback_data` at 64 bytes and refuses the whole message if a button exceeds it.
const CALLBACK_DATA_MAX_BYTES: usize = 64;
/// Used when a 429 carries no `retry_after`: short enough not to stall a queue, long enough not to hammer.
pub(super) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest caption of a photo, video, audio or document, in characters.
pub(super) const CAPTION_MAX_CHARS: usize = 1024;
/// The largest file the Bot API lets a bot download (`getFile`).
pub const DOWNLOAD_LIMIT: u64 = 20 * 1024 * 1024;
/// The largest photo `sendPhoto` takes.
pub const PHOTO_LIMIT: u64 = 10 * 1024 * 1024;
/// The largest file `sendDocument`, `sendVideo`, `sendAudio` and `sendVoice` take.
pub const FILE_LIMIT: u64 = 50 * 1024 * 1024;

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
    http: Http,
    pub(super) base: String,
}

impl TelegramClient {
    pub fn new(http: impl Into<Http>, base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        Self { http: http.into(), base }
    }

    /// `TELEGRAM_API_BASE` points the client at a fake (local runner, tests) or a self-hosted Bot API server.
    pub fn from_env(http: Http) -> Self {
        let base = crate::providers::base_url_from_env("TELEGRAM_API_BASE", DEFAULT_API_BASE);
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
        if !out.attachments.is_empty() {
            return self.send_with_files(token, out).await;
        }
        let body = send_message_body(out);
        let sent: SentMessage = self.call(token, "sendMessage", &body, Purpose::Operation).await?;
        Ok(Sent { provider_message_id: Some(sent.message_id.to_string()) })
    }

    /// A message with files: one upload per file, the text as the first file's caption (or, longer than a
    /// caption may be, as a text message first), the buttons under the last message sent. Answers the last
    /// message's id.
    async fn send_with_files(&self, token: &Secret, out: &Outgoing) -> Result<Sent, ProviderError> {
        let text = out.text.trim();
        let mut caption = (!text.is_empty()).then_some(out.text.as_str());
        if caption.is_some_and(|text| text.chars().count() > CAPTION_MAX_CHARS) {
            let text_only = Outgoing { buttons: Vec::new(), attachments: Vec::new(), ..out.clone() };
            let body = send_message_body(&text_only);
            self.call::<SentMessage>(token, "sendMessage", &body, Purpose::Operation).await?;
            caption = None;
        }
        let mut last = None;
        for (index, media) in out.attachments.iter().enumerate() {
            let buttons = if index + 1 == out.attachments.len() { out.buttons.as_slice() } else { &[] };
            let sent = self.send_file(token, &out.customer_id, media, caption.take(), buttons).await?;
            last = Some(sent.message_id.to_string());
        }
        Ok(Sent { provider_message_id: last })
    }

    /// Uploads one file with the method of its kind (`multipart/form-data`).
    async fn send_file(
        &self,
        token: &Secret,
        chat_id: &str,
        media: &OutgoingMedia,
        caption: Option<&str>,
        buttons: &[String],
    ) -> Result<SentMessage, ProviderError> {
        let (method, field) = upload_method(media);
        let bytes = media.read().await?;
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(media.file_name())
            .mime_str(&media.mime)
            .map_err(|_| ProviderError::Rejected(format!("{:?} is not a media type", media.mime)))?;
        let mut form = reqwest::multipart::Form::new().text("chat_id", chat_id.to_owned()).part(field, part);
        if let Some(caption) = caption {
            form = form.text("caption", caption.to_owned());
        }
        if let Some(markup) = inline_keyboard(buttons) {
            form = form.text("reply_markup", markup.to_string());
        }
        let url = format!("{}/bot{}/{}", self.base, token.expose(), method);
        let request = self.http.post(url).multipart(form).timeout(DOWNLOAD_TIMEOUT);
        self.dispatch(request, token, method, Purpose::Operation).await
    }

    /// Where a file's bytes are (`getFile`): its path on the file server and its size, when Telegram says.
    pub async fn get_file(&self, token: &Secret, file_id: &str) -> Result<FileLocation, ProviderError> {
        self.call(token, "getFile", &json!({ "file_id": file_id }), Purpose::Operation).await
    }

    /// Fetches a file into `sink`: `getFile`, then its bytes from the file server. Larger than the Bot API
    /// lets a bot download (20 MB) is `TooLarge` before any byte is requested.
    pub async fn fetch_file(
        &self,
        token: &Secret,
        file_id: &str,
        sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        let location = match self.get_file(token, file_id).await {
            Ok(location) => location,
            // What getFile answers for a file past the download limit.
            Err(ProviderError::Rejected(reason)) if reason.contains("file is too big") => {
                return Err(FetchError::TooLarge { limit: DOWNLOAD_LIMIT });
            }
            Err(error) => return Err(error.into()),
        };
        let limit = DOWNLOAD_LIMIT.min(sink.limit());
        if location.file_size.is_some_and(|size| size > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let path = location.file_path.filter(|path| is_plain_file_path(path)).ok_or_else(|| {
            FetchError::Provider(ProviderError::Rejected("getFile gave no downloadable file path".into()))
        })?;
        // The token is part of the URL: `download` maps reqwest's errors without it and redacts it.
        let url = format!("{}/file/bot{}/{}", self.base, token.expose(), path);
        download(self.http.get(url), &[token], sink).await
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
        let url = format!("{}/bot{}/{}", self.base, token.expose(), method);
        self.dispatch(self.http.post(url).json(body), token, method, purpose).await
    }

    /// Sends one Bot API request and reads its answer.
    async fn dispatch<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        token: &Secret,
        method: &str,
        purpose: Purpose,
    ) -> Result<T, ProviderError> {
        // The token is part of the URL, so reqwest's errors go through `transport_error`, which drops it.
        let response = request.send().await.map_err(transport_error)?;
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
    if let Some(markup) = inline_keyboard(&out.buttons) {
        body["reply_markup"] = markup;
    }
    body
}

/// The `reply_markup` of quick-reply buttons: one inline button per row.
fn inline_keyboard(buttons: &[String]) -> Option<Value> {
    if buttons.is_empty() {
        return None;
    }
    let rows: Vec<Value> = buttons
        .iter()
        .map(|label| {
            let data = truncate_bytes(label, CALLBACK_DATA_MAX_BYTES);
            json!([{ "text": label, "callback_data": data }])
        })
        .collect();
    Some(json!({ "inline_keyboard": rows }))
}

/// The Bot API method and form field a file is sent with. Photos Telegram shows inline are JPEG, PNG or
/// WebP; other images go as documents, as does anything without a method of its own.
pub(super) fn upload_method(media: &OutgoingMedia) -> (&'static str, &'static str) {
    let mime = media.mime.to_ascii_lowercase();
    match media.kind {
        AttachmentKind::Image if matches!(mime.as_str(), "image/jpeg" | "image/png" | "image/webp") => {
            ("sendPhoto", "photo")
        }
        AttachmentKind::Video if matches!(mime.as_str(), "video/mp4") => ("sendVideo", "video"),
        // OGG (Opus) audio shows as a voice message, the way customers send theirs.
        AttachmentKind::Audio | AttachmentKind::Voice if mime == "audio/ogg" || mime == "audio/opus" => {
            ("sendVoice", "voice")
        }
        AttachmentKind::Audio | AttachmentKind::Voice
            if matches!(mime.as_str(), "audio/mpeg" | "audio/mp4" | "audio/m4a") =>
        {
            ("sendAudio", "audio")
        }
        _ => ("sendDocument", "document"),
    }
}

/// The largest file of `kind` a bot may send, or `None` for what it sends no files of.
pub(super) fn media_limit(kind: AttachmentKind) -> Option<u64> {
    match kind {
        AttachmentKind::Image => Some(PHOTO_LIMIT),
        AttachmentKind::Video | AttachmentKind::Audio | AttachmentKind::Voice | AttachmentKind::Document => {
            Some(FILE_LIMIT)
        }
        AttachmentKind::Sticker
        | AttachmentKind::Location
        | AttachmentKind::Contact
        | AttachmentKind::Other => None,
    }
}

/// A `file_path` as getFile gives it (`photos/file_0.jpg`): relative, no way up, nothing that would end the
/// path (`?`, `#`) or leave it.
fn is_plain_file_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 512
        && !path.starts_with('/')
        && path.split('/').all(|segment| !segment.is_empty() && segment != "..")
        && path.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'\\' | b'%'))
}

/// The longest prefix of `text` that fits in `max` bytes without splitting a character.
pub(super) fn truncate_bytes(text: &str, max: usize) -> &str {
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
pub(super) enum Purpose {
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

/// What `getFile` answers: the path on the file server (absent when the file cannot be downloaded).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileLocation {
    pub file_path: Option<String>,
    pub file_size: Option<u64>,
}

/// The one place a Bot API answer becomes a result or a `ProviderError`.
pub(super) fn interpret<T: DeserializeOwned>(
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
