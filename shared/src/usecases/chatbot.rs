//! The chatbot bridge: while a chatbot has a dialog, each customer message is forwarded to the chatbot's
//! webhook as JSON, and what it answers (text and quick-reply buttons) goes out through the channel via
//! the outbox; `"handoff": true` in an answer hands the dialog to people.
//!
//! The request: `POST {webhook_url}` with
//! `{"event": "message", "dialog_id", "channel_id", "customer": {"id", "name"}, "message": {normalized message}}`.
//! The answer (synchronous, in the response body; an empty body or 204 means no answer):
//! `{"text": "...", "buttons": ["...", ...], "handoff": false}`, every field optional.
//!
//! Every call is signed the Standard Webhooks way (`ports::chatbot::sign`) with the chatbot's signing
//! secret, which lives in the secret store only (`chatbot/<tenant>/<chatbot>`): made when the chatbot is
//! created, replaced by a rotation, deleted with the chatbot. A chatbot without one (made before calls
//! were signed) is never called unsigned: its dialogs go to people until an admin rotates its secret.
//!
//! The webhook URL is the admin's: it must be https to a public address (`crate::net`), checked when it is
//! saved and again, against the addresses it resolves to, at every call.
//!
//! Each message is forwarded at most once (a claim item written before the call, removed again if the
//! call fails so the next message's forwarding retries it), in order, from a cursor kept per dialog.

use serde::{Deserialize, Serialize};

use crate::domain::{ChatbotId, Dialog, DialogId, Direction, Message, MessageId, TenantId};
use crate::error::{Error, Result};
use crate::ports::chatbot::{ChatbotAnswer, ChatbotRequest, Signing, generate_signing_secret};
use crate::ports::store::{Condition, Query, SkRange, StoreError, Write};
use crate::repo;
use crate::secret::Secret;
use crate::usecases::context::chatbot_secret_name;
use crate::usecases::{Context, outbox};

/// Messages forwarded per call at most; the next message's forwarding continues.
const BATCH: usize = 20;
/// How long a forwarding claim is kept (far longer than any retry of the same message).
const CLAIM_TTL_SECONDS: i64 = 7 * 24 * 3600;

/// The save-time check of a chatbot's webhook URL under the process's outbound policy: https to a public
/// address (also after DNS), or a 422 on `webhook_url` in English and Russian.
pub async fn check_webhook_url(ctx: &Context, raw: &str) -> Result<()> {
    ctx.providers
        .chatbots()
        .check_url(raw)
        .await
        .map_err(|refusal| Error::rule("invalid_webhook_url", "webhook_url", refusal.message()))
}

/// A new signing secret for the chatbot, kept in the secret store (replacing the one before): what the
/// admin is shown, once.
pub async fn new_signing_secret(ctx: &Context, tenant: &TenantId, chatbot: &ChatbotId) -> Result<Secret> {
    let secret = generate_signing_secret();
    ctx.secrets.put(&chatbot_secret_name(tenant, chatbot), &secret).await?;
    Ok(secret)
}

/// Forgets the chatbot's signing secret (the chatbot is deleted).
pub async fn delete_signing_secret(ctx: &Context, tenant: &TenantId, chatbot: &ChatbotId) -> Result<()> {
    ctx.secrets.delete(&chatbot_secret_name(tenant, chatbot)).await?;
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// The last message forwarded.
    through: MessageId,
}

/// What forwarding did: how many messages the chatbot got, and whether the dialog is to go to people now
/// (the chatbot asked for it, or the dialog's chatbot is gone); routing does that.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    pub forwarded: usize,
    pub hand_to_people: bool,
}

