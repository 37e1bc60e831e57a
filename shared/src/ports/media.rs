//! The media store: our own copy of every file customers send and employees upload. S3 on AWS (presigned
//! GET and PUT URLs); files under the data dir locally, served and taken by HMAC-signed routes of the
//! local runner. Both pass the same conformance suite (`tests/tests/conformance/media.rs`).
//!
//! Objects are written whole from a local file ([`MediaSink`] streams a download into one, so memory stays
//! flat whatever the size) under a key the caller derives from what the object is (tenant, message,
//! attachment): writing the same key again replaces the object, so a repeated fetch stores one object.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

/// How long a link to a stored file is valid: at least the five minutes API.md promises, short enough that
/// a link copied out of the API is soon worthless.
pub const DOWNLOAD_LINK_TTL: SignedDuration = SignedDuration::from_mins(15);
/// How long an upload link takes bytes.
pub const UPLOAD_LINK_TTL: SignedDuration = SignedDuration::from_mins(15);
/// How long a link handed to a provider that fetches the file itself (Viber, WhatsApp) is valid.
pub const PROVIDER_LINK_TTL: SignedDuration = SignedDuration::from_hours(1);
/// The largest file kept unless `OMNICHAT_MAX_MEDIA_BYTES` says otherwise (25 MiB).
pub const DEFAULT_MAX_MEDIA_BYTES: u64 = 25 * 1024 * 1024;
/// The bytes a media type is sniffed from.
pub const SNIFF_BYTES: usize = 512;

/// What is kept beside an object's bytes, and served with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Sniffed from the bytes.
    pub content_type: String,
    /// The original file name, sanitized ([`sanitize_name`]); served as `Content-Disposition`.
    pub name: Option<String>,
    pub size: u64,
}

/// Where and how a client sends an upload's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTarget {
    pub url: String,
    pub method: &'static str,
    /// Headers the client must send with the bytes (a presigned PUT is signed over them).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("media store unavailable: {0}")]
    Unavailable(String),
    /// A key that is not one of ours (the caller built it wrong).
    #[error("not a media key: {0}")]
    BadKey(String),
}

#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores the file at `path` under `key`, replacing an object of that key.
    async fn put_file(&self, key: &str, path: &Path, meta: &ObjectMeta) -> Result<(), MediaError>;

    /// The object's size and its first bytes (up to [`SNIFF_BYTES`]), or `None` when there is none.
    async fn head(&self, key: &str) -> Result<Option<(u64, Vec<u8>)>, MediaError>;

    /// Copies the object into the local file at `path` (for providers that take the bytes themselves);
    /// false when there is no object.
    async fn get_to_file(&self, key: &str, path: &Path) -> Result<bool, MediaError>;

    async fn delete(&self, key: &str) -> Result<(), MediaError>;

    /// A link that serves the object's bytes with `meta`'s content type and name until `expires_at`, to
    /// whoever holds it.
    async fn download_url(
        &self,
        key: &str,
        meta: &ObjectMeta,
        expires_at: Timestamp,
    ) -> Result<String, MediaError>;

    /// A link that takes at most `max_bytes` for `key` until `expires_at`.
    async fn upload_url(
        &self,
        key: &str,
        content_type: &str,
        max_bytes: u64,
        expires_at: Timestamp,
    ) -> Result<UploadTarget, MediaError>;
}

/// Why a download into a [`MediaSink`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// More bytes than the sink takes.
    TooLarge { limit: u64 },
    /// The local file could not be written.
    Io(String),
}

/// A download on its way to storage: bytes are written to a temporary file as they come (memory stays
/// flat), counted against a limit, and the first ones kept for sniffing the media type.
pub struct MediaSink {
    file: tokio::fs::File,
    path: PathBuf,
    _dir: tempfile::TempDir,
    limit: u64,
    written: u64,
    head: Vec<u8>,
}

impl MediaSink {
    /// A sink taking at most `limit` bytes, in a fresh temporary directory (removed when the sink is).
    pub async fn new(limit: u64) -> Result<Self, SinkError> {
        let dir = tempfile::tempdir().map_err(|error| SinkError::Io(error.to_string()))?;
        let path = dir.path().join("media");
        let file = tokio::fs::File::create(&path).await.map_err(|error| SinkError::Io(error.to_string()))?;
        Ok(Self { file, path, _dir: dir, limit, written: 0, head: Vec::new() })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Writes the next bytes; refuses them (writing nothing) when they take the total past the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), SinkError> {
        use tokio::io::AsyncWriteExt;
        let total = self.written + chunk.len() as u64;
        if total > self.limit {
            return Err(SinkError::TooLarge { limit: self.limit });
        }
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.file.write_all(chunk).await.map_err(|error| SinkError::Io(error.to_string()))?;
        self.written = total;
        Ok(())
    }

