//! The embedded store: redb, a pure-Rust ACID key-value database in one file.
//!
//! Why redb: it is embedded (nothing to install or start), crash-safe (copy-on-write B-trees, every commit
//! is durable when `commit` returns), serializes writers, which makes conditional transactions trivially
//! atomic, and compiles with the rest of the workspace (no C toolchain, unlike SQLite). It keeps the same
//! item model as DynamoDB: one table keyed by (pk, sk) holding JSON items, and one table per secondary
//! index keyed by (index pk, index sk, pk, sk), maintained in the same transaction as the item.
//!
//! Writes go through one writer thread that commits in groups: it takes every transaction waiting (up to
//! [`MAX_GROUP`]), applies each in turn inside one redb write transaction (each sees the ones before it, so
//! the outcome is that of running them one by one; one whose conditions fail writes nothing and gets its
//! `Conflict`), commits once with `Durability::Immediate` (fsync), and only then answers every caller.
//! An acknowledged write is on disk; the cost of the fsync is shared by everything that waited for it.
//! Reads run on the blocking pool against the last committed state.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;

use crate::ports::store::{
    Condition, Index, Item, Key, Page, Query, SkRange, Store, StoreError, Write, check_batch_get,
    check_transaction,
};

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");

fn index_table(
    index: Index,
) -> TableDefinition<'static, (&'static str, &'static str, &'static str, &'static str), ()> {
    TableDefinition::new(index.name())
}

/// Sorts after every sort key the records use (they are ASCII and UUIDs).
const MAX_KEY: &str = "\u{10FFFF}";

/// The most transactions committed together.
const MAX_GROUP: usize = 512;
/// Transactions that may wait for the writer before callers wait to enqueue (back-pressure).
const QUEUE: usize = 4096;

#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

/// The database and its writer; dropping the last handle stops the writer and waits for it, so the file
/// is released (and can be reopened) when the store is gone.
struct Inner {
    db: Arc<Database>,
    jobs: Option<tokio::sync::mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// One caller's write, with the way back to it.
struct Job {
    work: Work,
    reply: tokio::sync::oneshot::Sender<Result<Done, StoreError>>,
}

enum Work {
    Transact(Vec<Write>),
    Increment { key: Key, attribute: String, by: i64 },
}

/// What a job did: a transaction applied, or the counter's new value.
enum Done {
    Applied,
    Counted(i64),
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbStore")
    }
}

fn db_error<E: Into<redb::Error>>(context: &'static str) -> impl Fn(E) -> StoreError {
    move |error| StoreError::Unavailable(format!("{context}: {}", error.into()))
}

