//! The router's events, and the chatbot: what it is forwarded and how it hands a dialog to people.

use super::*;

/// What the router does with a domain event (the EventBridge rule's targets; the local runner's bus).
pub async fn handle_event(ctx: &Context, event: &DomainEvent) -> Result<()> {
    match event {
        DomainEvent::DialogOpened { dialog_id, .. } => {
            let routed = route_dialog(ctx, dialog_id).await?;
            tracing::info!(dialog = %dialog_id, ?routed, "dialog routed");
        }
        DomainEvent::DialogClosed { tenant_id, dialog_id, assignee_id, .. } => {
            // Its assignee has room again: their queues are served. (Events published before they named
            // the assignee: read from the dialog.)
            let assignee = match assignee_id {
                Some(assignee) => Some(assignee.clone()),
                None => repo::load_dialog(ctx.store.as_ref(), dialog_id).await?.and_then(|d| d.assignee_id),
            };
            if let Some(assignee) = assignee {
                employee_available(ctx, tenant_id, &assignee).await?;
            }
        }
        DomainEvent::MessageReceived { dialog_id, message_id, .. } => {
            serve_chatbot(ctx, dialog_id).await?;
            // Forwarded (or nothing left to forward): the marker ingest left for this message goes, unless a
            // later message replaced it (that one's event, or the sweep, takes it).
            let done = Write::Delete {
                key: repo::forward_marker_key(dialog_id),
                condition: Condition::Equals("message_id".into(), Value::String(message_id.to_string())),
            };
            ignore_conflict(ctx.store.transact(vec![done]).await)?;
        }
        _ => {}
    }
    Ok(())
}

/// Forwards the dialog's new customer messages to the chatbot that has it and sends its answers; when the
/// chatbot hands the dialog over (or is gone), the dialog goes to people. Answers how many messages were
/// forwarded.
pub async fn serve_chatbot(ctx: &Context, dialog_id: &DialogId) -> Result<usize> {
    let forwarding = chatbot::forward_new_messages(ctx, dialog_id).await?;
    if forwarding.hand_to_people {
        // Boxed: handing over routes the dialog, and routing may give a dialog to a chatbot again.
        let routed = Box::pin(hand_to_people(ctx, dialog_id)).await?;
        tracing::info!(dialog = %dialog_id, ?routed, "the dialog went from the chatbot to people");
    }
    Ok(forwarding.forwarded)
}

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
                key: repo::dialog_key(&dialog.id),
                set: dialog_fields(&dialog)?,
                remove: Vec::new(),
                condition: snapshot.dialog_condition(),
            },
            repo::chatbot_holds_write(&dialog, false),
        ];
        match ctx.store.transact(writes).await {
            Ok(()) => break,
            Err(StoreError::Conflict { .. }) => backoff(attempt).await,
            Err(other) => return Err(other.into()),
        }
    }
    route_dialog(ctx, dialog_id).await
}
