//! The router Lambda's handler, separate from `main` so tests feed it the events Lambda delivers.
//!
//! - An event of the omnichat bus (source `omnichat`, the versioned domain event in `detail`): `DialogOpened` routes
//!   the dialog, `DialogClosed` serves the queues of the employee it freed, `MessageReceived` forwards the
//!   message to the dialog's chatbot if one has it (`usecases::routing::handle_event`).
//! - The schedule's `Scheduled Event` (source `aws.events`): the routing sweep, which reads only what is
//!   due (docs/ARCHITECTURE.md invariants 3 and 5).
//!
//! A failure is answered as an error, so Lambda retries the event; routing is idempotent.

use std::time::Instant;

use omnichat::logging::event_span;
use omnichat::ports::events::{DomainEvent, EVENT_SOURCE, EVENT_VERSION};
use omnichat::usecases::{Context, due, routing, scheduled};
use serde_json::{Value, json};
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("the {detail_type} event's detail is not a domain event: {reason}")]
    Malformed { detail_type: String, reason: String },
    #[error(transparent)]
    UseCase(#[from] omnichat::Error),
}

/// What Lambda records for a failed invocation. Store and bus causes stay in the logs (the message is the
/// error's display, which names no secret).
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Malformed { .. } => "MalformedEvent",
            HandlerError::UseCase(_) => "RoutingFailed",
        };
        tracing::error!(%error, "router invocation failed");
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: error.to_string() }
    }
}

/// Handles one event as Lambda delivers it and answers what was done. `deadline` is the invocation's (the
/// sweep takes no new work shortly before it; the rest stays due).
/// Each event runs in a span with a `run_id` (EventBridge's event id), the sweep in its job span.
pub async fn handle(ctx: &Context, event: Value, deadline: Option<Instant>) -> Result<Value, HandlerError> {
    let source = event.get("source").and_then(Value::as_str).unwrap_or_default();
    let detail_type = event.get("detail-type").and_then(Value::as_str).unwrap_or_default();
    match (source, detail_type) {
        ("aws.events", "Scheduled Event") => {
            let run = due::Run::until(scheduled::stop_taking_work_at(deadline));
            let report = scheduled::sweep_routing(ctx, run).await?;
            Ok(json!({"swept": {"dialogs": report.dialogs, "queues": report.queues}}))
        }
        (EVENT_SOURCE, _) => {
            let detail = event.get("detail").cloned().unwrap_or(Value::Null);
            let (version, domain) = DomainEvent::from_detail(detail).map_err(|error| {
                HandlerError::Malformed { detail_type: detail_type.to_owned(), reason: error.to_string() }
            })?;
            if version != EVENT_VERSION {
                tracing::warn!(version, detail_type, "event of another version; read as far as it matches");
            }
            let span = event_span(detail_type, event.get("id").and_then(Value::as_str));
            routing::handle_event(ctx, &domain).instrument(span).await?;
            Ok(json!({"handled": domain.detail_type()}))
        }
        // A rule matching more than it should is a template mistake, not worth Lambda's retries.
        _ => {
            tracing::warn!(source, detail_type, "not an event the router handles; ignored");
            Ok(json!({"ignored": detail_type}))
        }
    }
}
