//! The work queue's cases (`ports::work`): what a dispatch enqueues is what a worker takes off the queue,
//! body for body, on the in-process queue and on SQS (moto). Taking items is not part of the port (on AWS a
//! Lambda event source does it), so each adapter here is paired with its consumer's side.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use omnichat::adapters::aws::{SdkConfig, SqsWorkQueue, create_queue};
use omnichat::adapters::embedded::InProcessWorkQueue;
use omnichat::domain::{ChannelId, TenantId};
use omnichat::ports::{Work, WorkQueue};

use super::unique_name;

/// A queue under test with its consumer's side: every item waiting, taken off the queue.
#[async_trait]
pub(crate) trait Drained: WorkQueue {
    /// Takes items until `expected` came or nothing more comes; the bodies as the consumer read them.
    async fn drain(&self, expected: usize) -> Vec<Work>;
}

#[async_trait]
impl Drained for InProcessWorkQueue {
    async fn drain(&self, _expected: usize) -> Vec<Work> {
        std::iter::from_fn(|| self.take()).collect()
    }
}

#[async_trait]
impl Drained for SqsWorkQueue {
    async fn drain(&self, expected: usize) -> Vec<Work> {
        let mut taken = Vec::new();
        let mut empty_receives = 0;
        while taken.len() < expected && empty_receives < 3 {
            let received = self.receive(10, Duration::from_secs(1)).await.expect("ReceiveMessage");
            if received.is_empty() {
                empty_receives += 1;
                continue;
            }
            for message in &received {
                taken.push(Work::from_body(&message.body).expect("a work item's body"));
            }
            self.delete(&received).await.expect("DeleteMessageBatch");
        }
        taken
    }
}

pub(crate) fn embedded_queue() -> Arc<dyn Drained> {
    Arc::new(InProcessWorkQueue::new())
}

pub(crate) async fn aws_queue(config: &SdkConfig) -> Arc<dyn Drained> {
    let unattached = SqsWorkQueue::from_config(config, String::new());
    let url =
        create_queue(unattached.client(), &unique_name("queue")).await.expect("create the queue on moto");
    Arc::new(SqsWorkQueue::new(unattached.client().clone(), url))
}

fn polls(count: usize) -> Vec<Work> {
    let dispatched_at = Timestamp::from_second(1_800_000_000).expect("valid");
    (0..count)
        .map(|_| Work::PollMailbox {
            tenant_id: TenantId::generate(),
            channel_id: ChannelId::generate(),
            dispatched_at,
        })
        .collect()
}

fn bodies(work: &[Work]) -> BTreeSet<String> {
    work.iter().map(Work::to_body).collect()
}

/// More items than one `SendMessageBatch` takes (25: two full batches and a half one), each taken off the
/// queue once, its body as it was sent.
pub(crate) async fn twenty_five_items_round_trip(queue: Arc<dyn Drained>) {
    let sent = polls(25);
    assert_eq!(queue.enqueue(&sent).await, Ok(()));
    assert_eq!(queue.waiting().await, Ok(25));
    let taken = queue.drain(sent.len()).await;
    assert_eq!(taken.len(), sent.len(), "every item once: {} taken of {}", taken.len(), sent.len());
    assert_eq!(bodies(&taken), bodies(&sent));
    assert_eq!(queue.waiting().await, Ok(0));
}

pub(crate) async fn enqueueing_nothing_is_fine(queue: Arc<dyn Drained>) {
    assert_eq!(queue.enqueue(&[]).await, Ok(()));
    assert_eq!(queue.waiting().await, Ok(0));
    assert!(queue.drain(0).await.is_empty());
}
