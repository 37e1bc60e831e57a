//! The chatbot port: calling a chatbot's webhook with a customer message and reading its answer. The
//! protocol is ours (documented in `usecases::chatbot`); the HTTP adapter is `providers::chatbot`.
//!
//! Every call is signed the Standard Webhooks way (<https://www.standardwebhooks.com>): headers
//! `webhook-id` (the message's, the same on every try), `webhook-timestamp` (unix seconds of the try) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the bytes the
//! chatbot's `whsec_<base64>` signing secret encodes.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::{ChannelId, Customer, DialogId, MAX_BUTTON_CHARS, MAX_BUTTONS, MAX_REPLY_CHARS, Message};
use crate::net::Refusal;
use crate::secret::Secret;

/// The header names of a signed call (Standard Webhooks).
pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// What a signing secret starts with; the rest is the base64 of its random bytes.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new signing secret (the standard asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A new signing secret: `whsec_` and the standard base64 of 32 random bytes.
pub fn generate_signing_secret() -> Secret {
    use rand::RngCore;
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The `webhook-signature` value of one call: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`
/// keyed with the bytes the secret encodes. The error names what is wrong, never the secret.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let encoded = secret.expose().strip_prefix(SECRET_PREFIX).unwrap_or(secret.expose());
    let key = STANDARD.decode(encoded).map_err(|_| "the signing secret is not base64".to_owned())?;
    if key.is_empty() {
        return Err("the signing secret is empty".into());
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key).map_err(|_| "the signing key is refused".to_owned())?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// How a call is signed: the chatbot's secret and the message's id (`webhook-id`, the same on every try
/// of the message, so that the chatbot can tell a retry from a new message).
#[derive(Debug, Clone, Copy)]
pub struct Signing<'a> {
    pub secret: &'a Secret,
    pub webhook_id: &'a str,
}

#[async_trait]
pub trait ChatbotWebhook: Send + Sync {
    /// The save-time check of an admin's webhook URL under the process's outbound policy (https to a
    /// public address, also after DNS).
    async fn check_url(&self, url: &str) -> Result<(), Refusal>;

    /// Posts one forwarded message to `url`, signed (`sign`, with the time of each try), and reads the
    /// answer (an empty one for an empty body). The error is a reason for the logs, never with the URL or
    /// the secret in it (the admin's URL may carry a token).
    async fn call(
        &self,
        url: &str,
        signing: Signing<'_>,
        request: &ChatbotRequest<'_>,
    ) -> Result<ChatbotAnswer, String>;
}

/// What a chatbot is sent: `{"event": "message", "dialog_id", "channel_id", "customer", "message"}`.
#[derive(Debug, Serialize)]
pub struct ChatbotRequest<'a> {
    pub event: &'static str,
    pub dialog_id: &'a DialogId,
    pub channel_id: &'a ChannelId,
    pub customer: &'a Customer,
    pub message: &'a Message,
}

/// What a chatbot answers to a forwarded message.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatbotAnswer {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub buttons: Vec<String>,
    /// Hand the dialog to people.
    #[serde(default)]
    pub handoff: bool,
}

impl ChatbotAnswer {
    /// The message to send, if any: text trimmed and cut to what a reply may hold, buttons that break the
    /// reply rules dropped (a chatbot's slip should not cost the customer the whole answer).
    pub fn outgoing(&self) -> Option<(String, Vec<String>)> {
        let text = self.text.as_deref().map(str::trim).filter(|t| !t.is_empty())?;
        let text: String = text.chars().take(MAX_REPLY_CHARS).collect();
        let buttons = self
            .buttons
            .iter()
            .map(|b| b.trim())
            .filter(|b| !b.is_empty() && b.chars().count() <= MAX_BUTTON_CHARS)
            .take(MAX_BUTTONS)
            .map(str::to_owned)
            .collect();
        Some((text, buttons))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference libraries' example (also reproduced by hand with Python's hmac):
    /// a receiver's off-the-shelf library must verify what we send.
    #[test]
    fn a_signature_matches_the_standard_webhooks_example() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).expect("signed");
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // Computed independently with the hmac crate: the key is the decoded bytes, the content id.ts.body.
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("base64");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any length");
        mac.update(b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.");
        mac.update(body);
        assert_eq!(signature, format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())));
        assert_ne!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body).expect("signed"),
            signature
        );
        assert!(sign(&Secret::new("whsec_not base64!"), "id", 1, b"{}").is_err());
    }

    #[test]
    fn a_new_secret_is_whsec_and_32_random_bytes() {
        let secret = generate_signing_secret();
        let encoded = secret.expose().strip_prefix(SECRET_PREFIX).expect("the prefix");
        assert_eq!(STANDARD.decode(encoded).expect("base64").len(), 32);
        assert_ne!(generate_signing_secret(), secret);
        assert!(sign(&secret, "msg_1", 1, b"{}").is_ok());
    }

    #[test]
    fn an_answer_keeps_what_a_reply_may_hold() {
        let documented = serde_json::json!({"text": "Hello! How can I help?", "buttons": ["Prices", "Talk to a person"], "handoff": false});
        let answer: ChatbotAnswer = serde_json::from_value(documented).expect("documented shape");
        assert_eq!(
            answer.outgoing(),
            Some(("Hello! How can I help?".into(), vec!["Prices".into(), "Talk to a person".into()]))
        );
        let sloppy = ChatbotAnswer {
            text: Some(format!("  {}  ", "x".repeat(MAX_REPLY_CHARS + 10))),
            buttons: vec!["".into(), "ok".into(), "y".repeat(MAX_BUTTON_CHARS + 1)],
            handoff: false,
        };
        let (text, buttons) = sloppy.outgoing().expect("a text");
        assert_eq!(text.chars().count(), MAX_REPLY_CHARS);
        assert_eq!(buttons, vec!["ok".to_owned()]);
        let handoff_only: ChatbotAnswer = serde_json::from_str(r#"{"handoff": true}"#).expect("valid");
        assert!(handoff_only.handoff && handoff_only.outgoing().is_none());
        let too_many = ChatbotAnswer {
            text: Some("pick".into()),
            buttons: (0..MAX_BUTTONS + 3).map(|i| i.to_string()).collect(),
            handoff: false,
        };
        assert_eq!(too_many.outgoing().expect("a text").1.len(), MAX_BUTTONS);
    }
}
