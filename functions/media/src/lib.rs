//! The media Lambda's handler, separate from `main` so tests feed it the events Lambda delivers.
//!
//! - An SQS event (the media queue's event source mapping): fetches the files of each record's message,
//!   all records at once (`queue_event::run_records`), naming in `batchItemFailures` those worth a retry.
//!   A provider that will not give a file is no failure here: the file is marked `failed` with the reason;
//!   a provider in trouble leaves it pending for the sweep.
//! - The schedule's `Scheduled Event` (every minute): hands out again the fetches whose markers came due
//!   (the queued item was lost, or the provider kept failing), within the invocation's time.

use std::time::Instant;

use omnichat::queue_event::{self, Invocation};
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
    match queue_event::classify(event, "media").map_err(HandlerError::Malformed)? {
        Invocation::Records(records) => return Ok(queue_event::run_records(ctx, records, deadline).await),
        Invocation::Ignored(detail_type) => return Ok(json!({"ignored": detail_type})),
        Invocation::Scheduled => {}
    }
    let run = due::Run::until(scheduled::stop_taking_work_at(deadline));
    scheduled::within_invocation("media-sweep", deadline, scheduled::sweep_media(ctx, run)).await?;
    Ok(json!({"swept": true}))
}
