//! The e-mail poller Lambda's handler, separate from `main` so tests feed it the events Lambda delivers.
//!
//! - The schedule's `Scheduled Event` (source `aws.events`, every minute): hands out one poll item per
//!   e-mail channel onto the mailbox poll queue (`scheduled::dispatch_mailbox_polls`). A failure is
//!   answered as an error; the next minute's run hands everything out again.
//! - An SQS event (`Records[]`, `eventSource` `aws:sqs`, from the queue's event source mapping): polls the
//!   mailbox of each record, all records at once (`scheduled::run_work`), and names in `batchItemFailures`
//!   the records worth a retry (the store, secret store or bus failed; a body that is no work item; a poll
//!   cut off at the invocation's deadline). Only those come back (ReportBatchItemFailures), up to the
//!   queue's maxReceiveCount, then land in its dead-letter queue. A mailbox's own trouble (IMAP refusing
//!   the login) is no failure here: it is logged and the next minute's item tries again.

use std::time::Instant;

use omnichat::deadline;
use omnichat::queue_event::{self, Invocation};
use omnichat::usecases::{Context, scheduled};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("the SQS event is not readable: {0}")]
    Malformed(String),
    #[error(transparent)]
    UseCase(#[from] omnichat::Error),
}

/// What Lambda records for a failed invocation (the message names no secret).
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Malformed(_) => "MalformedEvent",
            HandlerError::UseCase(_) => "EmailPollFailed",
        };
        tracing::error!(%error, "email-poller invocation failed");
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: error.to_string() }
    }
}

/// Handles one invocation, stopped before `deadline` (the runtime's): the schedule's event hands out the
/// polls and answers how many; an SQS event polls its records' mailboxes and answers
/// `{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}`.
pub async fn handle(ctx: &Context, event: Value, deadline: Option<Instant>) -> Result<Value, HandlerError> {
    match queue_event::classify(event, "email-poller").map_err(HandlerError::Malformed)? {
        Invocation::Records(records) => return Ok(queue_event::run_records(ctx, records, deadline).await),
        Invocation::Ignored(detail_type) => return Ok(json!({"ignored": detail_type})),
        Invocation::Scheduled => {}
    }
    let dispatch = scheduled::dispatch_mailbox_polls(ctx);
    let report = match deadline::within(deadline, dispatch).await {
        Ok(report) => report?,
        Err(gave_up) => {
            return Err(omnichat::Error::Internal(format!("handing out the polls: {gave_up}")).into());
        }
    };
    Ok(json!({"mailboxes": report.mailboxes, "enqueued": report.enqueued, "waiting": report.waiting}))
}
