//! The e-mail poller: fetches the new mail of every active e-mail channel exactly once and ingests it; and
//! the threading an e-mail reply needs (what the customer's last mail was).
//!
//! - The channels come from a small index partition (`EMAIL_CHANNELS`), written when an e-mail channel is
//!   created and dropped here once the channel is gone, displaced or disconnected: no table scan.
//! - Per mailbox a sync state keeps UIDVALIDITY and the last UID handled. A poll takes a lease on it (a
//!   conditional write), fetches the UIDs above the last one, ingests them in order and moves the last UID
//!   on. With no state yet (a new channel) or a changed UIDVALIDITY, it resyncs by arrival date instead:
//!   what arrived since the channel was connected, or since the last mail seen. Ingest's delivery record,
//!   keyed by the Message-ID (a digest of the mail without one), drops whatever a resync fetches again.
//! - "One open dialog per customer and channel" (docs/ARCHITECTURE.md invariant 2) holds for e-mail too: the
//!   customer is the address replies go to, and a mail from a customer with an open dialog joins it, a
//!   reply in the thread or not (a new subject is a new topic in the same conversation, as in the
//!   messengers); a customer without an open dialog opens one. Threading decides for automatic mail:
//!   auto-replies and list mail join the open dialog only when they answer one of its messages, and never
//!   open a dialog. Bounces mark our undelivered message failed. Mail from our own address is ignored.

use std::time::Instant;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Channel, ChannelId, ChannelStatus, DialogId, Message, MessageId, OutStatus};
use crate::error::{Error, Result};
use crate::ports::channel::{ChannelSecrets, StatusUpdate};
use crate::ports::mailbox::{Inbox, MailClass, Mailboxes, ParsedMail};
use crate::ports::store::{Condition, Query, SkRange, StoreError, Write};
use crate::repo;
use crate::usecases::ingest::{IngestOutcome, ingest};
use crate::usecases::{Context, outbox};

/// Mails handled per mailbox and poll; the rest wait for the next poll (every minute).
pub const BATCH: usize = 50;
/// Mailboxes polled at once.
const CONCURRENCY: usize = 4;
/// A poll stops fetching from one mailbox after this long and keeps the rest for the next poll.
const MAILBOX_BUDGET: std::time::Duration = std::time::Duration::from_secs(90);
/// How long a poll holds a mailbox: longer than the budget plus one slow IMAP command.
const LEASE: SignedDuration = SignedDuration::from_mins(5);
/// A new channel takes the mail that arrived shortly before it was connected (clock skew, the minute
/// between connecting and the first poll).
const FIRST_SYNC_SLACK: SignedDuration = SignedDuration::from_mins(10);
/// After a UIDVALIDITY change the resync starts this long before the last mail seen.
const RESYNC_SLACK: SignedDuration = SignedDuration::from_hours(24);
/// Messages of a dialog looked at to decide whether an automatic mail answers one of them.
const THREAD_LOOKBACK: usize = 500;

/// What the poller knows of one mailbox.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SyncState {
    /// Bumped by every write: the condition of the next one.
    version: u64,
    uid_validity: Option<u32>,
    last_uid: u32,
    /// The newest arrival (INTERNALDATE) handled: where a resync after a UIDVALIDITY change starts.
    last_arrival: Option<Timestamp>,
    /// Set while a poll holds the mailbox.
    claim: Option<String>,
    claimed_until: Option<Timestamp>,
}

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    pub mailboxes: usize,
    pub failed_mailboxes: usize,
    pub mail: MailReport,
}

/// What became of the mail of one or more mailboxes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MailReport {
    pub fetched: usize,
    pub stored: usize,
    pub opened_dialogs: usize,
    pub duplicates: usize,
    /// Auto-replies and list mail that answer nothing of an open dialog, our own mail, empty mail.
    pub ignored: usize,
    pub bounces: usize,
}

impl MailReport {
    fn add(&mut self, other: MailReport) {
        self.fetched += other.fetched;
        self.stored += other.stored;
        self.opened_dialogs += other.opened_dialogs;
        self.duplicates += other.duplicates;
        self.ignored += other.ignored;
        self.bounces += other.bounces;
    }
}

