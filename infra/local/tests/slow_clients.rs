//! Issue 21: slow and idle clients must not freeze the runner. 300 connections send their headers with
//! `Content-Length: 100000` and then a byte now and then, 1,000 more send nothing or half a header line;
//! while they are all open, the API answers within a second, and the server closes them itself: the slow
//! ones after the body timeout, the idle ones after the header timeout. The runner's RSS growth is
//! measured and bounded (the client side of the sockets lives in this process too, so it is an upper
//! bound). The only test of this binary, so nothing else runs beside it and skews the figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use omnichat::secret::Secret;
use omnichat_local::{Config, ConnectionLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN_KEY: &str = "ock_slow_clients_admin_key_0123456789";
const SLOW: usize = 300;
const IDLE: usize = 1000;
/// Small on purpose, so the test takes seconds.
const HEADER_TIMEOUT: Duration = Duration::from_secs(4);
const BODY_TIMEOUT: Duration = Duration::from_secs(6);
/// How long after its last action each client waits at most for the server to close it.
const SLACK: Duration = Duration::from_secs(4);

/// What a client saw when it stopped: `Some(at)` when the server closed the connection (EOF, reset, or a
/// response, which for a slow body must be 408), `None` when the test gave up first.
struct Outcome {
    opened: Instant,
    closed: Option<Instant>,
    answer: String,
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// 300 slow clients and 1,000 idle ones need about 2,700 descriptors here (both ends of each socket).
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

/// One GET with `Connection: close` over a fresh socket: the status and how long it took, or why not.
async fn get(
    address: std::net::SocketAddr,
    path: &str,
    key: Option<&str>,
) -> Result<(u16, Duration), String> {
    let started = Instant::now();
    let request = async {
        let mut stream = TcpStream::connect(address).await.map_err(|e| format!("connect: {e}"))?;
        let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
        let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&response);
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("no status in {text:?}"))
    };
    match tokio::time::timeout(Duration::from_secs(1), request).await {
        Ok(Ok(status)) => Ok((status, started.elapsed())),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(format!("GET {path}: no answer within 1 s")),
    }
}

/// Headers of a 100,000-byte webhook body, then one byte every 500 ms until the server closes the
/// connection or the test gives up (`BODY_TIMEOUT + SLACK`).
async fn slow_body(address: std::net::SocketAddr, ready: Arc<tokio::sync::Barrier>) -> Outcome {
    let opened = Instant::now();
    let mut outcome = Outcome { opened, closed: None, answer: String::new() };
    let Ok(mut stream) = TcpStream::connect(address).await else {
        ready.wait().await;
        outcome.answer = "connect failed".into();
        return outcome;
    };
    let head = "POST /webhooks/telegram/0190f5c4-0000-7000-8000-000000000000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
    let wrote = stream.write_all(head.as_bytes()).await;
    ready.wait().await;
    if wrote.is_err() {
        outcome.answer = "write failed".into();
        return outcome;
    }
    let give_up = opened + BODY_TIMEOUT + SLACK;
    let mut buffer = [0u8; 512];
    while Instant::now() < give_up {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                outcome.closed = Some(Instant::now());
                outcome.answer.push_str("<eof>");
                return outcome;
            }
            Ok(Ok(n)) => {
                // A response: keep reading until the server closes.
                outcome.answer.push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
            Err(_) => {
                if outcome.answer.is_empty() && stream.write_all(b" ").await.is_err() {
                    outcome.closed = Some(Instant::now());
                    outcome.answer.push_str("<write refused>");
                    return outcome;
                }
            }
        }
    }
    outcome
}

/// How an idle client behaves before it goes quiet.
#[derive(Clone, Copy)]
enum Idle {
    /// Sends nothing at all.
    Silent,
    /// Sends half a header line.
    HalfHeader,
    /// Sends one whole keep-alive request (answered 401), then nothing.
    AfterOneRequest,
}

/// Connects, behaves as `kind` says, then waits for the server to close the socket.
async fn idle(address: std::net::SocketAddr, kind: Idle, ready: Arc<tokio::sync::Barrier>) -> Outcome {
    let opened = Instant::now();
    let mut outcome = Outcome { opened, closed: None, answer: String::new() };
    let Ok(mut stream) = TcpStream::connect(address).await else {
        ready.wait().await;
        outcome.answer = "connect failed".into();
        return outcome;
    };
    let sent: &[u8] = match kind {
        Idle::Silent => b"",
        Idle::HalfHeader => b"GET /openapi.json HTTP/1.1\r\nHost: 127.0",
        Idle::AfterOneRequest => b"GET /v1/tenant HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    };
    if stream.write_all(sent).await.is_err() {
        ready.wait().await;
        outcome.answer = "write failed".into();
        return outcome;
    }
    ready.wait().await;
    let mut buffer = [0u8; 512];
    let waited = tokio::time::timeout(HEADER_TIMEOUT + SLACK, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => outcome.answer.push_str(&String::from_utf8_lossy(&buffer[..n])),
            }
        }
    })
    .await;
    if waited.is_ok() {
        outcome.closed = Some(Instant::now());
    }
    outcome
}

