//! The chatbot bridge: while a chatbot has a dialog, each customer message is forwarded to the chatbot's
//! webhook as JSON, and what it answers (text and quick-reply buttons) goes out through the channel via
//! the outbox; `"handoff": true` in an answer hands the dialog to people.
//!
//! The request: `POST {webhook_url}` with
//! `{"event": "message", "dialog_id", "channel_id", "customer": {"id", "name"}, "message": {normalized message}}`.
//! The answer (synchronous, in the response body; an empty body or 204 means no answer):
//! `{"text": "...", "buttons": ["...", ...], "handoff": false}`, every field optional.
//!
//! The webhook URL is the admin's: it must be https to a public address (`crate::net`), checked when it is
//! saved and again, against the addresses it resolves to, at every call.
//!
//! Each message is forwarded at most once (a claim item written before the call, removed again if the
//! call fails so the next message's forwarding retries it), in order, from a cursor kept per dialog.

use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::people::Chatbot;
use crate::domain::{ChannelId, Customer, Dialog, DialogId, Direction, Message, MessageId};
use crate::domain::{MAX_BUTTON_CHARS, MAX_BUTTONS, MAX_REPLY_CHARS};
use crate::error::{Error, Result};
use crate::net::{GuardedClient, OutboundPolicy, Refusal, is_refused_address};
use crate::ports::store::{Condition, Query, SkRange, StoreError, Write};
use crate::repo;
use crate::usecases::{Context, outbox};

/// The whole call, answer included: a chatbot slower than this leaves the message unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Messages forwarded per call at most; the next message's forwarding continues.
const BATCH: usize = 20;
/// How long a forwarding claim is kept (far longer than any retry of the same message).
const CLAIM_TTL_SECONDS: i64 = 7 * 24 * 3600;

/// The client for the policy: one per process each (a strict one in production, a loopback-allowing one
/// in tests and the local runner). It never follows a redirect and connects only to checked addresses.
fn client(policy: OutboundPolicy) -> &'static GuardedClient {
    static STRICT: OnceLock<GuardedClient> = OnceLock::new();
    static LOOPBACK: OnceLock<GuardedClient> = OnceLock::new();
    let cell = if policy.allows_loopback() { &LOOPBACK } else { &STRICT };
    cell.get_or_init(|| policy.client(CONNECT_TIMEOUT, REQUEST_TIMEOUT))
}

/// The save-time check of a chatbot's webhook URL under the process's outbound policy: https to a public
/// address (also after DNS), or a 422 on `webhook_url` in English and Russian.
pub async fn check_webhook_url(ctx: &Context, raw: &str) -> Result<()> {
    let refused = |message: String| Error::rule("invalid_webhook_url", "webhook_url", message);
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| refused(Refusal::NotHttps.message()))?;
    ctx.providers
        .outbound_policy()
        .check_url_resolves(&url)
        .await
        .map_err(|refusal| refused(refusal.message()))
}

#[derive(Debug, Serialize)]
struct Forwarded<'a> {
    event: &'static str,
    dialog_id: &'a DialogId,
    channel_id: &'a ChannelId,
    customer: &'a Customer,
    message: &'a Message,
}

/// What a chatbot answers to a forwarded message.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatbotAnswer {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub buttons: Vec<String>,
    /// Hand the dialog to people.
    #[serde(default)]
    pub handoff: bool,
}

