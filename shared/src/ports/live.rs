//! Live connections: how a push reaches an open workspace page on AWS (API Gateway's `@connections` API).
//! Locally the runner holds the WebSockets itself and needs no adapter.

use async_trait::async_trait;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    /// The connection is closed (API Gateway answers 410): forget it.
    #[error("the connection is gone")]
    Gone,
    /// Anything else: the push is lost, the page catches up when it reconnects.
    #[error("push failed: {0}")]
    Failed(String),
}

#[async_trait]
pub trait LiveConnections: Send + Sync {
    /// Sends one text frame to one connection.
    async fn post(&self, connection_id: &str, body: &[u8]) -> Result<(), PushError>;
}
