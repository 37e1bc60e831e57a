//! The e-mail poller: fetches the new mail of every active e-mail channel exactly once and ingests it; and
//! the threading an e-mail reply needs (what the customer's last mail was).
//!
//! - Polling fans out: a scheduled run ([`dispatch`]) hands out one work item per listed mailbox through the
//!   work queue (`ports::work`), and workers poll one mailbox per item ([`poll_one`]), as many at once as
//!   the queue's consumers allow (on AWS the SQS event source's MaximumConcurrency C: C × 60 / T mailboxes a
//!   minute for a poll of T seconds). Every run lists every mailbox, so none waits behind the others.
//! - Items are delivered at least once and may pile up behind slow mailboxes: an item whose mailbox is held
//!   by a poll, or was polled by one that began after the item was handed out, is done at once (two reads,
//!   no IMAP). A run that finds a whole round of items still waiting hands out no more.
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

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Channel, ChannelId, ChannelStatus, DialogId, Message, MessageId, OutStatus, TenantId};
use crate::error::{Error, Result};
use crate::ports::channel::{ChannelSecrets, StatusUpdate};
use crate::ports::mailbox::{Inbox, MailClass, Mailboxes, ParsedMail};
use crate::ports::store::{Condition, Query, SkRange, StoreError, Write};
use crate::ports::work::{Work, WorkError};
use crate::repo;
use crate::usecases::ingest::{IngestOutcome, ingest};
use crate::usecases::{Context, outbox};

/// Mails handled per mailbox and poll; the rest wait for the next poll (every minute).
pub const BATCH: usize = 50;
/// E-mail channels read per page of the list when handing out polls.
const LIST_PAGE: usize = 500;
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
    /// When the last poll that ended without error began (absent in states written before fan-out).
    #[serde(default)]
    polled_at: Option<Timestamp>,
}

/// What one [`dispatch`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DispatchReport {
    /// The mailboxes listed.
    pub mailboxes: usize,
    /// Items handed out: one per mailbox, or none when a whole round was still waiting.
    pub enqueued: usize,
    /// Items waiting in the queue before this run, as the queue counted them.
    pub waiting: usize,
}

/// What became of one mailbox's poll item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    Polled(MailReport),
    /// Nothing to do: another poll holds the mailbox, a poll began after the item was handed out, or the
    /// channel is not an active e-mail channel of that tenant (one that is gone is dropped from the list).
    Skipped,
    /// The mailbox's own trouble (the IMAP server refused the login, is down or slow; the channel changed
    /// while it was polled): logged and left to the next run, a minute later. Not an error, so a queue does
    /// not retry it and its dead-letter queue holds only the deployment's own trouble.
    MailboxFailed(String),
}

/// What became of the mail of one poll of a mailbox.
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

