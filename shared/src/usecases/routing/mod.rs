//! Routing: who handles a dialog — one employee, a member of a group by the group's distribution, or a
//! chatbot outside working hours (docs/SPEC.md "Who handles a dialog", "Non-working hours") — and the sweep that
//! routes whatever an event did not (docs/ARCHITECTURE.md invariant 3).
//!
//! What it keeps in the item store (keys in `repo`):
//! - **routing state** per dialog (`ROUTE#{dialog}`): a generation every routing write bumps, the queue the
//!   dialog waits in (sparse gsi1, one partition per queue, oldest first), the members it went to without
//!   being taken, and what is due (sparse gsi3 `DUE#ROUTE#{shard}`): the unrouted marker ingest writes with
//!   a new dialog, or the end of an assignee's wait time.
//! - **capacity slots** per employee (`T#{tenant}#SLOT#{employee}` / `{n}`, n < `max_dialogs`): assigning
//!   puts a free slot with `attribute_not_exists` in the transaction that assigns; a close or a transfer
//!   deletes it in the transaction that releases the dialog. Nobody is ever over capacity, and an
//!   employee's load — what least busy compares — is the number of their slots now.
//! - a **round-robin cursor** per group, advanced with `Store::increment` (one ticket per dialog).
//! - a **re-check** per non-empty queue in the due index, so a queue whose trigger (a member coming online,
//!   a dialog closed) was lost is still served.
//!
//! Every routing write is one transaction conditioned on the generation of the routing state and on the
//! dialog's status as read (optimistic concurrency): of several routers acting on one dialog, one wins and
//! the others re-read and find it handled. Conflicts are retried a bounded number of times.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::people::{Distribution, EmployeeStatus, Group};
use crate::domain::routing::{Candidate, Choice, choose, free_slot};
use crate::domain::settings::Handling;
use crate::domain::{
    ChatbotId, Dialog, DialogId, DialogStatus, Direction, EmployeeId, GroupId, Message, TenantId,
};
use crate::error::{Error, Result};
use crate::ports::events::DomainEvent;
use crate::ports::store::{Condition, Index, Item, Query, SkRange, StoreError, Write};
use crate::repo;
use crate::usecases::auth::{Principal, Role};
use crate::usecases::{Context, chatbot, due, hours};

// One module, split into files by job: they share the imports above and each other's `pub(super)` items
// (`use super::*`); what other use cases call is re-exported below.
mod decide;
mod employees;
mod handoff;
mod queues;
mod state;
mod sweep;
mod transition;

use decide::*;
use queues::*;
use state::*;
use sweep::*;
use transition::*;

pub(crate) use employees::employee_of;
pub use employees::{TransferTarget, accept, transfer, visible_dialog, visible_to};
pub use handoff::{hand_to_people, handle_event, serve_chatbot};
pub(crate) use queues::queues_of;
pub use queues::{employee_available, route_queue};
pub use state::unrouted_marker_writes;
pub use sweep::{SweepReport, sweep};
pub use transition::route_dialog;

/// How long after ingest the sweep routes a dialog whose `DialogOpened` event never arrived.
pub const UNROUTED_AFTER: SignedDuration = SignedDuration::from_secs(30);
/// How often a non-empty queue is tried again without a trigger.
pub const QUEUE_RECHECK: SignedDuration = SignedDuration::from_secs(60);
/// Due-index shards (see `repo::DUE_SHARDS` for the arithmetic).
pub const SHARDS: u32 = repo::DUE_SHARDS;
/// Due items the sweep routes at once per shard: routing decisions in one group contend for its members'
/// slots (optimistic concurrency, retried), so fewer than the timers.
const SWEEP_ITEMS_AT_ONCE: usize = 4;
/// Waiting dialogs one trigger routes at most per queue.
pub const QUEUE_BATCH: usize = 50;
/// Optimistic-concurrency retries of one routing decision.
const ATTEMPTS: u32 = 8;
/// Capacity slots read per employee (at least `MAX_DIALOGS_LIMIT`, with room for a lowered capacity).
const SLOT_PAGE: usize = 2 * crate::domain::people::MAX_DIALOGS_LIMIT as usize;
/// Messages looked at to tell whether an assignee has answered.
const ANSWER_LOOKBACK: usize = 20;

pub use crate::repo::Queue;

/// What routing did with a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    Assigned(EmployeeId),
    /// Offered to these members at once (`all_at_once`); it waits in the group's queue until one accepts.
    Offered(Vec<EmployeeId>),
    /// Nobody available: it waits in its queue.
    Queued,
    Chatbot(ChatbotId),
    /// The channel names nobody to handle it (or what it names is gone): it stays open for an admin.
    Unhandled,
    /// Assigned, with a chatbot, or closed already: nothing to do.
    AlreadyHandled,
    Missing,
}

#[cfg(test)]
mod tests;
