//! The OAuth ports: the steps of connecting a VK community by signing in to VK instead of pasting its
//! key (the adapter is `providers::vk`), and of connecting an Avito account by its owner's consent to the
//! platform's Avito application (`providers::avito`).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{ProviderError, Result};
use crate::ports::channel::Connection;
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

/// Avito's authorization code flow for the platform's application (`AVITO_CLIENT_ID`, `AVITO_CLIENT_SECRET`).
#[async_trait]
pub trait AvitoOAuth: Send + Sync {
    /// The authorize page the admin's browser is sent to: `response_type=code`, the platform's
    /// `client_id`, the channel's scopes, `redirect_uri` and `state`. A 422 when the platform has no Avito
    /// application configured.
    fn authorize_url(&self, redirect_uri: &str, state: &str) -> Result<String>;

    /// Exchanges an authorization code (`grant_type=authorization_code`) and names the account the tokens
    /// act for: the connection keeps the access token, its expiry and the refresh token. Avito's refusal of
    /// the code is `ProviderError::Rejected` with Avito's reason.
    async fn connect_with_code(
        &self,
        code: &Secret,
        redirect_uri: &str,
        now: jiff::Timestamp,
    ) -> Result<Connection, ProviderError>;
}
