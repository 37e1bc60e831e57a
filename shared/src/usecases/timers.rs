//! Timers of a dialog: the pending auto-replies and the inactivity close (docs/ARCHITECTURE.md invariants 4
//! and 5).
//!
//! Each timer is one item beside its dialog (`DLG#{dialog}` / `TIMER#AUTOREPLY`, `TIMER#CLOSE`) carrying
//! its due time in the sparse due index (gsi3, `DUE#{kind}#{shard}` / `{due millis}#{dialog}`). A run
//! reads only the due part of the index, never the table, and drains it (`usecases::due`): every shard
//! to its end or until the run's stop time. Whoever acts on a timer does so in one transaction conditioned
//! on the due key it read, so two overlapping runs (or a run racing an employee's reply) act once: the
//! loser's condition fails and it writes nothing.
//!
//! The close deadline is lazy: the close timer is armed when the dialog opens (at `auto_close` after it)
//! and no message rewrites it; messages only move the dialog's `last_activity_at`. When the timer fires,
//! the dialog idle for the channel's current limit is closed (conditioned on its last activity as read, so
//! a message racing the close wins); one active since is re-armed at `last_activity_at` + limit. A limit
//! made longer is so honoured at the next firing. A limit made shorter would let the timers armed under the
//! longer one fire late, so the change (`channels::update_channel`) puts a rescan among the close timers:
//! the close job walks the tenant's open dialogs of that channel (gsi2, a page at a time, across runs)
//! and brings each timer forward to `last_activity_at` + the new limit, arming one where a dialog has none.
//! A dialog whose status changes during the walk may be missed and keep its later deadline: it still
//! closes, late. `auto_close` cannot be switched off (at least one hour, `domain::settings`); a dialog whose
//! channel is gone counts as limit 0 and closes. Dialogs are never reopened; code that reopens one must arm
//! its close timer (`repo::close_timer_write`) in the same transaction.

use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use jiff::Timestamp;
use serde_json::Value;

use crate::domain::{Channel, Dialog, DialogStatus, Message};
use crate::error::Result;
use crate::ports::store::{Condition, Index, Item, Query, StoreError, Write};
use crate::repo;
use crate::usecases::{Context, dialogs, due, hours, outbox};

#[cfg(test)]
mod tests;

pub use crate::repo::TIMER_SHARDS as SHARDS;

/// Timers one run acts on at once per shard: an auto-reply is a provider's HTTP call, so a run keeps
/// `due::SHARDS_AT_ONCE` x this many in flight.
pub const ITEMS_AT_ONCE: usize = 16;

/// A due timer as the index showed it: the timer and the due key to condition on.
struct Due {
    timer: repo::Timer,
    due_key: Value,
}

impl Due {
    fn read(item: Item) -> Result<Self> {
        let due_key = item.get(Index::Gsi3.sk_attr()).cloned().unwrap_or(Value::Null);
        Ok(Due { timer: repo::from_item(item)?, due_key })
    }
}

fn partitions(kind: repo::TimerKind) -> Vec<String> {
    (0..SHARDS).map(|shard| repo::timer_due_pk(kind, shard)).collect()
}

fn conditioned_on(due: &Due) -> Condition {
    Condition::Equals(Index::Gsi3.sk_attr().into(), due.due_key.clone())
}

/// What one auto-reply run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AutoReplyTick {
    pub sent: usize,
    /// Timers another run or a reply got to first.
    pub lost_races: usize,
    /// Sequences ended without sending (dialog closed, off-hours without auto-replies, chatbot in charge).
    pub dropped: usize,
    /// Timers that failed (logged); they stay due for the next run.
    pub failed: usize,
    /// Timers of dialogs not stored (yet): passed over within `due::UNBORN_GRACE`, then dropped.
    pub unborn: usize,
    /// The run stopped at its stop time before everything due was read: the rest waits for the next run.
    pub left_due: bool,
}

/// What became of one due auto-reply timer.
enum Replying {
    Sent,
    Dropped,
    /// Its dialog is not stored (yet), and the timer is within `due::UNBORN_GRACE`: left due.
    Unborn,
}

