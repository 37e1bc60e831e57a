//! The media fetch on every adapter set with its media store (the data dir's files and redb; S3 and
//! DynamoDB on moto): a customer's document is fetched once, stored under its key, served by its link, and
//! its marker is gone with the outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use omnichat::adapters::embedded::InProcessWorkQueue;
use omnichat::domain::{
    Attachment, AttachmentKind, Customer, InboundKind, InboundMessage, MediaStatus, Provider,
};
use omnichat::error::{ProviderError, WebhookError};
use omnichat::ports::MediaSink;
use omnichat::ports::channel::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, FetchError, Outgoing, Sent, WebhookRequest,
};
use omnichat::ports::clock::SystemClock;
use omnichat::providers::Providers;
use omnichat::repo;
use omnichat::secret::Secret;
use omnichat::usecases::ingest::{self, IngestOutcome};
use omnichat::usecases::{Context, media};
use serde_json::{Map, Value};

use super::AdapterSet;
use super::media::Subject;

const PDF: &[u8] = b"%PDF-1.7\nfetched on every adapter set\n";

/// A provider whose every file is the PDF above.
#[derive(Default)]
struct Files {
    fetches: AtomicUsize,
}

#[async_trait]
impl ChannelProvider for Files {
    async fn connect(&self, _: &Map<String, Value>) -> omnichat::error::Result<Connection> {
        Err(omnichat::Error::Internal("no channel is connected through this provider".into()))
    }

    fn receive(&self, _: &ChannelSecrets, _: &WebhookRequest) -> Result<Delivery, WebhookError> {
        Ok(Delivery::default())
    }

    async fn send(&self, _: &ChannelSecrets, _: &Outgoing) -> Result<Sent, ProviderError> {
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
    ) -> Result<Option<String>, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        sink.write(PDF).await?;
        sink.finish().await?;
        Ok(None)
    }
}

pub(crate) async fn a_customers_file_is_fetched_once_stored_and_linked(
    (set, subject): (AdapterSet, Subject),
) {
    let store = set.1.clone();
    let files = Arc::new(Files::default());
    let queue = Arc::new(InProcessWorkQueue::new());
    let ctx = Context::new(
        store.clone(),
        set.2.clone(),
        set.3.clone(),
        Arc::new(SystemClock),
        Providers::default().with(Provider::Telegram, files.clone()),
        "https://x.test",
    )
    .with_media(subject.store.clone(), queue.clone());
    let channel = super::ingest::channel(store.as_ref()).await;
    let secrets = ChannelSecrets::default().with("token", Secret::new("conformance-token-0123456789"));
    ctx.put_channel_secrets(&channel.tenant_id, &channel.id, &secrets).await.expect("credentials");

    let inbound = InboundMessage {
        dedup_key: "update-1".into(),
        kind: InboundKind::Message,
        customer: Customer { id: "42".into(), name: Some("Ann".into()), handle: None },
        provider_message_id: Some("1".into()),
        text: Some("my receipt".into()),
        attachments: vec![Attachment {
            kind: AttachmentKind::Document,
            file_ref: "file-1".into(),
            mime: Some("application/pdf".into()),
            size: Some(PDF.len() as u64),
            name: Some("receipt.pdf".into()),
        }],
        sent_at: None,
    };
    let IngestOutcome::Stored { dialog_id, message_id, .. } =
        ingest::ingest(&ctx, &channel, &inbound).await.expect("ingest")
    else {
        panic!("the message was not stored");
    };
    assert!(queue.take().is_some(), "the fetch is queued after the commit");
    let marker = repo::media_fetch_key(&message_id);
    assert!(store.get(&marker).await.expect("read").is_some(), "the marker is written with the message");

    let report =
        media::fetch_message(&ctx, &channel.tenant_id, &dialog_id, &message_id).await.expect("fetch");
    assert_eq!((report.stored, report.pending), (1, 0), "{report:?}");
    assert!(store.get(&marker).await.expect("read").is_none(), "the marker goes with the outcome");
    let again = media::fetch_message(&ctx, &channel.tenant_id, &dialog_id, &message_id).await.expect("again");
    assert_eq!(again, media::FetchReport::default());
    assert_eq!(files.fetches.load(Ordering::SeqCst), 1, "fetched once");

    let mut messages = vec![
        repo::load_message(store.as_ref(), &dialog_id, &message_id).await.expect("read").expect("stored"),
    ];
    let object = messages[0].attachments[0].object.clone().expect("stored object");
    assert_eq!(messages[0].attachments[0].status, Some(MediaStatus::Stored));
    assert_eq!((object.mime.as_str(), object.size), ("application/pdf", PDF.len() as u64));
    let (size, head) = subject.store.head(&object.key).await.expect("head").expect("the object");
    assert_eq!((size, head.as_slice()), (PDF.len() as u64, PDF));
    media::link_attachments(&ctx, &mut messages).await.expect("links");
    let url = messages[0].attachments[0].url.clone().expect("a link");
    let served = reqwest::get(&url).await.expect("GET the link");
    assert_eq!(served.status(), 200, "{url}");
    assert_eq!(served.bytes().await.expect("body").as_ref(), PDF);
}
