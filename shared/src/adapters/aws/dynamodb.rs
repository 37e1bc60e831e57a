//! The DynamoDB adapter of the [`Store`] port: one table holds every record.
//!
//! ## The table (what `template.yaml` declares and [`create_table`] creates)
//! - Key: `pk` (HASH) and `sk` (RANGE), both strings. What the key strings look like for each record (tenant,
//!   channel, dialog, message, pointers, counters...) is laid out in [`crate::repo`].
//! - Three sparse global secondary indexes `gsi1`, `gsi2`, `gsi3`, each keyed by string attributes
//!   (`gsiNpk` HASH, `gsiNsk` RANGE) with projection ALL. An item is in an index only while it carries both
//!   of that index's attributes, so an index holds exactly the items a use case needs to find (due timers,
//!   lists by tenant), never the whole table.
//! - TTL on `expires_at` (epoch seconds); DynamoDB deletes expired items within a few days, so readers must
//!   still treat an item past its `expires_at` as gone where that matters.
//! - Billing mode PAY_PER_REQUEST.
//!
//! ## Mapping
//! Items are JSON objects. Strings are `S`, numbers `N` (written from the number's own decimal form, read back
//! as i64, then u64, then f64, so integers round-trip exactly), booleans `BOOL`, null `NULL`, arrays `L` and
//! objects `M`. Every expression names attributes through `ExpressionAttributeNames` and values through
//! `ExpressionAttributeValues`, never inline, so no attribute name can clash with a reserved word.
//!
//! A transaction of one write is a plain conditional `PutItem`/`UpdateItem`/`DeleteItem` (half the cost of a
//! transaction); a lone `Check` and every transaction of several writes go through `TransactWriteItems`.
//! The SDK fills in `ClientRequestToken`, so its own retries of a transaction are idempotent.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, PutRequest, ReturnValue,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Number, Value};

use super::LazyClient;
use crate::ports::store::{
    self, Condition, EXPIRES_AT, Index, Item, Key, PK, Page, Query, SK, SkRange, Store, StoreError, Write,
};

type Attributes = HashMap<String, AttributeValue>;

/// An attribute an empty `Update` removes: DynamoDB needs an update expression inside a transaction, and
/// removing an attribute no item has creates the missing item with its key only, as the port asks.
const NOOP_ATTRIBUTE: &str = "_omnichat_noop";

/// Rounds of `BatchGetItem` (and `BatchWriteItem`) before keys DynamoDB keeps leaving unprocessed are an
/// error.
const BATCH_GET_ATTEMPTS: u32 = 4;

/// Items one `BatchWriteItem` takes at most (DynamoDB's limit).
const BATCH_WRITE_MAX: usize = 25;

