//! The outbox: every outgoing message (an employee's reply, an auto-reply, a chatbot's answer) is first
//! written as pending with an outbox entry, then sent (docs/ARCHITECTURE.md invariant 4).
//!
//! The entry sits in the sparse due index (gsi3, `DUE#OUTBOX#{shard}` / `{due millis}#{message}`), so
//! the scheduled retry reads only what is due. A sender claims an entry with a conditional update that
//! moves its due time to the end of a lease: two ticks that read the same entry race on that condition and
//! only one sends. A failed send is retried with exponential backoff (or the provider's Retry-After),
//! then marked failed with the reason. An entry whose lease ran out mid-send had an unknown outcome: it is
//! sent again only to providers that drop repeated sends (idempotency keys), else marked failed.

use std::time::Duration;

use futures::FutureExt;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Channel, ChannelId, Dialog, DialogId, Message, MessageId, OutStatus, TenantId};
use crate::error::ProviderError;
use crate::error::{Error, Result};
use crate::ports::channel::{Outgoing, StatusUpdate};
use crate::ports::events::DomainEvent;
use crate::ports::store::{Condition, Index, Item, Key, StoreError, Write};
use crate::repo;
use crate::usecases::tokens::{self, Renewal};
use crate::usecases::{Context, due, media};

/// Sends tried per message before it is marked failed.
pub const MAX_ATTEMPTS: u32 = 5;
/// How long a claim holds: longer than a provider call with its time-outs.
const LEASE: SignedDuration = SignedDuration::from_secs(60);
/// Due-index shards (see `repo::DUE_SHARDS` for the arithmetic).
pub const SHARDS: u32 = repo::DUE_SHARDS;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutboxEntry {
    message_id: MessageId,
    dialog_id: DialogId,
    tenant_id: TenantId,
    channel_id: ChannelId,
    attempts: u32,
    /// Set while a sender holds the entry.
    #[serde(default)]
    claim: Option<String>,
    #[serde(default)]
    last_error: Option<String>,
}

fn entry_item(entry: &OutboxEntry, due: Timestamp) -> Result<Item> {
    let message = entry.message_id.as_str();
    let due_index =
        (Index::Gsi3, repo::outbox_due_pk(repo::due_shard(message, SHARDS)), repo::due_sk(due, message));
    repo::to_item(entry, &repo::outbox_key(&entry.message_id), &[due_index])
}

/// The writes that put an outgoing message and its outbox entry (due now); callers add their own writes
/// (the dialog's update, cancelled auto-replies) to the same transaction.
pub fn enqueue_writes(message: &Message, now: Timestamp, retention: repo::Retention) -> Result<Vec<Write>> {
    let entry = OutboxEntry {
        message_id: message.id.clone(),
        dialog_id: message.dialog_id.clone(),
        tenant_id: message.tenant_id.clone(),
        channel_id: message.channel_id.clone(),
        attempts: 0,
        claim: None,
        last_error: None,
    };
    Ok(vec![
        Write::Put { item: repo::message_item(message, retention)?, condition: Condition::NotExists },
        Write::Put { item: entry_item(&entry, now)?, condition: Condition::NotExists },
    ])
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent,
    /// Will be retried at the given time.
    Retrying {
        at: Timestamp,
    },
    Failed {
        reason: String,
    },
    /// Another sender holds it, or it was already delivered.
    Skipped,
}

