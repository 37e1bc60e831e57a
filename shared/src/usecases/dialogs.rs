//! Reading dialogs and their messages, scoped to the caller's tenant (and, for an employee key, to their
//! own dialogs).

use crate::domain::{Dialog, DialogId, DialogStatus, EmployeeId, Message};
use crate::error::{Error, Result};
use crate::ports::store::{Index, Query, SkRange};
use crate::records;
use crate::usecases::Context;
use crate::usecases::auth::{Principal, Role};

#[derive(Debug, Default, Clone)]
pub struct DialogFilter {
    pub status: Option<DialogStatus>,
    pub assignee: Option<EmployeeId>,
}

/// A page of the tenant's dialogs, newest first. An employee key sees only dialogs assigned to them.
pub async fn list_dialogs(
    ctx: &Context,
    principal: &Principal,
    filter: &DialogFilter,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<Dialog>, Option<String>)> {
    let tenant = &principal.tenant_id;
    let query = match filter.status {
        Some(status) => Query::index(Index::Gsi2, records::dialogs_with_status(tenant, status_name(status))),
        None => Query::index(Index::Gsi1, records::dialogs_of(tenant)),
    };
    let page = ctx.store.query(&query.descending().limit(limit).after(page)).await?;
    let mut dialogs = page.items.into_iter().map(records::from_item).collect::<Result<Vec<Dialog>>>()?;
    let assignee = match principal.role {
        Role::Admin => filter.assignee.clone(),
        Role::Employee => principal.employee_id.clone(),
    };
    if let Some(assignee) = assignee {
        // Pages may come back short under this filter; `next` still walks the whole list.
        dialogs.retain(|d| d.assignee_id.as_ref() == Some(&assignee));
    }
    Ok((dialogs, page.next))
}

fn status_name(status: DialogStatus) -> &'static str {
    match status {
        DialogStatus::Open => "open",
        DialogStatus::Assigned => "assigned",
        DialogStatus::Closed => "closed",
    }
}

pub async fn get_dialog(ctx: &Context, principal: &Principal, id: &str) -> Result<Dialog> {
    let not_found = Error::NotFound { what: "dialog" };
    let dialog_id = DialogId::parse(id).ok_or(Error::NotFound { what: "dialog" })?;
    let item =
        ctx.store.get(&records::dialog_key(&dialog_id)).await?.ok_or(Error::NotFound { what: "dialog" })?;
    let dialog: Dialog = records::from_item(item)?;
    if dialog.tenant_id != principal.tenant_id {
        return Err(not_found);
    }
    if principal.role == Role::Employee && dialog.assignee_id != principal.employee_id {
        return Err(not_found);
    }
    Ok(dialog)
}

/// The dialog's messages, oldest first.
pub async fn list_messages(
    ctx: &Context,
    principal: &Principal,
    dialog_id: &str,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<Message>, Option<String>)> {
    let dialog = get_dialog(ctx, principal, dialog_id).await?;
    let query = Query::table(records::messages_of(&dialog.id))
        .range(SkRange::BeginsWith(records::MESSAGE_SK_PREFIX.into()))
        .limit(limit)
        .after(page);
    let page = ctx.store.query(&query).await?;
    let messages = page.items.into_iter().map(records::from_item).collect::<Result<Vec<Message>>>()?;
    Ok((messages, page.next))
}
