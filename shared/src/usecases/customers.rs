//! Customers: one person across channels and over time (API.md, "Customers and history").
//!
//! A profile is made in the ingest transaction of the first message a channel gets from a person, with the
//! identity record that maps the channel's customer (`Customer::id`) to it; the batch read ingest does
//! anyway reads the identity, so a new dialog costs no extra round trip and a steady-state message none at
//! all. Each dialog has an entry in its customer's own partition: their dialogs are one Query of it
//! (O(their dialogs)), plus one per customer merged into them.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::domain::{
    Channel, Customer, CustomerId, CustomerProfile, Dialog, DialogId, Identity, MIN_QUERY_CHARS, Message,
};
use crate::error::{Error, Result};
use crate::ports::store::{Condition, Index, Item, Query, SkRange, Write};
use crate::repo;
use crate::usecases::auth::Principal;
use crate::usecases::{Context, dialogs, media};

/// A transaction takes at most this many writes (DynamoDB's limit is 100): a merge moves the dialogs of
/// the merged customer in batches of this size.
const MAX_WRITES: usize = 90;

/// Pages of the tenant's customers a search reads at most (of `SEARCH_PAGE` each).
const SEARCH_PAGES: usize = 50;
const SEARCH_PAGE: usize = 200;

/// A customer as the API shows it: the profile and their dialogs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerView {
    pub profile: CustomerProfile,
    pub dialogs: Vec<DialogId>,
}

/// The customer of a new dialog, and the writes that go into ingest's transaction: a known identity is
/// checked to still name its customer (a merge racing the message makes the transaction fail and ingest
/// read again); an unknown one gets a new profile and its identity record (both `NotExists`).
pub(crate) fn for_new_dialog(
    channel: &Channel,
    customer: &Customer,
    identity: Option<Item>,
    now: Timestamp,
) -> Result<(CustomerId, Vec<Write>)> {
    let key = repo::identity_key(&channel.id, &customer.id);
    let known = identity.map(repo::from_item::<repo::IdentityRecord>).transpose()?;
    if let Some(known) = known.filter(|record| record.tenant_id == channel.tenant_id) {
        let check = Write::Check {
            key,
            condition: Condition::Equals("customer_id".into(), Value::String(known.customer_id.to_string())),
        };
        return Ok((known.customer_id, vec![check]));
    }
    let identity = Identity {
        channel_id: channel.id.clone(),
        provider: channel.provider,
        external_id: customer.id.clone(),
        username: customer.handle.clone(),
    };
    let profile =
        CustomerProfile::first_seen(channel.tenant_id.clone(), identity.clone(), customer.name.clone(), now);
    let writes = vec![
        repo::customer_put(&profile, None)?,
        repo::identity_put(&identity, &channel.tenant_id, &profile.id, None)?,
    ];
    Ok((profile.id, writes))
}

/// The dialog's entry in its customer's list (dialogs stored before profiles existed have none).
pub(crate) fn dialog_entry_write(dialog: &Dialog) -> Result<Option<Write>> {
    dialog.customer_id.as_ref().map(|customer| repo::customer_dialog_put(dialog, customer)).transpose()
}

/// The profile as stored, whatever its state.
async fn load_raw(ctx: &Context, principal: &Principal, id: &CustomerId) -> Result<Option<CustomerProfile>> {
    repo::load(ctx.store.as_ref(), &repo::customer_key(&principal.tenant_id, id)).await
}

/// The customer `id` stands for: the one it was merged into, if it was; none when unknown, of another
/// tenant, or erased.
pub async fn load(ctx: &Context, principal: &Principal, id: &CustomerId) -> Result<Option<CustomerProfile>> {
    let mut id = id.clone();
    // A merged customer points at the one it went into, which may itself have been merged since.
    for _ in 0..8 {
        match load_raw(ctx, principal, &id).await? {
            Some(profile) if profile.erasing => return Ok(None),
            Some(CustomerProfile { merged_into: Some(next), .. }) => id = next,
            other => return Ok(other),
        }
    }
    Err(Error::Internal(format!("customer {id}: merged too many times over")))
}

fn parse_id(raw: &str) -> Result<CustomerId> {
    CustomerId::parse(raw).ok_or(Error::NotFound { what: "customer" })
}

