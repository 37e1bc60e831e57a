//! Tick cost (issue 9, table 5): what one auto-reply tick and one inactivity-close tick read, and how long
//! they take, with many open dialogs of which 10 are due. The dialogs are made by the real ingest path
//! (dialog, open-dialog pointer, message, auto-reply and inactivity timers), so the store holds what
//! production holds. Prints a markdown table.
//!
//! On moto the dialogs are ingested into a scratch embedded store first and its items then copied into the
//! moto table with `BatchWriteItem`: moto's `TransactWriteItems` deep-copies the whole table once per item it
//! writes, so ingesting there directly grows with the square of the table (200 dialogs took a minute; 10,000
//! would take days). The items are the ones ingest wrote, byte for byte; only the way they reach the table
//! differs. The ticks then run against the moto table alone.
//!
//!   tick-cost [--store embedded|moto] [--sizes 1000,10000,100000] [--store moto --sizes 10000 ...]
//!
//! `--store moto` needs the AWS environment of infra/moto/with-moto.sh (`AWS_ENDPOINT_URL`, credentials).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use omnichat::adapters::aws::{self, DynamoStore, EventBridgeBus, SecretsManagerStore};
use omnichat::adapters::counting::CountingStore;
use omnichat::adapters::embedded::{FileSecretStore, InProcessBus, RedbStore};
use omnichat::domain::{
    Account, ChannelSettings, Customer, DialogStatus, Features, InboundKind, InboundMessage, Provider,
};
use omnichat::ports::clock::ManualClock;
use omnichat::ports::{EventBus, SecretStore, Store};
use omnichat::providers::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, Outgoing, ProviderError, Providers, Sent,
    WebhookError, WebhookRequest,
};
use omnichat::usecases::channels::{self, NewChannel};
use omnichat::usecases::dialogs::{self, DialogFilter};
use omnichat::usecases::ingest::{self, IngestOutcome};
use omnichat::usecases::{Context, auth, due, scheduled, tenants};
use serde_json::{Map, Value, json};

const DUE: usize = 10;
/// Dialogs ingested at once while seeding (the embedded store's group commit takes them together).
const SEED_CONCURRENCY: usize = 128;

