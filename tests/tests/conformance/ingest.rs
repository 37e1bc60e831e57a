//! Ingest on every adapter set (docs/ARCHITECTURE.md invariants 1 and 2): retried and racing deliveries are
//! one message, racing first messages are one dialog, and a failure between any two store calls followed by
//! the provider's retry leaves exactly one message.

use std::sync::Arc;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use jiff::Timestamp;
use omnichat::domain::{
    Account, Channel, ChannelId, ChannelSettings, ChannelStatus, Customer, Dialog, DialogId, InboundKind,
    InboundMessage, Message, Provider, TenantId,
};
use omnichat::ports::clock::SystemClock;
use omnichat::ports::store::EXPIRES_AT;
use omnichat::ports::{Condition, Index, Item, Key, Page, Query, SkRange, Store, StoreError, Write};
use omnichat::providers::Providers;
use omnichat::repo::{self, Retention};
use omnichat::usecases::Context;
use omnichat::usecases::ingest::{self, IngestOutcome};
use omnichat::usecases::outbox;

use super::AdapterSet;

pub(crate) fn context(store: Arc<dyn Store>, set: &AdapterSet) -> Context {
    Context::new(
        store,
        set.2.clone(),
        set.3.clone(),
        Arc::new(SystemClock),
        Providers::default(),
        "https://x.test",
    )
}

/// A channel, stored: ingest checks the stored one is still the one it was given.
pub(crate) async fn channel(store: &dyn Store) -> Channel {
    let now = Timestamp::now();
    let channel = Channel {
        id: ChannelId::generate(),
        tenant_id: TenantId::generate(),
        provider: Provider::Telegram,
        name: "bot".into(),
        account: Account { id: "1".into(), name: "bot".into() },
        status: ChannelStatus::Active,
        settings: ChannelSettings::default(),
        webhook_url: "https://x.test/webhooks/telegram/1".into(),
        credentials_masked: Default::default(),
        displaced_by: None,
        created_at: now,
        updated_at: now,
    };
    let item = omnichat::repo::channel_item(&channel).expect("channel item");
    store.transact(vec![Write::Put { item, condition: Condition::NotExists }]).await.expect("store channel");
    channel
}

pub(crate) fn inbound(dedup_key: &str, customer: &str, text: &str) -> InboundMessage {
    InboundMessage {
        dedup_key: dedup_key.into(),
        kind: InboundKind::Message,
        customer: Customer { id: customer.into(), name: Some("Ann".into()), handle: None },
        provider_message_id: Some(dedup_key.into()),
        text: Some(text.into()),
        attachments: Vec::new(),
        sent_at: None,
    }
}

/// The tenant's dialogs and, for each, its stored messages' texts.
async fn stored(store: &dyn Store, tenant: &TenantId) -> Vec<(Dialog, Vec<String>)> {
    let dialogs = store
        .query(&Query::index(Index::Gsi1, format!("T#{tenant}#DIALOGS")).limit(1000))
        .await
        .expect("dialogs");
    let mut found = Vec::new();
    for item in dialogs.items {
        let dialog: Dialog = serde_json::from_value(serde_json::Value::Object(item)).expect("a dialog");
        let query =
            Query::table(format!("DLG#{}", dialog.id)).range(SkRange::BeginsWith("MSG#".into())).limit(1000);
        let messages = store.query(&query).await.expect("messages");
        let texts =
            messages.items.iter().filter_map(|m| m.get("text")?.as_str().map(str::to_owned)).collect();
        found.push((dialog, texts));
    }
    found
}

/// Whether a stored dialog has what it needs from the start: its close timer and its routing state (no
/// router runs in these tests, so the unrouted marker stays).
async fn has_due_items(store: &dyn Store, dialog: &DialogId) -> bool {
    let close = store.get(&repo::timer_key(dialog, repo::TimerKind::Close)).await.expect("close timer");
    let route = store.get(&repo::route_key(dialog)).await.expect("routing state");
    close.is_some() && route.is_some()
}

