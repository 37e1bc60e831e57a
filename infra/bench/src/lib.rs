//! What the benchmark binaries share: the stores they run on (the embedded one in a temporary folder, or
//! DynamoDB on moto with a fresh table and bus, seeded through a scratch embedded store), a provider that
//! accepts every send, and seeding dialogs through the real ingest path, so the store holds what production
//! holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use omnichat::adapters::aws::{self, DynamoStore, EventBridgeBus, SecretsManagerStore};
use omnichat::adapters::embedded::{FileSecretStore, InProcessBus, RedbStore};
use omnichat::domain::{
    Account, Channel, ChannelSettings, Customer, Features, InboundKind, InboundMessage, Provider,
};
use omnichat::ports::clock::ManualClock;
use omnichat::ports::{EventBus, SecretStore, Store};
use omnichat::providers::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, Outgoing, ProviderError, Providers, Sent,
    WebhookError, WebhookRequest,
};
use omnichat::usecases::channels::{self, NewChannel};
use omnichat::usecases::ingest::{self, IngestOutcome};
use omnichat::usecases::{Context, auth, tenants};
use serde_json::{Map, Value, json};

/// Dialogs ingested at once while seeding (the embedded store's group commit takes them together).
pub const SEED_CONCURRENCY: usize = 128;

/// A provider that accepts (and counts) every send: the cost measured is the store's, not a network's.
#[derive(Default)]
pub struct AcceptingProvider {
    pub sends: AtomicUsize,
    accounts: AtomicUsize,
}

#[async_trait]
impl ChannelProvider for AcceptingProvider {
    async fn connect(&self, _: &Map<String, Value>) -> omnichat::error::Result<Connection> {
        Ok(Connection {
            account: {
                let id = self.accounts.fetch_add(1, Ordering::SeqCst).to_string();
                Account { id: id.clone(), name: format!("bench {id}") }
            },
            secrets: ChannelSecrets::default(),
            masked: Default::default(),
        })
    }

    fn receive(&self, _: &ChannelSecrets, _: &WebhookRequest) -> Result<Delivery, WebhookError> {
        Ok(Delivery::default())
    }

    async fn send(&self, _: &ChannelSecrets, _: &Outgoing) -> Result<Sent, ProviderError> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        Ok(Sent { provider_message_id: None })
    }
}

/// The ports of one run.
///
/// On moto the dialogs are ingested into a scratch embedded store first and its items then copied into the
/// moto table with `BatchWriteItem` ([`Ports::copy_seeded`]): moto's `TransactWriteItems` deep-copies the
/// whole table once per item it writes, so ingesting there directly grows with the square of the table (200
/// dialogs took a minute; 10,000 would take days). The items are the ones ingest wrote, byte for byte; only
/// the way they reach the table differs. What is measured then runs against the moto table alone.
pub struct Ports {
    /// The store the measured work runs on.
    pub store: Arc<dyn Store>,
    /// Set when the dialogs are seeded elsewhere than `store`: the scratch embedded store ingest writes to,
    /// and the moto table its items are copied into (which is `store`).
    scratch: Option<(RedbStore, DynamoStore)>,
    pub secrets: Arc<dyn SecretStore>,
    pub bus: Arc<dyn EventBus>,
    _dir: tempfile::TempDir,
}

impl Ports {
    /// Where ingest writes while seeding, when that is not [`Ports::store`]: the scratch store, with its
    /// events on an in-process bus nobody reads (the measured work needs the items, not the events).
    pub fn seeding(&self) -> Option<(Arc<dyn Store>, Arc<dyn EventBus>)> {
        self.scratch.as_ref().map(|(scratch, _)| {
            let store: Arc<dyn Store> = Arc::new(scratch.clone());
            let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new(1 << 16));
            (store, bus)
        })
    }

    /// Copies what seeding wrote into the measured store (nothing to do when seeding wrote there).
    pub async fn copy_seeded(&self, store_name: &str) -> Result<(), String> {
        let Some((scratch, target)) = &self.scratch else {
            return Ok(());
        };
        let copying = Instant::now();
        let items = scratch.all_items().await.map_err(|e| e.to_string())?;
        target.put_items(&items).await.map_err(|e| e.to_string())?;
        eprintln!(
            "[{store_name}] copied {} items into the table in {:.1} s",
            items.len(),
            copying.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// The embedded store, secrets file and bus in a temporary folder (removed with the ports).
pub fn embedded() -> Result<Ports, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = RedbStore::open(&dir.path().join("bench.redb")).map_err(|e| e.to_string())?;
    let secrets = FileSecretStore::open(&dir.path().join("secrets.json")).map_err(|e| e.to_string())?;
    Ok(Ports {
        store: Arc::new(store),
        secrets: Arc::new(secrets),
        bus: Arc::new(InProcessBus::new(1 << 16)),
        scratch: None,
        _dir: dir,
    })
}

/// DynamoDB, EventBridge and Secrets Manager on moto (the environment of infra/moto/with-moto.sh): a fresh
/// table, bus and secret prefix `{name}-{pid}-{run}`, and a scratch embedded store to seed into.
pub async fn moto(name: &str, run: usize) -> Result<Ports, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scratch = RedbStore::open(&dir.path().join("scratch.redb")).map_err(|e| e.to_string())?;
    // moto answers an index query by scanning its whole table (DynamoDB reads the one partition): at 10,000
    // dialogs one query takes seconds, past the adapters' 5 s attempt time-out, so the benchmarks wait longer.
    let patient = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(300))
        .operation_timeout(Duration::from_secs(900))
        .build();
    let sdk = aws::load_sdk_config().await.to_builder().timeout_config(patient).build();
    let prefix = format!("{name}-{}-{run}", std::process::id());
    let store = DynamoStore::from_config(&sdk, prefix.clone());
    aws::create_table(store.client(), store.table()).await.map_err(|e| format!("create table: {e:?}"))?;
    let bus = EventBridgeBus::from_config(&sdk, prefix.clone());
    aws::create_event_bus(bus.client(), bus.bus_name()).await.map_err(|e| format!("create bus: {e:?}"))?;
    let secrets = SecretsManagerStore::from_config(&sdk, format!("{prefix}/"));
    Ok(Ports {
        store: Arc::new(store.clone()),
        scratch: Some((scratch, store)),
        secrets: Arc::new(secrets),
        bus: Arc::new(bus),
        _dir: dir,
    })
}

