//! One module per provider: verify and parse an inbound webhook into normalized messages, send a message,
//! check a credential and name the account. Base URLs are configurable so tests run against local fakes.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::domain::Provider;
use crate::error::{Error, Result};
use crate::net::OutboundPolicy;
use crate::secret::Secret;

pub use crate::error::{ProviderError, WebhookError};
pub use crate::ports::channel::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, FetchError, MailThread, Outgoing, OutgoingMedia,
    Reply, Sent, StatusUpdate, WebhookRequest,
};
pub use crate::ports::outbound::Providers;

pub mod avito;
pub mod chatbot;
pub mod edna;
pub mod email;
pub mod infobip;
pub mod media;
pub mod messagebird;
pub mod telegram;
pub mod viber;
pub mod vk;

/// No channel module yet; chatbot webhooks under the strict outbound policy.
impl Default for Providers {
    fn default() -> Self {
        Providers::new(Arc::new(chatbot::HttpChatbots::default()))
    }
}

impl Providers {
    /// Every provider with its base URL from the environment (`TELEGRAM_API_BASE`, ...), defaulting to the
    /// real APIs. One HTTP client (one connection pool, one TLS setup) serves them all.
    /// `OMNICHAT_ALLOW_LOOPBACK_PROVIDERS=1` lets admin-supplied URLs point at this machine.
    pub fn from_env() -> Self {
        let http = Http::default();
        Self::default()
            .with_outbound_policy(OutboundPolicy::from_env())
            .with(Provider::Telegram, Arc::new(telegram::TelegramClient::from_env(http.clone())))
            .with_vk(Arc::new(vk::VkClient::from_env(http.clone())))
            .with(Provider::Viber, Arc::new(viber::ViberClient::from_env(http.clone())))
            .with(Provider::WhatsappEdna, Arc::new(edna::EdnaClient::from_env(http.clone())))
            .with(
                Provider::WhatsappMessagebird,
                Arc::new(messagebird::MessageBirdClient::from_env(http.clone())),
            )
            .with(Provider::WhatsappInfobip, Arc::new(infobip::InfobipClient::from_env(http.clone())))
            .with_avito(Arc::new(avito::AvitoClient::from_env(http.clone())))
            .with_email(Arc::new(email::EmailProvider::from_env(http.clone())))
    }

    /// The policy for the URLs admins give (chatbot webhooks; the Infobip and e-mail modules carry theirs):
    /// strict unless set, public https addresses only.
    pub fn with_outbound_policy(self, policy: OutboundPolicy) -> Self {
        self.with_chatbots(Arc::new(chatbot::HttpChatbots::new(policy)))
    }

    /// The VK module, as the VK channel and as the OAuth connect flow.
    pub fn with_vk(self, vk: Arc<vk::VkClient>) -> Self {
        self.with(Provider::Vk, vk.clone()).with_vk_oauth(vk)
    }

    /// The Avito module, as the Avito channel and as the consent (OAuth) connect flow.
    pub fn with_avito(self, avito: Arc<avito::AvitoClient>) -> Self {
        self.with(Provider::Avito, avito.clone()).with_avito_oauth(avito)
    }

    /// The e-mail module, as the e-mail channel and as the mailbox reader.
    pub fn with_email(self, email: Arc<email::EmailProvider>) -> Self {
        self.with(Provider::Email, email.clone()).with_mailboxes(email)
    }
}

/// A required string credential from the admin's input, or a 422 naming it.
pub fn required_credential(credentials: &Map<String, Value>, name: &str) -> Result<Secret> {
    match credentials.get(name).and_then(Value::as_str).map(str::trim) {
        Some(value) if !value.is_empty() && value.len() <= 4096 => Ok(Secret::new(value)),
        _ => Err(Error::rule("credential_missing", format!("credentials.{name}"), "is required")),
    }
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

/// The HTTP client the provider modules share ([`http_client`]), made at its first request: its TLS set-up
/// and connection pool are start-up work that a function calling no provider, or not yet, does not pay
/// (BENCHMARKS.md §1). Clones share the one client; it derefs to `reqwest::Client`.
#[derive(Clone, Default)]
pub struct Http(Arc<OnceLock<reqwest::Client>>);

impl From<reqwest::Client> for Http {
    fn from(client: reqwest::Client) -> Self {
        Self(Arc::new(OnceLock::from(client)))
    }
}

impl std::ops::Deref for Http {
    type Target = reqwest::Client;

    fn deref(&self) -> &reqwest::Client {
        self.0.get_or_init(http_client)
    }
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("made", &self.0.get().is_some()).finish()
    }
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

/// Why an HTTP provider is called: to check the admin's credentials (a 401/403 then means they are wrong,
/// which the admin is told) or to use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    CredentialCheck,
    Operation,
}

impl Purpose {
    /// What `http_failure` tells the admin on a 401/403 of a credential check.
    pub(crate) fn refusal(self, message: &str) -> Option<&str> {
        (self == Purpose::CredentialCheck).then_some(message)
    }
}