pub async fn twenty_identical_deliveries_store_one_message(set: AdapterSet) {
    let ctx = Arc::new(context(set.1.clone(), &set));
    let channel = Arc::new(channel(set.1.as_ref()).await);
    let message = inbound("update-1", "42", "hello");
    let outcomes = super::all_at_once(20, |_| {
        let (ctx, channel, message) = (ctx.clone(), channel.clone(), message.clone());
        async move { ingest::ingest(&ctx, &channel, &message).await.expect("ingest") }
    })
    .await;
    let stored_count = outcomes.iter().filter(|o| matches!(o, IngestOutcome::Stored { .. })).count();
    assert_eq!(stored_count, 1, "{outcomes:?}");
    let found = stored(set.1.as_ref(), &channel.tenant_id).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, vec!["hello".to_owned()]);
}

pub async fn racing_first_messages_share_one_dialog(set: AdapterSet) {
    let ctx = Arc::new(context(set.1.clone(), &set));
    let channel = Arc::new(channel(set.1.as_ref()).await);
    // Ten new customers, each sending two different first messages at the same moment.
    let outcomes = super::all_at_once(20, |i| {
        let (ctx, channel) = (ctx.clone(), channel.clone());
        let message = inbound(&format!("m-{i}"), &format!("customer-{}", i / 2), &format!("text {i}"));
        async move { ingest::ingest(&ctx, &channel, &message).await.expect("ingest") }
    })
    .await;
    assert!(outcomes.iter().all(|o| matches!(o, IngestOutcome::Stored { .. })), "{outcomes:?}");
    let found = stored(set.1.as_ref(), &channel.tenant_id).await;
    assert_eq!(found.len(), 10, "one dialog per customer");
    for (dialog, texts) in &found {
        assert_eq!(texts.len(), 2, "dialog of {} has {texts:?}", dialog.customer.id);
    }
}

/// With a retention (`MESSAGE_RETENTION_DAYS`) every message record, inbound and outbound, carries the
/// table's TTL attribute `expires_at` = stored + the days, in epoch seconds; without one, none does.
pub async fn messages_carry_expires_at_only_with_a_retention(set: AdapterSet) {
    let retention = Retention::days(30).expect("30 days");
    for (ctx, expected_days) in [
        (context(set.1.clone(), &set).with_message_retention(retention), Some(30)),
        (context(set.1.clone(), &set), None),
    ] {
        let channel = channel(set.1.as_ref()).await;
        let before = Timestamp::now();
        let IngestOutcome::Stored { dialog_id, message_id, .. } =
            ingest::ingest(&ctx, &channel, &inbound("r-1", "42", "hello")).await.expect("ingest")
        else {
            panic!("stored expected");
        };
        let dialog = repo::load_dialog(set.1.as_ref(), &dialog_id).await.expect("load").expect("dialog");
        let reply = Message::outbound(&dialog, "hi".into(), Vec::new(), None, ctx.clock.now());
        // No provider is registered: the send fails and the reply stays pending, stored all the same.
        let reply = outbox::send_in_dialog(&ctx, &dialog, reply, Vec::new()).await.expect("reply");
        let after = Timestamp::now();
        for (direction, id) in [("inbound", &message_id), ("outbound", &reply.id)] {
            let item = set.1.get(&repo::message_key(&dialog_id, id)).await.expect("get").expect("message");
            let expires_at = item.get(EXPIRES_AT).map(|v| v.as_i64().expect("epoch seconds"));
            match expected_days {
                None => assert_eq!(expires_at, None, "{direction} without retention"),
                Some(days) => {
                    let at = expires_at.unwrap_or_else(|| panic!("{direction} has no expires_at"));
                    let span = i64::from(days) * 86_400;
                    assert!(
                        (before.as_second() + span..=after.as_second() + span).contains(&at),
                        "{direction}: {at} is not {days} days after it was stored"
                    );
                }
            }
        }
    }
}

/// Fails chosen calls to the store (by position, counted from 1), either before they reach the store or
/// after they were applied (the answer is lost), the way a crash or a time-out does. It records every call
/// it saw and every fault it injected, so that a test can prove each fault fired.
pub(crate) struct FailingStore {
    inner: Arc<dyn Store>,
    faults: Vec<usize>,
    applied: bool,
    calls: Mutex<Vec<&'static str>>,
    fired: Mutex<Vec<usize>>,
}