fn kind_of(i: usize) -> Idle {
    [Idle::Silent, Idle::HalfHeader, Idle::AfterOneRequest][i % 3]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_do_not_freeze_the_api_and_are_closed() {
    let fd_limit = raise_fd_limit();
    assert!(fd_limit >= 4096, "RLIMIT_NOFILE is {fd_limit}: too low for 1,300 connections and their clients");
    let data = tempfile::tempdir().expect("temp dir");
    let config = Config {
        port: 0,
        data_dir: data.path().join("data"),
        admin_key: Some(Secret::new(ADMIN_KEY)),
        operator_key: None,
        public_base_url: None,
        providers: None,
        tick: Duration::from_secs(3600),
        max_concurrent_requests: omnichat_local::MAX_CONCURRENT_REQUESTS,
        max_media_bytes: omnichat::ports::media::DEFAULT_MAX_MEDIA_BYTES,
        connections: ConnectionLimits {
            header_timeout: HEADER_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            max_connections: 2048,
        },
    };
    let running =
        omnichat_local::start_with_system_clock(config, std::future::pending()).await.expect("starts");
    let address = running.address;
    let (status, _) = get(address, "/v1/channels", Some(ADMIN_KEY)).await.expect("the API answers");
    assert_eq!(status, 200);
    let rss_before = rss_kib();

    let opening = Instant::now();
    let ready = Arc::new(tokio::sync::Barrier::new(SLOW + IDLE + 1));
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        slow.push(tokio::spawn(slow_body(address, Arc::clone(&ready))));
    }
    let mut idles = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        idles.push(tokio::spawn(idle(address, kind_of(i), Arc::clone(&ready))));
    }
    tokio::time::timeout(Duration::from_secs(10), ready.wait())
        .await
        .expect("1,300 connections open within 10 s");
    let all_open = Instant::now();
    // Let the slow requests reach the router (and, before the fix, take every permit).
    tokio::time::sleep(Duration::from_millis(700)).await;

    let mut latencies = Vec::new();
    let probes_started = Instant::now();
    for (path, key) in
        [("/v1/channels", Some(ADMIN_KEY)), ("/openapi.json", None), ("/v1/tenant", Some(ADMIN_KEY))]
    {
        let (status, took) = get(address, path, key).await.unwrap_or_else(|e| {
            panic!("while {SLOW} slow and {IDLE} idle connections are held: {e}");
        });
        assert_eq!(status, 200, "GET {path}");
        latencies.push(took);
    }
    let probes_done = Instant::now();
    let rss_held = rss_kib();

    let mut slow_closed = Vec::new();
    let mut answered_408 = 0;
    for task in slow {
        let outcome = task.await.expect("slow client");
        let closed = outcome.closed.unwrap_or_else(|| {
            panic!("a slow connection was still open {:?} after its headers", BODY_TIMEOUT + SLACK)
        });
        assert!(closed > probes_done, "a slow connection closed before the probes ended: {}", outcome.answer);
        assert!(
            outcome.answer == "<eof>" || outcome.answer.starts_with("HTTP/1.1 408"),
            "a slow body ends with 408 or EOF, not {:?}",
            outcome.answer
        );
        answered_408 += usize::from(outcome.answer.starts_with("HTTP/1.1 408"));
        slow_closed.push(closed - outcome.opened);
    }
    let mut idle_closed = Vec::new();
    for task in idles {
        let outcome = task.await.expect("idle client");
        let closed = outcome.closed.unwrap_or_else(|| {
            panic!("an idle connection was still open {:?} after it opened", HEADER_TIMEOUT + SLACK)
        });
        assert!(closed > probes_done, "an idle connection closed before the probes ended");
        if let Idle::AfterOneRequest = kind_of(idle_closed.len()) {
            assert!(
                outcome.answer.starts_with("HTTP/1.1 401"),
                "its one request answered: {:?}",
                outcome.answer
            );
        }
        idle_closed.push(closed - outcome.opened);
    }
    let rss_after = rss_kib();
    let (status, _) = get(address, "/v1/channels", Some(ADMIN_KEY)).await.expect("the API answers after");
    assert_eq!(status, 200);
    tokio::time::timeout(Duration::from_secs(10), running.stop()).await.expect("stops").expect("stopped");

    let slowest = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    let fastest = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    println!(
        "{SLOW} slow + {IDLE} idle connections open in {:?}; probes from +{:?} to +{:?}; API latencies {latencies:?}",
        all_open - opening,
        probes_started - all_open,
        probes_done - all_open,
    );
    println!(
        "slow closed after {:?}..{:?} (body timeout {BODY_TIMEOUT:?}; {answered_408} with a 408); idle closed after {:?}..{:?} (header \
         timeout {HEADER_TIMEOUT:?})",
        fastest(&slow_closed),
        slowest(&slow_closed),
        fastest(&idle_closed),
        slowest(&idle_closed),
    );
    println!("VmRSS KiB: before {rss_before:?}, while held {rss_held:?}, after {rss_after:?}");
    assert!(slowest(&latencies) < Duration::from_secs(1));
    assert!(
        fastest(&slow_closed) >= BODY_TIMEOUT - Duration::from_millis(500),
        "not before the body timeout"
    );
    assert!(
        fastest(&idle_closed) >= HEADER_TIMEOUT - Duration::from_millis(500),
        "not before the header timeout"
    );
    if let (Some(before), Some(held)) = (rss_before, rss_held) {
        let growth_mib = held.saturating_sub(before) / 1024;
        assert!(growth_mib < 100, "RSS grew by {growth_mib} MiB while the connections were held");
    }
}
