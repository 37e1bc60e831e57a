//! The chatbot webhook adapter: forwards a customer message to the admin's chatbot URL over HTTPS and reads
//! its answer. The URL is the admin's: it must be https to a public address (`crate::net`), checked when it
//! is saved and again, against the addresses it resolves to, at every call.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;

use crate::net::{GuardedClient, OutboundPolicy, Refusal, is_refused_address};
use crate::ports::chatbot::{
    ChatbotAnswer, ChatbotRequest, ChatbotWebhook, ID_HEADER, SIGNATURE_HEADER, Signing, TIMESTAMP_HEADER,
    sign,
};

/// The whole call, answer included: a chatbot slower than this leaves the message unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Calls chatbot webhooks under one outbound policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpChatbots {
    policy: OutboundPolicy,
}

impl HttpChatbots {
    pub fn new(policy: OutboundPolicy) -> Self {
        Self { policy }
    }

    /// The client for the policy: one per process each (a strict one in production, a loopback-allowing
    /// one in tests and the local runner). It never follows a redirect and connects only to checked
    /// addresses.
    fn client(&self) -> &'static GuardedClient {
        static STRICT: OnceLock<GuardedClient> = OnceLock::new();
        static LOOPBACK: OnceLock<GuardedClient> = OnceLock::new();
        let cell = if self.policy.allows_loopback() { &LOOPBACK } else { &STRICT };
        cell.get_or_init(|| self.policy.client(CONNECT_TIMEOUT, REQUEST_TIMEOUT))
    }
}

#[async_trait]
impl ChatbotWebhook for HttpChatbots {
    async fn check_url(&self, raw: &str) -> Result<(), Refusal> {
        let url = reqwest::Url::parse(raw.trim()).map_err(|_| Refusal::NotHttps)?;
        self.policy.check_url_resolves(&url).await
    }

    /// One forwarded message: a second try after a short pause when the chatbot could not be reached or
    /// answered 5xx/429, with the same `webhook-id` and body and a fresh timestamp and signature. The reason
    /// of a failure is for the logs, never with the URL in it (the admin's URL may carry a token in its path
    /// or query).
    async fn call(
        &self,
        url: &str,
        signing: Signing<'_>,
        request: &ChatbotRequest<'_>,
    ) -> Result<ChatbotAnswer, String> {
        let url = reqwest::Url::parse(url.trim()).map_err(|_| "not a URL".to_owned())?;
        // The exact bytes signed are the bytes sent.
        let body = serde_json::to_vec(request).map_err(|error| format!("request not encoded: {error}"))?;
        let refused =
            |refusal: Refusal| format!("the webhook URL is refused by the outbound policy: {refusal}");
        let mut last = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let timestamp = jiff::Timestamp::now().as_second();
            let signature = sign(signing.secret, signing.webhook_id, timestamp, &body)?;
            let post = self
                .client()
                .request(reqwest::Method::POST, url.clone())
                .map_err(refused)?
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(ID_HEADER, signing.webhook_id)
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, signature)
                .body(body.clone());
            let response = match post.send().await {
                Ok(response) => response,
                Err(error) if is_refused_address(&error) => {
                    return Err(
                        "the webhook's host resolves to an address the outbound policy refuses".into()
                    );
                }
                Err(error) => {
                    last = if error.is_timeout() {
                        "timed out".into()
                    } else {
                        format!("unreachable: {}", error.without_url())
                    };
                    continue;
                }
            };
            let status = response.status();
            if status.is_server_error() || status.as_u16() == 429 {
                last = format!("answered {status}");
                continue;
            }
            if !status.is_success() {
                return Err(format!("answered {status}"));
            }
            let bytes = response
                .bytes()
                .await
                .map_err(|error| format!("answer not read: {}", error.without_url()))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(ChatbotAnswer::default());
            }
            return Ok(serde_json::from_slice::<ChatbotAnswer>(&bytes).unwrap_or_else(|error| {
                tracing::warn!(%error, "the chatbot's answer is not the documented JSON; ignored");
                ChatbotAnswer::default()
            }));
        }
        Err(last)
    }
}
