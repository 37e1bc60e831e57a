//! The EventBridge adapter of the [`EventBus`] port: domain events onto one custom event bus.
//!
//! Each event is one entry: source [`EVENT_SOURCE`], detail-type [`DomainEvent::detail_type`] (what the
//! rules in `template.yaml` match on), detail the event's JSON. `PutEvents` takes at most 10 entries and may
//! accept some of them only: every answer's `FailedEntryCount` is checked.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::ports::events::{DomainEvent, EVENT_SOURCE, EventBus, EventError};

/// The most entries one `PutEvents` call takes.
const MAX_ENTRIES_PER_CALL: usize = 10;

/// The [`EventBus`] on one EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self { client, bus_name: bus_name.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, bus_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), bus_name)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    fn entry(&self, event: &DomainEvent) -> Result<PutEventsRequestEntry, EventError> {
        let detail = serde_json::to_string(event)
            .map_err(|err| EventError::Unavailable(format!("event not serializable: {err}")))?;
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(EVENT_SOURCE)
            .detail_type(event.detail_type())
            .detail(detail)
            .build())
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    /// Sends every chunk even when one is partly refused, so as many events as possible get through, then
    /// answers how many were refused in all.
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError> {
        let mut failed = 0;
        let mut first_reason = None;
        for chunk in events.chunks(MAX_ENTRIES_PER_CALL) {
            let entries = chunk.iter().map(|event| self.entry(event)).collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|err| sdk_error("PutEvents", err))?;
            if let Some((count, reason)) = refused_entries(&output) {
                failed += count;
                first_reason.get_or_insert(reason);
            }
        }
        match first_reason {
            None => Ok(()),
            Some(reason) => Err(EventError::Rejected { failed, total: events.len(), reason }),
        }
    }
}

/// How many entries of one `PutEvents` answer were refused, and why the first of them was.
fn refused_entries(output: &PutEventsOutput) -> Option<(usize, String)> {
    let marked: Vec<_> = output.entries().iter().filter(|entry| entry.error_code().is_some()).collect();
    let counted = usize::try_from(output.failed_entry_count()).unwrap_or_default();
    let failed = counted.max(marked.len());
    if failed == 0 {
        return None;
    }
    let reason = match marked.first() {
        Some(entry) => format!(
            "{}: {}",
            entry.error_code().unwrap_or_default(),
            entry.error_message().unwrap_or("no message")
        ),
        None => "EventBridge gave no reason".to_owned(),
    };
    Some((failed, reason))
}

/// Creates a custom event bus: for tests and local use against moto; in AWS the stack owns the bus.
pub async fn create_event_bus(client: &Client, name: &str) -> Result<(), EventError> {
    client
        .create_event_bus()
        .name(name)
        .send()
        .await
        .map(drop)
        .map_err(|err| sdk_error("CreateEventBus", err))
}

fn sdk_error<E>(operation: &str, err: SdkError<E>) -> EventError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err.as_service_error() {
        Some(service) => EventError::Unavailable(format!(
            "EventBridge {operation}: {}: {}",
            service.code().unwrap_or("UnknownError"),
            service.message().unwrap_or_default()
        )),
        None => EventError::Unavailable(format!("EventBridge {operation}: {}", DisplayErrorContext(&err))),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_eventbridge::types::PutEventsResultEntry;

    use super::*;

    fn accepted() -> PutEventsResultEntry {
        PutEventsResultEntry::builder().event_id("e-1").build()
    }

    fn refused(code: &str) -> PutEventsResultEntry {
        PutEventsResultEntry::builder().error_code(code).error_message("try later").build()
    }

    #[test]
    fn an_answer_without_failures_is_fine() {
        let output =
            PutEventsOutput::builder().failed_entry_count(0).entries(accepted()).entries(accepted()).build();
        assert_eq!(refused_entries(&output), None);
    }

    #[test]
    fn failed_entry_count_is_checked() {
        let output = PutEventsOutput::builder()
            .failed_entry_count(2)
            .entries(accepted())
            .entries(refused("ThrottlingException"))
            .entries(refused("InternalFailure"))
            .build();
        assert_eq!(refused_entries(&output), Some((2, "ThrottlingException: try later".to_owned())));
    }

    #[test]
    fn a_count_without_marked_entries_still_fails() {
        let output = PutEventsOutput::builder().failed_entry_count(1).entries(accepted()).build();
        assert_eq!(refused_entries(&output), Some((1, "EventBridge gave no reason".to_owned())));
        let output =
            PutEventsOutput::builder().failed_entry_count(0).entries(refused("InternalFailure")).build();
        assert_eq!(refused_entries(&output).map(|(failed, _)| failed), Some(1));
    }
}
