//! Deciding who a dialog is for: the channel's target, then who of it is available now.

use super::*;

/// A member as routing sees them now, with the slots they hold.
pub(super) struct Member {
    pub(super) candidate: Candidate,
    pub(super) held: Vec<u32>,
}

pub(super) async fn members_now(ctx: &Context, tenant: &TenantId, ids: &[EmployeeId]) -> Result<Vec<Member>> {
    let mut members = Vec::with_capacity(ids.len());
    for id in ids {
        // A member deleted meanwhile is skipped, as if offline.
        let Some(employee) = repo::get_employee(ctx.store.as_ref(), tenant, id).await? else {
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

pub(super) fn random_pick(n: usize) -> usize {
    use rand::Rng;
    rand::rng().random_range(0..n.max(1))
}

/// Who the dialog is for, before looking at who is available.
pub(super) enum Target {
    Chatbot(ChatbotId),
    Employee(EmployeeId),
    Group(GroupId),
    Nobody,
}

pub(super) async fn target_of(ctx: &Context, snapshot: &Snapshot) -> Result<Target> {
    let dialog = &snapshot.dialog;
    let state = snapshot.state.as_ref();
    if let Some(queue) = state.and_then(|s| s.queue.as_deref()).and_then(Queue::parse) {
        return Ok(match queue {
            Queue::Group(group) => Target::Group(group),
            Queue::Employee(employee) => Target::Employee(employee),
        });
    }
    let Some(channel) = repo::load_channel(ctx.store.as_ref(), &dialog.channel_id).await? else {
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
            match repo::get_chatbot(ctx.store.as_ref(), &dialog.tenant_id, &chatbot_id).await? {
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

pub(super) enum Decision {
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
pub(super) async fn ticket(ctx: &Context, group: &Group, drawn: &mut Option<u64>) -> Result<u64> {
    if let Some(ticket) = *drawn {
        return Ok(ticket);
    }
    let value = ctx.store.increment(&repo::round_robin_key(&group.tenant_id, &group.id), "cursor", 1).await?;
    let ticket = u64::try_from(value.saturating_sub(1)).unwrap_or(0);
    *drawn = Some(ticket);
    Ok(ticket)
}

/// The group's choice for a dialog, `passed` being the members it already went to.
pub(super) async fn decide_in_group(
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

pub(super) async fn decide(
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
            let Some(employee) = repo::get_employee(ctx.store.as_ref(), tenant, &id).await? else {
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
            let Some(group) = repo::get_group(ctx.store.as_ref(), tenant, &id).await? else {
                return Ok(Decision::Unhandled);
            };
            let passed = snapshot.state.as_ref().map(|s| s.tried.clone()).unwrap_or_default();
            decide_in_group(ctx, &group, &passed, strict, drawn).await
        }
    }
}
