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

/// Whether `event` is an SQS event (it has `Records`).
pub fn is_sqs_event(event: &Value) -> bool {
    event.get("Records").is_some()
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
