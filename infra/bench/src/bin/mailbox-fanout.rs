//! Mailbox fan-out (issue 16, goal 4): how many mailboxes a minute the e-mail poller's fan-out gets through
//! when one dispatch hands out a poll per mailbox and workers drain the queue, each poll against a mailbox
//! fake that answers at once (`EmptyMailboxes`), so the figure is the fan-out's own cost (queue, store, use
//! case), not IMAP's. The store is the embedded one; the queue is the local runner's in-process queue or
//! SQS on moto (`SqsWorkQueue`, its workers receiving and deleting as the Lambda event source does, one item
//! per receive like the template's batch size 1). Checks that every mailbox was polled exactly once, and
//! prints a markdown table.
//!
//!   mailbox-fanout [--workers 8] [--mailboxes 2000]                  # in-process, then SQS
//!   mailbox-fanout --queue in-process --mailboxes 2000 --queue sqs --mailboxes 500
//!
//! `--queue sqs` needs the AWS environment of infra/moto/with-moto.sh (`AWS_ENDPOINT_URL`, credentials).
//! moto's figure is moto's: it serves one call at a time and its SendMessageBatch and ReceiveMessage slow
//! with the queue's depth (~0.5 s a batch at 2,000 waiting), so that row shows the SQS adapter and the
//! Lambda's path working end to end, not SQS's speed; AWS's is C x 60 / T (README, "E-mail polling").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use omnichat::adapters::aws::{self, SqsWorkQueue, create_queue};
use omnichat::adapters::embedded::{InProcessBus, InProcessWorkQueue, RedbStore};
use omnichat::adapters::empty_mailboxes::EmptyMailboxes;
use omnichat::domain::{Account, Channel, ChannelId, ChannelSettings, ChannelStatus, Provider, TenantId};
use omnichat::ports::clock::SystemClock;
use omnichat::ports::{Condition, SecretError, SecretStore, Work, WorkQueue, Write};
use omnichat::repo;
use omnichat::secret::Secret;
use omnichat::usecases::{Context, Providers, scheduled};

/// Channels written at once while seeding (the embedded store commits them in groups).
const SEED_CONCURRENCY: usize = 128;
/// Batch calls in flight on moto (16 on AWS): moto serves one call at a time, each slower the deeper the
/// queue (~0.5 s at 2,000 items), and 16 waiting calls outlast the SDK's 15 s time-out.
const MOTO_SEND_CONCURRENCY: usize = 4;
/// A worker stops after this many empty receives in a row once every mailbox was polled.
const IDLE_RECEIVES: usize = 2;

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

/// A queue and its consumer's side.
enum Queue {
    InProcess(Arc<InProcessWorkQueue>),
    Sqs(Arc<SqsWorkQueue>),
}

impl Queue {
    fn name(&self) -> &'static str {
        match self {
            Queue::InProcess(_) => "in-process",
            Queue::Sqs(_) => "SQS (moto)",
        }
    }

    fn port(&self) -> Arc<dyn WorkQueue> {
        match self {
            Queue::InProcess(queue) => queue.clone(),
            Queue::Sqs(queue) => queue.clone(),
        }
    }

    /// The next item, or `None` when none is waiting.
    async fn next(&self) -> Result<Option<Work>, String> {
        match self {
            Queue::InProcess(queue) => Ok(queue.take()),
            Queue::Sqs(queue) => {
                // Short polling: moto serves one call at a time, so a long poll would hold up every worker.
                let received = queue.receive(1, Duration::ZERO).await.map_err(|e| e.to_string())?;
                let Some(message) = received.first() else { return Ok(None) };
                let work = Work::from_body(&message.body).map_err(|e| e.to_string())?;
                // Deleted before the poll, unlike Lambda's event source (after it): the bench's polls never
                // fail, and a receive may not be redelivered mid-run.
                queue.delete(&received).await.map_err(|e| e.to_string())?;
                Ok(Some(work))
            }
        }
    }
}

struct Row {
    queue: &'static str,
    mailboxes: usize,
    workers: usize,
    dispatch_ms: f64,
    drain_s: f64,
    polled_once: bool,
}

async fn seed(ctx: &Context, index: usize) -> Result<(), String> {
    let address = format!("box{index}@bench.example");
    let now = Timestamp::now();
    let channel = Channel {
        id: ChannelId::generate(),
        tenant_id: TenantId::generate(),
        provider: Provider::Email,
        name: address.clone(),
        account: Account { id: address.clone(), name: address.clone() },
        status: ChannelStatus::Active,
        settings: ChannelSettings::default(),
        webhook_url: String::new(),
        credentials_masked: Default::default(),
        displaced_by: None,
        created_at: now,
        updated_at: now,
    };
    let item = repo::channel_item(&channel).map_err(|e| e.to_string())?;
    let mut writes = vec![Write::Put { item, condition: Condition::Always }];
    writes.extend(repo::email_channel_writes(&channel).map_err(|e| e.to_string())?);
    ctx.store.transact(writes).await.map_err(|e| e.to_string())?;
    let secrets = EmptyMailboxes::secrets(&address);
    ctx.put_channel_secrets(&channel.tenant_id, &channel.id, &secrets).await.map_err(|e| e.to_string())
}

