//! The in-process work queue of the local runner: items wait in memory, first in first out, until the
//! runner's workers take them (`next`, or `take` without waiting). An item whose work is already waiting
//! (same [`Work::key`]) replaces that one in its place instead of queueing twice, so the queue never holds
//! more than one item per mailbox. Nothing survives a restart, as nothing needs to: the next tick hands the
//! work out again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::ports::work::{Work, WorkError, WorkQueue};

#[derive(Debug, Default)]
pub struct InProcessWorkQueue {
    state: Mutex<Waiting>,
    arrived: Notify,
}

#[derive(Debug, Default)]
struct Waiting {
    /// The keys in arrival order.
    order: VecDeque<String>,
    items: HashMap<String, Work>,
}

impl InProcessWorkQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// The oldest waiting item, if any.
    pub fn take(&self) -> Option<Work> {
        let mut waiting = self.lock();
        while let Some(key) = waiting.order.pop_front() {
            if let Some(work) = waiting.items.remove(&key) {
                return Some(work);
            }
        }
        None
    }

    /// The oldest waiting item, once there is one.
    pub async fn next(&self) -> Work {
        loop {
            // Registered before looking, so an item enqueued in between still wakes this task.
            let arrived = self.arrived.notified();
            if let Some(work) = self.take() {
                return work;
            }
            arrived.await;
        }
    }

    /// How many items wait.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl WorkQueue for InProcessWorkQueue {
    async fn enqueue(&self, work: &[Work]) -> Result<(), WorkError> {
        {
            let mut waiting = self.lock();
            for item in work {
                let key = item.key();
                if waiting.items.insert(key.clone(), item.clone()).is_none() {
                    waiting.order.push_back(key);
                }
            }
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn waiting(&self) -> Result<usize, WorkError> {
        Ok(self.len())
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::domain::{ChannelId, TenantId};

    fn poll(channel: &ChannelId, second: i64) -> Work {
        Work::PollMailbox {
            tenant_id: TenantId::generate(),
            channel_id: channel.clone(),
            dispatched_at: Timestamp::from_second(1_800_000_000 + second).expect("valid"),
        }
    }

    #[tokio::test]
    async fn first_in_first_out_one_item_per_key_the_newest_kept() {
        let queue = InProcessWorkQueue::new();
        let (a, b) = (ChannelId::generate(), ChannelId::generate());
        queue.enqueue(&[poll(&a, 0), poll(&b, 0)]).await.expect("enqueued");
        queue.enqueue(&[poll(&a, 60)]).await.expect("enqueued");
        assert_eq!(queue.waiting().await, Ok(2));
        let first = queue.take().expect("a");
        assert_eq!(first.key(), poll(&a, 0).key());
        assert!(
            matches!(first, Work::PollMailbox { dispatched_at, .. } if dispatched_at.as_second() == 1_800_000_060)
        );
        assert_eq!(queue.take().map(|work| work.key()), Some(poll(&b, 0).key()));
        assert_eq!(queue.take(), None);
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_for_an_item() {
        let queue = std::sync::Arc::new(InProcessWorkQueue::new());
        let worker = tokio::spawn({
            let queue = std::sync::Arc::clone(&queue);
            async move { queue.next().await }
        });
        tokio::task::yield_now().await;
        let item = poll(&ChannelId::generate(), 0);
        queue.enqueue(std::slice::from_ref(&item)).await.expect("enqueued");
        let taken = tokio::time::timeout(std::time::Duration::from_secs(5), worker).await;
        assert_eq!(taken.expect("woken").expect("task"), item);
    }
}
