//! The chatbot port: calling a chatbot's webhook with a customer message and reading its answer. The
//! protocol is ours (documented in `usecases::chatbot`); the HTTP adapter is `providers::chatbot`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{ChannelId, Customer, DialogId, MAX_BUTTON_CHARS, MAX_BUTTONS, MAX_REPLY_CHARS, Message};
use crate::net::Refusal;

#[async_trait]
pub trait ChatbotWebhook: Send + Sync {
    /// The save-time check of an admin's webhook URL under the process's outbound policy (https to a
    /// public address, also after DNS).
    async fn check_url(&self, url: &str) -> Result<(), Refusal>;

    /// Posts one forwarded message to `url` and reads the answer (an empty one for an empty body). The
    /// error is a reason for the logs, never with the URL in it (the admin's URL may carry a token).
    async fn call(&self, url: &str, request: &ChatbotRequest<'_>) -> Result<ChatbotAnswer, String>;
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
