//! The outbox on every adapter set (docs/ARCHITECTURE.md invariant 3): a reply is sent at most once even
//! when senders race, retries keep their backoff and end in `failed` with a `MessageFailed` event, and a
//! send cut short by a crash is repeated only where the provider makes repeats safe.
//!
//! The provider here is scripted (each call answers the next step: sent, a failure, or never), and the
//! clock is manual, so every due time is checked to the second.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use omnichat::domain::{
    Account, Channel, Customer, Features, InboundKind, InboundMessage, Message, OutStatus, Provider,
};
use omnichat::ports::clock::ManualClock;
use omnichat::ports::{DomainEvent, EventBus, EventError};
use omnichat::providers::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, Outgoing, ProviderError, Providers, Sent,
    StatusUpdate, WebhookError, WebhookRequest,
};
use omnichat::usecases::auth::{self, Principal};
use omnichat::usecases::channels::{self, NewChannel};
use omnichat::usecases::due::Run;
use omnichat::usecases::ingest::{self, IngestOutcome};
use omnichat::usecases::outbox::{self, Attempt, MAX_ATTEMPTS};
use omnichat::usecases::{Context, dialogs, tenants};
use serde_json::{Map, Value};

use super::AdapterSet;

/// What the provider does with the next send.
#[derive(Debug, Clone, Copy)]
enum Step {
    Sent,
    /// Sent, and the provider names the message by this id (its delivery reports will).
    SentAs(&'static str),
    Unavailable,
    RateLimited {
        seconds: u64,
    },
    /// The call never returns: the sender is killed while it waits.
    Hang,
}

struct ScriptedProvider {
    idempotent: bool,
    script: Mutex<VecDeque<Step>>,
    /// The idempotency key of every call, in order.
    calls: Mutex<Vec<String>>,
    called: tokio::sync::Notify,
}

impl ScriptedProvider {
    fn new(idempotent: bool, script: &[Step]) -> Self {
        Self {
            idempotent,
            script: Mutex::new(script.iter().copied().collect()),
            calls: Mutex::new(Vec::new()),
            called: tokio::sync::Notify::new(),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl ChannelProvider for ScriptedProvider {
    async fn connect(&self, _credentials: &Map<String, Value>) -> omnichat::error::Result<Connection> {
        Ok(Connection {
            account: Account { id: uuid::Uuid::now_v7().to_string(), name: "scripted".into() },
            secrets: ChannelSecrets::default(),
            masked: Default::default(),
        })
    }

    fn receive(&self, _: &ChannelSecrets, _: &WebhookRequest) -> Result<Delivery, WebhookError> {
        Ok(Delivery::default())
    }

    async fn send(&self, _: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError> {
        let step = {
            self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(out.idempotency_key.clone());
            self.script.lock().unwrap_or_else(|p| p.into_inner()).pop_front().unwrap_or(Step::Sent)
        };
        self.called.notify_one();
        match step {
            Step::Sent => Ok(Sent { provider_message_id: None }),
            Step::SentAs(id) => Ok(Sent { provider_message_id: Some(id.to_owned()) }),
            Step::Unavailable => Err(ProviderError::Unavailable("503 from the script".into())),
            Step::RateLimited { seconds } => {
                Err(ProviderError::RateLimited { retry_after: Duration::from_secs(seconds) })
            }
            Step::Hang => std::future::pending().await,
        }
    }

    fn idempotent_sends(&self) -> bool {
        self.idempotent
    }
}

/// The adapter's bus, and a copy of every event published through it.
struct RecordingBus {
    inner: Arc<dyn EventBus>,
    events: Mutex<Vec<DomainEvent>>,
}

#[async_trait]
impl EventBus for RecordingBus {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(events);
        self.inner.publish(events).await
    }
}

impl RecordingBus {
    /// The messages reported delivered, in order.
    fn deliveries(&self) -> Vec<String> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events
            .iter()
            .filter_map(|event| match event {
                DomainEvent::MessageDelivered { message_id, .. } => Some(message_id.to_string()),
                _ => None,
            })
            .collect()
    }

    fn failures(&self) -> Vec<(String, String)> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events
            .iter()
            .filter_map(|event| match event {
                DomainEvent::MessageFailed { message_id, reason, .. } => {
                    Some((message_id.to_string(), reason.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

struct Scene {
    ctx: Arc<Context>,
    clock: Arc<ManualClock>,
    provider: Arc<ScriptedProvider>,
    bus: Arc<RecordingBus>,
    admin: Principal,
    channel: Channel,
    dialog: String,
}

const START: i64 = 1_800_000_000;

/// A tenant, a channel on the scripted provider, and a dialog its customer opened.
async fn scene(set: &AdapterSet, provider: ScriptedProvider) -> Scene {
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(START).expect("valid")));
    let provider = Arc::new(provider);
    let bus = Arc::new(RecordingBus { inner: set.3.clone(), events: Mutex::new(Vec::new()) });
    let ctx = Arc::new(Context::new(
        set.1.clone(),
        set.2.clone(),
        bus.clone(),
        clock.clone(),
        Providers::default().with(Provider::Telegram, provider.clone()),
        "https://x.test",
    ));
    let (_, key) = tenants::create_tenant(&ctx, "t", Features::default()).await.expect("tenant");
    let admin = auth::authenticate(&ctx, Some(key.expose())).await.expect("admin");
    let new = NewChannel {
        provider: Provider::Telegram,
        name: "bot".into(),
        credentials: Map::new(),
        settings: Default::default(),
    };
    let channel = channels::create_channel(&ctx, &admin, new).await.expect("channel").channel;
    let inbound = InboundMessage {
        dedup_key: uuid::Uuid::now_v7().to_string(),
        kind: InboundKind::Message,
        customer: Customer { id: "c1".into(), name: None, handle: None },
        provider_message_id: None,
        text: Some("hello".into()),
        attachments: Vec::new(),
        sent_at: None,
    };
    let dialog = match ingest::ingest(&ctx, &channel, &inbound).await.expect("ingest") {
        IngestOutcome::Stored { dialog_id, .. } => dialog_id.to_string(),
        other => panic!("the first message is stored: {other:?}"),
    };
    Scene { ctx, clock, provider, bus, admin, channel, dialog }
}

impl Scene {
    async fn reply(&self, text: &str) -> Message {
        dialogs::reply(&self.ctx, &self.admin, &self.dialog, dialogs::Reply::text(text)).await.expect("reply")
    }

    async fn stored(&self, message: &Message) -> Message {
        outbox::load_message(&self.ctx, &message.dialog_id, &message.id)
            .await
            .expect("read")
            .expect("the message is stored")
    }

    fn advance(&self, seconds: i64) {
        self.clock.advance(SignedDuration::from_secs(seconds));
    }
}

pub async fn racing_senders_of_one_message_make_one_provider_call(set: AdapterSet) {
    // The reply's own try fails, so the message waits for its retry, 4 s later.
    let s = scene(&set, ScriptedProvider::new(false, &[Step::Unavailable])).await;
    let message = s.reply("one of a kind").await;
    assert_eq!((s.stored(&message).await.status, s.provider.calls().len()), (Some(OutStatus::Pending), 1));
    s.advance(4);
    let ctx = s.ctx.clone();
    let id = message.id.clone();
    let attempts = super::all_at_once(8, |_| {
        let (ctx, id) = (ctx.clone(), id.clone());
        async move { outbox::deliver(&ctx, &id).await.expect("deliver") }
    })
    .await;
    let sent = attempts.iter().filter(|a| **a == Attempt::Sent).count();
    let skipped = attempts.iter().filter(|a| **a == Attempt::Skipped).count();
    assert_eq!((sent, skipped), (1, 7), "{attempts:?}");
    assert_eq!(s.provider.calls(), vec![message.id.to_string(); 2], "one failed try, then one send");
    assert_eq!(s.stored(&message).await.status, Some(OutStatus::Sent));
    // Nothing is left to send.
    s.advance(3600);
    assert_eq!(outbox::deliver_due(&s.ctx, Run::to_the_end()).await.expect("tick"), Vec::new());
    assert_eq!(s.provider.calls().len(), 2);
}

pub async fn retries_keep_their_backoff_and_the_last_failure_is_reported(set: AdapterSet) {
    use Step::{RateLimited, Unavailable};
    // Five tries in all (MAX_ATTEMPTS); the third is throttled for longer than its backoff.
    let script = [Unavailable, Unavailable, RateLimited { seconds: 90 }, Unavailable, Unavailable];
    assert_eq!(script.len(), MAX_ATTEMPTS as usize);
    let s = scene(&set, ScriptedProvider::new(false, &script)).await;
    let message = s.reply("are you there?").await;
    // The wait after each failed try: 2 s doubled per try (4, 8, then 16 but the provider asked for 90,
    // then 32); the fifth failure is the last.
    for (attempt, wait) in [(2, 4), (3, 8), (4, 90), (5, 32)] {
        s.advance(wait - 1);
        assert_eq!(
            outbox::deliver_due(&s.ctx, Run::to_the_end()).await.expect("tick"),
            Vec::new(),
            "early for try {attempt}"
        );
        assert_eq!(s.provider.calls().len(), attempt - 1, "no try before its time");
        s.advance(1);
        let tick = outbox::deliver_due(&s.ctx, Run::to_the_end()).await.expect("tick");
        assert_eq!(s.provider.calls().len(), attempt, "try {attempt} at its time: {tick:?}");
        if attempt < MAX_ATTEMPTS as usize {
            assert!(matches!(tick.as_slice(), [Attempt::Retrying { .. }]), "{tick:?}");
            assert_eq!(s.stored(&message).await.status, Some(OutStatus::Pending));
        } else {
            assert!(matches!(tick.as_slice(), [Attempt::Failed { .. }]), "{tick:?}");
        }
    }
    let stored = s.stored(&message).await;
    assert_eq!(stored.status, Some(OutStatus::Failed));
    let reason = stored.failure.expect("the failure is kept");
    assert!(reason.contains("503 from the script"), "{reason}");
    assert_eq!(
        s.bus.failures(),
        vec![(message.id.to_string(), reason)],
        "one MessageFailed, with the reason"
    );
    s.advance(86_400);
    assert_eq!(outbox::deliver_due(&s.ctx, Run::to_the_end()).await.expect("tick"), Vec::new());
    assert_eq!(s.provider.calls().len(), MAX_ATTEMPTS as usize, "nothing after the last try");
}

/// The sender dies in the middle of the provider call (its task is aborted while the call hangs): the
/// claim stays, and once its lease (60 s) is over the message is taken up again.
async fn interrupted_send(set: &AdapterSet, idempotent: bool) -> (Scene, Message) {
    let s = scene(set, ScriptedProvider::new(idempotent, &[Step::Hang])).await;
    let ctx = s.ctx.clone();
    let (admin, dialog) = (s.admin.clone(), s.dialog.clone());
    let replying = tokio::spawn(async move {
        dialogs::reply(&ctx, &admin, &dialog, dialogs::Reply::text("cut short")).await.expect("reply")
    });
    tokio::time::timeout(Duration::from_secs(30), s.provider.called.notified())
        .await
        .expect("the send reached the provider");
    replying.abort();
    assert!(replying.await.is_err_and(|e| e.is_cancelled()), "the sender was killed mid-call");
    let (messages, _) =
        dialogs::list_messages(&s.ctx, &s.admin, &s.dialog, 10, None, false).await.expect("messages");
    let message = messages.into_iter().find(|m| m.text.as_deref() == Some("cut short")).expect("stored");
    assert_eq!(message.status, Some(OutStatus::Pending));
    // Still claimed: nothing happens within the lease.
    s.advance(59);
    assert_eq!(outbox::deliver_due(&s.ctx, Run::to_the_end()).await.expect("tick"), Vec::new());
    s.advance(1);
    (s, message)
}

pub async fn an_interrupted_send_is_failed_not_repeated_without_idempotent_sends(set: AdapterSet) {
    let (s, message) = interrupted_send(&set, false).await;
    let tick = outbox::deliver_due(&s.ctx, Run::to_the_end()).await.expect("tick");
    assert!(matches!(tick.as_slice(), [Attempt::Failed { .. }]), "{tick:?}");
    assert_eq!(s.provider.calls().len(), 1, "the unknown outcome is not repeated");
    let stored = s.stored(&message).await;
    assert_eq!(stored.status, Some(OutStatus::Failed));
    let reason = stored.failure.expect("a reason");
    assert!(reason.contains("interrupted send is unknown"), "{reason}");
    assert_eq!(s.bus.failures(), vec![(message.id.to_string(), reason)]);
    assert_eq!(s.channel.provider, Provider::Telegram);
}

pub async fn an_interrupted_send_is_repeated_with_the_same_key_where_sends_are_idempotent(set: AdapterSet) {
    let (s, message) = interrupted_send(&set, true).await;
    let tick = outbox::deliver_due(&s.ctx, Run::to_the_end()).await.expect("tick");
    assert_eq!(tick, vec![Attempt::Sent]);
    // The same idempotency key (VK's random_id, edna's requestId): the provider keeps one message.
    assert_eq!(s.provider.calls(), vec![message.id.to_string(); 2]);
    assert_eq!(s.stored(&message).await.status, Some(OutStatus::Sent));
    assert_eq!(s.bus.failures(), Vec::new());
}

fn report(id: &str, status: OutStatus, reason: Option<&str>) -> StatusUpdate {
    StatusUpdate { provider_message_id: id.into(), status, reason: reason.map(str::to_owned) }
}

/// A delivery report can overtake the record of its send (the provider reports before our write lands):
/// it is kept and applied when the send is recorded, and later reports never move the message back.
pub async fn a_report_before_the_send_is_recorded_is_applied_when_it_is(set: AdapterSet) {
    let s = scene(&set, ScriptedProvider::new(false, &[Step::Unavailable, Step::SentAs("pm-early")])).await;
    let message = s.reply("fast provider").await;
    let delivered = report("pm-early", OutStatus::Delivered, None);
    assert!(
        !outbox::apply_status(&s.ctx, &s.channel, &delivered).await.expect("report"),
        "nothing to apply yet"
    );
    assert_eq!(s.stored(&message).await.status, Some(OutStatus::Pending));
    s.advance(4);
    assert_eq!(outbox::deliver_due(&s.ctx, Run::to_the_end()).await.expect("tick"), vec![Attempt::Sent]);
    let stored = s.stored(&message).await;
    assert_eq!(
        (stored.status, stored.provider_message_id.as_deref()),
        (Some(OutStatus::Delivered), Some("pm-early"))
    );
    let late = report("pm-early", OutStatus::Failed, Some("late"));
    assert!(!outbox::apply_status(&s.ctx, &s.channel, &late).await.expect("report"));
    assert_eq!(s.stored(&message).await.status, Some(OutStatus::Delivered), "never back");

    // The usual order still works: a recorded send takes its report at once.
    let s = scene(&set, ScriptedProvider::new(false, &[Step::SentAs("pm-usual")])).await;
    let message = s.reply("usual").await;
    assert_eq!(s.stored(&message).await.status, Some(OutStatus::Sent));
    let failed = report("pm-usual", OutStatus::Failed, Some("blocked by the user"));
    assert!(outbox::apply_status(&s.ctx, &s.channel, &failed).await.expect("report"));
    let stored = s.stored(&message).await;
    assert_eq!(
        (stored.status, stored.failure.as_deref()),
        (Some(OutStatus::Failed), Some("blocked by the user"))
    );
    // An applied report is published (an open workspace shows it at once); one not applied is not.
    assert_eq!(s.bus.failures(), vec![(message.id.to_string(), "blocked by the user".to_owned())]);
    let s = scene(&set, ScriptedProvider::new(false, &[Step::SentAs("pm-delivered")])).await;
    let message = s.reply("delivered").await;
    let delivered = report("pm-delivered", OutStatus::Delivered, None);
    assert!(outbox::apply_status(&s.ctx, &s.channel, &delivered).await.expect("report"));
    assert!(!outbox::apply_status(&s.ctx, &s.channel, &delivered).await.expect("report"), "once");
    assert_eq!(s.bus.deliveries(), vec![message.id.to_string()]);
}
