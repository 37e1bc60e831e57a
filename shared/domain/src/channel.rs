//! A channel: one provider account (a bot, a community, a number, a mailbox) connected by a tenant.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ChannelId, ChannelSettings, TenantId};

/// The eight providers a channel can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Telegram,
    Vk,
    Viber,
    WhatsappEdna,
    WhatsappMessagebird,
    WhatsappInfobip,
    Email,
    Avito,
}

impl Provider {
    pub const ALL: [Provider; 8] = [
        Provider::Telegram,
        Provider::Vk,
        Provider::Viber,
        Provider::WhatsappEdna,
        Provider::WhatsappMessagebird,
        Provider::WhatsappInfobip,
        Provider::Email,
        Provider::Avito,
    ];

    /// The segment of the webhook route: `/webhooks/{slug}/{channel_id}`.
    pub fn slug(self) -> &'static str {
        match self {
            Provider::Telegram => "telegram",
            Provider::Vk => "vk",
            Provider::Viber => "viber",
            Provider::WhatsappEdna => "whatsapp-edna",
            Provider::WhatsappMessagebird => "whatsapp-messagebird",
            Provider::WhatsappInfobip => "whatsapp-infobip",
            Provider::Email => "email",
            Provider::Avito => "avito",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.slug() == slug)
    }

    /// The channel kind the admin picks: WhatsApp is one kind with three providers.
    pub fn kind(self) -> &'static str {
        match self {
            Provider::WhatsappEdna | Provider::WhatsappMessagebird | Provider::WhatsappInfobip => "whatsapp",
            other => other.slug(),
        }
    }

    /// For WhatsApp: which of the three providers carries it.
    pub fn whatsapp_provider(self) -> Option<&'static str> {
        match self {
            Provider::WhatsappEdna => Some("edna"),
            Provider::WhatsappMessagebird => Some("messagebird"),
            Provider::WhatsappInfobip => Some("infobip"),
            _ => None,
        }
    }

    pub fn from_kind(kind: &str, whatsapp_provider: Option<&str>) -> Option<Self> {
        match (kind, whatsapp_provider) {
            ("whatsapp", Some("edna")) => Some(Provider::WhatsappEdna),
            ("whatsapp", Some("messagebird")) => Some(Provider::WhatsappMessagebird),
            ("whatsapp", Some("infobip")) => Some(Provider::WhatsappInfobip),
            ("whatsapp", _) => None,
            (other, _) => Self::from_slug(other).filter(|p| p.whatsapp_provider().is_none()),
        }
    }

    pub fn is_whatsapp(self) -> bool {
        self.whatsapp_provider().is_some()
    }

    /// Whether a chatbot may handle the channel's dialogs in working hours (the seed allows it for Avito).
    pub fn allows_chatbot_handling(self) -> bool {
        matches!(self, Provider::Avito)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelStatus {
    /// Being connected: the provider is registering its webhook; answers checks, stores nothing.
    Pending,
    /// Receiving and sending.
    Active,
    /// Another channel of the tenant connected the same account later and is now the effective one.
    Displaced,
    /// Disconnected by the admin: neither receives nor sends.
    Disconnected,
    /// Connected by consent (OAuth), and the provider refused to renew its tokens (the consent was
    /// withdrawn or expired): it sends nothing until the admin authorizes the account again, which connects
    /// a new channel that displaces this one. What customers write meanwhile is still stored (the
    /// provider's webhook does not depend on our tokens), so nobody's message is lost while the admin acts.
    ReauthorizationRequired,
}

/// The provider account behind a channel, as the provider names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Stable id at the provider (bot id, community id, phone number, address).
    pub id: String,
    /// What the admin sees: bot name, community name, number, address.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub id: ChannelId,
    pub tenant_id: TenantId,
    pub provider: Provider,
    pub name: String,
    pub account: Account,
    pub status: ChannelStatus,
    pub settings: ChannelSettings,
    /// The full URL the provider must call (secret path segment included where the provider signs nothing).
    pub webhook_url: String,
    /// Credentials as an API response may show them: masked, never in clear.
    pub credentials_masked: BTreeMap<String, String>,
    #[serde(default)]
    pub displaced_by: Option<ChannelId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Channel {
    pub fn is_active(&self) -> bool {
        self.status == ChannelStatus::Active
    }

    /// Whether customers' messages arriving on it are stored: an active channel's, and one waiting for its
    /// owner to authorize it again.
    pub fn receives_messages(&self) -> bool {
        matches!(self.status, ChannelStatus::Active | ChannelStatus::ReauthorizationRequired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_kinds_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(Provider::from_slug(provider.slug()), Some(provider));
            assert_eq!(Provider::from_kind(provider.kind(), provider.whatsapp_provider()), Some(provider));
        }
        assert_eq!(Provider::from_kind("whatsapp", None), None);
        assert_eq!(Provider::from_kind("whatsapp-edna", None), None);
        assert_eq!(Provider::from_kind("icq", None), None);
    }
}
