//! Timers of a dialog: the pending auto-replies and the inactivity close (docs/ARCHITECTURE.md invariants 4
//! and 5).
//!
//! Each timer is one item beside its dialog (`DLG#{dialog}` / `TIMER#AUTOREPLY`, `TIMER#CLOSE`) carrying
//! its due time in the sparse due index (gsi3, `DUE#{kind}#{shard}` / `{due millis}#{dialog}`). A tick
//! reads only the due part of the index, never the table. Whoever acts on a timer does so in one
//! transaction conditioned on the due key it read, so two overlapping ticks (or a tick racing an
//! employee's reply) act once: the loser's condition fails and it writes nothing.

use jiff::Timestamp;
use serde_json::Value;

use crate::domain::Message;
use crate::error::Result;
use crate::ports::store::{Condition, Index, Query, SkRange, StoreError, Write};
use crate::repo;
use crate::usecases::{Context, dialogs, hours, outbox};

/// Timers one tick handles at most per shard; the rest wait for the next tick.
pub const BATCH: usize = 100;

pub use crate::repo::TIMER_SHARDS as SHARDS;

/// A due timer as the index showed it: the timer and the due key to condition on.
struct Due {
    timer: repo::Timer,
    due_key: Value,
}

async fn due_timers(ctx: &Context, kind: repo::TimerKind, now: Timestamp) -> Result<Vec<Due>> {
    let mut due = Vec::new();
    for shard in 0..SHARDS {
        let query = Query::index(Index::Gsi3, repo::timer_due_pk(kind, shard))
            .range(SkRange::AtMost(repo::due_until(now)))
            .limit(BATCH);
        for item in ctx.store.query(&query).await?.items {
            let due_key = item.get(Index::Gsi3.sk_attr()).cloned().unwrap_or(Value::Null);
            due.push(Due { timer: repo::from_item(item)?, due_key });
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
    for due in due_timers(ctx, repo::TimerKind::AutoReply, now).await? {
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
        key: repo::timer_key(&timer.dialog_id, repo::TimerKind::AutoReply),
        condition: conditioned_on(due),
    };
    let dialog = repo::load_dialog(ctx.store.as_ref(), &timer.dialog_id).await?;
    let channel = repo::load_channel(ctx.store.as_ref(), &timer.channel_id).await?;
    let (Some(dialog), Some(channel)) = (dialog, channel) else {
        ignore_conflict(ctx.store.transact(vec![drop_timer()]).await)?;
        return Ok(false);
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
        return Ok(false);
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
    for due in due_timers(ctx, repo::TimerKind::Close, now).await? {
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
    let drop_timer = Write::Delete {
        key: repo::timer_key(&timer.dialog_id, repo::TimerKind::Close),
        condition: conditioned_on(due),
    };
    let Some(dialog) =
        repo::load_dialog(ctx.store.as_ref(), &timer.dialog_id).await?.filter(|d| !d.is_closed())
    else {
        ignore_conflict(ctx.store.transact(vec![drop_timer]).await)?;
        return Ok(false);
    };
    let channel = repo::load_channel(ctx.store.as_ref(), &timer.channel_id).await?;
    let limit = channel.as_ref().map(|c| c.settings.auto_close.seconds()).unwrap_or(0);
    let idle_until = dialog.last_activity_at + repo::delay(limit);
    if idle_until > now {
        // A message moved the deadline after this timer was read: the timer was rewritten already.
        return Ok(false);
    }
    dialogs::close_if_due(ctx, dialog, conditioned_on(due)).await?;
    Ok(true)
}
