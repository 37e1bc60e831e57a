//! The records several use cases write, as items and as the writes they put into their transactions.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{keys, to_item};
use crate::domain::hours::WorkingHours;
use crate::domain::{
    Channel, ChannelId, CustomerId, CustomerProfile, Dialog, DialogId, Identity, Message, MessageId,
    Provider, TenantId,
};
use crate::error::Result;
use crate::ports::store::{Condition, Index, Item, Write};

/// The stored form of a channel, listed under its tenant.
pub fn channel_item(channel: &Channel) -> Result<Item> {
    to_item(
        channel,
        &keys::channel_key(&channel.id),
        &[(Index::Gsi1, keys::channels_of(&channel.tenant_id), channel.id.to_string())],
    )
}

/// A dialog, listed under its tenant (gsi1) and under its tenant and status (gsi2).
pub fn dialog_item(dialog: &Dialog) -> Result<Item> {
    let status = dialog.status.as_str();
    to_item(
        dialog,
        &keys::dialog_key(&dialog.id),
        &[
            (Index::Gsi1, keys::dialogs_of(&dialog.tenant_id), dialog.id.to_string()),
            (Index::Gsi2, keys::dialogs_with_status(&dialog.tenant_id, status), dialog.id.to_string()),
        ],
    )
}

/// The gsi2 attributes of a dialog in `status`: an update that changes the status sets them too.
pub fn dialog_status_index(dialog: &Dialog) -> [(String, Value); 2] {
    [
        (
            Index::Gsi2.pk_attr().into(),
            Value::String(keys::dialogs_with_status(&dialog.tenant_id, dialog.status.as_str())),
        ),
        (Index::Gsi2.sk_attr().into(), Value::String(dialog.id.to_string())),
    ]
}

/// How long message records are kept (`MESSAGE_RETENTION_DAYS`): for ever, or whole days after they were
/// stored, after which the table's TTL (`expires_at`) deletes them. Read once per process into the
/// `Context`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    days: Option<u32>,
}

impl Retention {
    /// Nothing expires (the default).
    pub const FOREVER: Retention = Retention { days: None };
    /// The longest retention taken: a hundred years.
    pub const MAX_DAYS: u32 = 36_500;

    /// `days` whole days; 0 keeps for ever.
    pub fn days(days: u32) -> std::result::Result<Self, String> {
        match days {
            0 => Ok(Self::FOREVER),
            1..=Self::MAX_DAYS => Ok(Self { days: Some(days) }),
            _ => Err(format!("{days} days is more than {} (a hundred years)", Self::MAX_DAYS)),
        }
    }

    /// The setting's text: whole days, `0` or empty for ever; anything else is refused with the reason.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::FOREVER);
        }
        let days = text
            .parse::<u32>()
            .map_err(|_| format!("{text:?} is not a whole number of days (0 keeps messages for ever)"))?;
        Self::days(days)
    }

    /// The days kept, `None` for ever.
    pub fn in_days(self) -> Option<u32> {
        self.days
    }

    /// When a record stored at `stored` expires, in epoch seconds (the TTL attribute's unit).
    pub fn expires_at(self, stored: Timestamp) -> Option<i64> {
        self.days.map(|days| stored.as_second() + i64::from(days) * 86_400)
    }

    fn apply(self, item: Item, stored: Timestamp) -> Item {
        match self.expires_at(stored) {
            Some(at) => super::with_expiry(item, at),
            None => item,
        }
    }
}

/// A message (inbound or outbound) as an item; with a retention it carries `expires_at`, counted from when
/// it was stored (`received_at`).
pub fn message_item(message: &Message, retention: Retention) -> Result<Item> {
    let item = to_item(message, &keys::message_key(&message.dialog_id, &message.id), &[])?;
    Ok(retention.apply(item, message.received_at))
}

/// The customer's open-dialog pointer.
#[derive(Debug, Serialize, Deserialize)]
pub struct OpenDialog {
    pub dialog_id: DialogId,
    /// An auto-reply sequence was started for the customer and no employee has replied since: further
    /// customer messages do not start another one.
    #[serde(default)]
    pub awaiting_reply: bool,
    /// The customer's last message, exactly: ingest moves it on every message (the pointer is the one
    /// item a steady-state message updates). Absent on pointers written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_at: Option<Timestamp>,
    /// When ingest last copied the activity to the dialog item (whose `last_activity_at` the dialog lists
    /// show): at most once per [`LIST_REFRESH`], since every write of the dialog rewrites its two tenant-wide
    /// index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_at: Option<Timestamp>,
    /// A chatbot has the dialog (routing sets and clears it with the dialog's `chatbot_id`): ingest marks
    /// the customer's messages for the router (`MessageReceived.chatbot`) and leaves a forward marker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chatbot: bool,
}

