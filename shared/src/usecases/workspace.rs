//! The employee's workspace: my open dialogs, the dialogs waiting in my queues, my status. Taking and
//! passing on dialogs are routing's (`routing::accept`, `routing::transfer`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::people::{Employee, EmployeeChanges};
use crate::domain::{Dialog, DialogId, DialogStatus};
use crate::error::{Error, Result};
use crate::ports::store::{Index, Query};
use crate::repo;
use crate::usecases::auth::Principal;
use crate::usecases::{Context, people, routing};

async fn load_dialog(ctx: &Context, id: &DialogId) -> Result<Option<Dialog>> {
    ctx.store.get(&repo::dialog_key(id)).await?.map(repo::from_item).transpose()
}

fn dialog_id_of(item: &crate::ports::store::Item) -> Option<DialogId> {
    item.get("dialog_id").and_then(Value::as_str).and_then(DialogId::parse)
}

/// The dialogs assigned to the caller and still open (read from their capacity slots: at most
/// `max_dialogs` of them).
pub async fn my_dialogs(
    ctx: &Context,
    principal: &Principal,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<Dialog>, Option<String>)> {
    let me = routing::employee_of(principal)?;
    let query = Query::table(repo::slots_of(&principal.tenant_id, &me)).limit(limit).after(page);
    let found = ctx.store.query(&query).await?;
    let mut dialogs = Vec::with_capacity(found.items.len());
    for id in found.items.iter().filter_map(dialog_id_of) {
        if let Some(dialog) = load_dialog(ctx, &id).await?
            && dialog.assignee_id.as_ref() == Some(&me)
            && !dialog.is_closed()
        {
            dialogs.push(dialog);
        }
    }
    dialogs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((dialogs, found.next))
}

/// Where a page of `my_queue` continues: which of the caller's queues, and where in it.
#[derive(Debug, Serialize, Deserialize)]
struct QueuePage {
    queue: usize,
    #[serde(default)]
    after: Option<String>,
}

fn bad_page() -> Error {
    Error::bad_request("invalid_page", "the page token is not one this list gave out")
}

/// The dialogs waiting for the caller: in their own queue first, then in their groups' queues (offered
/// ones included), oldest first within each queue. Any of them can be accepted.
pub async fn my_queue(
    ctx: &Context,
    principal: &Principal,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<Dialog>, Option<String>)> {
    let me = routing::employee_of(principal)?;
    let queues = routing::queues_of(ctx, &principal.tenant_id, &me).await?;
    let mut position = match page {
        None => QueuePage { queue: 0, after: None },
        Some(token) => URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(bad_page)?,
    };
    let limit = limit.max(1);
    let mut dialogs = Vec::new();
    while let Some(queue) = queues.get(position.queue) {
        let wanted = limit - dialogs.len();
        let query = Query::index(Index::Gsi1, repo::queue_of(&principal.tenant_id, &queue.id()))
            .limit(wanted)
            .after(position.after.take());
        let found = ctx.store.query(&query).await?;
        for id in found.items.iter().filter_map(dialog_id_of) {
            // The index may lag a little behind an accept: show only what is really still waiting.
            if let Some(dialog) = load_dialog(ctx, &id).await?
                && dialog.tenant_id == principal.tenant_id
                && dialog.status == DialogStatus::Open
                && dialog.assignee_id.is_none()
                && dialog.chatbot_id.is_none()
            {
                dialogs.push(dialog);
            }
        }
        match found.next {
            Some(next) => position.after = Some(next),
            None => position = QueuePage { queue: position.queue + 1, after: None },
        }
        if dialogs.len() >= limit {
            break;
        }
    }
    let next = (position.queue < queues.len())
        .then(|| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&position).unwrap_or_default()));
    Ok((dialogs, next))
}

/// Sets the caller's status (`{"status"}` only). Coming online serves their queues at once.
pub async fn set_my_status(ctx: &Context, principal: &Principal, body: &Value) -> Result<Employee> {
    let me = routing::employee_of(principal)?;
    let changes = EmployeeChanges::from_json(body)?;
    if let Some(field) = changes.beyond_status() {
        return Err(Error::rule("status_only", field, "this route changes only your status"));
    }
    if changes.status.is_none() {
        return Err(Error::rule("required", "status", "is required: online, away or offline"));
    }
    people::update_employee(ctx, principal, me.as_str(), changes).await
}

/// Who the caller is: their key's role and, for an employee key, the employee (the workspace's start).
pub async fn me(ctx: &Context, principal: &Principal) -> Result<Option<Employee>> {
    match &principal.employee_id {
        None => Ok(None),
        Some(id) => repo::get_employee(ctx.store.as_ref(), &principal.tenant_id, id)
            .await?
            .map(Some)
            .ok_or(Error::NotFound { what: "employee" }),
    }
}
