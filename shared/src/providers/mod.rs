//! One module per provider: verify and parse an inbound webhook into normalized messages, send a message,
//! check a credential and name the account. Base URLs are configurable so tests run against local fakes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::domain::{Account, ChannelId, InboundMessage, OutStatus, Provider};
use crate::error::{Error, Result};
use crate::net::OutboundPolicy;
use crate::secret::Secret;

pub mod avito;
pub mod edna;
pub mod email;
pub mod infobip;
pub mod messagebird;
pub mod telegram;
pub mod viber;
pub mod vk;

/// What every provider module offers the use cases. `receive` is pure (no I/O): it verifies and parses
/// one inbound request with the channel's credentials.
#[async_trait]
pub trait ChannelProvider: Send + Sync {
    /// Checks the admin's credentials with the provider and names the account. Errors are rule
    /// violations naming the credential at fault (422), or the provider's trouble.
    async fn connect(&self, credentials: &Map<String, Value>) -> Result<Connection>;

    /// The accounts the credentials give access to, for the admin to pick one (Infobip: the account's
    /// WhatsApp numbers). Most providers connect exactly the account of their credentials.
    async fn list_accounts(&self, _credentials: &Map<String, Value>) -> Result<Vec<Account>> {
        Err(Error::rule(
            "nothing_to_pick",
            "provider",
            "these credentials connect exactly one account; create the channel with them",
        ))
    }

    /// The URL the provider must call. Providers that sign nothing get the channel's `webhook_secret` as
    /// an extra, unguessable path segment.
    fn webhook_url(
        &self,
        base: &str,
        provider: Provider,
        channel: &ChannelId,
        _secrets: &ChannelSecrets,
    ) -> String {
        format!("{base}/webhooks/{}/{channel}", provider.slug())
    }

    /// Registers the webhook with the provider, where its API allows it.
    async fn register_webhook(&self, _secrets: &ChannelSecrets, _url: &str) -> Result<()> {
        Ok(())
    }

    /// Removes the webhook from the provider (disconnect).
    async fn remove_webhook(&self, _secrets: &ChannelSecrets) -> Result<()> {
        Ok(())
    }

    /// Verifies one inbound request and parses it. Nothing is written when this fails.
    fn receive(&self, secrets: &ChannelSecrets, request: &WebhookRequest) -> Result<Delivery, WebhookError>;

    /// Sends one message to a customer.
    async fn send(&self, secrets: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError>;

    /// Whether the provider drops a repeated send with the same `Outgoing::idempotency_key` (VK
    /// `random_id`, edna `requestId`). Where it does not, a send whose outcome is unknown (the sender died
    /// mid-call) is marked failed rather than repeated: at most once beats twice.
    fn idempotent_sends(&self) -> bool {
        false
    }

    /// The e-mail module, whose mail the poller fetches (nothing is pushed); `None` for the others.
    fn as_email(&self) -> Option<&email::EmailProvider> {
        None
    }

    /// The VK module, whose OAuth connect flow the API offers; `None` for the others.
    fn as_vk(&self) -> Option<&vk::VkClient> {
        None
    }
}

/// The provider modules this process can use, by provider, and the policy for the URLs admins give it
/// (chatbot webhooks; the Infobip and e-mail modules carry theirs).
#[derive(Clone, Default)]
pub struct Providers {
    modules: HashMap<Provider, Arc<dyn ChannelProvider>>,
    outbound: OutboundPolicy,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("modules", &self.modules.keys().collect::<Vec<_>>())
            .field("outbound", &self.outbound)
            .finish()
    }
}

