//! Every log line of a test binary, captured at debug level as JSON (one global subscriber, installed by
//! the first `TestApp`), and the secrets the tests handed the bundle: `assert_no_secret_logged` fails when
//! any registered secret appears in any captured line. `TestApp` registers the secrets it sees (the admin
//! key, credentials posted through its helpers, webhook secret headers, everything in the bundle's secret
//! file) and runs the check when it is dropped, so every end-to-end test is covered. `TEST_LOG=1` also
//! prints the captured lines on stderr.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// Shorter values are not checked: they would match ordinary words and ids.
const MIN_SECRET_LEN: usize = 8;

/// The filter of the capture: everything at debug, our crates at trace.
pub const FILTER: &str = "debug,omnichat=trace,omnichat_http=trace,omnichat_local=trace,tower_http=trace";

struct Capture {
    lines: Mutex<Vec<u8>>,
    /// Whether our subscriber is the global one (another installed first would leave the capture empty).
    installed: bool,
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new(FILTER))
            .with_ansi(false)
            .with_writer(|| Sink)
            .finish();
        let installed = tracing::subscriber::set_global_default(subscriber).is_ok();
        Capture { lines: Mutex::new(Vec::new()), installed }
    })
}

struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&capture().lines).extend_from_slice(buf);
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn secrets() -> &'static Mutex<BTreeSet<String>> {
    static SECRETS: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(BTreeSet::new()))
}

/// Installs the capture (once per binary). `TestApp::spawn` calls it; a test that logs before spawning a
/// bundle calls it first.
pub fn install() {
    capture();
}

/// Everything captured so far.
pub fn captured() -> String {
    String::from_utf8_lossy(&lock(&capture().lines)).into_owned()
}

/// A value that must never be logged (too short a value is ignored: see `MIN_SECRET_LEN`).
pub fn register_secret(secret: impl Into<String>) {
    let secret = secret.into();
    if secret.trim().len() >= MIN_SECRET_LEN {
        lock(secrets()).insert(secret);
    }
}

pub fn registered_secrets() -> Vec<String> {
    lock(secrets()).iter().cloned().collect()
}

/// Whether a credential's name says it is a secret (`token`, `api_key`, `client_secret`, `password`, ...).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "key", "secret", "password"].iter().any(|word| name.contains(word))
}

/// Registers every string under a secret-named key of `value`, at any depth (`credentials.oauth.refresh_token`
/// too), and every string of a `credentials` object whose name says it is one.
pub fn register_secrets_in(value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(text) if is_secret_name(key) => register_secret(text.clone()),
                    other => register_secrets_in(other),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(register_secrets_in),
        _ => {}
    }
}

/// Registers the secrets the bundle keeps in its secret file (`secrets.json`: name → a JSON object of the
/// channel's credentials, generated webhook secrets included).
pub fn register_secrets_in_file(path: &std::path::Path) {
    let Ok(bytes) = std::fs::read(path) else { return };
    let Ok(kept) = serde_json::from_slice::<std::collections::BTreeMap<String, String>>(&bytes) else {
        return;
    };
    for value in kept.values() {
        match serde_json::from_str::<Value>(value) {
            Ok(credentials @ Value::Object(_)) => register_secrets_in(&credentials),
            _ => register_secret(value.clone()),
        }
    }
}

/// Fails when the capture is not ours, holds nothing, lacks `must_contain` (a line the caller knows was
/// logged, so the check cannot pass on an empty or filtered capture), or holds a registered secret, raw or
/// as JSON escapes it.
pub fn assert_no_secret_logged(must_contain: &[&str]) {
    let capture = capture();
    assert!(
        capture.installed,
        "another global tracing subscriber was installed before the log capture: secrets in logs are not checked"
    );
    let logs = captured();
    assert!(!logs.is_empty(), "nothing was logged: the secrets-in-logs check would pass vacuously");
    for line in must_contain {
        assert!(logs.contains(line), "the captured logs lack {line:?}: is the capture at debug level?");
    }
    for secret in registered_secrets() {
        let escaped = serde_json::to_string(&secret).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        if let Some(line) = logs.lines().find(|line| line.contains(&secret) || line.contains(escaped)) {
            let shown = line.replace(&secret, "<SECRET>").replace(escaped, "<SECRET>");
            panic!("a secret the test used ({} chars) was logged: {shown}", secret.len());
        }
    }
}
