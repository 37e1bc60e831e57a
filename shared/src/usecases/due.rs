//! Draining the sparse due index (gsi3): how one scheduled run gets through everything due in a job's
//! shards, however much there is, before its invocation ends (docs/ARCHITECTURE.md invariants 5 and 9).
//!
//! Each shard is read page after page, several shards at once, and the items of a shard are acted on a few
//! at a time (an auto-reply is a provider's HTTP call: one after the other would never reach thousands a
//! minute). Reading goes forward with the query's page token, never back to the start: an item the job
//! could not act on (an error, a dialog not idle yet) is passed over and stays due for the next run, so a
//! run never reads one item twice and cannot spin on it. A run stops taking work at its stop time (and
//! after [`MAX_PAGES`] pages of a shard); what it did not start stays due. The jobs act on an item in one
//! transaction conditioned on the due key they read, so a run stopped anywhere, or two runs overlapping,
//! act on each item once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, BoxStream, StreamExt};
use jiff::{SignedDuration, Timestamp};

use crate::error::Result;
use crate::ports::store::{Index, Item, Query, SkRange, Store, StoreError};
use crate::repo;

/// Due items read per query.
pub const PAGE: usize = 100;
/// Shards read at once. With the jobs' own item concurrency this bounds what one run has in flight.
pub const SHARDS_AT_ONCE: usize = 8;
/// Pages one run reads at most from one shard (100,000 items at [`PAGE`]): a bound on the loop whatever
/// the store answers; the rest stays due.
pub const MAX_PAGES: usize = 1_000;

#[cfg(test)]
pub(crate) mod tests;

/// How long a due item of a dialog that does not exist is kept past its due time before it is removed.
///
/// Ingest writes a new dialog's timers and unrouted marker before the transaction that stores the dialog
/// (each a plain write, not an item of that transaction: `usecases::ingest`), so for a moment they exist
/// without it, and for good when that transaction never commits (a crash, a failure the provider retries
/// under a new dialog, a racing first message that opened the customer's dialog first). A job that finds one
/// passes it over while it is younger than this (far longer than any ingest runs: the webhook functions time
/// out after seconds), so a dialog whose transaction is still on its way finds its timers, and removes it
/// after.
pub const UNBORN_GRACE: SignedDuration = SignedDuration::from_mins(5);

/// Whether a due item of a missing dialog, due at the due sort key `due_key` (the item's gsi3 sort key),
/// is an orphan to remove at `now` rather than a dialog still being stored ([`UNBORN_GRACE`]). A key that
/// does not read as a due time is an orphan.
pub fn is_orphan(due_key: Option<&str>, now: Timestamp) -> bool {
    due_key.and_then(repo::due_at_of).is_none_or(|due| due + UNBORN_GRACE <= now)
}

/// How far one run goes: when it stops taking new work, how many items a query reads, and how much it has
/// in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// No item is started at or after this instant; `None` drains everything that is due.
    pub until: Option<Instant>,
    /// Items per query.
    pub page: usize,
    /// Shards read at once.
    pub shards_at_once: usize,
    /// At most this many items of a shard in flight at once, below the job's own bound (a store that
    /// answers one request at a time, like moto, wants fewer); `None` keeps the job's.
    pub items_at_once: Option<usize>,
}

impl Run {
    /// A run that stops taking work at `until` (a scheduled function's `stop_taking_work_at`).
    pub fn until(until: Option<Instant>) -> Self {
        Self { until, page: PAGE, shards_at_once: SHARDS_AT_ONCE, items_at_once: None }
    }

    /// A run that drains everything due (the local runner, tests).
    pub fn to_the_end() -> Self {
        Self::until(None)
    }

    fn is_over(&self) -> bool {
        self.until.is_some_and(|until| Instant::now() >= until)
    }
}

/// What a run did: one outcome per item it acted on.
#[derive(Debug)]
pub struct Drained<O> {
    pub outcomes: Vec<O>,
    /// The run stopped before it had read every shard to its end: due items may be left for the next run.
    pub left_due: bool,
}

