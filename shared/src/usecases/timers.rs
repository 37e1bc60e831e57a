//! Timers of a dialog: the pending auto-replies and the inactivity close (docs/ARCHITECTURE.md invariants 4
//! and 5).
//!
//! Each timer is one item beside its dialog (`DLG#{dialog}` / `TIMER#AUTOREPLY`, `TIMER#CLOSE`) carrying
//! its due time in the sparse due index (gsi3, `DUE#{kind}#{shard}` / `{due millis}#{dialog}`). A tick
//! reads only the due part of the index, never the table. Whoever acts on a timer does so in one
//! transaction conditioned on the due key it read, so two overlapping ticks (or a tick racing an
//! employee's reply) act once: the loser's condition fails and it writes nothing.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Channel, ChannelId, DialogId, Message, TenantId};
use crate::error::Result;
use crate::ports::store::{Condition, Index, Key, Query, SkRange, StoreError, Write};
use crate::records;
use crate::usecases::{Context, channels, dialogs, hours, outbox};

/// Due-index shards per timer kind: spreads a busy table's timer writes over several index partitions.
pub const SHARDS: u32 = 4;
/// Timers one tick handles at most per shard; the rest wait for the next tick.
pub const BATCH: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    AutoReply,
    Close,
}

impl TimerKind {
    fn name(self) -> &'static str {
        match self {
            TimerKind::AutoReply => "AUTOREPLY",
            TimerKind::Close => "CLOSE",
        }
    }
}

pub fn timer_key(dialog: &DialogId, kind: TimerKind) -> Key {
    Key::new(records::messages_of(dialog), format!("TIMER#{}", kind.name()))
}

fn shard_of(dialog: &DialogId) -> u32 {
    dialog.as_str().bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % SHARDS
}

fn due_pk(kind: TimerKind, shard: u32) -> String {
    format!("DUE#{}#{shard}", kind.name())
}

fn due_sk(at: Timestamp, dialog: &DialogId) -> String {
    format!("{:015}#{dialog}", at.as_millisecond().max(0))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Timer {
    dialog_id: DialogId,
    channel_id: ChannelId,
    tenant_id: TenantId,
    /// Auto-replies: the customer message the sequence counts from, and which reply is next.
    #[serde(default)]
    anchor: Option<Timestamp>,
    #[serde(default)]
    next: usize,
}

fn timer_put(kind: TimerKind, timer: &Timer, due: Timestamp, condition: Condition) -> Result<Write> {
    let item = records::to_item(
        timer,
        &timer_key(&timer.dialog_id, kind),
        &[(Index::Gsi3, due_pk(kind, shard_of(&timer.dialog_id)), due_sk(due, &timer.dialog_id))],
    )?;
    Ok(Write::Put { item, condition })
}

/// (Re)sets the inactivity close of a dialog to `auto_close` after `now`: every message either way does.
pub fn close_timer_write(dialog_id: &DialogId, channel: &Channel, now: Timestamp) -> Result<Write> {
    let timer = Timer {
        dialog_id: dialog_id.clone(),
        channel_id: channel.id.clone(),
        tenant_id: channel.tenant_id.clone(),
        anchor: None,
        next: 0,
    };
    let due = now.saturating_add(delay(channel.settings.auto_close.seconds())).unwrap_or(now);
    timer_put(TimerKind::Close, &timer, due, Condition::Always)
}

/// Starts the channel's auto-reply sequence for a customer message at `now`, if the channel has any.
pub fn auto_reply_start_write(
    dialog_id: &DialogId,
    channel: &Channel,
    now: Timestamp,
) -> Result<Option<Write>> {
    let Some(first) = channel.settings.auto_replies.first() else {
        return Ok(None);
    };
    let timer = Timer {
        dialog_id: dialog_id.clone(),
        channel_id: channel.id.clone(),
        tenant_id: channel.tenant_id.clone(),
        anchor: Some(now),
        next: 0,
    };
    Ok(Some(timer_put(TimerKind::AutoReply, &timer, now + delay(first.delay_seconds), Condition::Always)?))
}

fn delay(seconds: u64) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(seconds).unwrap_or(i64::MAX / 2))
}

/// An employee's reply cancels the pending auto-replies; put in the reply's own transaction.
pub fn cancel_auto_replies_write(dialog: &DialogId) -> Write {
    Write::Delete { key: timer_key(dialog, TimerKind::AutoReply), condition: Condition::Always }
}

/// A due timer as the index showed it: the timer and the due key to condition on.
struct Due {
    timer: Timer,
    due_key: Value,
}

