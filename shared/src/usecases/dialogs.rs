//! Reading dialogs and their messages, scoped to the caller's tenant (and, for an employee key, to their
//! own dialogs).

use serde_json::Value;

use crate::domain::{
    Dialog, DialogId, DialogStatus, EmployeeId, MAX_BUTTON_CHARS, MAX_BUTTONS, Message, Template,
};
use crate::error::{Error, Result};
use crate::ports::events::DomainEvent;
use crate::ports::store::{Condition, Index, Query, SkRange, Write};
use crate::repo;
use crate::usecases::auth::{Principal, Role};
use crate::usecases::{Context, media, outbox, routing, templates};

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
        Some(status) => Query::index(Index::Gsi2, repo::dialogs_with_status(tenant, status.as_str())),
        None => Query::index(Index::Gsi1, repo::dialogs_of(tenant)),
    };
    let page = ctx.store.query(&query.descending().limit(limit).after(page)).await?;
    let mut dialogs = page.items.into_iter().map(repo::from_item).collect::<Result<Vec<Dialog>>>()?;
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

/// A dialog by id, whatever its tenant (the scheduled jobs act for the system).
pub async fn load(ctx: &Context, id: &DialogId) -> Result<Option<Dialog>> {
    repo::load_dialog(ctx.store.as_ref(), id).await
}

/// A dialog by id as the caller may see it (see `routing::visible_dialog`).
pub async fn get_dialog(ctx: &Context, principal: &Principal, id: &str) -> Result<Dialog> {
    routing::visible_dialog(ctx, principal, id).await
}

/// The dialog's messages, oldest first (or newest first).
pub async fn list_messages(
    ctx: &Context,
    principal: &Principal,
    dialog_id: &str,
    limit: usize,
    page: Option<String>,
    newest_first: bool,
) -> Result<(Vec<Message>, Option<String>)> {
    let dialog = get_dialog(ctx, principal, dialog_id).await?;
    let mut query = Query::table(repo::messages_of(&dialog.id))
        .range(SkRange::BeginsWith(repo::MESSAGE_SK_PREFIX.into()))
        .limit(limit)
        .after(page);
    if newest_first {
        query = query.descending();
    }
    let page = ctx.store.query(&query).await?;
    let mut messages = page.items.into_iter().map(repo::from_item).collect::<Result<Vec<Message>>>()?;
    media::link_attachments(ctx, &mut messages).await?;
    Ok((messages, page.next))
}

/// Every message of a dialog, oldest first (export, erase): page by page to the end.
pub async fn all_messages(ctx: &Context, dialog: &DialogId) -> Result<Vec<Message>> {
    let mut messages = Vec::new();
    let mut page = None;
    loop {
        let query = Query::table(repo::messages_of(dialog))
            .range(SkRange::BeginsWith(repo::MESSAGE_SK_PREFIX.into()))
            .limit(500)
            .after(page);
        let found = ctx.store.query(&query).await?;
        for item in found.items {
            messages.push(repo::from_item(item)?);
        }
        match found.next {
            Some(next) => page = Some(next),
            None => return Ok(messages),
        }
    }
}

/// Closes a dialog (an admin, or the employee it is assigned to). The customer's next message opens a new
/// dialog. Closing a closed dialog changes nothing.
pub async fn close_dialog(ctx: &Context, principal: &Principal, id: &str) -> Result<Dialog> {
    let dialog = get_dialog(ctx, principal, id).await?;
    require_assignee(principal, &dialog)?;
    close(ctx, dialog).await
}

/// Closes a dialog on the system's behalf (tests, tools), whatever its timers say.
pub async fn close(ctx: &Context, dialog: Dialog) -> Result<Dialog> {
    close_on(ctx, dialog, Condition::Always, None).await
}

/// Closes a dialog its close timer found idle: on condition the timer is as the caller read it
/// (`close_timer`) and no message came since the dialog and its customer's open-dialog pointer were read.
/// Messages touch neither the close timer (it re-arms itself, `usecases::timers`) nor, but once a minute,
/// the dialog: the pointer's `last_activity_at` is what a message racing the close changes, and the
/// dialog's what a reply changes. Then nothing is written and the caller gets a conflict.
pub async fn close_if_idle(
    ctx: &Context,
    dialog: Dialog,
    pointer: &repo::OpenDialog,
    close_timer: Condition,
) -> Result<Dialog> {
    close_on(ctx, dialog, close_timer, Some(pointer)).await
}