impl Providers {
    /// Every provider with its base URL from the environment (`TELEGRAM_API_BASE`, ...), defaulting to the
    /// real APIs. One HTTP client (one connection pool, one TLS setup) serves them all.
    /// `OMNICHAT_ALLOW_LOOPBACK_PROVIDERS=1` lets admin-supplied URLs point at this machine.
    pub fn from_env() -> Self {
        let http = http_client();
        Self::default()
            .with_outbound_policy(OutboundPolicy::from_env())
            .with(Provider::Telegram, Arc::new(telegram::TelegramClient::from_env(http.clone())))
            .with(Provider::Vk, Arc::new(vk::VkClient::from_env(http.clone())))
            .with(Provider::Viber, Arc::new(viber::ViberClient::from_env(http.clone())))
            .with(Provider::WhatsappEdna, Arc::new(edna::EdnaClient::from_env(http.clone())))
            .with(
                Provider::WhatsappMessagebird,
                Arc::new(messagebird::MessageBirdClient::from_env(http.clone())),
            )
            .with(Provider::WhatsappInfobip, Arc::new(infobip::InfobipClient::from_env(http.clone())))
            .with(Provider::Avito, Arc::new(avito::AvitoClient::from_env(http.clone())))
            .with(Provider::Email, Arc::new(email::EmailProvider::from_env(http.clone())))
    }

    pub fn with(mut self, provider: Provider, module: Arc<dyn ChannelProvider>) -> Self {
        self.modules.insert(provider, module);
        self
    }

    /// The policy for admin-supplied URLs (strict unless set: public https addresses only).
    pub fn with_outbound_policy(mut self, policy: OutboundPolicy) -> Self {
        self.outbound = policy;
        self
    }

    pub fn outbound_policy(&self) -> OutboundPolicy {
        self.outbound
    }

    pub fn get(&self, provider: Provider) -> Result<&dyn ChannelProvider> {
        self.modules.get(&provider).map(|module| module.as_ref()).ok_or_else(|| {
            Error::rule(
                "provider_not_available",
                "provider",
                format!("{} channels are not available yet", provider.slug()),
            )
        })
    }
}

/// The parts of an HTTP request a provider module looks at.
#[derive(Debug, Clone, Default)]
pub struct WebhookRequest {
    pub method: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The raw body, exactly as received (signatures are over these bytes).
    pub body: Vec<u8>,
    /// The extra path segment of providers that sign nothing.
    pub path_secret: Option<String>,
    /// The channel's webhook URL as registered with the provider (signatures may cover it); filled in by
    /// the webhook use case once it knows the channel.
    pub webhook_url: String,
}

impl WebhookRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What one verified inbound request carries, and what to answer the provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub messages: Vec<InboundMessage>,
    /// Delivery reports on our outgoing messages.
    pub statuses: Vec<StatusUpdate>,
    /// The body the provider expects (VK: `ok` or the confirmation code); empty for a bare 200.
    pub reply: Reply,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn text(body: impl Into<String>) -> Self {
        Self { content_type: "text/plain; charset=utf-8", body: body.into() }
    }

    pub fn json(body: impl Into<String>) -> Self {
        Self { content_type: "application/json", body: body.into() }
    }
}

/// A provider's report on one of our outgoing messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub provider_message_id: String,
    pub status: OutStatus,
    pub reason: Option<String>,
}

/// What a provider's connect step hands back.
#[derive(Debug, Clone)]
pub struct Connection {
    pub account: Account,
    /// Every credential to keep (the admin's and any the module generated), for the secret store only.
    pub secrets: ChannelSecrets,
    /// The credentials as an API response may show them.
    pub masked: BTreeMap<String, String>,
}

/// A channel's credentials (token, webhook secret, ...), kept together in one secret.
#[derive(Clone, Default)]
pub struct ChannelSecrets(BTreeMap<String, Secret>);

impl std::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl ChannelSecrets {
    /// The name under which the generated webhook secret is kept.
    pub const WEBHOOK_SECRET: &'static str = "webhook_secret";