/// Claims the message's outbox entry and sends it once. Safe to call from any number of places at once.
pub async fn deliver(ctx: &Context, message_id: &MessageId) -> Result<Attempt> {
    let key = repo::outbox_key(message_id);
    let Some(item) = ctx.store.get(&key).await? else {
        return Ok(Attempt::Skipped);
    };
    let now = ctx.clock.now();
    let observed_due = item.get(Index::Gsi3.sk_attr()).cloned().unwrap_or(Value::Null);
    let due_at = observed_due.as_str().and_then(repo::due_at_of).unwrap_or(now);
    if due_at > now {
        return Ok(Attempt::Skipped);
    }
    let mut entry: OutboxEntry = repo::from_item(item)?;
    let interrupted = entry.claim.is_some();
    let channel = repo::load_channel(ctx.store.as_ref(), &entry.channel_id).await?;

    // Claim: move the due time to the end of the lease, on condition nobody moved it since we read it.
    let token = uuid::Uuid::now_v7().to_string();
    entry.claim = Some(token.clone());
    entry.attempts += 1;
    let claim = Write::Put {
        item: entry_item(&entry, now + LEASE)?,
        condition: Condition::Equals(Index::Gsi3.sk_attr().into(), observed_due),
    };
    match ctx.store.transact(vec![claim]).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => return Ok(Attempt::Skipped),
        Err(other) => return Err(other.into()),
    }

    let Some(channel) = channel.filter(|c| c.is_active()) else {
        return fail(ctx, &entry, &token, "the channel is not connected any more".into()).await;
    };
    let module = ctx.providers.get(channel.provider)?;
    if interrupted && !module.idempotent_sends() {
        return fail(
            ctx,
            &entry,
            &token,
            "the outcome of an interrupted send is unknown; not repeated".into(),
        )
        .await;
    }
    let Some(message) = load_message(ctx, &entry.dialog_id, &entry.message_id).await? else {
        return fail(ctx, &entry, &token, "the message is gone".into()).await;
    };
    let Some(secrets) = ctx.channel_secrets(&channel.tenant_id, &channel.id).await? else {
        return fail(ctx, &entry, &token, "the channel has no credentials".into()).await;
    };
    // Consent connections renew an access token about to expire first (nothing for other channels).
    let secrets = tokens::usable_secrets(ctx, &channel, module, secrets, Renewal::IfDue).await;
    // Files go as links, or as bytes in local files that live until the send is done.
    let files = match message.attachments.is_empty() {
        true => None,
        false => match tempfile::tempdir() {
            Ok(files) => Some(files),
            Err(error) => {
                let reason = format!("no temporary directory for the attachments: {error}");
                return release(ctx, entry, &token, ProviderError::Unavailable(reason)).await;
            }
        },
    };
    let attachments = match &files {
        None => Vec::new(),
        Some(files) => match media::outgoing_media(ctx, module, &message, files.path()).await {
            Ok(attachments) => attachments,
            Err(error) => return release(ctx, entry, &token, error).await,
        },
    };
    let outgoing = Outgoing {
        attachments,
        customer_id: message.customer_id.clone(),
        text: message.text.clone().unwrap_or_default(),
        buttons: message.buttons.clone(),
        idempotency_key: message.id.to_string(),
        thread: repo::reply_thread(ctx.store.as_ref(), &channel, &message.dialog_id).await,
        automatic: message.automatic,
        template: message.template.clone(),
    };
    let sent = match secrets {
        Ok(secrets) => match module.send(&secrets, &outgoing).await {
            // A refused access token is renewed once (unless a concurrent send already did) and the send
            // repeated with the new one; the provider acted on nothing it refused.
            Err(ProviderError::InvalidCredentials(_)) if tokens::renewable(&secrets) => {
                match tokens::usable_secrets(ctx, &channel, module, secrets, Renewal::Refused).await {
                    Ok(renewed) => module.send(&renewed, &outgoing).await,
                    Err(error) => Err(error),
                }
            }
            other => other,
        },
        Err(error) => Err(error),
    };
    match sent {
        Ok(sent) => {
            let mut set = outcome(OutStatus::Sent, None);
            set.insert("sent_at".into(), Value::String(ctx.clock.now().to_string()));
            match sent.provider_message_id {
                Some(id) => record_sent(ctx, &entry, &token, set, id).await?,
                None => finish(ctx, &entry, &token, set, Vec::new()).await?,
            }
            let event = DomainEvent::MessageSent {
                tenant_id: entry.tenant_id.clone(),
                dialog_id: entry.dialog_id.clone(),
                message_id: entry.message_id.clone(),
            };
            if let Err(error) = ctx.bus.publish(&[event]).await {
                tracing::warn!(%error, message_id = %entry.message_id, "MessageSent not published");
            }
            Ok(Attempt::Sent)
        }
        Err(error) => release(ctx, entry, &token, error).await,
    }
}

