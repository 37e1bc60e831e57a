//! What every use case runs with: the ports, the clock, the provider clients and the public URL. Built once
//! per process (per Lambda container), never per request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::domain::{ChannelId, TenantId};
use crate::error::{Error, Result};
use crate::ports::{EventBus, SecretStore, Store};
use crate::providers::telegram::TelegramClient;
use crate::secret::Secret;

/// The provider clients, each with its base URL.
#[derive(Debug, Clone)]
pub struct Providers {
    pub telegram: TelegramClient,
}

impl Providers {
    /// Clients with base URLs from the environment (`TELEGRAM_API_BASE`, ...), defaulting to the real ones.
    pub fn from_env() -> Self {
        let http = crate::providers::http_client();
        Self { telegram: TelegramClient::from_env(http) }
    }
}

/// How long a channel's credentials are kept in memory before they are read from the secret store again.
const SECRET_CACHE_TTL: Duration = Duration::from_secs(300);

pub struct Context {
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn SecretStore>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub providers: Providers,
    /// The HTTPS base URL providers call (`PUBLIC_BASE_URL`), without a trailing slash.
    pub public_base_url: String,
    secret_cache: Mutex<HashMap<ChannelId, (Instant, ChannelSecrets)>>,
}

impl Context {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        providers: Providers,
        public_base_url: impl Into<String>,
    ) -> Self {
        Self {
            store,
            secrets,
            bus,
            clock,
            providers,
            public_base_url: public_base_url.into().trim_end_matches('/').to_owned(),
            secret_cache: Mutex::new(HashMap::new()),
        }
    }

    /// A channel's credentials, from the secret store or the short-lived in-memory cache.
    pub async fn channel_secrets(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
    ) -> Result<Option<ChannelSecrets>> {
        if let Some((at, secrets)) = self.cache().get(channel)
            && at.elapsed() < SECRET_CACHE_TTL
        {
            return Ok(Some(secrets.clone()));
        }
        let Some(secret) = self.secrets.get(&channel_secret_name(tenant, channel)).await? else {
            return Ok(None);
        };
        let secrets = ChannelSecrets::decode(&secret)?;
        self.cache().insert(channel.clone(), (Instant::now(), secrets.clone()));
        Ok(Some(secrets))
    }

    pub async fn put_channel_secrets(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        secrets: &ChannelSecrets,
    ) -> Result<()> {
        self.secrets.put(&channel_secret_name(tenant, channel), &secrets.encode()?).await?;
        self.cache().insert(channel.clone(), (Instant::now(), secrets.clone()));
        Ok(())
    }

    pub async fn delete_channel_secrets(&self, tenant: &TenantId, channel: &ChannelId) -> Result<()> {
        self.cache().remove(channel);
        self.secrets.delete(&channel_secret_name(tenant, channel)).await?;
        Ok(())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelId, (Instant, ChannelSecrets)>> {
        self.secret_cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One secret per channel, holding every credential of it.
pub fn channel_secret_name(tenant: &TenantId, channel: &ChannelId) -> String {
    format!("channel/{tenant}/{channel}")
}

/// A channel's credentials (token, webhook secret, ...), kept together in one secret.
#[derive(Clone, Default)]
pub struct ChannelSecrets(BTreeMap<String, Secret>);

impl std::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl ChannelSecrets {
    pub fn with(mut self, name: &str, value: Secret) -> Self {
        self.0.insert(name.to_owned(), value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    /// The credential, or an internal error: a connected channel always has the ones it was made with.
    pub fn require(&self, name: &'static str) -> Result<&Secret> {
        self.get(name).ok_or_else(|| Error::Internal(format!("the channel's credentials lack {name}")))
    }

    fn encode(&self) -> Result<Secret> {
        let clear: BTreeMap<&str, &str> = self.0.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        serde_json::to_string(&clear)
            .map(Secret::new)
            .map_err(|_| Error::Internal("credentials not serializable".into()))
    }

    fn decode(secret: &Secret) -> Result<Self> {
        let clear: BTreeMap<String, String> = serde_json::from_str(secret.expose())
            .map_err(|_| Error::Internal("a channel secret is not a JSON object of strings".into()))?;
        Ok(Self(clear.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()))
    }
}
