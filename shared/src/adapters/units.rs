//! A [`Store`] decorator that meters capacity units as DynamoDB bills them, from the items themselves:
//! DynamoDB's published item-size rules and its on-demand unit rules, applied to the images before and
//! after each write. Tests and the benchmarks use it to state what a use case costs per message on any
//! adapter (moto reports a fixed figure, not one from the items, so the units are computed here).
//!
//! The rules (Amazon DynamoDB Developer Guide, "Item sizes and formats", "Read/write capacity mode",
//! "Capacity management for transactions", "Provisioned throughput considerations for GSIs"):
//! - an item's size is the sum, over its attributes, of the name's UTF-8 length and the value's size: a
//!   string its UTF-8 length, a number (its significant digits ÷ 2, rounded up) + 1 bytes, a boolean or
//!   null 1 byte, a list or map 3 bytes plus each element's size plus 1 byte per element (and a map's
//!   names);
//! - a write costs one unit per started KB of the larger of the item's before and after images, two inside
//!   a transaction (prepare and commit); a condition check in a transaction is counted the same way. A
//!   transaction of one write that is not a check is one single-item call on DynamoDB (`PutItem`,
//!   `UpdateItem`, `DeleteItem`: the adapter sends it so) and counts once;
//! - every index whose entry the write adds, changes or removes costs one more write per started KB of the
//!   entry (all three indexes project every attribute): a changed index key is a delete and a put;
//! - a strongly consistent read costs one unit per started 4 KB of each item read; a query (eventually
//!   consistent, on an index) half a unit per started 4 KB of the page's items together.
//!
//! Writes that fail their condition are not counted (DynamoDB bills them too; the figures are the
//! successful path's).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use crate::ports::store::{Index, Item, Key, Page, Query, Store, StoreError, Write};

/// Capacity units metered since the meter was made or last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Units {
    /// Write units of the table's own items (the writes of a transaction of several count double).
    pub table_writes: f64,
    /// Write units of the index entries the writes added, changed or removed.
    pub index_writes: f64,
    /// Read units (strongly consistent item reads; queries at half a unit per 4 KB).
    pub reads: f64,
}

impl Units {
    pub fn writes(&self) -> f64 {
        self.table_writes + self.index_writes
    }
}

pub struct UnitMeter {
    inner: Arc<dyn Store>,
    units: Mutex<Units>,
}

impl UnitMeter {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner, units: Mutex::new(Units::default()) }
    }

    pub fn units(&self) -> Units {
        *self.units.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The units metered so far, and the meter back to zero.
    pub fn take(&self) -> Units {
        std::mem::take(&mut *self.units.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn add(&self, more: Units) {
        let mut units = self.units.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        units.table_writes += more.table_writes;
        units.index_writes += more.index_writes;
        units.reads += more.reads;
    }
}

#[async_trait]
impl Store for UnitMeter {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let found = self.inner.get(key).await?;
        self.add(Units { reads: read_units(found.as_ref()), ..Units::default() });
        Ok(found)
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let found = self.inner.get_many(keys).await?;
        let reads = found.iter().map(|item| read_units(item.as_ref())).sum();
        self.add(Units { reads, ..Units::default() });
        Ok(found)
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let keys: Vec<Key> = writes.iter().filter_map(Write::key).collect();
        let before = self.inner.get_many(&keys).await?;
        let checks: Vec<bool> = writes.iter().map(|write| matches!(write, Write::Check { .. })).collect();
        // The DynamoDB adapter sends a lone write (not a check) as a single-item call, outside a transaction.
        let factor = match checks.as_slice() {
            [false] => 1.0,
            _ => 2.0,
        };
        self.inner.transact(writes).await?;
        let after = self.inner.get_many(&keys).await?;
        let mut units = Units::default();
        for ((before, after), check) in before.iter().zip(&after).zip(checks) {
            match check {
                true => units.table_writes += 2.0 * kilobytes(before.as_ref().map_or(0, item_size)),
                false => {
                    let (table, index) = write_units(before.as_ref(), after.as_ref());
                    units.table_writes += factor * table;
                    units.index_writes += index;
                }
            }
        }
        self.add(units);
        Ok(())
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let page = self.inner.query(query).await?;
        let bytes: usize = page.items.iter().map(item_size).sum();
        self.add(Units { reads: 0.5 * (bytes.div_ceil(4096).max(1) as f64), ..Units::default() });
        Ok(page)
    }

    async fn increment(&self, key: &Key, attribute: &str, by: i64) -> Result<i64, StoreError> {
        let before = self.inner.get(key).await?;
        let value = self.inner.increment(key, attribute, by).await?;
        let after = self.inner.get(key).await?;
        let (table, index) = write_units(before.as_ref(), after.as_ref());
        self.add(Units { table_writes: table, index_writes: index, reads: 0.0 });
        Ok(value)
    }
}

/// One strongly consistent read of an item (a missing item still costs the minimum unit).
fn read_units(item: Option<&Item>) -> f64 {
    item.map_or(0, item_size).div_ceil(4096).max(1) as f64
}

/// Started kilobytes, at least one.
fn kilobytes(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// The (table, index) write units of one non-transactional write that turned `before` into `after`.
pub fn write_units(before: Option<&Item>, after: Option<&Item>) -> (f64, f64) {
    let size = |item: Option<&Item>| item.map_or(0, item_size);
    let table = kilobytes(size(before).max(size(after)));
    let index = Index::ALL.iter().map(|index| index_units(*index, before, after)).sum();
    (table, index)
}

fn index_units(index: Index, before: Option<&Item>, after: Option<&Item>) -> f64 {
    let entry = |item: Option<&Item>| {
        item.and_then(|item| Some((item.get(index.pk_attr())?.clone(), item.get(index.sk_attr())?.clone())))
    };
    match (entry(before), entry(after)) {
        (None, None) => 0.0,
        (Some(_), None) => kilobytes(before.map_or(0, item_size)),
        (None, Some(_)) => kilobytes(after.map_or(0, item_size)),
        (Some(old), Some(new)) if old != new => {
            kilobytes(before.map_or(0, item_size)) + kilobytes(after.map_or(0, item_size))
        }
        // The same entry: rewritten if any (projected) attribute changed.
        (Some(_), Some(_)) if before != after => kilobytes(after.map_or(0, item_size)),
        (Some(_), Some(_)) => 0.0,
    }
}

/// An item's size by DynamoDB's rules.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 1,
        Value::String(string) => string.len(),
        Value::Number(number) => number_size(&number.to_string()),
        Value::Array(values) => 3 + values.iter().map(|value| 1 + value_size(value)).sum::<usize>(),
        Value::Object(map) => {
            3 + map.iter().map(|(name, value)| 1 + name.len() + value_size(value)).sum::<usize>()
        }
    }
}

