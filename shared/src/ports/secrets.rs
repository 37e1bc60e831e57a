//! The secret store: provider credentials live here and nowhere else.
//!
//! Contract: `get` answers `Ok(None)` for a missing (or deleted) secret; `put` creates or replaces;
//! `delete` of a missing secret is `Ok(())` (on AWS it is scheduled with a recovery window). Errors carry
//! no secret value.

use async_trait::async_trait;

use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn put(&self, name: &str, value: &Secret) -> Result<(), SecretError>;
    async fn get(&self, name: &str) -> Result<Option<Secret>, SecretError>;
    async fn delete(&self, name: &str) -> Result<(), SecretError>;
}
