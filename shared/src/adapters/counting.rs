//! A [`Store`] decorator that counts what passes through it: the calls, and the items handed back. Tests
//! and the benchmarks use it to show what a use case costs on any adapter (DynamoDB bills by the item).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::ports::store::{Item, Key, Page, Query, Store, StoreError, Write};

/// What went through a [`CountingStore`] since it was made or last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// `get`, `get_many` and `query` calls (one round trip each on DynamoDB).
    pub reads: u64,
    /// Items the reads returned.
    pub items_read: u64,
    /// `transact` and `increment` calls.
    pub writes: u64,
}

pub struct CountingStore {
    inner: Arc<dyn Store>,
    reads: AtomicU64,
    items_read: AtomicU64,
    writes: AtomicU64,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner, reads: AtomicU64::new(0), items_read: AtomicU64::new(0), writes: AtomicU64::new(0) }
    }

    pub fn counts(&self) -> StoreCounts {
        StoreCounts {
            reads: self.reads.load(Ordering::SeqCst),
            items_read: self.items_read.load(Ordering::SeqCst),
            writes: self.writes.load(Ordering::SeqCst),
        }
    }

    pub fn reset(&self) {
        for counter in [&self.reads, &self.items_read, &self.writes] {
            counter.store(0, Ordering::SeqCst);
        }
    }

    fn read(&self, items: usize) {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.items_read.fetch_add(items as u64, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let found = self.inner.get(key).await?;
        self.read(usize::from(found.is_some()));
        Ok(found)
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let found = self.inner.get_many(keys).await?;
        self.read(found.iter().flatten().count());
        Ok(found)
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.transact(writes).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let page = self.inner.query(query).await?;
        self.read(page.items.len());
        Ok(page)
    }

    async fn increment(&self, key: &Key, attribute: &str, by: i64) -> Result<i64, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.increment(key, attribute, by).await
    }
}
