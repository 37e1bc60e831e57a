//! Every key of the single-table design: no key string is built outside this file.

use jiff::Timestamp;

use crate::domain::{
    ChannelId, ChatbotId, CustomerId, DialogId, EmployeeId, GroupId, MessageId, Provider, TenantId,
};
use crate::ports::store::Key;

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

/// Which channel holds a provider account, deployment-wide: one account, one channel, whatever the tenant
/// (a provider sends an account's webhooks to one URL only).
pub fn account_claim_key(provider: Provider, account_id: &str) -> Key {
    Key::new(format!("ACCT#{}#{account_id}", provider.slug()), "ACCOUNT")
}

/// The claim as earlier versions kept it, per tenant: read (and moved to the deployment-wide claim) when
/// the account is connected again.
pub fn tenant_account_claim_key(tenant: &TenantId, provider: Provider, account_id: &str) -> Key {
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

// Customers (usecases::customers): a profile and its dialog entries share one partition per customer, so
// a customer's dialogs are one Query of their own partition; the tenant's list (gsi1) is written once per
// new customer, never per message.

fn customer_pk(tenant: &TenantId, customer: &CustomerId) -> String {
    format!("T#{tenant}#CUST#{customer}")
}

pub fn customer_key(tenant: &TenantId, customer: &CustomerId) -> Key {
    Key::new(customer_pk(tenant, customer), "PROFILE")
}

/// The tenant's customers (gsi1), oldest first.
pub fn customers_of(tenant: &TenantId) -> String {
    format!("T#{tenant}#CUSTOMERS")
}

/// A customer's partition, where their dialog entries are (`CUSTOMER_DIALOG_SK_PREFIX`).
pub fn customer_partition(tenant: &TenantId, customer: &CustomerId) -> String {
    customer_pk(tenant, customer)
}

pub const CUSTOMER_DIALOG_SK_PREFIX: &str = "DLG#";

/// One of a customer's dialogs, ordered by when it opened.
pub fn customer_dialog_key(
    tenant: &TenantId,
    customer: &CustomerId,
    opened_at: Timestamp,
    dialog: &DialogId,
) -> Key {
    Key::new(
        customer_pk(tenant, customer),
        format!("{CUSTOMER_DIALOG_SK_PREFIX}{:015}#{dialog}", opened_at.as_millisecond().max(0)),
    )
}

/// Which customer a channel's customer (`Customer::id`, the provider's id of them) is.
pub fn identity_key(channel: &ChannelId, external_id: &str) -> Key {
    Key::new(format!("IDENT#{channel}#{external_id}"), "IDENT")
}

/// How long a delivery record outlives the message: longer than any provider retries (Telegram: 24 h).
pub const DELIVERY_TTL_SECONDS: i64 = 30 * 24 * 3600;

// People and hours: one partition per tenant and kind, so a list is a strongly consistent Query of the
// table (contact centers have tens to hundreds of employees, far below one partition's limits).

pub fn employees_of(tenant: &TenantId) -> String {
    format!("T#{tenant}#EMP")
}

pub fn employee_key(tenant: &TenantId, employee: &EmployeeId) -> Key {
    Key::new(employees_of(tenant), employee.as_str())
}

pub fn groups_of(tenant: &TenantId) -> String {
    format!("T#{tenant}#GRP")
}

pub fn group_key(tenant: &TenantId, group: &GroupId) -> Key {
    Key::new(groups_of(tenant), group.as_str())
}

pub fn chatbots_of(tenant: &TenantId) -> String {
    format!("T#{tenant}#BOT")
}

pub fn chatbot_key(tenant: &TenantId, chatbot: &ChatbotId) -> Key {
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

/// Where a dialog waits for someone to take it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Queue {
    Group(GroupId),
    /// Dialogs of a channel handled by one employee, while they are offline or at capacity (or
    /// transferred to them).
    Employee(EmployeeId),
}

impl Queue {
    /// The queue's id: the part of its keys that names it.
    pub fn id(&self) -> String {
        match self {
            Queue::Group(group) => format!("G#{group}"),
            Queue::Employee(employee) => format!("E#{employee}"),
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw.split_once('#')? {
            ("G", id) => GroupId::parse(id).map(Queue::Group),
            ("E", id) => EmployeeId::parse(id).map(Queue::Employee),
            _ => None,
        }
    }

    /// The group of a group's queue.
    pub fn group(&self) -> Option<GroupId> {
        match self {
            Queue::Group(group) => Some(group.clone()),
            Queue::Employee(_) => None,
        }
    }
}

pub fn route_key(dialog: &DialogId) -> Key {
    Key::new(format!("ROUTE#{dialog}"), "ROUTE")
}

pub fn chatbot_cursor_key(dialog: &DialogId) -> Key {
    Key::new(format!("ROUTE#{dialog}"), "BOT")
}

const FORWARD_SK: &str = "FORWARD";

/// A chatbot's dialog took a customer message not confirmed forwarded yet (`writes::forward_marker_put`).
pub fn forward_marker_key(dialog: &DialogId) -> Key {
    Key::new(format!("ROUTE#{dialog}"), FORWARD_SK)
}

/// Whether a due item of routing is a forward marker.
pub fn is_forward_marker(item: &crate::ports::store::Item) -> bool {
    item.get(crate::ports::store::SK).and_then(serde_json::Value::as_str) == Some(FORWARD_SK)
}

/// The gsi1 partition listing a queue's waiting dialogs, oldest first.
pub fn queue_of(tenant: &TenantId, queue: &str) -> String {
    format!("T#{tenant}#QUEUE#{queue}")
}

const QUEUE_RECHECK_SK: &str = "RECHECK";

pub fn queue_recheck_key(tenant: &TenantId, queue: &str) -> Key {
    Key::new(queue_of(tenant, queue), QUEUE_RECHECK_SK)
}

pub fn slots_of(tenant: &TenantId, employee: &EmployeeId) -> String {
    format!("T#{tenant}#SLOT#{employee}")
}

pub fn slot_key(tenant: &TenantId, employee: &EmployeeId, slot: u32) -> Key {
    Key::new(slots_of(tenant, employee), format!("{slot:03}"))
}

pub fn round_robin_key(tenant: &TenantId, group: &GroupId) -> Key {
    Key::new(format!("T#{tenant}#RR"), group.as_str())
}

pub fn route_due_pk(shard: u32) -> String {
    format!("DUE#ROUTE#{shard}")
}

pub fn chatbot_forward_key(message: &MessageId) -> Key {
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

pub fn email_thread_key(dialog: &DialogId, message: &MessageId) -> Key {
    Key::new(messages_of(dialog), format!("{EMAIL_THREAD_SK_PREFIX}{message}"))
}

// API keys (usecases::auth).

/// The gsi1 partition listing a tenant's API keys.
pub fn api_keys_of(tenant: &TenantId) -> String {
    format!("T#{tenant}#KEYS")
}

/// The gsi1 partition listing every tenant of the deployment (the operator's list; tenants are few and
/// rarely written, so one partition holds them all).
pub fn tenants_index() -> &'static str {
    "TENANTS"
}

/// Written once by the first start of a deployment, so two racing first starts create one tenant.
pub fn bootstrap_marker_key() -> Key {
    Key::new("BOOTSTRAP", "BOOTSTRAP")
}

// Messages and the outbox (usecases::outbox).

pub fn message_key(dialog: &DialogId, message: &MessageId) -> Key {
    Key::new(messages_of(dialog), format!("{MESSAGE_SK_PREFIX}{message}"))
}

pub fn outbox_key(message: &MessageId) -> Key {
    Key::new(format!("OUTBOX#{message}"), "OUTBOX")
}

/// A stored message with files still to fetch from the provider (`usecases::media`).
pub fn media_fetch_key(message: &MessageId) -> Key {
    Key::new(format!("MEDIA#{message}"), "FETCH")
}

pub fn media_due_pk(shard: u32) -> String {
    format!("DUE#MEDIA#{shard}")
}

/// An upload waiting to be sent with a reply.
pub fn upload_record_key(tenant: &TenantId, upload: &str) -> Key {
    Key::new(format!("T#{tenant}#UPLOAD#{upload}"), "UPLOAD")
}

pub fn outbox_due_pk(shard: u32) -> String {
    format!("DUE#OUTBOX#{shard}")
}

/// From a provider's message id back to our outgoing message (delivery reports).
pub fn sent_key(channel: &ChannelId, provider_message_id: &str) -> Key {
    Key::new(format!("SENT#{channel}#{provider_message_id}"), "SENT")
}

/// A delivery report that came before its send was recorded, beside where the send's lookup will be.
pub fn early_report_key(channel: &ChannelId, provider_message_id: &str) -> Key {
    Key::new(format!("SENT#{channel}#{provider_message_id}"), "EARLY")
}

/// How long an early delivery report waits for its send to be recorded (a send is recorded within its
/// lease, a minute; a report for a message we never recorded is then forgotten).
pub const EARLY_REPORT_TTL_SECONDS: i64 = 24 * 3600;

// Timers (usecases::timers): one per dialog and kind, beside the dialog's messages.

/// The kinds of per-dialog timer; the name is the timer's key and due partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    AutoReply,
    Close,
}

impl TimerKind {
    fn name(self) -> &'static str {
        match self {
            TimerKind::AutoReply => "AUTOREPLY",
            TimerKind::Close => "CLOSE",
        }
    }
}