/// Marks the dialog closed, removes the customer's open-dialog pointer and ends the dialog's timers in one
/// transaction (so ingest never adds a message to a closed dialog), on condition the close timer is as
/// the caller read it (`Always` for a close by hand) and, for a close for inactivity (`idle`: the pointer
/// as read), that no activity came since.
async fn close_on(
    ctx: &Context,
    mut dialog: Dialog,
    close_timer: Condition,
    idle: Option<&repo::OpenDialog>,
) -> Result<Dialog> {
    if dialog.is_closed() {
        return Ok(dialog);
    }
    let previous = dialog.status.as_str();
    let last_activity = repo::to_value(&dialog.last_activity_at)?;
    dialog.close(ctx.clock.now())?;
    let unchanged = Condition::Equals("status".into(), Value::String(previous.into()));
    let save = Write::Put {
        item: repo::dialog_item(&dialog)?,
        condition: match idle {
            Some(_) => {
                Condition::All(vec![unchanged, Condition::Equals("last_activity_at".into(), last_activity)])
            }
            None => unchanged,
        },
    };
    let names_dialog = Condition::Equals("dialog_id".into(), Value::String(dialog.id.to_string()));
    let release = Write::Delete {
        key: repo::open_dialog_key(&dialog.channel_id, &dialog.customer.id),
        condition: idle.map_or(names_dialog, repo::OpenDialog::unchanged),
    };
    let end_auto_replies = repo::cancel_auto_replies_write(&dialog.id);
    let end_close =
        Write::Delete { key: repo::timer_key(&dialog.id, repo::TimerKind::Close), condition: close_timer };
    let mut writes = vec![save, release, end_auto_replies, end_close];
    // The assignee's capacity slot is freed in the same transaction; its condition failing means the
    // dialog was transferred or moved on meanwhile.
    writes.extend(repo::release_writes(&dialog));
    match ctx.store.transact(writes).await {
        Ok(()) => {}
        // Index 1, the pointer, fails a close for inactivity when a customer's message came meanwhile.
        Err(conflict)
            if conflict.failed_at(0)
                || (idle.is_some() && conflict.failed_at(1))
                || conflict.failed_at(3)
                || conflict.failed_at(4) =>
        {
            return Err(Error::Conflict("the dialog changed meanwhile; read it again".into()));
        }
        Err(crate::ports::StoreError::Conflict { .. }) => {
            return Err(Error::Internal(format!("dialog {} had no open-dialog pointer", dialog.id)));
        }
        Err(other) => return Err(other.into()),
    }
    let event = DomainEvent::DialogClosed {
        tenant_id: dialog.tenant_id.clone(),
        channel_id: dialog.channel_id.clone(),
        dialog_id: dialog.id.clone(),
        assignee_id: dialog.assignee_id.clone(),
    };
    if let Err(error) = ctx.bus.publish(&[event]).await {
        tracing::warn!(%error, dialog = %dialog.id, "DialogClosed not published");
    }
    Ok(dialog)
}

/// What a reply carries: text, buttons and uploads, or an approved template (WhatsApp).
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub text: String,
    pub buttons: Vec<String>,
    /// Upload ids (`POST /v1/uploads`).
    pub attachments: Vec<String>,
    pub template: Option<Template>,
}

impl Reply {
    /// A reply of text alone.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), ..Self::default() }
    }
}

