//! The contact center's people as the admin manages them: employees, groups and chatbots of a tenant.
//!
//! Access: admins do everything; an employee key may list and read employees and groups (to pick a colleague
//! for a transfer) and change its own employee's `status`. Anything else is "not found" to it, as elsewhere.
//!
//! References stay whole: a group names only employees of its tenant, and an employee, group or chatbot
//! that a group or a channel still names cannot be deleted (409). Group writes and deletes bump one
//! per-tenant version item in their transaction (`repo::people_version_key`), so a group cannot be saved
//! naming an employee that a concurrent delete removed.

use serde_json::Value;

use crate::domain::people::{Chatbot, ChatbotChanges, Employee, EmployeeChanges, Group, GroupChanges};
use crate::domain::settings::Handling;
use crate::domain::{Channel, ChannelStatus, ChatbotId, EmployeeId, GroupId, TenantId};
use crate::error::{Error, Result};
use crate::ports::StoreError;
use crate::ports::store::{Condition, Item, Key, Write};
use crate::repo;
use crate::secret::Secret;
use crate::usecases::auth::{Principal, Role};
use crate::usecases::{Context, channels, chatbot};

/// How often a write that lost a race with another group write or delete is tried again.
const ATTEMPTS: usize = 3;
/// Page size of the internal scans (employees of a group check, channels naming a person).
const SCAN_PAGE: usize = 500;

/// What a write that names employees, groups or chatbots carries to stay consistent with deletes: read it
/// before checking the references, put `write()` into the same transaction; if that write fails its
/// condition, something was saved or deleted meanwhile: check again.
#[derive(Debug, Clone)]
pub struct PeopleGuard {
    key: Key,
    seen: Option<i64>,
}

impl PeopleGuard {
    pub async fn read(ctx: &Context, tenant: &TenantId) -> Result<Self> {
        let key = repo::people_version_key(tenant);
        let seen = ctx.store.get(&key).await?.and_then(|item| item.get("version").and_then(Value::as_i64));
        Ok(Self { key, seen })
    }

    pub fn write(&self) -> Write {
        let mut set = Item::new();
        set.insert("version".into(), Value::from(self.seen.unwrap_or(0) + 1));
        let condition = match self.seen {
            Some(version) => Condition::Equals("version".into(), Value::from(version)),
            None => Condition::NotExists,
        };
        Write::Update { key: self.key.clone(), set, remove: Vec::new(), condition }
    }
}

// ---- employees ----

pub async fn list_employees(
    ctx: &Context,
    principal: &Principal,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<Employee>, Option<String>)> {
    repo::list(ctx.store.as_ref(), repo::employees_of(&principal.tenant_id), limit, page).await
}

/// One employee of the caller's tenant (admins and employee keys).
pub async fn read_employee(ctx: &Context, principal: &Principal, id: &str) -> Result<Employee> {
    let id = EmployeeId::parse(id).ok_or(Error::NotFound { what: "employee" })?;
    repo::get_employee(ctx.store.as_ref(), &principal.tenant_id, &id)
        .await?
        .ok_or(Error::NotFound { what: "employee" })
}

pub async fn create_employee(
    ctx: &Context,
    principal: &Principal,
    changes: EmployeeChanges,
) -> Result<Employee> {
    principal.require_admin()?;
    let employee = Employee::create(principal.tenant_id.clone(), changes, ctx.clock.now())?;
    let item = repo::to_item(&employee, &repo::employee_key(&employee.tenant_id, &employee.id), &[])?;
    ctx.store.transact(vec![Write::Put { item, condition: Condition::NotExists }]).await?;
    Ok(employee)
}

