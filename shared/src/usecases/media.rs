//! Media both ways: customers' files copied from the provider into our storage after the webhook was
//! acknowledged, employees' uploads sent with replies, and the time-limited links the API shows.
//!
//! Inbound. Ingest stores a message with its fetchable attachments `pending` and, in the same transaction,
//! a fetch marker in the sparse due index (`DUE#MEDIA#{shard}`, due a grace period later). After the commit
//! it hands a fetch item to the media queue (SQS and the media function on AWS, the local runner's
//! workers locally). The fetch ([`fetch_message`]) streams each pending file into a temporary file, sniffs
//! its type, writes it under a key made of the message and the attachment (a repeated fetch replaces the
//! same object) and then, in one transaction, records the outcome on the message and removes the marker.
//! If the item is lost or the fetch dies midway, the marker comes due and the sweep ([`sweep_due`]) hands
//! the fetch out again, with backoff, until it gives up and marks what is left `failed`.
//!
//! Outbound. `POST /v1/uploads` ([`create_upload`]) records an upload (declared name, type and size) and
//! answers a link taking the bytes; a reply names its uploads, which are checked ([`attach_uploads`]: the
//! object exists, has the declared size, its sniffed type is a kind the channel's provider sends, within
//! its limit) before anything is stored; the outbox hands the provider a link or the bytes
//! ([`outgoing_media`]).

use std::time::Duration;

use futures::FutureExt;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{
    AttachmentKind, DialogId, Media, MediaStatus, Message, MessageId, StoredObject, TenantId,
};
use crate::error::{Error, ProviderError, Result};
use crate::ports::channel::{ChannelProvider, ChannelSecrets, FetchError, OutgoingMedia};
use crate::ports::media::{self, MediaSink, ObjectMeta, UploadTarget};
use crate::ports::store::{Condition, Index, Item, Write};
use crate::ports::work::Work;
use crate::repo;
use crate::usecases::auth::Principal;
use crate::usecases::{Context, due};

/// How long after ingest a fetch marker comes due: the queued fetch normally finishes well before.
pub const FETCH_GRACE: SignedDuration = SignedDuration::from_mins(2);
/// Fetches handed out by the sweep before the attachments still pending are marked failed.
pub const MAX_SWEEPS: u32 = 6;
/// Tries of one file within one fetch (the provider's trouble), with a short backoff between them.
const TRIES: u32 = 3;
/// The longest wait between two tries of one fetch (a longer Retry-After is left to the sweep).
const MAX_TRY_WAIT: Duration = Duration::from_secs(5);
/// How long an upload record is kept: an upload not used by then is gone (the bucket's lifecycle
/// removes its object).
pub const UPLOAD_TTL: SignedDuration = SignedDuration::from_hours(24);

/// The fetch marker: a message with files still to fetch.
#[derive(Debug, Serialize, Deserialize)]
struct FetchMarker {
    tenant_id: TenantId,
    dialog_id: DialogId,
    message_id: MessageId,
    #[serde(default)]
    sweeps: u32,
}

fn marker_item(marker: &FetchMarker, due: Timestamp) -> Result<Item> {
    let id = marker.message_id.to_string();
    let index =
        (Index::Gsi3, repo::media_due_pk(repo::due_shard(&id, repo::DUE_SHARDS)), repo::due_sk(due, &id));
    repo::to_item(marker, &repo::media_fetch_key(&marker.message_id), &[index])
}

/// The write that puts a stored message's fetch marker (ingest's transaction), for a message with files
/// to fetch.
pub fn fetch_marker_write(message: &Message, now: Timestamp) -> Result<Option<Write>> {
    if !message.has_pending_media() {
        return Ok(None);
    }
    let marker = FetchMarker {
        tenant_id: message.tenant_id.clone(),
        dialog_id: message.dialog_id.clone(),
        message_id: message.id.clone(),
        sweeps: 0,
    };
    Ok(Some(Write::Put { item: marker_item(&marker, now + FETCH_GRACE)?, condition: Condition::NotExists }))
}

/// Hands the fetch of a just stored message to the media queue. A queue that refuses is no loss: the
/// marker comes due and the sweep hands it out.
pub async fn request_fetch(ctx: &Context, message: &Message) {
    let work = Work::FetchMedia {
        tenant_id: message.tenant_id.clone(),
        dialog_id: message.dialog_id.clone(),
        message_id: message.id.clone(),
    };
    if let Err(error) = ctx.media_queue.enqueue(&[work]).await {
        tracing::warn!(%error, message_id = %message.id, "media fetch not queued; the sweep will hand it out");
    }
}

