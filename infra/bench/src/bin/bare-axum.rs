//! The baseline of the ingest-throughput benchmark: an axum server on the same runtime and features as
//! omnichat-local that answers 200 to every request and does nothing else.
//!
//!     bare-axum PORT      # listens on 127.0.0.1:PORT (0 or absent: a free port), prints the address

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;

/// Reads the body (as the webhook does) and answers 200 with Telegram's usual empty object.
async fn ok(_body: Bytes) -> (StatusCode, &'static str) {
    (StatusCode::OK, "{}")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("bare-axum listening on http://{}", listener.local_addr()?);
    axum::serve(listener, Router::new().fallback(ok)).await
}
