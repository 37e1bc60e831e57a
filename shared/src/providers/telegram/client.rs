//! The Bot API client: `getMe`, `setWebhook` / `deleteWebhook`, `sendMessage` with its inline keyboard,
//! `answerCallbackQuery`; every answer is read in one place.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{DEFAULT_API_BASE, INVALID_TOKEN};
use crate::providers::{Outgoing, ProviderError, Sent, transport_error};
use crate::secret::Secret;

/// The update types we subscribe to; `parse_update` acknowledges and drops anything else.
const ALLOWED_UPDATES: [&str; 3] = ["message", "edited_message", "callback_query"];
/// Telegram caps `callback_data` at 64 bytes and refuses the whole message if a button exceeds it.
const CALLBACK_DATA_MAX_BYTES: usize = 64;
/// Used when a 429 carries no `retry_after`: short enough not to stall a queue, long enough not to hammer.
pub(super) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

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
    pub(super) base: String,
}

impl TelegramClient {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        Self { http, base }
    }

    /// `TELEGRAM_API_BASE` points the client at a fake (local runner, tests) or a self-hosted Bot API server.
    pub fn from_env(http: reqwest::Client) -> Self {
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