/// What one fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    pub stored: usize,
    pub failed: usize,
    pub too_large: usize,
    /// Still pending (the provider's or our storage's trouble): the sweep hands them out again.
    pub pending: usize,
}

/// Fetches the pending files of one message from its provider into our storage and records each one's
/// outcome. Harmless to repeat or to run twice at once: the objects' keys are the message's, and a message
/// with nothing pending is left alone. An error is our side's trouble (the store): worth a retry.
pub async fn fetch_message(
    ctx: &Context,
    tenant: &TenantId,
    dialog: &DialogId,
    message_id: &MessageId,
) -> Result<FetchReport> {
    let message = repo::load_message(ctx.store.as_ref(), dialog, message_id).await?;
    // An item naming another tenant's message is no work of this tenant's: nothing is touched.
    if message.as_ref().is_some_and(|message| &message.tenant_id != tenant) {
        return Ok(FetchReport::default());
    }
    let Some(mut message) = message.filter(Message::has_pending_media) else {
        // Gone (expired) or fetched already: only its marker may be left.
        let marker = Write::Delete { key: repo::media_fetch_key(message_id), condition: Condition::Always };
        ctx.store.transact(vec![marker]).await?;
        return Ok(FetchReport::default());
    };
    let channel = repo::load_channel(ctx.store.as_ref(), &message.channel_id).await?;
    let secrets = match &channel {
        Some(channel) => ctx.channel_secrets(&channel.tenant_id, &channel.id).await?,
        None => None,
    };
    let module = channel.as_ref().and_then(|channel| ctx.providers.get(channel.provider).ok());
    let mut report = FetchReport::default();
    for media in message.attachments.iter_mut().filter(|media| media.is_pending()) {
        let (Some(module), Some(secrets)) = (module, secrets.as_ref()) else {
            // A channel disconnected meanwhile has no credentials left to fetch with.
            media.status = Some(MediaStatus::Failed);
            media.failure = Some("the channel is not connected any more".into());
            report.failed += 1;
            continue;
        };
        fetch_one(ctx, module, secrets, tenant, message_id, media).await;
        match media.status {
            Some(MediaStatus::Stored) => report.stored += 1,
            Some(MediaStatus::TooLarge) => report.too_large += 1,
            Some(MediaStatus::Failed) => report.failed += 1,
            _ => report.pending += 1,
        }
    }
    record(ctx, &message, report.pending == 0).await?;
    tracing::info!(
        message_id = %message_id,
        stored = report.stored,
        failed = report.failed,
        too_large = report.too_large,
        pending = report.pending,
        "media fetched"
    );
    Ok(report)
}

/// Records the attachments' outcomes on the message and, when nothing is left pending, removes the
/// marker, in one transaction.
async fn record(ctx: &Context, message: &Message, done: bool) -> Result<()> {
    let mut set = Item::new();
    set.insert(
        "attachments".into(),
        serde_json::to_value(&message.attachments)
            .map_err(|_| Error::Internal("attachments not serializable".into()))?,
    );
    let mut writes = vec![Write::Update {
        key: repo::message_key(&message.dialog_id, &message.id),
        set,
        remove: Vec::new(),
        condition: Condition::Exists,
    }];
    if done {
        writes.push(Write::Delete { key: repo::media_fetch_key(&message.id), condition: Condition::Always });
    }
    Ok(ctx.store.transact(writes).await?)
}