/// After a failed send: the entry is due again after a backoff when the failure is worth retrying and
/// attempts are left (on condition we still hold the claim), else the message is failed.
async fn release(
    ctx: &Context,
    mut entry: OutboxEntry,
    token: &str,
    error: ProviderError,
) -> Result<Attempt> {
    if !error.is_retryable() || entry.attempts >= MAX_ATTEMPTS {
        return fail(ctx, &entry, token, error.to_string()).await;
    }
    let at = ctx.clock.now() + retry_delay(entry.attempts, &error);
    entry.claim = None;
    entry.last_error = Some(error.to_string());
    let release = Write::Put {
        item: entry_item(&entry, at)?,
        condition: Condition::Equals("claim".into(), Value::String(token.to_owned())),
    };
    ctx.store.transact(vec![release]).await?;
    tracing::info!(message_id = %entry.message_id, attempt = entry.attempts, %error, "send failed; will retry");
    Ok(Attempt::Retrying { at })
}

/// Exponential backoff from 2 s, capped at 10 min, and never sooner than the provider asked.
fn retry_delay(attempt: u32, error: &ProviderError) -> SignedDuration {
    let backoff = Duration::from_secs(2u64 << attempt.min(8)).min(Duration::from_secs(600));
    let asked = match error {
        ProviderError::RateLimited { retry_after } => *retry_after,
        _ => Duration::ZERO,
    };
    SignedDuration::try_from(backoff.max(asked)).unwrap_or(SignedDuration::from_secs(600))
}

pub async fn load_message(ctx: &Context, dialog: &DialogId, message: &MessageId) -> Result<Option<Message>> {
    repo::load_message(ctx.store.as_ref(), dialog, message).await
}

/// Records a send the provider accepted under its own id, with the way back from that id to our message
/// (delivery reports name the provider's id). A report that came first (kept by `apply_status` while
/// the send was unrecorded) is applied in the same transaction: the message goes straight to
/// `delivered` or `failed`, never back to `sent`.
async fn record_sent(
    ctx: &Context,
    entry: &OutboxEntry,
    token: &str,
    mut set: Item,
    id: String,
) -> Result<()> {
    let lookup = SentLookup { dialog_id: entry.dialog_id.clone(), message_id: entry.message_id.clone() };
    let lookup = Write::Put {
        item: repo::to_item(&lookup, &repo::sent_key(&entry.channel_id, &id), &[])?,
        condition: Condition::Always,
    };
    let early_key = repo::early_report_key(&entry.channel_id, &id);
    set.insert("provider_message_id".into(), Value::String(id));
    // Most sends: no report yet. The check makes a report that arrives meanwhile either see the lookup or
    // be seen here (the two transactions conflict on these keys).
    let no_report = Write::Check { key: early_key.clone(), condition: Condition::NotExists };
    let writes = finish_writes(entry, token, set.clone(), vec![lookup.clone(), no_report]);
    let check_at = writes.len() - 1;
    match ctx.store.transact(writes).await {
        Ok(()) => return Ok(()),
        Err(conflict) if conflict.failed_at(check_at) && !conflict.failed_at(1) => {}
        Err(StoreError::Conflict { .. }) => return Err(lost_claim(entry)),
        Err(other) => return Err(other.into()),
    }
    let report: Option<EarlyReport> = repo::load(ctx.store.as_ref(), &early_key).await?;
    let mut extra = vec![lookup];
    if let Some(report) = report {
        set.extend(outcome(report.status, report.reason.as_deref()));
        extra.push(Write::Delete { key: early_key, condition: Condition::Exists });
    }
    finish(ctx, entry, token, set, extra).await
}

/// The attributes of an outgoing message's outcome: its status, and the failure's reason where there is
/// one.
fn outcome(status: OutStatus, reason: Option<&str>) -> Item {
    let mut set = Item::new();
    set.insert("status".into(), serde_json::to_value(status).unwrap_or_default());
    if let Some(reason) = reason {
        set.insert("failure".into(), Value::String(reason.to_owned()));
    }
    set
}

/// A delivery report kept until its send is recorded.
#[derive(Debug, Serialize, Deserialize)]
struct EarlyReport {
    status: OutStatus,
    #[serde(default)]
    reason: Option<String>,
}

