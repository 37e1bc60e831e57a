//! Ingest: a verified, normalized inbound message becomes exactly one stored message in the customer's one
//! open dialog (docs/ARCHITECTURE.md invariants 1 and 2).
//!
//! One read and one transaction per message. The read (one batch) finds the customer's open-dialog pointer
//! and whether the delivery record exists already (then it is a repeat and costs that read alone); the
//! transaction checks the channel is unchanged since the caller read it (callers may cache channels), puts the delivery record (`attribute_not_exists`: a provider retry fails here and is
//! acknowledged without writing), the message, and either updates the dialog (checking the pointer still
//! names it) or, for a customer without an open dialog, puts the dialog and the pointer (both
//! `attribute_not_exists`). Two racing first messages: one transaction loses on the pointer, the loop
//! re-reads it and joins the winner's dialog. A crash leaves everything or nothing, and the provider's
//! retry finishes the job.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Channel, Dialog, DialogId, InboundMessage, Message, MessageId};
use crate::error::{Error, Result};
use crate::ports::events::DomainEvent;
use crate::ports::store::{Condition, Item, StoreError, Write};
use crate::repo;
use crate::usecases::{Context, routing};

/// Pointer races and transient store trouble are retried this often before the provider is told to retry.
const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    Stored {
        dialog_id: DialogId,
        message_id: MessageId,
        opened_dialog: bool,
    },
    /// The provider delivered this message before: nothing written.
    Duplicate,
    /// The channel changed (or was disconnected) since the caller read it: nothing was stored; reload the
    /// channel and ingest again.
    ChannelChanged,
}

/// The delivery record: proof that this delivery is stored, and where.
#[derive(Debug, Serialize, Deserialize)]
struct Delivery {
    message_id: MessageId,
    dialog_id: DialogId,
}

/// Where a write sits in the transaction: the delivery record is always first.
const DELIVERY_WRITE: usize = 0;
/// Where the check that the channel is unchanged sits.
const CHANNEL_CHECK: usize = 1;

/// Holds while the channel's stored `updated_at` is the one of `channel` (every change of a channel
/// moves it).
fn channel_unchanged(channel: &Channel) -> Write {
    Write::Check {
        key: repo::channel_key(&channel.id),
        condition: Condition::Equals("updated_at".into(), Value::String(channel.updated_at.to_string())),
    }
}

