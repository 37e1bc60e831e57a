//! The event bus: what happened, for the functions that react (the router, the timers).
//!
//! Contract: `publish` delivers every event or answers an error; a partial failure (EventBridge's
//! `FailedEntryCount` > 0) is an error naming how many failed. Consumers must tolerate lost events: the
//! scheduled sweeps finish what an event did not start.
//!
//! What integrators see on EventBridge is [`DomainEvent::to_detail`]: the event's fields, its `type` and
//! `"version": 1` ([`EVENT_VERSION`]), documented by one JSON Schema per detail type in `docs/events/`.
//! The in-process bus carries the typed events.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{ChannelId, DialogId, EmployeeId, MessageId, TenantId};

/// The source the events carry on EventBridge.
pub const EVENT_SOURCE: &str = "omnichat";

/// The version of the events' published shape (`docs/events/`): additive changes keep it, a field renamed,
/// removed or changed in meaning bumps it.
pub const EVENT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DomainEvent {
    DialogOpened {
        tenant_id: TenantId,
        channel_id: ChannelId,
        dialog_id: DialogId,
    },
    /// Routing gave the dialog to an employee (routed, accepted from a queue, or transferred).
    DialogAssigned {
        tenant_id: TenantId,
        channel_id: ChannelId,
        dialog_id: DialogId,
        employee_id: EmployeeId,
    },
    MessageReceived {
        tenant_id: TenantId,
        channel_id: ChannelId,
        dialog_id: DialogId,
        message_id: MessageId,
        /// A chatbot has the dialog: the router forwards the message to it (its rule matches on this).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        chatbot: bool,
    },
    /// An outgoing message was accepted by the channel's provider.
    MessageSent {
        tenant_id: TenantId,
        dialog_id: DialogId,
        message_id: MessageId,
    },
    DialogClosed {
        tenant_id: TenantId,
        channel_id: ChannelId,
        dialog_id: DialogId,
        /// Who had the dialog: their capacity is free again, and the router serves their queues (its rule
        /// matches on this being present).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee_id: Option<EmployeeId>,
    },
    /// An outgoing message could not be sent and will not be retried.
    MessageFailed {
        tenant_id: TenantId,
        dialog_id: DialogId,
        message_id: MessageId,
        reason: String,
    },
    /// The provider reported an outgoing message delivered to the customer.
    MessageDelivered {
        tenant_id: TenantId,
        dialog_id: DialogId,
        message_id: MessageId,
    },
    /// Routing left the dialog waiting for people: in a group's or an employee's queue, or offered to a
    /// group's members at once (the workspace shows it in their queues).
    DialogQueued {
        tenant_id: TenantId,
        channel_id: ChannelId,
        dialog_id: DialogId,
    },
}

impl DomainEvent {
    /// EventBridge's `detail-type`, what rules match on.
    pub fn detail_type(&self) -> &'static str {
        match self {
            DomainEvent::DialogOpened { .. } => "DialogOpened",
            DomainEvent::DialogAssigned { .. } => "DialogAssigned",
            DomainEvent::MessageReceived { .. } => "MessageReceived",
            DomainEvent::MessageSent { .. } => "MessageSent",
            DomainEvent::DialogClosed { .. } => "DialogClosed",
            DomainEvent::MessageFailed { .. } => "MessageFailed",
            DomainEvent::DialogQueued { .. } => "DialogQueued",
            DomainEvent::MessageDelivered { .. } => "MessageDelivered",
        }
    }

    /// Whether the router acts on the event: a new dialog to route, an employee freed by a close, a message
    /// for a chatbot. Only these reach it: the router's rules in `template.yaml` match exactly these (the
    /// moto stack check tests the patterns against events of every kind), and the local runner hands only
    /// these to it.
    pub fn for_router(&self) -> bool {
        match self {
            DomainEvent::DialogOpened { .. } => true,
            DomainEvent::DialogClosed { assignee_id, .. } => assignee_id.is_some(),
            DomainEvent::MessageReceived { chatbot, .. } => *chatbot,
            DomainEvent::DialogAssigned { .. }
            | DomainEvent::MessageSent { .. }
            | DomainEvent::MessageFailed { .. }
            | DomainEvent::DialogQueued { .. }
            | DomainEvent::MessageDelivered { .. } => false,
        }
    }

    /// What integrators see (EventBridge's `detail`): `{"version": 1, "type": "...", ...fields}`.
    pub fn to_detail(&self) -> serde_json::Result<String> {
        #[derive(Serialize)]
        struct Published<'a> {
            version: u32,
            #[serde(flatten)]
            event: &'a DomainEvent,
        }
        serde_json::to_string(&Published { version: EVENT_VERSION, event: self })
    }

    /// Reads a published `detail` back. A detail without `version` (published before it existed) is
    /// version 1; a later version is read as far as its fields match (additive changes keep the version).
    pub fn from_detail(detail: serde_json::Value) -> serde_json::Result<(u32, DomainEvent)> {
        let envelope: Envelope = serde_json::from_value(detail)?;
        Ok((envelope.version, envelope.event))
    }
}

