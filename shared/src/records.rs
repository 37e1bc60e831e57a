//! How the domain is laid out in the item store: the single-table key design, in one place.
//!
//! | record | pk | sk | indexes |
//! |---|---|---|---|
//! | tenant | `T#{tenant}` | `TENANT` | |
//! | API key | `KEY#{sha256 of the key}` | `KEY` | gsi1 `T#{tenant}#KEYS` / `{key id}` |
//! | channel | `CHAN#{channel}` | `CHANNEL` | gsi1 `T#{tenant}#CHANNELS` / `{channel}` |
//! | account claim (one account, one channel) | `T#{tenant}#ACCT#{provider}#{account}` | `ACCOUNT` | |
//! | dialog | `DLG#{dialog}` | `DIALOG` | gsi1 `T#{tenant}#DIALOGS` / `{dialog}`; gsi2 `T#{tenant}#DIALOGS#{status}` / `{dialog}` |
//! | message | `DLG#{dialog}` | `MSG#{message}` | |
//! | open-dialog pointer | `OPEN#{channel}#{customer}` | `OPEN` | |
//! | inbound delivery (dedup) | `IN#{channel}#{dedup key}` | `IN` | TTL `expires_at` |
//! | employee | `T#{tenant}#EMP` | `{employee}` | |
//! | group | `T#{tenant}#GRP` | `{group}` | |
//! | chatbot | `T#{tenant}#BOT` | `{chatbot}` | |
//! | working hours | `T#{tenant}` | `HOURS` | |
//! | people version (group writes vs. deletes of what they name) | `T#{tenant}` | `PEOPLE` | |
//! | routing state of a dialog | `ROUTE#{dialog}` | `ROUTE` | gsi1 `T#{tenant}#QUEUE#{queue}` / `{dialog}` while it waits in a queue; gsi3 `DUE#ROUTE#{shard}` / `{due millis}#{dialog}` while something is due |
//! | chatbot forwarding cursor of a dialog | `ROUTE#{dialog}` | `BOT` | |
//! | queue re-check | `T#{tenant}#QUEUE#{queue}` | `RECHECK` | gsi3 `DUE#ROUTE#{shard}` / `{due millis}#Q#{queue}` |
//! | capacity slot (one per open dialog of an employee) | `T#{tenant}#SLOT#{employee}` | `{slot, 3 digits}` | |
//! | round-robin cursor of a group | `T#{tenant}#RR` | `{group}` | |
//! | message forwarded to a chatbot (at most once) | `FWD#{message}` | `FWD` | TTL `expires_at` |
//! | e-mail channel (the poller's list of mailboxes; no scan) | `EMAIL_CHANNELS` | `{channel}` | |
//! | mailbox sync state (UIDVALIDITY, last UID, poll lease) | `MAILBOX#{channel}` | `INBOX` | |
//! | e-mail thread of an inbound mail (subject, Message-ID, References) | `DLG#{dialog}` | `EMAIL#{message}` | |
//!
//! Ids are UUIDv7, so `{dialog}` and `{message}` sort by creation time. Every tenant-owned record carries
//! `tenant_id`, and reads by id compare it with the caller's tenant (another tenant's id is "not found").
//! gsi3 is the sparse due index: the timers, the outbox and routing each under their own `DUE#...` partitions.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::{ChannelId, DialogId, Provider, TenantId};
use crate::error::Error;
use crate::ports::store::{EXPIRES_AT, Index, Item, Key, PK, SK};

pub fn tenant_key(tenant: &TenantId) -> Key {
    Key::new(format!("T#{tenant}"), "TENANT")
}

pub fn api_key_key(key_hash: &str) -> Key {
    Key::new(format!("KEY#{key_hash}"), "KEY")
}

pub fn channel_key(channel: &ChannelId) -> Key {
    Key::new(format!("CHAN#{channel}"), "CHANNEL")
}

pub fn channels_of(tenant: &TenantId) -> String {
    format!("T#{tenant}#CHANNELS")
}

pub fn account_claim_key(tenant: &TenantId, provider: Provider, account_id: &str) -> Key {
    Key::new(format!("T#{tenant}#ACCT#{}#{account_id}", provider.slug()), "ACCOUNT")
}

pub fn dialog_key(dialog: &DialogId) -> Key {
    Key::new(format!("DLG#{dialog}"), "DIALOG")
}

pub fn dialogs_of(tenant: &TenantId) -> String {
    format!("T#{tenant}#DIALOGS")
}

pub fn dialogs_with_status(tenant: &TenantId, status: &str) -> String {
    format!("T#{tenant}#DIALOGS#{status}")
}

pub fn messages_of(dialog: &DialogId) -> String {
    format!("DLG#{dialog}")
}

pub const MESSAGE_SK_PREFIX: &str = "MSG#";

pub fn open_dialog_key(channel: &ChannelId, customer_id: &str) -> Key {
    Key::new(format!("OPEN#{channel}#{customer_id}"), "OPEN")
}

pub fn delivery_key(channel: &ChannelId, dedup_key: &str) -> Key {
    Key::new(format!("IN#{channel}#{dedup_key}"), "IN")
}

