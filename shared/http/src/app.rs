//! `GET /app/`: the operator workspace, a dependency-free web app (plain ES modules and CSS, no build step)
//! embedded in the binary and served from the API's own origin, by the API Lambda on AWS and by the local
//! runner. Its files are in `shared/http/app/`; [`ASSETS`] lists them.
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles and fonts only from this origin, no
//! inline script or style, no framing; images and media also from `https:` (media links are presigned S3
//! URLs on AWS) and `data:`/`blob:` (previews of files about to be uploaded); connections to this origin and
//! to the live WebSocket (`OMNICHAT_LIVE_URL` on AWS).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::ApiError;

/// One embedded file: its name under `/app/`, its media type and its bytes.
pub struct Asset {
    pub name: &'static str,
    pub mime: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:literal) => {
        Asset { name: $name, mime: $mime, body: include_bytes!(concat!("../app/", $name)) }
    };
}

/// Every file of the app. `index.html` is what `/app/` answers, and `/app/connected/{provider}` too: the
/// return address of a provider's OAuth consent page (`?code=&state=`), where the app finishes connecting.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("i18n.js", "text/javascript; charset=utf-8"),
    asset!("ui.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("live.js", "text/javascript; charset=utf-8"),
    asset!("workspace.js", "text/javascript; charset=utf-8"),
    asset!("admin.js", "text/javascript; charset=utf-8"),
];

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/app/{*file}",
            get(
                |Path(file): Path<String>, headers: HeaderMap| async move { serve(page_of(&file), &headers) },
            ),
        )
}

/// The file a path under `/app/` answers: `connected/{provider}` (one lower-case word) is the app itself.
fn page_of(path: &str) -> &str {
    match path.strip_prefix("connected/") {
        Some(provider)
            if !provider.is_empty()
                && provider.len() <= 32
                && provider.bytes().all(|b| b.is_ascii_lowercase()) =>
        {
            "index.html"
        }
        _ => path,
    }
}

/// The Content-Security-Policy of every answer under `/app/`.
pub fn content_security_policy() -> String {
    let live = crate::api::live::live_url()
        .and_then(origin_of)
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; \
         img-src 'self' https: data: blob:; media-src 'self' https: blob:; connect-src 'self'{live}; \
         manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// `wss://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next().filter(|host| !host.is_empty())?;
    Some(format!("{scheme}://{host}"))
}

/// A strong validator of an embedded file: FNV-1a of its bytes (fixed at build time, so cheap to compute).
fn etag(body: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in body {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}\"")
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response();
    };
    let tag = etag(asset.body);
    let mut response =
        if request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(tag.as_str()) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            ([(header::CONTENT_TYPE, asset.mime)], asset.body).into_response()
        };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    // Revalidated on every load: a new deployment's files are used at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_is_locked_to_this_origin() {
        let response = serve("index.html", &HeaderMap::new());
        assert_eq!(response.status(), StatusCode::OK);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let tag = response.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(serve("index.html", &again).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve("../Cargo.toml", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_oauth_return_address_is_the_app_itself() {
        for path in ["connected/avito", "connected/vk"] {
            assert_eq!(page_of(path), "index.html", "{path}");
            let response = serve(page_of(path), &HeaderMap::new());
            assert_eq!(response.status(), StatusCode::OK);
            assert!(response.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        }
        for path in ["connected/", "connected/avito/x", "connected/../app.js", "connected/Avito"] {
            assert_eq!(serve(page_of(path), &HeaderMap::new()).status(), StatusCode::NOT_FOUND, "{path}");
        }
        assert_eq!(page_of("app.js"), "app.js");
        // Loaded from /app/connected/avito, the page's own files are asked for by absolute paths.
        let index = std::str::from_utf8(ASSETS[0].body).expect("utf-8");
        assert!(index.contains("href=\"/app/app.css\"") && index.contains("src=\"/app/app.js\""), "{index}");
    }

    #[test]
    fn the_live_origin_is_the_urls_scheme_and_host() {
        assert_eq!(
            origin_of("wss://abc.execute-api.eu-west-1.amazonaws.com/live").as_deref(),
            Some("wss://abc.execute-api.eu-west-1.amazonaws.com")
        );
        assert_eq!(origin_of("nonsense"), None);
    }

    #[test]
    fn the_first_load_stays_small() {
        let total: usize = ASSETS.iter().map(|asset| asset.body.len()).sum();
        assert!(total <= 250 * 1024, "the app's files are {total} bytes, over the 250 KB first-load budget");
    }
}