impl RedbStore {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_unless_in_use(path)?
            .ok_or_else(|| StoreError::Unavailable(format!("{} is open in another process", path.display())))
    }

    /// Opens like [`RedbStore::open`], answering `None` when another process (or another handle in this
    /// one) has the file open: redb locks it for one writer.
    pub fn open_unless_in_use(path: &Path) -> Result<Option<Self>, StoreError> {
        let db = match Database::create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Ok(None),
            Err(other) => return Err(db_error("open database")(other)),
        };
        let txn = db.begin_write().map_err(db_error("begin"))?;
        {
            txn.open_table(ITEMS).map_err(db_error("create items table"))?;
            for index in Index::ALL {
                txn.open_table(index_table(index)).map_err(db_error("create index table"))?;
            }
        }
        txn.commit().map_err(db_error("commit"))?;
        let db = Arc::new(db);
        let (jobs, queue) = tokio::sync::mpsc::channel(QUEUE);
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("redb-writer".into())
            .spawn(move || run_writer(&writer_db, queue))
            .map_err(|error| StoreError::Unavailable(format!("cannot start the writer: {error}")))?;
        Ok(Some(Self { inner: Arc::new(Inner { db, jobs: Some(jobs), writer: Some(writer) }) }))
    }

    /// Every item of the store, in key order: for copying a whole store elsewhere (the tick-cost benchmark
    /// seeds moto from an embedded store filled through the real ingest path). Reads one consistent snapshot.
    pub async fn all_items(&self) -> Result<Vec<Item>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(db_error("begin read"))?;
            let table = txn.open_table(ITEMS).map_err(db_error("open items"))?;
            let mut items = Vec::new();
            for entry in table.iter().map_err(db_error("scan"))? {
                let (_, value) = entry.map_err(db_error("scan"))?;
                items.push(decode(value.value())?);
            }
            Ok(items)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.inner.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|error| StoreError::Unavailable(format!("store task failed: {error}")))?
    }

    async fn write(&self, work: Work) -> Result<Done, StoreError> {
        let gone = || StoreError::Unavailable("the store's writer has stopped".into());
        let jobs = self.inner.jobs.as_ref().ok_or_else(gone)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        jobs.send(Job { work, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The writer thread: one group of waiting jobs per write transaction, until every handle is dropped.
fn run_writer(db: &Database, mut queue: tokio::sync::mpsc::Receiver<Job>) {
    while let Some(first) = queue.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let outcomes = apply_group(db, &group);
        for (job, outcome) in group.into_iter().zip(outcomes) {
            // A caller that gave up waiting dropped its receiver: nothing to tell.
            let _ = job.reply.send(outcome);
        }
    }
}

/// Applies every job in one write transaction and commits it. A job's own failure (a condition that does
/// not hold, an invalid item) is its answer alone; a storage failure fails the whole group, nothing of
/// which was committed.
fn apply_group(db: &Database, group: &[Job]) -> Vec<Result<Done, StoreError>> {
    let failed_all = |error: StoreError| group.iter().map(|_| Err(error.clone())).collect();
    let txn = match db.begin_write().map_err(db_error("begin write")) {
        Ok(txn) => txn,
        Err(error) => return failed_all(error),
    };
    let mut outcomes = Vec::with_capacity(group.len());
    let applied = (|| -> Result<(), StoreError> {
        let mut tables = Tables::open(&txn)?;
        for job in group {
            outcomes.push(match &job.work {
                Work::Transact(writes) => run_transaction(&mut tables, writes)?.map(|()| Done::Applied),
                Work::Increment { key, attribute, by } => {
                    Ok(Done::Counted(run_increment(&mut tables, key, attribute, *by)?))
                }
            });
        }
        Ok(())
    })();
    if let Err(error) = applied {
        let _ = txn.abort();
        return failed_all(error);
    }
    match txn.commit().map_err(db_error("commit")) {
        Ok(()) => outcomes,
        Err(error) => failed_all(error),
    }
}

/// An index table: (index pk, index sk, item pk, item sk) → nothing.
type IndexTable<'txn> = redb::Table<'txn, (&'static str, &'static str, &'static str, &'static str), ()>;

/// The item table and the index tables, opened once per write transaction.
struct Tables<'txn> {
    items: redb::Table<'txn, (&'static str, &'static str), &'static [u8]>,
    indexes: Vec<(Index, IndexTable<'txn>)>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, StoreError> {
        let items = txn.open_table(ITEMS).map_err(db_error("open items"))?;
        let indexes = Index::ALL
            .into_iter()
            .map(|index| Ok((index, txn.open_table(index_table(index)).map_err(db_error("open index"))?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self { items, indexes })
    }

    fn index(&mut self, index: Index) -> Result<&mut IndexTable<'txn>, StoreError> {
        self.indexes
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, table)| table)
            .ok_or_else(|| StoreError::Unavailable("index table missing".into()))
    }
}

fn decode(bytes: &[u8]) -> Result<Item, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Unavailable(format!("corrupt item: {error}")))
}

fn encode(item: &Item) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(item).map_err(|error| StoreError::Invalid(format!("item not serializable: {error}")))
}

fn holds(condition: &Condition, current: Option<&Item>) -> bool {
    match condition {
        Condition::Always => true,
        Condition::NotExists => current.is_none(),
        Condition::Exists => current.is_some(),
        Condition::Equals(attribute, value) => {
            current.and_then(|item| item.get(attribute)).is_some_and(|stored| same_value(stored, value))
        }
        Condition::Lacks(attribute) => current.is_none_or(|item| !item.contains_key(attribute)),
        Condition::All(conditions) => conditions.iter().all(|condition| holds(condition, current)),
    }
}

/// Equality as DynamoDB decides it: numbers by their value (`1`, `1.0` and `1e0` are one number), at any
/// depth of maps and lists; everything else as it is.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => decimal(&a.to_string()) == decimal(&b.to_string()),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(key, a)| b.get(key).is_some_and(|b| same_value(a, b)))
        }
        _ => a == b,
    }
}

