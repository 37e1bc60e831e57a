//! The time an invocation may take: a Lambda is stopped at its deadline, mid-call, without an answer. The
//! entry points turn the runtime's deadline into an [`Instant`] and run their work under [`within`], which
//! gives up shortly before it ([`margin`]) so that there is time left to answer: a webhook answers 503 with
//! `Retry-After` (providers deliver again; ingest stores a repeat once), the API 503 `unavailable`, a
//! scheduled job stops and leaves the rest due for its next run. Use cases never see the runtime: they get
//! an `Instant` where they decide whether to start more work.
//!
//! Giving up drops the work's future: a store transaction either committed or did not (ingest and the
//! outbox are built for exactly that, see docs/ARCHITECTURE.md invariants 1 and 4).

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The least time kept for answering before the deadline.
pub const MIN_MARGIN: Duration = Duration::from_millis(500);
/// The most: a tenth of the time left, at most this.
pub const MAX_MARGIN: Duration = Duration::from_secs(2);

/// The deadline the Lambda runtime gives (epoch milliseconds) as an instant of this process's clock;
/// `None` when it is no deadline the runtime could mean: 0, or a time already past when the invocation
/// starts. Lambda hands an event over well before its deadline (the shortest timeout is 1 s), so a past one
/// comes from a local emulator (`cargo lambda watch` sends one), where the work then runs to its end.
pub fn from_epoch_millis(deadline_ms: u64) -> Option<Instant> {
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline.duration_since(SystemTime::now()).ok().filter(|left| !left.is_zero())?;
    Some(Instant::now() + left)
}

/// The time kept for answering when `left` remains: a tenth of it, between [`MIN_MARGIN`] and
/// [`MAX_MARGIN`].
pub fn margin(left: Duration) -> Duration {
    (left / 10).clamp(MIN_MARGIN, MAX_MARGIN)
}

/// When work must stop to leave the margin before `deadline`.
pub fn stop_at(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    deadline.checked_sub(margin(left)).unwrap_or(deadline)
}

/// The work gave up: the deadline was too close to finish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("gave up {margin_ms} ms before the invocation's deadline")]
pub struct GaveUp {
    pub margin_ms: u64,
}

/// Runs `work` until [`stop_at`] the deadline; with no deadline (the local runner), to its end.
pub async fn within<F: Future>(deadline: Option<Instant>, work: F) -> Result<F::Output, GaveUp> {
    let Some(deadline) = deadline else {
        return Ok(work.await);
    };
    let stop = stop_at(deadline);
    let margin_ms = u64::try_from(deadline.saturating_duration_since(stop).as_millis()).unwrap_or(u64::MAX);
    tokio::time::timeout_at(stop.into(), work).await.map_err(|_| GaveUp { margin_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_a_tenth_of_what_is_left_within_bounds() {
        assert_eq!(margin(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(margin(Duration::from_secs(29)), MAX_MARGIN);
        assert_eq!(margin(Duration::from_secs(1)), MIN_MARGIN);
        assert_eq!(margin(Duration::ZERO), MIN_MARGIN);
    }

    #[test]
    fn the_runtimes_deadline_becomes_an_instant_as_far_away() {
        assert_eq!(from_epoch_millis(0), None);
        let now_ms =
            u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
        let deadline = from_epoch_millis(now_ms + 10_000).expect("an instant");
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_millis(9_500) && left <= Duration::from_secs(10), "{left:?}");
        assert_eq!(from_epoch_millis(now_ms - 5_000), None, "a deadline already past is an emulator's");
    }

    #[tokio::test]
    async fn work_gives_up_before_the_deadline_and_finishes_without_one() {
        let deadline = Instant::now() + Duration::from_secs(2);
        let started = Instant::now();
        let outcome = within(Some(deadline), std::future::pending::<()>()).await;
        let took = started.elapsed();
        assert_eq!(outcome, Err(GaveUp { margin_ms: 500 }));
        assert!(took >= Duration::from_millis(1_400) && took < Duration::from_millis(1_900), "{took:?}");
        assert_eq!(within(Some(deadline), async { 7 }).await, Ok(7));
        assert_eq!(within(None, async { 8 }).await, Ok(8));
    }
}