pub fn timer_key(dialog: &DialogId, kind: TimerKind) -> Key {
    Key::new(messages_of(dialog), format!("TIMER#{}", kind.name()))
}

pub fn timer_due_pk(kind: TimerKind, shard: u32) -> String {
    format!("DUE#{}#{shard}", kind.name())
}

const CLOSE_RESCAN_SK: &str = "CLOSE_RESCAN";

/// A channel whose inactivity limit was shortened: its open dialogs' close timers are brought forward.
pub fn close_rescan_key(channel: &ChannelId) -> Key {
    Key::new(format!("CHAN#{channel}"), CLOSE_RESCAN_SK)
}

/// Whether a due item of the close timers is a channel's rescan (else it is a dialog's close timer).
pub fn is_close_rescan(item: &crate::ports::store::Item) -> bool {
    item.get(crate::ports::store::SK).and_then(serde_json::Value::as_str) == Some(CLOSE_RESCAN_SK)
}

// The sparse due index (gsi3), shared by the timers, the outbox and routing.

/// Due-index shards of each job (auto-reply timers, close timers, the outbox, routing): a job's due items
/// are spread over its partitions `DUE#{job}#0` to `DUE#{job}#63` by [`due_shard`], and every run reads all
/// of them (`usecases::due`).
///
/// Why 64, for 10,000 messages a second deployment-wide: DynamoDB takes about 1,000 write units a second
/// per partition key value, in a global index as in the table, and a due item is under 1 KB (one unit per
/// index write). The busiest job is the outbox: an outgoing message puts its entry (1 index write), claims it
/// (the sort key moves: a delete and a put in the index, 2) and removes it (1), so 4 index writes per
/// message. Were all 10,000 messages outgoing: 40,000 writes/s / 64 shards = 625 per shard, 62% of one
/// partition's limit, with room for an uneven hash (32 shards would need 1,250: over). Auto-reply timers:
/// at most one start per inbound message and one move or delete when it fires, 3 writes, so 30,000/s / 64
/// = 470 per shard. Close timers are written when a dialog opens and when they fire, not per message
/// (`usecases::timers`), and routing writes a few per new dialog: both far below. Reading costs one query
/// per shard and run whatever is due: 64 a minute per job, half a read unit each when empty.
///
/// Earlier versions used 4 shards with the same hash (`due_shard(id, 4)`). Their items stay in shards 0 to
/// 3, which every run still reads (it reads 0 to 63), although the id now hashes elsewhere: nothing
/// recomputes where an item is. Whoever acts on a due item addresses it by its own key (`DLG#…` /
/// `TIMER#…`, `OUTBOX#…`, `ROUTE#…`, a queue's `RECHECK`), which holds no shard, conditioned on the due sort
/// key it read (`{due millis}#{id}`), which holds no shard either; rewriting the item moves it to its new
/// shard. So the count may grow without a migration; it must never shrink (items in the dropped shards
/// would never be read again).
pub const DUE_SHARDS: u32 = 64;