/// Acts on every item due at `now` in the gsi3 `partitions`, at most `items_at_once` at a time per
/// partition (or the run's lower bound). A failed read ends that partition's part of the run; the others finish theirs, then the run
/// answers the first read error (whatever was done stays done). `act` answers a boxed future: the streams
/// here are then of one named type, which keeps the run's future `Send` for the runtime.
pub async fn drain<'a, O, F>(
    store: &'a dyn Store,
    partitions: Vec<String>,
    now: Timestamp,
    run: Run,
    items_at_once: usize,
    act: F,
) -> Result<Drained<O>>
where
    O: Send + 'a,
    F: Fn(Item) -> BoxFuture<'a, O> + Send + Sync + 'a,
{
    let left_due = Arc::new(AtomicBool::new(false));
    let act = Arc::new(act);
    let shards: Vec<std::result::Result<Vec<O>, StoreError>> = stream::iter(partitions)
        .map(|pk| {
            let partition = Partition {
                store,
                pk,
                until: repo::due_until(now),
                run,
                items_at_once: run.items_at_once.map_or(items_at_once, |cap| cap.min(items_at_once)),
                left_due: Arc::clone(&left_due),
            };
            partition.drain(Arc::clone(&act))
        })
        .buffer_unordered(run.shards_at_once.max(1))
        .collect()
        .await;
    let mut outcomes = Vec::new();
    let mut first_error = None;
    for shard in shards {
        match shard {
            Ok(mut done) => outcomes.append(&mut done),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error.into()),
        None => Ok(Drained { outcomes, left_due: left_due.load(Ordering::Relaxed) }),
    }
}

/// One partition of a run.
struct Partition<'a> {
    store: &'a dyn Store,
    pk: String,
    /// The highest due sort key the run reads.
    until: String,
    run: Run,
    items_at_once: usize,
    left_due: Arc<AtomicBool>,
}

/// Where the reading of one partition is.
struct Cursor<'a> {
    partition: Arc<Partition<'a>>,
    after: Option<String>,
    pages: usize,
    done: bool,
}

type Entry = std::result::Result<Item, StoreError>;

impl<'a> Partition<'a> {
    fn leave_due(&self) {
        self.left_due.store(true, Ordering::Relaxed);
    }

    /// The next page of due items, read after the last one (never from the start again).
    fn next_page(mut cursor: Cursor<'a>) -> BoxFuture<'a, Option<(Vec<Entry>, Cursor<'a>)>> {
        async move {
            let partition = Arc::clone(&cursor.partition);
            if cursor.done {
                return None;
            }
            if cursor.pages >= MAX_PAGES || partition.run.is_over() {
                partition.leave_due();
                return None;
            }
            let query = Query::index(Index::Gsi3, partition.pk.clone())
                .range(SkRange::AtMost(partition.until.clone()))
                .limit(partition.run.page)
                .after(cursor.after.take());
            cursor.pages += 1;
            match partition.store.query(&query).await {
                Ok(page) => {
                    cursor.done = page.next.is_none();
                    cursor.after = page.next;
                    Some((page.items.into_iter().map(Ok).collect(), cursor))
                }
                Err(error) => {
                    tracing::error!(%error, partition = %partition.pk, "reading the due index failed");
                    cursor.done = true;
                    Some((vec![Err(error)], cursor))
                }
            }
        }
        .boxed()
    }

    fn drain<O, F>(self, act: Arc<F>) -> BoxFuture<'a, std::result::Result<Vec<O>, StoreError>>
    where
        O: Send + 'a,
        F: Fn(Item) -> BoxFuture<'a, O> + Send + Sync + 'a,
    {
        let partition = Arc::new(self);
        let start = Cursor { partition: Arc::clone(&partition), after: None, pages: 0, done: false };
        // The pages, read one after the other while the items of the last one are still being acted on.
        let entries: BoxStream<'a, Entry> =
            stream::unfold(start, Self::next_page).flat_map(stream::iter).boxed();
        // An item is started only before the stop time; what is not started stays due.
        let gate = Arc::clone(&partition);
        let started = entries.take_while(move |_| {
            let go = !gate.run.is_over();
            if !go {
                gate.leave_due();
            }
            std::future::ready(go)
        });
        let acted: BoxStream<'a, std::result::Result<O, StoreError>> = started
            .map(move |entry| -> BoxFuture<'a, std::result::Result<O, StoreError>> {
                match entry {
                    Ok(item) => act(item).map(Ok).boxed(),
                    Err(error) => std::future::ready(Err(error)).boxed(),
                }
            })
            .buffer_unordered(partition.items_at_once.max(1))
            .boxed();
        async move {
            let results: Vec<std::result::Result<O, StoreError>> = acted.collect().await;
            let mut outcomes = Vec::with_capacity(results.len());
            let mut read_error = None;
            for result in results {
                match result {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(error) => read_error = Some(error),
                }
            }
            match read_error {
                Some(error) => Err(error),
                None => Ok(outcomes),
            }
        }
        .boxed()
    }
}
