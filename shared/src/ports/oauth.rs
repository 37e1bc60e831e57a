//! The VK OAuth port: the steps of connecting a VK community by signing in to VK instead of pasting its
//! key. The adapter is `providers::vk`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{ProviderError, Result};
use crate::secret::Secret;

/// A community the user administers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AdminCommunity {
    pub id: i64,
    pub name: String,
}

#[async_trait]
pub trait VkOAuth: Send + Sync {
    /// The authorize URL the admin's browser is sent to. Without `group_id`: the user flow, whose token
    /// lists the communities the user administers. With it: the community-token flow, whose code exchanges
    /// for that community's access key.
    fn authorize_url(
        &self,
        client_id: &str,
        redirect_uri: &str,
        state: &str,
        group_id: Option<i64>,
    ) -> Result<String>;

    /// Exchanges an authorization code: VK's answer. VK's refusal of the code (expired, used, a wrong
    /// secret or redirect URI) is `ProviderError::Rejected` with VK's reason.
    async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &Secret,
        redirect_uri: &str,
        code: &Secret,
    ) -> Result<Map<String, Value>, ProviderError>;

    /// The communities the user of a user token administers; a refused token is `InvalidCredentials`.
    async fn admin_communities(&self, user_token: &Secret) -> Result<Vec<AdminCommunity>, ProviderError>;

    /// The community's access key in the answer of a community-token exchange.
    fn community_token(&self, answer: &Map<String, Value>, group_id: i64) -> Option<Secret>;
}
