//! An inbound provider request: find the channel, verify, parse, ingest, answer what the provider expects.
//! A request that cannot be verified or parsed writes nothing.

use crate::domain::{ChannelId, InboundKind, Provider};
use crate::error::{Error, Result};
use crate::providers::telegram;
use crate::usecases::ingest::{self, IngestOutcome};
use crate::usecases::{Context, channels};

/// The parts of an HTTP request a provider module looks at.
#[derive(Debug, Clone, Default)]
pub struct WebhookRequest {
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The raw body, exactly as received (signatures are over these bytes).
    pub body: Vec<u8>,
}

impl WebhookRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What to answer the provider: always a 2xx once the request is verified and understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookReply {
    pub content_type: &'static str,
    pub body: String,
    /// What happened, for logs and tests.
    pub outcome: WebhookOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    Stored(IngestOutcome),
    /// An event type the product does not use, or a channel that no longer receives.
    Ignored,
}

pub async fn receive_webhook(
    ctx: &Context,
    provider: Provider,
    channel_id: &str,
    request: &WebhookRequest,
) -> Result<WebhookReply> {
    let not_found = || Error::NotFound { what: "channel" };
    let channel_id = ChannelId::parse(channel_id).ok_or_else(not_found)?;
    let channel = channels::load_channel(ctx, &channel_id)
        .await?
        .filter(|c| c.provider == provider)
        .ok_or_else(not_found)?;
    // A channel that was disconnected has no credentials left: nothing can be verified.
    let secrets = ctx
        .channel_secrets(&channel.tenant_id, &channel.id)
        .await?
        .ok_or(crate::providers::WebhookError::Unauthorized)?;
    match provider {
        Provider::Telegram => {
            telegram::verify(request.header(telegram::SECRET_HEADER), secrets.require("webhook_secret")?)?;
            let Some(inbound) = telegram::parse_update(&request.body)? else {
                return Ok(ok_reply(WebhookOutcome::Ignored, String::new()));
            };
            if !channel.is_active() {
                return Ok(ok_reply(WebhookOutcome::Ignored, String::new()));
            }
            let outcome = ingest::ingest(ctx, &channel, &inbound).await?;
            // A button press must be answered or the customer's client shows a spinner; Telegram runs a
            // method given in the webhook's response, which saves a round trip.
            let body = match (&inbound.kind, &inbound.provider_message_id) {
                (InboundKind::ButtonReply, Some(callback_id)) => {
                    telegram::answer_callback_in_reply(callback_id)
                }
                _ => String::new(),
            };
            Ok(ok_reply(WebhookOutcome::Stored(outcome), body))
        }
        other => Err(Error::rule(
            "provider_not_available",
            "provider",
            format!("{} webhooks are not available yet", other.slug()),
        )),
    }
}

fn ok_reply(outcome: WebhookOutcome, body: String) -> WebhookReply {
    let content_type = if body.is_empty() { "text/plain" } else { "application/json" };
    WebhookReply { content_type, body, outcome }
}