/// An employee's (or admin's) reply: written to the outbox and sent through the channel's provider. A
/// closed dialog reopens, assigned to the writer (an admin's reply gives it back to the employee who had
/// it), unless the customer has opened another dialog on the channel since (409). Where the provider keeps
/// a customer-service window (WhatsApp: 24 hours after the customer's last message), free text outside it
/// is refused (422 `outside_customer_service_window`) before anything is written; a template goes.
pub async fn reply(ctx: &Context, principal: &Principal, dialog_id: &str, reply: Reply) -> Result<Message> {
    let dialog = get_dialog(ctx, principal, dialog_id).await?;
    require_assignee(principal, &dialog)?;
    let Reply { text, buttons, attachments, template } = reply;
    if buttons.len() > MAX_BUTTONS {
        return Err(Error::rule("too_many_buttons", "buttons", format!("at most {MAX_BUTTONS} buttons")));
    }
    for (i, button) in buttons.iter().enumerate() {
        if button.trim().is_empty() || button.chars().count() > MAX_BUTTON_CHARS {
            return Err(Error::rule(
                "invalid_button",
                format!("buttons[{i}]"),
                format!("1 to {MAX_BUTTON_CHARS} characters"),
            ));
        }
    }
    let channel = repo::load_channel(ctx.store.as_ref(), &dialog.channel_id)
        .await?
        .filter(|c| c.is_active())
        .ok_or_else(|| {
            Error::rule("channel_inactive", "dialog", "the dialog's channel is not connected any more")
        })?;
    let text = text.trim();
    let module = ctx.providers.get(channel.provider)?;
    let now = ctx.clock.now();
    match &template {
        Some(template) => {
            if !text.is_empty() || !attachments.is_empty() || !buttons.is_empty() {
                return Err(Error::rule(
                    "template_alone",
                    "template",
                    "a template goes alone: no text, buttons or attachments beside it",
                ));
            }
            templates::check(ctx, &channel, module, template).await?;
        }
        None => {
            let limit = module.max_text_chars();
            // Files alone need no text; a text, if any, is within the provider's limit.
            if (text.is_empty() && attachments.is_empty()) || text.chars().count() > limit {
                return Err(Error::rule(
                    "invalid_text",
                    "text",
                    format!(
                        "1 to {limit} characters on {} / от 1 до {limit} символов",
                        channel.provider.kind()
                    ),
                ));
            }
            if let Some(window) = module.service_window() {
                let last = last_inbound_at(ctx, &dialog.id).await?;
                if last.is_none_or(|last| now.duration_since(last) >= window) {
                    return Err(Error::rule(
                        "outside_customer_service_window",
                        "template",
                        "more than 24 hours since the customer's last message: only an approved template goes \
                         / прошло больше 24 часов с последнего сообщения клиента: можно отправить только шаблон",
                    ));
                }
            }
        }
    }
    let files = media::attach_uploads(ctx, principal, module, &attachments).await?;
    // The reply cancels the pending auto-replies in its own transaction: a due auto-reply racing it either
    // went out before (and the reply still goes) or finds its timer gone and sends nothing.
    let mut extra = vec![repo::cancel_auto_replies_write(&dialog.id)];
    let reopening = dialog.is_closed();
    let dialog = match reopening {
        false => {
            extra.push(repo::replied_write(&dialog));
            dialog
        }
        true => {
            let (reopened, writes) = reopen_writes(principal, dialog, &channel, now)?;
            extra.extend(writes);
            reopened
        }
    };
    let mut message =
        Message::outbound(&dialog, text.to_owned(), buttons, principal.employee_id.clone(), now)
            .with_attachments(files);
    message.template = template;
    let mut sent = outbox::send_in_dialog(ctx, &dialog, message, extra).await.map_err(|error| match error {
        Error::Conflict(_) if reopening => Error::Conflict(
            "the customer has an open dialog on this channel now: write there / у клиента уже есть открытый диалог"
                .into(),
        ),
        other => other,
    })?;
    media::link_attachments(ctx, std::slice::from_mut(&mut sent)).await?;
    Ok(sent)
}

/// A closed dialog open again for the writer: the dialog (on condition it is still closed), the customer's
/// open-dialog pointer (on condition they have no other open dialog here: their next message joins this
/// one) and the close timer, in the reply's transaction.
fn reopen_writes(
    principal: &Principal,
    mut dialog: Dialog,
    channel: &crate::domain::Channel,
    now: jiff::Timestamp,
) -> Result<(Dialog, Vec<Write>)> {
    let assignee = principal.employee_id.clone().or(dialog.assignee_id.take());
    dialog.status = match assignee {
        Some(_) => DialogStatus::Assigned,
        None => DialogStatus::Open,
    };
    dialog.assigned_at = assignee.as_ref().map(|_| now);
    dialog.assignee_id = assignee;
    dialog.closed_at = None;
    dialog.last_activity_at = now;
    dialog.slot = None;
    dialog.chatbot_id = None;
    let pointer = repo::OpenDialog {
        dialog_id: dialog.id.clone(),
        awaiting_reply: false,
        last_activity_at: Some(now),
        listed_at: Some(now),
        chatbot: false,
    };
    let pointer_key = repo::open_dialog_key(&dialog.channel_id, &dialog.customer.id);
    let writes = vec![
        Write::Put {
            item: repo::dialog_item(&dialog)?,
            condition: Condition::Equals(
                "status".into(),
                Value::String(DialogStatus::Closed.as_str().into()),
            ),
        },
        Write::Put { item: repo::to_item(&pointer, &pointer_key, &[])?, condition: Condition::NotExists },
        repo::close_timer_write(&dialog.id, channel, now)?,
    ];
    Ok((dialog, writes))
}

/// When the customer last wrote in the dialog: the newest inbound message (message ids sort by time).
async fn last_inbound_at(ctx: &Context, dialog: &DialogId) -> Result<Option<jiff::Timestamp>> {
    let mut page = None;
    for _ in 0..20 {
        let query = Query::table(repo::messages_of(dialog))
            .range(SkRange::BeginsWith(repo::MESSAGE_SK_PREFIX.into()))
            .descending()
            .limit(50)
            .after(page);
        let found = ctx.store.query(&query).await?;
        for item in found.items {
            let message: Message = repo::from_item(item)?;
            if message.direction == crate::domain::Direction::In {
                return Ok(Some(message.received_at));
            }
        }
        match found.next {
            Some(next) => page = Some(next),
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// An employee acts on a dialog once it is theirs: a queued dialog their group can see is accepted first.
fn require_assignee(principal: &Principal, dialog: &Dialog) -> Result<()> {
    if principal.role == Role::Employee && dialog.assignee_id != principal.employee_id {
        return Err(Error::rule(
            "not_assignee",
            "dialog",
            "accept the dialog before answering or closing it",
        ));
    }
    Ok(())
}
