//! Ingest: a verified, normalized inbound message becomes exactly one stored message in the customer's one
//! open dialog (docs/ARCHITECTURE.md invariants 1 and 2).
//!
//! One read and one transaction per message (a message that opens a dialog writes its due items first, see
//! below). The read (one batch) finds the customer's open-dialog pointer, whether the delivery record exists
//! already (then it is a repeat and costs that read alone), the channel as stored (a channel that changed
//! since the caller read it, say from a container's cache, stores nothing: the caller reloads it), and which
//! customer profile the sender is (`usecases::customers`). The transaction puts the delivery record
//! (`attribute_not_exists`: a provider retry racing this one fails here and is acknowledged without writing),
//! the message, and either moves the pointer's last activity (on condition it still names the dialog) or, for
//! a customer without an open dialog, puts the dialog and the pointer (both `attribute_not_exists`) with the
//! dialog's entry in its customer's list (and, for a person new to the channel, their profile and identity).
//! Two racing first messages: one transaction loses on the pointer, the loop re-reads it and joins the
//! winner's dialog. A crash leaves everything or nothing, and the provider's retry finishes the job.
//!
//! A new dialog's due items (its close timer, its first auto-reply, the unrouted marker) are not in that
//! transaction: each is written alone just before it, once per ingest (a retry inside keeps the dialog's id).
//! So a stored dialog always has them, and they cost one write unit each instead of two. Those of a dialog
//! that is never stored (the transaction lost the race for the pointer, or never ran) are orphans the jobs
//! remove once `due::UNBORN_GRACE` past due; until then they pass over them, as a dialog may still be on its
//! way.
//!
//! A steady-state message writes three small items and no index entry (6 write units on DynamoDB): the
//! dialog item, whose every write also rewrites its two tenant-wide list entries, takes the customer's
//! activity at most once a minute (`repo::LIST_REFRESH`); the exact last activity is the pointer's.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Channel, Dialog, DialogId, InboundMessage, Message, MessageId};
use crate::error::{Error, Result};
use crate::ports::events::DomainEvent;
use crate::ports::store::{Condition, Item, Key, StoreError, Write};
use crate::repo;
use crate::usecases::{Context, customers, media, routing};

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

/// Whether the stored channel is the one the caller handed in (every change of a channel moves its
/// `updated_at`; a deleted channel is a changed one).
fn channel_unchanged(channel: &Channel, stored: Option<Item>) -> bool {
    let at = Value::String(channel.updated_at.to_string());
    stored.is_some_and(|item| item.get("updated_at") == Some(&at))
}

