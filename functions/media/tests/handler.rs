//! The media function's handler fed the events Lambda delivers (JSON fixtures in `../events`: the
//! schedule's event and an SQS event of three records), against the embedded adapters and media store:
//! nothing due and nothing to fetch changes nothing, a body that is no work item is reported for SQS to
//! deliver again, and an event of another kind is answered, not failed.

use std::sync::Arc;

use omnichat::adapters::embedded::{
    FileMediaStore, FileSecretStore, InProcessBus, InProcessWorkQueue, RedbStore,
};
use omnichat::ports::clock::SystemClock;
use omnichat::secret::Secret;
use omnichat::usecases::{Context, Providers};
use serde_json::{Value, json};

const SCHEDULED: &str = include_str!("../events/scheduled.json");
const SQS: &str = include_str!("../events/sqs.json");

fn context(dir: &std::path::Path) -> Context {
    let media = FileMediaStore::open(&dir.join("media"), "http://127.0.0.1:1", Secret::new("k".repeat(32)))
        .expect("media dir");
    Context::new(
        Arc::new(RedbStore::open(&dir.join("store.redb")).expect("redb")),
        Arc::new(FileSecretStore::open(&dir.join("secrets.json")).expect("secrets")),
        Arc::new(InProcessBus::new(16)),
        Arc::new(SystemClock),
        Providers::default(),
        "https://omnichat.example.test",
    )
    .with_media(Arc::new(media), Arc::new(InProcessWorkQueue::new()))
}

#[tokio::test]
async fn the_schedule_sweeps_and_the_queues_records_fetch_or_are_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let ctx = context(dir.path());
    let scheduled: Value = serde_json::from_str(SCHEDULED).expect("json");
    assert_eq!(media::handle(&ctx, scheduled, None).await.expect("swept"), json!({"swept": true}));

    let sqs: Value = serde_json::from_str(SQS).expect("json");
    let malformed = sqs["Records"][2]["messageId"].clone();
    let answer = media::handle(&ctx, sqs, None).await.expect("handled");
    // The first two name messages this store does not have: done, nothing to fetch. The third is no item.
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": malformed}]}));

    let other = json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}});
    assert_eq!(
        media::handle(&ctx, other, None).await.expect("ignored"),
        json!({"ignored": "Object Created"})
    );
    let unreadable = json!({"Records": "not a list"});
    assert!(matches!(media::handle(&ctx, unreadable, None).await, Err(media::HandlerError::Malformed(_))));
}
