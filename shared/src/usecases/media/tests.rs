//! The media path on the embedded store with a manual clock: a fetch stores the file once and removes the
//! marker; a lost fetch item is handed out again when the marker comes due, once per claim; a provider
//! that keeps failing is given up on after `MAX_SWEEPS`, the file marked failed with the last reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Map, Value};

use super::*;
use crate::adapters::embedded::{
    FileMediaStore, FileSecretStore, InProcessBus, InProcessWorkQueue, RedbStore,
};
use crate::domain::{
    Account, Attachment, Channel, ChannelSettings, Customer, Features, InboundKind, InboundMessage, Provider,
};
use crate::error::WebhookError;
use crate::ports::channel::{Connection, Delivery, Outgoing, Sent, WebhookRequest};
use crate::ports::clock::ManualClock;
use crate::secret::Secret;
use crate::usecases::auth::Role;
use crate::usecases::channels::{self, NewChannel};
use crate::usecases::{Providers, ingest, tenants};

const PDF: &[u8] = b"%PDF-1.7\nthe customer's receipt\n";

/// A provider whose files are the PDF above, or a 503 while `failing`.
#[derive(Default)]
struct Files {
    failing: AtomicBool,
    fetches: AtomicUsize,
}

#[async_trait::async_trait]
impl ChannelProvider for Files {
    async fn connect(&self, _: &Map<String, Value>) -> Result<Connection> {
        Ok(Connection {
            account: Account { id: "bot".into(), name: "bot".into() },
            secrets: ChannelSecrets::default().with("token", Secret::new("t")),
            masked: Default::default(),
        })
    }

    fn receive(&self, _: &ChannelSecrets, _: &WebhookRequest) -> std::result::Result<Delivery, WebhookError> {
        Ok(Delivery::default())
    }

    async fn send(&self, _: &ChannelSecrets, _: &Outgoing) -> std::result::Result<Sent, ProviderError> {
        Ok(Sent { provider_message_id: None })
    }

    fn fetchable(&self, attachment: &Attachment) -> bool {
        !attachment.kind.is_data()
    }

    async fn fetch_media(
        &self,
        _: &ChannelSecrets,
        _: &Attachment,
        sink: &mut MediaSink,
    ) -> std::result::Result<Option<String>, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(ProviderError::Unavailable("HTTP 503".into()).into());
        }
        sink.write(PDF).await?;
        sink.finish().await?;
        Ok(Some("application/octet-stream".into()))
    }
}

struct Scene {
    ctx: Context,
    clock: Arc<ManualClock>,
    files: Arc<Files>,
    queue: Arc<InProcessWorkQueue>,
    channel: Channel,
    dir: tempfile::TempDir,
}