/// The due shard of an id: spreads a busy table's due writes over several index partitions.
pub fn due_shard(id: &str, shards: u32) -> u32 {
    id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % shards.max(1)
}

/// A due sort key: milliseconds, zero-padded so they sort as text, then the id.
pub fn due_sk(at: Timestamp, id: &str) -> String {
    format!("{:015}#{id}", at.as_millisecond().max(0))
}

/// The highest due sort key at `now`: a range `..=due_until(now)` reads what is due.
pub fn due_until(now: Timestamp) -> String {
    format!("{:015}#~", now.as_millisecond().max(0))
}

/// The time a due sort key stands for (None for what is not one).
pub fn due_at_of(sk: &str) -> Option<Timestamp> {
    let millis = sk.split('#').next()?.parse::<i64>().ok()?;
    Timestamp::from_millisecond(millis).ok()
}

/// The id a queue re-check stands under in the due index (beside dialog ids).
pub fn queue_recheck_due_id(queue: &str) -> String {
    format!("Q#{queue}")
}

/// Whether a due item of routing is a queue re-check (else it is a dialog's routing state).
pub fn is_queue_recheck(item: &crate::ports::store::Item) -> bool {
    item.get(crate::ports::store::SK).and_then(serde_json::Value::as_str) == Some(QUEUE_RECHECK_SK)
}

/// A VK OAuth `state` the API handed out, by the SHA-256 of the state (usecases::vk_connect).
pub fn oauth_state_key(state_hash: &str) -> Key {
    Key::new(format!("OAUTH#{state_hash}"), "STATE")
}

// Live updates (usecases::live): one-time tickets to open a live connection, and on AWS the open
// connections of the API Gateway WebSocket API, listed per tenant (gsi1) for the push function.

/// A live ticket, by the SHA-256 of its value (the value itself is never stored).
pub fn live_ticket_key(ticket_hash: &str) -> Key {
    Key::new(format!("LIVE#TICKET#{ticket_hash}"), "TICKET")
}

/// An open WebSocket connection, by API Gateway's connection id.
pub fn live_connection_key(connection_id: &str) -> Key {
    Key::new(format!("LIVE#CONN#{connection_id}"), "CONN")
}

/// The tenant's open connections (gsi1).
pub fn live_connections_of(tenant: &TenantId) -> String {
    format!("T#{tenant}#LIVE")
}
