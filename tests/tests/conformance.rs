//! The conformance suite: every adapter of a port passes the same cases, so the local run and AWS agree.
//!
//! Each case is one async function taking the port (`Arc<dyn Store>`, `Arc<dyn SecretStore>`,
//! `Arc<dyn EventBus>`, a `WorkQueue` with its consumer's side); `conformance!` runs it once per adapter:
//! `<port>_embedded::<case>` always, and `<port>_aws::<case>` against moto when `AWS_ENDPOINT_URL` is set
//! (`infra/moto/with-moto.sh cargo test -p omnichat-tests --test integration conformance`). With
//! `OMNICHAT_MOTO=1` and no reachable endpoint the AWS cases fail; with neither they pass without running and
//! the run prints "skipped: moto not running".
//!
//! Every AWS case gets its own table, secret prefix, event bus and queue (a fresh UUID), so cases run in
//! parallel.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write as _;
use std::sync::{Arc, Once};
use std::time::Duration;

use async_trait::async_trait;
use omnichat::adapters::aws::{self, DynamoStore, EventBridgeBus, SdkConfig, SecretsManagerStore};
use omnichat::adapters::embedded::{FileSecretStore, InProcessBus, RedbStore};
use omnichat::domain::{ChannelId, DialogId, MessageId, TenantId};
use omnichat::ports::{
    Condition, DomainEvent, EventBus, EventError, Index, Item, Key, Page, Query, SecretError, SecretStore,
    SkRange, Store, StoreError, Write,
};
use omnichat::secret::Secret;
use serde_json::{Value, json};
use tempfile::TempDir;

// =========================================================================================================
// Adapters under test

/// An embedded adapter together with the temporary folder its files live in: the folder goes when the
/// adapter does.
struct InTempDir<T> {
    adapter: T,
    _dir: TempDir,
}

#[async_trait]
impl<T: Store> Store for InTempDir<T> {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.adapter.get(key).await
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.adapter.get_many(keys).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.adapter.transact(writes).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.adapter.query(query).await
    }
    async fn increment(&self, key: &Key, attribute: &str, by: i64) -> Result<i64, StoreError> {
        self.adapter.increment(key, attribute, by).await
    }
}

#[async_trait]
impl<T: SecretStore> SecretStore for InTempDir<T> {
    async fn put(&self, name: &str, value: &Secret) -> Result<(), SecretError> {
        self.adapter.put(name, value).await
    }
    async fn get(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        self.adapter.get(name).await
    }
    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.adapter.delete(name).await
    }
}

fn embedded_store() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().expect("temp dir");
    let adapter = RedbStore::open(&dir.path().join("store.redb")).expect("open redb");
    Arc::new(InTempDir { adapter, _dir: dir })
}

fn embedded_secrets() -> Arc<dyn SecretStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let adapter = FileSecretStore::open(&dir.path().join("secrets.json")).expect("open secrets file");
    Arc::new(InTempDir { adapter, _dir: dir })
}

fn embedded_bus() -> Arc<InProcessBus> {
    Arc::new(InProcessBus::new(64))
}

/// A name no other case uses: AWS resources are never shared between cases.
pub(crate) fn unique_name(kind: &str) -> String {
    format!("omnichat-test-{kind}-{}", uuid::Uuid::now_v7().simple())
}

/// The SDK configuration for moto, or `None` when moto is not configured (the AWS cases then pass without
/// running). Panics when `OMNICHAT_MOTO=1` promises moto and it is not there: a missing emulator must fail
/// the run, never skip it silently.
pub(crate) async fn moto() -> Option<SdkConfig> {
    let required = std::env::var("OMNICHAT_MOTO").is_ok_and(|value| value == "1");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok().filter(|value| !value.trim().is_empty());
    let Some(endpoint) = endpoint else {
        assert!(
            !required,
            "OMNICHAT_MOTO=1 but AWS_ENDPOINT_URL is not set: run the tests through infra/moto/with-moto.sh"
        );
        note_skipped();
        return None;
    };
    let probe = reqwest::Client::new()
        .get(format!("{}/moto-api/", endpoint.trim_end_matches('/')))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(probe.is_ok(), "AWS_ENDPOINT_URL={endpoint} does not answer: is moto running? ({probe:?})");
    Some(aws::load_sdk_config().await)
}

/// Says once per run, past the test harness's output capture, that the AWS half did not run.
fn note_skipped() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: moto not running (AWS_ENDPOINT_URL unset): the *_aws conformance cases did not run; \
             run `infra/moto/with-moto.sh cargo test -p omnichat-tests --test integration conformance`"
        );
    });
}

async fn aws_store(config: &SdkConfig) -> Arc<dyn Store> {
    let store = DynamoStore::from_config(config, unique_name("table"));
    aws::create_table(store.client(), store.table()).await.expect("create the table on moto");
    Arc::new(store)
}

fn aws_secrets(config: &SdkConfig) -> Arc<dyn SecretStore> {
    Arc::new(SecretsManagerStore::from_config(config, format!("{}/", unique_name("secrets"))))
}

async fn aws_bus(config: &SdkConfig) -> Arc<dyn EventBus> {
    let bus = EventBridgeBus::from_config(config, unique_name("bus"));
    aws::create_event_bus(bus.client(), bus.bus_name()).await.expect("create the bus on moto");
    Arc::new(bus)
}

/// A name and the three ports of one way to run.
type AdapterSet = (&'static str, Arc<dyn Store>, Arc<dyn SecretStore>, Arc<dyn EventBus>);

/// Every adapter set the use cases can run on: the embedded one always, the AWS one (fresh table, secret
/// prefix and bus on moto) when moto is configured. For cases above the ports that must hold on both.
async fn adapter_sets() -> Vec<AdapterSet> {
    let mut sets: Vec<AdapterSet> = vec![("embedded", embedded_store(), embedded_secrets(), embedded_bus())];
    if let Some(config) = moto().await {
        sets.push(("aws", aws_store(&config).await, aws_secrets(&config), aws_bus(&config).await));
    }
    sets
}

/// Generates one `#[tokio::test]` per case and adapter: `$embedded_mod::case` and `$aws_mod::case`.
macro_rules! conformance {
    (
        $cases:ident,
        $embedded_mod:ident => $embedded:expr,
        $aws_mod:ident => |$config:ident| $aws:expr,
        [$($case:ident),+ $(,)?]
    ) => {
        mod $embedded_mod {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    $cases::$case($embedded).await;
                }
            )+
        }
        mod $aws_mod {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some($config) = moto().await else { return };
                    $cases::$case($aws).await;
                }
            )+
        }
    };
}

