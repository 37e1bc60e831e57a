//! Employees' actions on routing: which dialogs they may see, accepting and transferring.

use super::*;

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
        Some(group) => Ok(repo::get_group(ctx.store.as_ref(), &dialog.tenant_id, &group)
            .await?
            .is_some_and(|g| g.members.contains(employee))),
        None => Ok(false),
    }
}

/// A dialog by id as the caller may see it: any of the tenant's for an admin key; for an employee key, the
/// ones assigned to them and those waiting in their own queue or their groups' (`visible_to`). Anything
/// else is "not found".
pub async fn visible_dialog(ctx: &Context, principal: &Principal, id: &str) -> Result<Dialog> {
    let not_found = || Error::NotFound { what: "dialog" };
    let dialog_id = DialogId::parse(id).ok_or_else(not_found)?;
    let dialog = repo::load_dialog(ctx.store.as_ref(), &dialog_id).await?.ok_or_else(not_found)?;
    if dialog.tenant_id != principal.tenant_id {
        return Err(not_found());
    }
    if principal.role == Role::Employee && dialog.assignee_id != principal.employee_id {
        let Some(me) = &principal.employee_id else {
            return Err(not_found());
        };
        if !visible_to(ctx, &dialog, me).await? {
            return Err(not_found());
        }
    }
    Ok(dialog)
}

/// An employee takes a dialog: one waiting in their queue or their group's (the first to accept has it;
/// the others get 409), or one assigned to them (its wait time stops). Capacity holds: at
/// `max_dialogs` open dialogs, accepting answers 409.
pub async fn accept(ctx: &Context, principal: &Principal, id: &str) -> Result<Dialog> {
    let me = employee_of(principal)?;
    let visible = match visible_dialog(ctx, principal, id).await {
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
        let employee = repo::get_employee(ctx.store.as_ref(), &principal.tenant_id, &me)
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
            return repo::load_dialog(ctx.store.as_ref(), &visible.id)
                .await?
                .ok_or(Error::NotFound { what: "dialog" });
        }
        backoff(attempt).await;
    }
    Err(kept_changing())
}

/// Why an employee cannot accept a dialog they cannot see: a colleague took it first from a group they
/// share (409), or it is none of theirs (404).
pub(super) async fn taken_or_not_found(
    ctx: &Context,
    principal: &Principal,
    me: &EmployeeId,
    id: &str,
) -> Result<Error> {
    let not_found = Error::NotFound { what: "dialog" };
    let Some(dialog) = DialogId::parse(id) else {
        return Ok(not_found);
    };
    let Some(dialog) =
        repo::load_dialog(ctx.store.as_ref(), &dialog).await?.filter(|d| d.tenant_id == principal.tenant_id)
    else {
        return Ok(not_found);
    };
    let Some(group) = dialog.group_id.as_ref().filter(|_| dialog.assignee_id.is_some()) else {
        return Ok(not_found);
    };
    let shared = repo::get_group(ctx.store.as_ref(), &dialog.tenant_id, group)
        .await?
        .is_some_and(|g| g.members.contains(me));
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
    let visible = visible_dialog(ctx, principal, id).await?;
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
            if repo::get_employee(ctx.store.as_ref(), tenant, employee).await?.is_none() {
                return Err(Error::rule("not_found", "employee_id", "no such employee in this tenant"));
            }
            Queue::Employee(employee.clone())
        }
        TransferTarget::Group(group) => {
            if repo::get_group(ctx.store.as_ref(), tenant, group).await?.is_none() {
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
    repo::load_dialog(ctx.store.as_ref(), &visible.id).await?.ok_or(Error::NotFound { what: "dialog" })
}
