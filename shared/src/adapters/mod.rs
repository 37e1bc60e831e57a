//! Adapters of the ports: embedded ones for the local run, AWS ones for Lambda.

#[cfg(feature = "aws")]
pub mod aws;
pub mod counting;
pub mod embedded;
pub mod empty_mailboxes;
pub mod units;