impl FailingStore {
    pub(crate) fn new(inner: Arc<dyn Store>, faults: Vec<usize>, applied: bool) -> Self {
        Self { inner, faults, applied, calls: Mutex::new(Vec::new()), fired: Mutex::new(Vec::new()) }
    }

    fn injected(&self, method: &'static str) -> Option<StoreError> {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.push(method);
        let call = calls.len();
        if !self.faults.contains(&call) {
            return None;
        }
        self.fired.lock().unwrap_or_else(PoisonError::into_inner).push(call);
        Some(StoreError::Unavailable(format!("injected failure at call {call} ({method})")))
    }

    async fn run<T>(
        &self,
        method: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.injected(method) {
            None => call.await,
            Some(error) if self.applied => {
                let _ = call.await;
                Err(error)
            }
            Some(error) => Err(error),
        }
    }

    pub(crate) fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn fired(&self) -> Vec<usize> {
        self.fired.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl Store for FailingStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.run("get", self.inner.get(key)).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.run("get_many", self.inner.get_many(keys)).await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.run("transact", self.inner.transact(writes)).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.run("query", self.inner.query(query)).await
    }

    async fn increment(&self, key: &Key, attribute: &str, by: i64) -> Result<i64, StoreError> {
        self.run("increment", self.inner.increment(key, attribute, by)).await
    }
}

/// Runs of ingest under injected faults. A fault schedule lists the store calls to fail; each run's calls
/// after its last fault are each tried as one more fault, so every store call the path makes, including
/// those of ingest's own retries after a failed transaction, is failed once in some run. Bounded by the
/// path itself (ingest gives up after a fixed number of attempts) and by `MAX_RUNS`.
pub async fn a_failure_at_any_store_call_then_the_retry_stores_exactly_once(set: AdapterSet) {
    const MAX_RUNS: usize = 200;
    let channel = channel(set.1.as_ref()).await;
    let healthy = context(set.1.clone(), &set);
    // The customer of `existing` already has an open dialog; each `new-…` customer has none yet.
    ingest::ingest(&healthy, &channel, &inbound("first", "existing", "first")).await.expect("ingest");
    let mut expected_messages = 1;
    let mut new_customers = 0;
    let mut runs = 0;
    let mut failed_methods = std::collections::BTreeSet::new();
    for applied in [false, true] {
        for existing in [true, false] {
            // The path without faults: this is what the single faults below must cover.
            let probe = Arc::new(FailingStore::new(set.1.clone(), Vec::new(), applied));
            let customer = if existing { "existing".to_owned() } else { format!("new-probe-{applied}") };
            let probe_key = format!("probe-{applied}-{existing}");
            ingest::ingest(
                &context(probe.clone(), &set),
                &channel,
                &inbound(&probe_key, &customer, &probe_key),
            )
            .await
            .expect("a healthy ingest");
            // A new dialog's due items (the close timer and the unrouted marker: this channel has no
            // auto-replies) are each written alone before the transaction.
            let healthy_calls: &[&str] = match existing {
                true => &["get_many", "transact"],
                false => &["get_many", "transact", "transact", "transact"],
            };
            assert_eq!(probe.calls(), healthy_calls, "the healthy path's store calls");
            expected_messages += 1;
            new_customers += usize::from(!existing);
            let mut schedules: std::collections::VecDeque<Vec<usize>> =
                (1..=probe.calls().len()).map(|call| vec![call]).collect();
            while let Some(faults) = schedules.pop_front() {
                runs += 1;
                assert!(runs <= MAX_RUNS, "the fault schedules did not end: {faults:?}");
                let key = format!("{faults:?}-{applied}-{existing}");
                let customer = if existing { "existing".to_owned() } else { format!("new-{key}") };
                let failing = Arc::new(FailingStore::new(set.1.clone(), faults.clone(), applied));
                let flaky = context(failing.clone(), &set);
                let message = inbound(&key, &customer, &key);
                let first = ingest::ingest(&flaky, &channel, &message).await;
                let calls = failing.calls();
                // Every scheduled fault fired: a fault past the path's last call would test nothing.
                assert_eq!(failing.fired(), faults, "{key}: calls {calls:?}, first {first:?}");
                for fault in &faults {
                    failed_methods.insert(calls[fault - 1]);
                }
                let last = faults.last().copied().unwrap_or_default();
                schedules.extend((last + 1..=calls.len()).map(|call| [faults.clone(), vec![call]].concat()));
                let copies_of = |found: &[(Dialog, Vec<String>)]| -> usize {
                    found.iter().map(|(_, texts)| texts.iter().filter(|t| **t == key).count()).sum()
                };
                // A success answered to the provider means the message is stored: it will not retry.
                if first.is_ok() {
                    let found = stored(set.1.as_ref(), &channel.tenant_id).await;
                    assert_eq!(copies_of(&found), 1, "{key}: answered {first:?} with calls {calls:?}");
                }
                // The provider retries until it gets a 2xx, and once more for good measure.
                let retry = ingest::ingest(&healthy, &channel, &message).await.expect("the retry succeeds");
                let again = ingest::ingest(&healthy, &channel, &message).await.expect("a late duplicate");
                assert_eq!(again, IngestOutcome::Duplicate);
                expected_messages += 1;
                new_customers += usize::from(!existing);
                let found = stored(set.1.as_ref(), &channel.tenant_id).await;
                assert_eq!(copies_of(&found), 1, "{key}: first {first:?}, retry {retry:?}");
                let total: usize = found.iter().map(|(_, texts)| texts.len()).sum();
                assert_eq!(total, expected_messages, "{key}");
                let dialogs_of = |c: &str| found.iter().filter(|(d, _)| d.customer.id == c).count();
                assert_eq!(dialogs_of("existing"), 1, "{key}");
                assert_eq!(dialogs_of(&customer), 1, "{key}");
                assert_eq!(found.len(), 1 + new_customers, "{key}: one dialog per customer");
                for (dialog, _) in &found {
                    assert!(has_due_items(set.1.as_ref(), &dialog.id).await, "{key}: dialog {}", dialog.id);
                }
            }
        }
    }
    // Both kinds of call were failed, including the reads and writes of ingest's own retries.
    assert_eq!(failed_methods.into_iter().collect::<Vec<_>>(), ["get_many", "transact"]);
    assert!(runs > 4, "only {runs} runs: the retries inside ingest were not reached");
}