/// Routing gave the dialog to a chatbot (`held`) or took it from one: the pointer says so, in the same
/// transaction, on condition it still names the dialog.
pub fn chatbot_holds_write(dialog: &Dialog, held: bool) -> Write {
    chatbot_flag_write(dialog, held, names_dialog(dialog))
}

/// The flag added to a pointer of the previous layout whose dialog a chatbot has (`platform`'s migration):
/// only where it is missing, so a flagged pointer is not rewritten.
pub fn chatbot_flag_missing_write(dialog: &Dialog) -> Write {
    let condition = Condition::All(vec![names_dialog(dialog), Condition::Lacks("chatbot".into())]);
    chatbot_flag_write(dialog, true, condition)
}

fn names_dialog(dialog: &Dialog) -> Condition {
    Condition::Equals("dialog_id".into(), Value::String(dialog.id.to_string()))
}

fn chatbot_flag_write(dialog: &Dialog, held: bool, condition: Condition) -> Write {
    let (set, remove) = match held {
        true => (Item::from_iter([("chatbot".to_owned(), Value::Bool(true))]), Vec::new()),
        false => (Item::new(), vec!["chatbot".to_owned()]),
    };
    let key = keys::open_dialog_key(&dialog.channel_id, &dialog.customer.id);
    Write::Update { key, set, remove, condition }
}

/// What a forward marker holds: the dialog, and the latest message it stands for.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardMarker {
    pub dialog_id: DialogId,
    pub message_id: MessageId,
}

/// How long the router has to forward a chatbot's message before the sweep does it.
pub const FORWARD_GRACE: SignedDuration = SignedDuration::from_secs(60);

/// Ingest's mark that a customer message of a chatbot's dialog awaits forwarding: due `FORWARD_GRACE`
/// later in the routing part of the due index, so that if `MessageReceived` is lost the sweep forwards it.
/// One per dialog (a later message replaces it); the router removes it once forwarded.
pub fn forward_marker_put(dialog: &DialogId, message: &MessageId, now: Timestamp) -> Result<Write> {
    let marker = ForwardMarker { dialog_id: dialog.clone(), message_id: message.clone() };
    let id = dialog.to_string();
    let due = (
        Index::Gsi3,
        keys::route_due_pk(keys::due_shard(&id, keys::DUE_SHARDS)),
        keys::due_sk(now + FORWARD_GRACE, &format!("F#{id}")),
    );
    let item = to_item(&marker, &keys::forward_marker_key(dialog), &[due])?;
    Ok(Write::Put { item, condition: Condition::Always })
}

/// How stale the dialog item's `last_activity_at` may get while its customer keeps writing.
pub const LIST_REFRESH: SignedDuration = SignedDuration::from_secs(60);

impl OpenDialog {
    /// The last activity the close timer measures from: the later of the dialog item's (moved by replies
    /// and by ingest at most once a minute) and the pointer's (moved by every customer message).
    pub fn last_activity(&self, dialog: &Dialog) -> Timestamp {
        self.last_activity_at.map_or(dialog.last_activity_at, |at| at.max(dialog.last_activity_at))
    }

    /// Holds while the pointer still names this dialog and no customer message moved it since it was read:
    /// what a close for inactivity is conditioned on.
    pub fn unchanged(&self) -> Condition {
        let names = Condition::Equals("dialog_id".into(), Value::String(self.dialog_id.to_string()));
        let activity = match &self.last_activity_at {
            Some(at) => Condition::Equals("last_activity_at".into(), Value::String(at.to_string())),
            None => Condition::Lacks("last_activity_at".into()),
        };
        Condition::All(vec![names, activity])
    }
}

/// After an employee's reply the customer's next message starts the auto-replies again.
pub fn replied_write(dialog: &Dialog) -> Write {
    let mut set = Item::new();
    set.insert("awaiting_reply".into(), Value::Bool(false));
    Write::Update {
        key: keys::open_dialog_key(&dialog.channel_id, &dialog.customer.id),
        set,
        remove: Vec::new(),
        condition: names_dialog(dialog),
    }
}

