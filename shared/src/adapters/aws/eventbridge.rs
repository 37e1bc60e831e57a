//! The EventBridge adapter of the [`EventBus`] port: domain events onto one custom event bus.
//!
//! Each event is one entry: source [`EVENT_SOURCE`], detail-type [`DomainEvent::detail_type`] (what the
//! rules in `template.yaml` match on), detail the event's JSON. `PutEvents` takes at most 10 entries and may
//! accept some of them only: every answer's `FailedEntryCount` is checked, and the refused entries (only
//! those) are sent again, at most [`RETRIES`] more times with a short backoff, before the publish fails.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::LazyClient;
use crate::ports::events::{DomainEvent, EVENT_SOURCE, EventBus, EventError};

/// The most entries one `PutEvents` call takes.
const MAX_ENTRIES_PER_CALL: usize = 10;

/// How many more times refused entries are sent, and the wait before the first resend (doubled after).
const RETRIES: u32 = 2;
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// The [`EventBus`] on one EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: LazyClient<Client>,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self { client: client.into(), bus_name: bus_name.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, bus_name: impl Into<String>) -> Self {
        Self { client: LazyClient::of(config, Client::new), bus_name: bus_name.into() }
    }

    pub fn client(&self) -> &Client {
        self.client.get()
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    fn entry(&self, event: &DomainEvent) -> Result<PutEventsRequestEntry, EventError> {
        let detail = event
            .to_detail()
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
    /// answers how many were refused in all (after the retries).
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError> {
        let mut failed = 0;
        let mut first_reason = None;
        for chunk in events.chunks(MAX_ENTRIES_PER_CALL) {
            let mut entries = chunk.iter().map(|event| self.entry(event)).collect::<Result<Vec<_>, _>>()?;
            let mut attempt = 0;
            loop {
                let output = self.put(entries.clone()).await?;
                let Some((count, reason)) = refused_entries(&output) else {
                    break;
                };
                match to_retry(&entries, &output) {
                    Some(refused) if attempt < RETRIES => {
                        tracing::warn!(refused = count, attempt, %reason, "EventBridge refused events; resending them");
                        tokio::time::sleep(RETRY_BACKOFF * 2u32.pow(attempt)).await;
                        attempt += 1;
                        entries = refused;
                    }
                    _ => {
                        failed += count;
                        first_reason.get_or_insert(reason);
                        break;
                    }
                }
            }
        }
        match first_reason {
            None => Ok(()),
            Some(reason) => Err(EventError::Rejected { failed, total: events.len(), reason }),
        }
    }
}

impl EventBridgeBus {
    async fn put(&self, entries: Vec<PutEventsRequestEntry>) -> Result<PutEventsOutput, EventError> {
        self.client()
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| sdk_error("PutEvents", err))
    }
}

/// The entries of a partly refused `PutEvents` to send again: the answer's entries are in the order of the
/// request's, a refused one carries an error code. `None` when the answer does not say which were refused
/// (a count without marked entries, or not one answer per entry): resending all could duplicate events.
fn to_retry(sent: &[PutEventsRequestEntry], output: &PutEventsOutput) -> Option<Vec<PutEventsRequestEntry>> {
    let answers = output.entries();
    if answers.len() != sent.len() {
        return None;
    }
    let refused: Vec<_> = sent
        .iter()
        .zip(answers)
        .filter(|(_, answer)| answer.error_code().is_some())
        .map(|(entry, _)| entry.clone())
        .collect();
    let counted = usize::try_from(output.failed_entry_count()).unwrap_or_default();
    (!refused.is_empty() && refused.len() >= counted).then_some(refused)
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

    fn request(detail: &str) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type("DialogOpened")
            .detail(detail)
            .build()
    }

    #[test]
    fn only_the_refused_entries_are_sent_again() {
        let sent = vec![request("a"), request("b"), request("c")];
        let output = PutEventsOutput::builder()
            .failed_entry_count(2)
            .entries(refused("ThrottlingException"))
            .entries(accepted())
            .entries(refused("InternalFailure"))
            .build();
        let again = to_retry(&sent, &output).expect("the refused entries");
        let details: Vec<_> = again.iter().map(|entry| entry.detail().unwrap_or_default()).collect();
        assert_eq!(details, ["a", "c"]);
    }

    #[test]
    fn nothing_is_resent_when_the_answer_does_not_say_which_were_refused() {
        let sent = vec![request("a"), request("b")];
        // A count, no marked entry.
        let output =
            PutEventsOutput::builder().failed_entry_count(1).entries(accepted()).entries(accepted()).build();
        assert_eq!(to_retry(&sent, &output), None);
        // Not one answer per entry.
        let output =
            PutEventsOutput::builder().failed_entry_count(1).entries(refused("InternalFailure")).build();
        assert_eq!(to_retry(&sent, &output), None);
        // Nothing refused.
        let output =
            PutEventsOutput::builder().failed_entry_count(0).entries(accepted()).entries(accepted()).build();
        assert_eq!(to_retry(&sent, &output), None);
    }

    #[test]
    fn the_detail_carries_the_version() {
        let bus = EventBridgeBus::new(
            Client::from_conf(
                aws_sdk_eventbridge::Config::builder()
                    .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
                    .build(),
            ),
            "omnichat",
        );
        let event = DomainEvent::MessageSent {
            tenant_id: crate::domain::TenantId::generate(),
            dialog_id: crate::domain::DialogId::generate(),
            message_id: crate::domain::MessageId::generate(),
        };
        let entry = bus.entry(&event).expect("entry");
        assert_eq!(entry.detail_type(), Some("MessageSent"));
        assert_eq!(entry.source(), Some(EVENT_SOURCE));
        let detail: serde_json::Value =
            serde_json::from_str(entry.detail().unwrap_or_default()).expect("json");
        assert_eq!(detail["version"], 1);
        assert_eq!(detail["type"], "message_sent");
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