/// Sends every due auto-reply once, in order: every shard to its end, or until the run's stop time.
pub async fn send_due_auto_replies(ctx: &Context, run: due::Run) -> Result<AutoReplyTick> {
    let now = ctx.clock.now();
    let partitions = partitions(repo::TimerKind::AutoReply);
    let act = |item| {
        async move {
            let due = Due::read(item)?;
            send_one_auto_reply(ctx, &due, now).await.inspect_err(|error| {
                if !matches!(error, crate::Error::Conflict(_)) {
                    tracing::error!(%error, dialog = %due.timer.dialog_id, "auto-reply failed");
                }
            })
        }
        .boxed()
    };
    let drained = due::drain(ctx.store.as_ref(), partitions, now, run, ITEMS_AT_ONCE, act).await?;
    let mut tick = AutoReplyTick { left_due: drained.left_due, ..AutoReplyTick::default() };
    for outcome in drained.outcomes {
        match outcome {
            Ok(Replying::Sent) => tick.sent += 1,
            Ok(Replying::Dropped) => tick.dropped += 1,
            Ok(Replying::Unborn) => tick.unborn += 1,
            Err(crate::Error::Conflict(_)) => tick.lost_races += 1,
            Err(_) => tick.failed += 1,
        }
    }
    Ok(tick)
}

async fn send_one_auto_reply(ctx: &Context, due: &Due, now: Timestamp) -> Result<Replying> {
    let timer = &due.timer;
    let drop_timer = || Write::Delete {
        key: repo::timer_key(&timer.dialog_id, repo::TimerKind::AutoReply),
        condition: conditioned_on(due),
    };
    let Some(dialog) = repo::load_dialog(ctx.store.as_ref(), &timer.dialog_id).await? else {
        return drop_unless_unborn(ctx, due, drop_timer(), now).await.map(|unborn| match unborn {
            true => Replying::Unborn,
            false => Replying::Dropped,
        });
    };
    let Some(channel) = repo::load_channel(ctx.store.as_ref(), &timer.channel_id).await? else {
        ignore_conflict(ctx.store.transact(vec![drop_timer()]).await)?;
        return Ok(Replying::Dropped);
    };
    let reply = channel.settings.auto_replies.get(timer.next);
    // A dialog a chatbot holds gets no auto-replies: the chatbot answers (seed: the chatbot or people,
    // never both); the sequence ends, and people who take the dialog over answer it themselves.
    let allowed = !dialog.is_closed()
        && dialog.chatbot_id.is_none()
        && channel.is_active()
        && (hours::is_open(ctx, &channel.tenant_id, now).await? || channel.settings.off_hours.auto_replies);
    let Some(reply) = reply.filter(|_| allowed) else {
        ignore_conflict(ctx.store.transact(vec![drop_timer()]).await)?;
        return Ok(Replying::Dropped);
    };
    let advance = match (channel.settings.auto_replies.get(timer.next + 1), timer.anchor) {
        (Some(following), Some(anchor)) => {
            let next = repo::Timer { next: timer.next + 1, ..timer.clone() };
            repo::timer_put(
                repo::TimerKind::AutoReply,
                &next,
                anchor + repo::delay(following.delay_seconds),
                conditioned_on(due),
            )?
        }
        _ => drop_timer(),
    };
    let message = Message::outbound(&dialog, reply.text.clone(), Vec::new(), None, now).sent_automatically();
    outbox::send_in_dialog(ctx, &dialog, message, vec![advance]).await?;
    Ok(Replying::Sent)
}

/// A timer whose dialog is not stored: left due while the dialog may still be on its way (ingest writes
/// the timers first, `due::UNBORN_GRACE`), removed after. Answers whether it was left.
async fn drop_unless_unborn(ctx: &Context, due: &Due, drop_timer: Write, now: Timestamp) -> Result<bool> {
    if !due::is_orphan(due.due_key.as_str(), now) {
        return Ok(true);
    }
    ignore_conflict(ctx.store.transact(vec![drop_timer]).await)?;
    Ok(false)
}

