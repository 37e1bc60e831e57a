//! Routing: who handles a dialog — one employee, a member of a group by the group's distribution, or a
//! chatbot outside working hours (docs/SPEC.md "Who handles a dialog", "Non-working hours") — and the sweep
//! that routes whatever an event did not (docs/ARCHITECTURE.md invariant 3).
//!
//! What it keeps in the item store (`records`):
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
use crate::records;
use crate::usecases::auth::{Principal, Role};
use crate::usecases::dialogs::status_name;
use crate::usecases::{Context, channels, chatbot, dialogs, hours, people};

/// How long after ingest the sweep routes a dialog whose `DialogOpened` event never arrived.
pub const UNROUTED_AFTER: SignedDuration = SignedDuration::from_secs(30);
/// How often a non-empty queue is tried again without a trigger.
pub const QUEUE_RECHECK: SignedDuration = SignedDuration::from_secs(60);
/// Due-index shards.
pub const SHARDS: u32 = 4;
/// Due items one sweep handles at most per shard; the rest wait for the next one.
pub const SWEEP_BATCH: usize = 100;
/// Waiting dialogs one trigger routes at most per queue.
pub const QUEUE_BATCH: usize = 50;
/// Optimistic-concurrency retries of one routing decision.
const ATTEMPTS: u32 = 8;
/// Capacity slots read per employee (at least `MAX_DIALOGS_LIMIT`, with room for a lowered capacity).
const SLOT_PAGE: usize = 2 * crate::domain::people::MAX_DIALOGS_LIMIT as usize;
/// Messages looked at to tell whether an assignee has answered.
const ANSWER_LOOKBACK: usize = 20;

/// Where a dialog waits for someone to take it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Queue {
    Group(GroupId),
    /// Dialogs of a channel handled by one employee, while they are offline or at capacity (or
    /// transferred to them).
    Employee(EmployeeId),
}

