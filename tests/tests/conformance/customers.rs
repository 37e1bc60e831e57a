//! Customer profiles on every adapter set: one profile per person and channel identity, made in ingest's
//! transaction; a customer's dialogs read from their own partition (O(their dialogs), not O(tenant));
//! a merge that later messages follow; an erase that a crash at any store call leaves for the next run to
//! finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use omnichat::domain::{CustomerId, DialogId};
use omnichat::ports::{Item, Key, Page, Query, SkRange, Store, StoreError, Write};
use omnichat::repo;
use omnichat::usecases::auth::Principal;
use omnichat::usecases::customers;
use omnichat::usecases::dialogs;
use omnichat::usecases::ingest::{self, IngestOutcome};

use super::AdapterSet;
use super::ingest::{FailingStore, channel, context, inbound};

/// Counts the items the store hands back (gets, batch gets and queries).
struct CountingStore {
    inner: Arc<dyn Store>,
    items: AtomicUsize,
}

impl CountingStore {
    fn take(&self) -> usize {
        self.items.swap(0, Ordering::SeqCst)
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let item = self.inner.get(key).await?;
        self.items.fetch_add(usize::from(item.is_some()), Ordering::SeqCst);
        Ok(item)
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let items = self.inner.get_many(keys).await?;
        self.items.fetch_add(items.iter().flatten().count(), Ordering::SeqCst);
        Ok(items)
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.inner.transact(writes).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let page = self.inner.query(query).await?;
        self.items.fetch_add(page.items.len(), Ordering::SeqCst);
        Ok(page)
    }
    async fn increment(&self, key: &Key, attribute: &str, by: i64) -> Result<i64, StoreError> {
        self.inner.increment(key, attribute, by).await
    }
}

/// Ingests one message of `customer` and answers its dialog.
async fn writes(
    ctx: &omnichat::usecases::Context,
    channel: &omnichat::domain::Channel,
    dedup: &str,
    customer: &str,
) -> DialogId {
    match ingest::ingest(ctx, channel, &inbound(dedup, customer, dedup)).await.expect("ingest") {
        IngestOutcome::Stored { dialog_id, .. } => dialog_id,
        other => panic!("stored expected, got {other:?}"),
    }
}

async fn customer_of(ctx: &omnichat::usecases::Context, dialog: &DialogId) -> CustomerId {
    let dialog = dialogs::load(ctx, dialog).await.expect("load").expect("dialog");
    dialog.customer_id.expect("a dialog of a customer")
}

async fn close(ctx: &omnichat::usecases::Context, dialog: &DialogId) {
    let dialog = dialogs::load(ctx, dialog).await.expect("load").expect("dialog");
    dialogs::close(ctx, dialog).await.expect("close");
}

pub async fn a_customers_dialogs_are_read_from_their_own_partition(set: AdapterSet) {
    let counting = Arc::new(CountingStore { inner: set.1.clone(), items: AtomicUsize::new(0) });
    let ctx = context(counting.clone(), &set);
    let channel = channel(set.1.as_ref()).await;
    let admin = Principal::admin_of(channel.tenant_id.clone());
    // Forty other customers of the tenant, one dialog each.
    for i in 0..40 {
        writes(&ctx, &channel, &format!("other-{i}"), &format!("other-{i}")).await;
    }
    // Ann writes three times, a dialog closing between each: one profile, three dialogs.
    let mut ann_dialogs = Vec::new();
    for i in 0..3 {
        let dialog = writes(&ctx, &channel, &format!("ann-{i}"), "ann").await;
        ann_dialogs.push(dialog.clone());
        close(&ctx, &dialog).await;
    }
    let ann = customer_of(&ctx, &ann_dialogs[0]).await;
    for dialog in &ann_dialogs[1..] {
        assert_eq!(customer_of(&ctx, dialog).await, ann, "one profile per identity");
    }

    counting.take();
    let view = customers::get(&ctx, &admin, ann.as_str()).await.expect("customer");
    let read = counting.take();
    ann_dialogs.reverse();
    assert_eq!(view.dialogs, ann_dialogs, "newest first");
    assert_eq!(view.profile.identities.len(), 1);
    // The profile and Ann's three entries: nothing of the forty others.
    assert_eq!(read, 1 + 3, "items read for a customer of three dialogs in a tenant of 43");
}