fn ignore_conflict(result: std::result::Result<(), StoreError>) -> Result<()> {
    match result {
        Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// What one inactivity-close run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CloseTick {
    pub closed: usize,
    /// Timers of dialogs active since they were armed, moved to `last_activity_at` + the limit.
    pub rearmed: usize,
    /// Timers of dialogs already closed or gone, removed.
    pub dropped: usize,
    /// Timers another run, or a message, got to first.
    pub lost_races: usize,
    /// Channels' rescans worked on (after a shorter `auto_close`).
    pub rescans: usize,
    /// Timers that failed (logged); they stay due for the next run.
    pub failed: usize,
    /// Timers of dialogs not stored (yet): passed over within `due::UNBORN_GRACE`, then dropped.
    pub unborn: usize,
    /// The run stopped at its stop time before everything due was read: the rest waits for the next run.
    pub left_due: bool,
}

/// What became of one due close item.
enum Closing {
    Closed,
    Rearmed,
    Dropped,
    Rescanned,
    Unborn,
}

/// Closes every dialog idle past its channel's limit and re-arms the timers of the others: every shard to
/// its end, or until the run's stop time.
pub async fn close_inactive_dialogs(ctx: &Context, run: due::Run) -> Result<CloseTick> {
    let now = ctx.clock.now();
    let partitions = partitions(repo::TimerKind::Close);
    let act = |item: Item| {
        async move {
            let outcome = match repo::is_close_rescan(&item) {
                true => rescan(ctx, item, run.until).await,
                false => match Due::read(item) {
                    Ok(due) => close_one(ctx, &due, now).await,
                    Err(error) => Err(error),
                },
            };
            if let Err(error) = &outcome
                && !matches!(error, crate::Error::Conflict(_))
            {
                tracing::error!(%error, "inactivity close failed");
            }
            outcome
        }
        .boxed()
    };
    let drained = due::drain(ctx.store.as_ref(), partitions, now, run, ITEMS_AT_ONCE, act).await?;
    let mut tick = CloseTick { left_due: drained.left_due, ..CloseTick::default() };
    for outcome in drained.outcomes {
        match outcome {
            Ok(Closing::Closed) => tick.closed += 1,
            Ok(Closing::Rearmed) => tick.rearmed += 1,
            Ok(Closing::Dropped) => tick.dropped += 1,
            Ok(Closing::Rescanned) => tick.rescans += 1,
            Ok(Closing::Unborn) => tick.unborn += 1,
            Err(crate::Error::Conflict(_)) => tick.lost_races += 1,
            Err(_) => tick.failed += 1,
        }
    }
    Ok(tick)
}

async fn close_one(ctx: &Context, due: &Due, now: Timestamp) -> Result<Closing> {
    let timer = &due.timer;
    let drop_timer = Write::Delete {
        key: repo::timer_key(&timer.dialog_id, repo::TimerKind::Close),
        condition: conditioned_on(due),
    };
    let Some(dialog) = repo::load_dialog(ctx.store.as_ref(), &timer.dialog_id).await? else {
        return drop_unless_unborn(ctx, due, drop_timer, now).await.map(|unborn| match unborn {
            true => Closing::Unborn,
            false => Closing::Dropped,
        });
    };
    if dialog.is_closed() {
        ignore_conflict(ctx.store.transact(vec![drop_timer]).await)?;
        return Ok(Closing::Dropped);
    }
    let channel = repo::load_channel(ctx.store.as_ref(), &timer.channel_id).await?;
    let Some(pointer) = repo::load_pointer(ctx.store.as_ref(), &dialog).await? else {
        return Err(crate::Error::Internal(format!("open dialog {} has no open-dialog pointer", dialog.id)));
    };
    let last_activity = pointer.last_activity(&dialog);
    let deadline = match &channel {
        Some(channel) => repo::close_deadline(last_activity, channel),
        // The channel is gone: nothing keeps the dialog open.
        None => last_activity,
    };
    if deadline > now {
        // Active since the timer was armed: it moves to the new deadline, conditioned on the due key read.
        let rearm = repo::timer_put(repo::TimerKind::Close, timer, deadline, conditioned_on(due))?;
        return match ctx.store.transact(vec![rearm]).await {
            Ok(()) => Ok(Closing::Rearmed),
            Err(StoreError::Conflict { .. }) => Err(lost_race(&dialog)),
            Err(other) => Err(other.into()),
        };
    }
    dialogs::close_if_idle(ctx, dialog, &pointer, conditioned_on(due)).await?;
    Ok(Closing::Closed)
}

fn lost_race(dialog: &Dialog) -> crate::Error {
    crate::Error::Conflict(format!("the close timer of dialog {} changed meanwhile", dialog.id))
}

/// The open statuses a rescan walks, each a gsi2 partition of the tenant.
const OPEN_STATUSES: [DialogStatus; 2] = [DialogStatus::Open, DialogStatus::Assigned];
/// Pages of a tenant's open dialogs one run reads for one rescan; the rest waits for the next run.
const RESCAN_PAGES: usize = 20;

/// Works on a channel's rescan (its `auto_close` was shortened): brings the close timers of its open
/// dialogs forward, a page at a time, saving how far it got (conditioned on the rescan's token: a newer
/// shortening restarts it), and removes it when every open dialog was seen.
async fn rescan(ctx: &Context, item: Item, until: Option<Instant>) -> Result<Closing> {
    let due_key = item.get(Index::Gsi3.sk_attr()).and_then(Value::as_str).map(str::to_owned);
    let mut rescan: repo::CloseRescan = repo::from_item(item)?;
    let still_ours = Condition::Equals("token".into(), Value::String(rescan.token.clone()));
    let done =
        Write::Delete { key: repo::close_rescan_key(&rescan.channel_id), condition: still_ours.clone() };
    let channel = repo::load_channel(ctx.store.as_ref(), &rescan.channel_id).await?;
    let Some(channel) = channel.filter(|c| c.tenant_id == rescan.tenant_id) else {
        ignore_conflict(ctx.store.transact(vec![done]).await)?;
        return Ok(Closing::Dropped);
    };
    for _ in 0..RESCAN_PAGES {
        if until.is_some_and(|until| Instant::now() >= until) {
            break;
        }
        let Some(status) = OPEN_STATUSES.get(rescan.status) else {
            break;
        };
        let query = Query::index(Index::Gsi2, repo::dialogs_with_status(&rescan.tenant_id, status.as_str()))
            .limit(due::PAGE)
            .after(rescan.after.take());
        let page = ctx.store.query(&query).await?;
        let of_channel: Vec<Dialog> = page
            .items
            .into_iter()
            .filter_map(|item| repo::from_item::<Dialog>(item).ok())
            .filter(|dialog| dialog.channel_id == channel.id && !dialog.is_closed())
            .collect();
        bring_forward(ctx, &channel, &of_channel).await?;
        match page.next {
            Some(next) => rescan.after = Some(next),
            None => rescan.status += 1,
        }
    }
    let progress = match (rescan.status < OPEN_STATUSES.len(), due_key.as_deref().and_then(repo::due_at_of)) {
        (true, Some(due)) => repo::close_rescan_put(&rescan, due, still_ours)?,
        _ => done,
    };
    ignore_conflict(ctx.store.transact(vec![progress]).await)?;
    Ok(Closing::Rescanned)
}

/// Moves the close timers of these open dialogs to their deadline under the channel's limit where they
/// are due later (armed under a longer one), and arms one where a dialog has none. Each dialog on its own
/// (a read and at most one conditional write: its own race, a close or a re-arm meanwhile, loses alone),
/// a few at once; single reads, so the function needs no batch-read grant.
async fn bring_forward(ctx: &Context, channel: &Channel, dialogs: &[Dialog]) -> Result<()> {
    // Boxed futures made up front: a stream over borrowed dialogs would make the run's future higher-ranked
    // and not `Send` for the runtime.
    let each: Vec<BoxFuture<'_, Result<()>>> =
        dialogs.iter().map(|dialog| bring_one_forward(ctx, channel, dialog).boxed()).collect();
    let done: Vec<Result<()>> = stream::iter(each).buffer_unordered(ITEMS_AT_ONCE).collect().await;
    done.into_iter().collect()
}

async fn bring_one_forward(ctx: &Context, channel: &Channel, dialog: &Dialog) -> Result<()> {
    let deadline = repo::close_deadline(dialog.last_activity_at, channel);
    let write = match ctx.store.get(&repo::timer_key(&dialog.id, repo::TimerKind::Close)).await? {
        None => {
            let timer = repo::Timer {
                dialog_id: dialog.id.clone(),
                channel_id: channel.id.clone(),
                tenant_id: channel.tenant_id.clone(),
                anchor: None,
                next: 0,
            };
            repo::timer_put(repo::TimerKind::Close, &timer, deadline, Condition::NotExists)?
        }
        Some(item) => {
            let due = Due::read(item)?;
            let due_at = due.due_key.as_str().and_then(repo::due_at_of);
            if due_at.is_some_and(|at| at <= deadline) {
                return Ok(());
            }
            repo::timer_put(repo::TimerKind::Close, &due.timer, deadline, conditioned_on(&due))?
        }
    };
    ignore_conflict(ctx.store.transact(vec![write]).await)
}
