//! The sweep of the due index: unrouted dialogs, wait times run out, queue re-checks.

use super::*;

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Dialogs whose due item was handled (routed, moved on after the wait time, or found settled).
    pub dialogs: usize,
    /// Queues re-checked.
    pub queues: usize,
    /// The run ended (its stop time) before everything due was read: the rest waits for the next sweep.
    pub left_due: bool,
}

/// What the sweep did with one due item.
enum Swept {
    Dialog,
    Queue,
    /// Not handled (an error, logged, or an item without a dialog): it stays due.
    Nothing,
}

/// The scheduled sweep: reads only what is due in the routing part of the due index (never the table),
/// every shard to its end or until the run's stop time (`usecases::due`): unrouted dialogs, wait times run
/// out, queue re-checks.
pub async fn sweep(ctx: &Context, run: due::Run) -> Result<SweepReport> {
    let now = ctx.clock.now();
    let partitions = (0..SHARDS).map(repo::route_due_pk).collect();
    let act = |item| futures::FutureExt::boxed(sweep_one(ctx, item));
    let drained = due::drain(ctx.store.as_ref(), partitions, now, run, SWEEP_ITEMS_AT_ONCE, act).await?;
    let mut report = SweepReport { left_due: drained.left_due, ..SweepReport::default() };
    for swept in drained.outcomes {
        match swept {
            Swept::Dialog => report.dialogs += 1,
            Swept::Queue => report.queues += 1,
            Swept::Nothing => {}
        }
    }
    Ok(report)
}

async fn sweep_one(ctx: &Context, item: Item) -> Swept {
    if repo::is_forward_marker(&item) {
        return match forward_late(ctx, item).await {
            Ok(()) => Swept::Dialog,
            Err(error) => {
                tracing::error!(%error, "forwarding a chatbot's message from the sweep failed");
                Swept::Nothing
            }
        };
    }
    if repo::is_queue_recheck(&item) {
        return match recheck(ctx, item).await {
            Ok(()) => Swept::Queue,
            Err(error) => {
                tracing::error!(%error, "queue re-check failed");
                Swept::Nothing
            }
        };
    }
    let Some(dialog_id) = item.get("dialog_id").and_then(Value::as_str).and_then(DialogId::parse) else {
        return Swept::Nothing;
    };
    let due_key = item.get(Index::Gsi3.sk_attr()).and_then(Value::as_str);
    match due_dialog(ctx, &dialog_id, due_key).await {
        Ok(_) => Swept::Dialog,
        Err(error) => {
            tracing::error!(%error, dialog = %dialog_id, "routing sweep failed on a dialog");
            Swept::Nothing
        }
    }
}

/// A chatbot's dialog whose message was not confirmed forwarded within `repo::FORWARD_GRACE` (its
/// `MessageReceived` lost, or the router failed): forwarded now, and the marker removed on condition it is
/// the one read (a later message's replaces it and stays due).
async fn forward_late(ctx: &Context, item: Item) -> Result<()> {
    let due_key = item.get(Index::Gsi3.sk_attr()).cloned().unwrap_or(Value::Null);
    let marker: repo::ForwardMarker = repo::from_item(item)?;
    serve_chatbot(ctx, &marker.dialog_id).await?;
    let done = Write::Delete {
        key: repo::forward_marker_key(&marker.dialog_id),
        condition: Condition::Equals(Index::Gsi3.sk_attr().into(), due_key),
    };
    ignore_conflict(ctx.store.transact(vec![done]).await)
}

/// A dialog whose routing state is due (at the due sort key `due_key` read): route it (unrouted), or move it
/// on (wait time over). The state of a dialog that is not stored is removed once it is an orphan
/// (`due::is_orphan`: ingest writes the unrouted marker before the dialog, so it may still be on its way).
pub(super) async fn due_dialog(ctx: &Context, dialog_id: &DialogId, due_key: Option<&str>) -> Result<Routed> {
    let now = ctx.clock.now();
    let mut drawn = None;
    for attempt in 1..=ATTEMPTS {
        let Some(snapshot) = Snapshot::load(ctx, dialog_id).await? else {
            if !due::is_orphan(due_key, now) {
                return Ok(Routed::Missing);
            }
            let key = repo::route_key(dialog_id);
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
            Some(id) => repo::get_group(ctx.store.as_ref(), &dialog.tenant_id, id).await?,
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
pub(super) async fn answered(ctx: &Context, dialog: &Dialog, assignee: &EmployeeId) -> Result<bool> {
    let since = dialog.assigned_at.unwrap_or(dialog.opened_at);
    let query = Query::table(repo::messages_of(&dialog.id))
        .range(SkRange::BeginsWith(repo::MESSAGE_SK_PREFIX.into()))
        .descending()
        .limit(ANSWER_LOOKBACK);
    for item in ctx.store.query(&query).await?.items {
        let message: Message = repo::from_item(item)?;
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
pub(super) async fn accept_writes(ctx: &Context, snapshot: &Snapshot) -> Result<bool> {
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
        Write::Check { key: repo::dialog_key(&snapshot.dialog.id), condition: snapshot.dialog_condition() },
    ];
    match ctx.store.transact(writes).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(other) => Err(other.into()),
    }
}