pub async fn ingest(ctx: &Context, channel: &Channel, inbound: &InboundMessage) -> Result<IngestOutcome> {
    let pointer_key = repo::open_dialog_key(&channel.id, &inbound.customer.id);
    let delivery_key = repo::delivery_key(&channel.id, &inbound.dedup_key);
    for attempt in 1..=MAX_ATTEMPTS {
        let now = ctx.clock.now();
        // One read for both: the customer's open dialog, and whether this delivery was stored before (then
        // a repeated delivery costs this read alone).
        let [pointer, delivered] = <[Option<Item>; 2]>::try_from(
            ctx.store.get_many(&[pointer_key.clone(), delivery_key.clone()]).await?,
        )
        .map_err(|_| Error::Internal("the store answered a batch read with the wrong count".into()))?;
        if delivered.is_some() {
            return Ok(IngestOutcome::Duplicate);
        }
        let existing = pointer.map(repo::from_item::<repo::OpenDialog>).transpose()?;
        let (dialog_id, mut writes, opened) = match existing {
            Some(open) => {
                let dialog_id = open.dialog_id;
                let mut set = Item::new();
                set.insert("last_activity_at".into(), Value::String(now.to_string()));
                let pointer_holds =
                    Condition::Equals("dialog_id".into(), Value::String(dialog_id.to_string()));
                let start_auto_replies = match open.awaiting_reply {
                    true => None,
                    false => repo::auto_reply_start_write(&dialog_id, channel, now)?,
                };
                let mut writes = match start_auto_replies {
                    Some(start) => {
                        let mut awaiting = Item::new();
                        awaiting.insert("awaiting_reply".into(), Value::Bool(true));
                        let mark = Write::Update {
                            key: pointer_key.clone(),
                            set: awaiting,
                            remove: Vec::new(),
                            condition: pointer_holds,
                        };
                        vec![mark, start]
                    }
                    None => vec![Write::Check { key: pointer_key.clone(), condition: pointer_holds }],
                };
                // The last activity is what the close timer measures from when it fires: the timer itself
                // is not rewritten per message (usecases::timers).
                writes.push(Write::Update {
                    key: repo::dialog_key(&dialog_id),
                    set,
                    remove: Vec::new(),
                    condition: Condition::Exists,
                });
                (dialog_id, writes, false)
            }
            None => {
                let dialog = Dialog::open(
                    channel.tenant_id.clone(),
                    channel.id.clone(),
                    inbound.customer.clone(),
                    now,
                );
                let start_auto_replies = repo::auto_reply_start_write(&dialog.id, channel, now)?;
                let pointer = repo::OpenDialog {
                    dialog_id: dialog.id.clone(),
                    awaiting_reply: start_auto_replies.is_some(),
                };
                let mut writes = vec![
                    Write::Put {
                        item: repo::to_item(&pointer, &pointer_key, &[])?,
                        condition: Condition::NotExists,
                    },
                    Write::Put { item: repo::dialog_item(&dialog)?, condition: Condition::NotExists },
                    repo::close_timer_write(&dialog.id, channel, now)?,
                ];
                writes.extend(start_auto_replies);
                // Invariant 3: if the DialogOpened event is lost, the router's sweep finds this marker.
                writes.extend(routing::unrouted_marker_writes(&dialog, now)?);
                (dialog.id, writes, true)
            }
        };
        let message =
            Message::inbound(channel.tenant_id.clone(), channel.id.clone(), dialog_id.clone(), inbound, now);
        let delivery = Delivery { message_id: message.id.clone(), dialog_id: dialog_id.clone() };
        let delivery_item = repo::with_expiry(
            repo::to_item(&delivery, &delivery_key, &[])?,
            now.as_second() + repo::DELIVERY_TTL_SECONDS,
        );
        writes.insert(DELIVERY_WRITE, Write::Put { item: delivery_item, condition: Condition::NotExists });
        // The channel as this ingest saw it (possibly from a container's cache) must still be the stored one:
        // a channel disconnected or changed since then stores nothing here, and the caller reloads it.
        writes.insert(CHANNEL_CHECK, channel_unchanged(channel));
        let item = repo::message_item(&message, ctx.message_retention)?;
        writes.push(Write::Put { item, condition: Condition::NotExists });

        match ctx.store.transact(writes).await {
            Ok(()) => {
                publish_received(ctx, channel, &dialog_id, &message.id, opened).await;
                return Ok(IngestOutcome::Stored {
                    dialog_id,
                    message_id: message.id,
                    opened_dialog: opened,
                });
            }
            Err(conflict) if conflict.failed_at(DELIVERY_WRITE) => return Ok(IngestOutcome::Duplicate),
            Err(conflict) if conflict.failed_at(CHANNEL_CHECK) => return Ok(IngestOutcome::ChannelChanged),
            // The pointer moved (a racing first message opened the dialog, or it was closed): read it again.
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::Unavailable(reason)) if attempt < MAX_ATTEMPTS => {
                tracing::warn!(attempt, %reason, "ingest transaction not applied; retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(Error::Conflict("the customer's dialog kept changing; the provider will retry".into()))
}

/// Short jittered waits: transaction clashes on DynamoDB clear within milliseconds.
fn backoff(attempt: u32) -> Duration {
    use rand::Rng;
    let base = 10u64 << attempt.min(5);
    Duration::from_millis(base + rand::rng().random_range(0..base))
}

/// After the commit: an event lost here is not a message lost; the router's sweep finds unrouted dialogs.
async fn publish_received(
    ctx: &Context,
    channel: &Channel,
    dialog_id: &DialogId,
    message_id: &MessageId,
    opened: bool,
) {
    let mut events = Vec::with_capacity(2);
    if opened {
        events.push(DomainEvent::DialogOpened {
            tenant_id: channel.tenant_id.clone(),
            channel_id: channel.id.clone(),
            dialog_id: dialog_id.clone(),
        });
    }
    events.push(DomainEvent::MessageReceived {
        tenant_id: channel.tenant_id.clone(),
        channel_id: channel.id.clone(),
        dialog_id: dialog_id.clone(),
        message_id: message_id.clone(),
    });
    if let Err(error) = ctx.bus.publish(&events).await {
        tracing::error!(%error, dialog = %dialog_id, "events not published; the sweep will pick the dialog up");
    }
}