/// How long [`create_table`] waits for a new table to become active.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// The [`Store`] on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: LazyClient<Client>,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client: client.into(), table: table.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self { client: LazyClient::of(config, Client::new), table: table.into() }
    }

    pub fn client(&self) -> &Client {
        self.client.get()
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes `items` unconditionally with `BatchWriteItem`, 25 at a time; items DynamoDB leaves unprocessed
    /// are sent again a bounded number of times. Bulk loading only (a copy of another store into a fresh
    /// table): no conditions, no transaction, so nothing the use cases write goes this way.
    pub async fn put_items(&self, items: &[Item]) -> Result<(), StoreError> {
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk
                .iter()
                .map(|item| {
                    let put = PutRequest::builder()
                        .set_item(Some(to_attributes(item)))
                        .build()
                        .map_err(build_error)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            for attempt in 0..BATCH_GET_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                }
                let output = self
                    .client()
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|err| sdk_error("BatchWriteItem", err))?;
                pending =
                    output.unprocessed_items().and_then(|u| u.get(&self.table)).cloned().unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable(format!(
                    "BatchWriteItem left {} item(s) unprocessed after {BATCH_GET_ATTEMPTS} attempts",
                    pending.len()
                )));
            }
        }
        Ok(())
    }

    async fn write_one(&self, write: Prepared) -> Result<(), StoreError> {
        let Prepared { op, key, expression, condition } = write;
        let (names, values) = expression.into_parts();
        match op {
            Op::Put(item) => self
                .client()
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .set_condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .send()
                .await
                .map(drop)
                .map_err(|err| single_write_error("PutItem", err)),
            Op::Update(update) => self
                .client()
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .update_expression(update)
                .set_condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .send()
                .await
                .map(drop)
                .map_err(|err| single_write_error("UpdateItem", err)),
            Op::Delete => self
                .client()
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .set_condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .send()
                .await
                .map(drop)
                .map_err(|err| single_write_error("DeleteItem", err)),
            // A lone check has no single-item call of its own.
            Op::Check => {
                let item = transact_item(&self.table, Op::Check, key, condition, names, values)?;
                self.send_transaction(vec![item]).await
            }
        }
    }

    async fn send_transaction(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(drop)
            .map_err(transaction_error)
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let output = self
            .client()
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error("GetItem", err))?;
        output.item().map(from_attributes).transpose()
    }

    /// One `BatchGetItem` (consistent reads); keys DynamoDB leaves unprocessed are asked again, a bounded
    /// number of times with a short backoff.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        store::check_batch_get(keys)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: HashMap<Key, Item> = HashMap::with_capacity(keys.len());
        let mut pending: Vec<Attributes> = keys.iter().map(key_attributes).collect();
        for attempt in 0..BATCH_GET_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(build_error)?;
            let output = self
                .client()
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|err| sdk_error("BatchGetItem", err))?;
            for attributes in output.responses().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                let item = from_attributes(attributes)?;
                let key = item_key(&item)?;
                found.insert(key, item);
            }
            pending = output
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(keys.iter().map(|key| found.remove(key)).collect());
            }
        }
        Err(StoreError::Unavailable(format!(
            "BatchGetItem left {} key(s) unprocessed after {BATCH_GET_ATTEMPTS} attempts",
            pending.len()
        )))
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        store::check_transaction(&writes)?;
        let mut prepared = writes.iter().map(prepare).collect::<Result<Vec<_>, _>>()?;
        if prepared.len() == 1 {
            return self.write_one(prepared.remove(0)).await;
        }
        let items = prepared
            .into_iter()
            .map(|write| {
                let Prepared { op, key, expression, condition } = write;
                let (names, values) = expression.into_parts();
                transact_item(&self.table, op, key, condition, names, values)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.send_transaction(items).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let (pk_attr, sk_attr) = match query.index {
            Some(index) => (index.pk_attr(), index.sk_attr()),
            None => (PK, SK),
        };
        let mut expression = Expression::default();
        let mut key_condition = format!(
            "{} = {}",
            expression.name(pk_attr),
            expression.value(AttributeValue::S(query.pk.clone()))
        );
        match &query.range {
            SkRange::All => {}
            // DynamoDB refuses an empty operand; every sort key begins with "".
            SkRange::BeginsWith(prefix) if prefix.is_empty() => {}
            SkRange::BeginsWith(prefix) => {
                let (name, value) =
                    (expression.name(sk_attr), expression.value(AttributeValue::S(prefix.clone())));
                let _ = write!(key_condition, " AND begins_with({name}, {value})");
            }
            // DynamoDB refuses BETWEEN with its bounds the wrong way round; the range is simply empty.
            SkRange::Between(low, high) if low > high => return Ok(Page::default()),
            SkRange::Between(low, high) => {
                let name = expression.name(sk_attr);
                let low = expression.value(AttributeValue::S(low.clone()));
                let high = expression.value(AttributeValue::S(high.clone()));
                let _ = write!(key_condition, " AND {name} BETWEEN {low} AND {high}");
            }
            SkRange::AtMost(high) => {
                let (name, value) =
                    (expression.name(sk_attr), expression.value(AttributeValue::S(high.clone())));
                let _ = write!(key_condition, " AND {name} <= {value}");
            }
        }
        let start = query.after.as_deref().map(|token| decode_page_token(token, query)).transpose()?;
        let limit = query.limit.max(1);
        // One item more than asked tells whether another page exists, so `next` is `None` at the end
        // instead of pointing at an empty page.
        let request_limit = i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX);
        let (names, values) = expression.into_parts();
        let mut request = self
            .client()
            .query()
            .table_name(&self.table)
            .key_condition_expression(key_condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .scan_index_forward(!query.descending)
            .limit(request_limit)
            .set_exclusive_start_key(start);
        request = match query.index {
            Some(index) => request.index_name(index.name()),
            None => request.consistent_read(true),
        };
        let output = request.send().await.map_err(|err| sdk_error("Query", err))?;
        let mut items = output.items().iter().map(from_attributes).collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            let last = items.last().expect("a full page");
            Some(encode_page_token(&page_key_of(last, query.index)?))
        } else {
            // DynamoDB also stops at 1 MB of data: then it says where to go on.
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => Some(encode_page_token(&from_attributes(key)?)),
                _ => None,
            }
        };
        Ok(Page { items, next })
    }

    async fn increment(&self, key: &Key, attribute: &str, by: i64) -> Result<i64, StoreError> {
        if attribute == PK || attribute == SK {
            return Err(StoreError::Invalid("the key attributes cannot be incremented".into()));
        }
        let mut expression = Expression::default();
        let update = format!(
            "ADD {} {}",
            expression.name(attribute),
            expression.value(AttributeValue::N(by.to_string()))
        );
        let (names, values) = expression.into_parts();
        let output = self
            .client()
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .update_expression(update)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|err| sdk_error("UpdateItem", err))?;
        match output.attributes().and_then(|attributes| attributes.get(attribute)) {
            Some(AttributeValue::N(number)) => number.parse::<i64>().map_err(|_| {
                StoreError::Unavailable("DynamoDB UpdateItem answered a counter that is not an i64".into())
            }),
            _ => Err(StoreError::Unavailable("DynamoDB UpdateItem answered without the counter".into())),
        }
    }
}