conformance!(
    store_cases,
    store_embedded => embedded_store(),
    store_aws => |config| aws_store(&config).await,
    [
        get_missing_is_none,
        put_then_get,
        put_replaces_the_whole_item,
        put_not_exists_twice_conflicts,
        update_upserts_sets_and_removes,
        equals_condition_holds_or_fails,
        equals_compares_numbers_by_value,
        all_conditions_must_hold,
        transaction_is_all_or_nothing,
        transaction_applies_every_kind_of_write,
        same_key_twice_is_invalid,
        delete_with_condition,
        lone_check_writes_nothing,
        query_ranges,
        query_paginates_in_order,
        bad_page_token_is_invalid,
        index_query_is_sparse_and_follows_key_changes,
        increment_from_missing_is_by,
        concurrent_increments_are_distinct,
        concurrent_not_exists_puts_admit_one,
        concurrent_transactions_fail_alone,
        get_many_answers_in_the_order_asked,
        get_many_refuses_repeats_and_oversize,
    ]
);

conformance!(
    secret_cases,
    secrets_embedded => embedded_secrets(),
    secrets_aws => |config| aws_secrets(&config),
    [missing_secret_is_none, put_get_replace, delete_then_get_is_none, put_after_delete_works_again]
);

conformance!(
    media,
    media_embedded => media::embedded_media().await,
    media_aws => |config| media::aws_media(&config).await,
    [
        objects_read_back_byte_for_byte,
        a_large_object_keeps_every_byte,
        a_download_link_serves_the_bytes_with_type_and_name,
        an_upload_link_takes_the_bytes,
        keys_of_another_shape_are_refused,
    ]
);

conformance!(
    event_cases,
    events_embedded => embedded_bus(),
    events_aws => |config| aws_bus(&config).await,
    [publish_in_chunks, publish_nothing]
);

// =========================================================================================================
// Helpers of the cases

fn item(value: Value) -> Item {
    value.as_object().expect("an item is a JSON object").clone()
}

fn put(value: Value, condition: Condition) -> Write {
    Write::Put { item: item(value), condition }
}

fn update(key: &Key, set: Value, remove: &[&str], condition: Condition) -> Write {
    Write::Update {
        key: key.clone(),
        set: item(set),
        remove: remove.iter().map(|name| (*name).to_owned()).collect(),
        condition,
    }
}

fn conflict(failed: &[usize]) -> Result<(), StoreError> {
    Err(StoreError::Conflict { failed: failed.to_vec() })
}

fn attribute_of(items: &[Item], attribute: &str) -> Vec<String> {
    items.iter().map(|item| item[attribute].as_str().expect("a string attribute").to_owned()).collect()
}

fn sort_keys(page: &Page) -> Vec<String> {
    attribute_of(&page.items, "sk")
}

/// Every item a query reads, page after page, checking the paging contract on the way.
async fn read_items(store: &dyn Store, query: Query) -> Vec<Item> {
    let mut items = Vec::new();
    let mut after = None;
    for _ in 0..100 {
        let page = store.query(&query.clone().after(after)).await.expect("query");
        assert!(page.items.len() <= query.limit, "a page holds at most `limit` items");
        items.extend(page.items);
        match page.next {
            Some(token) => after = Some(token),
            None => return items,
        }
    }
    panic!("paging did not end");
}

/// The sort keys a query reads, page after page.
async fn read_all(store: &dyn Store, query: Query) -> Vec<String> {
    attribute_of(&read_items(store, query).await, "sk")
}

/// Index reads may lag writes (DynamoDB's global indexes are eventually consistent): waits a little for an
/// index partition to hold the items of these table partition keys, in this order.
async fn wait_for_index(store: &dyn Store, index: Index, pk: &str, expected: &[&str]) {
    let query = Query::index(index, pk);
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = attribute_of(&read_items(store, query.clone()).await, "pk");
        if seen == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, expected, "index {} partition {pk}", index.name());
}

/// An answer as data, so answers of different adapters compare as values (not by attribute order).
fn outcome<T: serde::Serialize, E: std::fmt::Debug>(answer: Result<T, E>) -> Value {
    match answer {
        Ok(value) => json!({ "ok": value }),
        Err(error) => json!({ "err": format!("{error:?}") }),
    }
}