    /// Flushes what was written; the file at [`MediaSink::path`] is then complete.
    pub async fn finish(&mut self) -> Result<(), SinkError> {
        use tokio::io::AsyncWriteExt;
        self.file.flush().await.map_err(|error| SinkError::Io(error.to_string()))?;
        self.file.sync_data().await.map_err(|error| SinkError::Io(error.to_string()))
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The media type of what was written, from its bytes; `declared` (the provider's word) only where the
    /// bytes name none and it is a plain `type/subtype`, else `application/octet-stream`.
    pub fn sniffed_type(&self, declared: Option<&str>) -> String {
        sniff(&self.head, declared)
    }
}

/// The media type of a file starting with `head`, from its magic bytes; `declared` only where the bytes
/// name none (text, say) and it is a plain `type/subtype`; else `application/octet-stream`.
pub fn sniff(head: &[u8], declared: Option<&str>) -> String {
    if let Some(found) = infer::get(head) {
        return served_as(found.mime_type());
    }
    match declared
        .map(|mime| mime.split(';').next().unwrap_or_default().trim())
        .filter(|mime| is_plain_type(mime))
    {
        // Declared types the bytes would have shown are not believed without them (no executable
        // content served as an image because a provider said so).
        Some(mime) if !mime.starts_with("image/") && !mime.starts_with("video/") => {
            served_as(&mime.to_ascii_lowercase())
        }
        _ => "application/octet-stream".to_owned(),
    }
}

/// A type as served: what a browser would run or render as a page from our origin (HTML, SVG, XML,
/// scripts) is served as bytes to download instead.
fn served_as(mime: &str) -> String {
    let active = ["html", "svg", "xml", "javascript", "ecmascript"].iter().any(|word| mime.contains(word));
    if active { "application/octet-stream".to_owned() } else { mime.to_owned() }
}

/// `key` when it is one of the two shapes [`valid_key`] takes, else `BadKey` (the key, cut short).
pub fn checked_key(key: &str) -> Result<&str, MediaError> {
    match valid_key(key) {
        true => Ok(key),
        false => Err(MediaError::BadKey(key.chars().take(100).collect())),
    }
}

/// `type/subtype` of letters, digits and `+-.`: a media type that can be served as it is.
pub fn is_plain_type(mime: &str) -> bool {
    let mut parts = mime.split('/');
    let word = |part: Option<&str>| {
        part.is_some_and(|p| {
            !p.is_empty()
                && p.len() <= 64
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        })
    };
    word(parts.next()) && word(parts.next()) && parts.next().is_none()
}

/// `Content-Disposition` of a served file: inline for images, video and audio (so `<img src>` and players
/// work), an attachment otherwise; the name as an ASCII fallback and in UTF-8 (RFC 6266).
pub fn content_disposition(meta: &ObjectMeta) -> String {
    let inline = ["image/", "video/", "audio/"].iter().any(|prefix| meta.content_type.starts_with(prefix));
    let kind = if inline { "inline" } else { "attachment" };
    match &meta.name {
        None => kind.to_owned(),
        Some(name) => {
            let ascii: String =
                name.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '_' }).collect();
            let encoded: String = name
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
        }
    }
}

/// The media store of a context given none: nothing can be stored or linked, saying why.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMediaStore;

#[async_trait]
impl MediaStore for NoMediaStore {
    async fn put_file(&self, _key: &str, _path: &Path, _meta: &ObjectMeta) -> Result<(), MediaError> {
        Err(none())
    }

    async fn head(&self, _key: &str) -> Result<Option<(u64, Vec<u8>)>, MediaError> {
        Err(none())
    }

    async fn get_to_file(&self, _key: &str, _path: &Path) -> Result<bool, MediaError> {
        Err(none())
    }

    async fn delete(&self, _key: &str) -> Result<(), MediaError> {
        Err(none())
    }

    async fn download_url(
        &self,
        _key: &str,
        _meta: &ObjectMeta,
        _expires_at: Timestamp,
    ) -> Result<String, MediaError> {
        Err(none())
    }

