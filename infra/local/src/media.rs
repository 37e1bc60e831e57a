//! The local runner's media routes, what S3's presigned links are on AWS: `GET /media/{key}` serves an
//! object to whoever holds a signed link (no API key, so `<img src>` works), `PUT /media/{key}` takes an
//! upload's bytes. Both check the link (`FileMediaStore::check_link`) before touching a file, and neither
//! passes the API's body-first layer: an upload streams to a temporary file, counted against the link's
//! limit, and is renamed over the object once whole.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use omnichat::adapters::embedded::media::{FileMediaStore, Granted, LinkRefused};
use omnichat::ports::clock::Clock;
use omnichat::ports::media::{ObjectMeta, content_disposition};
use tokio::io::AsyncWriteExt;

#[derive(Clone)]
struct Media {
    store: Arc<FileMediaStore>,
    clock: Arc<dyn Clock>,
}

pub fn routes(store: Arc<FileMediaStore>, clock: Arc<dyn Clock>) -> Router {
    Router::new().route("/media/{*key}", get(download).put(upload)).with_state(Media { store, clock })
}

fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn refused(error: LinkRefused) -> Response {
    refusal(StatusCode::FORBIDDEN, "link_refused", &error.to_string())
}

fn unavailable(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "media route failed");
    refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the media store is unavailable")
}

async fn download(
    State(media): State<Media>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let granted =
        media.store.check_link("GET", &key, query.as_deref().unwrap_or_default(), media.clock.now());
    let (content_type, name) = match granted {
        Ok(Granted::Download { content_type, name }) => (content_type, name),
        Ok(Granted::Upload { .. }) => return refused(LinkRefused::Invalid),
        Err(error) => return refused(error),
    };
    let Ok(path) = media.store.path_of(&key) else { return refused(LinkRefused::Invalid) };
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return refusal(StatusCode::NOT_FOUND, "not_found", "no such file");
        }
        Err(error) => return unavailable(error),
    };
    let size = match file.metadata().await {
        Ok(metadata) => metadata.len(),
        Err(error) => return unavailable(error),
    };
    let meta = ObjectMeta { content_type, name, size };
    let header_value =
        |text: &str| HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("attachment"));
    let mut response = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(file)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&meta.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(header::CONTENT_DISPOSITION, header_value(&content_disposition(&meta)));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    response
}

async fn upload(
    State(media): State<Media>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let granted =
        media.store.check_link("PUT", &key, query.as_deref().unwrap_or_default(), media.clock.now());
    let max_bytes = match granted {
        Ok(Granted::Upload { max_bytes }) => max_bytes,
        Ok(Granted::Download { .. }) => return refused(LinkRefused::Invalid),
        Err(error) => return refused(error),
    };
    let target = match media.store.prepare_dir(&key).await {
        Ok(target) => target,
        Err(error) => return unavailable(error),
    };
    let Ok(temporary) = media.store.temporary_path(&key) else { return refused(LinkRefused::Invalid) };
    let outcome = receive(body, &temporary, max_bytes).await;
    let response = match outcome {
        Ok(()) => match tokio::fs::rename(&temporary, &target).await {
            Ok(()) => return StatusCode::OK.into_response(),
            Err(error) => unavailable(error),
        },
        Err(response) => response,
    };
    let _ = tokio::fs::remove_file(&temporary).await;
    response
}

/// Streams the body into `path`, refusing past `max_bytes` (413).
async fn receive(body: Body, path: &std::path::Path, max_bytes: u64) -> Result<(), Response> {
    let mut file = tokio::fs::File::create(path).await.map_err(unavailable)?;
    let mut body = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|_| refusal(StatusCode::BAD_REQUEST, "body_interrupted", "the body was cut off"))?;
        written += chunk.len() as u64;
        if written > max_bytes {
            return Err(refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("the upload takes at most {max_bytes} bytes"),
            ));
        }
        file.write_all(&chunk).await.map_err(unavailable)?;
    }
    file.flush().await.map_err(unavailable)?;
    file.sync_data().await.map_err(unavailable)
}