/// Frees the capacity slot of the dialog's assignee: every transaction that takes a dialog away from its
/// assignee (closing it) includes these writes. The slot is deleted on condition it still holds this
/// dialog: if that fails, the dialog was re-routed meanwhile (read it again).
pub fn release_writes(dialog: &Dialog) -> Vec<Write> {
    match (&dialog.assignee_id, dialog.slot) {
        (Some(employee), Some(slot)) => vec![Write::Delete {
            key: keys::slot_key(&dialog.tenant_id, employee, slot),
            condition: names_dialog(dialog),
        }],
        _ => Vec::new(),
    }
}

/// A tenant's working hours as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HoursRecord {
    pub tenant_id: TenantId,
    pub hours: WorkingHours,
    pub updated_at: Timestamp,
}

pub fn working_hours_write(tenant: &TenantId, hours: &WorkingHours, now: Timestamp) -> Result<Write> {
    let record = HoursRecord { tenant_id: tenant.clone(), hours: hours.clone(), updated_at: now };
    let item = to_item(&record, &keys::working_hours_key(tenant), &[])?;
    Ok(Write::Put { item, condition: Condition::Always })
}

// ---- e-mail ----

/// An e-mail channel in the poller's list.
#[derive(Debug, Serialize, Deserialize)]
pub struct EmailChannelEntry {
    pub channel_id: ChannelId,
    pub tenant_id: TenantId,
}

/// The writes that list a new e-mail channel for the poller (none for other providers): part of the
/// transaction that creates the channel, so no e-mail channel is ever missing from the list.
pub fn email_channel_writes(channel: &Channel) -> Result<Vec<Write>> {
    if channel.provider != Provider::Email {
        return Ok(Vec::new());
    }
    let entry = EmailChannelEntry { channel_id: channel.id.clone(), tenant_id: channel.tenant_id.clone() };
    let item = to_item(&entry, &keys::email_channel_key(&channel.id), &[])?;
    Ok(vec![Write::Put { item, condition: Condition::Always }])
}

/// The thread of one inbound mail: what a reply to it refers to.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ThreadRecord {
    pub tenant_id: TenantId,
    pub message_id: MessageId,
    /// The mail's Message-ID, without angle brackets.
    pub mail_id: String,
    pub subject: Option<String>,
    /// The mail's `References` (or `In-Reply-To`), oldest first.
    pub references: Vec<String>,
}

/// Keeps what a reply to an inbound mail refers to, beside the dialog's messages; it expires with its
/// message (the subject is the customer's text too).
pub fn email_thread_write(
    tenant: &TenantId,
    dialog: &DialogId,
    message: &MessageId,
    mail: ThreadRecordParts,
    retention: Retention,
    now: Timestamp,
) -> Result<Write> {
    let ThreadRecordParts { mail_id, subject, references } = mail;
    let record =
        ThreadRecord { tenant_id: tenant.clone(), message_id: message.clone(), mail_id, subject, references };
    let item = to_item(&record, &keys::email_thread_key(dialog, message), &[])?;
    Ok(Write::Put { item: retention.apply(item, now), condition: Condition::Always })
}

/// What an inbound mail's thread record keeps of the mail.
#[derive(Debug, Clone)]
pub struct ThreadRecordParts {
    pub mail_id: String,
    pub subject: Option<String>,
    pub references: Vec<String>,
}

// ---- timers ----

/// Due-index shards per timer kind (see [`keys::DUE_SHARDS`] for the arithmetic).
pub const TIMER_SHARDS: u32 = keys::DUE_SHARDS;

/// A dialog's timer as stored: when it is due is its gsi3 sort key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timer {
    pub dialog_id: DialogId,
    pub channel_id: ChannelId,
    pub tenant_id: TenantId,
    /// Auto-replies: the customer message the sequence counts from, and which reply is next.
    #[serde(default)]
    pub anchor: Option<Timestamp>,
    #[serde(default)]
    pub next: usize,
}

/// Puts the timer, due at `due`.
pub fn timer_put(
    kind: keys::TimerKind,
    timer: &Timer,
    due: Timestamp,
    condition: Condition,
) -> Result<Write> {
    let dialog = timer.dialog_id.as_str();
    let item = to_item(
        timer,
        &keys::timer_key(&timer.dialog_id, kind),
        &[(
            Index::Gsi3,
            keys::timer_due_pk(kind, keys::due_shard(dialog, TIMER_SHARDS)),
            keys::due_sk(due, dialog),
        )],
    )?;
    Ok(Write::Put { item, condition })
}

