//! What every use case runs with: the ports, the clock, the provider clients and the public URL. Built once
//! per process (per Lambda container), never per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::{Channel, ChannelId, ChatbotId, TenantId};
use crate::error::Result;
use crate::ports::channel::ChannelSecrets;
use crate::ports::clock::Clock;
use crate::ports::media::{DEFAULT_MAX_MEDIA_BYTES, NoMediaStore};
use crate::ports::outbound::Providers;
use crate::ports::work::NoWorkQueue;
use crate::ports::{EventBus, MediaStore, SecretStore, Store, WorkQueue};
use crate::repo;

/// How long a channel's credentials are kept in memory before they are read from the secret store again.
const SECRET_CACHE_TTL: Duration = Duration::from_secs(300);
/// How long an active channel is kept in memory for its webhooks. Staleness cannot store a message into a
/// changed channel (ingest checks the channel's `updated_at` in its transaction); the bound keeps memory
/// fresh for what is only read (the webhook URL, the provider).
const CHANNEL_CACHE_TTL: Duration = Duration::from_secs(60);
/// Channels kept at most; past it the cache starts over (a container serves few channels).
const CHANNEL_CACHE_MAX: usize = 10_000;

pub struct Context {
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn SecretStore>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    /// Where scheduled runs hand out work (mailboxes to poll); none unless given (`with_work_queue`).
    pub work: Arc<dyn WorkQueue>,
    /// Our copies of customers' files and employees' uploads; none unless given (`with_media`).
    pub media: Arc<dyn MediaStore>,
    /// Where media fetches wait (`MEDIA_QUEUE_URL` on AWS, the runner's workers locally); none unless given.
    pub media_queue: Arc<dyn WorkQueue>,
    /// The largest file kept or uploaded (`OMNICHAT_MAX_MEDIA_BYTES`).
    pub max_media_bytes: u64,
    pub providers: Providers,
    /// The HTTPS base URL providers call (`PUBLIC_BASE_URL`), without a trailing slash.
    pub public_base_url: String,
    /// How long message records are kept (`MESSAGE_RETENTION_DAYS` on AWS); for ever unless set.
    pub message_retention: repo::Retention,
    secret_cache: Mutex<HashMap<ChannelId, (Instant, ChannelSecrets)>>,
    channel_cache: Mutex<HashMap<ChannelId, (Instant, Channel)>>,
    /// One lock per channel whose tokens this process renews: of concurrent sends, one renews and the
    /// others use what it kept (`usecases::tokens`).
    renewals: Mutex<HashMap<ChannelId, Arc<tokio::sync::Mutex<()>>>>,
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
            work: Arc::new(NoWorkQueue),
            media: Arc::new(NoMediaStore),
            media_queue: Arc::new(NoWorkQueue),
            max_media_bytes: DEFAULT_MAX_MEDIA_BYTES,
            providers,
            public_base_url: public_base_url.into().trim_end_matches('/').to_owned(),
            message_retention: repo::Retention::FOREVER,
            secret_cache: Mutex::new(HashMap::new()),
            channel_cache: Mutex::new(HashMap::new()),
            renewals: Mutex::new(HashMap::new()),
        }
    }

    /// Work handed out with this context goes to `queue`.
    pub fn with_work_queue(mut self, queue: Arc<dyn WorkQueue>) -> Self {
        self.work = queue;
        self
    }

    /// Files are kept in `media`, and their fetches wait in `queue`.
    pub fn with_media(mut self, media: Arc<dyn MediaStore>, queue: Arc<dyn WorkQueue>) -> Self {
        self.media = media;
        self.media_queue = queue;
        self
    }

    /// Files larger than `bytes` are not kept (`too_large`) and not taken as uploads.
    pub fn with_max_media_bytes(mut self, bytes: u64) -> Self {
        self.max_media_bytes = bytes;
        self
    }

    /// Message records written with this context expire after `retention`.
    pub fn with_message_retention(mut self, retention: repo::Retention) -> Self {
        self.message_retention = retention;
        self
    }

    /// An active channel from this container's memory if read recently, else from the store. Only for
    /// paths that check the channel again where it matters (ingest does, in its transaction).
    pub async fn recent_channel(&self, id: &ChannelId) -> Result<Option<Channel>> {
        if let Some((at, channel)) = lock(&self.channel_cache).get(id)
            && at.elapsed() < CHANNEL_CACHE_TTL
        {
            return Ok(Some(channel.clone()));
        }
        let channel = repo::load_channel(self.store.as_ref(), id).await?;
        let mut cache = lock(&self.channel_cache);
        match &channel {
            Some(active) if active.is_active() => {
                if cache.len() >= CHANNEL_CACHE_MAX {
                    cache.clear();
                }
                cache.insert(id.clone(), (Instant::now(), active.clone()));
            }
            _ => {
                cache.remove(id);
            }
        }
        Ok(channel)
    }

    /// Drops a channel from the memory of this container (it changed).
    pub fn forget_channel(&self, id: &ChannelId) {
        lock(&self.channel_cache).remove(id);
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

    /// A channel's credentials as the secret store holds them now (another process may have renewed
    /// them), refreshing the in-memory cache.
    pub async fn channel_secrets_uncached(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
    ) -> Result<Option<ChannelSecrets>> {
        self.cache().remove(channel);
        self.channel_secrets(tenant, channel).await
    }

    /// The lock under which this process renews a channel's tokens.
    pub fn renewal_lock(&self, channel: &ChannelId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = lock(&self.renewals);
        if locks.len() >= CHANNEL_CACHE_MAX {
            locks.retain(|_, held| Arc::strong_count(held) > 1);
        }
        Arc::clone(locks.entry(channel.clone()).or_default())
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
        lock(&self.secret_cache)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One secret per channel, holding every credential of it.
pub fn channel_secret_name(tenant: &TenantId, channel: &ChannelId) -> String {
    format!("channel/{tenant}/{channel}")
}

/// A chatbot's signing secret (`whsec_...`, the key its calls are signed with), alone in its secret.
pub fn chatbot_secret_name(tenant: &TenantId, chatbot: &ChatbotId) -> String {
    format!("chatbot/{tenant}/{chatbot}")
}