fn lost_claim(entry: &OutboxEntry) -> Error {
    Error::Conflict(format!("lost the claim on outgoing message {}", entry.message_id))
}

/// The outcome on the message, and the entry removed on condition we still hold the claim.
fn finish_writes(entry: &OutboxEntry, token: &str, set: Item, extra: Vec<Write>) -> Vec<Write> {
    let mut writes = vec![
        Write::Update {
            key: repo::message_key(&entry.dialog_id, &entry.message_id),
            set,
            remove: Vec::new(),
            condition: Condition::Exists,
        },
        Write::Delete {
            key: repo::outbox_key(&entry.message_id),
            condition: Condition::Equals("claim".into(), Value::String(token.to_owned())),
        },
    ];
    writes.extend(extra);
    writes
}

/// Records the outcome on the message and removes the entry, on condition we still hold the claim.
async fn finish(ctx: &Context, entry: &OutboxEntry, token: &str, set: Item, extra: Vec<Write>) -> Result<()> {
    match ctx.store.transact(finish_writes(entry, token, set, extra)).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict { .. }) => Err(lost_claim(entry)),
        Err(other) => Err(other.into()),
    }
}

async fn fail(ctx: &Context, entry: &OutboxEntry, token: &str, reason: String) -> Result<Attempt> {
    finish(ctx, entry, token, outcome(OutStatus::Failed, Some(&reason)), Vec::new()).await?;
    tracing::warn!(message_id = %entry.message_id, %reason, "outgoing message failed");
    let event = DomainEvent::MessageFailed {
        tenant_id: entry.tenant_id.clone(),
        dialog_id: entry.dialog_id.clone(),
        message_id: entry.message_id.clone(),
        reason: reason.clone(),
    };
    if let Err(error) = ctx.bus.publish(&[event]).await {
        tracing::warn!(%error, "MessageFailed not published");
    }
    Ok(Attempt::Failed { reason })
}

/// Outgoing messages one retry run sends at once per shard (each is a provider's HTTP call).
const ITEMS_AT_ONCE: usize = 16;

/// Sends every entry due now, reading only the due part of the index: every shard to its end, or until
/// the run's stop time (`usecases::due`); what is left stays due. An entry a run could not claim or send
/// is passed over, not read again in the same run.
pub async fn deliver_due(ctx: &Context, run: due::Run) -> Result<Vec<Attempt>> {
    let now = ctx.clock.now();
    let partitions = (0..SHARDS).map(repo::outbox_due_pk).collect();
    let act = |item: Item| {
        async move {
            let message_id = item.get("message_id").and_then(Value::as_str).and_then(MessageId::parse)?;
            match deliver(ctx, &message_id).await {
                Ok(attempt) => Some(attempt),
                Err(error) => {
                    tracing::error!(%error, message_id = %message_id, "delivery attempt failed");
                    None
                }
            }
        }
        .boxed()
    };
    let drained = due::drain(ctx.store.as_ref(), partitions, now, run, ITEMS_AT_ONCE, act).await?;
    Ok(drained.outcomes.into_iter().flatten().collect())
}

/// Writes an outgoing message to the dialog (with the caller's extra writes in the same transaction) and
/// tries to send it right away; a failed try stays pending for the scheduled retry.
pub async fn send_in_dialog(
    ctx: &Context,
    dialog: &Dialog,
    message: Message,
    extra: Vec<Write>,
) -> Result<Message> {
    let now = ctx.clock.now();
    let mut writes = enqueue_writes(&message, now, ctx.message_retention)?;
    // The close timer is not rewritten: it measures from this last activity when it fires. A caller that
    // writes the dialog itself (reopening it) sets the activity there.
    let dialog_key = repo::dialog_key(&dialog.id);
    if !extra.iter().any(|write| write.key().as_ref() == Some(&dialog_key)) {
        let mut touch = Item::new();
        touch.insert("last_activity_at".into(), Value::String(now.to_string()));
        writes.push(Write::Update {
            key: dialog_key,
            set: touch,
            remove: Vec::new(),
            condition: Condition::Equals("status".into(), Value::String(dialog.status.as_str().into())),
        });
    }
    writes.extend(extra);
    match ctx.store.transact(writes).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(Error::Conflict("the dialog changed meanwhile; read it again".into()));
        }
        Err(other) => return Err(other.into()),
    }
    if let Err(error) = deliver(ctx, &message.id).await {
        tracing::warn!(%error, message_id = %message.id, "first send attempt failed; the retry will pick it up");
    }
    Ok(load_message(ctx, &message.dialog_id, &message.id).await?.unwrap_or(message))
}