pub async fn a_message_after_the_dialog_closed_opens_a_new_one(set: AdapterSet) {
    let ctx = context(set.1.clone(), &set);
    let channel = channel(set.1.as_ref()).await;
    let first = ingest::ingest(&ctx, &channel, &inbound("a", "c", "before")).await.expect("ingest");
    let IngestOutcome::Stored { dialog_id, opened_dialog: true, .. } = first else { panic!("{first:?}") };
    let item =
        set.1.get(&Key::new(format!("DLG#{dialog_id}"), "DIALOG")).await.expect("get").expect("dialog");
    let dialog: Dialog = serde_json::from_value(serde_json::Value::Object(item)).expect("dialog");
    omnichat::usecases::dialogs::close(&ctx, dialog).await.expect("close");
    let second = ingest::ingest(&ctx, &channel, &inbound("b", "c", "after")).await.expect("ingest");
    let IngestOutcome::Stored { dialog_id: new_dialog, opened_dialog: true, .. } = second else {
        panic!("{second:?}")
    };
    assert_ne!(new_dialog, dialog_id);
    let found = stored(set.1.as_ref(), &channel.tenant_id).await;
    assert_eq!(found.len(), 2);
}

/// Ingest may be handed a channel a container remembered: if the stored channel changed since (settings,
/// disconnect), nothing is stored and the caller is told to read it again. A repeated delivery is found by
/// the one batch read and costs nothing more.
pub async fn a_stale_channel_stores_nothing_and_a_repeat_costs_one_read(set: AdapterSet) {
    let counting = Arc::new(omnichat::adapters::counting::CountingStore::new(set.1.clone()));
    let ctx = context(counting.clone(), &set);
    let channel = channel(set.1.as_ref()).await;
    let first = ingest::ingest(&ctx, &channel, &inbound("a", "c", "first")).await.expect("ingest");
    assert!(matches!(first, IngestOutcome::Stored { .. }), "{first:?}");

    counting.reset();
    let again = ingest::ingest(&ctx, &channel, &inbound("a", "c", "first")).await.expect("ingest");
    assert_eq!(again, IngestOutcome::Duplicate);
    let counts = counting.counts();
    assert_eq!((counts.reads, counts.writes), (1, 0), "a repeat costs one read: {counts:?}");

    let mut changed = channel.clone();
    changed.updated_at = channel.updated_at + jiff::SignedDuration::from_secs(1);
    changed.status = ChannelStatus::Disconnected;
    let item = omnichat::repo::channel_item(&changed).expect("item");
    set.1.transact(vec![Write::Put { item, condition: Condition::Exists }]).await.expect("disconnect");
    let stale = ingest::ingest(&ctx, &channel, &inbound("b", "c", "after the change")).await.expect("ingest");
    assert_eq!(stale, IngestOutcome::ChannelChanged);
    let found = stored(set.1.as_ref(), &channel.tenant_id).await;
    let texts: Vec<&String> = found.iter().flat_map(|(_, texts)| texts).collect();
    assert_eq!(texts, vec!["first"], "nothing stored through the stale channel");
}