/// Creates the table as `template.yaml` declares it (see the module's doc) and waits until it is active.
/// For tests and local use against moto; in AWS the stack owns the table.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let key_attributes = [PK, SK]
        .into_iter()
        .chain(Index::ALL.into_iter().flat_map(|index| [index.pk_attr(), index.sk_attr()]));
    let definitions = key_attributes
        .map(|attribute| {
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::S)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(build_error)?;
    let indexes = Index::ALL
        .into_iter()
        .map(|index| {
            GlobalSecondaryIndex::builder()
                .index_name(index.name())
                .set_key_schema(Some(key_schema(index.pk_attr(), index.sk_attr())?))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(build_error)?;
    client
        .create_table()
        .table_name(name)
        .set_attribute_definitions(Some(definitions))
        .set_key_schema(Some(key_schema(PK, SK).map_err(build_error)?))
        .set_global_secondary_indexes(Some(indexes))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|err| sdk_error("CreateTable", err))?;

    let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|err| sdk_error("DescribeTable", err))?;
        if described.table().and_then(|table| table.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!("table {name} did not become active")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(EXPIRES_AT)
        .enabled(true)
        .build()
        .map_err(build_error)?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|err| sdk_error("UpdateTimeToLive", err))?;
    Ok(())
}

fn key_schema(hash: &str, range: &str) -> Result<Vec<KeySchemaElement>, BuildError> {
    Ok(vec![
        KeySchemaElement::builder().attribute_name(hash).key_type(KeyType::Hash).build()?,
        KeySchemaElement::builder().attribute_name(range).key_type(KeyType::Range).build()?,
    ])
}

// ---------------------------------------------------------------------------------------------------------
// Writes

/// One write translated to DynamoDB's terms, ready for a single call or a transaction.
struct Prepared {
    op: Op,
    key: Attributes,
    expression: Expression,
    condition: Option<String>,
}

enum Op {
    Put(Attributes),
    /// The update expression.
    Update(String),
    Delete,
    Check,
}

fn prepare(write: &Write) -> Result<Prepared, StoreError> {
    let key = write.key().ok_or_else(|| StoreError::Invalid("an item without pk/sk".into()))?;
    let mut expression = Expression::default();
    let op = match write {
        Write::Put { item, .. } => Op::Put(to_attributes(item)),
        Write::Update { key, set, remove, .. } => {
            Op::Update(update_expression(&mut expression, key, set, remove)?)
        }
        Write::Delete { .. } => Op::Delete,
        Write::Check { .. } => Op::Check,
    };
    let condition = match (expression.condition(write.condition()), &op) {
        // A ConditionCheck needs an expression: one that always holds.
        (None, Op::Check) => {
            let pk = expression.name(PK);
            Some(format!("attribute_exists({pk}) OR attribute_not_exists({pk})"))
        }
        (condition, _) => condition,
    };
    Ok(Prepared { op, key: key_attributes(&key), expression, condition })
}

