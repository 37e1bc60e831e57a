//! What every use case runs with: the ports, the clock, the provider clients and the public URL. Built once
//! per process (per Lambda container), never per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::domain::{ChannelId, TenantId};
use crate::error::Result;
use crate::ports::{EventBus, SecretStore, Store};
use crate::providers::{ChannelSecrets, Providers};

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
