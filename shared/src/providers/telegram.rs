//! Telegram Bot API: the channel as `ChannelProvider` sees it (connect, webhook, receive with the secret
//! header, send), built on `inbound` (webhook updates normalized) and `client` (the Bot API: getMe,
//! setWebhook, sendMessage).

mod client;
mod inbound;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, FetchError, Outgoing, ProviderError, Reply, Sent,
    WebhookError, WebhookRequest, required_credential,
};
use crate::domain::{Account, Attachment, AttachmentKind, InboundKind};
use crate::error::{Error, Result as AppResult};
use crate::ports::media::MediaSink;
use crate::secret::Secret;

pub use client::{BotAccount, DOWNLOAD_LIMIT, FILE_LIMIT, FileLocation, PHOTO_LIMIT, TelegramClient};
pub use inbound::parse_update;

pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

const PROVIDER: &str = "telegram";
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

    fn registers_webhook(&self) -> bool {
        true
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

    /// Every file of a message (stickers too) is known by its `file_id`; locations and contacts are data.
    fn fetchable(&self, attachment: &Attachment) -> bool {
        !attachment.kind.is_data() && !attachment.file_ref.trim().is_empty()
    }

    /// `getFile`, then the bytes from the file server (the token is in that URL; never logged).
    async fn fetch_media(
        &self,
        secrets: &ChannelSecrets,
        attachment: &Attachment,
        sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        if !self.fetchable(attachment) {
            return Err(FetchError::not_fetched(attachment));
        }
        // The update's own size already says when the Bot API will not hand the file over.
        if attachment.size.is_some_and(|size| size > DOWNLOAD_LIMIT) {
            return Err(FetchError::TooLarge { limit: DOWNLOAD_LIMIT });
        }
        let token = secrets
            .get(TOKEN)
            .ok_or_else(|| FetchError::Provider(ProviderError::InvalidCredentials("no bot token".into())))?;
        // Telegram's file server mostly declares application/octet-stream: the update's own type says more.
        let declared = self.fetch_file(token, attachment.file_ref.trim(), sink).await?;
        Ok(attachment.mime.clone().or(declared))
    }

    /// sendPhoto takes photos up to 10 MB; sendDocument, sendVideo, sendAudio and sendVoice files up to
    /// 50 MB. Stickers are not sent.
    fn media_limit(&self, kind: AttachmentKind) -> Option<u64> {
        client::media_limit(kind)
    }

    /// Files are uploaded (multipart), not handed over as links.
    fn sends_media_from_file(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