async fn scene() -> Scene {
    let dir = tempfile::tempdir().expect("dir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(1_800_000_000).expect("time")));
    let files = Arc::new(Files::default());
    let queue = Arc::new(InProcessWorkQueue::new());
    let media =
        FileMediaStore::open(&dir.path().join("media"), "http://127.0.0.1:1", Secret::new("k".repeat(32)))
            .expect("media");
    let ctx = Context::new(
        Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store")),
        Arc::new(FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets")),
        Arc::new(InProcessBus::new(64)),
        clock.clone(),
        Providers::default().with(Provider::Telegram, files.clone()),
        "https://example.test",
    )
    .with_media(Arc::new(media), queue.clone());
    let (tenant, _) = tenants::create_tenant(&ctx, "Acme", Features::default()).await.expect("tenant");
    let admin = Principal { tenant_id: tenant.id, role: Role::Admin, employee_id: None };
    let new = NewChannel {
        provider: Provider::Telegram,
        name: "bot".into(),
        credentials: Map::new(),
        settings: ChannelSettings::default(),
    };
    let channel = channels::create_channel(&ctx, &admin, new).await.expect("channel").channel;
    Scene { ctx, clock, files, queue, channel, dir }
}

impl Scene {
    /// A customer's message with one document, stored; the fetch item it queued is taken (and so lost).
    async fn document_arrives(&self) -> Message {
        let inbound = InboundMessage {
            dedup_key: "update-1".into(),
            kind: InboundKind::Message,
            customer: Customer { id: "42".into(), name: Some("Ann".into()), handle: None },
            provider_message_id: Some("1".into()),
            text: None,
            attachments: vec![Attachment {
                kind: AttachmentKind::Document,
                file_ref: "file-1".into(),
                mime: Some("application/pdf".into()),
                size: Some(PDF.len() as u64),
                name: Some("../receipt.pdf".into()),
            }],
            sent_at: None,
        };
        let outcome = ingest::ingest(&self.ctx, &self.channel, &inbound).await.expect("ingest");
        let ingest::IngestOutcome::Stored { dialog_id, message_id, .. } = outcome else {
            panic!("not stored: {outcome:?}");
        };
        let queued = std::iter::from_fn(|| self.queue.take()).collect::<Vec<_>>();
        assert_eq!(queued.len(), 1, "one fetch queued after the commit: {queued:?}");
        repo::load_message(self.ctx.store.as_ref(), &dialog_id, &message_id)
            .await
            .expect("read")
            .expect("stored")
    }

    async fn reload(&self, message: &Message) -> Message {
        repo::load_message(self.ctx.store.as_ref(), &message.dialog_id, &message.id)
            .await
            .expect("read")
            .expect("stored")
    }

    async fn sweep_after(&self, wait: SignedDuration) -> SweepReport {
        self.clock.advance(wait);
        sweep_due(&self.ctx, due::Run::to_the_end()).await.expect("sweep")
    }

    async fn marker(&self, message: &Message) -> Option<Item> {
        self.ctx.store.get(&repo::media_fetch_key(&message.id)).await.expect("read")
    }
}

#[tokio::test]
async fn a_fetch_stores_the_file_once_and_removes_the_marker() {
    let s = scene().await;
    let message = s.document_arrives().await;
    assert_eq!(message.attachments[0].status, Some(MediaStatus::Pending));
    assert!(s.marker(&message).await.is_some(), "the marker is written with the message");

    let report =
        fetch_message(&s.ctx, &message.tenant_id, &message.dialog_id, &message.id).await.expect("fetch");
    assert_eq!(report, FetchReport { stored: 1, ..FetchReport::default() });
    let stored = s.reload(&message).await;
    let object = stored.attachments[0].object.clone().expect("an object");
    assert_eq!(stored.attachments[0].status, Some(MediaStatus::Stored));
    assert_eq!(object.mime, "application/pdf", "sniffed, not the provider's octet-stream");
    assert_eq!(object.key, format!("media/{}/{}/a0", message.tenant_id, message.id));
    assert_eq!(std::fs::read(s.dir.path().join("media").join(&object.key)).expect("the file"), PDF);
    assert!(s.marker(&message).await.is_none(), "the marker goes with the outcome");

    // A repeated item (SQS delivers at least once) fetches nothing more.
    let again =
        fetch_message(&s.ctx, &message.tenant_id, &message.dialog_id, &message.id).await.expect("again");
    assert_eq!(again, FetchReport::default());
    assert_eq!(s.files.fetches.load(Ordering::SeqCst), 1);
    // Another tenant's item for the message touches nothing.
    let other =
        fetch_message(&s.ctx, &TenantId::generate(), &message.dialog_id, &message.id).await.expect("other");
    assert_eq!(other, FetchReport::default());

    let mut read = vec![s.reload(&message).await];
    link_attachments(&s.ctx, &mut read).await.expect("links");
    let url = read[0].attachments[0].url.clone().expect("a link once stored");
    assert!(url.starts_with("http://127.0.0.1:1/media/media/") && url.contains("n=receipt.pdf"), "{url}");
}

#[tokio::test]
async fn a_lost_fetch_is_handed_out_when_its_marker_comes_due_and_given_up_after_the_last_sweep() {
    let s = scene().await;
    s.files.failing.store(true, Ordering::SeqCst);
    let message = s.document_arrives().await;

    // Nothing is due before the grace period: the queued item normally does the work first.
    assert_eq!(s.sweep_after(SignedDuration::from_secs(60)).await, SweepReport::default());
    let first = s.sweep_after(FETCH_GRACE).await;
    assert_eq!(first, SweepReport { handed_out: 1, given_up: 0 });
    assert!(matches!(s.queue.take(), Some(Work::FetchMedia { message_id, .. }) if message_id == message.id));
    // Claimed: a second sweep at the same time hands nothing out.
    assert_eq!(s.sweep_after(SignedDuration::ZERO).await, SweepReport::default());

    // The provider keeps failing: the file stays pending, with the reason so far.
    let report =
        fetch_message(&s.ctx, &message.tenant_id, &message.dialog_id, &message.id).await.expect("fetch");
    assert_eq!(report.pending, 1);
    assert_eq!(s.files.fetches.load(Ordering::SeqCst), 3, "three tries in one fetch");
    assert!(s.marker(&message).await.is_some(), "the marker stays while the file is pending");

    for sweep in 2..=MAX_SWEEPS {
        let report = s.sweep_after(SignedDuration::from_hours(24)).await;
        assert_eq!(report, SweepReport { handed_out: 1, given_up: 0 }, "sweep {sweep}");
        assert!(s.queue.take().is_some());
    }
    let last = s.sweep_after(SignedDuration::from_hours(24)).await;
    assert_eq!(last, SweepReport { handed_out: 0, given_up: 1 });
    let failed = s.reload(&message).await;
    assert_eq!(failed.attachments[0].status, Some(MediaStatus::Failed));
    let reason = failed.attachments[0].failure.clone().unwrap_or_default();
    assert!(reason.starts_with("gave up after 6 fetches") && reason.contains("HTTP 503"), "{reason}");
    assert!(s.marker(&message).await.is_none());
    assert_eq!(s.sweep_after(SignedDuration::from_hours(24)).await, SweepReport::default());
}

#[tokio::test]
async fn resuming_hands_out_every_waiting_fetch_without_counting_a_sweep() {
    let s = scene().await;
    let message = s.document_arrives().await;
    assert_eq!(resume(&s.ctx).await.expect("resume"), SweepReport { handed_out: 1, given_up: 0 });
    assert!(s.queue.take().is_some());
    let marker: FetchMarker = repo::from_item(s.marker(&message).await.expect("kept")).expect("marker");
    assert_eq!(marker.sweeps, 0, "a start is not the provider failing");
}
