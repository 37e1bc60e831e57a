//! A tenant (one business account) and the services it has switched on.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{RuleViolation, TenantId};
use crate::people::MAX_NAME_CHARS;

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

impl Tenant {
    /// A new tenant; its name is 1 to 100 characters, no control characters, trimmed.
    pub fn create(name: &str, features: Features, now: Timestamp) -> Result<Self, RuleViolation> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(RuleViolation::new(
                "invalid_name",
                "name",
                format!("1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(RuleViolation::new("invalid_name", "name", "must not contain control characters"));
        }
        Ok(Self { id: TenantId::generate(), name: name.to_owned(), features, created_at: now })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_name_is_trimmed_and_bounded() {
        let now = Timestamp::UNIX_EPOCH;
        let tenant = Tenant::create("  Acme  ", Features::default(), now).expect("valid");
        assert_eq!(tenant.name, "Acme");
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(MAX_NAME_CHARS + 1)] {
            let refused = Tenant::create(bad, Features::default(), now).expect_err(bad);
            assert_eq!((refused.code, refused.field.as_str()), ("invalid_name", "name"), "{bad:?}");
        }
        assert!(Tenant::create(&"x".repeat(MAX_NAME_CHARS), Features::default(), now).is_ok());
    }
}