/// Issue 16, goal 1: the capacity units an inbound message costs, by DynamoDB's item-size and unit rules
/// applied to the items each adapter actually stored (`adapters::units`). A steady-state message writes at
/// most 6 units and no index entry; once a minute of a customer's writing, the dialog item (and its two
/// list entries) takes the activity; a repeated delivery writes nothing.
pub async fn a_message_costs_the_write_units_the_scaling_page_states(set: AdapterSet) {
    use omnichat::adapters::units::UnitMeter;
    use omnichat::ports::clock::ManualClock;
    let meter = Arc::new(UnitMeter::new(set.1.clone()));
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let mut ctx = context(meter.clone(), &set);
    ctx.clock = clock.clone();
    let channel = channel(set.1.as_ref()).await;

    meter.take();
    let first = ingest::ingest(&ctx, &channel, &inbound("u0", "c", "hello")).await.expect("ingest");
    assert!(matches!(first, IngestOutcome::Stored { opened_dialog: true, .. }), "{first:?}");
    let opened = meter.take();
    // 14 for the dialog and its keys (its close timer and unrouted marker written alone, one unit each and
    // one for their gsi3 entries), plus the new person's profile (+ its gsi1 entry), identity record and
    // the dialog's entry in their list (docs/SCALING.md §2).
    assert!(opened.writes() <= 21.0, "a new dialog of a new customer: {opened:?}");

    for n in 1..=5 {
        clock.advance(jiff::SignedDuration::from_secs(5));
        let text = format!("message {n}");
        let next =
            ingest::ingest(&ctx, &channel, &inbound(&format!("u{n}"), "c", &text)).await.expect("ingest");
        assert!(matches!(next, IngestOutcome::Stored { opened_dialog: false, .. }), "{next:?}");
        let units = meter.take();
        assert_eq!(units.index_writes, 0.0, "a steady-state message rewrites no index entry: {units:?}");
        assert!(units.table_writes <= 6.0, "a steady-state message: {units:?}");
        assert!(units.reads <= 4.0, "one batch of four small reads: {units:?}");
    }

    clock.advance(repo::LIST_REFRESH);
    ingest::ingest(&ctx, &channel, &inbound("u6", "c", "a minute on")).await.expect("ingest");
    let relisted = meter.take();
    assert_eq!(relisted.index_writes, 2.0, "the dialog's two list entries: {relisted:?}");
    assert!(relisted.table_writes <= 8.0, "{relisted:?}");

    let again = ingest::ingest(&ctx, &channel, &inbound("u6", "c", "a minute on")).await.expect("ingest");
    assert_eq!(again, IngestOutcome::Duplicate);
    assert_eq!(meter.take().writes(), 0.0, "a repeated delivery writes nothing");
    eprintln!("units: new dialog {opened:?}; a minute on {relisted:?}");
}