/// The body of a 2xx answer of a JSON API as `T` (an empty body reads as `null`).
pub(crate) fn json_answer<T: DeserializeOwned>(body: &[u8], provider: &str) -> Result<T, ProviderError> {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|_| ProviderError::Unavailable(format!("unreadable answer from {provider}")))?
    };
    serde_json::from_value(value)
        .map_err(|_| ProviderError::Unavailable(format!("unexpected answer from {provider}")))
}

/// The first non-empty string at one of the JSON pointers, in order, in an error answer's body.
pub(crate) fn first_string_at(body: &[u8], pointers: &[&str]) -> Option<String> {
    let value = serde_json::from_slice::<Value>(body).ok()?;
    pointers.iter().find_map(|pointer| {
        value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
    })
}

/// How an error answer is described: `HTTP {status}: {description}` with every secret redacted from the
/// provider's description (some echo the request), or `HTTP {status}` without one.
pub(crate) fn failure_description(status: u16, description: Option<String>, secrets: &[&Secret]) -> String {
    match description.map(|d| secrets.iter().fold(d, |text, secret| secret.redacted(&text))) {
        Some(description) => format!("HTTP {status}: {description}"),
        None => format!("HTTP {status}"),
    }
}

/// `base` with `segments` appended, each percent-encoded (an id from a webhook cannot step into another
/// path). A base that is no URL is the deployment's mistake: unavailable, not the request's fault.
pub(crate) fn endpoint(base: &str, provider: &str, segments: &[&str]) -> Result<reqwest::Url, ProviderError> {
    let mut url = reqwest::Url::parse(base)
        .map_err(|_| ProviderError::Unavailable(format!("the {provider} base URL is not a URL")))?;
    url.path_segments_mut()
        .map_err(|_| ProviderError::Unavailable(format!("the {provider} base URL cannot have a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
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

/// How many values a template's body takes: the number of distinct `{{n}}` placeholders in its text
/// (`{{1}} and {{1}}` take one value). Anything else between braces is not a placeholder.
pub fn placeholder_count(text: &str) -> usize {
    placeholders(text).into_iter().collect::<std::collections::BTreeSet<_>>().len()
}

/// The numbers of a text's `{{n}}` placeholders, in order of appearance, with repeats.
fn placeholders(text: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim();
        match inner.parse::<u32>() {
            Ok(number) if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) => {
                found.push(number);
                rest = &after[end + 2..];
            }
            // `{{{1}}`: look again from the next brace.
            _ => rest = &rest[start + 1..],
        }
    }
    found
}

/// A template's text with each `{{n}}` replaced by the n-th value (1-based); a placeholder without a
/// value stays as it is.
pub fn fill_placeholders(text: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim();
        let value = inner
            .parse::<usize>()
            .ok()
            .filter(|_| !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| values.get(i));
        match value {
            Some(value) => {
                out.push_str(&rest[..start]);
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[..start + 1]);
                rest = &rest[start + 1..];
            }
        }
    }
    out.push_str(rest);
    out
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

/// WhatsApp's customer-service window: a business sends free text until 24 hours after the customer's
/// last message, and only approved templates after that (the three WhatsApp providers' `service_window`).
pub const WHATSAPP_SERVICE_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_secs(24 * 3600);

/// A WhatsApp number the business writes first to (by template), spelled as the provider spells its
/// customers: the digits, after a `+` where it wants one (MessageBird).
pub fn whatsapp_number(to: &crate::ports::channel::Recipient, plus: bool) -> Option<String> {
    match to {
        crate::ports::channel::Recipient::Phone(digits) if plus => Some(format!("+{digits}")),
        crate::ports::channel::Recipient::Phone(digits) => Some(digits.clone()),
        crate::ports::channel::Recipient::Address(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_http_client_is_made_at_its_first_request_and_shared_by_clones() {
        let http = Http::default();
        let clone = http.clone();
        assert_eq!(format!("{http:?}"), "Http { made: false }");
        let _builder = clone.get("http://127.0.0.1:9/");
        assert_eq!(format!("{http:?}"), "Http { made: true }", "a clone made it for both");
        let given = Http::from(reqwest::Client::new());
        assert_eq!(format!("{given:?}"), "Http { made: true }");
    }

    #[test]
    fn placeholders_are_counted_once_each() {
        assert_eq!(placeholder_count("Hello"), 0);
        assert_eq!(placeholder_count("Hi {{1}}, your order {{2}} ships {{3}}."), 3);
        assert_eq!(placeholder_count("{{1}} and again {{1}}, then {{ 2 }}"), 2);
        assert_eq!(placeholder_count("{{name}} {{}} {{1a}} {{1"), 0);
        assert_eq!(placeholder_count("{{{1}}}"), 1);
    }

    #[test]
    fn placeholders_are_filled_in_order() {
        let values = vec!["Ann".to_owned(), "A-42".to_owned()];
        assert_eq!(fill_placeholders("Hi {{1}}, order {{2}} ({{1}})", &values), "Hi Ann, order A-42 (Ann)");
        assert_eq!(fill_placeholders("{{3}} {{x}} {{1}}", &values), "{{3}} {{x}} Ann");
        assert_eq!(fill_placeholders("{{{1}}} {{", &values), "{Ann} {{");
    }
}