/// Fetches one file (a few tries on the provider's trouble) and stores it; sets the outcome on `media`.
async fn fetch_one(
    ctx: &Context,
    module: &dyn ChannelProvider,
    secrets: &ChannelSecrets,
    tenant: &TenantId,
    message_id: &MessageId,
    media: &mut Media,
) {
    for attempt in 1..=TRIES {
        let mut sink = match MediaSink::new(ctx.max_media_bytes).await {
            Ok(sink) => sink,
            Err(error) => {
                tracing::error!(?error, "no temporary file for a media fetch; left pending");
                return;
            }
        };
        match module.fetch_media(secrets, &media.source, &mut sink).await {
            Ok(declared) => {
                let object = StoredObject {
                    key: media::attachment_key(tenant.as_str(), message_id.as_str(), &media.id),
                    mime: sink.sniffed_type(declared.as_deref().or(media.source.mime.as_deref())),
                    size: sink.written(),
                };
                match ctx.media.put_file(&object.key, sink.path(), &object_meta(media, &object)).await {
                    Ok(()) => {
                        media.status = Some(MediaStatus::Stored);
                        media.failure = None;
                        media.object = Some(object);
                    }
                    Err(error) => tracing::warn!(%error, "a fetched file was not stored; left pending"),
                }
                return;
            }
            Err(FetchError::TooLarge { limit }) => {
                media.status = Some(MediaStatus::TooLarge);
                media.failure = Some(format!("larger than {limit} bytes"));
                return;
            }
            Err(FetchError::Provider(error)) if error.is_retryable() => {
                if attempt == TRIES {
                    media.failure = Some(error.to_string());
                    return;
                }
                tokio::time::sleep(try_wait(attempt, &error)).await;
            }
            Err(FetchError::Local(reason)) => {
                tracing::error!(%reason, "a media fetch could not write its temporary file; left pending");
                return;
            }
            Err(error) => {
                media.status = Some(MediaStatus::Failed);
                media.failure = Some(error.to_string());
                return;
            }
        }
    }
}

/// The wait before the next try: 250 ms doubling, or the provider's Retry-After, at most [`MAX_TRY_WAIT`].
fn try_wait(attempt: u32, error: &ProviderError) -> Duration {
    let backoff = Duration::from_millis(250 << attempt.min(4));
    let asked = match error {
        ProviderError::RateLimited { retry_after } => *retry_after,
        _ => Duration::ZERO,
    };
    backoff.max(asked).min(MAX_TRY_WAIT)
}

/// Fetch markers one sweep handles at once per shard.
const ITEMS_AT_ONCE: usize = 16;

/// What a sweep did: fetches handed out again, and messages given up on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub handed_out: usize,
    pub given_up: usize,
}

/// Hands out again the fetches whose markers came due (the queued item was lost, or the provider kept
/// failing): each marker is claimed by moving its due time (backoff doubling from the grace period), so
/// two sweeps hand one fetch out once; past [`MAX_SWEEPS`] the files still pending are marked failed.
pub async fn sweep_due(ctx: &Context, run: due::Run) -> Result<SweepReport> {
    sweep(ctx, run, ctx.clock.now(), true).await
}

/// Hands out every fetch waiting, due or not, without counting it as a sweep: what a process whose queue
/// lives in its memory does when it starts (the local runner; a fetch queued before a crash is gone).
pub async fn resume(ctx: &Context) -> Result<SweepReport> {
    let horizon = ctx.clock.now() + FETCH_GRACE * 2i32.pow(MAX_SWEEPS + 1);
    sweep(ctx, due::Run::to_the_end(), horizon, false).await
}

async fn sweep(ctx: &Context, run: due::Run, until: Timestamp, counted: bool) -> Result<SweepReport> {
    let now = ctx.clock.now();
    let partitions = (0..repo::DUE_SHARDS).map(repo::media_due_pk).collect();
    let act = |item: Item| {
        async move {
            match sweep_one(ctx, item, now, counted).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::error!(%error, "a media fetch marker was not handled");
                    None
                }
            }
        }
        .boxed()
    };
    let drained = due::drain(ctx.store.as_ref(), partitions, until, run, ITEMS_AT_ONCE, act).await?;
    let mut report = SweepReport::default();
    for outcome in drained.outcomes.into_iter().flatten() {
        match outcome {
            Swept::HandedOut => report.handed_out += 1,
            Swept::GivenUp => report.given_up += 1,
        }
    }
    Ok(report)
}

enum Swept {
    HandedOut,
    GivenUp,
}

async fn sweep_one(ctx: &Context, item: Item, now: Timestamp, counted: bool) -> Result<Option<Swept>> {
    let observed_due = item.get(Index::Gsi3.sk_attr()).cloned().unwrap_or(Value::Null);
    let mut marker: FetchMarker = repo::from_item(item)?;
    if counted && marker.sweeps >= MAX_SWEEPS {
        give_up(ctx, &marker).await?;
        return Ok(Some(Swept::GivenUp));
    }
    if counted {
        marker.sweeps += 1;
    }
    let next = now + FETCH_GRACE * 2i32.pow(marker.sweeps.min(8));
    let claim = Write::Put {
        item: marker_item(&marker, next)?,
        condition: Condition::Equals(Index::Gsi3.sk_attr().into(), observed_due),
    };
    match ctx.store.transact(vec![claim]).await {
        Ok(()) => {}
        Err(crate::ports::StoreError::Conflict { .. }) => return Ok(None),
        Err(other) => return Err(other.into()),
    }
    let work = Work::FetchMedia {
        tenant_id: marker.tenant_id,
        dialog_id: marker.dialog_id,
        message_id: marker.message_id,
    };
    ctx.media_queue.enqueue(&[work]).await.map_err(|error| Error::Internal(error.to_string()))?;
    Ok(Some(Swept::HandedOut))
}

