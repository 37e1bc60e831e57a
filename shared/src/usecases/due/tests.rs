//! Draining the due index on the embedded store with a clock the tests move: one run gets through more
//! than a page of every shard (auto-replies, closes, outbox retries), acts on each item once, stops taking
//! work at its stop time and leaves the rest due, passes over items it cannot act on without reading them
//! again, and still finds items the earlier 4-shard layout wrote. `Scene` is shared with the timers' tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::*;
use crate::adapters::embedded::{FileSecretStore, RedbStore};
use crate::domain::{
    Account, Channel, ChannelSettings, Customer, DialogId, DialogStatus, Features, InboundKind,
    InboundMessage, Provider,
};
use crate::ports::clock::{Clock, ManualClock};
use crate::ports::events::{DomainEvent, EventBus, EventError};
use crate::ports::store::{Condition, Key, Write};
use crate::providers::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, Outgoing, ProviderError, Providers, Sent,
    WebhookError, WebhookRequest,
};
use crate::usecases::auth::{Principal, Role};
use crate::usecases::channels::{self, NewChannel};
use crate::usecases::ingest::{self, IngestOutcome};
use crate::usecases::{Context, outbox, tenants, timers};

/// 2027-01-15T08:00:00Z.
pub(crate) const T0: i64 = 1_800_000_000;

struct DropEverything;

#[async_trait::async_trait]
impl EventBus for DropEverything {
    async fn publish(&self, _events: &[DomainEvent]) -> std::result::Result<(), EventError> {
        Ok(())
    }
}

/// A provider that counts what it sends per customer; it can be told to fail (a retryable 503) or to take
/// its time (a provider's HTTP call).
#[derive(Default)]
pub(crate) struct CountingProvider {
    accounts: AtomicUsize,
    sent: Mutex<HashMap<String, usize>>,
    failing: AtomicBool,
    failed: AtomicUsize,
    pub(crate) delay: Mutex<Duration>,
}

#[async_trait::async_trait]
impl ChannelProvider for CountingProvider {
    async fn connect(&self, _: &Map<String, Value>) -> crate::error::Result<Connection> {
        let id = self.accounts.fetch_add(1, Ordering::SeqCst).to_string();
        Ok(Connection {
            account: Account { id: id.clone(), name: format!("bot {id}") },
            secrets: ChannelSecrets::default(),
            masked: Default::default(),
        })
    }

    fn receive(&self, _: &ChannelSecrets, _: &WebhookRequest) -> std::result::Result<Delivery, WebhookError> {
        Ok(Delivery::default())
    }

    async fn send(&self, _: &ChannelSecrets, out: &Outgoing) -> std::result::Result<Sent, ProviderError> {
        let delay = *self.delay.lock().unwrap_or_else(|p| p.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(ProviderError::Unavailable("503 from the test".into()));
        }
        *self.sent.lock().unwrap_or_else(|p| p.into_inner()).entry(out.customer_id.clone()).or_default() += 1;
        Ok(Sent { provider_message_id: None })
    }
}

impl CountingProvider {
    /// Sends per customer so far.
    pub(crate) fn sent(&self) -> HashMap<String, usize> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn total(&self) -> usize {
        self.sent().values().sum()
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

pub(crate) struct Scene {
    pub(crate) ctx: Arc<Context>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) provider: Arc<CountingProvider>,
    pub(crate) admin: Principal,
    pub(crate) channel: Arc<Channel>,
    _dir: tempfile::TempDir,
}

/// A tenant with one channel of these settings, on a fresh embedded store at [`T0`].
pub(crate) async fn scene(settings: Value) -> Scene {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn crate::ports::Store> =
        Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store"));
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(T0).expect("valid")));
    let provider = Arc::new(CountingProvider::default());
    let ctx = Arc::new(Context::new(
        store,
        Arc::new(FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets")),
        Arc::new(DropEverything),
        clock.clone(),
        Providers::default().with(Provider::Telegram, provider.clone()),
        "https://example.test",
    ));
    let (tenant, _) = tenants::create_tenant(&ctx, "Acme", Features::default()).await.expect("tenant");
    let admin = Principal { tenant_id: tenant.id, role: Role::Admin, employee_id: None };
    let channel = connect(&ctx, &admin, settings).await;
    Scene { ctx, clock, provider, admin, channel, _dir: dir }
}