/// How long a delivery record outlives the message: longer than any provider retries (Telegram: 24 h).
pub const DELIVERY_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// A record as an item: its own fields, its key and its index keys.
pub fn to_item<T: Serialize>(
    record: &T,
    key: &Key,
    indexes: &[(Index, String, String)],
) -> Result<Item, Error> {
    let mut item = match serde_json::to_value(record) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(Error::Internal("a record must serialize to an object".into())),
        Err(error) => return Err(Error::Internal(format!("record not serializable: {error}"))),
    };
    item.insert(PK.into(), Value::String(key.pk.clone()));
    item.insert(SK.into(), Value::String(key.sk.clone()));
    for (index, pk, sk) in indexes {
        item.insert(index.pk_attr().into(), Value::String(pk.clone()));
        item.insert(index.sk_attr().into(), Value::String(sk.clone()));
    }
    Ok(item)
}

/// The record in an item (key and index attributes are ignored).
pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, Error> {
    serde_json::from_value(Value::Object(item))
        .map_err(|error| Error::Internal(format!("unreadable record: {error}")))
}

pub fn with_expiry(mut item: Item, epoch_seconds: i64) -> Item {
    item.insert(EXPIRES_AT.into(), Value::from(epoch_seconds));
    item
}

// People and hours: one partition per tenant and kind, so a list is a strongly consistent Query of the
// table (contact centers have tens to hundreds of employees, far below one partition's limits).

pub fn employees_of(tenant: &TenantId) -> String {
    format!("T#{tenant}#EMP")
}

pub fn employee_key(tenant: &TenantId, employee: &crate::domain::EmployeeId) -> Key {
    Key::new(employees_of(tenant), employee.as_str())
}

pub fn groups_of(tenant: &TenantId) -> String {
    format!("T#{tenant}#GRP")
}

pub fn group_key(tenant: &TenantId, group: &crate::domain::GroupId) -> Key {
    Key::new(groups_of(tenant), group.as_str())
}

pub fn chatbots_of(tenant: &TenantId) -> String {
    format!("T#{tenant}#BOT")
}

pub fn chatbot_key(tenant: &TenantId, chatbot: &crate::domain::ChatbotId) -> Key {
    Key::new(chatbots_of(tenant), chatbot.as_str())
}

pub fn working_hours_key(tenant: &TenantId) -> Key {
    Key::new(format!("T#{tenant}"), "HOURS")
}

/// A counter every group write and every delete of an employee bumps in its transaction, so a group can
/// never be saved naming an employee deleted meanwhile.
pub fn people_version_key(tenant: &TenantId) -> Key {
    Key::new(format!("T#{tenant}"), "PEOPLE")
}

// Routing (usecases::routing). A queue is `G#{group}` (a group's) or `E#{employee}` (one employee's).

pub fn route_key(dialog: &DialogId) -> Key {
    Key::new(format!("ROUTE#{dialog}"), "ROUTE")
}

pub fn chatbot_cursor_key(dialog: &DialogId) -> Key {
    Key::new(format!("ROUTE#{dialog}"), "BOT")
}

/// The gsi1 partition listing a queue's waiting dialogs, oldest first.
pub fn queue_of(tenant: &TenantId, queue: &str) -> String {
    format!("T#{tenant}#QUEUE#{queue}")
}

pub fn queue_recheck_key(tenant: &TenantId, queue: &str) -> Key {
    Key::new(queue_of(tenant, queue), "RECHECK")
}

pub fn slots_of(tenant: &TenantId, employee: &crate::domain::EmployeeId) -> String {
    format!("T#{tenant}#SLOT#{employee}")
}

pub fn slot_key(tenant: &TenantId, employee: &crate::domain::EmployeeId, slot: u32) -> Key {
    Key::new(slots_of(tenant, employee), format!("{slot:03}"))
}

pub fn round_robin_key(tenant: &TenantId, group: &crate::domain::GroupId) -> Key {
    Key::new(format!("T#{tenant}#RR"), group.as_str())
}

pub fn route_due_pk(shard: u32) -> String {
    format!("DUE#ROUTE#{shard}")
}

pub fn chatbot_forward_key(message: &crate::domain::MessageId) -> Key {
    Key::new(format!("FWD#{message}"), "FWD")
}

// E-mail (usecases::email_poll). The channels' list is one small partition: a poll reads it with one Query.

pub const EMAIL_CHANNELS: &str = "EMAIL_CHANNELS";

pub fn email_channel_key(channel: &ChannelId) -> Key {
    Key::new(EMAIL_CHANNELS, channel.as_str())
}

pub fn mailbox_sync_key(channel: &ChannelId) -> Key {
    Key::new(format!("MAILBOX#{channel}"), "INBOX")
}

pub const EMAIL_THREAD_SK_PREFIX: &str = "EMAIL#";

pub fn email_thread_key(dialog: &DialogId, message: &crate::domain::MessageId) -> Key {
    Key::new(messages_of(dialog), format!("{EMAIL_THREAD_SK_PREFIX}{message}"))
}