impl Queue {
    pub fn id(&self) -> String {
        match self {
            Queue::Group(group) => format!("G#{group}"),
            Queue::Employee(employee) => format!("E#{employee}"),
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw.split_once('#')? {
            ("G", id) => GroupId::parse(id).map(Queue::Group),
            ("E", id) => EmployeeId::parse(id).map(Queue::Employee),
            _ => None,
        }
    }

    fn group(&self) -> Option<GroupId> {
        match self {
            Queue::Group(group) => Some(group.clone()),
            Queue::Employee(_) => None,
        }
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    /// Written by ingest with the dialog: not routed yet.
    New,
    Assigned,
    Offered,
    Queued,
    Chatbot,
    Unhandled,
    /// Closed.
    Done,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RouteState {
    dialog_id: DialogId,
    tenant_id: TenantId,
    /// Bumped by every routing write: what those writes condition on.
    generation: u64,
    phase: Phase,
    /// `Queue::id` while the dialog waits in a queue.
    #[serde(default)]
    queue: Option<String>,
    /// Members the dialog went to without being taken (wait time over, transferred away).
    #[serde(default)]
    tried: Vec<EmployeeId>,
    /// `all_at_once`: who it is offered to.
    #[serde(default)]
    offered: Vec<EmployeeId>,
    /// The chatbot handed it to people: it does not go back to a chatbot.
    #[serde(default)]
    handed_off: bool,
    /// When the sweep has to look at it: the unrouted marker, or the end of the assignee's wait time.
    #[serde(default)]
    due_at: Option<Timestamp>,
}

impl RouteState {
    fn fresh(dialog: &Dialog) -> Self {
        Self {
            dialog_id: dialog.id.clone(),
            tenant_id: dialog.tenant_id.clone(),
            generation: 0,
            phase: Phase::New,
            queue: None,
            tried: Vec::new(),
            offered: Vec::new(),
            handed_off: false,
            due_at: None,
        }
    }

    fn waits_in_queue(&self) -> bool {
        self.queue.is_some() && matches!(self.phase, Phase::Queued | Phase::Offered)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SlotRecord {
    tenant_id: TenantId,
    employee_id: EmployeeId,
    dialog_id: DialogId,
    slot: u32,
    assigned_at: Timestamp,
}

#[derive(Debug, Serialize, Deserialize)]
struct QueueRecheck {
    tenant_id: TenantId,
    queue: String,
}

fn shard_of(id: &str) -> u32 {
    id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % SHARDS
}

fn due_sk(at: Timestamp, id: &str) -> String {
    format!("{:015}#{id}", at.as_millisecond().max(0))
}

fn state_item(state: &RouteState) -> Result<Item> {
    let dialog = state.dialog_id.to_string();
    let mut indexes = Vec::new();
    if let Some(queue) = state.queue.as_deref().filter(|_| state.waits_in_queue()) {
        indexes.push((Index::Gsi1, records::queue_of(&state.tenant_id, queue), dialog.clone()));
    }
    if let Some(due) = state.due_at {
        indexes.push((Index::Gsi3, records::route_due_pk(shard_of(&dialog)), due_sk(due, &dialog)));
    }
    records::to_item(state, &records::route_key(&state.dialog_id), &indexes)
}

fn to_value<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|error| Error::Internal(format!("not serializable: {error}")))
}

/// The dialog attributes routing owns, as an update (the rest of the item — last activity, the timers'
/// attributes — is left alone).
fn dialog_fields(dialog: &Dialog) -> Result<Item> {
    let mut set = Item::new();
    set.insert("status".into(), to_value(&dialog.status)?);
    set.insert("assignee_id".into(), to_value(&dialog.assignee_id)?);
    set.insert("assigned_at".into(), to_value(&dialog.assigned_at)?);
    set.insert("group_id".into(), to_value(&dialog.group_id)?);
    set.insert("chatbot_id".into(), to_value(&dialog.chatbot_id)?);
    set.insert("slot".into(), to_value(&dialog.slot)?);
    set.insert(
        Index::Gsi2.pk_attr().into(),
        Value::String(records::dialogs_with_status(&dialog.tenant_id, status_name(dialog.status))),
    );
    set.insert(Index::Gsi2.sk_attr().into(), Value::String(dialog.id.to_string()));
    Ok(set)
}

// ---- what ingest and close put into their transactions ----

/// The unrouted marker: ingest puts it in the transaction that creates the dialog. It is due
/// `UNROUTED_AFTER` later, so if the `DialogOpened` event is lost the sweep still routes the dialog;
/// routing the dialog clears it.
pub fn unrouted_marker_writes(dialog: &Dialog, now: Timestamp) -> Result<Vec<Write>> {
    let mut state = RouteState::fresh(dialog);
    state.due_at = Some(now + UNROUTED_AFTER);
    Ok(vec![Write::Put { item: state_item(&state)?, condition: Condition::NotExists }])
}

/// Frees the capacity slot of the dialog's assignee: every transaction that takes a dialog away from its
/// assignee (closing it) includes these writes. The slot is deleted on condition it still holds this
/// dialog: if that fails, the dialog was re-routed meanwhile (read it again).
pub fn release_writes(dialog: &Dialog) -> Vec<Write> {
    match (&dialog.assignee_id, dialog.slot) {
        (Some(employee), Some(slot)) => vec![Write::Delete {
            key: records::slot_key(&dialog.tenant_id, employee, slot),
            condition: Condition::Equals("dialog_id".into(), Value::String(dialog.id.to_string())),
        }],
        _ => Vec::new(),
    }
}

// ---- reading ----

async fn load_dialog(ctx: &Context, id: &DialogId) -> Result<Option<Dialog>> {
    ctx.store.get(&records::dialog_key(id)).await?.map(records::from_item).transpose()
}

async fn load_state(ctx: &Context, id: &DialogId) -> Result<Option<RouteState>> {
    ctx.store.get(&records::route_key(id)).await?.map(records::from_item).transpose()
}

/// The dialog and its routing state as read together: what a routing write conditions on.
struct Snapshot {
    dialog: Dialog,
    state: Option<RouteState>,
}

impl Snapshot {
    async fn load(ctx: &Context, id: &DialogId) -> Result<Option<Self>> {
        let Some(dialog) = load_dialog(ctx, id).await? else {
            return Ok(None);
        };
        let state = load_state(ctx, id).await?;
        Ok(Some(Self { dialog, state }))
    }

    /// Open, with nobody (person or chatbot) on it: what routing acts on.
    fn is_waiting(&self) -> bool {
        self.dialog.status == DialogStatus::Open
            && self.dialog.assignee_id.is_none()
            && self.dialog.chatbot_id.is_none()
    }

    fn state_or_fresh(&self) -> RouteState {
        self.state.clone().unwrap_or_else(|| RouteState::fresh(&self.dialog))
    }

    /// The next state, its generation bumped.
    fn next_state(&self) -> RouteState {
        let mut state = self.state_or_fresh();
        state.generation += 1;
        state
    }

    fn state_condition(&self) -> Condition {
        match &self.state {
            Some(state) => Condition::Equals("generation".into(), Value::from(state.generation)),
            None => Condition::NotExists,
        }
    }

    fn dialog_condition(&self) -> Condition {
        Condition::Equals("status".into(), Value::String(status_name(self.dialog.status).into()))
    }
}

/// The slots an employee holds now (their open dialogs).
async fn held_slots(ctx: &Context, tenant: &TenantId, employee: &EmployeeId) -> Result<Vec<u32>> {
    let page = ctx.store.query(&Query::table(records::slots_of(tenant, employee)).limit(SLOT_PAGE)).await?;
    Ok(page
        .items
        .iter()
        .filter_map(|item| item.get("slot").and_then(Value::as_u64))
        .filter_map(|slot| u32::try_from(slot).ok())
        .collect())
}

/// A member as routing sees them now, with the slots they hold.
struct Member {
    candidate: Candidate,
    held: Vec<u32>,
}

async fn members_now(ctx: &Context, tenant: &TenantId, ids: &[EmployeeId]) -> Result<Vec<Member>> {
    let mut members = Vec::with_capacity(ids.len());
    for id in ids {
        // A member deleted meanwhile is skipped, as if offline.
        let Some(employee) = people::get_employee(ctx, tenant, id).await? else {
            continue;
        };
        // Only an online member can be chosen: the others' load is not worth a read.
        let held = match employee.status {
            EmployeeStatus::Online => held_slots(ctx, tenant, id).await?,
            _ => Vec::new(),
        };
        let load = u32::try_from(held.len()).unwrap_or(u32::MAX);
        let candidate =
            Candidate { id: employee.id, status: employee.status, load, max_dialogs: employee.max_dialogs };
        members.push(Member { candidate, held });
    }
    Ok(members)
}

fn random_pick(n: usize) -> usize {
    use rand::Rng;
    rand::rng().random_range(0..n.max(1))
}

// ---- deciding ----

/// Who the dialog is for, before looking at who is available.
enum Target {
    Chatbot(ChatbotId),
    Employee(EmployeeId),
    Group(GroupId),
    Nobody,
}

async fn target_of(ctx: &Context, snapshot: &Snapshot) -> Result<Target> {
    let dialog = &snapshot.dialog;
    let state = snapshot.state.as_ref();
    if let Some(queue) = state.and_then(|s| s.queue.as_deref()).and_then(Queue::parse) {
        return Ok(match queue {
            Queue::Group(group) => Target::Group(group),
            Queue::Employee(employee) => Target::Employee(employee),
        });
    }
    let Some(channel) = channels::load_channel(ctx, &dialog.channel_id).await? else {
        return Ok(Target::Nobody);
    };
    let settings = &channel.settings;
    if !state.is_some_and(|s| s.handed_off) {
        let chatbot = match (&settings.handling, &settings.off_hours.chatbot_id) {
            (Some(Handling::Chatbot { chatbot_id }), _) => Some(chatbot_id.clone()),
            // The hours when the customer wrote decide, not when the router got to it.
            (_, Some(chatbot_id)) if !hours::is_open(ctx, &dialog.tenant_id, dialog.opened_at).await? => {
                Some(chatbot_id.clone())
            }
            _ => None,
        };
        if let Some(chatbot_id) = chatbot {
            match people::get_chatbot(ctx, &dialog.tenant_id, &chatbot_id).await? {
                Some(chatbot) if chatbot.enabled => return Ok(Target::Chatbot(chatbot.id)),
                // A chatbot deleted or switched off: people take over rather than nobody.
                _ => {
                    tracing::warn!(dialog = %dialog.id, chatbot = %chatbot_id, "chatbot unavailable; routing to people")
                }
            }
        }
    }
    Ok(match &settings.handling {
        Some(Handling::Employee { employee_id }) => Target::Employee(employee_id.clone()),
        Some(Handling::Group { group_id }) => Target::Group(group_id.clone()),
        Some(Handling::Chatbot { .. }) | None => Target::Nobody,
    })
}

enum Decision {
    Assign {
        employee: EmployeeId,
        slot: u32,
        /// The group it came through (its wait time applies), if any.
        group: Option<(GroupId, u32)>,
        /// Routing assigns only to someone online at the moment of the write; accepting does not ask.
        check_online: bool,
    },
    Offer {
        group: GroupId,
        members: Vec<EmployeeId>,
    },
    Queue(Queue),
    Chatbot(ChatbotId),
    Unhandled,
}

/// Draws the group's next ticket once per routing of a dialog (retries reuse it).
async fn ticket(ctx: &Context, group: &Group, drawn: &mut Option<u64>) -> Result<u64> {
    if let Some(ticket) = *drawn {
        return Ok(ticket);
    }
    let value =
        ctx.store.increment(&records::round_robin_key(&group.tenant_id, &group.id), "cursor", 1).await?;
    let ticket = u64::try_from(value.saturating_sub(1)).unwrap_or(0);
    *drawn = Some(ticket);
    Ok(ticket)
}

/// The group's choice for a dialog, `passed` being the members it already went to.
async fn decide_in_group(
    ctx: &Context,
    group: &Group,
    passed: &[EmployeeId],
    strict: bool,
    drawn: &mut Option<u64>,
) -> Result<Decision> {
    let members = members_now(ctx, &group.tenant_id, &group.members).await?;
    let candidates: Vec<Candidate> = members.iter().map(|m| m.candidate.clone()).collect();
    let anyone = candidates.iter().any(Candidate::is_available);
    let ticket = match group.distribution {
        Distribution::RoundRobin | Distribution::LeastBusy if anyone => ticket(ctx, group, drawn).await?,
        _ => 0,
    };
    Ok(match choose(group.distribution, &candidates, ticket, passed, strict) {
        Choice::Assign(employee) => {
            let member = members.iter().find(|m| m.candidate.id == employee);
            match member.and_then(|m| free_slot(&m.held, m.candidate.max_dialogs, random_pick)) {
                Some(slot) => Decision::Assign {
                    employee,
                    slot,
                    group: Some((group.id.clone(), group.wait_seconds)),
                    check_online: true,
                },
                None => Decision::Queue(Queue::Group(group.id.clone())),
            }
        }
        Choice::Offer(members) => Decision::Offer { group: group.id.clone(), members },
        Choice::Wait => Decision::Queue(Queue::Group(group.id.clone())),
    })
}

async fn decide(
    ctx: &Context,
    snapshot: &Snapshot,
    target: Target,
    strict: bool,
    drawn: &mut Option<u64>,
) -> Result<Decision> {
    let tenant = &snapshot.dialog.tenant_id;
    match target {
        Target::Nobody => Ok(Decision::Unhandled),
        Target::Chatbot(chatbot) => Ok(Decision::Chatbot(chatbot)),
        Target::Employee(id) => {
            let Some(employee) = people::get_employee(ctx, tenant, &id).await? else {
                return Ok(Decision::Unhandled);
            };
            if employee.status == EmployeeStatus::Online {
                let held = held_slots(ctx, tenant, &id).await?;
                if let Some(slot) = free_slot(&held, employee.max_dialogs, random_pick) {
                    return Ok(Decision::Assign { employee: id, slot, group: None, check_online: true });
                }
            }
            Ok(Decision::Queue(Queue::Employee(id)))
        }
        Target::Group(id) => {
            let Some(group) = people::get_group(ctx, tenant, &id).await? else {
                return Ok(Decision::Unhandled);
            };
            let passed = snapshot.state.as_ref().map(|s| s.tried.clone()).unwrap_or_default();
            decide_in_group(ctx, &group, &passed, strict, drawn).await
        }
    }
}

// ---- acting ----

/// What to do once a transition is committed.
enum After {
    Nothing,
    /// Tell integrators (`DialogAssigned`).
    Publish(DomainEvent),
    Recheck(TenantId, Queue),
    ForwardToChatbot(DialogId),
}

/// Makes a decision stick: one transaction conditioned on what `snapshot` read. `None`: something changed
/// meanwhile (read again). A dialog that had an assignee gives up their slot in the same transaction.
async fn transition(ctx: &Context, snapshot: &Snapshot, decision: Decision) -> Result<Option<Routed>> {
    transition_with(ctx, snapshot, decision, |_| {}).await
}

/// `transition`, with a last change to the routing state it writes.
async fn transition_with(
    ctx: &Context,
    snapshot: &Snapshot,
    decision: Decision,
    adjust: impl FnOnce(&mut RouteState),
) -> Result<Option<Routed>> {
    let now = ctx.clock.now();
    let before = &snapshot.dialog;
    let mut dialog = before.clone();
    let mut state = snapshot.next_state();
    let mut extra = Vec::new();
    let (outcome, after) = match decision {
        Decision::Assign { employee, slot, group, check_online } => {
            dialog.status = DialogStatus::Assigned;
            dialog.assignee_id = Some(employee.clone());
            dialog.assigned_at = Some(now);
            dialog.slot = Some(slot);
            dialog.chatbot_id = None;
            dialog.group_id = group.as_ref().map(|(id, _)| id.clone()).or(before.group_id.clone());
            state.phase = Phase::Assigned;
            state.queue = None;
            state.offered.clear();
            state.due_at = None;
            if let Some((_, wait_seconds)) = group {
                if !state.tried.contains(&employee) {
                    state.tried.push(employee.clone());
                }
                state.due_at = Some(now + SignedDuration::from_secs(i64::from(wait_seconds)));
            }
            let record = SlotRecord {
                tenant_id: dialog.tenant_id.clone(),
                employee_id: employee.clone(),
                dialog_id: dialog.id.clone(),
                slot,
                assigned_at: now,
            };
            let key = records::slot_key(&dialog.tenant_id, &employee, slot);
            extra.push(Write::Put {
                item: records::to_item(&record, &key, &[])?,
                condition: Condition::NotExists,
            });
            if check_online {
                extra.push(Write::Check {
                    key: records::employee_key(&dialog.tenant_id, &employee),
                    condition: Condition::Equals("status".into(), to_value(&EmployeeStatus::Online)?),
                });
            }
            let assigned = DomainEvent::DialogAssigned {
                tenant_id: dialog.tenant_id.clone(),
                channel_id: dialog.channel_id.clone(),
                dialog_id: dialog.id.clone(),
                employee_id: employee.clone(),
            };
            (Routed::Assigned(employee), After::Publish(assigned))
        }
        Decision::Offer { group, members } => {
            release(&mut dialog, Some(group.clone()));
            let queue = Queue::Group(group);
            state.phase = Phase::Offered;
            state.queue = Some(queue.id());
            state.offered = members.clone();
            state.due_at = None;
            (Routed::Offered(members), After::Recheck(dialog.tenant_id.clone(), queue))
        }
        Decision::Queue(queue) => {
            release(&mut dialog, queue.group());
            state.phase = Phase::Queued;
            state.queue = Some(queue.id());
            state.offered.clear();
            state.due_at = None;
            (Routed::Queued, After::Recheck(dialog.tenant_id.clone(), queue))
        }
        Decision::Chatbot(chatbot) => {
            release(&mut dialog, None);
            dialog.chatbot_id = Some(chatbot.clone());
            state.phase = Phase::Chatbot;
            state.queue = None;
            state.offered.clear();
            state.due_at = None;
            (Routed::Chatbot(chatbot), After::ForwardToChatbot(dialog.id.clone()))
        }
        Decision::Unhandled => {
            state.phase = Phase::Unhandled;
            state.queue = None;
            state.offered.clear();
            state.due_at = None;
            (Routed::Unhandled, After::Nothing)
        }
    };
    adjust(&mut state);
    let mut unchanged_state = state.clone();
    unchanged_state.generation = snapshot.state.as_ref().map_or(u64::MAX, |s| s.generation);
    if snapshot.state.as_ref() == Some(&unchanged_state) && dialog == *before {
        // Still waiting where it was (a re-check with nobody new available): nothing to write.
        return Ok(Some(outcome));
    }
    if before.assignee_id.is_some() && before.assignee_id != dialog.assignee_id {
        extra.extend(release_writes(before));
    }
    let mut writes = vec![Write::Put { item: state_item(&state)?, condition: snapshot.state_condition() }];
    writes.push(if dialog == *before {
        Write::Check { key: records::dialog_key(&dialog.id), condition: snapshot.dialog_condition() }
    } else {
        Write::Update {
            key: records::dialog_key(&dialog.id),
            set: dialog_fields(&dialog)?,
            remove: Vec::new(),
            condition: snapshot.dialog_condition(),
        }
    });
    writes.extend(extra);
    match ctx.store.transact(writes).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => return Ok(None),
        Err(other) => return Err(other.into()),
    }
    match after {
        After::Nothing => {}
        After::Publish(event) => {
            // Committed already: a lost event is logged, never a failed assignment.
            if let Err(error) = ctx.bus.publish(std::slice::from_ref(&event)).await {
                tracing::warn!(%error, dialog = %dialog.id, "{} not published", event.detail_type());
            }
        }
        After::Recheck(tenant, queue) => ensure_recheck(ctx, &tenant, &queue).await?,
        After::ForwardToChatbot(dialog_id) => {
            if let Err(error) = chatbot::forward_new_messages(ctx, &dialog_id).await {
                tracing::warn!(%error, dialog = %dialog_id, "forwarding to the chatbot failed");
            }
        }
    }
    Ok(Some(outcome))
}

/// Takes the dialog off whoever had it: open, waiting, in `group`'s queue if any.
fn release(dialog: &mut Dialog, group: Option<GroupId>) {
    dialog.status = DialogStatus::Open;
    dialog.assignee_id = None;
    dialog.assigned_at = None;
    dialog.slot = None;
    dialog.chatbot_id = None;
    dialog.group_id = group;
}

/// Short jittered waits between optimistic retries.
async fn backoff(attempt: u32) {
    use rand::Rng;
    let base = 2u64 << attempt.min(6);
    let jitter = rand::rng().random_range(0..base);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

fn kept_changing() -> Error {
    Error::Conflict("the dialog kept changing while it was routed; try again".into())
}

/// Routes one dialog. Idempotent: only an open dialog nobody has is routed; anything else is left as it
/// is. Safe to run from any number of routers at once.
pub async fn route_dialog(ctx: &Context, dialog_id: &DialogId) -> Result<Routed> {
    route(ctx, dialog_id, false).await
}

/// `strict`: never to a member the dialog already went to (a transfer, a trigger); the periodic re-check
/// is not strict, so a dialog only its former assignee can take does not wait forever.
async fn route(ctx: &Context, dialog_id: &DialogId, strict: bool) -> Result<Routed> {
    let mut drawn = None;
    for attempt in 1..=ATTEMPTS {
        let Some(snapshot) = Snapshot::load(ctx, dialog_id).await? else {
            return Ok(Routed::Missing);
        };
        if !snapshot.is_waiting() {
            settle(ctx, &snapshot).await?;
            return Ok(Routed::AlreadyHandled);
        }
        let target = target_of(ctx, &snapshot).await?;
        let decision = decide(ctx, &snapshot, target, strict, &mut drawn).await?;
        if let Some(routed) = transition(ctx, &snapshot, decision).await? {
            return Ok(routed);
        }
        backoff(attempt).await;
    }
    Err(kept_changing())
}

/// Brings the routing state of a dialog that is not waiting in line with it: an unrouted marker or a
/// queue entry left behind (the dialog was accepted, taken by a chatbot, or closed meanwhile) is cleared.
/// Losing a race here is fine: the winner wrote a state that is in line.
async fn settle(ctx: &Context, snapshot: &Snapshot) -> Result<()> {
    let Some(state) = &snapshot.state else {
        return Ok(());
    };
    let dialog = &snapshot.dialog;
    let (phase, due_at) = if dialog.is_closed() {
        (Phase::Done, None)
    } else if dialog.assignee_id.is_some() {
        (Phase::Assigned, state.due_at.filter(|_| state.phase == Phase::Assigned))
    } else if dialog.chatbot_id.is_some() {
        (Phase::Chatbot, None)
    } else {
        return Ok(());
    };
    if state.phase == phase && state.queue.is_none() && state.due_at == due_at {
        return Ok(());
    }
    let mut next = snapshot.next_state();
    next.phase = phase;
    next.queue = None;
    next.offered.clear();
    next.due_at = due_at;
    let writes = vec![
        Write::Put { item: state_item(&next)?, condition: snapshot.state_condition() },
        Write::Check { key: records::dialog_key(&dialog.id), condition: snapshot.dialog_condition() },
    ];
    match ctx.store.transact(writes).await {
        Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

// ---- queues ----

/// Routes the waiting dialogs of one queue, oldest first; answers how many were assigned.
pub async fn route_queue(ctx: &Context, tenant: &TenantId, queue: &Queue) -> Result<usize> {
    route_waiting(ctx, tenant, queue, true).await
}

async fn route_waiting(ctx: &Context, tenant: &TenantId, queue: &Queue, strict: bool) -> Result<usize> {
    let query = Query::index(Index::Gsi1, records::queue_of(tenant, &queue.id())).limit(QUEUE_BATCH);
    let mut assigned = 0;
    for item in ctx.store.query(&query).await?.items {
        let Some(dialog_id) = item.get("dialog_id").and_then(Value::as_str).and_then(DialogId::parse) else {
            continue;
        };
        match route(ctx, &dialog_id, strict).await {
            Ok(Routed::Assigned(_)) => assigned += 1,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, dialog = %dialog_id, "routing a waiting dialog failed"),
        }
    }
    Ok(assigned)
}

/// The groups of the tenant that have the employee as a member.
async fn groups_of_member(ctx: &Context, tenant: &TenantId, employee: &EmployeeId) -> Result<Vec<Group>> {
    let mut groups = Vec::new();
    let mut page = None;
    loop {
        let query = Query::table(records::groups_of(tenant)).limit(500).after(page);
        let found = ctx.store.query(&query).await?;
        for item in found.items {
            let group: Group = records::from_item(item)?;
            if group.members.contains(employee) {
                groups.push(group);
            }
        }
        match found.next {
            Some(next) => page = Some(next),
            None => return Ok(groups),
        }
    }
}

/// The queues an employee takes dialogs from: their own and their groups'.
pub(crate) async fn queues_of(ctx: &Context, tenant: &TenantId, employee: &EmployeeId) -> Result<Vec<Queue>> {
    let mut queues = vec![Queue::Employee(employee.clone())];
    queues.extend(groups_of_member(ctx, tenant, employee).await?.into_iter().map(|g| Queue::Group(g.id)));
    Ok(queues)
}

/// An employee came online or freed capacity: their queues are served. Answers how many were assigned.
pub async fn employee_available(ctx: &Context, tenant: &TenantId, employee: &EmployeeId) -> Result<usize> {
    let mut assigned = 0;
    for queue in queues_of(ctx, tenant, employee).await? {
        assigned += route_queue(ctx, tenant, &queue).await?;
    }
    Ok(assigned)
}

/// Makes sure the queue is re-checked within `QUEUE_RECHECK` (kept if one is already due).
async fn ensure_recheck(ctx: &Context, tenant: &TenantId, queue: &Queue) -> Result<()> {
    let id = queue.id();
    let record = QueueRecheck { tenant_id: tenant.clone(), queue: id.clone() };
    let due = ctx.clock.now() + QUEUE_RECHECK;
    let item = records::to_item(
        &record,
        &records::queue_recheck_key(tenant, &id),
        &[(Index::Gsi3, records::route_due_pk(shard_of(&id)), due_sk(due, &format!("Q#{id}")))],
    )?;
    match ctx.store.transact(vec![Write::Put { item, condition: Condition::NotExists }]).await {
        Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// A due queue re-check: serve the queue, then re-check again later if it is still not empty. Conditioned
/// on the due key read, so overlapping sweeps act once.
async fn recheck(ctx: &Context, item: Item) -> Result<()> {
    let observed = item.get(Index::Gsi3.sk_attr()).cloned().unwrap_or(Value::Null);
    let record: QueueRecheck = records::from_item(item)?;
    let key = records::queue_recheck_key(&record.tenant_id, &record.queue);
    let condition = Condition::Equals(Index::Gsi3.sk_attr().into(), observed);
    let Some(queue) = Queue::parse(&record.queue) else {
        return ignore_conflict(ctx.store.transact(vec![Write::Delete { key, condition }]).await);
    };
    route_waiting(ctx, &record.tenant_id, &queue, false).await?;
    let query = Query::index(Index::Gsi1, records::queue_of(&record.tenant_id, &record.queue)).limit(1);
    let waiting = !ctx.store.query(&query).await?.items.is_empty();
    let write = if waiting {
        let due = ctx.clock.now() + QUEUE_RECHECK;
        let item = records::to_item(
            &record,
            &key,
            &[(
                Index::Gsi3,
                records::route_due_pk(shard_of(&record.queue)),
                due_sk(due, &format!("Q#{}", record.queue)),
            )],
        )?;
        Write::Put { item, condition }
    } else {
        Write::Delete { key, condition }
    };
    ignore_conflict(ctx.store.transact(vec![write]).await)
}

fn ignore_conflict(result: std::result::Result<(), StoreError>) -> Result<()> {
    match result {
        Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

// ---- the sweep and the wait time ----

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Dialogs whose due item was handled (routed, moved on after the wait time, or found settled).
    pub dialogs: usize,
    /// Queues re-checked.
    pub queues: usize,
}

/// The scheduled sweep: reads only what is due in the routing part of the due index (never the table),
/// at most `limit` per shard: unrouted dialogs, wait times run out, queue re-checks.
pub async fn sweep(ctx: &Context, limit: usize) -> Result<SweepReport> {
    let now = ctx.clock.now();
    let mut report = SweepReport::default();
    for shard in 0..SHARDS {
        let query = Query::index(Index::Gsi3, records::route_due_pk(shard))
            .range(SkRange::AtMost(format!("{:015}#~", now.as_millisecond().max(0))))
            .limit(limit);
        for item in ctx.store.query(&query).await?.items {
            let is_queue = item.get("sk").and_then(Value::as_str) == Some("RECHECK");
            if is_queue {
                match recheck(ctx, item).await {
                    Ok(()) => report.queues += 1,
                    Err(error) => tracing::error!(%error, "queue re-check failed"),
                }
                continue;
            }
            let Some(dialog_id) = item.get("dialog_id").and_then(Value::as_str).and_then(DialogId::parse)
            else {
                continue;
            };
            match due_dialog(ctx, &dialog_id).await {
                Ok(_) => report.dialogs += 1,
                Err(error) => {
                    tracing::error!(%error, dialog = %dialog_id, "routing sweep failed on a dialog")
                }
            }
        }
    }
    Ok(report)
}

/// A dialog whose routing state is due: route it (unrouted), or move it on (wait time over).
async fn due_dialog(ctx: &Context, dialog_id: &DialogId) -> Result<Routed> {
    let now = ctx.clock.now();
    let mut drawn = None;
    for attempt in 1..=ATTEMPTS {
        let Some(snapshot) = Snapshot::load(ctx, dialog_id).await? else {
            let key = records::route_key(dialog_id);
            ignore_conflict(
                ctx.store.transact(vec![Write::Delete { key, condition: Condition::Always }]).await,
            )?;
            return Ok(Routed::Missing);
        };
        let Some(state) = snapshot.state.clone() else {
            return Ok(Routed::Missing);
        };
        if state.due_at.is_none_or(|due| due > now) {
            return Ok(Routed::AlreadyHandled);
        }
        if snapshot.is_waiting() {
            return route(ctx, dialog_id, false).await;
        }
        let dialog = &snapshot.dialog;
        let (Some(assignee), Phase::Assigned) = (&dialog.assignee_id, state.phase) else {
            settle(ctx, &snapshot).await?;
            return Ok(Routed::AlreadyHandled);
        };
        if answered(ctx, dialog, assignee).await? {
            accept_writes(ctx, &snapshot).await?;
            return Ok(Routed::AlreadyHandled);
        }
        let group = match &dialog.group_id {
            Some(id) => people::get_group(ctx, &dialog.tenant_id, id).await?,
            None => None,
        };
        let Some(group) = group else {
            accept_writes(ctx, &snapshot).await?;
            return Ok(Routed::AlreadyHandled);
        };
        let mut passed = state.tried.clone();
        if !passed.contains(assignee) {
            passed.push(assignee.clone());
        }
        // The next member; with nobody new available it goes back to the group's queue.
        let decision = decide_in_group(ctx, &group, &passed, true, &mut drawn).await?;
        tracing::info!(dialog = %dialog_id, %assignee, "not taken within the wait time; moving on");
        if let Some(routed) = transition(ctx, &snapshot, decision).await? {
            return Ok(routed);
        }
        backoff(attempt).await;
    }
    Err(kept_changing())
}

/// Whether the assignee has written in the dialog since it was assigned to them: that is taking it.
async fn answered(ctx: &Context, dialog: &Dialog, assignee: &EmployeeId) -> Result<bool> {
    let since = dialog.assigned_at.unwrap_or(dialog.opened_at);
    let query = Query::table(records::messages_of(&dialog.id))
        .range(SkRange::BeginsWith(records::MESSAGE_SK_PREFIX.into()))
        .descending()
        .limit(ANSWER_LOOKBACK);
    for item in ctx.store.query(&query).await?.items {
        let message: Message = records::from_item(item)?;
        if message.received_at < since {
            break;
        }
        if message.direction == Direction::Out && message.author_id.as_ref() == Some(assignee) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The assignee took the dialog: its wait time no longer runs.
async fn accept_writes(ctx: &Context, snapshot: &Snapshot) -> Result<bool> {
    let Some(state) = &snapshot.state else {
        return Ok(true);
    };
    if state.due_at.is_none() && state.phase == Phase::Assigned {
        return Ok(true);
    }
    let mut next = snapshot.next_state();
    next.phase = Phase::Assigned;
    next.queue = None;
    next.due_at = None;
    let writes = vec![
        Write::Put { item: state_item(&next)?, condition: snapshot.state_condition() },
        Write::Check {
            key: records::dialog_key(&snapshot.dialog.id),
            condition: snapshot.dialog_condition(),
        },
    ];
    match ctx.store.transact(writes).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

// ---- events ----

/// What the router does with a domain event (the EventBridge rule's targets; the local runner's bus).
pub async fn handle_event(ctx: &Context, event: &DomainEvent) -> Result<()> {
    match event {
        DomainEvent::DialogOpened { dialog_id, .. } => {
            let routed = route_dialog(ctx, dialog_id).await?;
            tracing::info!(dialog = %dialog_id, ?routed, "dialog routed");
        }
        DomainEvent::DialogClosed { tenant_id, dialog_id, .. } => {
            // Its assignee has room again: their queues are served.
            if let Some(assignee) = load_dialog(ctx, dialog_id).await?.and_then(|d| d.assignee_id) {
                employee_available(ctx, tenant_id, &assignee).await?;
            }
        }
        DomainEvent::MessageReceived { dialog_id, .. } => {
            chatbot::forward_new_messages(ctx, dialog_id).await?;
        }
        _ => {}
    }
    Ok(())
}

// ---- chatbot hand-off ----

/// The chatbot hands the dialog to people: it is routed as if no chatbot were configured, and never goes
/// back to one. Until it is routed it carries an unrouted marker, so the sweep finishes an interrupted
/// hand-off.
pub async fn hand_to_people(ctx: &Context, dialog_id: &DialogId) -> Result<Routed> {
    for attempt in 1..=ATTEMPTS {
        let Some(snapshot) = Snapshot::load(ctx, dialog_id).await? else {
            return Ok(Routed::Missing);
        };
        if snapshot.dialog.is_closed() || snapshot.dialog.chatbot_id.is_none() {
            break;
        }
        let mut dialog = snapshot.dialog.clone();
        dialog.chatbot_id = None;
        let mut state = snapshot.next_state();
        state.phase = Phase::New;
        state.handed_off = true;
        state.queue = None;
        state.due_at = Some(ctx.clock.now() + UNROUTED_AFTER);
        let writes = vec![
            Write::Put { item: state_item(&state)?, condition: snapshot.state_condition() },
            Write::Update {
                key: records::dialog_key(&dialog.id),
                set: dialog_fields(&dialog)?,
                remove: Vec::new(),
                condition: snapshot.dialog_condition(),
            },
        ];
        match ctx.store.transact(writes).await {
            Ok(()) => break,
            Err(StoreError::Conflict { .. }) => backoff(attempt).await,
            Err(other) => return Err(other.into()),
        }
    }
    route_dialog(ctx, dialog_id).await
}

// ---- employees' actions ----

pub(crate) fn employee_of(principal: &Principal) -> Result<EmployeeId> {
    principal.employee_id.clone().ok_or_else(|| {
        Error::rule(
            "employee_key_required",
            "authorization",
            "this action is an employee's: use the API key of an employee",
        )
    })
}

/// Whether an employee may see the dialog: assigned to them, or waiting in their own queue or in the
/// queue of a group they belong to (offered to them included).
pub async fn visible_to(ctx: &Context, dialog: &Dialog, employee: &EmployeeId) -> Result<bool> {
    if dialog.assignee_id.as_ref() == Some(employee) {
        return Ok(true);
    }
    if dialog.status != DialogStatus::Open || dialog.assignee_id.is_some() || dialog.chatbot_id.is_some() {
        return Ok(false);
    }
    let queue = load_state(ctx, &dialog.id).await?.and_then(|s| s.queue).and_then(|q| Queue::parse(&q));
    let group = match queue {
        Some(Queue::Employee(owner)) => return Ok(&owner == employee),
        Some(Queue::Group(group)) => Some(group),
        None => dialog.group_id.clone(),
    };
    match group {
        Some(group) => Ok(people::get_group(ctx, &dialog.tenant_id, &group)
            .await?
            .is_some_and(|g| g.members.contains(employee))),
        None => Ok(false),
    }
}

/// An employee takes a dialog: one waiting in their queue or their group's (the first to accept has it;
/// the others get 409), or one assigned to them (its wait time stops). Capacity holds: at
/// `max_dialogs` open dialogs, accepting answers 409.
pub async fn accept(ctx: &Context, principal: &Principal, id: &str) -> Result<Dialog> {
    let me = employee_of(principal)?;
    let visible = match dialogs::get_dialog(ctx, principal, id).await {
        Err(Error::NotFound { .. }) => return Err(taken_or_not_found(ctx, principal, &me, id).await?),
        other => other?,
    };
    for attempt in 1..=ATTEMPTS {
        let Some(snapshot) = Snapshot::load(ctx, &visible.id).await? else {
            return Err(Error::NotFound { what: "dialog" });
        };
        let dialog = &snapshot.dialog;
        if dialog.is_closed() {
            return Err(Error::rule("dialog_closed", "dialog", "the dialog is closed / диалог закрыт"));
        }
        if dialog.assignee_id.as_ref() == Some(&me) {
            if accept_writes(ctx, &snapshot).await? {
                return Ok(snapshot.dialog);
            }
            backoff(attempt).await;
            continue;
        }
        if dialog.assignee_id.is_some() || dialog.chatbot_id.is_some() {
            return Err(Error::Conflict("someone else has taken the dialog".into()));
        }
        if !visible_to(ctx, dialog, &me).await? {
            return Err(Error::NotFound { what: "dialog" });
        }
        let employee = people::get_employee(ctx, &principal.tenant_id, &me)
            .await?
            .ok_or(Error::NotFound { what: "employee" })?;
        let held = held_slots(ctx, &principal.tenant_id, &me).await?;
        let Some(slot) = free_slot(&held, employee.max_dialogs, random_pick) else {
            return Err(Error::Conflict(format!(
                "you have {} open dialogs, your maximum; close one first",
                held.len()
            )));
        };
        let decision = Decision::Assign { employee: me.clone(), slot, group: None, check_online: false };
        if transition(ctx, &snapshot, decision).await?.is_some() {
            return load_dialog(ctx, &visible.id).await?.ok_or(Error::NotFound { what: "dialog" });
        }
        backoff(attempt).await;
    }
    Err(kept_changing())
}

/// Why an employee cannot accept a dialog they cannot see: a colleague took it first from a group they
/// share (409), or it is none of theirs (404).
async fn taken_or_not_found(
    ctx: &Context,
    principal: &Principal,
    me: &EmployeeId,
    id: &str,
) -> Result<Error> {
    let not_found = Error::NotFound { what: "dialog" };
    let Some(dialog) = DialogId::parse(id) else {
        return Ok(not_found);
    };
    let Some(dialog) = load_dialog(ctx, &dialog).await?.filter(|d| d.tenant_id == principal.tenant_id) else {
        return Ok(not_found);
    };
    let Some(group) = dialog.group_id.as_ref().filter(|_| dialog.assignee_id.is_some()) else {
        return Ok(not_found);
    };
    let shared =
        people::get_group(ctx, &dialog.tenant_id, group).await?.is_some_and(|g| g.members.contains(me));
    Ok(if shared { Error::Conflict("someone else has taken the dialog".into()) } else { not_found })
}

/// Where a dialog is transferred to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    Employee(EmployeeId),
    Group(GroupId),
}

/// Transfers a dialog to an employee (assigned if they are online with room, else waiting in their queue)
/// or to a group (routed by its distribution, not back to whoever transferred it). Admins transfer any
/// open dialog, an employee the dialogs assigned to them.
pub async fn transfer(ctx: &Context, principal: &Principal, id: &str, to: TransferTarget) -> Result<Dialog> {
    let visible = dialogs::get_dialog(ctx, principal, id).await?;
    let tenant = &principal.tenant_id;
    let not_yours = || {
        Error::rule(
            "not_your_dialog",
            "dialog",
            "only the employee the dialog is assigned to, or an admin, can transfer it",
        )
    };
    if principal.role == Role::Employee && visible.assignee_id != principal.employee_id {
        return Err(not_yours());
    }
    let queue = match &to {
        TransferTarget::Employee(employee) => {
            if people::get_employee(ctx, tenant, employee).await?.is_none() {
                return Err(Error::rule("not_found", "employee_id", "no such employee in this tenant"));
            }
            Queue::Employee(employee.clone())
        }
        TransferTarget::Group(group) => {
            if people::get_group(ctx, tenant, group).await?.is_none() {
                return Err(Error::rule("not_found", "group_id", "no such group in this tenant"));
            }
            Queue::Group(group.clone())
        }
    };
    let mut previous = None;
    let mut moved = false;
    for attempt in 1..=ATTEMPTS {
        let Some(snapshot) = Snapshot::load(ctx, &visible.id).await? else {
            return Err(Error::NotFound { what: "dialog" });
        };
        let dialog = &snapshot.dialog;
        if dialog.is_closed() {
            return Err(Error::rule("dialog_closed", "dialog", "the dialog is closed / диалог закрыт"));
        }
        if principal.role == Role::Employee && dialog.assignee_id != principal.employee_id {
            return Err(not_yours());
        }
        if matches!(&to, TransferTarget::Employee(e) if dialog.assignee_id.as_ref() == Some(e)) {
            return Ok(snapshot.dialog);
        }
        previous = dialog.assignee_id.clone();
        let tried = match (&queue, &previous) {
            (Queue::Group(_), Some(from)) => vec![from.clone()],
            _ => Vec::new(),
        };
        let from_chatbot = dialog.chatbot_id.is_some();
        let adjust = move |state: &mut RouteState| {
            state.tried = tried;
            state.handed_off |= from_chatbot;
        };
        // Released into the target's queue first, then routed from there: if the routing step is cut
        // short, the dialog waits in that queue and the queue's re-check serves it.
        if transition_with(ctx, &snapshot, Decision::Queue(queue.clone()), adjust).await?.is_some() {
            moved = true;
            break;
        }
        backoff(attempt).await;
    }
    if !moved {
        return Err(kept_changing());
    }
    let routed = route(ctx, &visible.id, true).await?;
    tracing::info!(dialog = %visible.id, ?routed, "dialog transferred");
    if let Some(previous) = previous
        && let Err(error) = employee_available(ctx, tenant, &previous).await
    {
        tracing::warn!(%error, employee = %previous, "serving the queues after a transfer failed");
    }
    load_dialog(ctx, &visible.id).await?.ok_or(Error::NotFound { what: "dialog" })
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
