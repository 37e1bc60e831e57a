//! The media benchmarks (issue 17), as a markdown table on stdout. `omnichat-local` runs in this process
//! (release build, fresh data dir) with a Viber channel connected to a fake Viber API, also in this
//! process, that generates a file's bytes as it sends them (it holds none).
//!
//! - **Peak memory of a fetch.** One document of each `--sizes` delivered to the webhook; the peak RSS
//!   (VmHWM) is reset just before (`/proc/self/clear_refs`) and read once the API shows the file `stored`,
//!   beside the RSS before the delivery: the difference is what the webhook, the fetch (streamed to a
//!   temporary file, then copied under the data dir) and the API reads added. The media function runs the
//!   same fetch (`usecases::media::fetch_message`), with S3's streamed upload in place of the copy.
//! - **Webhook to stored.** `--deliveries` documents of `--delivery-size` bytes, one after another, each
//!   timed from the webhook request to the first API read showing it `stored` (reads every 2 ms).
//!
//!   media-fetch [--sizes 1048576,26214400] [--deliveries 50] [--delivery-size 102400]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use omnichat::domain::Provider;
use omnichat::ports::clock::SystemClock;
use omnichat::providers::viber::{ViberClient, signature};
use omnichat::secret::Secret;
use omnichat::usecases::Providers;
use serde_json::{Value, json};

const ADMIN_KEY: &str = "ock_bench_media_admin_key_0123456789";
const TOKEN: &str = "4a1e0f3c5d7b9a21-8f6e4d2c0b9a7f5e-3d1c0b9a8f7e6d5c";
const CHUNK: usize = 64 * 1024;