/// Runs `count` copies of a task at once and collects their answers.
async fn all_at_once<T, F, Fut>(count: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(count));
    let handles: Vec<_> = (0..count)
        .map(|index| {
            let barrier = Arc::clone(&barrier);
            let work = task(index);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(count);
    for handle in handles {
        answers.push(handle.await.expect("task"));
    }
    answers
}

fn event(tenant: &TenantId, index: usize) -> DomainEvent {
    let (channel_id, dialog_id) = (ChannelId::generate(), DialogId::generate());
    match index % 3 {
        0 => DomainEvent::DialogOpened { tenant_id: tenant.clone(), channel_id, dialog_id },
        1 => DomainEvent::MessageReceived {
            tenant_id: tenant.clone(),
            channel_id,
            dialog_id,
            message_id: MessageId::generate(),
            chatbot: false,
        },
        _ => {
            DomainEvent::DialogClosed { tenant_id: tenant.clone(), channel_id, dialog_id, assignee_id: None }
        }
    }
}

// =========================================================================================================
// Store cases

mod store_cases {
    use super::*;

    pub async fn get_missing_is_none(store: Arc<dyn Store>) {
        assert_eq!(store.get(&Key::new("T#missing", "X")).await, Ok(None));
    }

    pub async fn put_then_get(store: Arc<dyn Store>) {
        let original = json!({
            "pk": "T#1", "sk": "CH#1",
            "name": "Support line", "empty": "", "unicode": "Grüße, 你好 👋",
            "count": 42, "negative": -7, "big": u64::MAX, "min": i64::MIN, "ratio": 0.25,
            "on": true, "off": false, "none": null,
            "tags": ["a", 1, [2, 3], {"four": 4}], "nested": {"deep": {"list": [true, null]}}, "nothing": [],
            "expires_at": 1_900_000_000,
        });
        store.transact(vec![put(original.clone(), Condition::Always)]).await.expect("put");
        assert_eq!(store.get(&Key::new("T#1", "CH#1")).await, Ok(Some(item(original))));
        assert_eq!(store.get(&Key::new("T#1", "CH#2")).await, Ok(None), "another sort key is another item");
        assert_eq!(store.get(&Key::new("T#2", "CH#1")).await, Ok(None), "another partition is another item");
    }

    pub async fn put_replaces_the_whole_item(store: Arc<dyn Store>) {
        let key = Key::new("T#1", "S#1");
        store
            .transact(vec![put(json!({"pk": "T#1", "sk": "S#1", "a": 1, "b": 2}), Condition::Always)])
            .await
            .unwrap();
        store
            .transact(vec![put(json!({"pk": "T#1", "sk": "S#1", "c": 3}), Condition::Always)])
            .await
            .unwrap();
        assert_eq!(store.get(&key).await.unwrap(), Some(item(json!({"pk": "T#1", "sk": "S#1", "c": 3}))));
    }

    pub async fn put_not_exists_twice_conflicts(store: Arc<dyn Store>) {
        let first = json!({"pk": "MSG#tg#1", "sk": "M", "text": "first"});
        let second = json!({"pk": "MSG#tg#1", "sk": "M", "text": "second"});
        assert_eq!(store.transact(vec![put(first.clone(), Condition::NotExists)]).await, Ok(()));
        assert_eq!(store.transact(vec![put(second, Condition::NotExists)]).await, conflict(&[0]));
        assert_eq!(store.get(&Key::new("MSG#tg#1", "M")).await.unwrap(), Some(item(first)), "unchanged");
    }

    pub async fn update_upserts_sets_and_removes(store: Arc<dyn Store>) {
        let key = Key::new("D#1", "D");
        store
            .transact(vec![update(
                &key,
                json!({"status": "open", "unread": 1, "due": "2030"}),
                &[],
                Condition::Always,
            )])
            .await
            .expect("upsert");
        assert_eq!(
            store.get(&key).await.unwrap(),
            Some(item(json!({"pk": "D#1", "sk": "D", "status": "open", "unread": 1, "due": "2030"})))
        );

        store
            .transact(vec![update(
                &key,
                json!({"unread": 2, "agent": "E#1"}),
                &["due", "never-set"],
                Condition::Exists,
            )])
            .await
            .expect("update");
        assert_eq!(
            store.get(&key).await.unwrap(),
            Some(item(json!({"pk": "D#1", "sk": "D", "status": "open", "unread": 2, "agent": "E#1"}))),
            "set attributes change, removed ones go, the others stay"
        );

        let missing = Key::new("D#2", "D");
        assert_eq!(
            store.transact(vec![update(&missing, json!({"x": 1}), &[], Condition::Exists)]).await,
            conflict(&[0]),
            "Exists stops the upsert"
        );
        assert_eq!(store.get(&missing).await, Ok(None));

        store
            .transact(vec![update(&missing, json!({}), &["x"], Condition::Always)])
            .await
            .expect("bare upsert");
        assert_eq!(
            store.get(&missing).await.unwrap(),
            Some(item(json!({"pk": "D#2", "sk": "D"}))),
            "an update with nothing to set still creates the item"
        );
    }

    pub async fn equals_condition_holds_or_fails(store: Arc<dyn Store>) {
        let key = Key::new("D#1", "D");
        let equals = |value: Value| Condition::Equals("status".into(), value);
        store
            .transact(vec![put(
                json!({"pk": "D#1", "sk": "D", "status": "open", "version": 3}),
                Condition::Always,
            )])
            .await
            .unwrap();

        assert_eq!(
            store
                .transact(vec![update(&key, json!({"status": "closed"}), &[], equals(json!("pending")))])
                .await,
            conflict(&[0])
        );
        assert_eq!(store.get(&key).await.unwrap().unwrap()["status"], "open");
        store
            .transact(vec![update(&key, json!({"status": "closed"}), &[], equals(json!("open")))])
            .await
            .expect("condition holds");
        assert_eq!(store.get(&key).await.unwrap().unwrap()["status"], "closed");

        let by_version = Condition::Equals("version".into(), json!(3));
        store
            .transact(vec![put(json!({"pk": "D#1", "sk": "D", "version": 4}), by_version.clone())])
            .await
            .expect("numbers compare equal");
        assert_eq!(
            store.transact(vec![put(json!({"pk": "D#1", "sk": "D", "version": 5}), by_version)]).await,
            conflict(&[0])
        );
        assert_eq!(
            store.transact(vec![update(&key, json!({"x": 1}), &[], equals(json!("closed")))]).await,
            conflict(&[0]),
            "a missing attribute equals nothing"
        );
        let missing = Key::new("D#9", "D");
        assert_eq!(
            store.transact(vec![update(&missing, json!({"status": "x"}), &[], equals(json!("x")))]).await,
            conflict(&[0]),
            "a missing item equals nothing"
        );
        assert_eq!(store.get(&missing).await, Ok(None));
    }

    pub async fn transaction_is_all_or_nothing(store: Arc<dyn Store>) {
        store
            .transact(vec![
                put(json!({"pk": "P#b", "sk": "S", "v": "b"}), Condition::Always),
                put(json!({"pk": "P#c", "sk": "S", "status": "open"}), Condition::Always),
            ])
            .await
            .unwrap();
        let failing = vec![
            put(json!({"pk": "P#a", "sk": "S", "v": "a"}), Condition::NotExists),
            put(json!({"pk": "P#b", "sk": "S", "v": "b2"}), Condition::NotExists),
            update(
                &Key::new("P#c", "S"),
                json!({"status": "closed"}),
                &[],
                Condition::Equals("status".into(), json!("x")),
            ),
        ];
        assert_eq!(store.transact(failing).await, conflict(&[1, 2]), "every failed condition is listed");
        assert_eq!(store.get(&Key::new("P#a", "S")).await, Ok(None), "write #0 was not applied");
        assert_eq!(store.get(&Key::new("P#b", "S")).await.unwrap().unwrap()["v"], "b");
        assert_eq!(store.get(&Key::new("P#c", "S")).await.unwrap().unwrap()["status"], "open");

        let one_bad_check = vec![
            put(json!({"pk": "P#a", "sk": "S", "v": "a"}), Condition::Always),
            Write::Check { key: Key::new("P#missing", "S"), condition: Condition::Exists },
        ];
        assert_eq!(store.transact(one_bad_check).await, conflict(&[1]), "a check alone can stop it");
        assert_eq!(store.get(&Key::new("P#a", "S")).await, Ok(None));
    }

    pub async fn transaction_applies_every_kind_of_write(store: Arc<dyn Store>) {
        store
            .transact(vec![
                put(json!({"pk": "P#u", "sk": "S", "n": 1}), Condition::Always),
                put(json!({"pk": "P#d", "sk": "S"}), Condition::Always),
                put(json!({"pk": "P#c", "sk": "S", "state": "ready"}), Condition::Always),
            ])
            .await
            .unwrap();
        store
            .transact(vec![
                put(json!({"pk": "P#p", "sk": "S", "new": true}), Condition::NotExists),
                update(&Key::new("P#u", "S"), json!({"n": 2}), &[], Condition::Exists),
                Write::Delete { key: Key::new("P#d", "S"), condition: Condition::Exists },
                Write::Check {
                    key: Key::new("P#c", "S"),
                    condition: Condition::Equals("state".into(), json!("ready")),
                },
                Write::Check { key: Key::new("P#none", "S"), condition: Condition::Always },
            ])
            .await
            .expect("all conditions hold");
        assert_eq!(store.get(&Key::new("P#p", "S")).await.unwrap().unwrap()["new"], true);
        assert_eq!(store.get(&Key::new("P#u", "S")).await.unwrap().unwrap()["n"], 2);
        assert_eq!(store.get(&Key::new("P#d", "S")).await, Ok(None));
        assert_eq!(
            store.get(&Key::new("P#c", "S")).await.unwrap(),
            Some(item(json!({"pk": "P#c", "sk": "S", "state": "ready"}))),
            "a check writes nothing"
        );
        assert_eq!(store.get(&Key::new("P#none", "S")).await, Ok(None), "a check creates nothing");
    }

    pub async fn same_key_twice_is_invalid(store: Arc<dyn Store>) {
        let twice = vec![
            put(json!({"pk": "P#1", "sk": "S", "v": 1}), Condition::Always),
            update(&Key::new("P#1", "S"), json!({"v": 2}), &[], Condition::Always),
        ];
        assert!(matches!(store.transact(twice).await, Err(StoreError::Invalid(_))));
        assert_eq!(store.get(&Key::new("P#1", "S")).await, Ok(None), "nothing written");
        assert!(
            matches!(store.transact(Vec::new()).await, Err(StoreError::Invalid(_))),
            "an empty transaction"
        );
    }

    /// `All` holds when every part does: a write conditioned on two attributes fails when either moved.
    pub async fn all_conditions_must_hold(store: Arc<dyn Store>) {
        let key = Key::new("D#1", "D");
        store
            .transact(vec![put(
                json!({"pk": "D#1", "sk": "D", "status": "open", "seen": "t1"}),
                Condition::Always,
            )])
            .await
            .unwrap();
        let both = |status: &str, seen: &str| {
            Condition::All(vec![
                Condition::Equals("status".into(), json!(status)),
                Condition::Equals("seen".into(), json!(seen)),
            ])
        };
        for (status, seen) in [("open", "t2"), ("closed", "t1"), ("closed", "t2")] {
            assert_eq!(
                store.transact(vec![update(&key, json!({"x": 1}), &[], both(status, seen))]).await,
                conflict(&[0]),
                "{status} / {seen}"
            );
        }
        assert_eq!(store.get(&key).await.unwrap().unwrap().get("x"), None);
        store
            .transact(vec![Write::Check { key: key.clone(), condition: Condition::All(Vec::new()) }])
            .await
            .expect("no parts: holds like Always, also in a lone check");
        store
            .transact(vec![update(&key, json!({"x": 1}), &[], both("open", "t1"))])
            .await
            .expect("both hold");
        assert_eq!(store.get(&key).await.unwrap().unwrap()["x"], 1);
        let missing = Key::new("D#2", "D");
        assert_eq!(
            store
                .transact(vec![update(
                    &missing,
                    json!({"x": 1}),
                    &[],
                    Condition::All(vec![Condition::Exists])
                )])
                .await,
            conflict(&[0])
        );
    }

    /// DynamoDB compares numbers as numbers (`1`, `1.0` and `1e0` are one value), also inside maps and
    /// lists; the embedded store must agree.
    pub async fn equals_compares_numbers_by_value(store: Arc<dyn Store>) {
        let key = Key::new("N#1", "N");
        store
            .transact(vec![put(
                json!({"pk": "N#1", "sk": "N", "n": 1, "big": 120, "nested": {"a": [1, 2.5]}}),
                Condition::Always,
            )])
            .await
            .unwrap();
        let holds = [
            ("n", json!(1.0)),
            ("n", serde_json::from_str::<Value>("1e0").unwrap()),
            ("n", serde_json::from_str::<Value>("1.000").unwrap()),
            ("big", serde_json::from_str::<Value>("1.2e2").unwrap()),
            ("nested", json!({"a": [1.0, 2.50]})),
        ];
        for (attribute, value) in holds {
            let condition = Condition::Equals(attribute.into(), value.clone());
            let write = update(&key, json!({"seen": attribute}), &[], condition);
            store.transact(vec![write]).await.unwrap_or_else(|e| panic!("{attribute} = {value}: {e:?}"));
        }
        for (attribute, value) in
            [("n", json!(1.5)), ("n", json!("1")), ("big", json!(12)), ("nested", json!({"a": [1, 2]}))]
        {
            let condition = Condition::Equals(attribute.into(), value.clone());
            let write = update(&key, json!({"seen": "never"}), &[], condition);
            assert_eq!(store.transact(vec![write]).await, conflict(&[0]), "{attribute} = {value}");
        }
        assert_eq!(store.get(&key).await.unwrap().unwrap()["seen"], "nested");
    }

    pub async fn delete_with_condition(store: Arc<dyn Store>) {
        let key = Key::new("PTR#1", "OPEN");
        store
            .transact(vec![put(json!({"pk": "PTR#1", "sk": "OPEN", "dialog": "D#1"}), Condition::Always)])
            .await
            .unwrap();
        let delete = |condition| vec![Write::Delete { key: key.clone(), condition }];

        assert_eq!(
            store.transact(delete(Condition::Equals("dialog".into(), json!("D#2")))).await,
            conflict(&[0])
        );
        assert!(store.get(&key).await.unwrap().is_some(), "a failed condition deletes nothing");
        store
            .transact(delete(Condition::Equals("dialog".into(), json!("D#1"))))
            .await
            .expect("condition holds");
        assert_eq!(store.get(&key).await, Ok(None));
        assert_eq!(
            store.transact(delete(Condition::Exists)).await,
            conflict(&[0]),
            "Exists on a missing item"
        );
        assert_eq!(
            store.transact(delete(Condition::Always)).await,
            Ok(()),
            "deleting a missing item is fine"
        );
    }

    pub async fn lone_check_writes_nothing(store: Arc<dyn Store>) {
        let key = Key::new("C#1", "S");
        store.transact(vec![put(json!({"pk": "C#1", "sk": "S", "v": 1}), Condition::Always)]).await.unwrap();
        let check = |key: &Key, condition| vec![Write::Check { key: key.clone(), condition }];
        assert_eq!(store.transact(check(&key, Condition::Exists)).await, Ok(()));
        assert_eq!(store.transact(check(&key, Condition::NotExists)).await, conflict(&[0]));
        assert_eq!(store.transact(check(&Key::new("C#2", "S"), Condition::Exists)).await, conflict(&[0]));
        assert_eq!(store.transact(check(&Key::new("C#2", "S"), Condition::NotExists)).await, Ok(()));
        assert_eq!(store.get(&Key::new("C#2", "S")).await, Ok(None));
    }

    pub async fn query_ranges(store: Arc<dyn Store>) {
        let sks = ["A#01", "A#02", "A#03", "A#04", "A#05", "B#01", "B#02", "AA"];
        let mut writes: Vec<Write> =
            sks.iter().map(|sk| put(json!({"pk": "Q#1", "sk": sk, "n": 1}), Condition::Always)).collect();
        writes.push(put(json!({"pk": "Q#2", "sk": "A#03"}), Condition::Always));
        writes.push(put(json!({"pk": "Q#10", "sk": "A#01"}), Condition::Always));
        store.transact(writes).await.unwrap();

        let read = |range: SkRange| read_all(store.as_ref(), Query::table("Q#1").range(range));
        assert_eq!(read(SkRange::All).await, ["A#01", "A#02", "A#03", "A#04", "A#05", "AA", "B#01", "B#02"]);
        assert_eq!(read(SkRange::BeginsWith("A#".into())).await, ["A#01", "A#02", "A#03", "A#04", "A#05"]);
        assert_eq!(read(SkRange::BeginsWith("C".into())).await, Vec::<String>::new());
        assert_eq!(read(SkRange::Between("A#02".into(), "A#04".into())).await, ["A#02", "A#03", "A#04"]);
        assert_eq!(read(SkRange::Between("A#04".into(), "A#02".into())).await, Vec::<String>::new());
        assert_eq!(read(SkRange::AtMost("A#03".into())).await, ["A#01", "A#02", "A#03"]);
        assert_eq!(read(SkRange::AtMost("A#".into())).await, Vec::<String>::new());

        let descending = Query::table("Q#1").range(SkRange::BeginsWith("A#".into())).descending();
        assert_eq!(read_all(store.as_ref(), descending).await, ["A#05", "A#04", "A#03", "A#02", "A#01"]);
        let latest = Query::table("Q#1").range(SkRange::AtMost("B#01".into())).descending().limit(2);
        let page = store.query(&latest).await.unwrap();
        assert_eq!(sort_keys(&page), ["B#01", "AA"], "the latest up to a point");

        let page = store.query(&Query::table("Q#1").range(SkRange::BeginsWith("B#".into()))).await.unwrap();
        assert_eq!(page.items[0], item(json!({"pk": "Q#1", "sk": "B#01", "n": 1})), "whole items come back");
        assert_eq!(page.next, None);
    }

    pub async fn query_paginates_in_order(store: Arc<dyn Store>) {
        let expected: Vec<String> = (0..25).map(|n| format!("M#{n:03}")).collect();
        let writes = expected
            .iter()
            .map(|sk| put(json!({"pk": "P#1", "sk": sk}), Condition::Always))
            .collect::<Vec<_>>();
        store.transact(writes).await.unwrap();

        let query = Query::table("P#1").limit(7);
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let page = store.query(&query.clone().after(after)).await.expect("page");
            pages.push(page.items.len());
            after = page.next.clone();
            if after.is_none() {
                break;
            }
            assert!(pages.len() < 10, "paging must end");
        }
        assert_eq!(pages.iter().sum::<usize>(), 25);
        assert!(pages.iter().all(|size| *size <= 7));
        assert_eq!(read_all(store.as_ref(), query.clone()).await, expected, "each item once, in order");

        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(read_all(store.as_ref(), query.clone().descending()).await, reversed);
        let range = query.range(SkRange::Between("M#005".into(), "M#019".into()));
        assert_eq!(read_all(store.as_ref(), range).await, expected[5..=19]);
    }

    pub async fn bad_page_token_is_invalid(store: Arc<dyn Store>) {
        store.transact(vec![put(json!({"pk": "P#1", "sk": "A"}), Condition::Always)]).await.unwrap();
        for token in ["not a token", "", "eyJ4IjoxfQ"] {
            let answer = store.query(&Query::table("P#1").after(Some(token.into()))).await;
            assert!(matches!(answer, Err(StoreError::Invalid(_))), "token {token:?}: {answer:?}");
        }
    }

    pub async fn index_query_is_sparse_and_follows_key_changes(store: Arc<dyn Store>) {
        let due = |pk: &str, sk: &str, at: &str| json!({"pk": pk, "sk": sk, "gsi1pk": "DUE#1", "gsi1sk": at});
        store
            .transact(vec![
                put(due("D#1", "D", "2030-01-02"), Condition::Always),
                put(due("D#2", "D", "2030-01-01"), Condition::Always),
                put(due("D#3", "D", "2030-01-03"), Condition::Always),
                put(json!({"pk": "D#4", "sk": "D", "gsi1pk": "DUE#1"}), Condition::Always),
                put(json!({"pk": "D#5", "sk": "D"}), Condition::Always),
                put(
                    json!({"pk": "D#6", "sk": "D", "gsi2pk": "DUE#1", "gsi2sk": "2030-01-01"}),
                    Condition::Always,
                ),
            ])
            .await
            .unwrap();
        wait_for_index(store.as_ref(), Index::Gsi1, "DUE#1", &["D#2", "D#1", "D#3"]).await;
        let page = store.query(&Query::index(Index::Gsi1, "DUE#1")).await.unwrap();
        let order: Vec<&str> = page.items.iter().map(|item| item["pk"].as_str().unwrap()).collect();
        assert_eq!(order, ["D#2", "D#1", "D#3"], "index sort-key order; items without both keys are absent");
        assert_eq!(page.items[0], item(due("D#2", "D", "2030-01-01")), "projection ALL");

        let until = Query::index(Index::Gsi1, "DUE#1").range(SkRange::AtMost("2030-01-02".into()));
        let due_now = store.query(&until.clone().limit(1)).await.unwrap();
        assert_eq!(due_now.items[0]["pk"], "D#2");
        let rest = store.query(&until.limit(1).after(due_now.next)).await.unwrap();
        assert_eq!(rest.items[0]["pk"], "D#1", "index pages go on after the token");

        store
            .transact(vec![
                update(&Key::new("D#1", "D"), json!({"gsi1pk": "DUE#2"}), &[], Condition::Exists),
                update(&Key::new("D#3", "D"), json!({}), &["gsi1pk", "gsi1sk"], Condition::Exists),
                update(
                    &Key::new("D#5", "D"),
                    json!({"gsi1pk": "DUE#1", "gsi1sk": "2030-01-05"}),
                    &[],
                    Condition::Exists,
                ),
            ])
            .await
            .unwrap();
        wait_for_index(store.as_ref(), Index::Gsi1, "DUE#2", &["D#1"]).await;
        wait_for_index(store.as_ref(), Index::Gsi1, "DUE#1", &["D#2", "D#5"]).await;
        let page = store.query(&Query::index(Index::Gsi1, "DUE#1")).await.unwrap();
        let order: Vec<&str> = page.items.iter().map(|item| item["pk"].as_str().unwrap()).collect();
        assert_eq!(order, ["D#2", "D#5"], "a changed key moves the item; removed keys take it out");
        assert_eq!(store.query(&Query::index(Index::Gsi3, "DUE#1")).await.unwrap().items, Vec::<Item>::new());
        wait_for_index(store.as_ref(), Index::Gsi2, "DUE#1", &["D#6"]).await;
    }

    pub async fn increment_from_missing_is_by(store: Arc<dyn Store>) {
        let key = Key::new("CNT#1", "C");
        assert_eq!(store.increment(&key, "seq", 5).await, Ok(5));
        assert_eq!(store.increment(&key, "seq", -2).await, Ok(3));
        assert_eq!(store.increment(&key, "other", 1).await, Ok(1));
        assert_eq!(
            store.get(&key).await.unwrap(),
            Some(item(json!({"pk": "CNT#1", "sk": "C", "seq": 3, "other": 1})))
        );

        let record = Key::new("D#1", "D");
        store
            .transact(vec![put(json!({"pk": "D#1", "sk": "D", "name": "x"}), Condition::Always)])
            .await
            .unwrap();
        assert_eq!(store.increment(&record, "unread", 1).await, Ok(1));
        assert_eq!(store.get(&record).await.unwrap().unwrap()["name"], "x", "the rest of the item stays");
    }

    pub async fn concurrent_increments_are_distinct(store: Arc<dyn Store>) {
        let key = Key::new("CNT#1", "C");
        let answers = all_at_once(20, |_| {
            let (store, key) = (Arc::clone(&store), key.clone());
            async move { store.increment(&key, "seq", 1).await.expect("increment") }
        })
        .await;
        let distinct: BTreeSet<i64> = answers.iter().copied().collect();
        assert_eq!(distinct, (1..=20).collect::<BTreeSet<i64>>(), "every increment saw its own value");
        assert_eq!(store.get(&key).await.unwrap().unwrap()["seq"], 20);
    }

    pub async fn concurrent_not_exists_puts_admit_one(store: Arc<dyn Store>) {
        let answers = all_at_once(20, |writer| {
            let store = Arc::clone(&store);
            async move {
                let message = json!({"pk": "MSG#1", "sk": "M", "writer": writer});
                store.transact(vec![put(message, Condition::NotExists)]).await
            }
        })
        .await;
        assert_eq!(answers.iter().filter(|answer| answer.is_ok()).count(), 1, "{answers:?}");
        assert!(answers.iter().all(|answer| answer.is_ok() || *answer == conflict(&[0])), "{answers:?}");
        let winner = answers.iter().position(Result::is_ok).unwrap();
        assert_eq!(store.get(&Key::new("MSG#1", "M")).await.unwrap().unwrap()["writer"], winner);
    }
    /// Transactions arriving together (the embedded store commits them as one group) stand or fall each on
    /// its own conditions.
    pub async fn concurrent_transactions_fail_alone(store: Arc<dyn Store>) {
        let answers = all_at_once(20, |writer| {
            let store = Arc::clone(&store);
            async move {
                let own =
                    put(json!({"pk": format!("W#{writer}"), "sk": "W", "writer": writer}), Condition::Always);
                let mut writes = vec![own];
                if writer % 2 == 1 {
                    writes
                        .push(Write::Check { key: Key::new("W#missing", "W"), condition: Condition::Exists });
                }
                store.transact(writes).await
            }
        })
        .await;
        for (writer, answer) in answers.iter().enumerate() {
            let stored = store.get(&Key::new(format!("W#{writer}"), "W")).await.expect("get");
            if writer % 2 == 1 {
                assert_eq!(*answer, conflict(&[1]), "writer {writer}");
                assert_eq!(stored, None, "writer {writer}'s failed transaction wrote nothing");
            } else {
                assert_eq!(*answer, Ok(()), "writer {writer}");
                assert_eq!(stored.expect("stored")["writer"], writer);
            }
        }
    }

    pub async fn get_many_answers_in_the_order_asked(store: Arc<dyn Store>) {
        for n in 1..=3 {
            store
                .transact(vec![put(json!({"pk": "B#1", "sk": format!("S#{n}"), "n": n}), Condition::Always)])
                .await
                .expect("put");
        }
        let keys = [
            Key::new("B#1", "S#2"),
            Key::new("B#1", "S#missing"),
            Key::new("B#1", "S#1"),
            Key::new("B#1", "S#3"),
        ];
        let found = store.get_many(&keys).await.expect("get_many");
        let numbers: Vec<Option<i64>> =
            found.iter().map(|item| item.as_ref().and_then(|item| item["n"].as_i64())).collect();
        assert_eq!(numbers, vec![Some(2), None, Some(1), Some(3)]);
        assert_eq!(store.get_many(&[]).await, Ok(Vec::new()));
        let hundred: Vec<Key> = (0..100).map(|n| Key::new("B#1", format!("S#{n}"))).collect();
        let found = store.get_many(&hundred).await.expect("a hundred keys");
        assert_eq!(found.iter().filter(|item| item.is_some()).count(), 3);
    }

    pub async fn get_many_refuses_repeats_and_oversize(store: Arc<dyn Store>) {
        let key = Key::new("B#1", "S#1");
        assert!(matches!(store.get_many(&[key.clone(), key]).await, Err(StoreError::Invalid(_))));
        let too_many: Vec<Key> = (0..101).map(|n| Key::new("B#1", format!("S#{n}"))).collect();
        assert!(matches!(store.get_many(&too_many).await, Err(StoreError::Invalid(_))));
    }
}

