//! Acting on a decision: one transaction conditioned on what was read, and what follows its commit.

use super::*;

/// What to do once a transition is committed.
pub(super) enum After {
    Nothing,
    /// Tell integrators (`DialogAssigned`).
    Publish(DomainEvent),
    Recheck(TenantId, Queue),
    ForwardToChatbot(DialogId),
}

/// Makes a decision stick: one transaction conditioned on what `snapshot` read. `None`: something changed
/// meanwhile (read again). A dialog that had an assignee gives up their slot in the same transaction.
pub(super) async fn transition(
    ctx: &Context,
    snapshot: &Snapshot,
    decision: Decision,
) -> Result<Option<Routed>> {
    transition_with(ctx, snapshot, decision, |_| {}).await
}

/// `transition`, with a last change to the routing state it writes.
pub(super) async fn transition_with(
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
            let key = repo::slot_key(&dialog.tenant_id, &employee, slot);
            extra.push(Write::Put {
                item: repo::to_item(&record, &key, &[])?,
                condition: Condition::NotExists,
            });
            if check_online {
                extra.push(Write::Check {
                    key: repo::employee_key(&dialog.tenant_id, &employee),
                    condition: Condition::Equals("status".into(), repo::to_value(&EmployeeStatus::Online)?),
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
        extra.extend(repo::release_writes(before));
    }
    if before.chatbot_id.is_some() != dialog.chatbot_id.is_some() && !dialog.is_closed() {
        extra.push(repo::chatbot_holds_write(&dialog, dialog.chatbot_id.is_some()));
    }
    let mut writes = vec![Write::Put { item: state_item(&state)?, condition: snapshot.state_condition() }];
    writes.push(if dialog == *before {
        Write::Check { key: repo::dialog_key(&dialog.id), condition: snapshot.dialog_condition() }
    } else {
        Write::Update {
            key: repo::dialog_key(&dialog.id),
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
        After::Recheck(tenant, queue) => {
            // The workspace shows the dialog in the queues of those who may accept it (`usecases::live`).
            let queued = DomainEvent::DialogQueued {
                tenant_id: dialog.tenant_id.clone(),
                channel_id: dialog.channel_id.clone(),
                dialog_id: dialog.id.clone(),
            };
            if let Err(error) = ctx.bus.publish(std::slice::from_ref(&queued)).await {
                tracing::warn!(%error, dialog = %dialog.id, "DialogQueued not published");
            }
            ensure_recheck(ctx, &tenant, &queue).await?
        }
        After::ForwardToChatbot(dialog_id) => {
            if let Err(error) = serve_chatbot(ctx, &dialog_id).await {
                tracing::warn!(%error, dialog = %dialog_id, "forwarding to the chatbot failed");
            }
        }
    }
    Ok(Some(outcome))
}

/// Takes the dialog off whoever had it: open, waiting, in `group`'s queue if any.
pub(super) fn release(dialog: &mut Dialog, group: Option<GroupId>) {
    dialog.status = DialogStatus::Open;
    dialog.assignee_id = None;
    dialog.assigned_at = None;
    dialog.slot = None;
    dialog.chatbot_id = None;
    dialog.group_id = group;
}

/// Short jittered waits between optimistic retries.
pub(super) async fn backoff(attempt: u32) {
    use rand::Rng;
    let base = 2u64 << attempt.min(6);
    let jitter = rand::rng().random_range(0..base);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

pub(super) fn kept_changing() -> Error {
    Error::Conflict("the dialog kept changing while it was routed; try again".into())
}

/// Routes one dialog. Idempotent: only an open dialog nobody has is routed; anything else is left as it
/// is. Safe to run from any number of routers at once.
pub async fn route_dialog(ctx: &Context, dialog_id: &DialogId) -> Result<Routed> {
    route(ctx, dialog_id, false).await
}

/// `strict`: never to a member the dialog already went to (a transfer, a trigger); the periodic re-check
/// is not strict, so a dialog only its former assignee can take does not wait forever.
pub(super) async fn route(ctx: &Context, dialog_id: &DialogId, strict: bool) -> Result<Routed> {
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
pub(super) async fn settle(ctx: &Context, snapshot: &Snapshot) -> Result<()> {
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
        Write::Check { key: repo::dialog_key(&dialog.id), condition: snapshot.dialog_condition() },
    ];
    match ctx.store.transact(writes).await {
        Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}