fn update_expression(
    expression: &mut Expression,
    key: &Key,
    set: &Item,
    remove: &[String],
) -> Result<String, StoreError> {
    let mut assignments = Vec::with_capacity(set.len());
    for (attribute, value) in set {
        // The key may be repeated in `set` as it is; it cannot be changed.
        let key_part = match attribute.as_str() {
            PK => Some(&key.pk),
            SK => Some(&key.sk),
            _ => None,
        };
        if let Some(key_part) = key_part {
            if value.as_str() == Some(key_part.as_str()) {
                continue;
            }
            return Err(StoreError::Invalid(format!("an update cannot change {attribute}")));
        }
        if remove.contains(attribute) {
            return Err(StoreError::Invalid(format!("an update both sets and removes {attribute}")));
        }
        assignments.push(format!(
            "{} = {}",
            expression.name(attribute),
            expression.value(to_attribute(value))
        ));
    }
    let mut removals = Vec::with_capacity(remove.len());
    for attribute in remove {
        if attribute == PK || attribute == SK {
            return Err(StoreError::Invalid(format!("an update cannot remove {attribute}")));
        }
        let name = expression.name(attribute);
        // DynamoDB refuses a path named twice.
        if !removals.contains(&name) {
            removals.push(name);
        }
    }
    if assignments.is_empty() && removals.is_empty() {
        removals.push(expression.name(NOOP_ATTRIBUTE));
    }
    let mut update = String::new();
    if !assignments.is_empty() {
        update.push_str("SET ");
        update.push_str(&assignments.join(", "));
    }
    if !removals.is_empty() {
        if !update.is_empty() {
            update.push(' ');
        }
        update.push_str("REMOVE ");
        update.push_str(&removals.join(", "));
    }
    Ok(update)
}

fn transact_item(
    table: &str,
    op: Op,
    key: Attributes,
    condition: Option<String>,
    names: Option<HashMap<String, String>>,
    values: Option<Attributes>,
) -> Result<TransactWriteItem, StoreError> {
    let item = match op {
        Op::Put(item) => TransactWriteItem::builder().put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .set_condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build()
                .map_err(build_error)?,
        ),
        Op::Update(update) => TransactWriteItem::builder().update(
            Update::builder()
                .table_name(table)
                .set_key(Some(key))
                .update_expression(update)
                .set_condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build()
                .map_err(build_error)?,
        ),
        Op::Delete => TransactWriteItem::builder().delete(
            Delete::builder()
                .table_name(table)
                .set_key(Some(key))
                .set_condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build()
                .map_err(build_error)?,
        ),
        Op::Check => TransactWriteItem::builder().condition_check(
            ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(key))
                .set_condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build()
                .map_err(build_error)?,
        ),
    };
    Ok(item.build())
}

/// The placeholders of one request's expressions.
#[derive(Default)]
struct Expression {
    names: HashMap<String, String>,
    placeholders: HashMap<String, String>,
    values: Attributes,
}

impl Expression {
    /// The placeholder of an attribute name (`#n0`...), the same one each time it is asked.
    fn name(&mut self, attribute: &str) -> String {
        if let Some(placeholder) = self.placeholders.get(attribute) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), attribute.to_owned());
        self.placeholders.insert(attribute.to_owned(), placeholder.clone());
        placeholder
    }

    /// A fresh placeholder for a value (`:v0`...).
    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn condition(&mut self, condition: &Condition) -> Option<String> {
        match condition {
            Condition::Always => None,
            Condition::NotExists => Some(format!("attribute_not_exists({})", self.name(PK))),
            Condition::Exists => Some(format!("attribute_exists({})", self.name(PK))),
            Condition::Equals(attribute, value) => {
                Some(format!("{} = {}", self.name(attribute), self.value(to_attribute(value))))
            }
            Condition::Lacks(attribute) => Some(format!("attribute_not_exists({})", self.name(attribute))),
            Condition::All(conditions) => {
                let parts: Vec<String> =
                    conditions.iter().filter_map(|condition| self.condition(condition)).collect();
                match parts.len() {
                    0 => None,
                    1 => parts.into_iter().next(),
                    _ => Some(parts.iter().map(|part| format!("({part})")).collect::<Vec<_>>().join(" AND ")),
                }
            }
        }
    }

    /// The maps to send: DynamoDB refuses empty ones.
    fn into_parts(self) -> (Option<HashMap<String, String>>, Option<Attributes>) {
        let names = (!self.names.is_empty()).then_some(self.names);
        let values = (!self.values.is_empty()).then_some(self.values);
        (names, values)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Errors

/// A single conditional write: a failed condition is a conflict at position 0.
fn single_write_error<E>(operation: &str, err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if err.code() == Some("ConditionalCheckFailedException") {
        return StoreError::Conflict { failed: vec![0] };
    }
    sdk_error(operation, err)
}

fn transaction_error(err: SdkError<TransactWriteItemsError>) -> StoreError {
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() {
        let mut codes: Vec<String> = cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().unwrap_or("None").to_owned())
            .collect();
        if codes.is_empty() {
            codes = codes_from_message(cancelled.message().unwrap_or_default());
        }
        return cancellation_error(&codes);
    }
    sdk_error("TransactWriteItems", err)
}