/// The Viber REST API's account and webhook calls, and `/files/<size>_<n>.pdf` streaming `size` bytes made as
/// they are sent (a customer's file as Viber's media link serves it; Viber has no download limit of its own,
/// unlike Telegram's 20 MB).
async fn fake_viber() -> String {
    async fn call(Path(endpoint): Path<String>) -> Response {
        let answer = match endpoint.as_str() {
            "get_account_info" => json!({"status": 0, "status_message": "ok", "id": "pa:1", "name": "Bench",
                "uri": "bench", "subscribers_count": 1}),
            "set_webhook" => json!({"status": 0, "status_message": "ok"}),
            _ => return axum::http::StatusCode::NOT_FOUND.into_response(),
        };
        axum::Json(answer).into_response()
    }
    async fn file(Path(name): Path<String>) -> Response {
        let size: usize = name.split('_').next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let chunks = (0..size.div_ceil(CHUNK)).map(move |i| {
            let mut chunk = vec![(i % 251) as u8; CHUNK.min(size - i * CHUNK)];
            if i == 0 && chunk.len() >= 5 {
                chunk[..5].copy_from_slice(b"%PDF-");
            }
            Ok::<_, std::io::Error>(Bytes::from(chunk))
        });
        let mut response = Response::new(Body::from_stream(futures::stream::iter(chunks)));
        response.headers_mut().insert("content-length", size.into());
        response
    }
    let app = Router::new().route("/pa/{endpoint}", post(call)).route("/files/{name}", get(file));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

fn mib(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

struct Bench {
    base: String,
    fake: String,
    http: reqwest::Client,
    webhook: String,
    update: u64,
}

impl Bench {
    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("API call").json().await.expect("API JSON")
    }

    /// Delivers a document of `size` bytes from a new customer; answers when the API shows it stored.
    async fn deliver_and_wait(&mut self, size: usize) -> Duration {
        self.update += 1;
        let customer = format!("bench-customer-{}=", self.update);
        let callback = json!({"event": "message", "timestamp": 1_800_000_000_000u64,
            "message_token": 4_000_000_000_000_000_000u64 + self.update,
            "sender": {"id": customer, "name": "Bench", "api_version": 10},
            "message": {"type": "file", "media": format!("{}/files/{size}_{}.pdf", self.fake, self.update),
                "file_name": "bench.pdf", "size": size}});
        let body = callback.to_string().into_bytes();
        let started = Instant::now();
        let answer = self
            .http
            .post(format!("{}{}", self.base, self.webhook))
            .header("X-Viber-Content-Signature", signature(&body, &Secret::new(TOKEN)))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("webhook");
        assert_eq!(answer.status(), 200, "the webhook answered {}", answer.status());
        let dialogs = self.api(reqwest::Method::GET, "/v1/dialogs?limit=500", None).await;
        let customer_id = Value::String(customer);
        let dialog = dialogs["items"]
            .as_array()
            .and_then(|items| items.iter().find(|d| d["customer"]["external_id"] == customer_id))
            .and_then(|d| d["id"].as_str())
            .expect("the customer's dialog")
            .to_owned();
        for _ in 0..30_000 {
            let messages =
                self.api(reqwest::Method::GET, &format!("/v1/dialogs/{dialog}/messages"), None).await;
            match messages["items"][0]["attachments"][0]["status"].as_str() {
                Some("stored") => return started.elapsed(),
                Some("pending") => tokio::time::sleep(Duration::from_millis(2)).await,
                other => panic!("the document ended {other:?}: {messages}"),
            }
        }
        panic!("the document was not stored within a minute");
    }
}

fn argument(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.into())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = argument(&args, "--sizes", "1048576,26214400")
        .split(',')
        .map(|s| s.trim().parse().expect("--sizes: bytes, comma-separated"))
        .collect();
    let deliveries: usize = argument(&args, "--deliveries", "50").parse().expect("--deliveries: a number");
    let delivery_size: usize = argument(&args, "--delivery-size", "102400").parse().expect("--delivery-size");

    let fake = fake_viber().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let providers = Providers::default().with(
        Provider::Viber,
        Arc::new(ViberClient::new(omnichat::providers::http_client(), format!("{fake}/pa"))),
    );
    let config = omnichat_local::Config {
        port: 0,
        data_dir: dir.path().join("data"),
        admin_key: Some(Secret::new(ADMIN_KEY)),
        operator_key: None,
        public_base_url: None,
        providers: Some(providers),
        tick: Duration::from_secs(60),
        max_concurrent_requests: omnichat_local::MAX_CONCURRENT_REQUESTS,
        max_media_bytes: omnichat::ports::media::DEFAULT_MAX_MEDIA_BYTES,
        connections: omnichat_local::ConnectionLimits::default(),
    };
    let running = omnichat_local::start(config, Arc::new(SystemClock), std::future::pending())
        .await
        .expect("omnichat-local starts");
    let base = format!("http://{}", running.address);
    let http = reqwest::Client::new();
    let mut bench = Bench { base, fake, http, webhook: String::new(), update: 0 };
    let channel = bench
        .api(
            reqwest::Method::POST,
            "/v1/channels",
            Some(json!({"provider": "viber", "name": "Bench", "credentials": {"token": TOKEN}})),
        )
        .await;
    let channel_id = channel["id"].as_str().expect("a channel").to_owned();
    bench.webhook = format!("/webhooks/viber/{channel_id}");
    // Warm up: the first fetch builds the TLS and HTTP pools, the first API reads their caches.
    bench.deliver_and_wait(4096).await;

    println!("| measurement | file | result |");
    println!("|---|---|---|");
    for size in sizes {
        let before = proc_status_kb("VmRSS:");
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let took = bench.deliver_and_wait(size).await;
        let peak = proc_status_kb("VmHWM:");
        println!(
            "| peak RSS while a file is fetched and stored (RSS before → peak, added) | {:.1} MiB | {} → {} MiB, +{} MiB (in {:.0} ms) |",
            size as f64 / 1048576.0,
            mib(before),
            mib(peak),
            mib(peak.saturating_sub(before)),
            took.as_secs_f64() * 1000.0
        );
    }
    let mut times: Vec<f64> = Vec::with_capacity(deliveries);
    for _ in 0..deliveries {
        times.push(bench.deliver_and_wait(delivery_size).await.as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "| webhook request → API shows `stored` ({deliveries} in a row) | {:.0} KiB | p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms |",
        delivery_size as f64 / 1024.0,
        at(0.5),
        at(0.9),
        at(1.0)
    );
    let _ = running.stop().await;
}