// =========================================================================================================
// Secret store cases

mod secret_cases {
    use super::*;

    pub async fn missing_secret_is_none(secrets: Arc<dyn SecretStore>) {
        assert_eq!(secrets.get("tenant-1/telegram/bot-token").await, Ok(None));
    }

    pub async fn put_get_replace(secrets: Arc<dyn SecretStore>) {
        let name = "tenant-1/telegram/bot-token";
        secrets.put(name, &Secret::new("123456:first-token")).await.expect("put");
        assert_eq!(secrets.get(name).await.unwrap().unwrap().expose(), "123456:first-token");
        secrets.put(name, &Secret::new("123456:second-token")).await.expect("replace");
        assert_eq!(secrets.get(name).await.unwrap().unwrap().expose(), "123456:second-token");
        assert_eq!(secrets.get("tenant-2/telegram/bot-token").await, Ok(None), "names do not mix");
    }

    pub async fn delete_then_get_is_none(secrets: Arc<dyn SecretStore>) {
        let name = "tenant-1/mail/password";
        secrets.put(name, &Secret::new("hunter2")).await.unwrap();
        secrets.delete(name).await.expect("delete");
        assert_eq!(secrets.get(name).await, Ok(None));
        assert_eq!(secrets.delete(name).await, Ok(()), "deleting twice is fine");
        assert_eq!(secrets.delete("never-there").await, Ok(()), "deleting a missing secret is fine");
    }