/// What a cancelled transaction means, from its cancellation reasons (one code per write, in order).
fn cancellation_error(codes: &[String]) -> StoreError {
    let failed: Vec<usize> = codes
        .iter()
        .enumerate()
        .filter(|(_, code)| code.as_str() == "ConditionalCheckFailed")
        .map(|(index, _)| index)
        .collect();
    if !failed.is_empty() {
        return StoreError::Conflict { failed };
    }
    let reasons: Vec<&str> = codes.iter().map(String::as_str).filter(|code| *code != "None").collect();
    if reasons.contains(&"ValidationError") {
        return StoreError::Invalid("DynamoDB TransactWriteItems: a write was refused as invalid".into());
    }
    StoreError::Unavailable(format!("DynamoDB TransactWriteItems cancelled: {}", reasons.join(", ")))
}

/// The codes DynamoDB also lists in the message ("... specific reasons [None, ConditionalCheckFailed]"),
/// in case the structured reasons are missing.
fn codes_from_message(message: &str) -> Vec<String> {
    let Some(list) =
        message.rsplit_once('[').and_then(|(_, rest)| rest.split_once(']')).map(|(list, _)| list)
    else {
        return Vec::new();
    };
    list.split(',').map(|code| code.trim().to_owned()).filter(|code| !code.is_empty()).collect()
}

/// Any other failure of a call. A `ValidationException` is a request DynamoDB will never accept; the rest
/// is worth retrying. Only the error's code and DynamoDB's message are kept: no request content.
fn sdk_error<E>(operation: &str, err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err.as_service_error() {
        Some(service) => {
            let code = service.code().unwrap_or("UnknownError");
            let message = service.message().unwrap_or_default();
            if code == "ValidationException" {
                StoreError::Invalid(format!("DynamoDB {operation} refused the request: {message}"))
            } else {
                StoreError::Unavailable(format!("DynamoDB {operation}: {code}: {message}"))
            }
        }
        None => StoreError::Unavailable(format!("DynamoDB {operation}: {}", DisplayErrorContext(&err))),
    }
}

fn build_error(err: BuildError) -> StoreError {
    StoreError::Invalid(format!("DynamoDB request: {err}"))
}

// ---------------------------------------------------------------------------------------------------------
// Page tokens: base64url of the JSON of the key to start after.

fn encode_page_token(key: &Item) -> String {
    URL_SAFE_NO_PAD.encode(Value::Object(key.clone()).to_string())
}

/// The key attributes a query on `index` goes on after: the table's key, plus the index's for an index.
fn page_key_attributes(index: Option<Index>) -> Vec<&'static str> {
    let mut attributes = vec![PK, SK];
    if let Some(index) = index {
        attributes.extend([index.pk_attr(), index.sk_attr()]);
    }
    attributes
}

fn page_key_of(item: &Item, index: Option<Index>) -> Result<Item, StoreError> {
    page_key_attributes(index)
        .into_iter()
        .map(|attribute| match item.get(attribute) {
            Some(value @ Value::String(_)) => Ok((attribute.to_owned(), value.clone())),
            _ => Err(StoreError::Unavailable(format!("DynamoDB Query answered an item without {attribute}"))),
        })
        .collect()
}