/// Arms the inactivity close of a dialog that opens at `now`: due the channel's `auto_close` later. Only
/// the transaction that opens a dialog writes it; messages move the dialog's `last_activity_at`, not the
/// timer, and the timer re-arms itself when it finds the dialog not idle yet (`usecases::timers`).
pub fn close_timer_write(dialog_id: &DialogId, channel: &Channel, now: Timestamp) -> Result<Write> {
    let timer = Timer {
        dialog_id: dialog_id.clone(),
        channel_id: channel.id.clone(),
        tenant_id: channel.tenant_id.clone(),
        anchor: None,
        next: 0,
    };
    timer_put(keys::TimerKind::Close, &timer, close_deadline(now, channel), Condition::Always)
}

/// When a dialog last active at `last_activity` is idle past the channel's limit.
pub fn close_deadline(last_activity: Timestamp, channel: &Channel) -> Timestamp {
    last_activity.saturating_add(delay(channel.settings.auto_close.seconds())).unwrap_or(last_activity)
}

/// The close timers of a channel's open dialogs to bring forward after its `auto_close` was shortened
/// (they were armed under the longer limit): a due item among the close timers, which the close job
/// handles page by page (`usecases::timers`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloseRescan {
    pub channel_id: ChannelId,
    pub tenant_id: TenantId,
    /// This rescan's own id: a newer shortening replaces the item, and the older run's progress writes
    /// (conditioned on it) then fail.
    pub token: String,
    /// How far it got: the index in the list of open statuses, and the page token within that list.
    #[serde(default)]
    pub status: usize,
    #[serde(default)]
    pub after: Option<String>,
}

/// Writes the rescan as it stands, due at `due`, on `condition`.
pub fn close_rescan_put(rescan: &CloseRescan, due: Timestamp, condition: Condition) -> Result<Write> {
    let channel = rescan.channel_id.as_str();
    let item = to_item(
        rescan,
        &keys::close_rescan_key(&rescan.channel_id),
        &[(
            Index::Gsi3,
            keys::timer_due_pk(keys::TimerKind::Close, keys::due_shard(channel, TIMER_SHARDS)),
            keys::due_sk(due, channel),
        )],
    )?;
    Ok(Write::Put { item, condition })
}

/// A new rescan of the channel's open dialogs, due at once; it replaces one in progress (which started from
/// a longer limit).
pub fn close_rescan_write(channel: &Channel, now: Timestamp) -> Result<Write> {
    let rescan = CloseRescan {
        channel_id: channel.id.clone(),
        tenant_id: channel.tenant_id.clone(),
        token: uuid::Uuid::now_v7().to_string(),
        status: 0,
        after: None,
    };
    close_rescan_put(&rescan, now, Condition::Always)
}

/// Starts the channel's auto-reply sequence for a customer message at `now`, if the channel has any.
pub fn auto_reply_start_write(
    dialog_id: &DialogId,
    channel: &Channel,
    now: Timestamp,
) -> Result<Option<Write>> {
    let Some(first) = channel.settings.auto_replies.first() else {
        return Ok(None);
    };
    let timer = Timer {
        dialog_id: dialog_id.clone(),
        channel_id: channel.id.clone(),
        tenant_id: channel.tenant_id.clone(),
        anchor: Some(now),
        next: 0,
    };
    let due = now + delay(first.delay_seconds);
    Ok(Some(timer_put(keys::TimerKind::AutoReply, &timer, due, Condition::Always)?))
}

/// A delay in seconds from the settings as a duration (settings bound it far below the cap).
pub fn delay(seconds: u64) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(seconds).unwrap_or(i64::MAX / 2))
}