/// The published shape: the version beside the event's own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(default = "first_version")]
    pub version: u32,
    #[serde(flatten)]
    pub event: DomainEvent,
}

fn first_version() -> u32 {
    EVENT_VERSION
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("{failed} of {total} events were not accepted: {reason}")]
    Rejected { failed: usize, total: usize, reason: String },
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError>;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use serde_json::{Value, json};

    use super::*;

    /// How many variants [`DomainEvent`] has; [`variant`] numbers them 0..VARIANTS.
    const VARIANTS: usize = 8;

    /// Exhaustive on purpose: a new variant does not compile until it is numbered here, and the schema
    /// test then fails until it has a sample and a schema file.
    fn variant(event: &DomainEvent) -> usize {
        match event {
            DomainEvent::DialogOpened { .. } => 0,
            DomainEvent::DialogAssigned { .. } => 1,
            DomainEvent::MessageReceived { .. } => 2,
            DomainEvent::MessageSent { .. } => 3,
            DomainEvent::DialogClosed { .. } => 4,
            DomainEvent::MessageFailed { .. } => 5,
            DomainEvent::DialogQueued { .. } => 6,
            DomainEvent::MessageDelivered { .. } => 7,
        }
    }

    fn samples() -> Vec<DomainEvent> {
        let tenant_id = TenantId::generate();
        let channel_id = ChannelId::generate();
        let dialog_id = DialogId::generate();
        let message_id = MessageId::generate();
        vec![
            DomainEvent::DialogOpened {
                tenant_id: tenant_id.clone(),
                channel_id: channel_id.clone(),
                dialog_id: dialog_id.clone(),
            },
            DomainEvent::DialogAssigned {
                tenant_id: tenant_id.clone(),
                channel_id: channel_id.clone(),
                dialog_id: dialog_id.clone(),
                employee_id: EmployeeId::generate(),
            },
            DomainEvent::MessageReceived {
                tenant_id: tenant_id.clone(),
                channel_id: channel_id.clone(),
                dialog_id: dialog_id.clone(),
                message_id: message_id.clone(),
                chatbot: true,
            },
            DomainEvent::MessageSent {
                tenant_id: tenant_id.clone(),
                dialog_id: dialog_id.clone(),
                message_id: message_id.clone(),
            },
            DomainEvent::DialogClosed {
                tenant_id: tenant_id.clone(),
                channel_id: channel_id.clone(),
                dialog_id: dialog_id.clone(),
                assignee_id: Some(EmployeeId::generate()),
            },
            DomainEvent::MessageFailed {
                tenant_id: tenant_id.clone(),
                dialog_id: dialog_id.clone(),
                message_id: message_id.clone(),
                reason: "blocked by the user".into(),
            },
            DomainEvent::DialogQueued {
                tenant_id: tenant_id.clone(),
                channel_id,
                dialog_id: dialog_id.clone(),
            },
            DomainEvent::MessageDelivered { tenant_id, dialog_id, message_id },
        ]
    }

    /// The router gets a new dialog, a close that freed someone, a chatbot's message; nothing else. The
    /// template's rules are checked against the same cases on moto (`infra/aws/moto_stack.py`).
    #[test]
    fn the_router_gets_only_what_it_acts_on() {
        let acted_on: Vec<(&str, bool)> =
            samples().iter().map(|event| (event.detail_type(), event.for_router())).collect();
        assert_eq!(
            acted_on,
            vec![
                ("DialogOpened", true),
                ("DialogAssigned", false),
                ("MessageReceived", true),
                ("MessageSent", false),
                ("DialogClosed", true),
                ("MessageFailed", false),
                ("DialogQueued", false),
                ("MessageDelivered", false),
            ]
        );
        let (tenant_id, channel_id, dialog_id) =
            (TenantId::generate(), ChannelId::generate(), DialogId::generate());
        let plain = DomainEvent::MessageReceived {
            tenant_id: tenant_id.clone(),
            channel_id: channel_id.clone(),
            dialog_id: dialog_id.clone(),
            message_id: MessageId::generate(),
            chatbot: false,
        };
        let nobody_freed = DomainEvent::DialogClosed { tenant_id, channel_id, dialog_id, assignee_id: None };
        assert!(!plain.for_router() && !nobody_freed.for_router());
        // Neither field is published when it says nothing, so the rules' `exists` and `[true]` hold.
        let detail: Value = serde_json::from_str(&plain.to_detail().expect("detail")).expect("json");
        assert!(detail.get("chatbot").is_none(), "{detail}");
        let detail: Value = serde_json::from_str(&nobody_freed.to_detail().expect("detail")).expect("json");
        assert!(detail.get("assignee_id").is_none(), "{detail}");
    }

    /// The live function's rule in `template.yaml` takes every kind of event (a page may be told of each):
    /// a new kind fails here until the rule lists it.
    #[test]
    fn the_live_rule_takes_every_kind() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let template = std::fs::read_to_string(&path).expect("template.yaml");
        let rule = template
            .split("Every event a page is told of")
            .nth(1)
            .and_then(|after| after.split("RetryPolicy").next())
            .expect("the live function's rule in template.yaml");
        for event in samples() {
            let listed = format!("- {}\n", event.detail_type());
            assert!(rule.contains(&listed), "the live rule does not take {}", event.detail_type());
        }
    }

    fn schema_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/events")
    }

    fn validator(detail_type: &str) -> jsonschema::Validator {
        let path = schema_dir().join(format!("{detail_type}.schema.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{detail_type} has no schema at {}: {err}", path.display()));
        let schema: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{detail_type}: {err}"));
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{detail_type}");
        assert_eq!(schema["properties"]["version"]["const"], json!(EVENT_VERSION), "{detail_type}");
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|err| panic!("{detail_type}'s schema is not valid: {err}"))
    }

    #[test]
    fn every_variant_has_a_sample() {
        let covered: BTreeSet<usize> = samples().iter().map(variant).collect();
        assert_eq!(covered, (0..VARIANTS).collect::<BTreeSet<_>>());
    }

    #[test]
    fn every_published_event_matches_its_schema() {
        for event in samples() {
            let detail_type = event.detail_type();
            let detail: Value =
                serde_json::from_str(&event.to_detail().expect("serializable")).expect("json");
            assert_eq!(detail["version"], json!(EVENT_VERSION), "{detail_type}");
            let validator = validator(detail_type);
            let errors: Vec<String> = validator.iter_errors(&detail).map(|err| err.to_string()).collect();
            assert!(errors.is_empty(), "{detail_type} does not match its schema: {errors:?}\n{detail}");
            // What the schema requires is what the event carries, no more.
            let mut broken = detail.clone();
            broken["version"] = json!(EVENT_VERSION + 1);
            assert!(!validator.is_valid(&broken), "{detail_type}: the schema must pin the version");
            let mut broken = detail.clone();
            broken["dialog_id"] = json!("not-a-uuid");
            assert!(!validator.is_valid(&broken), "{detail_type}: ids must be UUIDs");
        }
    }

    #[test]
    fn every_schema_file_is_a_detail_type() {
        let known: BTreeSet<String> = samples().iter().map(|event| event.detail_type().to_owned()).collect();
        let files: BTreeSet<String> = std::fs::read_dir(schema_dir())
            .expect("docs/events")
            .filter_map(|entry| {
                entry.ok()?.file_name().to_str()?.strip_suffix(".schema.json").map(str::to_owned)
            })
            .collect();
        assert_eq!(files, known);
    }

    #[test]
    fn the_detail_reads_back_with_or_without_its_version() {
        for event in samples() {
            let detail: Value =
                serde_json::from_str(&event.to_detail().expect("serializable")).expect("json");
            assert_eq!(
                DomainEvent::from_detail(detail.clone()).expect("versioned"),
                (EVENT_VERSION, event.clone())
            );
            let mut unversioned = detail;
            unversioned.as_object_mut().expect("object").remove("version");
            assert_eq!(DomainEvent::from_detail(unversioned).expect("unversioned"), (EVENT_VERSION, event));
        }
    }
}
