//! The outbound capabilities a process has: a channel module per provider, the chatbot webhook caller, and
//! the capabilities only one provider has (reading mailboxes, VK's and Avito's OAuth connect flows). Built once per
//! process by `providers` (the adapters' side), read by the use cases through `Context::providers`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::domain::Provider;
use crate::error::{Error, Result};
use crate::ports::channel::ChannelProvider;
use crate::ports::chatbot::ChatbotWebhook;
use crate::ports::mailbox::Mailboxes;
use crate::ports::oauth::{AvitoOAuth, VkOAuth};

#[derive(Clone)]
pub struct Providers {
    modules: HashMap<Provider, Arc<dyn ChannelProvider>>,
    chatbots: Arc<dyn ChatbotWebhook>,
    mailboxes: Option<Arc<dyn Mailboxes>>,
    vk_oauth: Option<Arc<dyn VkOAuth>>,
    avito_oauth: Option<Arc<dyn AvitoOAuth>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("modules", &self.modules.keys().collect::<Vec<_>>())
            .field("mailboxes", &self.mailboxes.is_some())
            .field("vk_oauth", &self.vk_oauth.is_some())
            .field("avito_oauth", &self.avito_oauth.is_some())
            .finish()
    }
}

impl Providers {
    /// No channel module yet; chatbot webhooks called through `chatbots`.
    pub fn new(chatbots: Arc<dyn ChatbotWebhook>) -> Self {
        Self { modules: HashMap::new(), chatbots, mailboxes: None, vk_oauth: None, avito_oauth: None }
    }

    pub fn with(mut self, provider: Provider, module: Arc<dyn ChannelProvider>) -> Self {
        self.modules.insert(provider, module);
        self
    }

    pub fn with_chatbots(mut self, chatbots: Arc<dyn ChatbotWebhook>) -> Self {
        self.chatbots = chatbots;
        self
    }

    pub fn with_mailboxes(mut self, mailboxes: Arc<dyn Mailboxes>) -> Self {
        self.mailboxes = Some(mailboxes);
        self
    }

    pub fn with_vk_oauth(mut self, vk_oauth: Arc<dyn VkOAuth>) -> Self {
        self.vk_oauth = Some(vk_oauth);
        self
    }

    pub fn with_avito_oauth(mut self, avito_oauth: Arc<dyn AvitoOAuth>) -> Self {
        self.avito_oauth = Some(avito_oauth);
        self
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

    pub fn chatbots(&self) -> &dyn ChatbotWebhook {
        self.chatbots.as_ref()
    }

    /// The mailbox reader, where this process reads mail.
    pub fn mailboxes(&self) -> Option<&dyn Mailboxes> {
        self.mailboxes.as_deref()
    }

    /// VK's OAuth connect flow, where this process offers it.
    pub fn vk_oauth(&self) -> Result<&dyn VkOAuth> {
        self.vk_oauth.as_deref().ok_or_else(|| {
            Error::rule(
                "provider_not_available",
                "provider",
                "VK OAuth is not available / VK OAuth недоступен",
            )
        })
    }

    /// Avito's consent flow, where this process offers it.
    pub fn avito_oauth(&self) -> Result<&dyn AvitoOAuth> {
        self.avito_oauth.as_deref().ok_or_else(|| {
            Error::rule(
                "provider_not_available",
                "provider",
                "Avito authorization is not available / авторизация Avito недоступна",
            )
        })
    }
}
