//! The storage layer under the use cases: how the domain is laid out in the item store (the single-table
//! key design), in one place. It owns every key (`keys`), every item mapping (`to_item` / `from_item` and
//! the record builders in `writes`), the loaders the use cases share (`load`) and the write builders that
//! several use cases put into their transactions. Use cases depend on it, never on each other for storage;
//! it depends on the ports and the domain only.
//!
//! | record | pk | sk | indexes |
//! |---|---|---|---|
//! | tenant | `T#{tenant}` | `TENANT` | |
//! | API key | `KEY#{sha256 of the key}` | `KEY` | gsi1 `T#{tenant}#KEYS` / `{key id}` |
//! | channel | `CHAN#{channel}` | `CHANNEL` | gsi1 `T#{tenant}#CHANNELS` / `{channel}` |
//! | account claim (one account, one channel, deployment-wide) | `ACCT#{provider}#{account}` | `ACCOUNT` | |
//! | account claim of earlier versions (per tenant; moved on the next connect) | `T#{tenant}#ACCT#{provider}#{account}` | `ACCOUNT` | |
//! | dialog | `DLG#{dialog}` | `DIALOG` | gsi1 `T#{tenant}#DIALOGS` / `{dialog}`; gsi2 `T#{tenant}#DIALOGS#{status}` / `{dialog}` |
//! | message | `DLG#{dialog}` | `MSG#{message}` | TTL `expires_at` when `MESSAGE_RETENTION_DAYS` is set |
//! | open-dialog pointer | `OPEN#{channel}#{customer}` | `OPEN` | |
//! | inbound delivery (dedup) | `IN#{channel}#{dedup key}` | `IN` | TTL `expires_at` |
//! | employee | `T#{tenant}#EMP` | `{employee}` | |
//! | group | `T#{tenant}#GRP` | `{group}` | |
//! | chatbot | `T#{tenant}#BOT` | `{chatbot}` | |
//! | working hours | `T#{tenant}` | `HOURS` | |
//! | people version (group writes vs. deletes of what they name) | `T#{tenant}` | `PEOPLE` | |
//! | routing state of a dialog | `ROUTE#{dialog}` | `ROUTE` | gsi1 `T#{tenant}#QUEUE#{queue}` / `{dialog}` while it waits in a queue; gsi3 `DUE#ROUTE#{shard}` / `{due millis}#{dialog}` while something is due |
//! | outbox entry (an outgoing message to send) | `OUTBOX#{message}` | `OUTBOX` | gsi3 `DUE#OUTBOX#{shard}` / `{due millis}#{message}` |
//! | files of an inbound message still to fetch | `MEDIA#{message}` | `FETCH` | gsi3 `DUE#MEDIA#{shard}` / `{due millis}#{message}` |
//! | upload waiting to be sent with a reply | `T#{tenant}#UPLOAD#{upload}` | `UPLOAD` | TTL `expires_at` |
//! | provider message id of an outgoing message | `SENT#{channel}#{provider message id}` | `SENT` | |
//! | delivery report that came before its send was recorded | `SENT#{channel}#{provider message id}` | `EARLY` | TTL `expires_at` |
//! | timer of a dialog (auto-reply, inactivity close) | `DLG#{dialog}` | `TIMER#{AUTOREPLY,CLOSE}` | gsi3 `DUE#{AUTOREPLY,CLOSE}#{shard}` / `{due millis}#{dialog}` |
//! | close rescan of a channel whose inactivity limit was shortened | `CHAN#{channel}` | `CLOSE_RESCAN` | gsi3 `DUE#CLOSE#{shard}` / `{due millis}#{channel}` |
//! | first-start marker | `BOOTSTRAP` | `BOOTSTRAP` | |
//! | OAuth `state` handed out, until used (single use, bound to the tenant) | `OAUTH#{sha256 of the state}` | `STATE` | TTL `expires_at` |
//! | chatbot forwarding cursor of a dialog | `ROUTE#{dialog}` | `BOT` | |
//! | queue re-check | `T#{tenant}#QUEUE#{queue}` | `RECHECK` | gsi3 `DUE#ROUTE#{shard}` / `{due millis}#Q#{queue}` |
//! | capacity slot (one per open dialog of an employee) | `T#{tenant}#SLOT#{employee}` | `{slot, 3 digits}` | |
//! | round-robin cursor of a group | `T#{tenant}#RR` | `{group}` | |
//! | message forwarded to a chatbot (at most once) | `FWD#{message}` | `FWD` | TTL `expires_at` |
//! | e-mail channel (the poller's list of mailboxes; no scan) | `EMAIL_CHANNELS` | `{channel}` | |
//! | mailbox sync state (UIDVALIDITY, last UID, poll lease) | `MAILBOX#{channel}` | `INBOX` | |
//! | e-mail thread of an inbound mail (subject, Message-ID, References) | `DLG#{dialog}` | `EMAIL#{message}` | TTL `expires_at` as its message |
//!
//! Ids are UUIDv7, so `{dialog}` and `{message}` sort by creation time. Every tenant-owned record carries
//! `tenant_id`, and reads by id compare it with the caller's tenant (another tenant's id is "not found").
//! gsi3 is the sparse due index: the timers, the outbox and routing each under their own `DUE#...` partitions,
//! `DUE_SHARDS` of them per job (`keys.rs` has the arithmetic).

mod keys;
mod load;
mod writes;

pub use keys::*;
pub use load::*;
pub use writes::*;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;
use crate::ports::store::{EXPIRES_AT, Index, Item, Key, PK, SK};

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

/// Whether an item's TTL (`with_expiry`) has passed: DynamoDB deletes such items some time later, so
/// readers skip them.
pub fn expired(item: &Item, now: jiff::Timestamp) -> bool {
    item.get(EXPIRES_AT).and_then(Value::as_i64).is_some_and(|at| at <= now.as_second())
}

/// A value as an item attribute.
pub fn to_value<T: Serialize>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|error| Error::Internal(format!("not serializable: {error}")))
}
