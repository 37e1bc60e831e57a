//! Ports: what the use cases need from infrastructure and from the outside world. The storage ports (store,
//! secrets, events) each have an AWS adapter and an embedded one, and both must pass the same conformance
//! suite (`tests/tests/conformance.rs`); the outbound ones (channel providers, chatbot webhooks, mailboxes,
//! VK OAuth) have their adapters in `providers` and are tested against local fakes of the real APIs; the
//! clock has the system clock and a manual one for tests; the work queue has SQS and an in-process queue,
//! both in the conformance suite.

pub mod channel;
pub mod chatbot;
pub mod clock;
pub mod events;
pub mod live;
pub mod mailbox;
pub mod media;
pub mod oauth;
pub mod outbound;
pub mod secrets;
pub mod store;
pub mod work;

pub use channel::{ChannelProvider, ChannelSecrets};
pub use clock::Clock;
pub use events::{DomainEvent, EventBus, EventError};
pub use media::{MediaError, MediaSink, MediaStore};
pub use outbound::Providers;
pub use secrets::{SecretError, SecretStore};
pub use store::{Condition, Index, Item, Key, Page, Query, SkRange, Store, StoreError, Write};
pub use work::{Work, WorkError, WorkQueue};