/// A Telegram channel of the tenant with these settings (JSON as the API takes them).
pub async fn connect(
    ctx: &Context,
    admin: &auth::Principal,
    settings: Value,
) -> Result<Arc<Channel>, String> {
    let new = NewChannel {
        provider: Provider::Telegram,
        name: "bench".into(),
        credentials: Map::new(),
        settings: ChannelSettings::from_json(&settings).map_err(|e| format!("{e:?}"))?,
    };
    Ok(Arc::new(channels::create_channel(ctx, admin, new).await.map_err(|e| e.to_string())?.channel))
}

/// One first message per customer of `customers` (`customer-{n}`), through ingest, [`SEED_CONCURRENCY`]
/// at once.
pub async fn seed(
    ctx: &Arc<Context>,
    channel: &Arc<Channel>,
    customers: std::ops::Range<usize>,
) -> Result<(), String> {
    let mut running = tokio::task::JoinSet::new();
    for customer in customers {
        if running.len() >= SEED_CONCURRENCY
            && let Some(done) = running.join_next().await
        {
            done.map_err(|e| e.to_string())??;
        }
        let (ctx, channel) = (Arc::clone(ctx), Arc::clone(channel));
        running.spawn(async move {
            let inbound = InboundMessage {
                dedup_key: format!("seed-{customer}"),
                kind: InboundKind::Message,
                customer: Customer { id: format!("customer-{customer}"), name: None, handle: None },
                provider_message_id: Some(format!("seed-{customer}")),
                text: Some("hello".into()),
                attachments: Vec::new(),
                sent_at: None,
            };
            match ingest::ingest(&ctx, &channel, &inbound).await.map_err(|e| e.to_string())? {
                IngestOutcome::Stored { .. } | IngestOutcome::Duplicate => Ok::<(), String>(()),
                IngestOutcome::ChannelChanged => Err("the channel changed while seeding".into()),
            }
        });
    }
    while let Some(done) = running.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// What the timer benchmarks start from: a manual clock at a fixed start, a provider that accepts every
/// send, the context measured (on `measured`: the ports' store or a wrapper of it) and the one ingest seeds
/// through (the same, or the scratch store on moto), a tenant's admin, and two channels: `replying` sends
/// an auto-reply 45 minutes after a customer writes and closes after a day, `closing` closes after an hour
/// and sends no auto-reply. So at start + 61 minutes each job has exactly the dialogs seeded at the start.
pub struct TimerWorld {
    pub clock: Arc<ManualClock>,
    pub provider: Arc<AcceptingProvider>,
    pub ctx: Arc<Context>,
    pub seed_ctx: Arc<Context>,
    pub admin: auth::Principal,
    pub replying: Arc<Channel>,
    pub closing: Arc<Channel>,
}

impl TimerWorld {
    pub async fn new(ports: &Ports, measured: Arc<dyn Store>) -> Result<Self, String> {
        let start = Timestamp::from_second(1_800_000_000).map_err(|e| e.to_string())?;
        let clock = Arc::new(ManualClock::new(start));
        let provider = Arc::new(AcceptingProvider::default());
        let providers = Providers::default().with(Provider::Telegram, provider.clone());
        let context = |store: Arc<dyn Store>, bus: Arc<dyn EventBus>| {
            Arc::new(Context::new(
                store,
                Arc::clone(&ports.secrets),
                bus,
                clock.clone(),
                providers.clone(),
                "https://bench.example",
            ))
        };
        let ctx = context(measured, Arc::clone(&ports.bus));
        // On moto ingest writes to the scratch store, its events to an in-process bus nobody reads: the
        // benchmarks need the items, not the events.
        let seed_ctx = match ports.seeding() {
            Some((store, bus)) => context(store, bus),
            None => Arc::clone(&ctx),
        };
        let (_, key) = tenants::create_tenant(&seed_ctx, "bench", Features::default())
            .await
            .map_err(|e| e.to_string())?;
        let admin = auth::authenticate(&seed_ctx, Some(key.expose())).await.map_err(|e| e.to_string())?;
        let replying = connect(
            &seed_ctx,
            &admin,
            json!({
                "auto_replies": [{"text": "We will answer soon", "delay_seconds": 45 * 60}],
                "off_hours": {"auto_replies": true},
                "auto_close": {"after": 1, "unit": "days"},
            }),
        )
        .await?;
        let closing =
            connect(&seed_ctx, &admin, json!({"auto_close": {"after": 1, "unit": "hours"}})).await?;
        Ok(Self { clock, provider, ctx, seed_ctx, admin, replying, closing })
    }
}
