//! Identifiers: time-ordered UUIDs (v7) behind one newtype per entity, so they cannot be mixed up.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new id; ids made later sort after ids made earlier.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// An id that came from outside (a path, a body): it must be a UUID.
            pub fn parse(value: &str) -> Option<Self> {
                uuid::Uuid::try_parse(value).ok().map(|id| Self(id.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: one business account.
    TenantId
);
id_type!(ChannelId);
id_type!(DialogId);
id_type!(MessageId);
id_type!(EmployeeId);
id_type!(GroupId);
id_type!(ChatbotId);
id_type!(
    /// A customer: one person across channels (`customer::CustomerProfile`).
    CustomerId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_sort_by_creation_and_parse_back() {
        let first = DialogId::generate();
        let second = DialogId::generate();
        assert!(first < second);
        assert_eq!(DialogId::parse(first.as_str()), Some(first));
        assert_eq!(DialogId::parse("not-a-uuid"), None);
        assert_eq!(DialogId::parse("../../etc"), None);
    }
}
