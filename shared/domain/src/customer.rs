//! A customer: one person across channels and over time. Each channel knows them by an identity (the
//! provider's id of them, where replies go); a merge makes two customers one.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ChannelId, CustomerId, Provider, TenantId};

/// How one channel knows the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub channel_id: ChannelId,
    pub provider: Provider,
    /// The provider's id of the customer (chat id, user id, number, address): `Customer::id` of their
    /// dialogs on this channel.
    pub external_id: String,
    /// The public handle the provider gave (a Telegram @username, without the `@`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

impl Identity {
    /// The phone number, where the provider knows customers by it (WhatsApp).
    pub fn phone(&self) -> Option<&str> {
        self.provider.whatsapp_provider().map(|_| self.external_id.as_str())
    }

    /// The e-mail address, on a mailbox.
    pub fn address(&self) -> Option<&str> {
        (self.provider == Provider::Email).then_some(self.external_id.as_str())
    }

    /// How a person reads the identity: `@username` where the provider gave one, else the number, the
    /// address or the provider's id.
    pub fn handle(&self) -> String {
        match &self.username {
            Some(username) => format!("@{username}"),
            None => self.external_id.clone(),
        }
    }
}

/// A customer's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerProfile {
    pub id: CustomerId,
    pub tenant_id: TenantId,
    pub name: Option<String>,
    pub identities: Vec<Identity>,
    pub created_at: Timestamp,
    /// Customers merged into this one: their dialogs are this customer's (their lists are read with it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absorbed: Vec<CustomerId>,
    /// The names of the customers merged into this one, where they differ from `name`: searched too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_names: Vec<String>,
    /// Merged into that customer: this profile only points there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<CustomerId>,
    /// Being erased: nothing reads it any more, and a repeated erase finishes the job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erasing: bool,
    /// Moves on every write of the profile: writes are conditional on the revision read.
    #[serde(default)]
    pub revision: u64,
}

/// The shortest search query the customer list takes.
pub const MIN_QUERY_CHARS: usize = 2;

impl CustomerProfile {
    /// The first identity of a person who wrote on a channel for the first time.
    pub fn first_seen(tenant_id: TenantId, identity: Identity, name: Option<String>, at: Timestamp) -> Self {
        Self {
            id: CustomerId::generate(),
            tenant_id,
            name: name.filter(|n| !n.trim().is_empty()),
            identities: vec![identity],
            created_at: at,
            absorbed: Vec::new(),
            other_names: Vec::new(),
            merged_into: None,
            erasing: false,
            revision: 0,
        }
    }

    /// Whether `query` (already lower case) is part of the name, a handle, a phone or an address. Phones
    /// match without their `+` and spaces too.
    pub fn matches(&self, query: &str) -> bool {
        let digits: String = query.chars().filter(char::is_ascii_digit).collect();
        let name = self.name.iter().chain(&self.other_names).any(|name| name.to_lowercase().contains(query));
        name || self.identities.iter().any(|identity| {
            identity.handle().to_lowercase().contains(query)
                || identity.external_id.to_lowercase().contains(query)
                || (digits.len() >= MIN_QUERY_CHARS
                    && identity.phone().is_some_and(|phone| {
                        phone.chars().filter(char::is_ascii_digit).collect::<String>().contains(&digits)
                    }))
        })
    }

    /// `other` merged into this customer: its identities (each once) and its dialogs (through `absorbed`);
    /// the name is this one's, or the other's where this one has none.
    pub fn absorb(&mut self, other: &CustomerProfile) {
        for identity in &other.identities {
            if !self.identities.contains(identity) {
                self.identities.push(identity.clone());
            }
        }
        for id in std::iter::once(&other.id).chain(&other.absorbed) {
            if !self.absorbed.contains(id) {
                self.absorbed.push(id.clone());
            }
        }
        if self.name.is_none() {
            self.name = other.name.clone();
        }
        for name in other.name.iter().chain(&other.other_names) {
            if self.name.as_ref() != Some(name) && !self.other_names.contains(name) {
                self.other_names.push(name.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(provider: Provider, external_id: &str) -> Identity {
        Identity {
            channel_id: ChannelId::generate(),
            provider,
            external_id: external_id.into(),
            username: None,
        }
    }

    fn at() -> Timestamp {
        Timestamp::from_second(1_700_000_000).expect("valid")
    }

    #[test]
    fn finds_a_customer_by_name_handle_phone_or_address() {
        let tenant = TenantId::generate();
        let mut ann = CustomerProfile::first_seen(
            tenant.clone(),
            identity(Provider::WhatsappInfobip, "+7 916 555-12-34"),
            Some("Anna Petrova".into()),
            at(),
        );
        ann.identities.push(identity(Provider::Email, "anna@example.org"));
        for query in ["anna", "petrova", "555", "79165551234", "example.org"] {
            assert!(ann.matches(query), "{query}");
        }
        for query in ["boris", "4321", "gmail"] {
            assert!(!ann.matches(query), "{query}");
        }
        let blank =
            CustomerProfile::first_seen(tenant, identity(Provider::Telegram, "42"), Some(" ".into()), at());
        assert_eq!(blank.name, None);
    }

    #[test]
    fn absorbing_takes_identities_and_dialog_lists_once_and_keeps_the_name() {
        let tenant = TenantId::generate();
        let shared = identity(Provider::Telegram, "42");
        let mut one = CustomerProfile::first_seen(tenant.clone(), shared.clone(), None, at());
        let mut other = CustomerProfile::first_seen(
            tenant.clone(),
            identity(Provider::Vk, "7"),
            Some("Ann".into()),
            at(),
        );
        other.identities.push(shared);
        let earlier = CustomerId::generate();
        other.absorbed.push(earlier.clone());
        one.absorb(&other);
        one.absorb(&other);
        assert_eq!(one.identities.len(), 2);
        assert_eq!(one.absorbed, vec![other.id.clone(), earlier]);
        assert_eq!(one.name.as_deref(), Some("Ann"));
        assert!(one.other_names.is_empty(), "the name taken is not another one");
        let mut anna = CustomerProfile::first_seen(
            tenant,
            identity(Provider::Email, "a@x.org"),
            Some("Anna P".into()),
            at(),
        );
        anna.absorb(&one);
        assert_eq!(anna.other_names, ["Ann"]);
        assert!(anna.matches("ann") && anna.matches("anna p"));
    }
}
