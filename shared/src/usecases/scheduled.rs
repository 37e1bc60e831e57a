//! The scheduled jobs, as one tick: what the EventBridge schedules trigger on AWS and what the local
//! runner's timer runs every `OMNICHAT_TICK_SECONDS`.

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::deadline;
use crate::error::Result;
use crate::logging::job_span;
use crate::ports::work::Work;
use crate::usecases::{Context, customers, due, email_poll, media, outbox, routing, timers};

/// Retries the outgoing messages that are due, as far as the run goes (`due::Run`).
pub async fn retry_outbox(ctx: &Context, run: due::Run) -> Result<usize> {
    Ok(outbox::deliver_due(ctx, run).await?.len())
}

/// The auto-reply function's job: due auto-replies, then due outbox retries, each stopping to take work at
/// its share of the run (the rest stays due; a function passes `due::Run::until(stop_taking_work_at(
/// deadline))`). One after the other, as before: retries then read only what the auto-replies left
/// pending, not the entries they are sending. The auto-replies get three quarters of the time left, so a
/// backlog of them never keeps the retries from running. One run, one span.
pub async fn send_auto_replies_and_retries(ctx: &Context, run: due::Run) -> Result<()> {
    auto_reply_run(ctx, run).instrument(job_span("auto-reply")).await
}

async fn auto_reply_run(ctx: &Context, run: due::Run) -> Result<()> {
    let auto_replies = due::Run { until: run.until.map(|until| share_of_time_left(until, 3, 4)), ..run };
    let tick = timers::send_due_auto_replies(ctx, auto_replies).await;
    let retried = retry_outbox(ctx, run).await;
    let (tick, retried) = (tick?, retried?);
    tracing::info!(
        sent = tick.sent,
        lost_races = tick.lost_races,
        dropped = tick.dropped,
        failed = tick.failed,
        left_due = tick.left_due,
        retried,
        "auto-reply tick"
    );
    Ok(())
}

/// The inactivity-close function's job, stopping to take work at the run's stop time (the rest stays due).
pub async fn close_inactive_dialogs(ctx: &Context, run: due::Run) -> Result<()> {
    async {
        let tick = timers::close_inactive_dialogs(ctx, run).await?;
        tracing::info!(
            closed = tick.closed,
            rearmed = tick.rearmed,
            dropped = tick.dropped,
            lost_races = tick.lost_races,
            rescans = tick.rescans,
            failed = tick.failed,
            left_due = tick.left_due,
            "inactivity-close tick"
        );
        Ok(())
    }
    .instrument(job_span("inactivity-close"))
    .await
}

/// The routing sweep's run (the router's schedule, the local runner's tick), stopping to take work at the
/// run's stop time.
pub async fn sweep_routing(ctx: &Context, run: due::Run) -> Result<routing::SweepReport> {
    async {
        let report = routing::sweep(ctx, run).await?;
        if report.dialogs > 0 || report.queues > 0 || report.left_due {
            tracing::info!(
                dialogs = report.dialogs,
                queues = report.queues,
                left_due = report.left_due,
                "routing sweep"
            );
        } else {
            tracing::debug!("routing sweep: nothing due");
        }
        Ok(report)
    }
    .instrument(job_span("routing-sweep"))
    .await
}

/// The media function's schedule: hands out again the fetches whose markers came due (`media::sweep_due`).
pub async fn sweep_media(ctx: &Context, run: due::Run) -> Result<()> {
    async {
        let report = media::sweep_due(ctx, run).await?;
        if report.handed_out > 0 || report.given_up > 0 {
            tracing::info!(handed_out = report.handed_out, given_up = report.given_up, "media sweep");
        }
        Ok(())
    }
    .instrument(job_span("media-sweep"))
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
        Work::FetchMedia { tenant_id, dialog_id, message_id } => {
            media::fetch_message(ctx, tenant_id, dialog_id, message_id)
                .instrument(job_span("media-fetch"))
                .await
                .map(|_| ())
        }
        Work::NameCustomer { tenant_id, dialog_id } => {
            customers::name_from_provider(ctx, tenant_id, dialog_id)
                .instrument(job_span("customer-name"))
                .await
        }
    }
}

/// `numerator / denominator` of the time left until `until`, from now.
fn share_of_time_left(until: Instant, numerator: u32, denominator: u32) -> Instant {
    let now = Instant::now();
    now + until.saturating_duration_since(now) * numerator / denominator.max(1)
}

/// Everything the local runner does on a tick, each job to the end of what is due. A job that fails is
/// logged; the others still run.
pub async fn run_local_tick(ctx: &Context) {
    if let Err(error) = send_auto_replies_and_retries(ctx, due::Run::to_the_end()).await {
        tracing::error!(%error, "auto-reply tick failed");
    }
    if let Err(error) = close_inactive_dialogs(ctx, due::Run::to_the_end()).await {
        tracing::error!(%error, "inactivity-close tick failed");
    }
    if let Err(error) = sweep_routing(ctx, due::Run::to_the_end()).await {
        tracing::error!(%error, "routing sweep failed");
    }
    if let Err(error) = sweep_media(ctx, due::Run::to_the_end()).await {
        tracing::error!(%error, "media sweep failed");
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
/// gives up, by a tenth of the time left (1 to 15 s), so the work in hand (one IMAP fetch and its ingest,
/// the provider calls of due auto-replies and retries) can finish and record its progress.
pub fn stop_taking_work_at(deadline: Option<Instant>) -> Option<Instant> {
    deadline.map(|deadline| {
        let hard = deadline::stop_at(deadline);
        let left = hard.saturating_duration_since(Instant::now());
        let slack = (left / 10).clamp(Duration::from_secs(1), Duration::from_secs(15));
        hard.checked_sub(slack).unwrap_or(hard)
    })
}