/// A provider that accepts (and counts) every send: the tick's cost is the store's, not a network's.
#[derive(Default)]
struct AcceptingProvider {
    sends: AtomicUsize,
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

struct Ports {
    /// The store the ticks run on.
    store: Arc<dyn Store>,
    /// Set when the dialogs are seeded elsewhere than `store`: the scratch embedded store ingest writes to,
    /// and the moto table its items are copied into (which is `store`).
    scratch: Option<(RedbStore, DynamoStore)>,
    secrets: Arc<dyn SecretStore>,
    bus: Arc<dyn EventBus>,
    _dir: tempfile::TempDir,
}

fn embedded() -> Result<Ports, String> {
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

async fn moto(run: usize) -> Result<Ports, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scratch = RedbStore::open(&dir.path().join("scratch.redb")).map_err(|e| e.to_string())?;
    let sdk = aws::load_sdk_config().await;
    let suffix = format!("{}-{run}", std::process::id());
    let store = DynamoStore::from_config(&sdk, format!("tick-bench-{suffix}"));
    aws::create_table(store.client(), store.table()).await.map_err(|e| format!("create table: {e:?}"))?;
    let bus = EventBridgeBus::from_config(&sdk, format!("tick-bench-{suffix}"));
    aws::create_event_bus(bus.client(), bus.bus_name()).await.map_err(|e| format!("create bus: {e:?}"))?;
    let secrets = SecretsManagerStore::from_config(&sdk, format!("tick-bench-{suffix}/"));
    Ok(Ports {
        store: Arc::new(store.clone()),
        scratch: Some((scratch, store)),
        secrets: Arc::new(secrets),
        bus: Arc::new(bus),
        _dir: dir,
    })
}

struct Row {
    store: &'static str,
    open: usize,
    tick: &'static str,
    items_read: u64,
    reads: u64,
    writes: u64,
    millis: f64,
    done: usize,
}

async fn measure(store_name: &'static str, ports: Ports, open: usize) -> Result<Vec<Row>, String> {
    let counting = Arc::new(CountingStore::new(ports.store));
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
    let ctx = context(counting.clone(), Arc::clone(&ports.bus));
    // Where ingest writes: the measured store itself, or the scratch store copied into it afterwards (with
    // its events on an in-process bus nobody reads: the ticks need the items, not the events).
    let seed_ctx = match &ports.scratch {
        Some((scratch, _)) => context(Arc::new(scratch.clone()), Arc::new(InProcessBus::new(1 << 16))),
        None => Arc::clone(&ctx),
    };
    let (_, key) =
        tenants::create_tenant(&seed_ctx, "bench", Features::default()).await.map_err(|e| e.to_string())?;
    let admin = auth::authenticate(&seed_ctx, Some(key.expose())).await.map_err(|e| e.to_string())?;
    // Two channels, so that each tick has exactly its own 10 due: one closes idle dialogs after an hour
    // and sends no auto-replies, the other sends one after 45 minutes and closes after a day.
    let closing = connect(&seed_ctx, &admin, json!({"auto_close": {"after": 1, "unit": "hours"}})).await?;
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

    // T0: the due customers write; T0+30 min: everybody else, half on each channel. At T0+61 min exactly
    // the first ones are due (auto-reply after 45 min, close after 1 hour); the others' timers fall at
    // T0+75 and T0+90 min.
    let seeding = Instant::now();
    seed(&seed_ctx, &closing, 0..DUE).await?;
    seed(&seed_ctx, &replying, DUE..2 * DUE).await?;
    clock.advance(SignedDuration::from_mins(30));
    let rest = open.saturating_sub(2 * DUE);
    seed(&seed_ctx, &closing, 2 * DUE..2 * DUE + rest / 2).await?;
    seed(&seed_ctx, &replying, 2 * DUE + rest / 2..2 * DUE + rest).await?;
    eprintln!("[{store_name}] seeded {open} open dialogs in {:.1} s", seeding.elapsed().as_secs_f64());
    if let Some((scratch, target)) = &ports.scratch {
        let copying = Instant::now();
        let items = scratch.all_items().await.map_err(|e| e.to_string())?;
        target.put_items(&items).await.map_err(|e| e.to_string())?;
        eprintln!(
            "[{store_name}] copied {} items into the table in {:.1} s",
            items.len(),
            copying.elapsed().as_secs_f64()
        );
    }
    clock.advance(SignedDuration::from_mins(31));

    let mut rows = Vec::new();
    counting.reset();
    let started = Instant::now();
    scheduled::send_auto_replies_and_retries(&ctx, due::Run::to_the_end())
        .await
        .map_err(|e| e.to_string())?;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let counts = counting.counts();
    let sent = provider.sends.load(Ordering::SeqCst);
    rows.push(Row {
        store: store_name,
        open,
        tick: "auto-reply",
        items_read: counts.items_read,
        reads: counts.reads,
        writes: counts.writes,
        millis,
        done: sent,
    });

    counting.reset();
    let started = Instant::now();
    scheduled::close_inactive_dialogs(&ctx, due::Run::to_the_end()).await.map_err(|e| e.to_string())?;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let counts = counting.counts();
    let closed = count_closed(&ctx, &admin).await?;
    rows.push(Row {
        store: store_name,
        open,
        tick: "inactivity close",
        items_read: counts.items_read,
        reads: counts.reads,
        writes: counts.writes,
        millis,
        done: closed,
    });
    Ok(rows)
}

async fn connect(
    ctx: &Context,
    admin: &auth::Principal,
    settings: Value,
) -> Result<Arc<omnichat::domain::Channel>, String> {
    let new = NewChannel {
        provider: Provider::Telegram,
        name: "bench".into(),
        credentials: Map::new(),
        settings: ChannelSettings::from_json(&settings).map_err(|e| format!("{e:?}"))?,
    };
    Ok(Arc::new(channels::create_channel(ctx, admin, new).await.map_err(|e| e.to_string())?.channel))
}

async fn seed(
    ctx: &Arc<Context>,
    channel: &Arc<omnichat::domain::Channel>,
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
                customer: Customer { id: format!("customer-{customer}"), name: None },
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

/// Dialogs closed so far (the tick's effect, checked so the figure is of a tick that did its work).
async fn count_closed(ctx: &Context, admin: &auth::Principal) -> Result<usize, String> {
    let filter = DialogFilter { status: Some(DialogStatus::Closed), assignee: None };
    let (dialogs, _) =
        dialogs::list_dialogs(ctx, admin, &filter, 100, None).await.map_err(|e| e.to_string())?;
    Ok(dialogs.len())
}

fn print(rows: &[Row]) {
    println!(
        "| store | open dialogs | due | tick | done | items read | read calls | write calls | wall ms |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {DUE} | {} | {} | {} | {} | {} | {:.1} |",
            row.store, row.open, row.tick, row.done, row.items_read, row.reads, row.writes, row.millis
        );
    }
}

/// `--store S` starts a run on store S (its sizes default to 1,000, 10,000 and 100,000); `--sizes` sets
/// the sizes of the run before it (of an embedded run when none was named). Runs go in the order given.
fn plans() -> Result<Vec<(String, Vec<usize>)>, String> {
    let mut plans: Vec<(String, Vec<usize>)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" => plans.push((args.next().unwrap_or_default(), vec![1_000, 10_000, 100_000])),
            "--sizes" => {
                let sizes: Vec<usize> = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|n| n.trim().replace('_', "").parse().map_err(|_| format!("not a size: {n:?}")))
                    .collect::<Result<_, _>>()?;
                if plans.is_empty() {
                    plans.push(("embedded".to_owned(), Vec::new()));
                }
                if let Some((_, planned)) = plans.last_mut() {
                    *planned = sizes;
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if plans.is_empty() {
        plans.push(("embedded".to_owned(), vec![1_000, 10_000, 100_000]));
    }
    Ok(plans)
}

#[tokio::main]
async fn main() {
    let plans = plans().unwrap_or_else(|error| {
        eprintln!("tick-cost: {error}");
        std::process::exit(2);
    });
    let mut rows = Vec::new();
    let mut run = 0;
    for (store, sizes) in &plans {
        for &open in sizes {
            let result = match store.as_str() {
                "embedded" => match embedded() {
                    Ok(ports) => measure("embedded (redb)", ports, open).await,
                    Err(error) => Err(error),
                },
                "moto" => match moto(run).await {
                    Ok(ports) => measure("moto (DynamoDB API)", ports, open).await,
                    Err(error) => Err(error),
                },
                other => Err(format!("unknown store {other:?}: embedded or moto")),
            };
            run += 1;
            match result {
                Ok(mut measured) => rows.append(&mut measured),
                Err(error) => {
                    eprintln!("tick-cost: {error}");
                    std::process::exit(1);
                }
            }
        }
    }
    print(&rows);
}
