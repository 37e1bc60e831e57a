//! Timers on every adapter set (docs/ARCHITECTURE.md invariants 4 and 5): overlapping ticks send each
//! auto-reply once, an employee's reply racing a due auto-reply wins cleanly, and a tick reads only
//! what is due, not what exists.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use omnichat::adapters::counting::{CountingStore, StoreCounts};
use omnichat::domain::{Account, Channel, Customer, Features, InboundKind, InboundMessage, Provider};
use omnichat::ports::clock::ManualClock;
use omnichat::ports::{Key, Store, StoreError, Write};
use omnichat::providers::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, Outgoing, ProviderError, Providers, Sent,
    WebhookError, WebhookRequest,
};
use omnichat::usecases::auth::{self, Principal};
use omnichat::usecases::channels::{self, NewChannel};
use omnichat::usecases::due::Run;
use omnichat::usecases::ingest::{self, IngestOutcome};
use omnichat::usecases::{Context, dialogs, tenants, timers};
use serde_json::{Map, Value, json};

use super::AdapterSet;

/// A provider that accepts everything and counts what it was asked to send, per customer.
#[derive(Default)]
struct CountingProvider {
    sends: std::sync::Mutex<Vec<(String, String)>>,
    /// The texts sent marked as automatic (e-mail's `Auto-Submitted`).
    automatic: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl ChannelProvider for CountingProvider {
    async fn connect(&self, _credentials: &Map<String, Value>) -> omnichat::error::Result<Connection> {
        Ok(Connection {
            account: Account { id: uuid::Uuid::now_v7().to_string(), name: "counting".into() },
            secrets: ChannelSecrets::default(),
            masked: Default::default(),
        })
    }

    fn receive(&self, _: &ChannelSecrets, _: &WebhookRequest) -> Result<Delivery, WebhookError> {
        Ok(Delivery::default())
    }

    async fn send(&self, _: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError> {
        self.sends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((out.customer_id.clone(), out.text.clone()));
        if out.automatic {
            self.automatic.lock().unwrap_or_else(|p| p.into_inner()).push(out.text.clone());
        }
        Ok(Sent { provider_message_id: None })
    }
}

impl CountingProvider {
    fn sent(&self) -> Vec<(String, String)> {
        self.sends.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

struct Scene {
    ctx: Arc<Context>,
    clock: Arc<ManualClock>,
    provider: Arc<CountingProvider>,
    channel: Channel,
    admin: Principal,
}

const START: i64 = 1_800_000_000;

async fn scene(store: Arc<dyn Store>, set: &AdapterSet, settings: Value) -> Scene {
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(START).expect("valid")));
    let provider = Arc::new(CountingProvider::default());
    let providers = Providers::default().with(Provider::Telegram, provider.clone());
    let ctx = Arc::new(Context::new(
        store,
        set.2.clone(),
        set.3.clone(),
        clock.clone(),
        providers,
        "https://x.test",
    ));
    let (tenant, key) = tenants::create_tenant(&ctx, "t", Features::default()).await.expect("tenant");
    let admin = auth::authenticate(&ctx, Some(key.expose())).await.expect("admin");
    assert_eq!(admin.tenant_id, tenant.id);
    let new = NewChannel {
        provider: Provider::Telegram,
        name: "bot".into(),
        credentials: Map::new(),
        settings: omnichat::domain::ChannelSettings::from_json(&settings).expect("valid settings"),
    };
    let channel = channels::create_channel(&ctx, &admin, new).await.expect("channel").channel;
    Scene { ctx, clock, provider, channel, admin }
}

impl Scene {
    async fn customer_writes(&self, customer: &str) -> String {
        let inbound = InboundMessage {
            dedup_key: format!("{customer}-{}", uuid::Uuid::now_v7()),
            kind: InboundKind::Message,
            customer: Customer { id: customer.into(), name: None, handle: None },
            provider_message_id: None,
            text: Some("hello".into()),
            attachments: Vec::new(),
            sent_at: None,
        };
        match ingest::ingest(&self.ctx, &self.channel, &inbound).await.expect("ingest") {
            IngestOutcome::Stored { dialog_id, .. } => dialog_id.to_string(),
            // A slow emulator may time out an applied transaction and the SDK retry it: stored once.
            IngestOutcome::Duplicate => {
                let pointer = Key::new(format!("OPEN#{}#{customer}", self.channel.id), "OPEN");
                let item = self.ctx.store.get(&pointer).await.expect("get").expect("the open dialog");
                item["dialog_id"].as_str().expect("dialog id").to_owned()
            }
            IngestOutcome::ChannelChanged => panic!("the scene's channel is the stored one"),
        }
    }

    fn advance(&self, seconds: i64) {
        self.clock.advance(SignedDuration::from_secs(seconds));
    }
}

pub async fn overlapping_ticks_send_each_auto_reply_once(set: AdapterSet) {
    let s = scene(set.1.clone(), &set, json!({"auto_replies": [{"text": "auto", "delay_seconds": 5}]})).await;
    for i in 0..20 {
        s.customer_writes(&format!("c{i}")).await;
    }
    s.advance(5);
    let ctx = s.ctx.clone();
    let ticks = super::all_at_once(4, |_| {
        let ctx = ctx.clone();
        async move { timers::send_due_auto_replies(&ctx, Run::to_the_end()).await.expect("tick") }
    })
    .await;
    let sent: usize = ticks.iter().map(|t| t.sent).sum();
    assert_eq!(sent, 20, "{ticks:?}");
    let mut customers: Vec<String> = s.provider.sent().into_iter().map(|(c, _)| c).collect();
    customers.sort();
    customers.dedup();
    assert_eq!((customers.len(), s.provider.sent().len()), (20, 20), "each customer got exactly one");
    // And nothing more later.
    s.advance(3600);
    assert_eq!(timers::send_due_auto_replies(&s.ctx, Run::to_the_end()).await.expect("tick").sent, 0);
}

pub async fn a_reply_racing_a_due_auto_reply_wins_cleanly(set: AdapterSet) {
    let s = scene(set.1.clone(), &set, json!({"auto_replies": [{"text": "auto", "delay_seconds": 5}]})).await;
    let mut dialog_ids = Vec::new();
    for i in 0..10 {
        dialog_ids.push(s.customer_writes(&format!("c{i}")).await);
    }
    s.advance(5);
    let ctx = s.ctx.clone();
    let admin = Arc::new(s.admin.clone());
    let replies = dialog_ids.clone();
    let tick = tokio::spawn({
        let ctx = ctx.clone();
        async move { timers::send_due_auto_replies(&ctx, Run::to_the_end()).await.expect("tick") }
    });
    let answers = super::all_at_once(replies.len(), |i| {
        let (ctx, admin, id) = (ctx.clone(), admin.clone(), replies[i].clone());
        async move { dialogs::reply(&ctx, &admin, &id, dialogs::Reply::text("a human")).await.expect("reply") }
    })
    .await;
    assert_eq!(answers.len(), 10);
    tick.await.expect("tick task");
    s.advance(3600);
    timers::send_due_auto_replies(&s.ctx, Run::to_the_end()).await.expect("tick");
    for id in &dialog_ids {
        let (messages, _) =
            dialogs::list_messages(&s.ctx, &s.admin, id, 10, None, false).await.expect("messages");
        let texts: Vec<String> = messages.iter().filter_map(|m| m.text.clone()).collect();
        let autos = texts.iter().filter(|t| *t == "auto").count();
        let human_at = texts.iter().position(|t| t == "a human").expect("the reply is stored");
        assert!(autos <= 1, "{texts:?}");
        assert!(texts.iter().skip(human_at).all(|t| t != "auto"), "an auto-reply after the reply: {texts:?}");
    }
    let autos_sent = s.provider.sent().iter().filter(|(_, t)| t == "auto").count();
    // Auto-replies go out marked automatic, the people's replies do not.
    let marked = s.provider.automatic.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(marked, vec!["auto".to_owned(); autos_sent], "only auto-replies are marked automatic");
    let autos_stored: usize = {
        let mut n = 0;
        for id in &dialog_ids {
            let (messages, _) =
                dialogs::list_messages(&s.ctx, &s.admin, id, 10, None, false).await.expect("messages");
            n += messages.iter().filter(|m| m.text.as_deref() == Some("auto")).count();
        }
        n
    };
    assert_eq!(autos_sent, autos_stored, "every stored auto-reply was sent once, none beyond");
}

/// The cost figure of invariant 5: with many dialogs whose timers are far away and `DUE` whose are
/// due, one tick of each job reads the due index entries and the due dialogs only.
pub async fn a_tick_reads_what_is_due_not_what_exists(set: AdapterSet) {
    // 10,000 on the embedded store; moto serves one request at a time, slower as its table grows, while
    // the rest of the suite shares it, so it gets 500 (the figure is the same: what is due, not what exists).
    let existing: usize = if set.0 == "aws" { 500 } else { 10_000 };
    const DUE: u64 = 10;
    let counting = Arc::new(CountingStore::new(set.1.clone()));
    let s = scene(counting.clone(), &set, json!({"auto_close": {"after": 1, "unit": "hours"}})).await;
    // The due ones: real dialogs, idle for an hour by the time of the tick.
    for i in 0..DUE {
        s.customer_writes(&format!("due{i}")).await;
    }
    s.advance(1800);
    // The rest: their inactivity timers (the same items ingest writes), written in bulk to save time.
    let now = omnichat::ports::clock::Clock::now(s.clock.as_ref());
    let far: Vec<Write> = (0..existing)
        .map(|_| {
            omnichat::repo::close_timer_write(&omnichat::domain::DialogId::generate(), &s.channel, now)
                .expect("timer")
        })
        .collect();
    for chunk in far.chunks(25) {
        // Puts without conditions: repeating one after a time-out of a busy emulator changes nothing.
        let mut written = set.1.transact(chunk.to_vec()).await;
        for _ in 0..3 {
            if !matches!(written, Err(StoreError::Unavailable(_))) {
                break;
            }
            written = set.1.transact(chunk.to_vec()).await;
        }
        written.expect("bulk timers");
    }
    s.advance(1800);
    counting.reset();
    let closed = timers::close_inactive_dialogs(&s.ctx, Run::to_the_end()).await.expect("tick").closed;
    let StoreCounts { items_read: items, reads: queries, .. } = counting.counts();
    assert_eq!(closed as u64, DUE);
    eprintln!(
        "[{}] inactivity tick with {existing} waiting and {DUE} due: {items} items read in {queries} reads",
        set.0
    );
    // Per due dialog: its index entry, the dialog, its customer's open-dialog pointer (the exact last
    // activity) and its channel. Nothing proportional to EXISTING.
    assert!(items <= 4 * DUE + 8, "read {items} items for {DUE} due timers");
    counting.reset();
    let tick = timers::send_due_auto_replies(&s.ctx, Run::to_the_end()).await.expect("tick");
    let items = counting.counts().items_read;
    eprintln!("[{}] auto-reply tick with nothing due: {items} items read", set.0);
    assert_eq!((tick.sent, items), (0, 0));
}
