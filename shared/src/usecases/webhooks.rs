//! An inbound provider request: find the channel, verify, parse, ingest, answer what the provider expects.
//! A request that cannot be verified or parsed writes nothing.

use crate::domain::{ChannelId, Provider};
use crate::error::WebhookError;
use crate::error::{Error, Result};
use crate::limits::{MAX_JSON_DEPTH, json_too_deep};
use crate::ports::channel::{Reply, WebhookRequest};
use crate::repo;
use crate::usecases::Context;
use crate::usecases::ingest::{self, IngestOutcome};

/// What to answer the provider: always a 2xx once the request is verified and understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookReply {
    pub reply: Reply,
    /// What happened to each message, for logs and tests.
    pub outcomes: Vec<IngestOutcome>,
}

pub async fn receive_webhook(
    ctx: &Context,
    provider: Provider,
    channel_id: &str,
    mut request: WebhookRequest,
) -> Result<WebhookReply> {
    if json_too_deep(&request.body, MAX_JSON_DEPTH) {
        // Refused before anything reads the store or parses the body.
        let reason = format!("nested deeper than {MAX_JSON_DEPTH} levels");
        return Err(WebhookError::Malformed { provider: provider.slug(), reason }.into());
    }
    let not_found = || Error::NotFound { what: "channel" };
    let channel_id = ChannelId::parse(channel_id).ok_or_else(not_found)?;
    let mut channel =
        ctx.recent_channel(&channel_id).await?.filter(|c| c.provider == provider).ok_or_else(not_found)?;
    // A channel that was disconnected has no credentials left: nothing can be verified.
    let secrets =
        ctx.channel_secrets(&channel.tenant_id, &channel.id).await?.ok_or(WebhookError::Unauthorized)?;
    let module = ctx.providers.get(provider)?;
    request.webhook_url.clone_from(&channel.webhook_url);
    let delivery = module.receive(&secrets, &request)?;
    if !channel.receives_messages() {
        // Disconnected or displaced: acknowledged so the provider stops retrying, and nothing is stored.
        return Ok(WebhookReply { reply: delivery.reply, outcomes: Vec::new() });
    }
    let mut outcomes = Vec::with_capacity(delivery.messages.len());
    for inbound in &delivery.messages {
        let mut outcome = ingest::ingest(ctx, &channel, inbound).await?;
        if outcome == IngestOutcome::ChannelChanged {
            // The remembered channel is out of date: read it again and go on with the stored one.
            ctx.forget_channel(&channel.id);
            channel = repo::load_channel(ctx.store.as_ref(), &channel.id).await?.ok_or_else(not_found)?;
            if !channel.receives_messages() {
                break;
            }
            outcome = ingest::ingest(ctx, &channel, inbound).await?;
            if outcome == IngestOutcome::ChannelChanged {
                return Err(Error::Conflict("the channel is changing; the provider will retry".into()));
            }
        }
        outcomes.push(outcome);
    }
    for status in &delivery.statuses {
        if !crate::usecases::outbox::apply_status(ctx, &channel, status).await? {
            tracing::debug!(provider_message_id = %status.provider_message_id, "a delivery report changed nothing");
        }
    }
    Ok(WebhookReply { reply: delivery.reply, outcomes })
}
