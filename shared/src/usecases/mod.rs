//! The use cases, written against the ports only: what each entry point calls.

pub mod auth;
pub mod channels;
pub mod context;
pub mod dialogs;
pub mod ingest;
pub mod webhooks;

pub use crate::providers::Providers;
pub use context::Context;