pub async fn ingest(ctx: &Context, channel: &Channel, inbound: &InboundMessage) -> Result<IngestOutcome> {
    let pointer_key = repo::open_dialog_key(&channel.id, &inbound.customer.id);
    let delivery_key = repo::delivery_key(&channel.id, &inbound.dedup_key);
    let channel_key = repo::channel_key(&channel.id);
    let identity_key = repo::identity_key(&channel.id, &inbound.customer.id);
    let module = ctx.providers.get(channel.provider).ok();
    // The dialog this delivery opens, made (and its due items written) once: a retry after a failed
    // transaction keeps its id, so those due items stay its own.
    let mut opening: Option<Opening> = None;
    for attempt in 1..=MAX_ATTEMPTS {
        let now = ctx.clock.now();
        // One read for all four: the customer's open dialog, whether this delivery was stored before (then
        // a repeated delivery costs this read alone), the channel as stored, and which customer this is
        // (what a new dialog needs).
        let keys = [pointer_key.clone(), delivery_key.clone(), channel_key.clone(), identity_key.clone()];
        let [pointer, delivered, stored_channel, identity] =
            <[Option<Item>; 4]>::try_from(ctx.store.get_many(&keys).await?).map_err(|_| {
                Error::Internal("the store answered a batch read with the wrong count".into())
            })?;
        if delivered.is_some() {
            return Ok(IngestOutcome::Duplicate);
        }
        if !channel_unchanged(channel, stored_channel) {
            return Ok(IngestOutcome::ChannelChanged);
        }
        let existing = pointer.map(repo::from_item::<repo::OpenDialog>).transpose()?;
        let mut unnamed = None;
        let chatbot = existing.as_ref().is_some_and(|open| open.chatbot);
        let (dialog_id, mut writes, opened) = match existing {
            Some(open) => (open.dialog_id.clone(), continue_writes(&pointer_key, open, channel, now)?, false),
            None => {
                let opening = match &mut opening {
                    Some(opening) => opening,
                    unmade @ None => {
                        let made = Opening::new(channel, inbound, now)?;
                        // Not retried here: the provider's retry is a new ingest, whose dialog gets its own.
                        made.write_due(ctx).await?;
                        unmade.insert(made)
                    }
                };
                let mut dialog = opening.dialog.clone();
                let (customer, customer_writes) =
                    customers::for_new_dialog(channel, &inbound.customer, identity, now)?;
                dialog.customer_id = Some(customer);
                // A dialog opened unnamed gets its name after the acknowledgement, where the provider tells.
                if dialog.customer.name.is_none() && module.is_some_and(|module| module.looks_up_names()) {
                    unnamed = Some(dialog.clone());
                }
                let pointer = repo::OpenDialog {
                    dialog_id: dialog.id.clone(),
                    awaiting_reply: opening.awaiting_reply,
                    last_activity_at: Some(now),
                    listed_at: Some(now),
                    chatbot: false,
                };
                let mut writes = vec![
                    Write::Put {
                        item: repo::to_item(&pointer, &pointer_key, &[])?,
                        condition: Condition::NotExists,
                    },
                    Write::Put { item: repo::dialog_item(&dialog)?, condition: Condition::NotExists },
                ];
                writes.extend(customer_writes);
                writes.extend(customers::dialog_entry_write(&dialog)?);
                (dialog.id, writes, true)
            }
        };
        let message = Message::inbound(
            channel.tenant_id.clone(),
            channel.id.clone(),
            dialog_id.clone(),
            inbound,
            now,
            |attachment| module.is_some_and(|module| module.fetchable(attachment)),
        );
        let delivery = Delivery { message_id: message.id.clone(), dialog_id: dialog_id.clone() };
        let delivery_item = repo::with_expiry(
            repo::to_item(&delivery, &delivery_key, &[])?,
            now.as_second() + repo::DELIVERY_TTL_SECONDS,
        );
        writes.insert(DELIVERY_WRITE, Write::Put { item: delivery_item, condition: Condition::NotExists });
        let item = repo::message_item(&message, ctx.message_retention)?;
        writes.push(Write::Put { item, condition: Condition::NotExists });
        // Files to fetch after the acknowledgement: the marker makes the fetch durable (the sweep finds it).
        writes.extend(media::fetch_marker_write(&message, now)?);
        if chatbot {
            // If MessageReceived is lost, the router's sweep finds this and forwards the message.
            writes.push(repo::forward_marker_put(&dialog_id, &message.id, now)?);
        }

        match ctx.store.transact(writes).await {
            Ok(()) => {
                if message.has_pending_media() {
                    media::request_fetch(ctx, &message).await;
                }
                if let Some(dialog) = &unnamed {
                    customers::request_name(ctx, dialog).await;
                }
                publish_received(ctx, channel, &dialog_id, &message.id, opened, chatbot).await;
                return Ok(IngestOutcome::Stored {
                    dialog_id,
                    message_id: message.id,
                    opened_dialog: opened,
                });
            }
            Err(conflict) if conflict.failed_at(DELIVERY_WRITE) => return Ok(IngestOutcome::Duplicate),
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

/// A dialog this delivery opens, and the due items it needs from the start: its close timer, its first
/// auto-reply where the channel has auto-replies, and the unrouted marker (invariant 3: if the DialogOpened
/// event is lost, the router's sweep finds it). Each due item is written alone, before the transaction that
/// stores the dialog (one write unit each instead of two inside it). A dialog that is stored so has every
/// one of them; those of a dialog whose transaction never commits (a crash, a first message of the same
/// customer racing this one and winning) are orphans, which the jobs pass over for `due::UNBORN_GRACE` and
/// then remove.
struct Opening {
    dialog: Dialog,
    awaiting_reply: bool,
    due: Vec<Write>,
}

impl Opening {
    fn new(channel: &Channel, inbound: &InboundMessage, now: Timestamp) -> Result<Self> {
        let dialog =
            Dialog::open(channel.tenant_id.clone(), channel.id.clone(), inbound.customer.clone(), now);
        let start_auto_replies = repo::auto_reply_start_write(&dialog.id, channel, now)?;
        let awaiting_reply = start_auto_replies.is_some();
        let mut due = vec![repo::close_timer_write(&dialog.id, channel, now)?];
        due.extend(start_auto_replies);
        due.extend(routing::unrouted_marker_writes(&dialog, now)?);
        Ok(Self { dialog, awaiting_reply, due })
    }

    /// Writes the due items, each on its own and all at once. A condition failing can only mean the item is
    /// there already (the dialog's id is new): done.
    async fn write_due(&self, ctx: &Context) -> std::result::Result<(), StoreError> {
        let writes = self.due.iter().map(|write| ctx.store.transact(vec![write.clone()]));
        for written in futures::future::join_all(writes).await {
            match written {
                Ok(()) | Err(StoreError::Conflict { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }
}

/// The writes of a message joining the customer's open dialog: the pointer takes the activity (on condition
/// it still names the dialog), the auto-replies start if no sequence is waiting for an employee's reply, and
/// the dialog item takes the activity when its copy is older than `repo::LIST_REFRESH`.
fn continue_writes(
    pointer_key: &Key,
    open: repo::OpenDialog,
    channel: &Channel,
    now: Timestamp,
) -> Result<Vec<Write>> {
    let dialog_id = open.dialog_id;
    let mut set = Item::new();
    set.insert("last_activity_at".into(), Value::String(now.to_string()));
    let start_auto_replies = match open.awaiting_reply {
        true => None,
        false => repo::auto_reply_start_write(&dialog_id, channel, now)?,
    };
    if start_auto_replies.is_some() {
        set.insert("awaiting_reply".into(), Value::Bool(true));
    }
    let relist = open.listed_at.is_none_or(|at| now.duration_since(at) >= repo::LIST_REFRESH);
    if relist {
        set.insert("listed_at".into(), Value::String(now.to_string()));
    }
    // Still naming the dialog, and held by a chatbot or not as read: routing changing that meanwhile makes
    // this a conflict (read again), so a message is never left unmarked for a chatbot that just took it.
    let names_dialog = Condition::Equals("dialog_id".into(), Value::String(dialog_id.to_string()));
    let held_as_read = match open.chatbot {
        true => Condition::Equals("chatbot".into(), Value::Bool(true)),
        false => Condition::Lacks("chatbot".into()),
    };
    let mut writes = vec![Write::Update {
        key: pointer_key.clone(),
        set,
        remove: Vec::new(),
        condition: Condition::All(vec![names_dialog, held_as_read]),
    }];
    writes.extend(start_auto_replies);
    if relist {
        // The close timer is not rewritten per message either: it measures from the last activity when it
        // fires (usecases::timers).
        let mut activity = Item::new();
        activity.insert("last_activity_at".into(), Value::String(now.to_string()));
        writes.push(Write::Update {
            key: repo::dialog_key(&dialog_id),
            set: activity,
            remove: Vec::new(),
            condition: Condition::Exists,
        });
    }
    Ok(writes)
}

/// Short jittered waits: transaction clashes on DynamoDB clear within milliseconds.
fn backoff(attempt: u32) -> Duration {
    use rand::Rng;
    let base = 10u64 << attempt.min(5);
    Duration::from_millis(base + rand::rng().random_range(0..base))
}

/// After the commit: an event lost here is not a message lost; the router's sweep finds unrouted dialogs
/// and the forward markers of chatbots' dialogs.
async fn publish_received(
    ctx: &Context,
    channel: &Channel,
    dialog_id: &DialogId,
    message_id: &MessageId,
    opened: bool,
    chatbot: bool,
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
        chatbot,
    });
    if let Err(error) = ctx.bus.publish(&events).await {
        tracing::error!(%error, dialog = %dialog_id, "events not published; the sweep will pick the dialog up");
    }
}
