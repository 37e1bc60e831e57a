//! Ingest on every adapter set (docs/ARCHITECTURE.md invariants 1 and 2): retried and racing deliveries are
//! one message, racing first messages are one dialog, and a failure between any two store calls followed by
//! the provider's retry leaves exactly one message.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use jiff::Timestamp;
use omnichat::domain::{
    Account, Channel, ChannelId, ChannelSettings, ChannelStatus, Customer, Dialog, InboundKind,
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

fn context(store: Arc<dyn Store>, set: &AdapterSet) -> Context {
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
async fn channel(store: &dyn Store) -> Channel {
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

fn inbound(dedup_key: &str, customer: &str, text: &str) -> InboundMessage {
    InboundMessage {
        dedup_key: dedup_key.into(),
        kind: InboundKind::Message,
        customer: Customer { id: customer.into(), name: Some("Ann".into()) },
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
        let reply = outbox::send_in_dialog(&ctx, &dialog, &channel, reply, Vec::new()).await.expect("reply");
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

/// Fails the n-th call to the store, either before it reaches the store or after it was applied (the
/// answer is lost), the way a crash or a time-out does.
struct FailingStore {
    inner: Arc<dyn Store>,
    fail_at: usize,
    applied: bool,
    calls: AtomicUsize,
}

impl FailingStore {
    fn injected(&self) -> Option<StoreError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        (call == self.fail_at).then(|| StoreError::Unavailable("injected failure".into()))
    }

    async fn run<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.injected() {
            None => call.await,
            Some(error) if self.applied => {
                let _ = call.await;
                Err(error)
            }
            Some(error) => Err(error),
        }
    }
}

#[async_trait]
impl Store for FailingStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.run(self.inner.get(key)).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.run(self.inner.get_many(keys)).await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.run(self.inner.transact(writes)).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.run(self.inner.query(query)).await
    }

    async fn increment(&self, key: &Key, attribute: &str, by: i64) -> Result<i64, StoreError> {
        self.run(self.inner.increment(key, attribute, by)).await
    }
}

pub async fn a_failure_at_any_store_call_then_the_retry_stores_exactly_once(set: AdapterSet) {
    let channel = channel(set.1.as_ref()).await;
    let healthy = context(set.1.clone(), &set);
    // The customer of `existing` already has an open dialog; the one of `new` has none yet.
    ingest::ingest(&healthy, &channel, &inbound("first", "existing", "first")).await.expect("ingest");
    let mut expected_messages = 1;
    let mut seen_new = false;
    // Ingest makes two store calls per attempt (read the pointer and the delivery record, write the transaction), and retries an
    // unavailable transaction itself: failing call n covers every gap between two writes.
    for fail_at in 1..=3 {
        for applied in [false, true] {
            for customer in ["existing", "new"] {
                let key = format!("{customer}-{fail_at}-{applied}");
                let failing =
                    FailingStore { inner: set.1.clone(), fail_at, applied, calls: AtomicUsize::new(0) };
                let flaky = context(Arc::new(failing), &set);
                let message = inbound(&key, customer, &key);
                let first = ingest::ingest(&flaky, &channel, &message).await;
                // The provider retries until it gets a 2xx, and once more for good measure.
                let retry = ingest::ingest(&healthy, &channel, &message).await.expect("the retry succeeds");
                let again = ingest::ingest(&healthy, &channel, &message).await.expect("a late duplicate");
                assert_eq!(again, IngestOutcome::Duplicate);
                expected_messages += 1;
                let found = stored(set.1.as_ref(), &channel.tenant_id).await;
                let copies: usize =
                    found.iter().map(|(_, texts)| texts.iter().filter(|t| **t == key).count()).sum();
                assert_eq!(copies, 1, "{key}: first {first:?}, retry {retry:?}");
                let total: usize = found.iter().map(|(_, texts)| texts.len()).sum();
                assert_eq!(total, expected_messages, "{key}");
                let dialogs_of = |c: &str| found.iter().filter(|(d, _)| d.customer.id == c).count();
                assert_eq!(dialogs_of("existing"), 1, "{key}");
                assert_eq!(dialogs_of("new"), usize::from(seen_new || customer == "new"), "{key}");
                seen_new |= customer == "new";
            }
        }
    }
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