/// Changes what the body names and keeps the rest. An employee key may change only its own `status`.
pub async fn update_employee(
    ctx: &Context,
    principal: &Principal,
    id: &str,
    changes: EmployeeChanges,
) -> Result<Employee> {
    let id = EmployeeId::parse(id).ok_or(Error::NotFound { what: "employee" })?;
    if principal.role == Role::Employee {
        if principal.employee_id.as_ref() != Some(&id) {
            return Err(Error::NotFound { what: "employee" });
        }
        if let Some(field) = changes.beyond_status() {
            return Err(Error::rule(
                "status_only",
                field,
                "an employee key may change only its own status; ask an admin for the rest",
            ));
        }
    }
    let key = repo::employee_key(&principal.tenant_id, &id);
    let mut employee: Employee =
        repo::load(ctx.store.as_ref(), &key).await?.ok_or(Error::NotFound { what: "employee" })?;
    employee.apply(changes.clone(), ctx.clock.now());
    let mut set = Item::new();
    if changes.name.is_some() {
        set.insert("name".into(), repo::to_value(&employee.name)?);
    }
    let came_online = changes.status == Some(crate::domain::people::EmployeeStatus::Online);
    if changes.status.is_some() {
        set.insert("status".into(), repo::to_value(&employee.status)?);
    }
    if changes.max_dialogs.is_some() {
        set.insert("max_dialogs".into(), repo::to_value(&employee.max_dialogs)?);
    }
    set.insert("updated_at".into(), repo::to_value(&employee.updated_at)?);
    // Only the fields sent are written, so an admin renaming and the employee going online at the same
    // moment do not undo each other.
    update_existing(ctx, key.clone(), set, "employee").await?;
    let updated: Employee =
        repo::load(ctx.store.as_ref(), &key).await?.ok_or(Error::NotFound { what: "employee" })?;
    if came_online && updated.status == crate::domain::people::EmployeeStatus::Online {
        // Coming online (by the employee or an admin) serves the queues the employee can take from.
        match crate::usecases::routing::employee_available(ctx, &updated.tenant_id, &updated.id).await {
            Ok(assigned) => tracing::info!(employee = %updated.id, assigned, "online: queues served"),
            // The status is saved; the queues' periodic re-check serves them shortly.
            Err(error) => tracing::warn!(%error, employee = %updated.id, "serving the queues failed"),
        }
    }
    Ok(updated)
}

/// Deletes an employee no group and no channel names (409 otherwise, saying which).
pub async fn delete_employee(ctx: &Context, principal: &Principal, id: &str) -> Result<()> {
    principal.require_admin()?;
    let employee = read_employee(ctx, principal, id).await?;
    let key = repo::employee_key(&employee.tenant_id, &employee.id);
    for _ in 0..ATTEMPTS {
        let guard = PeopleGuard::read(ctx, &employee.tenant_id).await?;
        if let Some(group) = groups_of_tenant(ctx, &employee.tenant_id)
            .await?
            .into_iter()
            .find(|group| group.members.contains(&employee.id))
        {
            return Err(Error::Conflict(format!(
                "employee {} is a member of group \"{}\" ({}); remove them from the group first",
                employee.id, group.name, group.id
            )));
        }
        if let Some(channel) = channel_naming(ctx, principal, |handling, _| {
            matches!(handling, Some(Handling::Employee { employee_id }) if *employee_id == employee.id)
        })
        .await?
        {
            return Err(in_use("employee", employee.id.as_str(), &channel));
        }
        match delete_guarded(ctx, key.clone(), &guard).await? {
            Guarded::Done => {
                // A deleted employee's keys must not keep working.
                crate::usecases::auth::revoke_employee_keys(ctx, &employee.tenant_id, &employee.id).await?;
                return Ok(());
            }
            Guarded::Missing => return Err(Error::NotFound { what: "employee" }),
            Guarded::Raced => continue,
        }
    }
    Err(raced())
}

// ---- groups ----

pub async fn list_groups(
    ctx: &Context,
    principal: &Principal,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<Group>, Option<String>)> {
    repo::list(ctx.store.as_ref(), repo::groups_of(&principal.tenant_id), limit, page).await
}

/// One group of the caller's tenant (admins and employee keys).
pub async fn read_group(ctx: &Context, principal: &Principal, id: &str) -> Result<Group> {
    let id = GroupId::parse(id).ok_or(Error::NotFound { what: "group" })?;
    repo::get_group(ctx.store.as_ref(), &principal.tenant_id, &id)
        .await?
        .ok_or(Error::NotFound { what: "group" })
}

