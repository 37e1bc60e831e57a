//! The scheduled jobs, as one tick: what the EventBridge schedules trigger on AWS and what the local
//! runner's timer runs every `OMNICHAT_TICK_SECONDS`.

use crate::error::Result;
use crate::usecases::{Context, outbox};

/// Outbox entries one tick sends at most (per due-index shard); the rest wait for the next tick.
pub const OUTBOX_BATCH: usize = 100;

/// Retries the outgoing messages that are due.
pub async fn retry_outbox(ctx: &Context) -> Result<usize> {
    Ok(outbox::deliver_due(ctx, OUTBOX_BATCH).await?.len())
}

/// Everything the local runner does on a tick. A job that fails is logged; the others still run.
pub async fn run_local_tick(ctx: &Context) {
    if let Err(error) = retry_outbox(ctx).await {
        tracing::error!(%error, "outbox retry failed");
    }
}