/// Marks the files still pending failed (with the last reason, if any) and removes the marker.
async fn give_up(ctx: &Context, marker: &FetchMarker) -> Result<()> {
    let message = repo::load_message(ctx.store.as_ref(), &marker.dialog_id, &marker.message_id).await?;
    let Some(mut message) = message else {
        let gone =
            Write::Delete { key: repo::media_fetch_key(&marker.message_id), condition: Condition::Always };
        return Ok(ctx.store.transact(vec![gone]).await?);
    };
    for media in message.attachments.iter_mut().filter(|media| media.is_pending()) {
        media.status = Some(MediaStatus::Failed);
        let last = media.failure.take().unwrap_or_else(|| "no answer".into());
        media.failure = Some(format!("gave up after {MAX_SWEEPS} fetches: {last}"));
    }
    tracing::warn!(message_id = %message.id, "media fetch given up");
    record(ctx, &message, true).await
}

/// Fills in the time-limited link of every stored attachment of `messages` (the API's `url`).
pub async fn link_attachments(ctx: &Context, messages: &mut [Message]) -> Result<()> {
    let expires_at = ctx.clock.now() + media::DOWNLOAD_LINK_TTL;
    for media in messages.iter_mut().flat_map(|message| message.attachments.iter_mut()) {
        if let (Some(MediaStatus::Stored), Some(object)) = (media.status, &media.object) {
            let meta = object_meta(media, object);
            media.url = Some(ctx.media.download_url(&object.key, &meta, expires_at).await?);
        }
    }
    Ok(())
}

fn object_meta(media: &Media, object: &StoredObject) -> ObjectMeta {
    ObjectMeta {
        content_type: object.mime.clone(),
        name: media.source.name.as_deref().and_then(media::sanitize_name),
        size: object.size,
    }
}

/// An upload waiting to be sent with a reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub id: String,
    pub tenant_id: TenantId,
    pub name: Option<String>,
    /// As declared; the type sent is sniffed from the bytes.
    pub mime_type: String,
    pub size: u64,
    /// When it may no longer be sent (the record's TTL, `expires_at`, follows it).
    pub valid_until: Timestamp,
}

/// An upload and where its bytes go.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub upload: Upload,
    pub target: UploadTarget,
    /// Until when the link takes bytes.
    pub upload_expires_at: Timestamp,
}

/// Records an upload and answers a link taking its bytes: the size within `OMNICHAT_MAX_MEDIA_BYTES` and
/// the type a plain `type/subtype`, or a 422 naming the field.
pub async fn create_upload(
    ctx: &Context,
    principal: &Principal,
    name: Option<&str>,
    mime_type: &str,
    size: u64,
) -> Result<NewUpload> {
    let max = ctx.max_media_bytes;
    if size == 0 || size > max {
        return Err(Error::rule("too_large", "size", format!("1 to {max} bytes / от 1 до {max} байт")));
    }
    let mime_type = mime_type.trim().to_ascii_lowercase();
    if !media::is_plain_type(&mime_type) {
        return Err(Error::rule("invalid_mime_type", "mime_type", "a media type such as image/jpeg"));
    }
    let name = match name {
        Some(raw) => Some(
            media::sanitize_name(raw)
                .ok_or_else(|| Error::rule("invalid_name", "name", "a file name with a visible character"))?,
        ),
        None => None,
    };
    let now = ctx.clock.now();
    let upload = Upload {
        id: uuid::Uuid::now_v7().simple().to_string(),
        tenant_id: principal.tenant_id.clone(),
        name,
        mime_type,
        size,
        valid_until: now + UPLOAD_TTL,
    };
    let key = repo::upload_record_key(&upload.tenant_id, &upload.id);
    let item = repo::with_expiry(repo::to_item(&upload, &key, &[])?, upload.valid_until.as_second());
    ctx.store.transact(vec![Write::Put { item, condition: Condition::NotExists }]).await?;
    let upload_expires_at = now + media::UPLOAD_LINK_TTL;
    let object = media::upload_key(upload.tenant_id.as_str(), &upload.id);
    let target = ctx.media.upload_url(&object, &upload.mime_type, size, upload_expires_at).await?;
    Ok(NewUpload { upload, target, upload_expires_at })
}