/// From a provider's message id back to our outgoing message.
#[derive(Debug, Serialize, Deserialize)]
struct SentLookup {
    dialog_id: DialogId,
    message_id: MessageId,
}

/// Applies a provider's delivery report to our outgoing message: `sent` may become `delivered` or
/// `failed`; a report never moves a message back. A report that comes before its send is recorded (the
/// provider reported faster than we wrote) is kept and applied when the send is recorded; one for a
/// message we never recorded is forgotten after a day.
///
/// A report applied is published (`MessageDelivered`, or `MessageFailed` with the provider's reason), so
/// that an open workspace shows it at once.
pub async fn apply_status(ctx: &Context, channel: &Channel, update: &StatusUpdate) -> Result<bool> {
    let lookup_key = repo::sent_key(&channel.id, &update.provider_message_id);
    let item = match ctx.store.get(&lookup_key).await? {
        Some(item) => item,
        None => match keep_early_report(ctx, &lookup_key, &channel.id, update).await? {
            // Kept for the send's record (or an earlier report is kept already).
            None => return Ok(false),
            // The send was recorded meanwhile.
            Some(item) => item,
        },
    };
    let lookup: SentLookup = repo::from_item(item)?;
    let set = outcome(update.status, update.reason.as_deref());
    let from_sent =
        Condition::Equals("status".into(), serde_json::to_value(OutStatus::Sent).unwrap_or_default());
    let write = Write::Update {
        key: repo::message_key(&lookup.dialog_id, &lookup.message_id),
        set,
        remove: Vec::new(),
        condition: from_sent,
    };
    match ctx.store.transact(vec![write]).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => return Ok(false),
        Err(other) => return Err(other.into()),
    }
    let (tenant_id, dialog_id, message_id) = (channel.tenant_id.clone(), lookup.dialog_id, lookup.message_id);
    let event = match update.status {
        OutStatus::Delivered => Some(DomainEvent::MessageDelivered { tenant_id, dialog_id, message_id }),
        OutStatus::Failed => Some(DomainEvent::MessageFailed {
            tenant_id,
            dialog_id,
            message_id,
            reason: update.reason.clone().unwrap_or_else(|| "the provider reported it undelivered".into()),
        }),
        _ => None,
    };
    if let Some(event) = event
        && let Err(error) = ctx.bus.publish(std::slice::from_ref(&event)).await
    {
        tracing::warn!(%error, "{} not published", event.detail_type());
    }
    Ok(true)
}

/// Keeps a report whose send is not recorded yet, on condition it still is not (else answers the
/// lookup the send wrote meanwhile). The first report kept wins, as the first applied does.
async fn keep_early_report(
    ctx: &Context,
    lookup_key: &Key,
    channel: &ChannelId,
    update: &StatusUpdate,
) -> Result<Option<Item>> {
    let report = EarlyReport { status: update.status, reason: update.reason.clone() };
    let mut item =
        repo::to_item(&report, &repo::early_report_key(channel, &update.provider_message_id), &[])?;
    let expires_at = ctx.clock.now().as_second() + repo::EARLY_REPORT_TTL_SECONDS;
    item.insert("expires_at".into(), Value::from(expires_at));
    let writes = vec![
        Write::Check { key: lookup_key.clone(), condition: Condition::NotExists },
        Write::Put { item, condition: Condition::NotExists },
    ];
    match ctx.store.transact(writes).await {
        Ok(()) => {
            tracing::info!(provider_message_id = %update.provider_message_id, "a delivery report came before its send was recorded; kept");
            Ok(None)
        }
        Err(conflict) if conflict.failed_at(0) => Ok(ctx.store.get(lookup_key).await?),
        Err(StoreError::Conflict { .. }) => Ok(None),
        Err(other) => Err(other.into()),
    }
}
