//! The use cases, written against the ports and the storage layer (`repo`) only: what each entry point
//! calls. They call each other in one direction (docs/ARCHITECTURE.md; `layering_tests` checks it).

pub mod auth;
pub mod avito_connect;
pub mod channels;
pub mod chatbot;
pub mod context;
pub mod conversations;
pub mod customers;
pub mod dialogs;
pub mod due;
pub mod email_poll;
pub mod hours;
pub mod ingest;
pub mod live;
pub mod media;
pub mod outbox;
pub mod people;
pub mod platform;
pub mod routing;
pub mod scheduled;
pub mod templates;
pub mod tenants;
pub mod timers;
pub mod tokens;
pub mod vk_connect;
pub mod webhooks;
pub mod workspace;

pub use crate::ports::outbound::Providers;
pub use context::Context;
