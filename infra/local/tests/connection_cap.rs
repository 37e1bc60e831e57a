//! Issue 21: the runner holds at most `max_connections` open connections. At the cap a new client waits
//! (in the listen backlog) until one closes, here when the idle ones reach the header timeout.

use std::time::{Duration, Instant};

use omnichat::secret::Secret;
use omnichat_local::{Config, ConnectionLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CAP: usize = 8;
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// GET /openapi.json over a fresh socket with `Connection: close`: the status line's code.
async fn get_status(address: std::net::SocketAddr) -> Result<u16, String> {
    let mut stream = TcpStream::connect(address).await.map_err(|e| format!("connect: {e}"))?;
    let head = "GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {text:?}"))
}

#[tokio::test]
async fn at_the_cap_a_new_connection_waits_until_an_idle_one_is_closed() {
    let data = tempfile::tempdir().expect("temp dir");
    let config = Config {
        port: 0,
        data_dir: data.path().join("data"),
        admin_key: Some(Secret::new("ock_connection_cap_admin_key_0123456789")),
        operator_key: None,
        public_base_url: None,
        providers: None,
        tick: Duration::from_secs(3600),
        max_concurrent_requests: omnichat_local::MAX_CONCURRENT_REQUESTS,
        max_media_bytes: omnichat::ports::media::DEFAULT_MAX_MEDIA_BYTES,
        connections: ConnectionLimits {
            header_timeout: HEADER_TIMEOUT,
            body_timeout: Duration::from_secs(2),
            max_connections: CAP,
        },
    };
    let running =
        omnichat_local::start_with_system_clock(config, std::future::pending()).await.expect("starts");
    let address = running.address;

    let mut idle = Vec::new();
    for _ in 0..CAP {
        idle.push(TcpStream::connect(address).await.expect("connect"));
    }
    // Let the accept loop take all of them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut waiting = tokio::spawn(get_status(address));
    let early = tokio::time::timeout(Duration::from_millis(500), &mut waiting).await;
    assert!(early.is_err(), "served while {CAP} idle connections held the cap: {early:?}");

    let status = tokio::time::timeout(HEADER_TIMEOUT + Duration::from_secs(3), waiting)
        .await
        .expect("served once the idle connections timed out")
        .expect("task")
        .expect("GET");
    assert_eq!(status, 200);
    let waited = started.elapsed();
    println!("the request over the cap was served after {waited:?}");

    // The idle connections were closed by the server: each reads EOF at once.
    for mut stream in idle {
        let mut buffer = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "an idle connection is still open: {read:?}");
    }
    tokio::time::timeout(Duration::from_secs(10), running.stop()).await.expect("stops").expect("stopped");
}