/// A JSON number's decimal value as (negative, significant digits, exponent of the last digit): exact,
/// unlike `f64`, for the 38 digits DynamoDB keeps. Zero is `(false, "", 0)` whatever its sign or form.
fn decimal(number: &str) -> (bool, String, i64) {
    let (negative, unsigned) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().unwrap_or(0)),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let mut exponent = exponent - fraction.len() as i64;
    let digits = digits.trim_start_matches('0');
    let trimmed = digits.trim_end_matches('0');
    exponent += (digits.len() - trimmed.len()) as i64;
    if trimmed.is_empty() {
        return (false, String::new(), 0);
    }
    (negative, trimmed.to_owned(), exponent)
}

/// The index entries an item belongs to: only those whose two key attributes it carries (sparse indexes).
fn index_entries(item: &Item, key: &Key) -> Vec<(Index, String, String, Key)> {
    Index::ALL
        .into_iter()
        .filter_map(|index| {
            let pk = item.get(index.pk_attr())?.as_str()?;
            let sk = item.get(index.sk_attr())?.as_str()?;
            Some((index, pk.to_owned(), sk.to_owned(), key.clone()))
        })
        .collect()
}

/// Replaces the item at `key` (or deletes it with `None`), keeping the index tables in step. `new` comes
/// encoded already, so nothing here fails but storage.
fn store_item(
    tables: &mut Tables<'_>,
    key: &Key,
    old: Option<&Item>,
    new: Option<(&Item, &[u8])>,
) -> Result<(), StoreError> {
    for (index, ipk, isk, k) in old.map(|item| index_entries(item, key)).unwrap_or_default() {
        tables
            .index(index)?
            .remove((ipk.as_str(), isk.as_str(), k.pk.as_str(), k.sk.as_str()))
            .map_err(db_error("unindex"))?;
    }
    match new {
        Some((item, bytes)) => {
            tables.items.insert((key.pk.as_str(), key.sk.as_str()), bytes).map_err(db_error("insert"))?;
            for (index, ipk, isk, k) in index_entries(item, key) {
                tables
                    .index(index)?
                    .insert((ipk.as_str(), isk.as_str(), k.pk.as_str(), k.sk.as_str()), ())
                    .map_err(db_error("index"))?;
            }
        }
        None => {
            tables.items.remove((key.pk.as_str(), key.sk.as_str())).map_err(db_error("remove"))?;
        }
    }
    Ok(())
}

fn read_item(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    key: &Key,
) -> Result<Option<Item>, StoreError> {
    match table.get((key.pk.as_str(), key.sk.as_str())).map_err(db_error("get"))? {
        Some(guard) => decode(guard.value()).map(Some),
        None => Ok(None),
    }
}

/// The item a write leaves behind (`None`: deleted).
fn apply(write: &Write, key: &Key, current: Option<&Item>) -> Option<Item> {
    match write {
        Write::Put { item, .. } => Some(item.clone()),
        Write::Update { set, remove, .. } => {
            let mut item = current.cloned().unwrap_or_else(|| {
                let mut fresh = Item::new();
                fresh.insert("pk".into(), Value::String(key.pk.clone()));
                fresh.insert("sk".into(), Value::String(key.sk.clone()));
                fresh
            });
            for (name, value) in set {
                item.insert(name.clone(), value.clone());
            }
            for name in remove {
                item.remove(name);
            }
            Some(item)
        }
        Write::Delete { .. } => None,
        Write::Check { .. } => current.cloned(),
    }
}

/// Inclusive sort-key bounds of a range.
fn sk_bounds(range: &SkRange) -> (String, String) {
    match range {
        SkRange::All => (String::new(), MAX_KEY.to_owned()),
        SkRange::BeginsWith(prefix) => (prefix.clone(), format!("{prefix}{MAX_KEY}")),
        SkRange::Between(low, high) => (low.clone(), high.clone()),
        SkRange::AtMost(high) => (String::new(), high.clone()),
    }
}

fn sk_matches(range: &SkRange, sk: &str) -> bool {
    match range {
        SkRange::All => true,
        SkRange::BeginsWith(prefix) => sk.starts_with(prefix.as_str()),
        SkRange::Between(low, high) => sk >= low.as_str() && sk <= high.as_str(),
        SkRange::AtMost(high) => sk <= high.as_str(),
    }
}

