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
use std::sync::atomic::Ordering;
use std::time::Instant;

use jiff::SignedDuration;
use omnichat::adapters::counting::CountingStore;
use omnichat::domain::DialogStatus;
use omnichat::usecases::dialogs::{self, DialogFilter};
use omnichat::usecases::{Context, auth, due, scheduled};
use omnichat_bench::{Ports, TimerWorld, embedded, seed};

const DUE: usize = 10;

async fn moto(run: usize) -> Result<Ports, String> {
    omnichat_bench::moto("tick-bench", run).await
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
    let counting = Arc::new(CountingStore::new(Arc::clone(&ports.store)));
    let TimerWorld { clock, provider, ctx, seed_ctx, admin, replying, closing } =
        TimerWorld::new(&ports, counting.clone()).await?;

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
    ports.copy_seeded(store_name).await?;
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
