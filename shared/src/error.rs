//! The use cases' error: the business cases plus infrastructure trouble. `omnichat-http` maps it to HTTP
//! statuses in one place.

use crate::domain::RuleViolation;
use crate::ports::{EventError, SecretError, StoreError};
use crate::providers::{ProviderError, WebhookError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule was broken (422), naming the field.
    #[error(transparent)]
    Rule(#[from] RuleViolation),
    /// The request is malformed (400).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("no or bad API key")]
    Unauthorized,
    /// Missing, or belonging to another tenant (404 either way).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The state changed under the request (409).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error(transparent)]
    Events(#[from] EventError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Error::BadRequest { code, message: message.into() }
    }

    pub fn rule(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Rule(RuleViolation::new(code, field, message))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
