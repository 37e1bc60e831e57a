//! The media store's cases (`ports::media`): objects written from files read back byte for byte, and the
//! links serve and take bytes over HTTP as a browser or a provider would use them, on the data dir's files
//! behind the local runner's `/media` routes and on S3 (moto) through presigned URLs.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use omnichat::adapters::aws::{S3MediaStore, SdkConfig, create_bucket};
use omnichat::adapters::embedded::FileMediaStore;
use omnichat::ports::clock::SystemClock;
use omnichat::ports::media::{MediaError, MediaStore, ObjectMeta};
use omnichat::secret::Secret;
use tempfile::TempDir;

/// A media store under test, with what keeps it alive (the data dir and the runner's routes).
pub(crate) struct Subject {
    pub store: Arc<dyn MediaStore>,
    _keep: Option<(TempDir, tokio::task::JoinHandle<()>)>,
}

/// The data dir's store, its links served by the local runner's media routes on a free loopback port.
pub(crate) async fn embedded_media() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let store = Arc::new(
        FileMediaStore::open(
            &dir.path().join("media"),
            &base,
            Secret::new("conformance-link-key-0123456789"),
        )
        .expect("open the media dir"),
    );
    let routes = omnichat_local::media::routes(store.clone(), Arc::new(SystemClock));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, routes).await;
    });
    Subject { store, _keep: Some((dir, server)) }
}

/// A fresh bucket on moto.
pub(crate) async fn aws_media(config: &SdkConfig) -> Subject {
    let bucket = super::unique_name("media").to_ascii_lowercase();
    let store = S3MediaStore::from_config(config, bucket.clone());
    create_bucket(store.client(), &bucket).await.expect("create the bucket on moto");
    Subject { store: Arc::new(store), _keep: None }
}

fn file_with(dir: &TempDir, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(format!("file-{}", uuid::Uuid::now_v7().simple()));
    std::fs::write(&path, bytes).expect("write the file");
    path
}

fn soon() -> Timestamp {
    Timestamp::now() + SignedDuration::from_mins(5)
}

const PDF: &[u8] = b"%PDF-1.7\nthe receipt\n%%EOF\n";

pub(crate) async fn objects_read_back_byte_for_byte(subject: Subject) {
    let store = subject.store;
    let dir = tempfile::tempdir().expect("dir");
    let meta =
        ObjectMeta { content_type: "application/pdf".into(), name: Some("receipt.pdf".into()), size: 28 };
    let key = "media/t1/m1/a0";
    assert_eq!(store.head(key).await, Ok(None));
    store.put_file(key, &file_with(&dir, b"an earlier fetch"), &meta).await.expect("put");
    // A repeated fetch writes the same key: one object, the last bytes.
    store.put_file(key, &file_with(&dir, PDF), &meta).await.expect("put again");
    let (size, head) = store.head(key).await.expect("head").expect("the object");
    assert_eq!((size, head.as_slice()), (PDF.len() as u64, PDF));
    let copy = dir.path().join("copy");
    assert_eq!(store.get_to_file(key, &copy).await, Ok(true));
    assert_eq!(std::fs::read(&copy).expect("the copy"), PDF);
    store.delete(key).await.expect("delete");
    assert_eq!(store.head(key).await, Ok(None));
    assert_eq!(store.get_to_file(key, &copy).await, Ok(false));
    store.delete(key).await.expect("deleting what is gone is harmless");
}

pub(crate) async fn a_large_object_keeps_every_byte(subject: Subject) {
    let store = subject.store;
    let dir = tempfile::tempdir().expect("dir");
    let bytes: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let meta =
        ObjectMeta { content_type: "application/octet-stream".into(), name: None, size: bytes.len() as u64 };
    store.put_file("media/t1/m2/a0", &file_with(&dir, &bytes), &meta).await.expect("put");
    let (size, head) = store.head("media/t1/m2/a0").await.expect("head").expect("there");
    assert_eq!(size, bytes.len() as u64);
    assert_eq!(head.len(), omnichat::ports::media::SNIFF_BYTES, "only the head is read");
    let url = store.download_url("media/t1/m2/a0", &meta, soon()).await.expect("link");
    let served = reqwest::get(&url).await.expect("GET").bytes().await.expect("body");
    assert!(
        served.as_ref() == bytes.as_slice(),
        "the link serves other bytes ({} of {})",
        served.len(),
        bytes.len()
    );
}

pub(crate) async fn a_download_link_serves_the_bytes_with_type_and_name(subject: Subject) {
    let store = subject.store;
    let dir = tempfile::tempdir().expect("dir");
    let meta =
        ObjectMeta { content_type: "application/pdf".into(), name: Some("чек 1.pdf".into()), size: 28 };
    store.put_file("media/t1/m3/a0", &file_with(&dir, PDF), &meta).await.expect("put");
    let url = store.download_url("media/t1/m3/a0", &meta, soon()).await.expect("link");
    assert!(url.starts_with("http://127.0.0.1"), "a loopback link in tests: {url}");
    // No API key: whoever holds the link gets the bytes.
    let answer = reqwest::get(&url).await.expect("GET");
    assert_eq!(answer.status(), 200, "{url}");
    let header =
        |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("content-type"), "application/pdf");
    let disposition = header("content-disposition");
    assert!(
        disposition.starts_with("attachment") && disposition.contains("%D1%87%D0%B5%D0%BA%201.pdf"),
        "{disposition} (link {url})"
    );
    assert_eq!(answer.bytes().await.expect("body").as_ref(), PDF);
}

pub(crate) async fn an_upload_link_takes_the_bytes(subject: Subject) {
    let store = subject.store;
    let target = store.upload_url("uploads/t1/u1", "image/png", 16, soon()).await.expect("upload link");
    assert_eq!(target.method, "PUT");
    let client = reqwest::Client::new();
    let mut request = client.put(&target.url).body(b"\x89PNG\r\n\x1a\n0123456\n".to_vec());
    for (name, value) in &target.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let answer = request.send().await.expect("PUT");
    assert!(answer.status().is_success(), "{} {:?}", answer.status(), answer.text().await);
    let (size, head) = store.head("uploads/t1/u1").await.expect("head").expect("uploaded");
    assert_eq!((size, &head[..4]), (16, &b"\x89PNG"[..]));
}

pub(crate) async fn keys_of_another_shape_are_refused(subject: Subject) {
    let store = subject.store;
    let dir = tempfile::tempdir().expect("dir");
    let meta = ObjectMeta { content_type: "text/plain".into(), name: None, size: 1 };
    for key in ["../escape", "media/t/m", "uploads/t/u/x", "media/t/m/a b"] {
        let refused = store.put_file(key, &file_with(&dir, b"x"), &meta).await;
        assert!(matches!(refused, Err(MediaError::BadKey(_))), "{key}: {refused:?}");
        assert!(matches!(store.head(key).await, Err(MediaError::BadKey(_))), "{key}");
    }
}
