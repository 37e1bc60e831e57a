//! Timer drain (issue 16, goal 3): how many due timers one scheduled run gets through, and how fast. Seeds
//! N dialogs whose auto-reply is due and N whose inactivity close is due, through the real ingest path,
//! then times one run of each job as the functions run it (`scheduled::send_auto_replies_and_retries`,
//! `scheduled::close_inactive_dialogs`, no stop time) and checks it did every one. Prints a markdown table.
//!
//!   timer-drain [--store embedded|moto] [--due 10000] [--store moto --due 200 ...]
//!
//! `--store moto` needs the AWS environment of infra/moto/with-moto.sh (`AWS_ENDPOINT_URL`, credentials).
//! There the dialogs are ingested into a scratch embedded store and copied into the moto table
//! (`omnichat_bench::Ports`); the runs then go against moto alone, whose transactions still copy its whole
//! table per written item: expect moto's figures to be moto's, not DynamoDB's.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use jiff::SignedDuration;
use omnichat::domain::DialogStatus;
use omnichat::ports::{Index, Query};
use omnichat::repo;
use omnichat::usecases::{Context, due, scheduled, timers};
use omnichat_bench::{Ports, TimerWorld, embedded, seed};

/// On moto: a run as the functions make it, with 2 requests in flight instead of 128. moto answers one
/// request at a time and copies its table per written item, so 128 queue there past the SDK's time-outs
/// (at 200 due, even 4 in flight left a few items to the next run); DynamoDB serves them side by side.
const MOTO_RUN: due::Run =
    due::Run { until: None, page: due::PAGE, shards_at_once: 1, items_at_once: Some(2) };

struct Row {
    store: &'static str,
    /// Shards read at once x items in flight per shard.
    at_once: String,
    job: &'static str,
    due: usize,
    done: usize,
    seconds: f64,
}

async fn measure(
    store_name: &'static str,
    ports: Ports,
    due: usize,
    run: due::Run,
) -> Result<Vec<Row>, String> {
    let TimerWorld { clock, provider, ctx, seed_ctx, admin, replying, closing } =
        TimerWorld::new(&ports, Arc::clone(&ports.store)).await?;
    let seeding = Instant::now();
    seed(&seed_ctx, &replying, 0..due).await?;
    seed(&seed_ctx, &closing, due..2 * due).await?;
    eprintln!("[{store_name}] seeded 2 x {due} dialogs in {:.1} s", seeding.elapsed().as_secs_f64());
    ports.copy_seeded(store_name).await?;
    clock.advance(SignedDuration::from_mins(61));

    let started = Instant::now();
    scheduled::send_auto_replies_and_retries(&ctx, run).await.map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let sent = provider.sends.load(Ordering::SeqCst);
    let items = run.items_at_once.map_or(timers::ITEMS_AT_ONCE, |cap| cap.min(timers::ITEMS_AT_ONCE));
    let at_once = format!("{} x {items}", run.shards_at_once);
    let mut rows = vec![Row {
        store: store_name,
        at_once: at_once.clone(),
        job: "auto-reply",
        due,
        done: sent,
        seconds,
    }];

    let started = Instant::now();
    scheduled::close_inactive_dialogs(&ctx, run).await.map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let closed = count_closed(&ctx, &admin.tenant_id).await?;
    rows.push(Row { store: store_name, at_once, job: "inactivity close", due, done: closed, seconds });
    Ok(rows)
}

/// Dialogs closed so far, every page (the run's effect, checked so the figure is of a run that did its work).
async fn count_closed(ctx: &Context, tenant: &omnichat::domain::TenantId) -> Result<usize, String> {
    let partition = repo::dialogs_with_status(tenant, DialogStatus::Closed.as_str());
    let mut closed = 0;
    let mut after = None;
    for _ in 0..100_000 {
        let query = Query::index(Index::Gsi2, partition.clone()).limit(1000).after(after);
        let page = ctx.store.query(&query).await.map_err(|e| e.to_string())?;
        closed += page.items.len();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(closed)
}

fn print(rows: &[Row]) {
    println!("| store | at once | job | due | done | wall s | per minute |");
    println!("|---|---|---|---:|---:|---:|---:|");
    for row in rows {
        let per_minute = if row.seconds > 0.0 { row.done as f64 / row.seconds * 60.0 } else { 0.0 };
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} |",
            row.store, row.at_once, row.job, row.due, row.done, row.seconds, per_minute
        );
    }
}

/// `--store S` starts a run on store S (10,000 due by default); `--due N` sets the due count of the run
/// before it (of an embedded run when none was named). Runs go in the order given.
fn plans() -> Result<Vec<(String, usize)>, String> {
    let mut plans: Vec<(String, usize)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" => plans.push((args.next().unwrap_or_default(), 10_000)),
            "--due" => {
                let text = args.next().unwrap_or_default();
                let due =
                    text.trim().replace('_', "").parse().map_err(|_| format!("not a count: {text:?}"))?;
                if plans.is_empty() {
                    plans.push(("embedded".to_owned(), due));
                }
                if let Some((_, planned)) = plans.last_mut() {
                    *planned = due;
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if plans.is_empty() {
        plans.push(("embedded".to_owned(), 10_000));
    }
    Ok(plans)
}

#[tokio::main]
async fn main() {
    // With RUST_LOG set, the jobs' own log lines (JSON, on stdout before the table): why an item was not done.
    if std::env::var_os("RUST_LOG").is_some() {
        omnichat::bootstrap::init_lambda_logging();
    }
    let plans = plans().unwrap_or_else(|error| {
        eprintln!("timer-drain: {error}");
        std::process::exit(2);
    });
    let mut rows = Vec::new();
    for (run, (store, due)) in plans.iter().enumerate() {
        let result = match store.as_str() {
            "embedded" => match embedded() {
                Ok(ports) => measure("embedded (redb)", ports, *due, due::Run::to_the_end()).await,
                Err(error) => Err(error),
            },
            "moto" => match omnichat_bench::moto("drain-bench", run).await {
                Ok(ports) => measure("moto (DynamoDB API)", ports, *due, MOTO_RUN).await,
                Err(error) => Err(error),
            },
            other => Err(format!("unknown store {other:?}: embedded or moto")),
        };
        match result {
            Ok(mut measured) => rows.append(&mut measured),
            Err(error) => {
                eprintln!("timer-drain: {error}");
                std::process::exit(1);
            }
        }
    }
    print(&rows);
}
