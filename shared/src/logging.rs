//! Spans that tie every log line to one run: a scheduled job's run or one router event, each with a fresh
//! `run_id` (HTTP requests get theirs, `request_id`, from the HTTP glue).
//!
//! What may be logged: ids (message, dialog, channel, tenant), counts, statuses and error kinds, at info
//! and below. Never a message's text, an e-mail body, a token, key, password or webhook secret, nor a URL
//! that may carry one (Telegram's `/bot<token>/`): reqwest errors are logged `without_url()`.

use tracing::Span;

/// A fresh id for one run (time-ordered, so runs sort by start).
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The span of one run of a scheduled job (`auto-reply`, `inactivity-close`, `email-dispatch`,
/// `routing-sweep`) or of one work item (`email-poll`, one mailbox).
pub fn job_span(job: &'static str) -> Span {
    tracing::info_span!("job_run", job, run_id = %new_run_id())
}

/// The span of one domain event handled by the router; `event_id` is EventBridge's id where there is one,
/// else a fresh run id.
pub fn event_span(detail_type: &str, event_id: Option<&str>) -> Span {
    let run_id = event_id.filter(|id| !id.is_empty()).map_or_else(new_run_id, str::to_owned);
    tracing::info_span!("router_event", detail_type, run_id = %run_id)
}
