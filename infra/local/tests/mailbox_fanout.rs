//! The local runner's workers drain the in-process work queue: 1,000 mailboxes handed out by a tick's
//! dispatch, and handed out again at the same instant (an overlapping tick, duplicates SQS may deliver),
//! are each polled exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use omnichat::adapters::embedded::{InProcessBus, InProcessWorkQueue, RedbStore};
use omnichat::adapters::empty_mailboxes::EmptyMailboxes;
use omnichat::domain::{Account, Channel, ChannelId, ChannelSettings, ChannelStatus, Provider, TenantId};
use omnichat::ports::clock::ManualClock;
use omnichat::ports::store::{Condition, Write};
use omnichat::ports::{SecretError, SecretStore};
use omnichat::repo;
use omnichat::secret::Secret;
use omnichat::usecases::{Context, Providers, scheduled};
use omnichat_local::{WORKERS, run_workers};
use tokio::sync::oneshot;

const MAILBOXES: usize = 1_000;

/// Secrets in memory: the file store syncs the disk on every put, which would make seeding the slow part.
#[derive(Default)]
struct MemorySecrets(Mutex<HashMap<String, String>>);

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn put(&self, name: &str, value: &Secret) -> Result<(), SecretError> {
        self.lock().insert(name.to_owned(), value.expose().to_owned());
        Ok(())
    }
    async fn get(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        Ok(self.lock().get(name).map(|value| Secret::new(value.clone())))
    }
    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.lock().remove(name);
        Ok(())
    }
}

impl MemorySecrets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn seed(ctx: &Context, index: usize) -> String {
    let address = format!("box{index}@example.test");
    let now = omnichat::ports::clock::Clock::now(ctx.clock.as_ref());
    let channel = Channel {
        id: ChannelId::generate(),
        tenant_id: TenantId::generate(),
        provider: Provider::Email,
        name: address.clone(),
        account: Account { id: address.clone(), name: address.clone() },
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
    let secrets = EmptyMailboxes::secrets(&address);
    ctx.put_channel_secrets(&channel.tenant_id, &channel.id, &secrets).await.expect("credentials");
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_mailboxes_are_each_polled_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mailboxes = Arc::new(EmptyMailboxes::new());
    let queue = Arc::new(InProcessWorkQueue::new());
    let ctx = Arc::new(
        Context::new(
            Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store")),
            Arc::new(MemorySecrets::default()),
            Arc::new(InProcessBus::new(16)),
            Arc::new(ManualClock::new(Timestamp::from_second(1_767_268_800).expect("valid"))),
            Providers::default().with_mailboxes(mailboxes.clone()),
            "https://example.test",
        )
        .with_work_queue(queue.clone()),
    );
    let mut seeding = tokio::task::JoinSet::new();
    for index in 0..MAILBOXES {
        let ctx = Arc::clone(&ctx);
        seeding.spawn(async move { seed(&ctx, index).await });
    }
    let mut addresses: Vec<String> = seeding.join_all().await;
    addresses.sort();

    let (stop, stopped) = oneshot::channel();
    let workers = tokio::spawn(run_workers(Arc::clone(&ctx), Arc::clone(&queue), WORKERS, stopped));
    let first = scheduled::dispatch_mailbox_polls(&ctx).await.expect("dispatched");
    assert_eq!((first.mailboxes, first.enqueued), (MAILBOXES, MAILBOXES));
    // The same round handed out again while the workers are at it: every mailbox is still polled once.
    let again = scheduled::dispatch_mailbox_polls(&ctx).await.expect("dispatched again");
    assert_eq!(again.mailboxes, MAILBOXES);
    let drained = tokio::time::timeout(Duration::from_secs(120), async {
        while !queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(drained.is_ok(), "the workers did not drain the queue: {} items left", queue.len());
    // Stopping lets the polls in flight finish.
    let _ = stop.send(());
    workers.await.expect("workers");

    let logins = mailboxes.logins();
    let counted: Vec<String> = logins.keys().cloned().collect();
    assert_eq!(counted, addresses, "every mailbox polled");
    let twice: Vec<_> = logins.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "mailboxes not polled exactly once: {twice:?}");
}
