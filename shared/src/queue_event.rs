//! A Lambda's SQS event of work items (the mailbox poll queue's, the media queue's): every record's item
//! run at once (`scheduled::run_work`), and the records worth a retry named in `batchItemFailures` (the
//! store, secret store or bus failed; a body that is no work item; an item cut off at the invocation's
//! deadline). Only those come back (ReportBatchItemFailures), up to the queue's maxReceiveCount, then land
//! in its dead-letter queue.

use std::time::Instant;

use futures::future::join_all;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::deadline;
use crate::ports::work::Work;
use crate::usecases::{Context, scheduled};

/// Lambda's SQS event, as far as it is read here.
#[derive(Debug, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SqsRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    pub message_id: String,
    #[serde(default)]
    pub body: String,
}

/// What a function fed by a queue and a schedule was handed.
#[derive(Debug)]
pub enum Invocation {
    /// The queue's records.
    Records(SqsEvent),
    /// The schedule's `Scheduled Event` (source `aws.events`).
    Scheduled,
    /// Anything else, by its `detail-type`: a rule or mapping delivering more than it should is a template
    /// mistake, not worth Lambda's retries, so it is logged and answered, not failed.
    Ignored(String),
}

/// Reads an invocation's event; an SQS event that is not readable is refused with the reason.
pub fn classify(event: Value, function: &str) -> Result<Invocation, String> {
    if event.get("Records").is_some() {
        return serde_json::from_value(event).map(Invocation::Records).map_err(|error| error.to_string());
    }
    let source = event.get("source").and_then(Value::as_str).unwrap_or_default();
    let detail_type = event.get("detail-type").and_then(Value::as_str).unwrap_or_default();
    if (source, detail_type) == ("aws.events", "Scheduled Event") {
        return Ok(Invocation::Scheduled);
    }
    tracing::warn!(source, detail_type, function, "not an event this function handles; ignored");
    Ok(Invocation::Ignored(detail_type.to_owned()))
}

/// Runs every record's work item within the invocation (`deadline`) and answers
/// `{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}`.
pub async fn run_records(ctx: &Context, event: SqsEvent, deadline: Option<Instant>) -> Value {
    let until = scheduled::stop_taking_work_at(deadline);
    let items = event.records.into_iter().map(|record| async move {
        let done = match Work::from_body(&record.body) {
            Err(error) => {
                tracing::error!(%error, message_id = %record.message_id, "a queued item that is no work item");
                false
            }
            Ok(work) => match deadline::within(deadline, scheduled::run_work(ctx, &work, until)).await {
                Ok(Ok(())) => true,
                Ok(Err(error)) => {
                    tracing::warn!(%error, work = %work.key(), "work item failed; SQS delivers it again");
                    false
                }
                Err(gave_up) => {
                    tracing::warn!(%gave_up, work = %work.key(), "work item cut off at the invocation's deadline");
                    false
                }
            },
        };
        (!done).then_some(record.message_id)
    });
    let failures: Vec<Value> =
        join_all(items).await.into_iter().flatten().map(|id| json!({"itemIdentifier": id})).collect();
    json!({"batchItemFailures": failures})
}
