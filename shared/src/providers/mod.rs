//! One module per provider: verify and parse an inbound webhook into normalized messages, send a message,
//! check a credential and name the account. Base URLs are configurable so tests run against local fakes.

use std::time::Duration;

pub mod telegram;

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

/// A message to send to a customer through a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where it goes: the customer's id on the provider (chat id, peer id, number).
    pub customer_id: String,
    pub text: String,
    /// Quick-reply buttons, where the messenger supports them.
    pub buttons: Vec<String>,
    /// Our outgoing message id: the idempotency key for providers that take one.
    pub idempotency_key: String,
}

/// What the provider answered to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub provider_message_id: Option<String>,
}

/// Time-outs for every outbound call: a slow provider must not hold a Lambda (or the local runner) hostage.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client provider modules share: built once per process, with time-outs.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("omnichat/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Maps a transport-level failure of reqwest (no HTTP answer at all).
pub(crate) fn transport_error(error: reqwest::Error) -> ProviderError {
    if error.is_timeout() {
        ProviderError::Unavailable("timed out".into())
    } else {
        ProviderError::Unavailable(format!("request failed: {}", error.without_url()))
    }
}
