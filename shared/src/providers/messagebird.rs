//! WhatsApp through MessageBird's Conversations API: the channel as `ChannelProvider` sees it (connect,
//! webhooks, receive, send), built on `signature` (who sent a webhook), `inbound` (what it says) and
//! `client` (the Conversations API: channels, webhooks, text and template (HSM) messages).

mod client;
mod inbound;
mod signature;

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, FetchError, Outgoing, ProviderError, Sent,
    WebhookError, WebhookRequest, required_credential,
};
use crate::domain::{Account, Attachment, AttachmentKind};
use crate::error::{Error, Result as AppResult};
use crate::ports::channel::{Recipient, TemplateInfo};
use crate::ports::media::MediaSink;
use crate::secret::Secret;
use signature::verify_request;

pub use client::{ChannelInfo, DEFAULT_TEMPLATES_BASE, MessageBirdClient};
pub use inbound::{Parsed, parse_event};
pub use signature::{JwtError, sign_webhook, verify_request_signature, verify_signature_jwt};

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
const INVALID_KEY: &str = "MessageBird refused the access key / MessageBird не принял ключ доступа";
const UNKNOWN_CHANNEL: &str =
    "no such channel for this access key / канал с таким ID не найден для этого ключа доступа";

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
        // The channel id is the stable account id. The admin sees the WhatsApp number where the lookup gives
        // one, with the channel's name (as set in the dashboard) beside it; else the name alone.
        let number = channel.number();
        let label = channel.name.filter(|n| !n.trim().is_empty());
        let name = match (number, label) {
            (Some(number), Some(label)) => format!("{number} ({})", label.trim()),
            (Some(number), None) => number,
            (None, Some(label)) => label,
            (None, None) => channel_id.expose().to_owned(),
        };
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

    fn registers_webhook(&self) -> bool {
        true
    }

    /// Each registration is added beside the others: the channel's ones (found by its webhook secret) go
    /// first, so exactly one, at the new URL, remains.
    async fn reregister_webhook(&self, secrets: &ChannelSecrets, url: &str) -> AppResult<()> {
        self.remove_webhook(secrets).await?;
        self.register_webhook(secrets, url).await
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
        if let Some(template) = &out.template {
            let namespace =
                secrets.get(NAMESPACE_ID).filter(|n| !n.expose().is_empty()).ok_or_else(|| {
                    ProviderError::Rejected(
                    "a WhatsApp template needs the channel's template namespace (Namespace ID) / для шаблона \
                     WhatsApp укажите Namespace ID"
                        .into(),
                )
                })?;
            return self
                .send_hsm(access_key, channel_id.expose(), namespace, &out.customer_id, template)
                .await;
        }
        if out.attachments.is_empty() {
            self.send_text(access_key, channel_id.expose(), out).await
        } else {
            self.send_with_media(access_key, channel_id.expose(), out).await
        }
    }

    fn service_window(&self) -> Option<jiff::SignedDuration> {
        Some(super::WHATSAPP_SERVICE_WINDOW)
    }

    /// WhatsApp numbers are written to first only by template (the use case checks).
    fn first_contact(&self, to: &Recipient) -> Option<String> {
        super::whatsapp_number(to, true)
    }

    fn sends_templates(&self) -> bool {
        true
    }

    async fn list_templates(&self, secrets: &ChannelSecrets) -> AppResult<Option<Vec<TemplateInfo>>> {
        let channel_id = secrets.require(CHANNEL_ID)?;
        Ok(Some(self.templates(secrets.require(ACCESS_KEY)?, channel_id.expose()).await?))
    }

    /// Files of inbound messages are on `media.messagebird.com`, served to the access key only.
    async fn fetch_media(
        &self,
        secrets: &ChannelSecrets,
        attachment: &Attachment,
        sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        let access_key = secrets.get(ACCESS_KEY).ok_or_else(|| {
            ProviderError::InvalidCredentials("the channel has no MessageBird access key".into())
        })?;
        self.download_media(access_key, &attachment.file_ref, sink).await
    }

    fn media_limit(&self, kind: AttachmentKind) -> Option<u64> {
        crate::providers::edna::whatsapp_media_limit(kind)
    }
}

#[cfg(test)]
mod tests;
