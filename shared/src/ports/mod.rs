//! Ports: what the use cases need from infrastructure. Each has an AWS adapter and an embedded one, and
//! both must pass the same conformance suite (`tests/tests/conformance.rs`).

pub mod events;
pub mod secrets;
pub mod store;

pub use events::{DomainEvent, EventBus, EventError};
pub use secrets::{SecretError, SecretStore};
pub use store::{Condition, Index, Item, Key, Page, Query, SkRange, Store, StoreError, Write};
