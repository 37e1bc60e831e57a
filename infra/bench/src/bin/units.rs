//! Capacity units per message (issue 16, goals 1 and 7): what each step of a dialog's life writes and reads,
//! by DynamoDB's item-size and unit rules applied to the items the store actually holds
//! (`omnichat::adapters::units`), and the events it publishes (entries, and those the router's rules let
//! through). Prints JSON for report.py, which prices it.
//!
//!   units [--store embedded] [--store moto]
//!
//! The steps, on a channel with an auto-reply and auto-close (the `replying` channel of the timer
//! benchmarks): a new customer's first message (a dialog opens), five more 5 s apart (the steady state),
//! one a minute on (the dialog item takes the activity), a repeated delivery, an employee's reply (outbox,
//! send, status), and the customer's next message (the auto-replies armed again).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use jiff::SignedDuration;
use omnichat::adapters::units::{UnitMeter, Units};
use omnichat::domain::{Customer, InboundKind, InboundMessage, Provider};
use omnichat::ports::events::{DomainEvent, EventError};
use omnichat::ports::{EventBus, Store};
use omnichat::providers::Providers;
use omnichat::usecases::ingest::{self, IngestOutcome};
use omnichat::usecases::{Context, dialogs};
use omnichat_bench::{Ports, TimerWorld, embedded};
use serde_json::{Value, json};

/// Counts what is published: entries (each a `PutEvents` entry on AWS) and those the router gets.
#[derive(Default)]
struct CountingBus {
    entries: AtomicU64,
    for_router: AtomicU64,
}

#[async_trait]
impl EventBus for CountingBus {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError> {
        self.entries.fetch_add(events.len() as u64, Ordering::SeqCst);
        let routed = events.iter().filter(|event| event.for_router()).count();
        self.for_router.fetch_add(routed as u64, Ordering::SeqCst);
        Ok(())
    }
}

impl CountingBus {
    fn take(&self) -> (u64, u64) {
        (self.entries.swap(0, Ordering::SeqCst), self.for_router.swap(0, Ordering::SeqCst))
    }
}

struct Meter {
    units: Arc<UnitMeter>,
    bus: Arc<CountingBus>,
}

impl Meter {
    fn step(&self, name: &str, count: usize) -> Value {
        let Units { table_writes, index_writes, reads } = self.units.take();
        let (entries, for_router) = self.bus.take();
        let per = |total: f64| total / count as f64;
        json!({
            "step": name,
            "count": count,
            "table_write_units": per(table_writes),
            "index_write_units": per(index_writes),
            "write_units": per(table_writes + index_writes),
            "read_units": per(reads),
            "event_entries": per(entries as f64),
            "router_invocations": per(for_router as f64),
        })
    }
}

fn message(n: usize) -> InboundMessage {
    InboundMessage {
        dedup_key: format!("units-{n}"),
        kind: InboundKind::Message,
        customer: Customer { id: "units-customer".into(), name: Some("Ann".into()), handle: None },
        provider_message_id: Some(format!("units-{n}")),
        text: Some(format!("Hello, this is message {n} about my order")),
        attachments: Vec::new(),
        sent_at: None,
    }
}

async fn measure(store_name: &str, ports: Ports) -> Result<Value, String> {
    let units = Arc::new(UnitMeter::new(Arc::clone(&ports.store)));
    let world = TimerWorld::new(&ports, units.clone()).await?;
    ports.copy_seeded(store_name).await?;
    let bus = Arc::new(CountingBus::default());
    let store: Arc<dyn Store> = units.clone();
    let ctx = Context::new(
        store,
        Arc::clone(&ports.secrets),
        bus.clone(),
        world.clock.clone(),
        Providers::default().with(Provider::Telegram, world.provider.clone()),
        "https://bench.example",
    );
    let meter = Meter { units, bus };
    let channel = Arc::clone(&world.replying);
    let ingest = |n: usize| {
        let (ctx, channel) = (&ctx, Arc::clone(&channel));
        async move { ingest::ingest(ctx, &channel, &message(n)).await.map_err(|e| e.to_string()) }
    };
    meter.units.take();
    meter.bus.take();
    let mut steps = Vec::new();

    let dialog = match ingest(0).await? {
        IngestOutcome::Stored { dialog_id, opened_dialog: true, .. } => dialog_id,
        other => return Err(format!("the first message: {other:?}")),
    };
    steps.push(meter.step("first message (opens the dialog)", 1));
    for n in 1..=5 {
        world.clock.advance(SignedDuration::from_secs(5));
        ingest(n).await?;
    }
    steps.push(meter.step("steady state: next message, 5 s apart", 5));
    world.clock.advance(SignedDuration::from_secs(60));
    ingest(6).await?;
    steps.push(meter.step("a minute on (the dialog item takes the activity)", 1));
    if ingest(6).await? != IngestOutcome::Duplicate {
        return Err("the repeated delivery was stored".into());
    }
    steps.push(meter.step("repeated delivery", 1));
    world.clock.advance(SignedDuration::from_secs(30));
    dialogs::reply(&ctx, &world.admin, dialog.as_str(), dialogs::Reply::text("We are on it"))
        .await
        .map_err(|e| e.to_string())?;
    steps.push(meter.step("employee's reply (outbox, send, status)", 1));
    world.clock.advance(SignedDuration::from_secs(30));
    ingest(7).await?;
    steps.push(meter.step("customer's message after a reply (auto-replies armed again)", 1));
    Ok(json!({"store": store_name, "steps": steps}))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let mut stores = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().as_deref()) {
            ("--store", Some(store @ ("embedded" | "moto"))) => stores.push(store.to_owned()),
            _ => return Err(format!("usage: units [--store embedded|moto]... (got {arg})")),
        }
    }
    if stores.is_empty() {
        stores.push("embedded".into());
    }
    let mut results = Vec::new();
    for (run, store) in stores.iter().enumerate() {
        let ports = match store.as_str() {
            "moto" => omnichat_bench::moto("units", run).await?,
            _ => embedded()?,
        };
        results.push(measure(store, ports).await?);
    }
    let out = serde_json::to_string_pretty(&json!({"stores": results})).map_err(|e| e.to_string())?;
    println!("{out}");
    Ok(())
}
