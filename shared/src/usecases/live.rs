//! Live updates for the operator workspace (docs/API.md, "The operator workspace"): what an open page is
//! told, and who is told what.
//!
//! A page asks for a one-time **ticket** with its API key (`POST /v1/stream/tickets`) and opens a WebSocket
//! with it: the runner's `/v1/stream` locally, the API Gateway WebSocket API on AWS (its authorizer redeems
//! the ticket). The key itself never goes into a URL; a ticket is good once, for [`TICKET_TTL`], and only the
//! SHA-256 of it is stored.
//!
//! A **push** names what changed (`{"type", "dialog_id", "message_id"?, "employee_id"?}`), never its
//! content: the page reads that through the API with its key, so the API's visibility rules stay the only
//! ones. Who receives an event: nobody outside its tenant; an admin, every event of the tenant; an employee,
//! the events of the dialogs they may see now (`routing::visible_to`: assigned to them, or waiting in their
//! queue or their groups'), and `queue_changed` when a dialog was assigned to somebody else (a dialog
//! offered to them may have left their queue). `dialog_opened` goes to admins only: routing follows at once
//! with `dialog_queued` or `dialog_assigned`.
//!
//! On AWS the open connections are items in the table (by connection id, listed per tenant on gsi1), kept
//! [`CONNECTION_TTL`] (API Gateway closes a WebSocket after 2 hours); the push function reads them for each
//! event and drops those API Gateway answers 410 for.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::domain::{Dialog, DialogId, EmployeeId, MessageId, TenantId};
use crate::error::{Error, Result};
use crate::ports::events::DomainEvent;
use crate::ports::live::{LiveConnections, PushError};
use crate::ports::store::{Condition, Index, Query, StoreError, Write};
use crate::repo;
use crate::usecases::Context;
use crate::usecases::auth::{self, Principal, Role};
use crate::usecases::routing;

/// How long a ticket may wait before it is used.
pub const TICKET_TTL: SignedDuration = SignedDuration::from_secs(60);

/// How long a connection's record is kept: API Gateway's 2-hour limit on a WebSocket, and a margin.
pub const CONNECTION_TTL: SignedDuration = SignedDuration::from_secs(2 * 3600 + 300);

/// The connections read per page when an event is pushed.
const CONNECTIONS_PAGE: usize = 200;

#[derive(Debug, Serialize, Deserialize)]
struct TicketRecord {
    tenant_id: TenantId,
    role: Role,
    employee_id: Option<EmployeeId>,
    /// Not `expires_at`: that name is the item's TTL attribute (`repo::with_expiry`).
    valid_until: Timestamp,
}

/// A ticket as handed to the page.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub ticket: String,
    pub expires_at: Timestamp,
}

/// A one-time ticket for the caller's live connection.
pub async fn issue_ticket(ctx: &Context, principal: &Principal) -> Result<Ticket> {
    let ticket = auth::generate_key().expose().to_owned();
    let expires_at = ctx.clock.now() + TICKET_TTL;
    let record = TicketRecord {
        tenant_id: principal.tenant_id.clone(),
        role: principal.role,
        employee_id: principal.employee_id.clone(),
        valid_until: expires_at,
    };
    let key = repo::live_ticket_key(&auth::hash_key(&ticket));
    let item = repo::with_expiry(repo::to_item(&record, &key, &[])?, expires_at.as_second());
    ctx.store.transact(vec![Write::Put { item, condition: Condition::NotExists }]).await?;
    Ok(Ticket { ticket, expires_at })
}

/// Who a ticket was given to; it is used up. Unknown, used or expired: `Unauthorized`.
pub async fn redeem_ticket(ctx: &Context, ticket: &str) -> Result<Principal> {
    if ticket.is_empty() || ticket.len() > 128 {
        return Err(Error::Unauthorized);
    }
    let key = repo::live_ticket_key(&auth::hash_key(ticket));
    let record: TicketRecord = repo::load(ctx.store.as_ref(), &key).await?.ok_or(Error::Unauthorized)?;
    if record.valid_until <= ctx.clock.now() {
        return Err(Error::Unauthorized);
    }
    // Used once: of two redeeming at once, one deletes it and the other is refused.
    match ctx.store.transact(vec![Write::Delete { key, condition: Condition::Exists }]).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => return Err(Error::Unauthorized),
        Err(other) => return Err(other.into()),
    }
    Ok(Principal { tenant_id: record.tenant_id, role: record.role, employee_id: record.employee_id })
}

/// What an open page is told: which dialog changed and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// The event's `type` (`message_received`, `dialog_assigned`, ...), or `queue_changed`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialog_id: Option<DialogId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    /// `dialog_assigned`: to whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<EmployeeId>,
}

