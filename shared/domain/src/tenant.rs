//! A tenant (one business account) and the services it has switched on.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::TenantId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// The contact-center service: WhatsApp channels need it.
    pub contact_center: bool,
    /// The chatbot service: chatbots in handling and off-hours need it.
    pub chatbots: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self { contact_center: true, chatbots: true }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub features: Features,
    pub created_at: Timestamp,
}
