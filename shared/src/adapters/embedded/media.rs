//! The embedded adapter of the [`MediaStore`] port: objects as files under `{data dir}/media/`, one per key
//! (written to a temporary name, then renamed: a reader never sees half a file), and links to the local
//! runner's `/media/{key}` route signed with HMAC-SHA256 under a key of the data dir's secrets.
//!
//! A download link `GET {base}/media/{key}?ct=&n=&exp=&sig=` serves the object with the signed content type
//! and name until `exp` (epoch seconds); an upload link `PUT {base}/media/{key}?ct=&max=&exp=&sig=` takes at
//! most `max` bytes. The signature covers the method, the key and every parameter, so none can be changed.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha2::Sha256;

use crate::ports::media::{self, MediaError, MediaStore, ObjectMeta, SNIFF_BYTES, UploadTarget};
use crate::secret::Secret;

/// The directory of objects inside the data dir.
pub const MEDIA_DIR: &str = "media";
/// The secret (in the data dir's secrets) that signs the links.
pub const LINK_KEY_SECRET: &str = "media/link-key";

#[derive(Clone)]
pub struct FileMediaStore {
    root: PathBuf,
    base_url: String,
    key: Secret,
}

impl std::fmt::Debug for FileMediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMediaStore").field("root", &self.root).field("base_url", &self.base_url).finish()
    }
}

/// What a signed link allows, once its signature and time are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Granted {
    /// Serve the object with this content type and name.
    Download { content_type: String, name: Option<String> },
    /// Take at most `max_bytes` for the object.
    Upload { max_bytes: u64 },
}

/// Why a link was refused (all answer 403 but a missing object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefused {
    #[error("the link is not valid")]
    Invalid,
    #[error("the link has expired")]
    Expired,
}

impl FileMediaStore {
    /// Objects under `root` (created 0700), links under `base_url` (the runner's address), signed with `key`.
    pub fn open(root: &Path, base_url: &str, key: Secret) -> Result<Self, MediaError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|error| MediaError::Unavailable(format!("cannot create {}: {error}", root.display())))?;
        Ok(Self { root: root.to_owned(), base_url: base_url.trim_end_matches('/').to_owned(), key })
    }

    /// The file of `key`; a key of another shape is refused (no path outside the root).
    pub fn path_of(&self, key: &str) -> Result<PathBuf, MediaError> {
        Ok(self.root.join(media::checked_key(key)?))
    }

    fn sign(&self, parts: &[&str]) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes()) else {
            return String::new();
        };
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn link(&self, key: &str, pairs: &[(&str, &str)]) -> String {
        let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        format!("{}/media/{key}?{query}", self.base_url)
    }

    /// Checks a link's query for `method` (`GET` or `PUT`) on `key` at `now`: what it allows, or why not.
    pub fn check_link(
        &self,
        method: &str,
        key: &str,
        query: &str,
        now: Timestamp,
    ) -> Result<Granted, LinkRefused> {
        if !media::valid_key(key) {
            return Err(LinkRefused::Invalid);
        }
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let (Some(exp), Some(sig)) = (get("exp"), get("sig")) else {
            return Err(LinkRefused::Invalid);
        };
        let content_type = get("ct").unwrap_or_default();
        let (expected, granted) = match method {
            "GET" => {
                let name = get("n").unwrap_or_default();
                let granted = Granted::Download {
                    content_type: content_type.to_owned(),
                    name: (!name.is_empty()).then(|| name.to_owned()),
                };
                (self.sign(&["GET", key, content_type, name, exp]), granted)
            }
            "PUT" => {
                let max = get("max").unwrap_or_default();
                let max_bytes = max.parse::<u64>().map_err(|_| LinkRefused::Invalid)?;
                (self.sign(&["PUT", key, content_type, max, exp]), Granted::Upload { max_bytes })
            }
            _ => return Err(LinkRefused::Invalid),
        };
        use subtle::ConstantTimeEq;
        if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
            return Err(LinkRefused::Invalid);
        }
        let expires = exp.parse::<i64>().map_err(|_| LinkRefused::Invalid)?;
        if now.as_second() >= expires {
            return Err(LinkRefused::Expired);
        }
        Ok(granted)
    }

    /// A temporary file beside the object (renamed over it once complete).
    pub fn temporary_path(&self, key: &str) -> Result<PathBuf, MediaError> {
        let path = self.path_of(key)?;
        let name = format!(
            ".{}.{}.part",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("object"),
            uuid::Uuid::now_v7().simple()
        );
        Ok(path.with_file_name(name))
    }

    /// Makes the object's directory (0700).
    pub async fn prepare_dir(&self, key: &str) -> Result<PathBuf, MediaError> {
        let path = self.path_of(key)?;
        if let Some(parent) = path.parent() {
            let mut builder = tokio::fs::DirBuilder::new();
            builder.recursive(true).mode(0o700);
            builder.create(parent).await.map_err(unavailable)?;
        }
        Ok(path)
    }
}

fn unavailable(error: std::io::Error) -> MediaError {
    MediaError::Unavailable(error.to_string())
}

#[async_trait]
impl MediaStore for FileMediaStore {
    async fn put_file(&self, key: &str, path: &Path, _meta: &ObjectMeta) -> Result<(), MediaError> {
        let target = self.prepare_dir(key).await?;
        let temporary = self.temporary_path(key)?;
        tokio::fs::copy(path, &temporary).await.map_err(unavailable)?;
        tokio::fs::rename(&temporary, &target).await.map_err(unavailable)
    }

