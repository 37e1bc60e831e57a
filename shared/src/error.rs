//! The use cases' error: the business cases plus infrastructure trouble. `omnichat-http` maps it to HTTP
//! statuses in one place.

use std::time::Duration;

use crate::domain::RuleViolation;
use crate::ports::{EventError, MediaError, SecretError, StoreError, WorkError};

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
    /// A valid caller asking for what only another role may do (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
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
    #[error(transparent)]
    Queue(#[from] WorkError),
    #[error(transparent)]
    Media(#[from] MediaError),
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

/// Why an inbound webhook request was refused. Either way nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The request cannot be shown to come from the provider (missing or wrong secret or signature).
    #[error("the request could not be verified as coming from the provider")]
    Unauthorized,
    /// The body is not the provider's format.
    #[error("not a valid {provider} webhook body: {reason}")]
    Malformed { provider: &'static str, reason: String },
}

/// What went wrong calling a provider's API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The credential was refused (Telegram 401/404 on getMe, Viber status 2, ...).
    #[error("the provider refused the credentials: {0}")]
    InvalidCredentials(String),
    /// Throttled: try again after the delay the provider asked for.
    #[error("rate limited by the provider; retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The provider answered, but refused this request for good (a 4xx other than throttling).
    #[error("the provider rejected the request: {0}")]
    Rejected(String),
    /// 5xx, time-out, connection trouble: worth retrying.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
}

impl ProviderError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::RateLimited { .. } | ProviderError::Unavailable(_))
    }
}