impl ChatbotAnswer {
    /// The message to send, if any: text trimmed and cut to what a reply may hold, buttons that break the
    /// reply rules dropped (a chatbot's slip should not cost the customer the whole answer).
    pub fn outgoing(&self) -> Option<(String, Vec<String>)> {
        let text = self.text.as_deref().map(str::trim).filter(|t| !t.is_empty())?;
        let text: String = text.chars().take(MAX_REPLY_CHARS).collect();
        let buttons = self
            .buttons
            .iter()
            .map(|b| b.trim())
            .filter(|b| !b.is_empty() && b.chars().count() <= MAX_BUTTON_CHARS)
            .take(MAX_BUTTONS)
            .map(str::to_owned)
            .collect();
        Some((text, buttons))
    }
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
        let policy = ctx.providers.outbound_policy();
        let answer = match call(policy, &chatbot, &dialog, &message).await {
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

/// One forwarded message: a second try after a short pause when the chatbot could not be reached or
/// answered 5xx/429. The reason of a failure is for the logs, never with the URL in it (the admin's URL may
/// carry a token in its path or query).
async fn call(
    policy: OutboundPolicy,
    chatbot: &Chatbot,
    dialog: &Dialog,
    message: &Message,
) -> std::result::Result<ChatbotAnswer, String> {
    let body = Forwarded {
        event: "message",
        dialog_id: &dialog.id,
        channel_id: &dialog.channel_id,
        customer: &dialog.customer,
        message,
    };
    let url = reqwest::Url::parse(chatbot.webhook_url.trim()).map_err(|_| "not a URL".to_owned())?;
    let refused = |refusal: Refusal| format!("the webhook URL is refused by the outbound policy: {refusal}");
    let mut last = String::new();
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let request = client(policy).request(reqwest::Method::POST, url.clone()).map_err(refused)?;
        let response = match request.json(&body).send().await {
            Ok(response) => response,
            Err(error) if is_refused_address(&error) => {
                return Err("the webhook's host resolves to an address the outbound policy refuses".into());
            }
            Err(error) => {
                last = if error.is_timeout() {
                    "timed out".into()
                } else {
                    format!("unreachable: {}", error.without_url())
                };
                continue;
            }
        };
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            last = format!("answered {status}");
            continue;
        }
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let bytes =
            response.bytes().await.map_err(|error| format!("answer not read: {}", error.without_url()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ChatbotAnswer::default());
        }
        return Ok(serde_json::from_slice::<ChatbotAnswer>(&bytes).unwrap_or_else(|error| {
            tracing::warn!(chatbot = %chatbot.id, %error, "the chatbot's answer is not the documented JSON; ignored");
            ChatbotAnswer::default()
        }));
    }
    Err(last)
}

async fn answer_customer(ctx: &Context, dialog: &Dialog, answer: &ChatbotAnswer) -> Result<()> {
    let Some((text, buttons)) = answer.outgoing() else {
        return Ok(());
    };
    let Some(channel) =
        repo::load_channel(ctx.store.as_ref(), &dialog.channel_id).await?.filter(|c| c.is_active())
    else {
        return Ok(());
    };
    // The dialog as it is now: the send is conditioned on its status.
    let dialog = repo::load_dialog(ctx.store.as_ref(), &dialog.id).await?.unwrap_or_else(|| dialog.clone());
    let message = Message::outbound(&dialog, text, buttons, None, ctx.clock.now());
    outbox::send_in_dialog(ctx, &dialog, &channel, message, Vec::new()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_keeps_what_a_reply_may_hold() {
        let documented = serde_json::json!({"text": "Hello! How can I help?", "buttons": ["Prices", "Talk to a person"], "handoff": false});
        let answer: ChatbotAnswer = serde_json::from_value(documented).expect("documented shape");
        assert_eq!(
            answer.outgoing(),
            Some(("Hello! How can I help?".into(), vec!["Prices".into(), "Talk to a person".into()]))
        );
        let sloppy = ChatbotAnswer {
            text: Some(format!("  {}  ", "x".repeat(MAX_REPLY_CHARS + 10))),
            buttons: vec!["".into(), "ok".into(), "y".repeat(MAX_BUTTON_CHARS + 1)],
            handoff: false,
        };
        let (text, buttons) = sloppy.outgoing().expect("a text");
        assert_eq!(text.chars().count(), MAX_REPLY_CHARS);
        assert_eq!(buttons, vec!["ok".to_owned()]);
        let handoff_only: ChatbotAnswer = serde_json::from_str(r#"{"handoff": true}"#).expect("valid");
        assert!(handoff_only.handoff && handoff_only.outgoing().is_none());
        let too_many = ChatbotAnswer {
            text: Some("pick".into()),
            buttons: (0..MAX_BUTTONS + 3).map(|i| i.to_string()).collect(),
            handoff: false,
        };
        assert_eq!(too_many.outgoing().expect("a text").1.len(), MAX_BUTTONS);
    }
}