/// The uploads a reply names, as the message's attachments: each recorded for the principal's tenant and
/// not expired, its bytes uploaded with the declared size, of a kind (sniffed) the channel's provider
/// sends and within its limit; else a 422 naming `attachments[i]`, before anything is stored.
pub async fn attach_uploads(
    ctx: &Context,
    principal: &Principal,
    module: &dyn ChannelProvider,
    ids: &[String],
) -> Result<Vec<Media>> {
    const MAX_ATTACHMENTS: usize = 10;
    if ids.len() > MAX_ATTACHMENTS {
        return Err(Error::rule(
            "too_many_attachments",
            "attachments",
            format!("at most {MAX_ATTACHMENTS} attachments"),
        ));
    }
    let now = ctx.clock.now();
    let mut attached = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let field = format!("attachments[{i}]");
        let unknown = || Error::rule("unknown_upload", field.clone(), "no such upload / файл не найден");
        let valid_id = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid_id || ids[..i].contains(id) {
            return Err(unknown());
        }
        let key = repo::upload_record_key(&principal.tenant_id, id);
        let upload: Upload = repo::load(ctx.store.as_ref(), &key).await?.ok_or_else(unknown)?;
        if upload.tenant_id != principal.tenant_id || upload.valid_until <= now {
            return Err(unknown());
        }
        let object = media::upload_key(upload.tenant_id.as_str(), &upload.id);
        let Some((size, head)) = ctx.media.head(&object).await? else {
            return Err(Error::rule("upload_incomplete", field, "the file's bytes were not uploaded"));
        };
        if size != upload.size {
            return Err(Error::rule(
                "upload_incomplete",
                field,
                format!("{size} bytes uploaded where {} were declared", upload.size),
            ));
        }
        let mime = media::sniff(&head, Some(&upload.mime_type));
        let kind = AttachmentKind::of_mime(&mime);
        match module.media_limit(kind) {
            None => {
                return Err(Error::rule(
                    "unsupported_attachment",
                    field,
                    format!("the channel's provider does not send {mime} files"),
                ));
            }
            Some(limit) if size > limit => {
                return Err(Error::rule(
                    "attachment_too_large",
                    field,
                    format!("the channel's provider takes {mime} files up to {limit} bytes"),
                ));
            }
            Some(_) => {}
        }
        attached.push(Media::uploaded(
            upload.id,
            kind,
            upload.name,
            StoredObject { key: object, mime, size },
        ));
    }
    Ok(attached)
}

/// The attachments of an outgoing message as its provider takes them: a link for providers that fetch
/// the file, the bytes in a local file for those that upload it (kept in `dir`, removed with it).
pub async fn outgoing_media(
    ctx: &Context,
    module: &dyn ChannelProvider,
    message: &Message,
    dir: &std::path::Path,
) -> std::result::Result<Vec<OutgoingMedia>, ProviderError> {
    let mut outgoing = Vec::with_capacity(message.attachments.len());
    let expires_at = ctx.clock.now() + media::PROVIDER_LINK_TTL;
    let unavailable = |error: crate::ports::MediaError| ProviderError::Unavailable(error.to_string());
    for (i, media) in message.attachments.iter().enumerate() {
        let Some(object) = &media.object else { continue };
        let meta = object_meta(media, object);
        let url = ctx.media.download_url(&object.key, &meta, expires_at).await.map_err(unavailable)?;
        let path = match module.sends_media_from_file() {
            true => {
                let path = dir.join(format!("attachment-{i}"));
                if !ctx.media.get_to_file(&object.key, &path).await.map_err(unavailable)? {
                    return Err(ProviderError::Rejected("the attachment's file is gone".into()));
                }
                Some(path)
            }
            false => None,
        };
        outgoing.push(OutgoingMedia {
            kind: media.source.kind,
            name: meta.name,
            mime: object.mime.clone(),
            size: object.size,
            url,
            path,
        });
    }
    Ok(outgoing)
}

#[cfg(test)]
mod tests;