    pub fn with(mut self, name: &str, value: Secret) -> Self {
        self.0.insert(name.to_owned(), value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    /// The credential, or an internal error: a connected channel has the ones it was made with.
    pub fn require(&self, name: &str) -> Result<&Secret> {
        self.get(name).ok_or_else(|| Error::Internal(format!("the channel's credentials lack {name}")))
    }

    /// The credential for verifying a webhook: a channel without it cannot verify anything.
    pub fn for_verifying(&self, name: &str) -> std::result::Result<&Secret, WebhookError> {
        self.get(name).filter(|s| !s.expose().is_empty()).ok_or(WebhookError::Unauthorized)
    }

    pub fn encode(&self) -> Result<Secret> {
        let clear: BTreeMap<&str, &str> = self.0.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        serde_json::to_string(&clear)
            .map(Secret::new)
            .map_err(|_| Error::Internal("credentials not serializable".into()))
    }

    pub fn decode(secret: &Secret) -> Result<Self> {
        let clear: BTreeMap<String, String> = serde_json::from_str(secret.expose())
            .map_err(|_| Error::Internal("a channel secret is not a JSON object of strings".into()))?;
        Ok(Self(clear.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()))
    }
}

/// A required string credential from the admin's input, or a 422 naming it.
pub fn required_credential(credentials: &Map<String, Value>, name: &str) -> Result<Secret> {
    match credentials.get(name).and_then(Value::as_str).map(str::trim) {
        Some(value) if !value.is_empty() && value.len() <= 4096 => Ok(Secret::new(value)),
        _ => Err(Error::rule("credential_missing", format!("credentials.{name}"), "is required")),
    }
}

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
    /// E-mail only: what the reply answers, so the customer's client threads it.
    pub thread: Option<MailThread>,
}

/// The customer's last mail in the dialog, as an e-mail reply refers to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailThread {
    pub subject: Option<String>,
    /// Its Message-ID (without angle brackets).
    pub in_reply_to: Option<String>,
    /// Its `References` followed by its Message-ID: the thread up to it, oldest first.
    pub references: Vec<String>,
}

/// What the provider answered to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub provider_message_id: Option<String>,
}

/// Time-outs for every outbound call: a slow provider must not hold a Lambda (or the local runner) hostage.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client provider modules share: built once per process, with time-outs, on the process's one
/// TLS configuration (`crate::tls`).
pub fn http_client() -> reqwest::Client {
    crate::tls::http_client_builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The longest `Retry-After` honoured: a provider asking for more is tried again after an hour anyway.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wait when a provider throttles without saying how long.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The error of an HTTP provider's non-2xx answer: 429 is throttling (its Retry-After, else 1 s); 401/403
/// mean refused credentials when `refused_credentials` carries the message for a credential check; other
/// 4xx are refusals for good; everything else is worth retrying.
pub(crate) fn http_failure(
    status: u16,
    description: String,
    retry_after: Option<Duration>,
    refused_credentials: Option<&str>,
) -> ProviderError {
    match (status, refused_credentials) {
        (429, _) => ProviderError::RateLimited { retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER) },
        (401 | 403, Some(message)) => ProviderError::InvalidCredentials(message.to_owned()),
        (400..=499, _) => ProviderError::Rejected(description),
        _ => ProviderError::Unavailable(description),
    }
}

/// A `Retry-After` header in seconds, capped at `MAX_RETRY_AFTER`.
pub(crate) fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// Quick replies as numbered options under the text, for messengers (or APIs) without buttons.
pub(crate) fn text_with_options(text: &str, buttons: &[String]) -> String {
    if buttons.is_empty() {
        return text.to_owned();
    }
    let options: Vec<String> =
        buttons.iter().enumerate().map(|(i, label)| format!("{}. {label}", i + 1)).collect();
    format!("{text}\n\n{}", options.join("\n"))
}

/// A provider's API base URL: the environment variable when set (local fakes, self-hosted gateways),
/// else the real API.
pub fn base_url_from_env(variable: &str, default: &str) -> String {
    std::env::var(variable).ok().filter(|base| !base.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}

/// Maps a transport-level failure of reqwest (no HTTP answer at all).
/// The text never holds the URL (Telegram's carries the bot token): `without_url` drops it.
pub(crate) fn transport_error(error: reqwest::Error) -> ProviderError {
    if crate::net::is_refused_address(&error) {
        ProviderError::Rejected("the host resolves to an address the outbound policy refuses".into())
    } else if error.is_timeout() {
        ProviderError::Unavailable("timed out".into())
    } else {
        ProviderError::Unavailable(format!("request failed: {}", error.without_url()))
    }
}
