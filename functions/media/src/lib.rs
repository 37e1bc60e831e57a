//! The media Lambda's handler, separate from `main` so tests feed it the events Lambda delivers.
//!
//! - An SQS event (the media queue's event source mapping): fetches the files of each record's message,
//!   all records at once (`queue_event::run_records`), naming in `batchItemFailures` those worth a retry.
//!   A provider that will not give a file is no failure here: the file is marked `failed` with the reason;
//!   a provider in trouble leaves it pending for the sweep.
//! - The schedule's `Scheduled Event` (every minute): hands out again the fetches whose markers came due
//!   (the queued item was lost, or the provider kept failing), within the invocation's time.

use std::time::Instant;

use omnichat::queue_event::{self, SqsEvent};
use omnichat::usecases::{Context, due, scheduled};
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
            HandlerError::UseCase(_) => "MediaFailed",
        };
        tracing::error!(%error, "media invocation failed");
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: error.to_string() }
    }
}

/// Handles one invocation, stopped before `deadline` (the runtime's).
pub async fn handle(ctx: &Context, event: Value, deadline: Option<Instant>) -> Result<Value, HandlerError> {
    if queue_event::is_sqs_event(&event) {
        let event: SqsEvent =
            serde_json::from_value(event).map_err(|error| HandlerError::Malformed(error.to_string()))?;
        return Ok(queue_event::run_records(ctx, event, deadline).await);
    }
    let source = event.get("source").and_then(Value::as_str).unwrap_or_default();
    let detail_type = event.get("detail-type").and_then(Value::as_str).unwrap_or_default();
    if (source, detail_type) != ("aws.events", "Scheduled Event") {
        tracing::warn!(source, detail_type, "not an event the media function handles; ignored");
        return Ok(json!({"ignored": detail_type}));
    }
    let run = due::Run::until(scheduled::stop_taking_work_at(deadline));
    scheduled::within_invocation("media-sweep", deadline, scheduled::sweep_media(ctx, run)).await?;
    Ok(json!({"swept": true}))
}