    pub async fn put_after_delete_works_again(secrets: Arc<dyn SecretStore>) {
        let name = "tenant-1/mail/password";
        secrets.put(name, &Secret::new("old")).await.unwrap();
        secrets.delete(name).await.unwrap();
        secrets.put(name, &Secret::new("new")).await.expect("put again after delete");
        assert_eq!(secrets.get(name).await.unwrap().unwrap().expose(), "new");
        secrets.put(name, &Secret::new("newer")).await.expect("and replace");
        assert_eq!(secrets.get(name).await.unwrap().unwrap().expose(), "newer");
    }
}

// =========================================================================================================
// Event bus cases

mod event_cases {
    use super::*;

    /// More events than one `PutEvents` call takes.
    pub async fn publish_in_chunks(bus: Arc<dyn EventBus>) {
        let tenant = TenantId::generate();
        let events: Vec<DomainEvent> = (0..25).map(|index| event(&tenant, index)).collect();
        assert_eq!(bus.publish(&events).await, Ok(()));
    }

    pub async fn publish_nothing(bus: Arc<dyn EventBus>) {
        assert_eq!(bus.publish(&[]).await, Ok(()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_embedded_subscriber_receives_every_event_in_order() {
    let bus = embedded_bus();
    let mut subscriber = bus.subscribe();
    let tenant = TenantId::generate();
    let events: Vec<DomainEvent> = (0..25).map(|index| event(&tenant, index)).collect();
    bus.publish(&events).await.expect("publish");
    let mut received = Vec::new();
    for _ in 0..events.len() {
        let next = tokio::time::timeout(Duration::from_secs(5), subscriber.recv()).await;
        received.push(next.expect("in time").expect("received"));
    }
    assert_eq!(received, events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_aws_publishing_to_a_missing_bus_fails() {
    let Some(config) = moto().await else { return };
    let bus = EventBridgeBus::from_config(&config, unique_name("no-such-bus"));
    let answer = bus.publish(&[event(&TenantId::generate(), 0)]).await;
    assert!(
        matches!(answer, Err(EventError::Rejected { .. } | EventError::Unavailable(_))),
        "publishing to a bus that does not exist must fail: {answer:?}"
    );
}

// =========================================================================================================
// Across adapters

/// One script of operations on every adapter set: the answers must be the same, item for item.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adapters_agree_on_one_script() {
    let mut transcripts = Vec::new();
    for (name, store, secrets, bus) in adapter_sets().await {
        let mut transcript: Vec<(&str, Value)> = Vec::new();
        let key = Key::new("T#1", "D#1");
        transcript.push(("get missing", outcome(store.get(&key).await)));
        let writes = vec![
            put(
                json!({"pk": "T#1", "sk": "D#1", "gsi1pk": "OPEN", "gsi1sk": "1", "n": 1}),
                Condition::NotExists,
            ),
            put(
                json!({"pk": "T#1", "sk": "D#2", "gsi1pk": "OPEN", "gsi1sk": "2", "n": 2}),
                Condition::NotExists,
            ),
        ];
        transcript.push(("first transaction", outcome(store.transact(writes.clone()).await)));
        transcript.push(("replayed transaction", outcome(store.transact(writes).await)));
        let change = update(
            &key,
            json!({"n": 10, "tags": ["x"]}),
            &["gsi1pk"],
            Condition::Equals("n".into(), json!(1)),
        );
        transcript.push(("conditional update", outcome(store.transact(vec![change]).await)));
        transcript.push(("increment", outcome(store.increment(&key, "n", 5).await)));
        transcript.push(("get", outcome(store.get(&key).await)));
        let page = store.query(&Query::table("T#1").limit(1)).await.expect("query");
        transcript.push(("first page", json!([page.items, page.next.is_some()])));
        let rest = store.query(&Query::table("T#1").limit(1).after(page.next)).await.expect("query");
        transcript.push(("second page", json!([rest.items, rest.next.is_some()])));
        wait_for_index(store.as_ref(), Index::Gsi1, "OPEN", &["T#1"]).await;
        secrets.put("agree", &Secret::new("value")).await.expect("put secret");
        let secret = secrets.get("agree").await.map(|secret| secret.map(|secret| secret.expose().to_owned()));
        transcript.push(("secret", outcome(secret)));
        transcript.push(("publish", outcome(bus.publish(&[event(&TenantId::generate(), 1)]).await)));
        transcripts.push((name, transcript));
    }
    let (first, expected) = &transcripts[0];
    for (name, transcript) in &transcripts[1..] {
        assert_eq!(transcript, expected, "{name} disagrees with {first}");
    }
}

// =========================================================================================================
// Use cases over every adapter set: ingest (invariants 1 and 2) and timers (invariants 4 and 5).

mod customers;
mod ingest;
mod media;
mod media_flow;
mod outbox;
mod secret_rotation;
mod timers;
mod work_queue;

fn embedded_set() -> AdapterSet {
    ("embedded", embedded_store(), embedded_secrets(), embedded_bus())
}

async fn aws_set(config: &SdkConfig) -> AdapterSet {
    ("aws", aws_store(config).await, aws_secrets(config), aws_bus(config).await)
}

conformance!(
    ingest,
    ingest_embedded => embedded_set(),
    ingest_aws => |config| aws_set(&config).await,
    [
        twenty_identical_deliveries_store_one_message,
        racing_first_messages_share_one_dialog,
        a_failure_at_any_store_call_then_the_retry_stores_exactly_once,
        a_message_after_the_dialog_closed_opens_a_new_one,
        a_stale_channel_stores_nothing_and_a_repeat_costs_one_read,
        messages_carry_expires_at_only_with_a_retention,
        a_message_costs_the_write_units_the_scaling_page_states,
    ]
);

conformance!(
    customers,
    customers_embedded => embedded_set(),
    customers_aws => |config| aws_set(&config).await,
    [
        a_customers_dialogs_are_read_from_their_own_partition,
        a_merge_moves_identities_and_later_dialogs_follow_it,
        an_erase_stopped_at_any_store_call_is_finished_by_the_next,
    ]
);

conformance!(
    outbox,
    outbox_embedded => embedded_set(),
    outbox_aws => |config| aws_set(&config).await,
    [
        racing_senders_of_one_message_make_one_provider_call,
        retries_keep_their_backoff_and_the_last_failure_is_reported,
        an_interrupted_send_is_failed_not_repeated_without_idempotent_sends,
        an_interrupted_send_is_repeated_with_the_same_key_where_sends_are_idempotent,
        a_report_before_the_send_is_recorded_is_applied_when_it_is,
    ]
);

conformance!(
    media_flow,
    media_flow_embedded => (embedded_set(), media::embedded_media().await),
    media_flow_aws => |config| (aws_set(&config).await, media::aws_media(&config).await),
    [a_customers_file_is_fetched_once_stored_and_linked]
);

conformance!(
    work_queue,
    work_embedded => work_queue::embedded_queue(),
    work_aws => |config| work_queue::aws_queue(&config).await,
    [twenty_five_items_round_trip, enqueueing_nothing_is_fine]
);

conformance!(
    timers,
    timers_embedded => embedded_set(),
    timers_aws => |config| aws_set(&config).await,
    [
        overlapping_ticks_send_each_auto_reply_once,
        a_reply_racing_a_due_auto_reply_wins_cleanly,
        a_tick_reads_what_is_due_not_what_exists,
    ]
);

/// Secrets Manager only: the e-mail poller's and the senders' role (no `CreateSecret`) saving a rotated
/// refresh token.
mod secret_rotation_aws {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_update_needs_no_create_secret() {
        let Some(config) = moto().await else { return };
        secret_rotation::an_update_needs_no_create_secret(config).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_pollers_rotated_refresh_token_lands_as_a_new_version() {
        let Some(config) = moto().await else { return };
        secret_rotation::the_pollers_rotated_refresh_token_lands_as_a_new_version(config).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_senders_renewed_avito_tokens_land_as_a_new_version() {
        let Some(config) = moto().await else { return };
        secret_rotation::a_senders_renewed_avito_tokens_land_as_a_new_version(config).await;
    }
}

/// Bulk copy: an embedded store's items, read whole with `RedbStore::all_items`, written into a DynamoDB
/// table with `DynamoStore::put_items` (more than one `BatchWriteItem` of 25), read back the same, index
/// entries included. The tick-cost benchmark seeds moto this way.
mod bulk_copy_aws {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_embedded_stores_items_copy_into_dynamodb_unchanged() {
        let Some(config) = moto().await else { return };
        let dir = tempfile::tempdir().expect("temp dir");
        let source = RedbStore::open(&dir.path().join("store.redb")).expect("open redb");
        let mut written = Vec::new();
        for n in 0..60 {
            let mut item = Item::new();
            item.insert("pk".into(), json!(format!("BULK#{}", n % 7)));
            item.insert("sk".into(), json!(format!("ITEM#{n:03}")));
            item.insert("n".into(), json!(n));
            item.insert("nested".into(), json!({"list": [n, "x", null, true], "f": 0.5}));
            if n % 3 == 0 {
                item.insert(Index::Gsi1.pk_attr().into(), json!("BULK-INDEX"));
                item.insert(Index::Gsi1.sk_attr().into(), json!(format!("{n:03}")));
            }
            source
                .transact(vec![Write::Put { item: item.clone(), condition: Condition::NotExists }])
                .await
                .expect("put");
            written.push(item);
        }
        source
            .transact(vec![Write::Delete {
                key: Key::new("BULK#0", "ITEM#000"),
                condition: Condition::Always,
            }])
            .await
            .expect("delete");
        written.remove(0);

        let items = source.all_items().await.expect("all items");
        assert_eq!(items.len(), written.len(), "every item, and not the deleted one");
        let target = DynamoStore::from_config(&config, unique_name("table"));
        aws::create_table(target.client(), target.table()).await.expect("create the table on moto");
        target.put_items(&items).await.expect("put items");

        for item in &written {
            let key = Key::of(item).expect("key");
            assert_eq!(target.get(&key).await.expect("get").as_ref(), Some(item), "{key:?}");
        }
        assert_eq!(target.get(&Key::new("BULK#0", "ITEM#000")).await.expect("get"), None);
        let indexed = read_all(&target, Query::index(Index::Gsi1, "BULK-INDEX")).await;
        let expected: Vec<String> = (3..60).step_by(3).map(|n| format!("ITEM#{n:03}")).collect();
        assert_eq!(indexed, expected, "the index entries came along");
    }
}
