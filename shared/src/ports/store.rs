//! The item store: one table of JSON items keyed by (`pk`, `sk`), three sparse secondary indexes and
//! all-or-nothing conditional transactions. It is DynamoDB's single-table model, small enough that an
//! embedded database can give exactly the same semantics; `repo` maps the domain onto it.
//!
//! Contract every adapter keeps (the conformance suite checks each point):
//! - `get` answers `Ok(None)` for a missing item, never an error.
//! - `transact` applies all writes or none. When a condition does not hold it MUST answer
//!   `StoreError::Conflict` listing the indexes of every write whose condition failed, and write nothing.
//!   Two writes on the same key in one call are `StoreError::Invalid`.
//! - `Update` creates the item when it is missing (unless its condition says otherwise), sets the given
//!   attributes and removes the listed ones.
//! - `query` reads one partition (of the table or of an index) in sort-key order, `limit` items at most;
//!   `Page::next` is an opaque token to pass back as `Query::after`; `None` means there is no more.
//!   Index reads may lag writes (DynamoDB's global indexes are eventually consistent); table reads do not.
//! - `increment` adds to a number attribute atomically (creating it at 0) and answers the new value.
//! - Infrastructure trouble is `StoreError::Unavailable` (worth retrying), never a panic.

use async_trait::async_trait;
use serde_json::{Map, Value};

/// One item: a JSON object holding `pk`, `sk`, optional index keys and the record's own attributes.
pub type Item = Map<String, Value>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// Epoch seconds after which the table may delete the item (DynamoDB TTL; the embedded store ignores it).
pub const EXPIRES_AT: &str = "expires_at";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self { pk: pk.into(), sk: sk.into() }
    }

    /// The key of an item, if it has one.
    pub fn of(item: &Item) -> Option<Self> {
        Some(Self::new(item.get(PK)?.as_str()?, item.get(SK)?.as_str()?))
    }
}

/// The secondary indexes. Each is sparse: only items carrying its two key attributes are in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Index {
    Gsi1,
    Gsi2,
    Gsi3,
}

impl Index {
    pub const ALL: [Index; 3] = [Index::Gsi1, Index::Gsi2, Index::Gsi3];

    pub fn name(self) -> &'static str {
        match self {
            Index::Gsi1 => "gsi1",
            Index::Gsi2 => "gsi2",
            Index::Gsi3 => "gsi3",
        }
    }

    pub fn pk_attr(self) -> &'static str {
        match self {
            Index::Gsi1 => "gsi1pk",
            Index::Gsi2 => "gsi2pk",
            Index::Gsi3 => "gsi3pk",
        }
    }

    pub fn sk_attr(self) -> &'static str {
        match self {
            Index::Gsi1 => "gsi1sk",
            Index::Gsi2 => "gsi2sk",
            Index::Gsi3 => "gsi3sk",
        }
    }
}

/// A condition on the item a write touches, checked atomically with the write.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Always,
    /// The item must not exist.
    NotExists,
    /// The item must exist.
    Exists,
    /// The item must exist and its attribute must equal the value.
    Equals(String, Value),
    /// The item lacks the attribute (or does not exist): DynamoDB's `attribute_not_exists(attribute)`.
    Lacks(String),
    /// Every one of the conditions must hold (none: like `Always`).
    All(Vec<Condition>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put {
        item: Item,
        condition: Condition,
    },
    Update {
        key: Key,
        set: Item,
        remove: Vec<String>,
        condition: Condition,
    },
    Delete {
        key: Key,
        condition: Condition,
    },
    /// Only a condition, on an item the transaction does not otherwise write.
    Check {
        key: Key,
        condition: Condition,
    },
}

impl Write {
    pub fn key(&self) -> Option<Key> {
        match self {
            Write::Put { item, .. } => Key::of(item),
            Write::Update { key, .. } | Write::Delete { key, .. } | Write::Check { key, .. } => {
                Some(key.clone())
            }
        }
    }

    pub fn condition(&self) -> &Condition {
        match self {
            Write::Put { condition, .. }
            | Write::Update { condition, .. }
            | Write::Delete { condition, .. }
            | Write::Check { condition, .. } => condition,
        }
    }
}

/// Which sort keys of the partition a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkRange {
    All,
    BeginsWith(String),
    /// Inclusive at both ends.
    Between(String, String),
    /// Up to and including.
    AtMost(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub index: Option<Index>,
    pub pk: String,
    pub range: SkRange,
    pub limit: usize,
    pub descending: bool,
    pub after: Option<String>,
}

impl Query {
    pub fn table(pk: impl Into<String>) -> Self {
        Self { index: None, pk: pk.into(), range: SkRange::All, limit: 100, descending: false, after: None }
    }

    pub fn index(index: Index, pk: impl Into<String>) -> Self {
        Self { index: Some(index), ..Self::table(pk) }
    }

    pub fn range(mut self, range: SkRange) -> Self {
        self.range = range;
        self
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }

    pub fn after(mut self, token: Option<String>) -> Self {
        self.after = token;
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Conditions failed on the writes at these positions; nothing was written.
    #[error("condition failed on write(s) {failed:?}")]
    Conflict { failed: Vec<usize> },
    /// The request itself is wrong (a bad page token, two writes on one key).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The store could not be reached or refused for its own reasons: worth retrying.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    pub fn failed_at(&self, index: usize) -> bool {
        matches!(self, StoreError::Conflict { failed } if failed.contains(&index))
    }
}

/// The most writes one transaction may carry (DynamoDB's limit).
pub const MAX_TRANSACTION_WRITES: usize = 100;

#[async_trait]
pub trait Store: Send + Sync {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;
    /// Several items in one round trip (strongly consistent, like `get`), answered in the order asked.
    /// At most [`MAX_BATCH_GET`] keys, no key twice.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        check_batch_get(keys)?;
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            found.push(self.get(key).await?);
        }
        Ok(found)
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    async fn query(&self, query: &Query) -> Result<Page, StoreError>;
    async fn increment(&self, key: &Key, attribute: &str, by: i64) -> Result<i64, StoreError>;
}

/// The most keys one `get_many` may ask for (DynamoDB's BatchGetItem limit).
pub const MAX_BATCH_GET: usize = 100;

/// The checks every adapter makes before a batch read reaches its database.
pub fn check_batch_get(keys: &[Key]) -> Result<(), StoreError> {
    if keys.len() > MAX_BATCH_GET {
        return Err(StoreError::Invalid(format!("a batch read asks for at most {MAX_BATCH_GET} keys")));
    }
    let distinct: std::collections::BTreeSet<&Key> = keys.iter().collect();
    if distinct.len() != keys.len() {
        return Err(StoreError::Invalid("a batch read asks for the same item twice".into()));
    }
    Ok(())
}

/// The checks every adapter makes before a transaction reaches its database.
pub fn check_transaction(writes: &[Write]) -> Result<(), StoreError> {
    if writes.is_empty() || writes.len() > MAX_TRANSACTION_WRITES {
        return Err(StoreError::Invalid(format!(
            "a transaction carries 1 to {MAX_TRANSACTION_WRITES} writes, not {}",
            writes.len()
        )));
    }
    let mut keys = std::collections::BTreeSet::new();
    for write in writes {
        let key = write.key().ok_or_else(|| StoreError::Invalid("an item without pk/sk".into()))?;
        if !keys.insert(key) {
            return Err(StoreError::Invalid("two writes on the same item".into()));
        }
    }
    Ok(())
}