    async fn upload_url(
        &self,
        _key: &str,
        _content_type: &str,
        _max_bytes: u64,
        _expires_at: Timestamp,
    ) -> Result<UploadTarget, MediaError> {
        Err(none())
    }
}

fn none() -> MediaError {
    MediaError::Unavailable("no media store configured (MEDIA_BUCKET is not set)".into())
}

/// A file name as kept and served: its last path segment, control characters, quotes, slashes and
/// backslashes dropped, at most 128 characters; `None` when nothing is left.
pub fn sanitize_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\'' | ';' | '<' | '>' | '`'))
        .take(128)
        .collect();
    let clean = clean.trim().trim_start_matches('.').trim().to_owned();
    (!clean.is_empty()).then_some(clean)
}

/// The object key of a message's attachment: `media/{tenant}/{message}/{attachment}`.
pub fn attachment_key(tenant: &str, message: &str, attachment: &str) -> String {
    format!("media/{tenant}/{message}/{attachment}")
}

/// The object key of an upload: `uploads/{tenant}/{upload}`.
pub fn upload_key(tenant: &str, upload: &str) -> String {
    format!("uploads/{tenant}/{upload}")
}

/// Whether `key` is one of the two shapes above, with no way out of its directory (the embedded adapter
/// maps keys to paths).
pub fn valid_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    let segment = |s: &&str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match parts.first() {
        Some(&"media") => parts.len() == 4 && parts[1..].iter().all(segment),
        Some(&"uploads") => parts.len() == 3 && parts[1..].iter().all(segment),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
        assert_eq!(sniff(&png, Some("application/pdf")), "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n", None), "application/pdf");
        assert_eq!(sniff(b"hello", Some("text/plain; charset=utf-8")), "text/plain");
        // A provider's word for a type the bytes would show is not taken.
        assert_eq!(sniff(b"<script>", Some("image/png")), "application/octet-stream");
        assert_eq!(sniff(b"<script>", Some("text/html")), "application/octet-stream");
        assert_eq!(sniff(b"<html><body>", None), "application/octet-stream");
        assert_eq!(sniff(b"x", Some("image/svg+xml")), "application/octet-stream");
        assert_eq!(sniff(b"x", Some("application/xhtml+xml")), "application/octet-stream");
        assert_eq!(sniff(b"x", Some("text/plain\r\nX-Evil: 1")), "application/octet-stream");
        assert_eq!(sniff(b"x", None), "application/octet-stream");
    }

    #[test]
    fn served_names_are_quoted_and_encoded() {
        let meta = |content_type: &str, name: Option<&str>| ObjectMeta {
            content_type: content_type.into(),
            name: name.map(str::to_owned),
            size: 1,
        };
        assert_eq!(content_disposition(&meta("image/png", None)), "inline");
        assert_eq!(
            content_disposition(&meta("application/pdf", Some("чек 1.pdf"))),
            "attachment; filename=\"___ 1.pdf\"; filename*=UTF-8''%D1%87%D0%B5%D0%BA%201.pdf"
        );
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(sanitize_name("C:\\Users\\a\\receipt.pdf").as_deref(), Some("receipt.pdf"));
        assert_eq!(sanitize_name("a\"b\r\n.txt").as_deref(), Some("ab.txt"));
        assert_eq!(sanitize_name(".hidden").as_deref(), Some("hidden"));
        assert_eq!(sanitize_name("../"), None);
        assert_eq!(sanitize_name(&"я".repeat(300)).map(|n| n.chars().count()), Some(128));
    }

    #[test]
    fn keys_cannot_leave_their_place() {
        assert!(valid_key("media/t-1/m-2/a0"));
        assert!(valid_key("uploads/t-1/u_2"));
        for bad in
            ["media/../x/y", "media/a/b", "uploads/a/b/c", "other/a/b", "media/a/b/c d", "", "media//b/c"]
        {
            assert!(!valid_key(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_sink_stops_at_its_limit_and_keeps_the_head() {
        let mut sink = MediaSink::new(10).await.expect("sink");
        sink.write(b"%PDF-").await.expect("fits");
        sink.write(b"1.7\n").await.expect("fits");
        assert_eq!(sink.write(b"too much").await, Err(SinkError::TooLarge { limit: 10 }));
        sink.finish().await.expect("flushed");
        assert_eq!(sink.written(), 9);
        assert_eq!(std::fs::read(sink.path()).expect("file"), b"%PDF-1.7\n");
        assert_eq!(sink.sniffed_type(None), "application/pdf");
    }
}
