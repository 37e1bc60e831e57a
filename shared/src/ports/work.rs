//! The work queue: a scheduled run hands out units of work (one mailbox to poll) and workers take them one
//! at a time, so the work grows with the workers' concurrency instead of one run's time. SQS and a Lambda
//! event source on AWS; an in-process queue drained by the local runner's workers.
//!
//! Contract: `enqueue` accepts every item or answers an error naming how many were refused (the others may
//! have been accepted). Delivery is at least once and in no promised order, so doing an item twice must be
//! harmless; an item carries ids and a time, never a secret. [`Work::to_body`] is what a queue carries and
//! [`Work::from_body`] reads it back, refusing anything else.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::{ChannelId, DialogId, MessageId, TenantId};

/// The version of a queued item's shape: a field renamed, removed or changed in meaning bumps it.
pub const WORK_VERSION: u32 = 1;

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Fetch the new mail of one e-mail channel (`usecases::email_poll::poll_one`). `dispatched_at` is when
    /// the scheduled run asked for it: a poll that began after it has done what this item asks.
    PollMailbox { tenant_id: TenantId, channel_id: ChannelId, dispatched_at: Timestamp },
    /// Fetch the pending attachments of one inbound message from its provider into our storage
    /// (`usecases::media::fetch_message`).
    FetchMedia { tenant_id: TenantId, dialog_id: DialogId, message_id: MessageId },
    /// Ask the provider for the name of a new customer the webhook did not name (VK, Avito), and give it to
    /// their profile and the dialog they opened (`usecases::customers::name_from_provider`).
    NameCustomer { tenant_id: TenantId, dialog_id: DialogId },
}

/// The queued shape: `{"version": 1, "type": "poll_mailbox", "tenant_id": ..., "channel_id": ...,
/// "dispatched_at": "2026-01-01T12:00:00Z"}`. Ids travel as text and are checked on the way in.
#[derive(Debug, Serialize, Deserialize)]
struct Body {
    version: u32,
    #[serde(flatten)]
    work: WireWork,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireWork {
    PollMailbox { tenant_id: String, channel_id: String, dispatched_at: Timestamp },
    FetchMedia { tenant_id: String, dialog_id: String, message_id: String },
    NameCustomer { tenant_id: String, dialog_id: String },
}

impl Work {
    /// What a queue carries.
    pub fn to_body(&self) -> String {
        let work = match self {
            Work::PollMailbox { tenant_id, channel_id, dispatched_at } => WireWork::PollMailbox {
                tenant_id: tenant_id.to_string(),
                channel_id: channel_id.to_string(),
                dispatched_at: *dispatched_at,
            },
            Work::FetchMedia { tenant_id, dialog_id, message_id } => WireWork::FetchMedia {
                tenant_id: tenant_id.to_string(),
                dialog_id: dialog_id.to_string(),
                message_id: message_id.to_string(),
            },
            Work::NameCustomer { tenant_id, dialog_id } => {
                WireWork::NameCustomer { tenant_id: tenant_id.to_string(), dialog_id: dialog_id.to_string() }
            }
        };
        // Strings and a timestamp: nothing here can fail to serialize.
        serde_json::to_string(&Body { version: WORK_VERSION, work }).unwrap_or_default()
    }

    /// Reads a queued body back; anything but a well-formed item of this version is refused with the reason.
    pub fn from_body(body: &str) -> Result<Work, WorkError> {
        let malformed = |reason: String| WorkError::Malformed(reason);
        let body: Body = serde_json::from_str(body).map_err(|error| malformed(error.to_string()))?;
        if body.version != WORK_VERSION {
            return Err(malformed(format!("version {} (this code reads {WORK_VERSION})", body.version)));
        }
        match body.work {
            WireWork::PollMailbox { tenant_id, channel_id, dispatched_at } => Ok(Work::PollMailbox {
                tenant_id: TenantId::parse(&tenant_id)
                    .ok_or_else(|| malformed(format!("tenant_id {tenant_id:?} is not a UUID")))?,
                channel_id: ChannelId::parse(&channel_id)
                    .ok_or_else(|| malformed(format!("channel_id {channel_id:?} is not a UUID")))?,
                dispatched_at,
            }),
            WireWork::FetchMedia { tenant_id, dialog_id, message_id } => Ok(Work::FetchMedia {
                tenant_id: TenantId::parse(&tenant_id)
                    .ok_or_else(|| malformed(format!("tenant_id {tenant_id:?} is not a UUID")))?,
                dialog_id: DialogId::parse(&dialog_id)
                    .ok_or_else(|| malformed(format!("dialog_id {dialog_id:?} is not a UUID")))?,
                message_id: MessageId::parse(&message_id)
                    .ok_or_else(|| malformed(format!("message_id {message_id:?} is not a UUID")))?,
            }),
            WireWork::NameCustomer { tenant_id, dialog_id } => Ok(Work::NameCustomer {
                tenant_id: TenantId::parse(&tenant_id)
                    .ok_or_else(|| malformed(format!("tenant_id {tenant_id:?} is not a UUID")))?,
                dialog_id: DialogId::parse(&dialog_id)
                    .ok_or_else(|| malformed(format!("dialog_id {dialog_id:?} is not a UUID")))?,
            }),
        }
    }

