//! Queues: the dialogs waiting for a group or an employee, served when someone becomes available and
//! re-checked from the due index.

use super::*;

/// Routes the waiting dialogs of one queue, oldest first; answers how many were assigned.
pub async fn route_queue(ctx: &Context, tenant: &TenantId, queue: &Queue) -> Result<usize> {
    route_waiting(ctx, tenant, queue, true).await
}

pub(super) async fn route_waiting(
    ctx: &Context,
    tenant: &TenantId,
    queue: &Queue,
    strict: bool,
) -> Result<usize> {
    let query = Query::index(Index::Gsi1, repo::queue_of(tenant, &queue.id())).limit(QUEUE_BATCH);
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
pub(super) async fn groups_of_member(
    ctx: &Context,
    tenant: &TenantId,
    employee: &EmployeeId,
) -> Result<Vec<Group>> {
    let mut groups = Vec::new();
    let mut page = None;
    loop {
        let query = Query::table(repo::groups_of(tenant)).limit(500).after(page);
        let found = ctx.store.query(&query).await?;
        for item in found.items {
            let group: Group = repo::from_item(item)?;
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
pub(super) async fn ensure_recheck(ctx: &Context, tenant: &TenantId, queue: &Queue) -> Result<()> {
    let id = queue.id();
    let record = QueueRecheck { tenant_id: tenant.clone(), queue: id.clone() };
    let due = ctx.clock.now() + QUEUE_RECHECK;
    let item = recheck_item(&record, due)?;
    match ctx.store.transact(vec![Write::Put { item, condition: Condition::NotExists }]).await {
        Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// A due queue re-check: serve the queue, then re-check again later if it is still not empty. Conditioned
/// on the due key read, so overlapping sweeps act once.
pub(super) async fn recheck(ctx: &Context, item: Item) -> Result<()> {
    let observed = item.get(Index::Gsi3.sk_attr()).cloned().unwrap_or(Value::Null);
    let record: QueueRecheck = repo::from_item(item)?;
    let key = repo::queue_recheck_key(&record.tenant_id, &record.queue);
    let condition = Condition::Equals(Index::Gsi3.sk_attr().into(), observed);
    let Some(queue) = Queue::parse(&record.queue) else {
        return ignore_conflict(ctx.store.transact(vec![Write::Delete { key, condition }]).await);
    };
    route_waiting(ctx, &record.tenant_id, &queue, false).await?;
    let query = Query::index(Index::Gsi1, repo::queue_of(&record.tenant_id, &record.queue)).limit(1);
    let waiting = !ctx.store.query(&query).await?.items.is_empty();
    let write = if waiting {
        let due = ctx.clock.now() + QUEUE_RECHECK;
        Write::Put { item: recheck_item(&record, due)?, condition }
    } else {
        Write::Delete { key, condition }
    };
    ignore_conflict(ctx.store.transact(vec![write]).await)
}

/// A queue's re-check, due at `due`.
fn recheck_item(record: &QueueRecheck, due: Timestamp) -> Result<Item> {
    let due_index = (
        Index::Gsi3,
        repo::route_due_pk(repo::due_shard(&record.queue, SHARDS)),
        repo::due_sk(due, &repo::queue_recheck_due_id(&record.queue)),
    );
    repo::to_item(record, &repo::queue_recheck_key(&record.tenant_id, &record.queue), &[due_index])
}

pub(super) fn ignore_conflict(result: std::result::Result<(), StoreError>) -> Result<()> {
    match result {
        Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}