async fn require(ctx: &Context, principal: &Principal, raw: &str) -> Result<CustomerProfile> {
    load(ctx, principal, &parse_id(raw)?).await?.ok_or(Error::NotFound { what: "customer" })
}

/// The customer's dialog entries, newest first: their own and those of the customers merged into them.
async fn dialog_entries(ctx: &Context, profile: &CustomerProfile) -> Result<Vec<repo::CustomerDialog>> {
    let mut entries = Vec::new();
    for id in std::iter::once(&profile.id).chain(&profile.absorbed) {
        let mut page = None;
        loop {
            let query = Query::table(repo::customer_partition(&profile.tenant_id, id))
                .range(SkRange::BeginsWith(repo::CUSTOMER_DIALOG_SK_PREFIX.into()))
                .descending()
                .limit(500)
                .after(page);
            let found = ctx.store.query(&query).await?;
            for item in found.items {
                entries.push(repo::from_item::<repo::CustomerDialog>(item)?);
            }
            match found.next {
                Some(next) => page = Some(next),
                None => break,
            }
        }
    }
    entries.sort_by(|a, b| b.opened_at.cmp(&a.opened_at).then_with(|| b.dialog_id.cmp(&a.dialog_id)));
    entries.dedup_by(|a, b| a.dialog_id == b.dialog_id);
    Ok(entries)
}

async fn view(ctx: &Context, profile: CustomerProfile) -> Result<CustomerView> {
    let dialogs = dialog_entries(ctx, &profile).await?.into_iter().map(|entry| entry.dialog_id).collect();
    Ok(CustomerView { profile, dialogs })
}

/// `GET /v1/customers/{id}`: the profile with identities and dialogs, newest first. Any key of the tenant
/// reads it: an employee sees who they are talking to.
pub async fn get(ctx: &Context, principal: &Principal, id: &str) -> Result<CustomerView> {
    let profile = require(ctx, principal, id).await?;
    view(ctx, profile).await
}