    /// Items with the same key ask for the same work: a queue that still holds one need not hold another
    /// (it keeps the newer).
    pub fn key(&self) -> String {
        match self {
            Work::PollMailbox { channel_id, .. } => format!("poll_mailbox/{channel_id}"),
            Work::FetchMedia { message_id, .. } => format!("fetch_media/{message_id}"),
            Work::NameCustomer { dialog_id, .. } => format!("name_customer/{dialog_id}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    #[error("{failed} of {total} work items were not accepted: {reason}")]
    Rejected { failed: usize, total: usize, reason: String },
    #[error("work queue unavailable: {0}")]
    Unavailable(String),
    /// A queued body that is not a work item of this version.
    #[error("not a work item: {0}")]
    Malformed(String),
}

#[async_trait]
pub trait WorkQueue: Send + Sync {
    async fn enqueue(&self, work: &[Work]) -> Result<(), WorkError>;

    /// About how many items wait to be taken, not counting those being worked on (SQS counts
    /// approximately).
    async fn waiting(&self) -> Result<usize, WorkError>;
}

/// The queue of a context that was given none: every enqueue of something is refused, saying why. Only the
/// scheduled run that hands out work needs a queue (the local runner's in-process one, `WORK_QUEUE_URL`
/// on AWS); everything else runs without.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWorkQueue;

#[async_trait]
impl WorkQueue for NoWorkQueue {
    async fn enqueue(&self, work: &[Work]) -> Result<(), WorkError> {
        if work.is_empty() {
            return Ok(());
        }
        Err(WorkError::Unavailable("no work queue configured (WORK_QUEUE_URL is not set)".into()))
    }

    async fn waiting(&self) -> Result<usize, WorkError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn sample() -> Work {
        Work::PollMailbox {
            tenant_id: TenantId::generate(),
            channel_id: ChannelId::generate(),
            dispatched_at: Timestamp::from_second(1_800_000_000).expect("valid"),
        }
    }

    #[test]
    fn a_body_reads_back_as_the_item() {
        let work = sample();
        assert_eq!(Work::from_body(&work.to_body()), Ok(work.clone()));
        let body: Value = serde_json::from_str(&work.to_body()).expect("json");
        assert_eq!(body["version"], json!(WORK_VERSION));
        assert_eq!(body["type"], "poll_mailbox");
        assert_eq!(body["dispatched_at"], "2027-01-15T08:00:00Z");
    }

    #[test]
    fn anything_else_is_refused() {
        let good: Value = serde_json::from_str(&sample().to_body()).expect("json");
        let mut cases = vec![Value::Null, json!({}), json!("poll_mailbox")];
        for (field, bad) in [
            ("version", json!(2)),
            ("type", json!("poll_everything")),
            ("channel_id", json!("../other")),
            ("tenant_id", json!(42)),
            ("dispatched_at", json!("yesterday")),
        ] {
            let mut broken = good.clone();
            broken[field] = bad;
            cases.push(broken);
        }
        let mut missing = good.clone();
        missing.as_object_mut().expect("object").remove("channel_id");
        cases.push(missing);
        for case in cases {
            let refused = Work::from_body(&case.to_string());
            assert!(matches!(refused, Err(WorkError::Malformed(_))), "{case} read as {refused:?}");
        }
        assert!(matches!(Work::from_body("not json"), Err(WorkError::Malformed(_))));
    }

    #[test]
    fn a_media_fetch_reads_back() {
        let work = Work::FetchMedia {
            tenant_id: TenantId::generate(),
            dialog_id: DialogId::generate(),
            message_id: MessageId::generate(),
        };
        assert_eq!(Work::from_body(&work.to_body()), Ok(work.clone()));
        let mut body: Value = serde_json::from_str(&work.to_body()).expect("json");
        assert_eq!(body["type"], "fetch_media");
        body["message_id"] = json!("../../x");
        assert!(matches!(Work::from_body(&body.to_string()), Err(WorkError::Malformed(_))));
    }

    #[test]
    fn items_of_one_mailbox_share_a_key() {
        let first = sample();
        let Work::PollMailbox { tenant_id, channel_id, .. } = first.clone() else {
            panic!("the sample is a poll")
        };
        let later = Work::PollMailbox { tenant_id, channel_id, dispatched_at: Timestamp::now() };
        assert_eq!(first.key(), later.key());
        assert_ne!(first.key(), sample().key());
    }
}
