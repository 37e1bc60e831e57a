//! The loaders the use cases share: one record by its id, as stored. Tenant-owned records are read under
//! the tenant's own partition or compared with it by the caller; `None` means missing.

use serde::de::DeserializeOwned;

use super::{OpenDialog, from_item, keys};
use crate::domain::hours::WorkingHours;
use crate::domain::people::{Chatbot, Employee, Group};
use crate::domain::{
    Channel, ChannelId, ChatbotId, Dialog, DialogId, EmployeeId, GroupId, Message, MessageId,
};
use crate::domain::{Provider, Tenant, TenantId};
use crate::error::{Error, Result};
use crate::ports::channel::MailThread;
use crate::ports::store::{Condition, Index, Key, Query, SkRange, Store, StoreError, Write};

/// Any record by its key.
pub async fn load<T: DeserializeOwned>(store: &dyn Store, key: &Key) -> Result<Option<T>> {
    store.get(key).await?.map(from_item).transpose()
}

/// One page of the records of a table partition, in key order.
pub async fn list<T: DeserializeOwned>(
    store: &dyn Store,
    partition: String,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<T>, Option<String>)> {
    let page = store.query(&Query::table(partition).limit(limit).after(page)).await?;
    let items = page.items.into_iter().map(from_item).collect::<Result<Vec<T>>>()?;
    Ok((items, page.next))
}

/// A page of the records an index partition lists.
pub async fn list_index<T: DeserializeOwned>(
    store: &dyn Store,
    index: Index,
    partition: String,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<T>, Option<String>)> {
    let page = store.query(&Query::index(index, partition).limit(limit).after(page)).await?;
    let items = page.items.into_iter().map(from_item).collect::<Result<Vec<T>>>()?;
    Ok((items, page.next))
}

pub async fn get_tenant(store: &dyn Store, tenant: &TenantId) -> Result<Tenant> {
    load(store, &keys::tenant_key(tenant)).await?.ok_or(Error::NotFound { what: "tenant" })
}

/// A channel by id, whatever its tenant (webhooks identify the channel, not the tenant).
pub async fn load_channel(store: &dyn Store, id: &ChannelId) -> Result<Option<Channel>> {
    load(store, &keys::channel_key(id)).await
}

/// A dialog by id, whatever its tenant (the scheduled jobs act for the system).
pub async fn load_dialog(store: &dyn Store, id: &DialogId) -> Result<Option<Dialog>> {
    load(store, &keys::dialog_key(id)).await
}

/// The open-dialog pointer of the dialog's customer, if it names this dialog.
pub async fn load_pointer(store: &dyn Store, dialog: &Dialog) -> Result<Option<OpenDialog>> {
    let pointer: Option<OpenDialog> =
        load(store, &keys::open_dialog_key(&dialog.channel_id, &dialog.customer.id)).await?;
    Ok(pointer.filter(|pointer| pointer.dialog_id == dialog.id))
}

pub async fn load_message(
    store: &dyn Store,
    dialog: &DialogId,
    message: &MessageId,
) -> Result<Option<Message>> {
    load(store, &keys::message_key(dialog, message)).await
}

/// The tenant's employee, or `None` (also for another tenant's id).
pub async fn get_employee(store: &dyn Store, tenant: &TenantId, id: &EmployeeId) -> Result<Option<Employee>> {
    load(store, &keys::employee_key(tenant, id)).await
}

/// The tenant's group, or `None` (also for another tenant's id).
pub async fn get_group(store: &dyn Store, tenant: &TenantId, id: &GroupId) -> Result<Option<Group>> {
    load(store, &keys::group_key(tenant, id)).await
}

/// The tenant's chatbot, or `None` (also for another tenant's id).
pub async fn get_chatbot(store: &dyn Store, tenant: &TenantId, id: &ChatbotId) -> Result<Option<Chatbot>> {
    load(store, &keys::chatbot_key(tenant, id)).await
}

/// The tenant's hours, or `WorkingHours::always_open()` until they are set.
pub async fn get_working_hours(store: &dyn Store, tenant: &TenantId) -> Result<WorkingHours> {
    let record: Option<super::HoursRecord> = load(store, &keys::working_hours_key(tenant)).await?;
    Ok(record.map_or_else(WorkingHours::always_open, |record| record.hours))
}

/// What an e-mail reply in the dialog answers: the customer's last mail. `None` for other channels, for
/// a dialog without a kept mail, and when the lookup fails (the reply then goes out unthreaded rather
/// than not at all).
pub async fn reply_thread(store: &dyn Store, channel: &Channel, dialog: &DialogId) -> Option<MailThread> {
    if channel.provider != Provider::Email {
        return None;
    }
    let query = Query::table(keys::messages_of(dialog))
        .range(SkRange::BeginsWith(keys::EMAIL_THREAD_SK_PREFIX.into()))
        .descending()
        .limit(1);
    let record = match store.query(&query).await {
        Ok(page) => page.items.into_iter().next().map(from_item::<super::ThreadRecord>),
        Err(error) => {
            tracing::warn!(%error, %dialog, "the e-mail thread could not be read; replying unthreaded");
            return None;
        }
    };
    let record = match record? {
        Ok(record) => record,
        Err(error) => {
            tracing::warn!(%error, %dialog, "unreadable e-mail thread record; replying unthreaded");
            return None;
        }
    };
    let mut references = record.references;
    references.retain(|id| id != &record.mail_id);
    references.push(record.mail_id.clone());
    Some(MailThread { subject: record.subject, in_reply_to: Some(record.mail_id), references })
}

/// Takes a single-use record of the tenant (an OAuth `state`) for this caller alone: deletes it on condition
/// it is still the tenant's. `false` when another request took it first (or it is gone).
pub async fn take_once(store: &dyn Store, key: Key, tenant: &TenantId) -> Result<bool> {
    let tenant = serde_json::Value::String(tenant.to_string());
    match store
        .transact(vec![Write::Delete { key, condition: Condition::Equals("tenant_id".into(), tenant) }])
        .await
    {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(other) => Err(other.into()),
    }
}