/// `GET /v1/customers?query=`: customers whose name, handle, phone or address contains the query (case
/// blind; at least two characters), newest first, at most `limit`.
pub async fn search(
    ctx: &Context,
    principal: &Principal,
    query: &str,
    limit: usize,
) -> Result<Vec<CustomerProfile>> {
    let query = query.trim().to_lowercase();
    if query.chars().count() < MIN_QUERY_CHARS {
        return Err(Error::bad_request(
            "query_too_short",
            format!("query: at least {MIN_QUERY_CHARS} characters / не короче {MIN_QUERY_CHARS} символов"),
        ));
    }
    let mut found = Vec::new();
    let mut page = None;
    for _ in 0..SEARCH_PAGES {
        let listed = Query::index(Index::Gsi1, repo::customers_of(&principal.tenant_id))
            .descending()
            .limit(SEARCH_PAGE)
            .after(page);
        let answer = ctx.store.query(&listed).await?;
        for item in answer.items {
            let profile = repo::from_item::<CustomerProfile>(item)?;
            if profile.merged_into.is_none() && !profile.erasing && profile.matches(&query) {
                found.push(profile);
                if found.len() >= limit {
                    return Ok(found);
                }
            }
        }
        match answer.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    Ok(found)
}

/// `POST /v1/customers/{id}/merge`: `other` becomes part of `id` (identities and dialogs). One transaction
/// moves the identities and points the other profile here, so later messages on either identity land on
/// this customer; the dialogs then take the new customer id in batches. Repeating it (after a crash
/// midway, or twice) finishes the job and changes nothing more. Admins only.
pub async fn merge(ctx: &Context, principal: &Principal, id: &str, other: &str) -> Result<CustomerView> {
    principal.require_admin()?;
    let profile = require(ctx, principal, id).await?;
    let other_id = CustomerId::parse(other)
        .ok_or_else(|| Error::rule("unknown_customer", "other_id", "no such customer / клиент не найден"))?;
    let raw_other = load_raw(ctx, principal, &other_id)
        .await?
        .filter(|other| !other.erasing)
        .ok_or_else(|| Error::rule("unknown_customer", "other_id", "no such customer / клиент не найден"))?;
    if raw_other.merged_into.as_ref() == Some(&profile.id) {
        // Merged before: finish moving the dialogs (a crash may have stopped it).
        relabel_dialogs(ctx, &raw_other, &profile.id).await?;
        return view(ctx, profile).await;
    }
    let other = load(ctx, principal, &other_id)
        .await?
        .ok_or_else(|| Error::rule("unknown_customer", "other_id", "no such customer / клиент не найден"))?;
    if other.id == profile.id {
        return Err(Error::rule(
            "same_customer",
            "other_id",
            "a customer cannot be merged with itself / нельзя объединить клиента с самим собой",
        ));
    }
    let mut merged = profile.clone();
    merged.absorb(&other);
    let mut pointer = other.clone();
    pointer.merged_into = Some(profile.id.clone());
    let mut writes = vec![
        repo::customer_put(&merged, Some(profile.revision))?,
        repo::customer_put(&pointer, Some(other.revision))?,
    ];
    for identity in &other.identities {
        writes.push(repo::identity_put(identity, &profile.tenant_id, &profile.id, Some(&other.id))?);
    }
    match ctx.store.transact(writes).await {
        Ok(()) => {}
        Err(crate::ports::StoreError::Conflict { .. }) => {
            return Err(Error::Conflict("a customer changed meanwhile; try again".into()));
        }
        Err(error) => return Err(error.into()),
    }
    relabel_dialogs(ctx, &other, &profile.id).await?;
    let merged = require(ctx, principal, profile.id.as_str()).await?;
    view(ctx, merged).await
}

/// Gives the dialogs of a merged customer (and of those merged into it) their new customer id.
async fn relabel_dialogs(ctx: &Context, merged: &CustomerProfile, into: &CustomerId) -> Result<()> {
    let entries = dialog_entries(ctx, merged).await?;
    let label = Value::String(into.to_string());
    let writes: Vec<Write> = entries
        .iter()
        .map(|entry| {
            let mut set = Item::new();
            set.insert("customer_id".into(), label.clone());
            Write::Update {
                key: repo::dialog_key(&entry.dialog_id),
                set,
                remove: Vec::new(),
                condition: Condition::Exists,
            }
        })
        .collect();
    for batch in writes.chunks(MAX_WRITES) {
        match ctx.store.transact(batch.to_vec()).await {
            // A dialog erased meanwhile is no dialog to relabel: one at a time then.
            Err(crate::ports::StoreError::Conflict { .. }) => {
                for write in batch {
                    match ctx.store.transact(vec![write.clone()]).await {
                        Ok(()) | Err(crate::ports::StoreError::Conflict { .. }) => {}
                        Err(error) => return Err(error.into()),
                    }
                }
            }
            other => other?,
        }
    }
    Ok(())
}

/// Everything stored about a customer (`GET /v1/customers/{id}/export`).
#[derive(Debug, Serialize)]
pub struct Export {
    pub customer: CustomerProfile,
    pub dialogs: Vec<ExportedDialog>,
    pub exported_at: Timestamp,
}

#[derive(Debug, Serialize)]
pub struct ExportedDialog {
    pub dialog: Dialog,
    /// Oldest first, attachments with time-limited links.
    pub messages: Vec<Message>,
}

/// `GET /v1/customers/{id}/export`: the profile, identities, dialogs and messages, attachment links
/// included, as one document. Admins only.
pub async fn export(ctx: &Context, principal: &Principal, id: &str) -> Result<Export> {
    principal.require_admin()?;
    let profile = require(ctx, principal, id).await?;
    let mut dialogs = Vec::new();
    for entry in dialog_entries(ctx, &profile).await? {
        let Some(dialog) = dialogs::load(ctx, &entry.dialog_id).await? else { continue };
        if dialog.tenant_id != principal.tenant_id {
            continue;
        }
        let mut messages = dialogs::all_messages(ctx, &dialog.id).await?;
        media::link_attachments(ctx, &mut messages).await?;
        dialogs.push(ExportedDialog { dialog, messages });
    }
    Ok(Export { customer: profile, dialogs, exported_at: ctx.clock.now() })
}

/// How long the bare mark of an erased customer stays (a repeated erase answers as done meanwhile).
const ERASED_MARK_SECONDS: i64 = 30 * 24 * 3600;

/// `DELETE /v1/customers/{id}`: erases the profile, the identities (a later message from the same person
/// starts a new customer), every dialog with its messages and stored files. The profile is marked first, so
/// a crash midway leaves a mark that the repeated request finishes from; erasing an erased customer
/// changes nothing. Delivery records keep only ids (what dedup needs), and expire. Admins only.
pub async fn erase(ctx: &Context, principal: &Principal, id: &str) -> Result<()> {
    principal.require_admin()?;
    let id = parse_id(id)?;
    let Some(raw) = load_raw(ctx, principal, &id).await? else {
        return Err(Error::NotFound { what: "customer" });
    };
    // A merged-away id stands for the customer it went into.
    let mut profile = match raw.merged_into {
        Some(_) => require(ctx, principal, id.as_str()).await?,
        None => raw,
    };
    if !profile.erasing {
        let revision = profile.revision;
        profile.erasing = true;
        match ctx.store.transact(vec![repo::customer_put(&profile, Some(revision))?]).await {
            Ok(()) => profile.revision = revision + 1,
            Err(crate::ports::StoreError::Conflict { .. }) => {
                return Err(Error::Conflict("the customer changed meanwhile; try again".into()));
            }
            Err(error) => return Err(error.into()),
        }
    }
    for entry in dialog_entries(ctx, &profile).await? {
        erase_dialog(ctx, principal, &entry.dialog_id).await?;
    }
    let mut writes = Vec::new();
    for identity in &profile.identities {
        writes.push(Write::Delete {
            key: repo::identity_key(&identity.channel_id, &identity.external_id),
            condition: Condition::Always,
        });
    }
    for absorbed in &profile.absorbed {
        writes.push(Write::Delete {
            key: repo::customer_key(&profile.tenant_id, absorbed),
            condition: Condition::Always,
        });
    }
    for customer in std::iter::once(&profile.id).chain(&profile.absorbed) {
        let entries = Query::table(repo::customer_partition(&profile.tenant_id, customer))
            .range(SkRange::BeginsWith(repo::CUSTOMER_DIALOG_SK_PREFIX.into()))
            .limit(1000);
        for item in ctx.store.query(&entries).await?.items {
            if let Some(key) = crate::ports::store::Key::of(&item) {
                writes.push(Write::Delete { key, condition: Condition::Always });
            }
        }
    }
    for batch in writes.chunks(MAX_WRITES) {
        ctx.store.transact(batch.to_vec()).await?;
    }
    // What stays: the bare mark, with no name and no identity, until it expires.
    let mark = CustomerProfile {
        name: None,
        identities: Vec::new(),
        absorbed: Vec::new(),
        other_names: Vec::new(),
        merged_into: None,
        ..profile.clone()
    };
    let item =
        repo::with_expiry(repo::customer_item(&mark)?, ctx.clock.now().as_second() + ERASED_MARK_SECONDS);
    ctx.store.transact(vec![Write::Put { item, condition: Condition::Always }]).await?;
    Ok(())
}

/// Erases one dialog of an erased customer: closed first (its pointer, timers and capacity slot go the
/// usual way), then its messages with their files and pending sends, then the dialog.
async fn erase_dialog(ctx: &Context, principal: &Principal, id: &DialogId) -> Result<()> {
    let Some(mut dialog) = dialogs::load(ctx, id).await? else { return Ok(()) };
    if dialog.tenant_id != principal.tenant_id {
        return Ok(());
    }
    for _ in 0..5 {
        match dialogs::close(ctx, dialog.clone()).await {
            Ok(_) => break,
            Err(Error::Conflict(_)) => match dialogs::load(ctx, id).await? {
                Some(again) => dialog = again,
                None => return Ok(()),
            },
            Err(error) => return Err(error),
        }
    }
    let mut page = None;
    loop {
        let query = Query::table(repo::messages_of(id)).limit(MAX_WRITES).after(page);
        let found = ctx.store.query(&query).await?;
        let mut writes = Vec::new();
        for item in found.items {
            if let Some(key) = crate::ports::store::Key::of(&item) {
                if key.sk.starts_with(repo::MESSAGE_SK_PREFIX) {
                    let message = repo::from_item::<Message>(item)?;
                    for object in message.attachments.iter().filter_map(|media| media.object.as_ref()) {
                        ctx.media.delete(&object.key).await?;
                    }
                    writes.push(Write::Delete {
                        key: repo::outbox_key(&message.id),
                        condition: Condition::Always,
                    });
                    writes.push(Write::Delete {
                        key: repo::media_fetch_key(&message.id),
                        condition: Condition::Always,
                    });
                }
                writes.push(Write::Delete { key, condition: Condition::Always });
            }
        }
        for batch in writes.chunks(MAX_WRITES) {
            ctx.store.transact(batch.to_vec()).await?;
        }
        match found.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    let mut writes = vec![Write::Delete { key: repo::dialog_key(id), condition: Condition::Always }];
    for key in [repo::route_key(id), repo::chatbot_cursor_key(id), repo::forward_marker_key(id)] {
        writes.push(Write::Delete { key, condition: Condition::Always });
    }
    ctx.store.transact(writes).await?;
    Ok(())
}

/// After the acknowledgement of a new customer's first message: where the webhook named nobody and the
/// provider's API can (VK `users.get`, Avito's chat), asks for the name once and gives it to the profile
/// and the dialog. The name is then the profile's: later dialogs take it from there, no more look-ups.
pub(crate) async fn request_name(ctx: &Context, dialog: &Dialog) {
    let work = crate::ports::work::Work::NameCustomer {
        tenant_id: dialog.tenant_id.clone(),
        dialog_id: dialog.id.clone(),
    };
    if let Err(error) = ctx.media_queue.enqueue(&[work]).await {
        tracing::warn!(%error, dialog = %dialog.id, "customer name look-up not queued; the customer stays unnamed");
    }
}

/// Runs one queued name look-up (`Work::NameCustomer`). A provider's refusal leaves the customer unnamed;
/// only the store's trouble is an error (the queue hands the item out again).
pub async fn name_from_provider(
    ctx: &Context,
    tenant: &crate::domain::TenantId,
    dialog_id: &DialogId,
) -> Result<()> {
    let Some(dialog) = dialogs::load(ctx, dialog_id).await?.filter(|d| &d.tenant_id == tenant) else {
        return Ok(());
    };
    let (Some(customer_id), None) = (dialog.customer_id.clone(), dialog.customer.name.as_ref()) else {
        return Ok(());
    };
    let principal = Principal::admin_of(tenant.clone());
    let Some(profile) = load(ctx, &principal, &customer_id).await? else { return Ok(()) };
    let Some(channel) = repo::load_channel(ctx.store.as_ref(), &dialog.channel_id).await? else {
        return Ok(());
    };
    let module = ctx.providers.get(channel.provider)?;
    let name = match profile.name.clone() {
        Some(name) => name,
        None if module.looks_up_names() => {
            let Some(secrets) = ctx.channel_secrets(tenant, &channel.id).await? else { return Ok(()) };
            match module.customer_name(&secrets, &dialog.customer.id).await {
                Ok(Some(name)) if !name.trim().is_empty() => name.trim().to_owned(),
                Ok(_) => return Ok(()),
                Err(error) => {
                    tracing::warn!(%error, dialog = %dialog.id, "the provider named no customer");
                    return Ok(());
                }
            }
        }
        None => return Ok(()),
    };
    let mut writes = Vec::new();
    if profile.name.is_none() {
        let mut named = profile.clone();
        named.name = Some(name.clone());
        writes.push(repo::customer_put(&named, Some(profile.revision))?);
    }
    let mut set = Item::new();
    let shown = Customer { id: dialog.customer.id.clone(), name: Some(name), handle: None };
    set.insert("customer".into(), repo::to_value(&shown)?);
    writes.push(Write::Update {
        key: repo::dialog_key(&dialog.id),
        set,
        remove: Vec::new(),
        condition: Condition::Exists,
    });
    match ctx.store.transact(writes).await {
        // The profile changed meanwhile (a merge, another look-up): the next dialog asks again.
        Ok(()) | Err(crate::ports::StoreError::Conflict { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}
