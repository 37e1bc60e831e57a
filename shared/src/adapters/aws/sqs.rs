//! The SQS adapter of the [`WorkQueue`] port: one message per work item ([`Work::to_body`]) on one standard
//! queue, which a Lambda event source drains (template.yaml's mailbox poll queue).
//!
//! `SendMessageBatch` takes at most 10 entries and may accept some of them only: every answer is checked,
//! and the entries it does not name as sent are sent again, at most [`RETRIES`] more times with a short
//! backoff, except those refused as the sender's fault (they would be refused again); what is left counts
//! as refused. Resending an entry SQS may have taken after all is harmless: work items may arrive twice.
//! Batches go out [`SEND_CONCURRENCY`] at a time, so 100,000 items are ~10,000 calls in seconds, not minutes.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry};
use futures::StreamExt;

use super::LazyClient;
use crate::ports::work::{Work, WorkError, WorkQueue};

/// The most entries one `SendMessageBatch` (or `DeleteMessageBatch`) call takes.
const MAX_ENTRIES_PER_CALL: usize = 10;
/// Batch calls in flight at once, unless set otherwise ([`SqsWorkQueue::with_send_concurrency`]).
const SEND_CONCURRENCY: usize = 16;
/// How many more times unsent entries are sent, and the wait before the first resend (doubled after).
const RETRIES: u32 = 2;
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// The [`WorkQueue`] on one SQS queue.
#[derive(Debug, Clone)]
pub struct SqsWorkQueue {
    client: LazyClient<Client>,
    queue_url: String,
    send_concurrency: usize,
}

/// One message as a consumer received it (for tests and benchmarks: on AWS the Lambda event source
/// receives and deletes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
}

/// One entry of a batch: its id in the call and its body.
type Entry = (String, String);