pub async fn create_group(ctx: &Context, principal: &Principal, changes: GroupChanges) -> Result<Group> {
    principal.require_admin()?;
    let group = Group::create(principal.tenant_id.clone(), changes, ctx.clock.now())?;
    let item = repo::to_item(&group, &repo::group_key(&group.tenant_id, &group.id), &[])?;
    for _ in 0..ATTEMPTS {
        let guard = PeopleGuard::read(ctx, &group.tenant_id).await?;
        check_members(ctx, &group.tenant_id, &group.members).await?;
        let writes = vec![Write::Put { item: item.clone(), condition: Condition::NotExists }, guard.write()];
        match ctx.store.transact(writes).await {
            Ok(()) => return Ok(group),
            Err(conflict @ StoreError::Conflict { .. }) if conflict.failed_at(0) => {
                return Err(conflict.into());
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(raced())
}

/// Changes what the body names and keeps the rest; `members` replaces the whole list.
pub async fn update_group(
    ctx: &Context,
    principal: &Principal,
    id: &str,
    changes: GroupChanges,
) -> Result<Group> {
    principal.require_admin()?;
    let mut group = read_group(ctx, principal, id).await?;
    let key = repo::group_key(&group.tenant_id, &group.id);
    group.apply(changes.clone(), ctx.clock.now());
    let mut set = Item::new();
    if changes.name.is_some() {
        set.insert("name".into(), repo::to_value(&group.name)?);
    }
    if changes.members.is_some() {
        set.insert("members".into(), repo::to_value(&group.members)?);
    }
    if changes.distribution.is_some() {
        set.insert("distribution".into(), repo::to_value(&group.distribution)?);
    }
    if changes.wait_seconds.is_some() {
        set.insert("wait_seconds".into(), repo::to_value(&group.wait_seconds)?);
    }
    set.insert("updated_at".into(), repo::to_value(&group.updated_at)?);
    for _ in 0..ATTEMPTS {
        let guard = PeopleGuard::read(ctx, &group.tenant_id).await?;
        if let Some(members) = &changes.members {
            check_members(ctx, &group.tenant_id, members).await?;
        }
        let writes = vec![
            Write::Update {
                key: key.clone(),
                set: set.clone(),
                remove: Vec::new(),
                condition: Condition::Exists,
            },
            guard.write(),
        ];
        match ctx.store.transact(writes).await {
            Ok(()) => {
                return repo::load(ctx.store.as_ref(), &key).await?.ok_or(Error::NotFound { what: "group" });
            }
            Err(conflict) if conflict.failed_at(0) => return Err(Error::NotFound { what: "group" }),
            Err(StoreError::Conflict { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(raced())
}

/// Deletes a group no channel names (409 otherwise).
pub async fn delete_group(ctx: &Context, principal: &Principal, id: &str) -> Result<()> {
    principal.require_admin()?;
    let group = read_group(ctx, principal, id).await?;
    let key = repo::group_key(&group.tenant_id, &group.id);
    for _ in 0..ATTEMPTS {
        let guard = PeopleGuard::read(ctx, &group.tenant_id).await?;
        if let Some(channel) = channel_naming(
            ctx,
            principal,
            |handling, _| matches!(handling, Some(Handling::Group { group_id }) if *group_id == group.id),
        )
        .await?
        {
            return Err(in_use("group", group.id.as_str(), &channel));
        }
        match delete_guarded(ctx, key.clone(), &guard).await? {
            Guarded::Done => return Ok(()),
            Guarded::Missing => return Err(Error::NotFound { what: "group" }),
            Guarded::Raced => continue,
        }
    }
    Err(raced())
}

// ---- chatbots (admins only) ----

pub async fn list_chatbots(
    ctx: &Context,
    principal: &Principal,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<Chatbot>, Option<String>)> {
    principal.require_admin()?;
    repo::list(ctx.store.as_ref(), repo::chatbots_of(&principal.tenant_id), limit, page).await
}

pub async fn read_chatbot(ctx: &Context, principal: &Principal, id: &str) -> Result<Chatbot> {
    principal.require_admin()?;
    let id = ChatbotId::parse(id).ok_or(Error::NotFound { what: "chatbot" })?;
    repo::get_chatbot(ctx.store.as_ref(), &principal.tenant_id, &id)
        .await?
        .ok_or(Error::NotFound { what: "chatbot" })
}

/// A chatbot just created, with the secret its calls are signed with: the only time it is shown.
#[derive(Debug)]
pub struct NewChatbot {
    pub chatbot: Chatbot,
    pub signing_secret: Secret,
}

/// A new chatbot, and its signing secret (kept in the secret store before the chatbot is, so that no
/// chatbot exists without one); only where the tenant's chatbot service is on.
pub async fn create_chatbot(
    ctx: &Context,
    principal: &Principal,
    changes: ChatbotChanges,
) -> Result<NewChatbot> {
    principal.require_admin()?;
    let tenant = repo::get_tenant(ctx.store.as_ref(), &principal.tenant_id).await?;
    if !tenant.features.chatbots {
        return Err(Error::rule(
            "chatbots_off",
            "features.chatbots",
            "chatbots need the chatbot service / чат-боты доступны только с услугой чат-ботов",
        ));
    }
    let chatbot = Chatbot::create(tenant.id, changes, ctx.clock.now())?;
    chatbot::check_webhook_url(ctx, &chatbot.webhook_url).await?;
    let signing_secret = chatbot::new_signing_secret(ctx, &chatbot.tenant_id, &chatbot.id).await?;
    let item = repo::to_item(&chatbot, &repo::chatbot_key(&chatbot.tenant_id, &chatbot.id), &[])?;
    if let Err(error) = ctx.store.transact(vec![Write::Put { item, condition: Condition::NotExists }]).await {
        // No chatbot: no secret either (best effort; the error that matters is the store's).
        if let Err(cleanup) = chatbot::delete_signing_secret(ctx, &chatbot.tenant_id, &chatbot.id).await {
            tracing::warn!(error = %cleanup, chatbot = %chatbot.id, "the signing secret of a chatbot not created was not deleted");
        }
        return Err(error.into());
    }
    Ok(NewChatbot { chatbot, signing_secret })
}

/// A new signing secret for the chatbot, shown once: from now on its calls are signed with it, never
/// again with the old one (admins only).
pub async fn rotate_chatbot_secret(ctx: &Context, principal: &Principal, id: &str) -> Result<Secret> {
    let existing = read_chatbot(ctx, principal, id).await?;
    let secret = chatbot::new_signing_secret(ctx, &existing.tenant_id, &existing.id).await?;
    // Deleted meanwhile: its secret goes too.
    if repo::get_chatbot(ctx.store.as_ref(), &existing.tenant_id, &existing.id).await?.is_none() {
        chatbot::delete_signing_secret(ctx, &existing.tenant_id, &existing.id).await?;
        return Err(Error::NotFound { what: "chatbot" });
    }
    Ok(secret)
}

pub async fn update_chatbot(
    ctx: &Context,
    principal: &Principal,
    id: &str,
    changes: ChatbotChanges,
) -> Result<Chatbot> {
    let mut chatbot = read_chatbot(ctx, principal, id).await?;
    if let Some(url) = &changes.webhook_url {
        chatbot::check_webhook_url(ctx, url).await?;
    }
    let key = repo::chatbot_key(&chatbot.tenant_id, &chatbot.id);
    chatbot.apply(changes.clone(), ctx.clock.now());
    let mut set = Item::new();
    if changes.name.is_some() {
        set.insert("name".into(), repo::to_value(&chatbot.name)?);
    }
    if changes.webhook_url.is_some() {
        set.insert("webhook_url".into(), repo::to_value(&chatbot.webhook_url)?);
    }
    if changes.enabled.is_some() {
        set.insert("enabled".into(), repo::to_value(&chatbot.enabled)?);
    }
    set.insert("updated_at".into(), repo::to_value(&chatbot.updated_at)?);
    update_existing(ctx, key.clone(), set, "chatbot").await?;
    repo::load(ctx.store.as_ref(), &key).await?.ok_or(Error::NotFound { what: "chatbot" })
}

/// Deletes a chatbot no channel names, for handling or outside working hours (409 otherwise).
pub async fn delete_chatbot(ctx: &Context, principal: &Principal, id: &str) -> Result<()> {
    let chatbot = read_chatbot(ctx, principal, id).await?;
    let key = repo::chatbot_key(&chatbot.tenant_id, &chatbot.id);
    for _ in 0..ATTEMPTS {
        let guard = PeopleGuard::read(ctx, &chatbot.tenant_id).await?;
        if let Some(channel) = channel_naming(ctx, principal, |handling, off_hours_bot| {
            matches!(handling, Some(Handling::Chatbot { chatbot_id }) if *chatbot_id == chatbot.id)
                || off_hours_bot == Some(&chatbot.id)
        })
        .await?
        {
            return Err(in_use("chatbot", chatbot.id.as_str(), &channel));
        }
        match delete_guarded(ctx, key.clone(), &guard).await? {
            Guarded::Done => {
                return chatbot::delete_signing_secret(ctx, &chatbot.tenant_id, &chatbot.id).await;
            }
            Guarded::Missing => return Err(Error::NotFound { what: "chatbot" }),
            Guarded::Raced => continue,
        }
    }
    Err(raced())
}

// ---- internals ----

async fn update_existing(ctx: &Context, key: Key, set: Item, what: &'static str) -> Result<()> {
    let write = Write::Update { key, set, remove: Vec::new(), condition: Condition::Exists };
    match ctx.store.transact(vec![write]).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict { .. }) => Err(Error::NotFound { what }),
        Err(other) => Err(other.into()),
    }
}

enum Guarded {
    Done,
    Missing,
    Raced,
}

async fn delete_guarded(ctx: &Context, key: Key, guard: &PeopleGuard) -> Result<Guarded> {
    let writes = vec![Write::Delete { key, condition: Condition::Exists }, guard.write()];
    match ctx.store.transact(writes).await {
        Ok(()) => Ok(Guarded::Done),
        Err(conflict) if conflict.failed_at(0) => Ok(Guarded::Missing),
        Err(StoreError::Conflict { .. }) => Ok(Guarded::Raced),
        Err(other) => Err(other.into()),
    }
}

fn raced() -> Error {
    Error::Conflict("employees or groups were changed at the same time; try again".into())
}

fn in_use(what: &str, id: &str, channel: &Channel) -> Error {
    Error::Conflict(format!(
        "{what} {id} is named in the settings of channel \"{}\" ({}); change that channel's settings first",
        channel.name, channel.id
    ))
}

/// Every group of the tenant (one partition; contact centers have a handful to a few hundred).
async fn groups_of_tenant(ctx: &Context, tenant: &TenantId) -> Result<Vec<Group>> {
    let mut groups = Vec::new();
    let mut page = None;
    loop {
        let (mut more, next) =
            repo::list(ctx.store.as_ref(), repo::groups_of(tenant), SCAN_PAGE, page).await?;
        groups.append(&mut more);
        match next {
            Some(token) => page = Some(token),
            None => return Ok(groups),
        }
    }
}

/// 422 naming `members[i]` for the first member that is not an employee of the tenant. Reads the tenant's
/// employees partition (a few pages at contact-center scale) rather than one read per member.
async fn check_members(ctx: &Context, tenant: &TenantId, members: &[EmployeeId]) -> Result<()> {
    if members.is_empty() {
        return Ok(());
    }
    let mut known = std::collections::HashSet::new();
    let mut page = None;
    loop {
        let (employees, next) =
            repo::list::<Employee>(ctx.store.as_ref(), repo::employees_of(tenant), SCAN_PAGE, page).await?;
        known.extend(employees.into_iter().map(|employee| employee.id));
        match next {
            Some(token) => page = Some(token),
            None => break,
        }
    }
    match members.iter().position(|member| !known.contains(member)) {
        Some(i) => {
            Err(Error::rule("unknown_employee", format!("members[{i}]"), "no such employee in this tenant"))
        }
        None => Ok(()),
    }
}

/// The first channel of the tenant still in use (not disconnected) whose settings `names` matches, by
/// walking the tenant's channels page by page: a tenant has tens of channels, so this stays cheap.
async fn channel_naming(
    ctx: &Context,
    principal: &Principal,
    names: impl Fn(Option<&Handling>, Option<&ChatbotId>) -> bool,
) -> Result<Option<Channel>> {
    let mut page = None;
    loop {
        let (channels, next) = channels::list_channels(ctx, principal, SCAN_PAGE, page).await?;
        if let Some(channel) = channels.into_iter().find(|channel| {
            channel.status != ChannelStatus::Disconnected
                && names(channel.settings.handling.as_ref(), channel.settings.off_hours.chatbot_id.as_ref())
        }) {
            return Ok(Some(channel));
        }
        match next {
            Some(token) => page = Some(token),
            None => return Ok(None),
        }
    }
}