impl Push {
    fn of(event: &DomainEvent) -> Self {
        let (dialog_id, message_id, employee_id) = match event {
            DomainEvent::DialogOpened { dialog_id, .. }
            | DomainEvent::DialogClosed { dialog_id, .. }
            | DomainEvent::DialogQueued { dialog_id, .. } => (dialog_id, None, None),
            DomainEvent::DialogAssigned { dialog_id, employee_id, .. } => {
                (dialog_id, None, Some(employee_id.clone()))
            }
            DomainEvent::MessageReceived { dialog_id, message_id, .. }
            | DomainEvent::MessageSent { dialog_id, message_id, .. }
            | DomainEvent::MessageFailed { dialog_id, message_id, .. }
            | DomainEvent::MessageDelivered { dialog_id, message_id, .. } => {
                (dialog_id, Some(message_id.clone()), None)
            }
        };
        Self { kind: kind_of(event), dialog_id: Some(dialog_id.clone()), message_id, employee_id }
    }

    fn queue_changed() -> Self {
        Self { kind: "queue_changed".into(), dialog_id: None, message_id: None, employee_id: None }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The event's `type` as published: its serde tag (`DomainEvent`'s `rename_all = "snake_case"`), the one
/// place that names it.
fn kind_of(event: &DomainEvent) -> String {
    serde_json::to_value(event)
        .ok()
        .and_then(|value| value.get("type").and_then(serde_json::Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn tenant_of(event: &DomainEvent) -> &TenantId {
    match event {
        DomainEvent::DialogOpened { tenant_id, .. }
        | DomainEvent::DialogAssigned { tenant_id, .. }
        | DomainEvent::MessageReceived { tenant_id, .. }
        | DomainEvent::MessageSent { tenant_id, .. }
        | DomainEvent::DialogClosed { tenant_id, .. }
        | DomainEvent::MessageFailed { tenant_id, .. }
        | DomainEvent::DialogQueued { tenant_id, .. }
        | DomainEvent::MessageDelivered { tenant_id, .. } => tenant_id,
    }
}

/// An event ready to be pushed to many viewers: its dialog read once.
pub struct Outgoing<'a> {
    event: &'a DomainEvent,
    /// What a viewer who may see the event is told (made once, cloned for each).
    push: Push,
    dialog: Option<Dialog>,
}

impl<'a> Outgoing<'a> {
    pub async fn prepare(ctx: &Context, event: &'a DomainEvent) -> Result<Self> {
        let push = Push::of(event);
        let dialog = match &push.dialog_id {
            Some(id) => repo::load_dialog(ctx.store.as_ref(), id).await?,
            None => None,
        };
        Ok(Self { event, push, dialog })
    }

    pub fn tenant_id(&self) -> &TenantId {
        tenant_of(self.event)
    }

    /// What `viewer` is told of the event, if anything (the rules in the module's documentation).
    pub async fn push_for(&self, ctx: &Context, viewer: &Principal) -> Result<Option<Push>> {
        if &viewer.tenant_id != self.tenant_id() {
            return Ok(None);
        }
        if viewer.role == Role::Admin {
            return Ok(Some(self.push.clone()));
        }
        let Some(me) = &viewer.employee_id else {
            return Ok(None);
        };
        match self.event {
            DomainEvent::DialogOpened { .. } => return Ok(None),
            DomainEvent::DialogAssigned { employee_id, .. } if employee_id != me => {
                return Ok(Some(Push::queue_changed()));
            }
            _ => {}
        }
        match &self.dialog {
            Some(dialog) if &dialog.tenant_id == self.tenant_id() => {
                let visible = routing::visible_to(ctx, dialog, me).await?;
                Ok(visible.then(|| self.push.clone()))
            }
            _ => Ok(None),
        }
    }
}

/// An open connection of the AWS WebSocket API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub connection_id: String,
    pub tenant_id: TenantId,
    pub role: Role,
    pub employee_id: Option<EmployeeId>,
    pub connected_at: Timestamp,
}

impl Connection {
    pub fn principal(&self) -> Principal {
        Principal {
            tenant_id: self.tenant_id.clone(),
            role: self.role,
            employee_id: self.employee_id.clone(),
        }
    }
}

/// Keeps a connection API Gateway accepted (its authorizer redeemed the ticket for `principal`).
pub async fn connected(ctx: &Context, connection_id: &str, principal: &Principal) -> Result<Connection> {
    if connection_id.is_empty() || connection_id.len() > 128 {
        return Err(Error::bad_request("invalid_connection", "not a connection id"));
    }
    let now = ctx.clock.now();
    let connection = Connection {
        connection_id: connection_id.to_owned(),
        tenant_id: principal.tenant_id.clone(),
        role: principal.role,
        employee_id: principal.employee_id.clone(),
        connected_at: now,
    };
    let key = repo::live_connection_key(connection_id);
    let listed = (Index::Gsi1, repo::live_connections_of(&principal.tenant_id), now.to_string());
    let item = repo::to_item(&connection, &key, &[listed])?;
    let item = repo::with_expiry(item, (now + CONNECTION_TTL).as_second());
    ctx.store.transact(vec![Write::Put { item, condition: Condition::Always }]).await?;
    Ok(connection)
}

/// Forgets a connection (closed by the page, by API Gateway, or gone when pushed to).
pub async fn disconnected(ctx: &Context, connection_id: &str) -> Result<()> {
    let key = repo::live_connection_key(connection_id);
    ctx.store.transact(vec![Write::Delete { key, condition: Condition::Always }]).await?;
    Ok(())
}

/// What one event's push did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FanOut {
    /// Connections that were sent the push.
    pub pushed: usize,
    /// Connections that were not told (another role's or dialog's).
    pub skipped: usize,
    /// Connections API Gateway said are gone: forgotten.
    pub dropped: usize,
    /// Pushes that failed otherwise (lost; the page catches up when it reconnects).
    pub failed: usize,
}

/// Pushes `event` to every open connection of its tenant that may see it (AWS: the push function).
pub async fn fan_out(
    ctx: &Context,
    connections: &dyn LiveConnections,
    event: &DomainEvent,
) -> Result<FanOut> {
    let outgoing = Outgoing::prepare(ctx, event).await?;
    let now = ctx.clock.now();
    let mut report = FanOut::default();
    let mut after = None;
    loop {
        let query = Query::index(Index::Gsi1, repo::live_connections_of(outgoing.tenant_id()))
            .limit(CONNECTIONS_PAGE)
            .after(after.take());
        let page = ctx.store.query(&query).await?;
        for item in page.items {
            // A record past its TTL may outlive it a while in DynamoDB: such a connection is closed.
            if repo::expired(&item, now) {
                continue;
            }
            let connection: Connection = repo::from_item(item)?;
            let Some(push) = outgoing.push_for(ctx, &connection.principal()).await? else {
                report.skipped += 1;
                continue;
            };
            match connections.post(&connection.connection_id, push.to_json().as_bytes()).await {
                Ok(()) => report.pushed += 1,
                Err(PushError::Gone) => {
                    disconnected(ctx, &connection.connection_id).await?;
                    report.dropped += 1;
                }
                Err(PushError::Failed(reason)) => {
                    tracing::warn!(connection = %connection.connection_id, %reason, "live push failed");
                    report.failed += 1;
                }
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::embedded::{FileSecretStore, InProcessBus, RedbStore};
    use crate::domain::ChannelId;
    use crate::ports::clock::ManualClock;
    use crate::usecases::Providers;

    fn context(dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> Context {
        Context::new(
            Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store")),
            Arc::new(FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets")),
            Arc::new(InProcessBus::new(8)),
            clock,
            Providers::default(),
            "https://example.test",
        )
    }

    #[tokio::test]
    async fn a_ticket_opens_one_connection_within_its_minute() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(Timestamp::from_second(1_767_268_800).expect("valid")));
        let ctx = context(&dir, clock.clone());
        let employee = Principal {
            tenant_id: TenantId::generate(),
            role: Role::Employee,
            employee_id: Some(EmployeeId::generate()),
        };
        let ticket = issue_ticket(&ctx, &employee).await.expect("ticket");
        assert_eq!(redeem_ticket(&ctx, &ticket.ticket).await.expect("redeemed"), employee);
        assert!(matches!(redeem_ticket(&ctx, &ticket.ticket).await, Err(Error::Unauthorized)), "used twice");
        let late = issue_ticket(&ctx, &employee).await.expect("ticket");
        clock.advance(TICKET_TTL);
        assert!(matches!(redeem_ticket(&ctx, &late.ticket).await, Err(Error::Unauthorized)), "expired");
        assert!(matches!(redeem_ticket(&ctx, "").await, Err(Error::Unauthorized)));
        assert!(matches!(redeem_ticket(&ctx, "ock_unknown").await, Err(Error::Unauthorized)));
    }

    #[test]
    fn a_push_names_the_change_not_its_content() {
        let event = DomainEvent::MessageFailed {
            tenant_id: TenantId::generate(),
            dialog_id: DialogId::generate(),
            message_id: MessageId::generate(),
            reason: "the customer blocked the bot".into(),
        };
        let push = Push::of(&event);
        assert_eq!(push.kind, "message_failed");
        let json: serde_json::Value = serde_json::from_str(&push.to_json()).expect("json");
        assert!(json.get("reason").is_none() && json.get("tenant_id").is_none(), "{json}");
        let queued = DomainEvent::DialogQueued {
            tenant_id: TenantId::generate(),
            channel_id: ChannelId::generate(),
            dialog_id: DialogId::generate(),
        };
        assert_eq!(Push::of(&queued).kind, "dialog_queued");
        assert_eq!(Push::queue_changed().to_json(), r#"{"type":"queue_changed"}"#);
    }
}