/// A page position: the index sort key (for index queries) and the item's key.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    #[serde(default)]
    isk: Option<String>,
    pk: String,
    sk: String,
}

fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

fn decode_cursor(token: &str) -> Result<Cursor, StoreError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| StoreError::Invalid("bad page token".into()))
}

type ItemEntry<'a> = Result<
    (redb::AccessGuard<'a, (&'static str, &'static str)>, redb::AccessGuard<'a, &'static [u8]>),
    redb::StorageError,
>;
type IndexEntry<'a> = Result<
    (
        redb::AccessGuard<'a, (&'static str, &'static str, &'static str, &'static str)>,
        redb::AccessGuard<'a, ()>,
    ),
    redb::StorageError,
>;

/// The range in the asked order.
fn ordered<'a, T: 'a>(
    range: impl DoubleEndedIterator<Item = T> + 'a,
    descending: bool,
) -> Box<dyn Iterator<Item = T> + 'a> {
    if descending { Box::new(range.rev()) } else { Box::new(range) }
}

fn run_query(db: &Database, query: &Query) -> Result<Page, StoreError> {
    let txn = db.begin_read().map_err(db_error("begin read"))?;
    let items = txn.open_table(ITEMS).map_err(db_error("open items"))?;
    let after = query.after.as_deref().map(decode_cursor).transpose()?;
    let (low, high) = sk_bounds(&query.range);
    let pk = query.pk.as_str();
    // One more than asked, to know whether there is a next page.
    let wanted = query.limit + 1;
    let mut found: Vec<(Cursor, Item)> = Vec::new();
    match query.index {
        None => {
            let start = (pk, low.as_str());
            let end = (pk, high.as_str());
            let (start, end) = match (&after, query.descending) {
                (Some(c), false) => (Bound::Excluded((pk, c.sk.as_str())), Bound::Included(end)),
                (Some(c), true) => (Bound::Included(start), Bound::Excluded((pk, c.sk.as_str()))),
                (None, _) => (Bound::Included(start), Bound::Included(end)),
            };
            let range = items.range::<(&str, &str)>((start, end)).map_err(db_error("range"))?;
            for entry in ordered(range, query.descending) {
                let entry: ItemEntry<'_> = entry;
                let (key, value) = entry.map_err(db_error("read"))?;
                let (item_pk, item_sk) = key.value();
                if sk_matches(&query.range, item_sk) {
                    let cursor = Cursor { isk: None, pk: item_pk.to_owned(), sk: item_sk.to_owned() };
                    found.push((cursor, decode(value.value())?));
                    if found.len() == wanted {
                        break;
                    }
                }
            }
        }
        Some(index) => {
            let table = txn.open_table(index_table(index)).map_err(db_error("open index"))?;
            let start = (pk, low.as_str(), "", "");
            let end = (pk, high.as_str(), MAX_KEY, MAX_KEY);
            let cursor_key =
                after.as_ref().map(|c| (pk, c.isk.as_deref().unwrap_or(""), c.pk.as_str(), c.sk.as_str()));
            let (start, end) = match (cursor_key, query.descending) {
                (Some(c), false) => (Bound::Excluded(c), Bound::Included(end)),
                (Some(c), true) => (Bound::Included(start), Bound::Excluded(c)),
                (None, _) => (Bound::Included(start), Bound::Included(end)),
            };
            let range = table.range::<(&str, &str, &str, &str)>((start, end)).map_err(db_error("range"))?;
            for entry in ordered(range, query.descending) {
                let entry: IndexEntry<'_> = entry;
                let (key, _) = entry.map_err(db_error("read"))?;
                let (_, index_sk, item_pk, item_sk) = key.value();
                if !sk_matches(&query.range, index_sk) {
                    continue;
                }
                let key = Key::new(item_pk, item_sk);
                if let Some(item) = read_item(&items, &key)? {
                    found.push((Cursor { isk: Some(index_sk.to_owned()), pk: key.pk, sk: key.sk }, item));
                    if found.len() == wanted {
                        break;
                    }
                }
            }
        }
    }
    let next = if found.len() > query.limit {
        found.truncate(query.limit);
        found.last().map(|(cursor, _)| encode_cursor(cursor))
    } else {
        None
    };
    Ok(Page { items: found.into_iter().map(|(_, item)| item).collect(), next })
}