/// An employee's reply cancels the pending auto-replies; put in the reply's own transaction.
pub fn cancel_auto_replies_write(dialog: &DialogId) -> Write {
    Write::Delete { key: keys::timer_key(dialog, keys::TimerKind::AutoReply), condition: Condition::Always }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::domain::{Customer, InboundKind, InboundMessage};
    use crate::ports::store::EXPIRES_AT;

    fn message(received_at: Timestamp) -> Message {
        let inbound = InboundMessage {
            dedup_key: "1".into(),
            kind: InboundKind::Message,
            customer: Customer { id: "c".into(), name: None, handle: None },
            provider_message_id: Some("1".into()),
            text: Some("hello".into()),
            attachments: Vec::new(),
            sent_at: None,
        };
        Message::inbound(
            TenantId::generate(),
            ChannelId::generate(),
            DialogId::generate(),
            &inbound,
            received_at,
            |_| false,
        )
    }

    #[test]
    fn a_message_expires_the_retention_after_it_was_stored_and_never_without_one() {
        let stored: Timestamp = "2025-03-01T10:00:00Z".parse().expect("time");
        let message = message(stored);
        let kept = message_item(&message, Retention::days(30).expect("30 days")).expect("item");
        let thirty_days_later: Timestamp = "2025-03-31T10:00:00Z".parse().expect("time");
        assert_eq!(kept.get(EXPIRES_AT), Some(&Value::from(thirty_days_later.as_second())));
        let forever = message_item(&message, Retention::FOREVER).expect("item");
        assert_eq!(forever.get(EXPIRES_AT), None);
        assert_eq!(message_item(&message, Retention::days(0).expect("0")).expect("item"), forever);
    }

    #[test]
    fn the_setting_is_whole_days_and_anything_else_is_refused_with_the_reason() {
        assert_eq!(Retention::parse(""), Ok(Retention::FOREVER));
        assert_eq!(Retention::parse(" 0 "), Ok(Retention::FOREVER));
        assert_eq!(Retention::parse("365").map(Retention::in_days), Ok(Some(365)));
        assert_eq!(Retention::parse("36500").map(Retention::in_days), Ok(Some(36_500)));
        for bad in ["-1", "1.5", "30d", "thirty", "36501", "99999999999"] {
            let refused = Retention::parse(bad).expect_err(bad);
            assert!(refused.contains("days") || refused.contains("number"), "{bad}: {refused}");
        }
    }
}

/// Which customer an identity is (`keys::identity_key`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub customer_id: CustomerId,
    pub tenant_id: TenantId,
}

/// One entry of a customer's dialog list (`keys::customer_dialog_key`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerDialog {
    pub dialog_id: DialogId,
    pub channel_id: ChannelId,
    pub opened_at: Timestamp,
}

/// A customer's profile: listed under its tenant (gsi1) while it stands for a person, unlisted once merged
/// into another or being erased.
pub fn customer_item(profile: &CustomerProfile) -> Result<Item> {
    let key = keys::customer_key(&profile.tenant_id, &profile.id);
    let listed = profile.merged_into.is_none() && !profile.erasing;
    match listed {
        true => to_item(
            profile,
            &key,
            &[(Index::Gsi1, keys::customers_of(&profile.tenant_id), profile.id.to_string())],
        ),
        false => to_item(profile, &key, &[]),
    }
}

/// A profile written over the one read: on condition it is still at the revision read (`NotExists` for a
/// new one), its revision moved on.
pub fn customer_put(profile: &CustomerProfile, read: Option<u64>) -> Result<Write> {
    let mut next = profile.clone();
    let condition = match read {
        None => Condition::NotExists,
        Some(revision) => {
            next.revision = revision + 1;
            Condition::Equals("revision".into(), Value::from(revision))
        }
    };
    Ok(Write::Put { item: customer_item(&next)?, condition })
}

/// The identity now naming `customer`; `previous` is the customer it must still name (none: it must be new).
pub fn identity_put(
    identity: &Identity,
    tenant: &TenantId,
    customer: &CustomerId,
    previous: Option<&CustomerId>,
) -> Result<Write> {
    let record = IdentityRecord { customer_id: customer.clone(), tenant_id: tenant.clone() };
    let condition = match previous {
        None => Condition::NotExists,
        Some(previous) => Condition::Equals("customer_id".into(), Value::String(previous.to_string())),
    };
    Ok(Write::Put {
        item: to_item(&record, &keys::identity_key(&identity.channel_id, &identity.external_id), &[])?,
        condition,
    })
}

/// The dialog's entry in its customer's list.
pub fn customer_dialog_put(dialog: &Dialog, customer: &CustomerId) -> Result<Write> {
    let entry = CustomerDialog {
        dialog_id: dialog.id.clone(),
        channel_id: dialog.channel_id.clone(),
        opened_at: dialog.opened_at,
    };
    let key = keys::customer_dialog_key(&dialog.tenant_id, customer, dialog.opened_at, &dialog.id);
    Ok(Write::Put { item: to_item(&entry, &key, &[])?, condition: Condition::Always })
}