/// Hands out one poll item per listed e-mail channel through the work queue (`ctx.work`), all stamped with
/// this run's time. When the queue already holds at least as many items as there are mailboxes, the last
/// round is still waiting (every mailbox has an item queued) and this run hands out none: the backlog stays
/// one round deep however far the workers fall behind, and every mailbox keeps its place in it. A queue
/// that refuses some items fails the run after the others went out (the next run hands them out again).
pub async fn dispatch(ctx: &Context) -> Result<DispatchReport> {
    if ctx.providers.mailboxes().is_none() {
        return Ok(DispatchReport::default());
    }
    let dispatched_at = ctx.clock.now();
    let mut work = Vec::new();
    let mut page = None;
    loop {
        let query = Query::table(repo::EMAIL_CHANNELS).limit(LIST_PAGE).after(page);
        let found = ctx.store.query(&query).await?;
        for item in found.items {
            let entry = repo::from_item::<repo::EmailChannelEntry>(item)?;
            work.push(Work::PollMailbox {
                tenant_id: entry.tenant_id,
                channel_id: entry.channel_id,
                dispatched_at,
            });
        }
        match found.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    let waiting = ctx.work.waiting().await?;
    let mut report = DispatchReport { mailboxes: work.len(), enqueued: 0, waiting };
    if work.is_empty() || waiting >= work.len() {
        return Ok(report);
    }
    match ctx.work.enqueue(&work).await {
        Ok(()) => report.enqueued = work.len(),
        Err(WorkError::Rejected { failed, total, reason }) => {
            tracing::warn!(failed, total, %reason, "some mailbox polls were not handed out");
            return Err(WorkError::Rejected { failed, total, reason }.into());
        }
        Err(other) => return Err(other.into()),
    }
    Ok(report)
}

/// Polls the mailbox of one work item: `channel` of `tenant`, handed out at `dispatched_at`. With `until`
/// (the invocation's time, `crate::deadline`) it stops fetching at it and saves its progress. Returns at
/// once when the mailbox is held by another poll or was polled by one that began after `dispatched_at`.
/// Errors are the deployment's own trouble (store, secrets, events): worth a retry of the item.
pub async fn poll_one(
    ctx: &Context,
    tenant: &TenantId,
    channel: &ChannelId,
    dispatched_at: Timestamp,
    until: Option<Instant>,
) -> Result<PollOutcome> {
    let Some(mailboxes) = ctx.providers.mailboxes() else {
        tracing::warn!(%channel, "a mailbox poll, but the e-mail module is not configured; skipped");
        return Ok(PollOutcome::Skipped);
    };
    let asked = Asked::Dispatched { tenant, at: dispatched_at };
    match poll(ctx, mailboxes, channel, asked, until).await {
        Ok(Some(mail)) => Ok(PollOutcome::Polled(mail)),
        Ok(None) => Ok(PollOutcome::Skipped),
        Err(error @ (Error::Provider(_) | Error::Conflict(_))) => {
            tracing::warn!(%error, %channel, "mailbox not polled; the next run tries again");
            Ok(PollOutcome::MailboxFailed(error.to_string()))
        }
        Err(other) => Err(other),
    }
}

/// Polls one channel's mailbox now, whenever it was last polled; `None` when there was nothing to poll (not
/// active, held by another poll).
pub async fn poll_channel(
    ctx: &Context,
    mailboxes: &dyn Mailboxes,
    id: &ChannelId,
) -> Result<Option<MailReport>> {
    poll(ctx, mailboxes, id, Asked::Now, None).await
}

/// Who asks for a poll.
#[derive(Clone, Copy)]
enum Asked<'a> {
    /// Directly: poll unless another poll holds the mailbox.
    Now,
    /// A work item: for a channel of `tenant`, needless once a poll began at or after `at`.
    Dispatched { tenant: &'a TenantId, at: Timestamp },
}

async fn poll(
    ctx: &Context,
    mailboxes: &dyn Mailboxes,
    id: &ChannelId,
    asked: Asked<'_>,
    until: Option<Instant>,
) -> Result<Option<MailReport>> {
    let Some(channel) = repo::load_channel(ctx.store.as_ref(), id).await? else {
        forget(ctx, id).await?;
        return Ok(None);
    };
    if let Asked::Dispatched { tenant, .. } = asked
        && channel.tenant_id != *tenant
    {
        tracing::warn!(%tenant, channel = %channel.id, "a poll item names another tenant's channel; ignored");
        return Ok(None);
    }
    match channel.status {
        ChannelStatus::Active => {}
        ChannelStatus::Pending => return Ok(None),
        ChannelStatus::Disconnected | ChannelStatus::Displaced | ChannelStatus::ReauthorizationRequired => {
            forget(ctx, id).await?;
            return Ok(None);
        }
    }
    let not_before = match asked {
        Asked::Now => None,
        Asked::Dispatched { at, .. } => Some(at),
    };
    let Claimed::Taken { mut state, token, began } = claim(ctx, &channel.id, not_before).await? else {
        return Ok(None);
    };
    // The progress is saved whatever the outcome: a failure keeps what was done before it.
    let outcome = poll_claimed(ctx, mailboxes, &channel, &mut state, until).await;
    if matches!(outcome, Ok(Some(_))) {
        state.polled_at = Some(began);
    }
    release(ctx, &channel.id, &token, state).await?;
    outcome
}

/// The poll itself, on a mailbox this poll holds: `None` when the channel has no credentials.
async fn poll_claimed(
    ctx: &Context,
    mailboxes: &dyn Mailboxes,
    channel: &Channel,
    state: &mut SyncState,
    until: Option<Instant>,
) -> Result<Option<MailReport>> {
    let Some(secrets) = ctx.channel_secrets(&channel.tenant_id, &channel.id).await? else {
        tracing::warn!(channel = %channel.id, "an active e-mail channel without credentials");
        return Ok(None);
    };
    let outcome = sync(ctx, mailboxes, channel, &secrets, state, until).await;
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

/// What [`claim`] got.
enum Claimed {
    /// The mailbox is this poll's, until it is released; `began` is the claim's time.
    Taken { state: SyncState, token: String, began: Timestamp },
    /// Another poll holds it, or one began at or after `not_before`.
    Busy,
}

/// Takes the mailbox for one poll, unless another poll holds it or (with `not_before`) a poll that began
/// at or after that time has already ended without error.
async fn claim(ctx: &Context, channel: &ChannelId, not_before: Option<Timestamp>) -> Result<Claimed> {
    let key = repo::mailbox_sync_key(channel);
    let now = ctx.clock.now();
    let (mut state, condition) = match ctx.store.get(&key).await? {
        None => (SyncState::default(), Condition::NotExists),
        Some(item) => {
            let state: SyncState = repo::from_item(item)?;
            if state.claimed_until.is_some_and(|until| until > now) {
                return Ok(Claimed::Busy);
            }
            if not_before.zip(state.polled_at).is_some_and(|(asked, polled)| polled >= asked) {
                return Ok(Claimed::Busy);
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
        Ok(()) => Ok(Claimed::Taken { state, token, began: now }),
        Err(StoreError::Conflict { .. }) => Ok(Claimed::Busy),
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
                outbox::apply_status(ctx, channel, &update).await?;
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use super::*;
    use crate::adapters::embedded::{FileSecretStore, InProcessBus, InProcessWorkQueue, RedbStore};
    use crate::adapters::empty_mailboxes::EmptyMailboxes;
    use crate::domain::{Account, ChannelSettings, Provider};
    use crate::ports::clock::{Clock, ManualClock};
    use crate::usecases::Providers;

    /// 2026-01-01T12:00:00Z.
    const T0: i64 = 1_767_268_800;

    struct World {
        ctx: Context,
        clock: Arc<ManualClock>,
        mailboxes: Arc<EmptyMailboxes>,
        queue: Arc<InProcessWorkQueue>,
        _dir: tempfile::TempDir,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(Timestamp::from_second(T0).expect("valid")));
        let mailboxes = Arc::new(EmptyMailboxes::new());
        let queue = Arc::new(InProcessWorkQueue::new());
        let ctx = Context::new(
            Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store")),
            Arc::new(FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets")),
            Arc::new(InProcessBus::new(16)),
            clock.clone(),
            Providers::default().with_mailboxes(mailboxes.clone()),
            "https://example.test",
        )
        .with_work_queue(queue.clone());
        World { ctx, clock, mailboxes, queue, _dir: dir }
    }

    impl World {
        /// An active e-mail channel of a new tenant, listed for the poller, its mailbox named `address`.
        async fn mailbox(&self, address: &str) -> Channel {
            let now = self.clock.now();
            let channel = Channel {
                id: ChannelId::generate(),
                tenant_id: TenantId::generate(),
                provider: Provider::Email,
                name: address.into(),
                account: Account { id: address.into(), name: address.into() },
                status: ChannelStatus::Active,
                settings: ChannelSettings::default(),
                webhook_url: String::new(),
                credentials_masked: BTreeMap::new(),
                displaced_by: None,
                created_at: now,
                updated_at: now,
            };
            let mut writes = vec![Write::Put {
                item: repo::channel_item(&channel).expect("item"),
                condition: Condition::Always,
            }];
            writes.extend(repo::email_channel_writes(&channel).expect("listed"));
            self.ctx.store.transact(writes).await.expect("saved");
            self.ctx
                .put_channel_secrets(&channel.tenant_id, &channel.id, &EmptyMailboxes::secrets(address))
                .await
                .expect("credentials");
            channel
        }

        async fn poll(&self, channel: &Channel, dispatched_at: Timestamp) -> PollOutcome {
            poll_one(&self.ctx, &channel.tenant_id, &channel.id, dispatched_at, None).await.expect("no error")
        }

        fn logins(&self, address: &str) -> usize {
            self.mailboxes.logins().get(address).copied().unwrap_or(0)
        }
    }

    #[tokio::test]
    async fn dispatch_hands_out_one_item_per_listed_mailbox() {
        let world = world();
        let mut expected = BTreeSet::new();
        for address in ["a@example.test", "b@example.test", "c@example.test"] {
            let channel = world.mailbox(address).await;
            expected.insert((channel.tenant_id, channel.id));
        }
        let report = dispatch(&world.ctx).await.expect("dispatched");
        assert_eq!(report, DispatchReport { mailboxes: 3, enqueued: 3, waiting: 0 });
        let mut handed_out = BTreeSet::new();
        while let Some(work) = world.queue.take() {
            let Work::PollMailbox { tenant_id, channel_id, dispatched_at } = work else {
                panic!("only polls are handed out here: {work:?}");
            };
            assert_eq!(dispatched_at, world.clock.now());
            assert!(handed_out.insert((tenant_id, channel_id)), "a mailbox handed out twice");
        }
        assert_eq!(handed_out, expected);
        assert_eq!(world.mailboxes.total_logins(), 0, "handing out polls polls nothing");
    }

    #[tokio::test]
    async fn a_whole_round_still_waiting_gets_no_more() {
        let world = world();
        for address in ["a@example.test", "b@example.test"] {
            world.mailbox(address).await;
        }
        assert_eq!(dispatch(&world.ctx).await.expect("first").enqueued, 2);
        world.clock.advance(SignedDuration::from_mins(1));
        let second = dispatch(&world.ctx).await.expect("second");
        assert_eq!(second, DispatchReport { mailboxes: 2, enqueued: 0, waiting: 2 });
        // One taken (being polled): the round is no longer whole, so the next run hands out every mailbox.
        assert!(world.queue.take().is_some());
        world.clock.advance(SignedDuration::from_mins(1));
        assert_eq!(dispatch(&world.ctx).await.expect("third").enqueued, 2);
    }

    #[tokio::test]
    async fn poll_one_polls_its_mailbox_only() {
        let world = world();
        let a = world.mailbox("a@example.test").await;
        let b = world.mailbox("b@example.test").await;
        let outcome = world.poll(&b, world.clock.now()).await;
        assert_eq!(outcome, PollOutcome::Polled(MailReport::default()));
        assert_eq!(world.mailboxes.logins(), BTreeMap::from([("b@example.test".to_owned(), 1)]));
        // Another tenant's id with this channel, a round later: not polled.
        world.clock.advance(SignedDuration::from_mins(1));
        let forged = poll_one(&world.ctx, &a.tenant_id, &b.id, world.clock.now(), None).await.expect("ok");
        assert_eq!(forged, PollOutcome::Skipped);
        assert_eq!(world.mailboxes.total_logins(), 1);
    }

    #[tokio::test]
    async fn a_held_mailbox_or_a_poll_since_the_dispatch_means_no_login() {
        let world = world();
        let a = world.mailbox("a@example.test").await;
        let first_round = world.clock.now();
        assert!(matches!(world.poll(&a, first_round).await, PollOutcome::Polled(_)));
        // A duplicate of the same round, also once the clock moved on: the poll above began after it.
        assert_eq!(world.poll(&a, first_round).await, PollOutcome::Skipped);
        world.clock.advance(SignedDuration::from_secs(30));
        assert_eq!(world.poll(&a, first_round).await, PollOutcome::Skipped);
        assert_eq!(world.logins("a@example.test"), 1);
        // The next round's item polls again...
        world.clock.advance(SignedDuration::from_secs(30));
        let second_round = world.clock.now();
        assert!(matches!(world.poll(&a, second_round).await, PollOutcome::Polled(_)));
        assert_eq!(world.logins("a@example.test"), 2);
        // ...but not while another poll holds the mailbox.
        world.clock.advance(SignedDuration::from_mins(1));
        let Claimed::Taken { .. } = claim(&world.ctx, &a.id, None).await.expect("claimed") else {
            panic!("the mailbox was free");
        };
        assert_eq!(world.poll(&a, world.clock.now()).await, PollOutcome::Skipped);
        assert_eq!(world.logins("a@example.test"), 2);
    }

    #[tokio::test]
    async fn a_mailbox_that_fails_is_no_error_and_its_next_item_polls_again() {
        let world = world();
        let a = world.mailbox("a@example.test").await;
        world.mailboxes.take_down("a@example.test");
        let round = world.clock.now();
        assert!(matches!(world.poll(&a, round).await, PollOutcome::MailboxFailed(_)));
        // The failed poll released the mailbox and did not count as done: a retry of the item polls.
        assert!(matches!(world.poll(&a, round).await, PollOutcome::MailboxFailed(_)));
        assert_eq!(world.logins("a@example.test"), 2);
    }

    #[tokio::test]
    async fn a_gone_channel_is_dropped_from_the_list() {
        let world = world();
        let a = world.mailbox("a@example.test").await;
        world
            .ctx
            .store
            .transact(vec![Write::Delete { key: repo::channel_key(&a.id), condition: Condition::Always }])
            .await
            .expect("deleted");
        assert_eq!(world.poll(&a, world.clock.now()).await, PollOutcome::Skipped);
        assert_eq!(dispatch(&world.ctx).await.expect("dispatched").mailboxes, 0);
        assert_eq!(world.mailboxes.total_logins(), 0);
    }
}