async fn due_timers(ctx: &Context, kind: TimerKind, now: Timestamp) -> Result<Vec<Due>> {
    let mut due = Vec::new();
    for shard in 0..SHARDS {
        let query = Query::index(Index::Gsi3, due_pk(kind, shard))
            .range(SkRange::AtMost(format!("{:015}#~", now.as_millisecond().max(0))))
            .limit(BATCH);
        for item in ctx.store.query(&query).await?.items {
            let due_key = item.get(Index::Gsi3.sk_attr()).cloned().unwrap_or(Value::Null);
            due.push(Due { timer: records::from_item(item)?, due_key });
        }
    }
    Ok(due)
}

fn conditioned_on(due: &Due) -> Condition {
    Condition::Equals(Index::Gsi3.sk_attr().into(), due.due_key.clone())
}

/// What one auto-reply tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AutoReplyTick {
    pub sent: usize,
    /// Timers another tick or a reply got to first.
    pub lost_races: usize,
    /// Sequences ended without sending (dialog closed, off-hours without auto-replies, chatbot in charge).
    pub dropped: usize,
}

/// Sends every due auto-reply once, in order.
pub async fn send_due_auto_replies(ctx: &Context) -> Result<AutoReplyTick> {
    let now = ctx.clock.now();
    let mut tick = AutoReplyTick::default();
    for due in due_timers(ctx, TimerKind::AutoReply, now).await? {
        match send_one_auto_reply(ctx, &due, now).await {
            Ok(true) => tick.sent += 1,
            Ok(false) => tick.dropped += 1,
            Err(crate::Error::Conflict(_)) => tick.lost_races += 1,
            Err(error) => tracing::error!(%error, dialog = %due.timer.dialog_id, "auto-reply failed"),
        }
    }
    Ok(tick)
}

async fn send_one_auto_reply(ctx: &Context, due: &Due, now: Timestamp) -> Result<bool> {
    let timer = &due.timer;
    let drop_timer = || Write::Delete {
        key: timer_key(&timer.dialog_id, TimerKind::AutoReply),
        condition: conditioned_on(due),
    };
    let dialog = dialogs::load(ctx, &timer.dialog_id).await?;
    let channel = channels::load_channel(ctx, &timer.channel_id).await?;
    let (Some(dialog), Some(channel)) = (dialog, channel) else {
        ignore_conflict(ctx.store.transact(vec![drop_timer()]).await)?;
        return Ok(false);
    };
    let reply = channel.settings.auto_replies.get(timer.next);
    let allowed = !dialog.is_closed()
        && channel.is_active()
        && (hours::is_open(ctx, &channel.tenant_id, now).await? || channel.settings.off_hours.auto_replies);
    let Some(reply) = reply.filter(|_| allowed) else {
        ignore_conflict(ctx.store.transact(vec![drop_timer()]).await)?;
        return Ok(false);
    };
    let advance = match (channel.settings.auto_replies.get(timer.next + 1), timer.anchor) {
        (Some(following), Some(anchor)) => {
            let next = Timer { next: timer.next + 1, ..timer.clone() };
            timer_put(
                TimerKind::AutoReply,
                &next,
                anchor + delay(following.delay_seconds),
                conditioned_on(due),
            )?
        }
        _ => drop_timer(),
    };
    let message = Message::outbound(&dialog, reply.text.clone(), Vec::new(), None, now);
    outbox::send_in_dialog(ctx, &dialog, &channel, message, vec![advance]).await?;
    Ok(true)
}

fn ignore_conflict(result: std::result::Result<(), StoreError>) -> Result<()> {
    match result {
        Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// Closes every dialog idle past its channel's limit.
pub async fn close_inactive_dialogs(ctx: &Context) -> Result<usize> {
    let now = ctx.clock.now();
    let mut closed = 0;
    for due in due_timers(ctx, TimerKind::Close, now).await? {
        match close_one(ctx, &due, now).await {
            Ok(true) => closed += 1,
            Ok(false) | Err(crate::Error::Conflict(_)) => {}
            Err(error) => tracing::error!(%error, dialog = %due.timer.dialog_id, "inactivity close failed"),
        }
    }
    Ok(closed)
}

async fn close_one(ctx: &Context, due: &Due, now: Timestamp) -> Result<bool> {
    let timer = &due.timer;
    let drop_timer =
        Write::Delete { key: timer_key(&timer.dialog_id, TimerKind::Close), condition: conditioned_on(due) };
    let Some(dialog) = dialogs::load(ctx, &timer.dialog_id).await?.filter(|d| !d.is_closed()) else {
        ignore_conflict(ctx.store.transact(vec![drop_timer]).await)?;
        return Ok(false);
    };
    let channel = channels::load_channel(ctx, &timer.channel_id).await?;
    let limit = channel.as_ref().map(|c| c.settings.auto_close.seconds()).unwrap_or(0);
    let idle_until = dialog.last_activity_at + delay(limit);
    if idle_until > now {
        // A message moved the deadline after this timer was read: the timer was rewritten already.
        return Ok(false);
    }
    dialogs::close_if_due(ctx, dialog, conditioned_on(due)).await?;
    Ok(true)
}