impl SqsWorkQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client: client.into(), queue_url: queue_url.into(), send_concurrency: SEND_CONCURRENCY }
    }

    /// At most `calls` batch calls in flight (at least 1). For moto, which serves one call at a time and
    /// slows with the queue's depth: 16 waiting calls there outlast the SDK's time-out.
    pub fn with_send_concurrency(mut self, calls: usize) -> Self {
        self.send_concurrency = calls.max(1);
        self
    }

    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self {
            client: LazyClient::of(config, Client::new),
            queue_url: queue_url.into(),
            send_concurrency: SEND_CONCURRENCY,
        }
    }

    pub fn client(&self) -> &Client {
        self.client.get()
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Up to 10 messages, waiting up to `wait` for the first (long polling); each stays invisible to other
    /// consumers for the queue's visibility timeout unless deleted.
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, WorkError> {
        let max = i32::try_from(max.clamp(1, MAX_ENTRIES_PER_CALL)).unwrap_or(1);
        let wait = i32::try_from(wait.as_secs().min(20)).unwrap_or(20);
        let output = self
            .client()
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait)
            .send()
            .await
            .map_err(|err| sdk_error("ReceiveMessage", err))?;
        Ok(output
            .messages()
            .iter()
            .filter_map(|message| {
                Some(Received {
                    message_id: message.message_id()?.to_owned(),
                    receipt_handle: message.receipt_handle()?.to_owned(),
                    body: message.body().unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }

    /// Deletes received messages (done with), 10 per call.
    pub async fn delete(&self, received: &[Received]) -> Result<(), WorkError> {
        for chunk in received.chunks(MAX_ENTRIES_PER_CALL) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, message)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(&message.receipt_handle)
                        .build()
                        .map_err(|err| WorkError::Unavailable(format!("SQS DeleteMessageBatch entry: {err}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client()
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|err| sdk_error("DeleteMessageBatch", err))?;
            if let Some(failed) = output.failed().first() {
                return Err(WorkError::Unavailable(format!(
                    "SQS DeleteMessageBatch: {} of {} not deleted: {}",
                    output.failed().len(),
                    chunk.len(),
                    failed.code()
                )));
            }
        }
        Ok(())
    }

    /// Sends one batch of at most 10 items, resending what the answers do not name as sent; answers how many
    /// were refused in the end, and why the first of them was.
    async fn send_batch(&self, chunk: &[Work]) -> (usize, Option<String>) {
        let mut pending: Vec<Entry> =
            chunk.iter().enumerate().map(|(index, work)| (index.to_string(), work.to_body())).collect();
        let mut refused = 0;
        let mut first_reason = None;
        let mut attempt = 0;
        loop {
            let output = match self.send_entries(&pending).await {
                Ok(output) => output,
                // The SDK retried the call itself (3 attempts): the whole batch is refused.
                Err(error) => {
                    first_reason.get_or_insert(error.to_string());
                    return (refused + pending.len(), first_reason);
                }
            };
            let outcome = unsent(&pending, &output);
            refused += outcome.refused;
            if let Some(reason) = outcome.reason {
                first_reason.get_or_insert(reason);
            }
            if outcome.resend.is_empty() {
                return (refused, first_reason);
            }
            if attempt >= RETRIES {
                first_reason.get_or_insert_with(|| "SQS did not take every entry".to_owned());
                return (refused + outcome.resend.len(), first_reason);
            }
            tracing::warn!(
                unsent = outcome.resend.len(),
                attempt,
                "SQS did not take every work item; resending"
            );
            tokio::time::sleep(RETRY_BACKOFF * 2u32.pow(attempt)).await;
            attempt += 1;
            pending = outcome.resend;
        }
    }

    async fn send_entries(&self, pending: &[Entry]) -> Result<SendMessageBatchOutput, WorkError> {
        let entries = pending
            .iter()
            .map(|(id, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(id)
                    .message_body(body)
                    .build()
                    .map_err(|err| WorkError::Unavailable(format!("SQS SendMessageBatch entry: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.client()
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| sdk_error("SendMessageBatch", err))
    }
}

#[async_trait]
impl WorkQueue for SqsWorkQueue {
    /// Sends every batch even when one is partly refused, so as many items as possible go out, then answers
    /// how many were refused in all (after the retries).
    async fn enqueue(&self, work: &[Work]) -> Result<(), WorkError> {
        // The futures made first (not in the stream's closure), which keeps the `async_trait` future `Send`.
        let sends: Vec<_> = work.chunks(MAX_ENTRIES_PER_CALL).map(|chunk| self.send_batch(chunk)).collect();
        let mut batches = futures::stream::iter(sends).buffer_unordered(self.send_concurrency);
        let mut failed = 0;
        let mut first_reason = None;
        while let Some((refused, reason)) = batches.next().await {
            failed += refused;
            if let Some(reason) = reason {
                first_reason.get_or_insert(reason);
            }
        }
        if failed == 0 {
            return Ok(());
        }
        let reason = first_reason.unwrap_or_else(|| "SQS gave no reason".to_owned());
        Err(WorkError::Rejected { failed, total: work.len(), reason })
    }

    async fn waiting(&self) -> Result<usize, WorkError> {
        let output = self
            .client()
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|err| sdk_error("GetQueueAttributes", err))?;
        let count = output
            .attributes()
            .and_then(|attributes| attributes.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|count| count.parse().ok())
            .unwrap_or(0);
        Ok(count)
    }
}

/// What one `SendMessageBatch` answer leaves to do.
#[derive(Debug, Default, PartialEq, Eq)]
struct Unsent {
    /// Entries to send again: not named as sent, and not refused as the sender's fault.
    resend: Vec<Entry>,
    /// Entries refused as the sender's fault.
    refused: usize,
    /// Why the first failed entry failed.
    reason: Option<String>,
}

fn unsent(pending: &[Entry], output: &SendMessageBatchOutput) -> Unsent {
    let sent: HashSet<&str> = output.successful().iter().map(|entry| entry.id()).collect();
    let senders_fault: HashSet<&str> =
        output.failed().iter().filter(|entry| entry.sender_fault()).map(|entry| entry.id()).collect();
    let reason = output
        .failed()
        .first()
        .map(|entry| format!("{}: {}", entry.code(), entry.message().unwrap_or("no message")));
    let mut outcome = Unsent { reason, ..Unsent::default() };
    for entry in pending {
        if senders_fault.contains(entry.0.as_str()) {
            outcome.refused += 1;
        } else if !sent.contains(entry.0.as_str()) {
            outcome.resend.push(entry.clone());
        }
    }
    outcome
}

/// Creates a standard queue and answers its URL: for tests and benchmarks against moto; in AWS the stack
/// owns the queue.
pub async fn create_queue(client: &Client, name: &str) -> Result<String, WorkError> {
    let output =
        client.create_queue().queue_name(name).send().await.map_err(|err| sdk_error("CreateQueue", err))?;
    output
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| WorkError::Unavailable("SQS CreateQueue answered no queue URL".into()))
}

fn sdk_error<E>(operation: &str, err: SdkError<E>) -> WorkError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err.as_service_error() {
        Some(service) => WorkError::Unavailable(format!(
            "SQS {operation}: {}: {}",
            service.code().unwrap_or("UnknownError"),
            service.message().unwrap_or_default()
        )),
        None => WorkError::Unavailable(format!("SQS {operation}: {}", DisplayErrorContext(&err))),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};

    use super::*;

    fn entries(ids: &[&str]) -> Vec<Entry> {
        ids.iter().map(|id| ((*id).to_owned(), format!("body {id}"))).collect()
    }

    fn sent(id: &str) -> SendMessageBatchResultEntry {
        SendMessageBatchResultEntry::builder()
            .id(id)
            .message_id(format!("m-{id}"))
            .md5_of_message_body("x")
            .build()
            .expect("entry")
    }

    fn failed(id: &str, code: &str, senders_fault: bool) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .code(code)
            .sender_fault(senders_fault)
            .message("try later")
            .build()
            .expect("entry")
    }

    fn output(sent_ids: &[&str], failures: Vec<BatchResultErrorEntry>) -> SendMessageBatchOutput {
        // Both lists are required, empty or not (what SQS answers).
        let mut builder =
            SendMessageBatchOutput::builder().set_successful(Some(Vec::new())).set_failed(Some(Vec::new()));
        for id in sent_ids {
            builder = builder.successful(sent(id));
        }
        for failure in failures {
            builder = builder.failed(failure);
        }
        builder.build().expect("output")
    }

    #[test]
    fn an_answer_that_sent_everything_leaves_nothing() {
        let pending = entries(&["0", "1", "2"]);
        assert_eq!(unsent(&pending, &output(&["0", "1", "2"], vec![])), Unsent::default());
    }

    #[test]
    fn only_the_entries_sqs_failed_on_its_side_are_sent_again() {
        let pending = entries(&["0", "1", "2", "3"]);
        let answer = output(
            &["1"],
            vec![failed("0", "InternalError", false), failed("2", "InvalidMessageContents", true)],
        );
        let outcome = unsent(&pending, &answer);
        // "3" is named nowhere: sent again (a duplicate work item is harmless, a lost one waits a round).
        assert_eq!(outcome.resend, entries(&["0", "3"]));
        assert_eq!(outcome.refused, 1);
        assert_eq!(outcome.reason.as_deref(), Some("InternalError: try later"));
    }
}