    async fn head(&self, key: &str) -> Result<Option<(u64, Vec<u8>)>, MediaError> {
        use tokio::io::AsyncReadExt;
        let path = self.path_of(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(unavailable(error)),
        };
        let size = file.metadata().await.map_err(unavailable)?.len();
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        (&mut file).take(SNIFF_BYTES as u64).read_to_end(&mut head).await.map_err(unavailable)?;
        Ok(Some((size, head)))
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> Result<bool, MediaError> {
        match tokio::fs::copy(self.path_of(key)?, path).await {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), MediaError> {
        match tokio::fs::remove_file(self.path_of(key)?).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn download_url(
        &self,
        key: &str,
        meta: &ObjectMeta,
        expires_at: Timestamp,
    ) -> Result<String, MediaError> {
        self.path_of(key)?;
        let exp = expires_at.as_second().to_string();
        let name = meta.name.as_deref().unwrap_or_default();
        let sig = self.sign(&["GET", key, &meta.content_type, name, &exp]);
        Ok(self.link(key, &[("ct", &meta.content_type), ("n", name), ("exp", &exp), ("sig", &sig)]))
    }

    async fn upload_url(
        &self,
        key: &str,
        content_type: &str,
        max_bytes: u64,
        expires_at: Timestamp,
    ) -> Result<UploadTarget, MediaError> {
        self.path_of(key)?;
        let exp = expires_at.as_second().to_string();
        let max = max_bytes.to_string();
        let sig = self.sign(&["PUT", key, content_type, &max, &exp]);
        Ok(UploadTarget {
            url: self.link(key, &[("ct", content_type), ("max", &max), ("exp", &exp), ("sig", &sig)]),
            method: "PUT",
            headers: vec![("content-type".into(), content_type.to_owned())],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> FileMediaStore {
        FileMediaStore::open(&dir.join("media"), "http://127.0.0.1:3000/", Secret::new("k".repeat(32)))
            .expect("store")
    }

    fn query_of(link: &str) -> (String, String) {
        let url = url::Url::parse(link).expect("url");
        let key = url.path().trim_start_matches("/media/").to_owned();
        (key, url.query().unwrap_or_default().to_owned())
    }

    #[tokio::test]
    async fn links_grant_what_they_were_signed_for_until_they_expire() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store(dir.path());
        let now = Timestamp::from_second(1_800_000_000).expect("time");
        let meta = ObjectMeta { content_type: "image/png".into(), name: Some("чек.png".into()), size: 3 };
        let link = store
            .download_url("media/t/m/a0", &meta, now + jiff::SignedDuration::from_mins(5))
            .await
            .expect("link");
        assert!(link.starts_with("http://127.0.0.1:3000/media/media/t/m/a0?"), "{link}");
        let (key, query) = query_of(&link);
        assert_eq!(
            store.check_link("GET", &key, &query, now),
            Ok(Granted::Download { content_type: "image/png".into(), name: Some("чек.png".into()) })
        );
        assert_eq!(store.check_link("PUT", &key, &query, now), Err(LinkRefused::Invalid));
        assert_eq!(store.check_link("GET", "media/t/m/a1", &query, now), Err(LinkRefused::Invalid));
        let later = now + jiff::SignedDuration::from_mins(6);
        assert_eq!(store.check_link("GET", &key, &query, later), Err(LinkRefused::Expired));
        let tampered = query.replace("image%2Fpng", "text%2Fhtml");
        assert_eq!(store.check_link("GET", &key, &tampered, now), Err(LinkRefused::Invalid));

        let upload = store
            .upload_url("uploads/t/u1", "application/pdf", 10, now + jiff::SignedDuration::from_mins(5))
            .await
            .expect("upload");
        let (key, query) = query_of(&upload.url);
        assert_eq!(store.check_link("PUT", &key, &query, now), Ok(Granted::Upload { max_bytes: 10 }));
        let bigger = query.replace("max=10", "max=1000");
        assert_eq!(store.check_link("PUT", &key, &bigger, now), Err(LinkRefused::Invalid));
    }

    #[tokio::test]
    async fn objects_are_written_whole_and_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store(dir.path());
        let source = dir.path().join("source");
        std::fs::write(&source, b"%PDF-1.7 bytes").expect("source");
        let meta = ObjectMeta { content_type: "application/pdf".into(), name: None, size: 14 };
        assert_eq!(store.head("media/t/m/a0").await, Ok(None));
        store.put_file("media/t/m/a0", &source, &meta).await.expect("put");
        store.put_file("media/t/m/a0", &source, &meta).await.expect("put again");
        let (size, head) = store.head("media/t/m/a0").await.expect("head").expect("there");
        assert_eq!((size, head.as_slice()), (14, &b"%PDF-1.7 bytes"[..]));
        let copy = dir.path().join("copy");
        assert_eq!(store.get_to_file("media/t/m/a0", &copy).await, Ok(true));
        assert_eq!(std::fs::read(&copy).expect("copy"), b"%PDF-1.7 bytes");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("media/media/t/m")).expect("dir").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left beside the object");
        store.delete("media/t/m/a0").await.expect("delete");
        assert_eq!(store.get_to_file("media/t/m/a0", &copy).await, Ok(false));
        assert!(matches!(store.put_file("../../etc/x", &source, &meta).await, Err(MediaError::BadKey(_))));
    }
}