fn decode_page_token(token: &str, query: &Query) -> Result<Attributes, StoreError> {
    let invalid = || StoreError::Invalid("a page token that does not belong to this query".into());
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let key: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let expected = page_key_attributes(query.index);
    if key.len() != expected.len()
        || !expected.iter().all(|attribute| key.get(*attribute).is_some_and(Value::is_string))
    {
        return Err(invalid());
    }
    let partition = query.index.map_or(PK, Index::pk_attr);
    if key.get(partition).and_then(Value::as_str) != Some(query.pk.as_str()) {
        return Err(invalid());
    }
    Ok(to_attributes(&key))
}

// ---------------------------------------------------------------------------------------------------------
// JSON ⇄ AttributeValue

fn key_attributes(key: &Key) -> Attributes {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

fn to_attributes(item: &Item) -> Attributes {
    item.iter().map(|(name, value)| (name.clone(), to_attribute(value))).collect()
}

fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(boolean) => AttributeValue::Bool(*boolean),
        // The number's own decimal form: i64 and u64 stay exact (DynamoDB keeps 38 digits).
        Value::Number(number) => AttributeValue::N(number.to_string()),
        Value::String(string) => AttributeValue::S(string.clone()),
        Value::Array(values) => AttributeValue::L(values.iter().map(to_attribute).collect()),
        Value::Object(object) => AttributeValue::M(to_attributes(object)),
    }
}

/// The key of an item DynamoDB returned.
fn item_key(item: &Item) -> Result<Key, StoreError> {
    let part = |name: &str| item.get(name).and_then(Value::as_str).map(str::to_owned);
    match (part(PK), part(SK)) {
        (Some(pk), Some(sk)) => Ok(Key::new(pk, sk)),
        _ => Err(StoreError::Unavailable("an item came back without its pk/sk".into())),
    }
}

fn from_attributes(attributes: &Attributes) -> Result<Item, StoreError> {
    attributes.iter().map(|(name, value)| Ok((name.clone(), from_attribute(value)?))).collect()
}

