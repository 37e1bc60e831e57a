//! The e-mail poller's handler fed the events Lambda delivers (JSON fixtures in `../events`: the schedule's
//! event and an SQS event of three records), against the embedded adapters, the in-process work queue and
//! a mailbox fake that answers at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use omnichat::adapters::embedded::{FileSecretStore, InProcessBus, InProcessWorkQueue, RedbStore};
use omnichat::adapters::empty_mailboxes::EmptyMailboxes;
use omnichat::domain::{Account, Channel, ChannelId, ChannelSettings, ChannelStatus, Provider, TenantId};
use omnichat::ports::clock::ManualClock;
use omnichat::ports::store::{Condition, Write};
use omnichat::ports::work::Work;
use omnichat::ports::{SecretError, SecretStore};
use omnichat::repo;
use omnichat::secret::Secret;
use omnichat::usecases::{Context, Providers};
use serde_json::{Value, json};

const SCHEDULED: &str = include_str!("../events/scheduled.json");
const SQS: &str = include_str!("../events/sqs.json");

/// The ids the SQS fixture's bodies name: its first record polls channel A, its second channel B (whose
/// credentials cannot be read here), its third is no work item.
const TENANT: &str = "0194a0b1-7c00-7000-8000-00000000a001";
const CHANNEL_A: &str = "0194a0b1-7c00-7000-8000-00000000c001";
const CHANNEL_B: &str = "0194a0b1-7c00-7000-8000-00000000c002";

/// 2026-01-01T12:00:00Z: a minute after the fixture's items were handed out.
const T0: i64 = 1_767_268_800;

/// The secret store, with one secret that cannot be read (Secrets Manager refusing, say).
struct BrokenFor {
    inner: FileSecretStore,
    broken: String,
}

#[async_trait]
impl SecretStore for BrokenFor {
    async fn put(&self, name: &str, value: &Secret) -> Result<(), SecretError> {
        self.inner.put(name, value).await
    }
    async fn get(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        if name == self.broken {
            return Err(SecretError::Unavailable("throttled".into()));
        }
        self.inner.get(name).await
    }
    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.inner.delete(name).await
    }
}

struct Harness {
    ctx: Context,
    mailboxes: Arc<EmptyMailboxes>,
    queue: Arc<InProcessWorkQueue>,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let tenant = TenantId::parse(TENANT).expect("tenant id");
    let (a, b) = (ChannelId::parse(CHANNEL_A).expect("id"), ChannelId::parse(CHANNEL_B).expect("id"));
    let secrets = BrokenFor {
        inner: FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets"),
        broken: format!("channel/{tenant}/{b}"),
    };
    let mailboxes = Arc::new(EmptyMailboxes::new());
    let queue = Arc::new(InProcessWorkQueue::new());
    let now = Timestamp::from_second(T0).expect("valid");
    let ctx = Context::new(
        Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store")),
        Arc::new(secrets),
        Arc::new(InProcessBus::new(16)),
        Arc::new(ManualClock::new(now)),
        Providers::default().with_mailboxes(mailboxes.clone()),
        "https://example.test",
    )
    .with_work_queue(queue.clone());
    for (id, address) in [(a, "a@example.test"), (b, "b@example.test")] {
        let channel = Channel {
            id,
            tenant_id: tenant.clone(),
            provider: Provider::Email,
            name: address.into(),
            account: Account { id: address.into(), name: address.into() },
            status: ChannelStatus::Active,
            settings: ChannelSettings::default(),
            webhook_url: String::new(),
            credentials_masked: BTreeMap::new(),
            displaced_by: None,
            created_at: now,
            updated_at: now,
        };
        let item = repo::channel_item(&channel).expect("item");
        let mut writes = vec![Write::Put { item, condition: Condition::Always }];
        writes.extend(repo::email_channel_writes(&channel).expect("listed"));
        ctx.store.transact(writes).await.expect("saved");
        // Written around the broken read: only reading fails.
        ctx.secrets
            .put(&format!("channel/{tenant}/{}", channel.id), &Secret::new(secret_text(address)))
            .await
            .expect("credentials");
    }
    Harness { ctx, mailboxes, queue, _dir: dir }
}

/// A channel secret as the context stores it: the credentials of the fake's mailbox `address`.
fn secret_text(address: &str) -> String {
    EmptyMailboxes::secrets(address).encode().expect("encoded").expose().to_owned()
}

fn event(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

#[tokio::test]
async fn the_schedule_hands_out_one_poll_per_mailbox() {
    let h = harness().await;
    let answer = email_poller::handle(&h.ctx, event(SCHEDULED), None).await.expect("handled");
    assert_eq!(answer, json!({"mailboxes": 2, "enqueued": 2, "waiting": 0}));
    let mut polled = Vec::new();
    while let Some(Work::PollMailbox { channel_id, .. }) = h.queue.take() {
        polled.push(channel_id.to_string());
    }
    polled.sort();
    assert_eq!(polled, [CHANNEL_A, CHANNEL_B]);
    assert_eq!(h.mailboxes.total_logins(), 0, "the schedule's run polls nothing itself");
}

#[tokio::test]
async fn each_sqs_record_polls_its_mailbox_and_only_the_ones_worth_a_retry_are_reported() {
    let h = harness().await;
    let fixture = event(SQS);
    let id = |index: usize| fixture["Records"][index]["messageId"].as_str().expect("messageId").to_owned();
    let answer = email_poller::handle(&h.ctx, fixture.clone(), None).await.expect("handled");
    // The second record's credentials could not be read, the third is no work item: those two come back.
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": id(1)}, {"itemIdentifier": id(2)}]}));
    assert_eq!(h.mailboxes.logins(), BTreeMap::from([("a@example.test".to_owned(), 1)]));
    // SQS delivers the first record again (at least once): its mailbox was polled after it was handed
    // out, so nothing logs in again.
    let again = json!({"Records": [fixture["Records"][0].clone()]});
    let answer = email_poller::handle(&h.ctx, again, None).await.expect("handled");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(h.mailboxes.total_logins(), 1);
}

#[tokio::test]
async fn other_events_are_ignored() {
    let h = harness().await;
    let other = json!({"source": "aws.s3", "detail-type": "Object Created"});
    let answer = email_poller::handle(&h.ctx, other, None).await.expect("handled");
    assert_eq!(answer, json!({"ignored": "Object Created"}));
    assert!(h.queue.is_empty());
}