/// (significant digits ÷ 2, rounded up) + 1 bytes.
fn number_size(number: &str) -> usize {
    let mantissa = number.split(['e', 'E']).next().unwrap_or(number);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(value: Value) -> Item {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn sizes_follow_the_published_rules() {
        // Names count; a string is its UTF-8 length ("ж" is two bytes).
        assert_eq!(item_size(&item(json!({"pk": "abc", "name": "ж"}))), 2 + 3 + 4 + 2);
        assert_eq!(number_size("12345"), 4);
        assert_eq!(number_size("1000"), 2);
        assert_eq!(number_size("0.05"), 2);
        assert_eq!(item_size(&item(json!({"ok": true, "none": null}))), 2 + 1 + 4 + 1);
        // A list: 3 bytes, then each element and one byte for it.
        assert_eq!(item_size(&item(json!({"l": ["ab", "c"]}))), 1 + 3 + (1 + 2) + (1 + 1));
        assert_eq!(item_size(&item(json!({"m": {"k": "v"}}))), 1 + 3 + (1 + 1 + 1));
    }

    #[test]
    fn index_entries_cost_when_they_appear_change_or_go() {
        let listed = item(json!({"pk": "D#1", "sk": "D", "gsi1pk": "T#1", "gsi1sk": "1", "at": "1"}));
        let touched = item(json!({"pk": "D#1", "sk": "D", "gsi1pk": "T#1", "gsi1sk": "1", "at": "2"}));
        let moved = item(json!({"pk": "D#1", "sk": "D", "gsi1pk": "T#1", "gsi1sk": "2", "at": "2"}));
        let unlisted = item(json!({"pk": "D#1", "sk": "D", "at": "2"}));
        assert_eq!(write_units(None, Some(&listed)), (1.0, 1.0));
        assert_eq!(write_units(Some(&listed), Some(&touched)), (1.0, 1.0), "a projected attribute changed");
        assert_eq!(write_units(Some(&listed), Some(&listed)), (1.0, 0.0), "nothing changed");
        assert_eq!(write_units(Some(&touched), Some(&moved)), (1.0, 2.0), "a moved key: delete and put");
        assert_eq!(write_units(Some(&moved), Some(&unlisted)), (1.0, 1.0));
        assert_eq!(write_units(Some(&unlisted), None), (1.0, 0.0));
        let big = item(json!({"pk": "x", "sk": "y", "text": "a".repeat(1500)}));
        assert_eq!(write_units(None, Some(&big)), (2.0, 0.0), "a started KB is a unit");
    }

    #[tokio::test]
    async fn a_lone_write_counts_once_and_a_transaction_twice() {
        use crate::adapters::embedded::RedbStore;
        use crate::ports::store::Condition;
        let dir = tempfile::tempdir().expect("tempdir");
        let meter = UnitMeter::new(Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store")));
        let put = |sk: &str| Write::Put {
            item: item(json!({"pk": "P", "sk": sk, "gsi1pk": "L", "gsi1sk": sk})),
            condition: Condition::Always,
        };
        meter.transact(vec![put("a")]).await.expect("lone put");
        assert_eq!(meter.take(), Units { table_writes: 1.0, index_writes: 1.0, reads: 0.0 });
        meter.transact(vec![put("b"), put("c")]).await.expect("transaction");
        assert_eq!(meter.take(), Units { table_writes: 4.0, index_writes: 2.0, reads: 0.0 });
        let check = Write::Check { key: Key::new("P", "a"), condition: Condition::Exists };
        meter.transact(vec![check]).await.expect("lone check");
        assert_eq!(meter.take().table_writes, 2.0, "a lone check is still a transaction");
    }
}