fn from_attribute(value: &AttributeValue) -> Result<Value, StoreError> {
    Ok(match value {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(boolean) => Value::Bool(*boolean),
        AttributeValue::N(number) => Value::Number(parse_number(number)?),
        AttributeValue::S(string) => Value::String(string.clone()),
        AttributeValue::L(values) => {
            Value::Array(values.iter().map(from_attribute).collect::<Result<_, _>>()?)
        }
        AttributeValue::M(object) => Value::Object(from_attributes(object)?),
        // Never written by this adapter; read sensibly should someone else write them.
        AttributeValue::Ss(strings) => Value::Array(strings.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(numbers) => Value::Array(
            numbers.iter().map(|number| parse_number(number).map(Value::Number)).collect::<Result<_, _>>()?,
        ),
        AttributeValue::B(blob) => Value::String(URL_SAFE_NO_PAD.encode(blob.as_ref())),
        AttributeValue::Bs(blobs) => Value::Array(
            blobs.iter().map(|blob| Value::String(URL_SAFE_NO_PAD.encode(blob.as_ref()))).collect(),
        ),
        _ => return Err(StoreError::Unavailable("DynamoDB answered an attribute of an unknown type".into())),
    })
}

fn parse_number(number: &str) -> Result<Number, StoreError> {
    if let Ok(integer) = number.parse::<i64>() {
        return Ok(integer.into());
    }
    if let Ok(integer) = number.parse::<u64>() {
        return Ok(integer.into());
    }
    number
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or_else(|| StoreError::Unavailable("DynamoDB answered a number out of range".into()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(value: Value) -> Item {
        value.as_object().expect("an object").clone()
    }

    #[test]
    fn json_round_trips_through_attribute_values() {
        let original = item(json!({
            "pk": "T#1", "sk": "C#2",
            "small": -42, "big": u64::MAX, "min": i64::MIN, "float": 1.5, "tiny": 1e-7,
            "yes": true, "nothing": null, "empty": "",
            "list": [1, "two", [3.25], {"four": 4}], "map": {"nested": {"deep": [true, null]}}, "none": [],
        }));
        let attributes = to_attributes(&original);
        assert_eq!(attributes["big"], AttributeValue::N("18446744073709551615".into()));
        assert_eq!(attributes["min"], AttributeValue::N("-9223372036854775808".into()));
        assert_eq!(attributes["nothing"], AttributeValue::Null(true));
        assert_eq!(from_attributes(&attributes).unwrap(), original);
    }

    #[test]
    fn reads_numbers_as_dynamodb_normalises_them() {
        assert_eq!(parse_number("1E+2").unwrap().as_f64(), Some(100.0));
        assert_eq!(parse_number("7").unwrap().as_i64(), Some(7));
        assert!(parse_number("not a number").is_err());
    }

    #[test]
    fn update_expression_names_everything_through_placeholders() {
        let mut expression = Expression::default();
        let key = Key::new("T#1", "D#1");
        let set = item(json!({"pk": "T#1", "status": "open", "count": 2}));
        let update = update_expression(&mut expression, &key, &set, &["due".to_owned()]).unwrap();
        assert_eq!(update, "SET #n0 = :v0, #n1 = :v1 REMOVE #n2");
        assert_eq!(expression.names.len(), 3);
        assert!(!update.contains("status"));

        let set = item(json!({"sk": "other"}));
        assert!(matches!(
            update_expression(&mut Expression::default(), &key, &set, &[]),
            Err(StoreError::Invalid(_))
        ));
        let set = item(json!({"a": 1}));
        let both = update_expression(&mut Expression::default(), &key, &set, &["a".to_owned()]);
        assert!(matches!(both, Err(StoreError::Invalid(_))));
        let empty = update_expression(&mut Expression::default(), &key, &Item::new(), &[]).unwrap();
        assert_eq!(empty, "REMOVE #n0");
    }

    #[test]
    fn conditions_reuse_name_placeholders() {
        let mut expression = Expression::default();
        assert_eq!(expression.condition(&Condition::Always), None);
        assert_eq!(expression.condition(&Condition::NotExists).unwrap(), "attribute_not_exists(#n0)");
        assert_eq!(expression.condition(&Condition::Exists).unwrap(), "attribute_exists(#n0)");
        let equals = expression.condition(&Condition::Equals("state".into(), json!("open"))).unwrap();
        assert_eq!(equals, "#n1 = :v0");
        assert_eq!(expression.names["#n1"], "state");
        assert_eq!(expression.values[":v0"], AttributeValue::S("open".into()));
        let all = Condition::All(vec![
            Condition::Equals("state".into(), json!("open")),
            Condition::Always,
            Condition::Equals("seen".into(), json!(2)),
        ]);
        assert_eq!(expression.condition(&all).unwrap(), "(#n1 = :v1) AND (#n2 = :v2)");
        assert_eq!(expression.condition(&Condition::All(vec![Condition::Always])), None);
        let lacks = expression.condition(&Condition::Lacks("seen".into())).unwrap();
        assert_eq!(lacks, "attribute_not_exists(#n2)");
    }

    #[test]
    fn cancellation_lists_every_failed_condition() {
        let codes = |list: &[&str]| list.iter().map(|code| (*code).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            cancellation_error(&codes(&["None", "ConditionalCheckFailed", "ConditionalCheckFailed"])),
            StoreError::Conflict { failed: vec![1, 2] }
        );
        assert!(matches!(
            cancellation_error(&codes(&["None", "TransactionConflict"])),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            cancellation_error(&codes(&["ThrottlingError", "None"])),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(cancellation_error(&codes(&["ValidationError"])), StoreError::Invalid(_)));
        let message = "Transaction cancelled, please refer cancellation reasons for specific reasons \
                       [None, ConditionalCheckFailed]";
        assert_eq!(codes_from_message(message), codes(&["None", "ConditionalCheckFailed"]));
        assert!(codes_from_message("no list").is_empty());
    }

    #[test]
    fn page_tokens_belong_to_their_query() {
        let query = Query::index(Index::Gsi1, "DUE#1");
        let key = item(json!({"pk": "a", "sk": "b", "gsi1pk": "DUE#1", "gsi1sk": "2025"}));
        let token = encode_page_token(&key);
        assert_eq!(decode_page_token(&token, &query).unwrap(), to_attributes(&key));
        let other_partition = Query::index(Index::Gsi1, "DUE#2");
        assert!(matches!(decode_page_token(&token, &other_partition), Err(StoreError::Invalid(_))));
        assert!(matches!(decode_page_token(&token, &Query::table("a")), Err(StoreError::Invalid(_))));
        assert!(matches!(decode_page_token("%%%", &query), Err(StoreError::Invalid(_))));
        let not_json = URL_SAFE_NO_PAD.encode("[1]");
        assert!(matches!(decode_page_token(&not_json, &query), Err(StoreError::Invalid(_))));
    }
}
