//! The scheduled jobs, as one tick: what the EventBridge schedules trigger on AWS and what the local
//! runner's timer runs every `OMNICHAT_TICK_SECONDS`.

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::deadline;
use crate::error::Result;
use crate::logging::job_span;
use crate::ports::work::Work;
use crate::usecases::{Context, email_poll, outbox, routing, timers};

/// Outbox entries one tick sends at most (per due-index shard); the rest wait for the next tick.
pub const OUTBOX_BATCH: usize = 100;

/// Retries the outgoing messages that are due.
pub async fn retry_outbox(ctx: &Context) -> Result<usize> {
    Ok(outbox::deliver_due(ctx, OUTBOX_BATCH).await?.len())
}

/// The auto-reply function's job: due auto-replies, then due outbox retries. One run, one span.
pub async fn send_auto_replies_and_retries(ctx: &Context) -> Result<()> {
    auto_reply_run(ctx).instrument(job_span("auto-reply")).await
}

async fn auto_reply_run(ctx: &Context) -> Result<()> {
    let tick = timers::send_due_auto_replies(ctx).await?;
    let retried = retry_outbox(ctx).await?;
    tracing::info!(
        sent = tick.sent,
        lost_races = tick.lost_races,
        dropped = tick.dropped,
        retried,
        "auto-reply tick"
    );
    Ok(())
}

/// The inactivity-close function's job.
pub async fn close_inactive_dialogs(ctx: &Context) -> Result<()> {
    async {
        let closed = timers::close_inactive_dialogs(ctx).await?;
        tracing::info!(closed, "inactivity-close tick");
        Ok(())
    }
    .instrument(job_span("inactivity-close"))
    .await
}

/// The routing sweep's run (the router's schedule, the local runner's tick).
pub async fn sweep_routing(ctx: &Context) -> Result<routing::SweepReport> {
    async {
        let report = routing::sweep(ctx, routing::SWEEP_BATCH).await?;
        if report.dialogs > 0 || report.queues > 0 {
            tracing::info!(dialogs = report.dialogs, queues = report.queues, "routing sweep");
        } else {
            tracing::debug!("routing sweep: nothing due");
        }
        Ok(report)
    }
    .instrument(job_span("routing-sweep"))
    .await
}

/// The e-mail poller's schedule: one poll item per mailbox onto the work queue (`email_poll::dispatch`).
pub async fn dispatch_mailbox_polls(ctx: &Context) -> Result<email_poll::DispatchReport> {
    async {
        let report = email_poll::dispatch(ctx).await?;
        if report.enqueued > 0 {
            tracing::info!(
                mailboxes = report.mailboxes,
                enqueued = report.enqueued,
                waiting = report.waiting,
                "mailbox polls handed out"
            );
        } else if report.mailboxes > 0 {
            tracing::warn!(
                waiting = report.waiting,
                "the last round of mailbox polls is still waiting; none handed out (more workers needed?)"
            );
        }
        Ok(report)
    }
    .instrument(job_span("email-dispatch"))
    .await
}

/// One work item as a queue's worker runs it (the e-mail poller's SQS records on AWS, the local runner's
/// workers): `Ok` when it is done or not worth retrying, an error when a retry may succeed (the store, the
/// secret store or the bus failed). With `until` a poll stops fetching at it and keeps the rest.
pub async fn run_work(ctx: &Context, work: &Work, until: Option<Instant>) -> Result<()> {
    match work {
        Work::PollMailbox { tenant_id, channel_id, dispatched_at } => {
            async {
                let outcome = email_poll::poll_one(ctx, tenant_id, channel_id, *dispatched_at, until).await?;
                if let email_poll::PollOutcome::Polled(mail) = outcome
                    && mail.fetched > 0
                {
                    tracing::info!(
                        channel = %channel_id,
                        fetched = mail.fetched,
                        stored = mail.stored,
                        opened_dialogs = mail.opened_dialogs,
                        duplicates = mail.duplicates,
                        ignored = mail.ignored,
                        bounces = mail.bounces,
                        "mailbox polled"
                    );
                }
                Ok(())
            }
            .instrument(job_span("email-poll"))
            .await
        }
    }
}

/// Everything the local runner does on a tick. A job that fails is logged; the others still run.
pub async fn run_local_tick(ctx: &Context) {
    if let Err(error) = send_auto_replies_and_retries(ctx).await {
        tracing::error!(%error, "auto-reply tick failed");
    }
    if let Err(error) = close_inactive_dialogs(ctx).await {
        tracing::error!(%error, "inactivity-close tick failed");
    }
    if let Err(error) = sweep_routing(ctx).await {
        tracing::error!(%error, "routing sweep failed");
    }
    // The polls themselves run on the runner's workers, which drain the in-process work queue.
    if let Err(error) = dispatch_mailbox_polls(ctx).await {
        tracing::error!(%error, "handing out the mailbox polls failed");
    }
}

/// Runs a scheduled function's job within its invocation (`deadline`, from the Lambda runtime): stopped a
/// margin before it (`crate::deadline`) instead of being killed at it. What it did is kept (each step is its
/// own transaction) and what it did not do stays due for the next run, so stopping is no failure: a
/// failed invocation would be retried and then land in the dead-letter queue for nothing.
pub async fn within_invocation<F>(job: &str, deadline: Option<Instant>, work: F) -> Result<()>
where
    F: Future<Output = Result<()>>,
{
    match deadline::within(deadline, work).await {
        Ok(outcome) => outcome,
        Err(gave_up) => {
            tracing::warn!(job, %gave_up, "stopped before the invocation's deadline; the rest stays due");
            Ok(())
        }
    }
}

/// When a job stops taking new work in an invocation that ends at `deadline`: before [`within_invocation`]
/// gives up, by a tenth of the time left (1 to 15 s), so the work in hand (one IMAP fetch and its ingest)
/// can finish and record its progress.
pub fn stop_taking_work_at(deadline: Option<Instant>) -> Option<Instant> {
    deadline.map(|deadline| {
        let hard = deadline::stop_at(deadline);
        let left = hard.saturating_duration_since(Instant::now());
        let slack = (left / 10).clamp(Duration::from_secs(1), Duration::from_secs(15));
        hard.checked_sub(slack).unwrap_or(hard)
    })
}