/// One caller's transaction inside the group's write transaction: the outer error is a storage failure
/// (the group fails), the inner one this transaction's own answer (it wrote nothing).
fn run_transaction(tables: &mut Tables<'_>, writes: &[Write]) -> Result<Result<(), StoreError>, StoreError> {
    let mut planned = Vec::with_capacity(writes.len());
    let mut failed = Vec::new();
    for (position, write) in writes.iter().enumerate() {
        let Some(key) = write.key() else {
            return Ok(Err(StoreError::Invalid("an item without pk/sk".into())));
        };
        let current = read_item(&tables.items, &key)?;
        if !holds(write.condition(), current.as_ref()) {
            failed.push(position);
            continue;
        }
        if !matches!(write, Write::Check { .. }) {
            let new = apply(write, &key, current.as_ref());
            let bytes = match new.as_ref().map(encode).transpose() {
                Ok(bytes) => bytes,
                Err(error) => return Ok(Err(error)),
            };
            planned.push((key, current, new, bytes));
        }
    }
    if !failed.is_empty() {
        return Ok(Err(StoreError::Conflict { failed }));
    }
    for (key, old, new, bytes) in &planned {
        let new = new.as_ref().zip(bytes.as_deref());
        store_item(tables, key, old.as_ref(), new)?;
    }
    Ok(Ok(()))
}

fn run_increment(tables: &mut Tables<'_>, key: &Key, attribute: &str, by: i64) -> Result<i64, StoreError> {
    let current = read_item(&tables.items, key)?;
    let value =
        current.as_ref().and_then(|item| item.get(attribute)).and_then(Value::as_i64).unwrap_or(0) + by;
    let mut set = Item::new();
    set.insert(attribute.to_owned(), Value::from(value));
    let write = Write::Update { key: key.clone(), set, remove: Vec::new(), condition: Condition::Always };
    let new = apply(&write, key, current.as_ref());
    let bytes = new.as_ref().map(encode).transpose()?;
    store_item(tables, key, current.as_ref(), new.as_ref().zip(bytes.as_deref()))?;
    Ok(value)
}

#[async_trait]
impl Store for RedbStore {
    // Point reads run on the calling task: a read transaction and a few B-tree lookups, mostly from redb's
    // page cache, take microseconds, less than the hand-off to a blocking thread and back (futex wake-ups
    // and context switches; the ingest benchmark gained about 7% without them). Queries, which scan, stay
    // off the task.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let txn = self.inner.db.begin_read().map_err(db_error("begin read"))?;
        let items = txn.open_table(ITEMS).map_err(db_error("open items"))?;
        read_item(&items, key)
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        check_batch_get(keys)?;
        let txn = self.inner.db.begin_read().map_err(db_error("begin read"))?;
        let items = txn.open_table(ITEMS).map_err(db_error("open items"))?;
        keys.iter().map(|key| read_item(&items, key)).collect()
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_transaction(&writes)?;
        self.write(Work::Transact(writes)).await.map(|_| ())
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let query = query.clone();
        self.blocking(move |db| run_query(db, &query)).await
    }

    async fn increment(&self, key: &Key, attribute: &str, by: i64) -> Result<i64, StoreError> {
        let (key, attribute) = (key.clone(), attribute.to_owned());
        match self.write(Work::Increment { key, attribute, by }).await? {
            Done::Counted(value) => Ok(value),
            Done::Applied => Err(StoreError::Unavailable("the writer answered an increment wrongly".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_are_equal_by_value_in_every_form() {
        for (a, b) in
            [("1", "1.0"), ("1", "1e0"), ("120", "1.2e2"), ("0.5", "5E-1"), ("0", "-0.0"), ("-3", "-3.00")]
        {
            assert_eq!(decimal(a), decimal(b), "{a} = {b}");
        }
        for (a, b) in [
            ("1", "-1"),
            ("1", "10"),
            ("0.1", "0.01"),
            ("12345678901234567890123", "12345678901234567890124"),
        ] {
            assert_ne!(decimal(a), decimal(b), "{a} != {b}");
        }
        assert!(same_value(&json!({"a": [1, {"b": 2.0}]}), &json!({"a": [1.0, {"b": 2}]})));
        assert!(!same_value(&json!({"a": [1]}), &json!({"a": [1], "b": 1})));
        assert!(!same_value(&json!("1"), &json!(1)));
    }
}
