//! The S3 adapter of the [`MediaStore`] port: one object per key in the media bucket (template.yaml's
//! `MediaBucket`: encrypted, public access blocked, `media/` expiring with the message retention and
//! `uploads/` after a day). Objects are written from a local file as a stream (`ByteStream::from_path`), so
//! a function's memory stays flat whatever the size; links are presigned GET and PUT requests, signed
//! locally without a call.
//!
//! With an endpoint override (`AWS_ENDPOINT_URL`, moto) requests are path-style (`{endpoint}/{bucket}/{key}`):
//! a bucket name as a subdomain of 127.0.0.1 resolves nowhere.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use jiff::Timestamp;
use tokio::io::AsyncWriteExt;

use super::LazyClient;
use crate::ports::media::{self, MediaError, MediaStore, ObjectMeta, SNIFF_BYTES, UploadTarget};

/// The [`MediaStore`] on one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3MediaStore {
    client: LazyClient<Client>,
    bucket: String,
}

impl S3MediaStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self { client: client.into(), bucket: bucket.into() }
    }

    /// The client of `config`, path-style when the configuration overrides the endpoint.
    pub fn from_config(config: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let path_style = config.endpoint_url().is_some();
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build();
        Self { client: LazyClient::new(move || Client::from_conf(s3.clone())), bucket: bucket.into() }
    }

    pub fn client(&self) -> &Client {
        self.client.get()
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

fn sdk_error<E: std::error::Error + Send + Sync + 'static>(
    operation: &str,
    error: SdkError<E>,
) -> MediaError {
    MediaError::Unavailable(format!("S3 {operation}: {}", DisplayErrorContext(&error)))
}

/// How long a link made at now for `expires_at` lasts: at least a second, at most S3's 7 days.
fn lifetime(expires_at: Timestamp) -> Result<PresigningConfig, MediaError> {
    let seconds = expires_at.as_second().saturating_sub(Timestamp::now().as_second()).clamp(1, 7 * 24 * 3600);
    PresigningConfig::expires_in(Duration::from_secs(seconds.unsigned_abs()))
        .map_err(|error| MediaError::Unavailable(format!("presigning: {error}")))
}

#[async_trait]
impl MediaStore for S3MediaStore {
    async fn put_file(&self, key: &str, path: &Path, meta: &ObjectMeta) -> Result<(), MediaError> {
        let key = media::checked_key(key)?;
        // The length is the file's (ByteStream reads it), whatever `meta` says.
        let body = ByteStream::from_path(path)
            .await
            .map_err(|error| MediaError::Unavailable(format!("reading the file to store: {error}")))?;
        self.client()
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(&meta.content_type)
            // Kept with the object too, so it is served even where a link's override is not honoured.
            .content_disposition(media::content_disposition(meta))
            .body(body)
            .send()
            .await
            .map(drop)
            .map_err(|error| sdk_error("PutObject", error))
    }

    async fn head(&self, key: &str) -> Result<Option<(u64, Vec<u8>)>, MediaError> {
        let key = media::checked_key(key)?;
        let range = format!("bytes=0-{}", SNIFF_BYTES - 1);
        let answer = match self.client().get_object().bucket(&self.bucket).key(key).range(range).send().await
        {
            Ok(answer) => answer,
            Err(error) if matches!(error.code(), Some("NoSuchKey" | "NotFound")) => return Ok(None),
            // An empty object has no byte 0: S3 answers 416 to the range.
            Err(error) if error.code() == Some("InvalidRange") => return Ok(Some((0, Vec::new()))),
            Err(error) => return Err(sdk_error("GetObject", error)),
        };
        // `bytes 0-511/12345`: the size is after the slash; without a range answer, the length is the size.
        let size = answer
            .content_range()
            .and_then(|range| range.rsplit('/').next())
            .and_then(|total| total.parse::<u64>().ok())
            .or_else(|| answer.content_length().and_then(|length| u64::try_from(length).ok()))
            .unwrap_or_default();
        let head = answer
            .body
            .collect()
            .await
            .map_err(|error| MediaError::Unavailable(format!("S3 GetObject body: {error}")))?
            .into_bytes();
        Ok(Some((size, head.iter().take(SNIFF_BYTES).copied().collect())))
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> Result<bool, MediaError> {
        let key = media::checked_key(key)?;
        let mut answer = match self.client().get_object().bucket(&self.bucket).key(key).send().await {
            Ok(answer) => answer,
            Err(error) if matches!(error.code(), Some("NoSuchKey" | "NotFound")) => return Ok(false),
            Err(error) => return Err(sdk_error("GetObject", error)),
        };
        let local = |error: std::io::Error| MediaError::Unavailable(format!("local file: {error}"));
        let mut file = tokio::fs::File::create(path).await.map_err(local)?;
        while let Some(chunk) = answer
            .body
            .try_next()
            .await
            .map_err(|error| MediaError::Unavailable(format!("S3 GetObject body: {error}")))?
        {
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.flush().await.map_err(local)?;
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<(), MediaError> {
        let key = media::checked_key(key)?;
        self.client()
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|error| sdk_error("DeleteObject", error))
    }

    async fn download_url(
        &self,
        key: &str,
        meta: &ObjectMeta,
        expires_at: Timestamp,
    ) -> Result<String, MediaError> {
        let key = media::checked_key(key)?;
        let request = self
            .client()
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(&meta.content_type)
            .response_content_disposition(media::content_disposition(meta))
            .presigned(lifetime(expires_at)?)
            .await
            .map_err(|error| sdk_error("GetObject presign", error))?;
        Ok(request.uri().to_owned())
    }

    async fn upload_url(
        &self,
        key: &str,
        content_type: &str,
        max_bytes: u64,
        expires_at: Timestamp,
    ) -> Result<UploadTarget, MediaError> {
        let key = media::checked_key(key)?;
        // The length is signed: S3 takes exactly the declared bytes, no more.
        let request = self
            .client()
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(max_bytes).unwrap_or(i64::MAX))
            .presigned(lifetime(expires_at)?)
            .await
            .map_err(|error| sdk_error("PutObject presign", error))?;
        let headers = request
            .headers()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect();
        Ok(UploadTarget { url: request.uri().to_owned(), method: "PUT", headers })
    }
}

/// Creates the media bucket if it does not exist (tests and benchmarks against moto; on AWS the template
/// does).
pub async fn create_bucket(client: &Client, bucket: &str) -> Result<(), MediaError> {
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(error) if matches!(error.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => {
            Ok(())
        }
        Err(error) => Err(sdk_error("CreateBucket", error)),
    }
}
