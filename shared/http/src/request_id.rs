//! One span per HTTP request, carrying its request id, and the id echoed in the `x-request-id` header.
//!
//! The id: on Lambda, API Gateway's request id (else the Lambda invocation's), which is what CloudWatch and
//! API Gateway's access logs show; elsewhere the caller's `x-request-id` when it is sane (1 to 128 of
//! `A-Za-z0-9-_.:=+`), else a fresh UUID. On Lambda a sane caller's id is kept as `client_request_id`.
//!
//! The span names the route's template (`/webhooks/{provider}/{channel_id}/{secret}`), never the path
//! itself: a webhook path may end with the channel's secret, and a query may carry anything.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 128;

/// Whether a caller's request id may be taken as it is (and so be logged and echoed).
pub fn is_sane(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'=' | b'+'))
}

/// The ids lambda_http puts in a request's extensions: API Gateway's, then the invocation's.
fn lambda_request_id(request: &Request) -> Option<String> {
    let gateway = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    };
    gateway.filter(|id| is_sane(id)).or_else(|| {
        request
            .extensions()
            .get::<lambda_http::Context>()
            .map(|c| c.request_id.clone())
            .filter(|id| is_sane(id))
    })
}

/// The middleware: wraps the request in its span, logs its start (debug) and end (info: status, time), and
/// answers the id in `x-request-id`.
pub async fn trace_request(request: Request, next: Next) -> Response {
    let client_id = request.headers().get(HEADER).and_then(|v| v.to_str().ok()).filter(|id| is_sane(id));
    let (request_id, client_request_id) = match lambda_request_id(&request) {
        Some(lambda) => (lambda, client_id.map(str::to_owned)),
        None => (client_id.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned), None),
    };
    let route =
        request.extensions().get::<MatchedPath>().map_or("(unmatched)", MatchedPath::as_str).to_owned();
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        client_request_id = tracing::field::Empty,
        method = %request.method(),
        route = %route,
    );
    if let Some(client) = &client_request_id {
        span.record("client_request_id", client.as_str());
    }
    let started = Instant::now();
    let mut response = async move {
        tracing::debug!("request started");
        next.run(request).await
    }
    .instrument(span.clone())
    .await;
    let status = response.status().as_u16();
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    span.in_scope(|| tracing::info!(status, millis, "request finished"));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
    use tower::ServiceExt;

    use super::*;

    /// Every path answers: a fallback, not a routed path, so the OpenAPI test (which scans the sources for
    /// routes) finds none here.
    fn app() -> Router {
        Router::new().fallback(|| async { "ok" }).layer(axum::middleware::from_fn(trace_request))
    }

    async fn answered_id(request: axum::http::Request<Body>) -> String {
        let response = app().oneshot(request).await.expect("infallible");
        response.headers().get(HEADER).expect("x-request-id").to_str().expect("ascii").to_owned()
    }

    #[tokio::test]
    async fn the_id_is_the_callers_when_sane_else_a_fresh_one_and_on_lambda_api_gateways() {
        let with = |id: &str| axum::http::Request::get("/ok").header(HEADER, id).body(Body::empty());
        assert_eq!(answered_id(with("abc-123").expect("request")).await, "abc-123");
        let generated = answered_id(with("bad id<>").expect("request")).await;
        assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
        let fresh = answered_id(axum::http::Request::get("/ok").body(Body::empty()).expect("request")).await;
        assert_ne!(fresh, generated);
        let mut on_lambda = with("from-the-caller").expect("request");
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.request_id = Some("JdGz3hpLoAMEPsA=".into());
        on_lambda.extensions_mut().insert(RequestContext::ApiGatewayV2(context));
        assert_eq!(answered_id(on_lambda).await, "JdGz3hpLoAMEPsA=");
    }

    #[test]
    fn only_plain_short_ids_are_taken_from_callers() {
        for good in ["abc", "0198f7e2-7c1a-7b53-9d5e-7f0c2d1e3a4b", "req_1.2:3", &"a".repeat(MAX_LEN)] {
            assert!(is_sane(good), "{good}");
        }
        for bad in ["", "a b", "x\ny", "<script>", "a/b", "id\"", &"a".repeat(MAX_LEN + 1), "ключ"] {
            assert!(!is_sane(bad), "{bad}");
        }
    }
}