/// Fetches and ingests the new mail of every active e-mail channel. A mailbox that fails is logged and
/// counted; the others are still polled. With `until` (the invocation's time, `crate::deadline`), no
/// mailbox is started after it and each one stops fetching at it, saving its progress: the rest waits for
/// the next poll.
pub async fn poll_mailboxes(ctx: &Context, until: Option<Instant>) -> Result<PollReport> {
    let Some(mailboxes) = ctx.providers.mailboxes() else {
        return Ok(PollReport::default());
    };
    let mut channels = Vec::new();
    let mut page = None;
    loop {
        let query = Query::table(repo::EMAIL_CHANNELS).limit(500).after(page);
        let found = ctx.store.query(&query).await?;
        for item in found.items {
            channels.push(repo::from_item::<repo::EmailChannelEntry>(item)?.channel_id);
        }
        match found.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    let mut report = PollReport::default();
    let mut polls = futures::stream::iter(channels)
        .map(|channel| async move {
            if until.is_some_and(|until| Instant::now() >= until) {
                return (Ok(None), channel);
            }
            (poll_channel_until(ctx, mailboxes, &channel, until).await, channel)
        })
        .buffer_unordered(CONCURRENCY);
    while let Some((outcome, channel)) = polls.next().await {
        match outcome {
            Ok(Some(mail)) => {
                report.mailboxes += 1;
                report.mail.add(mail);
            }
            Ok(None) => {}
            Err(error) => {
                report.failed_mailboxes += 1;
                tracing::warn!(%error, %channel, "mailbox not polled");
            }
        }
    }
    Ok(report)
}

/// Polls one channel's mailbox; `None` when there was nothing to poll (not active, held by another poll).
pub async fn poll_channel(
    ctx: &Context,
    mailboxes: &dyn Mailboxes,
    id: &ChannelId,
) -> Result<Option<MailReport>> {
    poll_channel_until(ctx, mailboxes, id, None).await
}

async fn poll_channel_until(
    ctx: &Context,
    mailboxes: &dyn Mailboxes,
    id: &ChannelId,
    until: Option<Instant>,
) -> Result<Option<MailReport>> {
    let Some(channel) = repo::load_channel(ctx.store.as_ref(), id).await? else {
        forget(ctx, id).await?;
        return Ok(None);
    };
    match channel.status {
        ChannelStatus::Active => {}
        ChannelStatus::Pending => return Ok(None),
        ChannelStatus::Disconnected | ChannelStatus::Displaced => {
            forget(ctx, id).await?;
            return Ok(None);
        }
    }
    let Some(secrets) = ctx.channel_secrets(&channel.tenant_id, &channel.id).await? else {
        tracing::warn!(channel = %channel.id, "an active e-mail channel without credentials");
        return Ok(None);
    };
    let Some((mut state, token)) = claim(ctx, &channel.id).await? else {
        return Ok(None);
    };
    // The progress is saved whatever the outcome: a failure keeps what was done before it.
    let outcome = sync(ctx, mailboxes, &channel, &secrets, &mut state, until).await;
    release(ctx, &channel.id, &token, state).await?;
    // A token endpoint that rotates refresh tokens (Microsoft) gave a new one: keep it.
    if let Some(rotated) = mailboxes.rotated_secrets(&secrets)
        && let Err(error) = ctx.put_channel_secrets(&channel.tenant_id, &channel.id, &rotated).await
    {
        tracing::warn!(%error, channel = %channel.id, "the rotated refresh token was not kept");
    }
    outcome.map(Some)
}

/// Stops polling a channel that is gone: its list entry and sync state go.
async fn forget(ctx: &Context, channel: &ChannelId) -> Result<()> {
    let writes = vec![
        Write::Delete { key: repo::email_channel_key(channel), condition: Condition::Always },
        Write::Delete { key: repo::mailbox_sync_key(channel), condition: Condition::Always },
    ];
    ctx.store.transact(writes).await?;
    Ok(())
}

/// Takes the mailbox for one poll, or `None` while another poll holds it.
async fn claim(ctx: &Context, channel: &ChannelId) -> Result<Option<(SyncState, String)>> {
    let key = repo::mailbox_sync_key(channel);
    let now = ctx.clock.now();
    let (mut state, condition) = match ctx.store.get(&key).await? {
        None => (SyncState::default(), Condition::NotExists),
        Some(item) => {
            let state: SyncState = repo::from_item(item)?;
            if state.claimed_until.is_some_and(|until| until > now) {
                return Ok(None);
            }
            let condition = Condition::Equals("version".into(), Value::from(state.version));
            (state, condition)
        }
    };
    let token = uuid::Uuid::now_v7().to_string();
    state.version += 1;
    state.claim = Some(token.clone());
    state.claimed_until = Some(now + LEASE);
    let item = repo::to_item(&state, &key, &[])?;
    match ctx.store.transact(vec![Write::Put { item, condition }]).await {
        Ok(()) => Ok(Some((state, token))),
        Err(StoreError::Conflict { .. }) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// Saves the progress and lets the mailbox go, on condition the claim is still ours.
async fn release(ctx: &Context, channel: &ChannelId, token: &str, mut state: SyncState) -> Result<()> {
    state.version += 1;
    state.claim = None;
    state.claimed_until = None;
    let item = repo::to_item(&state, &repo::mailbox_sync_key(channel), &[])?;
    let condition = Condition::Equals("claim".into(), Value::String(token.to_owned()));
    match ctx.store.transact(vec![Write::Put { item, condition }]).await {
        Ok(()) => Ok(()),
        // The lease ran out and another poll took over: it redoes what we did not record (ingest drops
        // what we did).
        Err(StoreError::Conflict { .. }) => {
            tracing::warn!(%channel, "mailbox lease lost before the poll finished");
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

/// Fetches what is new since `state`, ingests it in UID order and records the progress in `state` as it
/// goes.
async fn sync(
    ctx: &Context,
    mailboxes: &dyn Mailboxes,
    channel: &Channel,
    secrets: &ChannelSecrets,
    state: &mut SyncState,
    until: Option<Instant>,
) -> Result<MailReport> {
    let mut inbox = mailboxes.open(secrets).await?;
    let outcome = sync_inbox(ctx, channel, inbox.as_mut(), state, until).await;
    inbox.logout().await;
    outcome
}

async fn sync_inbox(
    ctx: &Context,
    channel: &Channel,
    inbox: &mut dyn Inbox,
    state: &mut SyncState,
    until: Option<Instant>,
) -> Result<MailReport> {
    let uid_validity = inbox.uid_validity();
    let (candidates, floor) = if state.uid_validity == Some(uid_validity) {
        (inbox.uids_after(state.last_uid).await?, state.last_uid)
    } else {
        let since = match (state.uid_validity, state.last_arrival) {
            (Some(_), Some(last)) => last - RESYNC_SLACK,
            _ => channel.created_at - FIRST_SYNC_SLACK,
        };
        if state.uid_validity.is_some() {
            tracing::info!(channel = %channel.id, uid_validity, "UIDVALIDITY changed; resyncing by date");
        }
        let candidates = inbox.uids_since(since).await?;
        // Older mail below the newest UID now is not new to the channel.
        let floor = match inbox.uid_next() {
            Some(next) => next.saturating_sub(1),
            None => inbox.uids_after(0).await?.last().copied().unwrap_or(0),
        };
        state.uid_validity = Some(uid_validity);
        state.last_uid = 0;
        (candidates, floor)
    };
    let started = Instant::now();
    let stop = until.map_or(started + MAILBOX_BUDGET, |until| until.min(started + MAILBOX_BUDGET));
    let mut report = MailReport::default();
    let mut handled_all = true;
    for (index, uid) in candidates.iter().copied().enumerate() {
        // Where the next poll starts when this one stops at `uid` (after a resync too: never from UID 1
        // of the whole mailbox).
        let resume_before =
            |state: &mut SyncState| state.last_uid = state.last_uid.max(uid.saturating_sub(1));
        if index >= BATCH || Instant::now() >= stop {
            resume_before(state);
            handled_all = false;
            break;
        }
        let fetched = match inbox.fetch(uid).await {
            Ok(Some(fetched)) => fetched,
            // Expunged meanwhile.
            Ok(None) => {
                state.last_uid = state.last_uid.max(uid);
                continue;
            }
            Err(error) => {
                resume_before(state);
                return Err(error.into());
            }
        };
        report.fetched += 1;
        match fetched.mail {
            Some(parsed) => {
                let handled =
                    handle_mail(ctx, channel, inbox.address(), parsed, fetched.arrived, &mut report).await;
                if let Err(error) = handled {
                    resume_before(state);
                    return Err(error);
                }
            }
            None => {
                tracing::warn!(channel = %channel.id, uid, "a mail without readable headers; skipped");
                report.ignored += 1;
            }
        }
        state.last_uid = state.last_uid.max(uid);
        if let Some(arrived) = fetched.arrived {
            state.last_arrival = Some(state.last_arrival.map_or(arrived, |last| last.max(arrived)));
        }
    }
    if handled_all {
        state.last_uid = state.last_uid.max(floor);
    }
    Ok(report)
}

/// One parsed mail: ingested, ignored, or applied as a bounce.
async fn handle_mail(
    ctx: &Context,
    channel: &Channel,
    own_address: &str,
    mail: ParsedMail,
    arrived: Option<Timestamp>,
    report: &mut MailReport,
) -> Result<()> {
    if mail.from.as_deref() == Some(own_address) {
        // Our own mail (a copy of a reply, a loop through a forwarding rule) is no customer's.
        report.ignored += 1;
        return Ok(());
    }
    match mail.class {
        MailClass::Bounce => {
            report.bounces += 1;
            let reason = format!(
                "the mail bounced: {}",
                mail.bounce_reason.as_deref().unwrap_or("the recipient's server refused it")
            );
            for id in &mail.bounced {
                let update = StatusUpdate {
                    provider_message_id: id.clone(),
                    status: OutStatus::Failed,
                    reason: Some(reason.clone()),
                };
                outbox::apply_status(ctx, &channel.id, &update).await?;
            }
            return Ok(());
        }
        MailClass::AutoReply | MailClass::Bulk => {
            if !answers_open_dialog(ctx, channel, &mail).await? {
                report.ignored += 1;
                return Ok(());
            }
        }
        MailClass::Personal => {}
    }
    let Some(mut inbound) = mail.inbound() else {
        report.ignored += 1;
        return Ok(());
    };
    inbound.sent_at = inbound.sent_at.or(arrived);
    let stored = match ingest(ctx, channel, &inbound).await? {
        IngestOutcome::Stored { dialog_id, message_id, opened_dialog } => {
            report.stored += 1;
            report.opened_dialogs += usize::from(opened_dialog);
            Some((dialog_id, message_id))
        }
        IngestOutcome::Duplicate => {
            report.duplicates += 1;
            // Stored by an earlier poll that may have stopped before recording the thread: record it again.
            stored_delivery(ctx, &channel.id, &inbound.dedup_key).await?
        }
        IngestOutcome::ChannelChanged => {
            return Err(Error::Conflict(
                "the channel changed while polling; the next poll takes the mail".into(),
            ));
        }
    };
    // Replies thread under the customer's own mail, not under an out-of-office notice.
    if let (Some((dialog_id, message_id)), MailClass::Personal) = (stored, mail.class) {
        record_thread(ctx, channel, &dialog_id, &message_id, &mail).await?;
    }
    Ok(())
}

/// Where an earlier ingest stored a delivery.
async fn stored_delivery(
    ctx: &Context,
    channel: &ChannelId,
    dedup_key: &str,
) -> Result<Option<(DialogId, MessageId)>> {
    let Some(item) = ctx.store.get(&repo::delivery_key(channel, dedup_key)).await? else {
        return Ok(None);
    };
    let id = |name: &str| item.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(id("dialog_id")
        .and_then(|d| DialogId::parse(&d))
        .zip(id("message_id").and_then(|m| MessageId::parse(&m))))
}

async fn record_thread(
    ctx: &Context,
    channel: &Channel,
    dialog: &DialogId,
    message: &MessageId,
    mail: &ParsedMail,
) -> Result<()> {
    let Some(mail_id) = mail.message_id.clone() else {
        return Ok(());
    };
    let references =
        if mail.references.is_empty() { mail.in_reply_to.clone() } else { mail.references.clone() };
    let parts = repo::ThreadRecordParts { mail_id, subject: mail.subject.clone(), references };
    let write = repo::email_thread_write(
        &channel.tenant_id,
        dialog,
        message,
        parts,
        ctx.message_retention,
        ctx.clock.now(),
    )?;
    ctx.store.transact(vec![write]).await?;
    Ok(())
}

/// Whether an automatic mail answers a message of its sender's open dialog.
async fn answers_open_dialog(ctx: &Context, channel: &Channel, mail: &ParsedMail) -> Result<bool> {
    let parents = mail.parents();
    let Some(customer) = mail.customer.as_ref().filter(|_| !parents.is_empty()) else {
        return Ok(false);
    };
    let pointer = ctx.store.get(&repo::open_dialog_key(&channel.id, &customer.id)).await?;
    let Some(dialog) = pointer
        .as_ref()
        .and_then(|item| item.get("dialog_id"))
        .and_then(Value::as_str)
        .and_then(DialogId::parse)
    else {
        return Ok(false);
    };
    let query = Query::table(repo::messages_of(&dialog))
        .range(SkRange::BeginsWith(repo::MESSAGE_SK_PREFIX.into()))
        .descending()
        .limit(THREAD_LOOKBACK);
    for item in ctx.store.query(&query).await?.items {
        let message: Message = repo::from_item(item)?;
        if message.provider_message_id.as_deref().is_some_and(|id| parents.contains(&id)) {
            return Ok(true);
        }
    }
    Ok(false)
}