async fn connect(ctx: &Context, admin: &Principal, settings: Value) -> Arc<Channel> {
    let new = NewChannel {
        provider: Provider::Telegram,
        name: "bot".into(),
        credentials: Map::new(),
        settings: ChannelSettings::from_json(&settings).expect("valid settings"),
    };
    Arc::new(channels::create_channel(ctx, admin, new).await.expect("channel").channel)
}

impl Scene {
    /// Another channel of the tenant.
    pub(crate) async fn connect(&self, settings: Value) -> Arc<Channel> {
        connect(&self.ctx, &self.admin, settings).await
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn advance(&self, seconds: i64) {
        self.clock.advance(SignedDuration::from_secs(seconds));
    }

    /// The customer's message through the real ingest path; answers the dialog.
    pub(crate) async fn customer_writes(&self, channel: &Channel, customer: &str) -> DialogId {
        let inbound = InboundMessage {
            dedup_key: format!("{customer}-{}", uuid::Uuid::now_v7()),
            kind: InboundKind::Message,
            customer: Customer { id: customer.into(), name: None, handle: None },
            provider_message_id: None,
            text: Some("hello".into()),
            attachments: Vec::new(),
            sent_at: None,
        };
        match ingest::ingest(&self.ctx, channel, &inbound).await.expect("ingest") {
            IngestOutcome::Stored { dialog_id, .. } => dialog_id,
            other => panic!("not stored: {other:?}"),
        }
    }

    /// `n` customers (`c0`...) write on the scene's channel, many at once.
    pub(crate) async fn customers_write(&self, n: usize) -> Vec<DialogId> {
        let mut running = tokio::task::JoinSet::new();
        for i in 0..n {
            let (ctx, channel) = (Arc::clone(&self.ctx), Arc::clone(&self.channel));
            running.spawn(async move {
                let inbound = InboundMessage {
                    dedup_key: format!("seed-{i}"),
                    kind: InboundKind::Message,
                    customer: Customer { id: format!("c{i}"), name: None, handle: None },
                    provider_message_id: None,
                    text: Some("hello".into()),
                    attachments: Vec::new(),
                    sent_at: None,
                };
                match ingest::ingest(&ctx, &channel, &inbound).await.expect("ingest") {
                    IngestOutcome::Stored { dialog_id, .. } => dialog_id,
                    other => panic!("not stored: {other:?}"),
                }
            });
            if running.len() >= 64
                && let Some(done) = running.join_next().await
            {
                done.expect("seeding task");
            }
        }
        let mut dialogs = Vec::with_capacity(n);
        while let Some(done) = running.join_next().await {
            dialogs.push(done.expect("seeding task"));
        }
        dialogs
    }

    /// The dialogs of the tenant in `status`, every page.
    pub(crate) async fn dialogs_with(&self, status: DialogStatus) -> usize {
        let mut count = 0;
        let mut after = None;
        loop {
            let query =
                Query::index(Index::Gsi2, repo::dialogs_with_status(&self.admin.tenant_id, status.as_str()))
                    .limit(500)
                    .after(after);
            let page = self.ctx.store.query(&query).await.expect("query");
            count += page.items.len();
            match page.next {
                Some(next) => after = Some(next),
                None => return count,
            }
        }
    }

    /// The item stored under `key`.
    pub(crate) async fn item(&self, key: &Key) -> Option<Item> {
        self.ctx.store.get(key).await.expect("get")
    }
}

/// Pages of 10: 1,000 due items over 64 shards are about 16 a shard, so one page a shard (640 at most)
/// cannot get through them; only reading on does.
fn small_pages() -> Run {
    Run { page: 10, ..Run::to_the_end() }
}

const MANY: usize = 1_000;

fn auto_reply() -> Value {
    json!({"auto_replies": [{"text": "We will answer soon", "delay_seconds": 5}], "off_hours": {"auto_replies": true}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_sends_a_thousand_due_auto_replies_each_once() {
    let s = scene(auto_reply()).await;
    s.customers_write(MANY).await;
    s.advance(5);
    let tick = timers::send_due_auto_replies(&s.ctx, small_pages()).await.expect("run");
    assert_eq!((tick.sent, tick.failed, tick.left_due), (MANY, 0, false), "{tick:?}");
    let sent = s.provider.sent();
    assert_eq!(sent.len(), MANY, "every customer got one");
    assert!(sent.values().all(|&n| n == 1), "none got two");
    s.advance(3600);
    let again = timers::send_due_auto_replies(&s.ctx, small_pages()).await.expect("run");
    assert_eq!((again.sent, s.provider.total()), (0, MANY), "nothing is due any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_closes_a_thousand_idle_dialogs() {
    let s = scene(json!({"auto_close": {"after": 1, "unit": "hours"}})).await;
    s.customers_write(MANY).await;
    s.advance(3600);
    let tick = timers::close_inactive_dialogs(&s.ctx, small_pages()).await.expect("run");
    assert_eq!((tick.closed, tick.rearmed, tick.failed, tick.left_due), (MANY, 0, 0, false), "{tick:?}");
    assert_eq!(s.dialogs_with(DialogStatus::Closed).await, MANY);
    assert_eq!(s.dialogs_with(DialogStatus::Open).await, 0);
    let again = timers::close_inactive_dialogs(&s.ctx, small_pages()).await.expect("run");
    assert_eq!(again, timers::CloseTick::default(), "the timers went with the dialogs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_retries_a_thousand_due_outgoing_messages_each_once() {
    let s = scene(auto_reply()).await;
    s.customers_write(MANY).await;
    s.advance(5);
    // The provider is down while the auto-replies go out: each stays pending with its retry 4 s later.
    s.provider.fail(true);
    let tick = timers::send_due_auto_replies(&s.ctx, small_pages()).await.expect("run");
    assert_eq!(tick.sent, MANY);
    assert_eq!((s.provider.total(), s.provider.failed.load(Ordering::SeqCst)), (0, MANY));
    s.provider.fail(false);
    s.advance(4);
    let attempts = outbox::deliver_due(&s.ctx, small_pages()).await.expect("run");
    let sent = attempts.iter().filter(|a| **a == outbox::Attempt::Sent).count();
    assert_eq!((attempts.len(), sent), (MANY, MANY));
    let per_customer = s.provider.sent();
    assert_eq!(per_customer.len(), MANY);
    assert!(per_customer.values().all(|&n| n == 1), "none sent twice");
    s.advance(3600);
    assert_eq!(outbox::deliver_due(&s.ctx, small_pages()).await.expect("run"), Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stops_taking_work_at_its_stop_time_and_the_next_one_finishes_without_repeats() {
    const N: usize = 300;
    let s = scene(auto_reply()).await;
    s.customers_write(N).await;
    s.advance(5);
    // A stop time already past: nothing is started, everything stays due.
    let past = Run::until(Some(Instant::now()));
    let tick = timers::send_due_auto_replies(&s.ctx, past).await.expect("run");
    assert_eq!((tick.sent, tick.left_due, s.provider.total()), (0, true, 0), "{tick:?}");
    // Each send takes 20 ms: at most the first items in flight start before a stop 20 ms away.
    *s.provider.delay.lock().unwrap_or_else(|p| p.into_inner()) = Duration::from_millis(20);
    let near = Run::until(Some(Instant::now() + Duration::from_millis(20)));
    let first = timers::send_due_auto_replies(&s.ctx, near).await.expect("run");
    assert!(first.left_due, "{first:?}");
    assert!(first.sent < N, "stopped early: {first:?}");
    assert_eq!(s.provider.total(), first.sent, "what it started, it finished");
    let second = timers::send_due_auto_replies(&s.ctx, Run::to_the_end()).await.expect("run");
    assert_eq!((first.sent + second.sent, second.left_due), (N, false), "{second:?}");
    let sent = s.provider.sent();
    assert_eq!(sent.len(), N);
    assert!(sent.values().all(|&n| n == 1), "none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_a_run_cannot_act_on_are_passed_over_not_read_again() {
    const BAD: usize = 250;
    const GOOD: usize = 50;
    let s = scene(auto_reply()).await;
    s.customers_write(GOOD).await;
    // Unreadable timers (no dialog id), all in one shard: every page of that shard fails on each item.
    let due_sk = repo::due_sk(s.now(), "x");
    let bad: Vec<Write> = (0..BAD)
        .map(|i| {
            let item = json!({
                "pk": format!("BROKEN#{i}"), "sk": "TIMER#AUTOREPLY",
                "gsi3pk": repo::timer_due_pk(repo::TimerKind::AutoReply, 0),
                "gsi3sk": format!("{due_sk}{i:04}"),
            });
            Write::Put { item: item.as_object().cloned().expect("object"), condition: Condition::Always }
        })
        .collect();
    for chunk in bad.chunks(50) {
        s.ctx.store.transact(chunk.to_vec()).await.expect("broken timers");
    }
    s.advance(5);
    let run = timers::send_due_auto_replies(&s.ctx, small_pages());
    let tick = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the run ends").expect("run");
    assert_eq!((tick.sent, tick.failed, tick.left_due), (GOOD, BAD, false), "{tick:?}");
    // Each broken item was read (and failed) once: a run reading a page again would count it again.
    // They stay due; the next run passes over them once more and ends too.
    let again = timers::send_due_auto_replies(&s.ctx, small_pages()).await.expect("run");
    assert_eq!((again.sent, again.failed), (0, BAD));
    assert_eq!(s.provider.total(), GOOD);
}

/// Rewrites a due item's gsi3 partition to shard `shard` of `DUE#{job}#`, as the 4-shard layout wrote it.
async fn move_to_shard(s: &Scene, key: &Key, partition: String) {
    let mut item = s.item(key).await.expect("the due item");
    item.insert(Index::Gsi3.pk_attr().into(), Value::String(partition));
    s.ctx.store.transact(vec![Write::Put { item, condition: Condition::Always }]).await.expect("moved");
}

/// An id whose old shard (of 4) differs from its shard now (of 64).
fn moved_by_the_new_count(id: &str) -> Option<u32> {
    let old = repo::due_shard(id, 4);
    (old != repo::due_shard(id, repo::DUE_SHARDS)).then_some(old)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_items_in_the_old_four_shards_are_still_acted_on() {
    let s = scene(json!({
        "auto_replies": [{"text": "first", "delay_seconds": 5}, {"text": "second", "delay_seconds": 10}],
        "off_hours": {"auto_replies": true},
        "auto_close": {"after": 1, "unit": "hours"},
    }))
    .await;
    // A dialog whose id lands elsewhere now than under the old count.
    let mut dialog = None;
    for i in 0..50 {
        let id = s.customer_writes(&s.channel, &format!("c{i}")).await;
        if let Some(old) = moved_by_the_new_count(id.as_str()) {
            dialog = Some((id, old));
            break;
        }
    }
    let (dialog, old) = dialog.expect("one of 50 ids moves shard");
    let auto_reply = repo::timer_key(&dialog, repo::TimerKind::AutoReply);
    let close = repo::timer_key(&dialog, repo::TimerKind::Close);
    move_to_shard(&s, &auto_reply, repo::timer_due_pk(repo::TimerKind::AutoReply, old)).await;
    move_to_shard(&s, &close, repo::timer_due_pk(repo::TimerKind::Close, old)).await;

    // The auto-reply in the old shard is sent, and its next step lands in the dialog's shard of now.
    s.advance(5);
    let customers_before = s.provider.total();
    let tick = timers::send_due_auto_replies(&s.ctx, Run::to_the_end()).await.expect("run");
    assert!(tick.sent >= 1 && s.provider.total() > customers_before, "{tick:?}");
    let next = s.item(&auto_reply).await.expect("the second step");
    let now_shard =
        repo::timer_due_pk(repo::TimerKind::AutoReply, repo::due_shard(dialog.as_str(), repo::DUE_SHARDS));
    assert_eq!(next[Index::Gsi3.pk_attr()], Value::String(now_shard));

    // An outgoing message's retry in an old shard is sent.
    s.provider.fail(true);
    s.advance(5);
    timers::send_due_auto_replies(&s.ctx, Run::to_the_end()).await.expect("run");
    // The message id is random: one in 16 keeps its shard under the new count, so rather than wait for
    // one that moves, put the entry in one of the old four shards that is not its shard now.
    let (entry_key, message_id) = outbox_entries(&s).await.into_iter().next().expect("a pending entry");
    let now_outbox = repo::due_shard(&message_id, repo::DUE_SHARDS);
    let old_outbox = (0..4).find(|shard| *shard != now_outbox).expect("four old shards");
    move_to_shard(&s, &entry_key, repo::outbox_due_pk(old_outbox)).await;
    s.provider.fail(false);
    s.advance(600);
    let attempts = outbox::deliver_due(&s.ctx, Run::to_the_end()).await.expect("run");
    assert!(attempts.contains(&outbox::Attempt::Sent), "{attempts:?}");
    assert_eq!(s.item(&entry_key).await, None, "the old-shard entry was delivered");

    // The close timer in the old shard closes the dialog.
    s.advance(3600);
    let closed = timers::close_inactive_dialogs(&s.ctx, Run::to_the_end()).await.expect("run");
    assert!(closed.closed >= 1, "{closed:?}");
    let stored = repo::load_dialog(s.ctx.store.as_ref(), &dialog).await.expect("read").expect("dialog");
    assert!(stored.is_closed());
    assert_eq!(s.item(&close).await, None);
}

/// The outbox entries now due or pending, with their message ids, from every shard.
async fn outbox_entries(s: &Scene) -> Vec<(Key, String)> {
    let mut entries = Vec::new();
    for shard in 0..repo::DUE_SHARDS {
        let page =
            s.ctx.store.query(&Query::index(Index::Gsi3, repo::outbox_due_pk(shard)).limit(1000)).await;
        for item in page.expect("query").items {
            if let (Some(key), Some(id)) = (Key::of(&item), item.get("message_id").and_then(Value::as_str)) {
                entries.push((key, id.to_owned()));
            }
        }
    }
    entries
}

/// Ingest writes a new dialog's due items before the transaction that stores it: the due items of a dialog
/// that is not stored are passed over by every job while the dialog may still be on its way, and removed
/// once `UNBORN_GRACE` past due. A dialog stored meanwhile keeps them and is served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_items_of_a_dialog_not_stored_are_passed_over_then_removed() {
    let s = scene(json!({
        "auto_replies": [{"text": "We will answer soon", "delay_seconds": 5}],
        "off_hours": {"auto_replies": true},
        "auto_close": {"after": 1, "unit": "hours"}
    }))
    .await;
    let unborn = crate::domain::Dialog::open(
        s.channel.tenant_id.clone(),
        s.channel.id.clone(),
        Customer { id: "ghost".into(), name: None, handle: None },
        s.now(),
    );
    let mut writes = vec![repo::close_timer_write(&unborn.id, &s.channel, s.now()).expect("close timer")];
    writes.extend(repo::auto_reply_start_write(&unborn.id, &s.channel, s.now()).expect("auto-reply timer"));
    writes.extend(crate::usecases::routing::unrouted_marker_writes(&unborn, s.now()).expect("marker"));
    assert_eq!(writes.len(), 3);
    for write in writes {
        s.ctx.store.transact(vec![write]).await.expect("due item");
    }
    let keys = [
        repo::timer_key(&unborn.id, repo::TimerKind::AutoReply),
        repo::timer_key(&unborn.id, repo::TimerKind::Close),
        repo::route_key(&unborn.id),
    ];
    let present = async || {
        let mut present = Vec::new();
        for key in &keys {
            present.push(s.item(key).await.is_some());
        }
        present
    };
    let run_all = async || {
        let replies = timers::send_due_auto_replies(&s.ctx, Run::to_the_end()).await.expect("auto-replies");
        let closes = timers::close_inactive_dialogs(&s.ctx, Run::to_the_end()).await.expect("closes");
        let swept = crate::usecases::routing::sweep(&s.ctx, Run::to_the_end()).await.expect("sweep");
        (replies, closes, swept)
    };

    // An hour on, everything is due; the last of the three (the close timer) has been due for 4 minutes.
    s.advance(3600 + 4 * 60);
    let (replies, closes, swept) = run_all().await;
    assert_eq!((replies.unborn, replies.dropped, replies.sent), (0, 1, 0), "{replies:?}");
    assert_eq!((closes.unborn, closes.dropped), (1, 0), "{closes:?}");
    assert_eq!(swept.dialogs, 1, "{swept:?}");
    assert_eq!(present().await, [false, true, false], "only the close timer is within the grace");
    assert_eq!(s.provider.total(), 0, "no auto-reply for a dialog that does not exist");

    s.advance(60);
    let (_, closes, _) = run_all().await;
    assert_eq!((closes.unborn, closes.dropped), (0, 1), "{closes:?}");
    assert_eq!(present().await, [false, false, false], "all removed");
}

/// Within the grace a due item of a dialog not stored yet stays: the dialog stored a moment later (its
/// transaction slower than the first auto-reply's delay) still gets its auto-reply and its routing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialog_stored_after_its_auto_reply_fell_due_still_gets_it() {
    let s = scene(auto_reply()).await;
    let unborn = crate::domain::Dialog::open(
        s.channel.tenant_id.clone(),
        s.channel.id.clone(),
        Customer { id: "late".into(), name: None, handle: None },
        s.now(),
    );
    let timer = repo::auto_reply_start_write(&unborn.id, &s.channel, s.now()).expect("timer").expect("one");
    s.ctx.store.transact(vec![timer]).await.expect("timer written");
    s.advance(10);
    let tick = timers::send_due_auto_replies(&s.ctx, Run::to_the_end()).await.expect("run");
    assert_eq!((tick.unborn, tick.sent, tick.dropped), (1, 0, 0), "{tick:?}");

    // The dialog's own transaction lands now (the pointer and the dialog, as ingest writes them).
    let pointer = repo::OpenDialog {
        dialog_id: unborn.id.clone(),
        awaiting_reply: true,
        last_activity_at: Some(unborn.opened_at),
        listed_at: Some(unborn.opened_at),
        chatbot: false,
    };
    let pointer_key = repo::open_dialog_key(&s.channel.id, "late");
    let writes = vec![
        Write::Put {
            item: repo::to_item(&pointer, &pointer_key, &[]).expect("pointer"),
            condition: Condition::NotExists,
        },
        Write::Put { item: repo::dialog_item(&unborn).expect("dialog"), condition: Condition::NotExists },
    ];
    s.ctx.store.transact(writes).await.expect("dialog stored");
    let tick = timers::send_due_auto_replies(&s.ctx, Run::to_the_end()).await.expect("run");
    assert_eq!((tick.sent, tick.unborn), (1, 0), "{tick:?}");
    assert_eq!(s.provider.total(), 1);
}