pub async fn a_merge_moves_identities_and_later_dialogs_follow_it(set: AdapterSet) {
    let ctx = context(set.1.clone(), &set);
    let channel = channel(set.1.as_ref()).await;
    let admin = Principal::admin_of(channel.tenant_id.clone());
    let phone = writes(&ctx, &channel, "p-1", "phone").await;
    let laptop = writes(&ctx, &channel, "l-1", "laptop").await;
    let (one, other) = (customer_of(&ctx, &phone).await, customer_of(&ctx, &laptop).await);
    assert_ne!(one, other);

    let merged = customers::merge(&ctx, &admin, one.as_str(), other.as_str()).await.expect("merge");
    assert_eq!(merged.profile.identities.len(), 2);
    assert_eq!(merged.dialogs.len(), 2);
    assert_eq!(customer_of(&ctx, &laptop).await, one, "the merged-away customer's dialog is relabelled");
    let again = customers::merge(&ctx, &admin, one.as_str(), other.as_str()).await.expect("again");
    assert_eq!(again, merged, "a repeated merge changes nothing");
    assert!(customers::merge(&ctx, &admin, one.as_str(), one.as_str()).await.is_err());

    // The merged-away identity's next dialog belongs to the merged customer; the identity record says so.
    close(&ctx, &laptop).await;
    let next = writes(&ctx, &channel, "l-2", "laptop").await;
    assert_eq!(customer_of(&ctx, &next).await, one);
    let identity =
        set.1.get(&repo::identity_key(&channel.id, "laptop")).await.expect("get").expect("identity");
    assert_eq!(identity["customer_id"], one.as_str());
    assert_eq!(customers::get(&ctx, &admin, other.as_str()).await.expect("read").profile.id, one);
}

/// Every item left in the customer's partition, their dialogs' partitions and their identity.
async fn remains(
    store: &dyn Store,
    tenant: &omnichat::domain::TenantId,
    customer: &CustomerId,
    dialogs: &[DialogId],
    channel: &omnichat::domain::ChannelId,
) -> Vec<Item> {
    let mut left = Vec::new();
    let partition = Query::table(repo::customer_partition(tenant, customer)).range(SkRange::All).limit(1000);
    left.extend(
        store
            .query(&partition)
            .await
            .expect("query")
            .items
            .into_iter()
            .filter(|item| item.get("sk") != Some(&serde_json::json!("PROFILE"))),
    );
    for dialog in dialogs {
        left.extend(
            store.query(&Query::table(repo::messages_of(dialog)).limit(1000)).await.expect("query").items,
        );
        left.extend(store.get(&repo::dialog_key(dialog)).await.expect("get"));
    }
    left.extend(store.get(&repo::identity_key(channel, "erin")).await.expect("get"));
    left
}

/// Erase under a failure at each store call in turn: the failed run stops, the next finishes, and then
/// nothing of the customer is left but the bare mark (no name, no identity).
pub async fn an_erase_stopped_at_any_store_call_is_finished_by_the_next(set: AdapterSet) {
    const MAX_RUNS: usize = 60;
    let mut fault = 1;
    loop {
        let ctx = context(set.1.clone(), &set);
        let channel = channel(set.1.as_ref()).await;
        let admin = Principal::admin_of(channel.tenant_id.clone());
        let first = writes(&ctx, &channel, "e-1", "erin").await;
        close(&ctx, &first).await;
        let second = writes(&ctx, &channel, "e-2", "erin").await;
        let customer = customer_of(&ctx, &first).await;

        let failing = Arc::new(FailingStore::new(set.1.clone(), vec![fault], false));
        let crashing = context(failing.clone(), &set);
        let outcome = customers::erase(&crashing, &admin, customer.as_str()).await;
        let fired = !failing.fired().is_empty();
        customers::erase(&ctx, &admin, customer.as_str()).await.expect("the repeated erase finishes");
        let left = remains(
            set.1.as_ref(),
            &channel.tenant_id,
            &customer,
            &[first.clone(), second.clone()],
            &channel.id,
        )
        .await;
        assert_eq!(left, Vec::<Item>::new(), "left after a fault at call {fault}");
        assert!(
            customers::get(&ctx, &admin, customer.as_str()).await.is_err(),
            "an erased customer is not found"
        );
        // The same person writing again is a new customer.
        let fresh = writes(&ctx, &channel, "e-3", "erin").await;
        assert_ne!(customer_of(&ctx, &fresh).await, customer);
        if !fired {
            assert!(outcome.is_ok(), "no fault fired, yet the erase failed: {outcome:?}");
            assert!(fault > 10, "an erase of two dialogs makes more than 10 store calls, not {}", fault - 1);
            eprintln!(
                "erase: a fault at each of its {} store calls, each finished by the next run",
                fault - 1
            );
            break;
        }
        assert!(outcome.is_err(), "the fault at call {fault} ({:?}) went unnoticed", failing.calls());
        fault += 1;
        assert!(fault < MAX_RUNS, "an erase of two dialogs makes fewer than {MAX_RUNS} store calls");
    }
}