/// Forwards the dialog's customer messages the chatbot has not seen yet, if a chatbot has the dialog, and
/// sends its answers.
pub async fn forward_new_messages(ctx: &Context, dialog_id: &DialogId) -> Result<Forwarding> {
    let nothing = Forwarding::default();
    let Some(dialog) = repo::load_dialog(ctx.store.as_ref(), dialog_id).await? else {
        return Ok(nothing);
    };
    let Some(chatbot_id) = dialog.chatbot_id.clone().filter(|_| !dialog.is_closed()) else {
        return Ok(nothing);
    };
    let chatbot =
        repo::get_chatbot(ctx.store.as_ref(), &dialog.tenant_id, &chatbot_id).await?.filter(|c| c.enabled);
    let Some(chatbot) = chatbot else {
        tracing::warn!(dialog = %dialog.id, chatbot = %chatbot_id, "the dialog's chatbot is gone; handing to people");
        return Ok(Forwarding { forwarded: 0, hand_to_people: true });
    };
    // Read each time: a rotation signs the very next call with the new secret.
    let Some(secret) = ctx.secrets.get(&chatbot_secret_name(&dialog.tenant_id, &chatbot.id)).await? else {
        tracing::warn!(
            dialog = %dialog.id, chatbot = %chatbot.id,
            "the chatbot has no signing secret (rotate it to make one) and is not called unsigned; handing to people"
        );
        return Ok(Forwarding { forwarded: 0, hand_to_people: true });
    };
    let cursor_key = repo::chatbot_cursor_key(&dialog.id);
    let cursor: Option<Cursor> = ctx.store.get(&cursor_key).await?.map(repo::from_item).transpose()?;
    let prefix = repo::MESSAGE_SK_PREFIX;
    let range = match &cursor {
        Some(cursor) => SkRange::Between(format!("{prefix}{}", cursor.through), format!("{prefix}~")),
        None => SkRange::BeginsWith(prefix.into()),
    };
    let query = Query::table(repo::messages_of(&dialog.id)).range(range).limit(BATCH + 1);
    let mut forwarded = 0;
    for item in ctx.store.query(&query).await?.items {
        let message: Message = repo::from_item(item)?;
        if message.direction != Direction::In || cursor.as_ref().is_some_and(|c| c.through == message.id) {
            continue;
        }
        let claim = repo::with_expiry(
            repo::to_item(
                &Cursor { through: message.id.clone() },
                &repo::chatbot_forward_key(&message.id),
                &[],
            )?,
            ctx.clock.now().as_second() + CLAIM_TTL_SECONDS,
        );
        match ctx.store.transact(vec![Write::Put { item: claim, condition: Condition::NotExists }]).await {
            Ok(()) => {}
            // Forwarded already, or being forwarded by another consumer right now.
            Err(StoreError::Conflict { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
        let request = ChatbotRequest {
            event: "message",
            dialog_id: &dialog.id,
            channel_id: &dialog.channel_id,
            customer: &dialog.customer,
            message: &message,
        };
        let webhook_id = format!("msg_{}", message.id);
        let signing = Signing { secret: &secret, webhook_id: &webhook_id };
        let answer = match ctx.providers.chatbots().call(&chatbot.webhook_url, signing, &request).await {
            Ok(answer) => answer,
            Err(reason) => {
                tracing::warn!(dialog = %dialog.id, message_id = %message.id, %reason, "chatbot call failed");
                let release = Write::Delete {
                    key: repo::chatbot_forward_key(&message.id),
                    condition: Condition::Always,
                };
                ctx.store.transact(vec![release]).await?;
                return Ok(Forwarding { forwarded, hand_to_people: false });
            }
        };
        forwarded += 1;
        let cursor = Cursor { through: message.id.clone() };
        let item = repo::to_item(&cursor, &cursor_key, &[])?;
        ctx.store.transact(vec![Write::Put { item, condition: Condition::Always }]).await?;
        if let Err(error) = answer_customer(ctx, &dialog, &answer).await {
            tracing::warn!(%error, dialog = %dialog.id, "the chatbot's answer was not sent");
        }
        if answer.handoff {
            tracing::info!(dialog = %dialog.id, "the chatbot hands the dialog to people");
            return Ok(Forwarding { forwarded, hand_to_people: true });
        }
    }
    Ok(Forwarding { forwarded, hand_to_people: false })
}

async fn answer_customer(ctx: &Context, dialog: &Dialog, answer: &ChatbotAnswer) -> Result<()> {
    let Some((text, buttons)) = answer.outgoing() else {
        return Ok(());
    };
    let channel = repo::load_channel(ctx.store.as_ref(), &dialog.channel_id).await?;
    if !channel.is_some_and(|c| c.is_active()) {
        return Ok(());
    }
    // The dialog as it is now: the send is conditioned on its status.
    let dialog = repo::load_dialog(ctx.store.as_ref(), &dialog.id).await?.unwrap_or_else(|| dialog.clone());
    let message = Message::outbound(&dialog, text, buttons, None, ctx.clock.now()).sent_automatically();
    outbox::send_in_dialog(ctx, &dialog, message, Vec::new()).await?;
    Ok(())
}
