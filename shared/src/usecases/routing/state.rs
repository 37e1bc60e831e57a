//! The routing state of a dialog as stored, the dialog as routing reads it with that state (`Snapshot`), and
//! the capacity slots.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Phase {
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
pub(super) struct RouteState {
    pub(super) dialog_id: DialogId,
    pub(super) tenant_id: TenantId,
    /// Bumped by every routing write: what those writes condition on.
    pub(super) generation: u64,
    pub(super) phase: Phase,
    /// `Queue::id` while the dialog waits in a queue.
    #[serde(default)]
    pub(super) queue: Option<String>,
    /// Members the dialog went to without being taken (wait time over, transferred away).
    #[serde(default)]
    pub(super) tried: Vec<EmployeeId>,
    /// `all_at_once`: who it is offered to.
    #[serde(default)]
    pub(super) offered: Vec<EmployeeId>,
    /// The chatbot handed it to people: it does not go back to a chatbot.
    #[serde(default)]
    pub(super) handed_off: bool,
    /// When the sweep has to look at it: the unrouted marker, or the end of the assignee's wait time.
    #[serde(default)]
    pub(super) due_at: Option<Timestamp>,
}

impl RouteState {
    pub(super) fn fresh(dialog: &Dialog) -> Self {
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

    pub(super) fn waits_in_queue(&self) -> bool {
        self.queue.is_some() && matches!(self.phase, Phase::Queued | Phase::Offered)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SlotRecord {
    pub(super) tenant_id: TenantId,
    pub(super) employee_id: EmployeeId,
    pub(super) dialog_id: DialogId,
    pub(super) slot: u32,
    pub(super) assigned_at: Timestamp,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct QueueRecheck {
    pub(super) tenant_id: TenantId,
    pub(super) queue: String,
}

pub(super) fn state_item(state: &RouteState) -> Result<Item> {
    let dialog = state.dialog_id.to_string();
    let mut indexes = Vec::new();
    if let Some(queue) = state.queue.as_deref().filter(|_| state.waits_in_queue()) {
        indexes.push((Index::Gsi1, repo::queue_of(&state.tenant_id, queue), dialog.clone()));
    }
    if let Some(due) = state.due_at {
        indexes.push((
            Index::Gsi3,
            repo::route_due_pk(repo::due_shard(&dialog, SHARDS)),
            repo::due_sk(due, &dialog),
        ));
    }
    repo::to_item(state, &repo::route_key(&state.dialog_id), &indexes)
}

/// The dialog attributes routing owns, as an update (the rest of the item — last activity, the timers'
/// attributes — is left alone).
pub(super) fn dialog_fields(dialog: &Dialog) -> Result<Item> {
    let mut set = Item::new();
    set.insert("status".into(), repo::to_value(&dialog.status)?);
    set.insert("assignee_id".into(), repo::to_value(&dialog.assignee_id)?);
    set.insert("assigned_at".into(), repo::to_value(&dialog.assigned_at)?);
    set.insert("group_id".into(), repo::to_value(&dialog.group_id)?);
    set.insert("chatbot_id".into(), repo::to_value(&dialog.chatbot_id)?);
    set.insert("slot".into(), repo::to_value(&dialog.slot)?);
    set.extend(repo::dialog_status_index(dialog));
    Ok(set)
}

/// The unrouted marker: ingest puts it in the transaction that creates the dialog. It is due
/// `UNROUTED_AFTER` later, so if the `DialogOpened` event is lost the sweep still routes the dialog;
/// routing the dialog clears it.
pub fn unrouted_marker_writes(dialog: &Dialog, now: Timestamp) -> Result<Vec<Write>> {
    let mut state = RouteState::fresh(dialog);
    state.due_at = Some(now + UNROUTED_AFTER);
    Ok(vec![Write::Put { item: state_item(&state)?, condition: Condition::NotExists }])
}

pub(super) async fn load_state(ctx: &Context, id: &DialogId) -> Result<Option<RouteState>> {
    ctx.store.get(&repo::route_key(id)).await?.map(repo::from_item).transpose()
}

/// The dialog and its routing state as read together: what a routing write conditions on.
pub(super) struct Snapshot {
    pub(super) dialog: Dialog,
    pub(super) state: Option<RouteState>,
}

impl Snapshot {
    pub(super) async fn load(ctx: &Context, id: &DialogId) -> Result<Option<Self>> {
        let Some(dialog) = repo::load_dialog(ctx.store.as_ref(), id).await? else {
            return Ok(None);
        };
        let state = load_state(ctx, id).await?;
        Ok(Some(Self { dialog, state }))
    }

    /// Open, with nobody (person or chatbot) on it: what routing acts on.
    pub(super) fn is_waiting(&self) -> bool {
        self.dialog.status == DialogStatus::Open
            && self.dialog.assignee_id.is_none()
            && self.dialog.chatbot_id.is_none()
    }

    pub(super) fn state_or_fresh(&self) -> RouteState {
        self.state.clone().unwrap_or_else(|| RouteState::fresh(&self.dialog))
    }

    /// The next state, its generation bumped.
    pub(super) fn next_state(&self) -> RouteState {
        let mut state = self.state_or_fresh();
        state.generation += 1;
        state
    }

    pub(super) fn state_condition(&self) -> Condition {
        match &self.state {
            Some(state) => Condition::Equals("generation".into(), Value::from(state.generation)),
            None => Condition::NotExists,
        }
    }

    pub(super) fn dialog_condition(&self) -> Condition {
        Condition::Equals("status".into(), Value::String(self.dialog.status.as_str().into()))
    }
}

/// The slots an employee holds now (their open dialogs).
pub(super) async fn held_slots(ctx: &Context, tenant: &TenantId, employee: &EmployeeId) -> Result<Vec<u32>> {
    let page = ctx.store.query(&Query::table(repo::slots_of(tenant, employee)).limit(SLOT_PAGE)).await?;
    Ok(page
        .items
        .iter()
        .filter_map(|item| item.get("slot").and_then(Value::as_u64))
        .filter_map(|slot| u32::try_from(slot).ok())
        .collect())
}