async fn measure(queue: Queue, mailboxes: usize, workers: usize) -> Result<Row, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let fake = Arc::new(EmptyMailboxes::new());
    let queue = Arc::new(queue);
    let ctx = Arc::new(
        Context::new(
            Arc::new(RedbStore::open(&dir.path().join("bench.redb")).map_err(|e| e.to_string())?),
            Arc::new(MemorySecrets::default()),
            Arc::new(InProcessBus::new(16)),
            Arc::new(SystemClock),
            Providers::default().with_mailboxes(fake.clone()),
            "https://bench.example",
        )
        .with_work_queue(queue.port()),
    );
    let seeding = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for index in 0..mailboxes {
        if running.len() >= SEED_CONCURRENCY
            && let Some(done) = running.join_next().await
        {
            done.map_err(|e| e.to_string())??;
        }
        let ctx = Arc::clone(&ctx);
        running.spawn(async move { seed(&ctx, index).await });
    }
    while let Some(done) = running.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    eprintln!("[{}] seeded {mailboxes} mailboxes in {:.1} s", queue.name(), seeding.elapsed().as_secs_f64());

    let started = Instant::now();
    let report = scheduled::dispatch_mailbox_polls(&ctx).await.map_err(|e| e.to_string())?;
    let dispatch_ms = started.elapsed().as_secs_f64() * 1000.0;
    if report.enqueued != mailboxes {
        return Err(format!("the dispatch handed out {} polls, not {mailboxes}", report.enqueued));
    }
    let mut pool = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (ctx, queue, fake) = (Arc::clone(&ctx), Arc::clone(&queue), Arc::clone(&fake));
        pool.spawn(async move {
            let mut idle = 0;
            while idle < IDLE_RECEIVES {
                match queue.next().await? {
                    Some(work) => {
                        idle = 0;
                        scheduled::run_work(&ctx, &work, None).await.map_err(|e| e.to_string())?;
                    }
                    None if fake.total_logins() >= mailboxes => idle += 1,
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = pool.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let drain_s = started.elapsed().as_secs_f64();
    let logins = fake.logins();
    let polled_once = logins.len() == mailboxes && logins.values().all(|count| *count == 1);
    eprintln!("[{}] {} mailboxes polled, {} logins", queue.name(), logins.len(), fake.total_logins());
    Ok(Row { queue: queue.name(), mailboxes, workers, dispatch_ms, drain_s, polled_once })
}

fn print(rows: &[Row]) {
    println!(
        "| queue | mailboxes | workers | dispatch ms | dispatch + drain s | mailboxes / min | each polled once |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.0} | {} |",
            row.queue,
            row.mailboxes,
            row.workers,
            row.dispatch_ms,
            row.drain_s,
            row.mailboxes as f64 / row.drain_s * 60.0,
            if row.polled_once { "yes" } else { "**no**" }
        );
    }
}

struct Args {
    workers: usize,
    /// Queue and mailboxes, run in this order.
    plans: Vec<(String, usize)>,
}

/// `--queue Q` starts a run on queue Q (2,000 mailboxes unless `--mailboxes` follows); `--mailboxes N`
/// before any `--queue` sets N for the default runs (in-process, then SQS).
fn args() -> Result<Args, String> {
    const MAILBOXES: usize = 2_000;
    let mut workers = 8;
    let mut plans: Vec<(String, usize)> = Vec::new();
    let mut default_mailboxes = MAILBOXES;
    let mut args = std::env::args().skip(1);
    let number = |value: Option<String>, name: &str| {
        value
            .unwrap_or_default()
            .replace('_', "")
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name} takes a number above 0"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workers" => workers = number(args.next(), "--workers")?,
            "--queue" => plans.push((args.next().unwrap_or_default(), MAILBOXES)),
            "--mailboxes" => {
                let mailboxes = number(args.next(), "--mailboxes")?;
                match plans.last_mut() {
                    Some((_, planned)) => *planned = mailboxes,
                    None => default_mailboxes = mailboxes,
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if plans.is_empty() {
        plans = vec![("in-process".into(), default_mailboxes), ("sqs".into(), default_mailboxes)];
    }
    Ok(Args { workers, plans })
}

#[tokio::main]
async fn main() {
    let run = async {
        let args = args()?;
        let mut rows = Vec::new();
        for (name, mailboxes) in &args.plans {
            let queue = match name.as_str() {
                "in-process" => Queue::InProcess(Arc::new(InProcessWorkQueue::new())),
                "sqs" => {
                    let sdk = aws::load_sdk_config().await;
                    let unattached = SqsWorkQueue::from_config(&sdk, String::new());
                    let queue_name = format!("mailbox-fanout-{}", std::process::id());
                    let url =
                        create_queue(unattached.client(), &queue_name).await.map_err(|e| format!("{e:?}"))?;
                    let queue = SqsWorkQueue::new(unattached.client().clone(), url)
                        .with_send_concurrency(MOTO_SEND_CONCURRENCY);
                    Queue::Sqs(Arc::new(queue))
                }
                other => return Err(format!("unknown queue {other:?} (in-process or sqs)")),
            };
            rows.push(measure(queue, *mailboxes, args.workers).await?);
        }
        print(&rows);
        if rows.iter().any(|row| !row.polled_once) {
            return Err("a mailbox was not polled exactly once".to_owned());
        }
        Ok::<(), String>(())
    };
    if let Err(error) = run.await {
        eprintln!("mailbox-fanout: {error}");
        std::process::exit(1);
    }
}
