//! A running `omnichat-local` holds its data dir (redb allows one process, and the runner keeps the
//! secrets in memory), so the CLI asks the runner instead: over its HTTP API on 127.0.0.1, with the
//! operator key the runner keeps in the data dir's 0600 secrets file. Whoever may read that file may open
//! the data dir anyway, so this grants nothing new.

use std::path::Path;
use std::time::Duration;

use omnichat::adapters::embedded::{FileSecretStore, RUNNER_FILE, SECRETS_FILE};
use omnichat::domain::{Features, TenantId};
use omnichat::ports::SecretStore;
use omnichat::usecases::auth;
use reqwest::Method;
use serde_json::{Value, json};

/// The runner in a data dir, as its `runner.json` and secrets file name it.
pub struct Runner {
    base: String,
    operator_key: String,
    http: reqwest::Client,
}

impl Runner {
    /// The runner holding `dir`, or why it cannot be reached.
    pub async fn find(dir: &Path) -> Result<Self, String> {
        let in_use = |why: &str| {
            format!(
                "the data dir {} is in use by a running omnichat-local, which {why}; stop it and try again",
                dir.display()
            )
        };
        let file = std::fs::read(dir.join(RUNNER_FILE)).map_err(|_| in_use("left no runner.json"))?;
        let runner: Value =
            serde_json::from_slice(&file).map_err(|_| in_use("left an unreadable runner.json"))?;
        let address = runner["address"].as_str().ok_or_else(|| in_use("left no address"))?;
        let address: std::net::SocketAddr = address.parse().map_err(|_| in_use("left a bad address"))?;
        if !address.ip().is_loopback() {
            return Err(in_use("is not on a loopback address"));
        }
        let secrets = FileSecretStore::open(&dir.join(SECRETS_FILE))
            .map_err(|e| format!("cannot read the secrets: {e}"))?;
        let key = secrets
            .get(auth::OPERATOR_KEY_SECRET)
            .await
            .map_err(|e| format!("cannot read the operator key: {e}"))?
            .ok_or_else(|| in_use("keeps no operator key"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Self { base: format!("http://{address}"), operator_key: key.expose().to_owned(), http })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.operator_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response =
            request.send().await.map_err(|e| format!("the running omnichat-local did not answer: {e}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]["message"].as_str().unwrap_or("no explanation");
        Err(match body["error"]["field"].as_str() {
            Some(field) => format!("{field}: {message} (HTTP {status})"),
            None => format!("{message} (HTTP {status})"),
        })
    }

    pub async fn create_tenant(&self, name: &str, features: &Features) -> Result<Value, String> {
        let body = json!({"name": name, "features": features});
        let created = self.call(Method::POST, "/v1/tenants", Some(body)).await?;
        Ok(json!({"tenant_id": created["tenant"]["id"], "admin_key": created["admin_key"]}))
    }

    pub async fn list_tenants(&self) -> Result<Value, String> {
        let mut all = Vec::new();
        let mut path = "/v1/tenants?limit=500".to_owned();
        // Bounded: 1,000 pages of 500 tenants.
        for _ in 0..1000 {
            let page = self.call(Method::GET, &path, None).await?;
            all.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next"].as_str() {
                Some(next) => path = format!("/v1/tenants?limit=500&page={}", url_component(next)),
                None => break,
            }
        }
        Ok(Value::Array(all))
    }

    pub async fn list_keys(&self, tenant: &TenantId) -> Result<Value, String> {
        self.call(Method::GET, &format!("/v1/tenants/{tenant}/api-keys"), None).await
    }

    pub async fn revoke_key(&self, tenant: &TenantId, key_id: &str) -> Result<(), String> {
        let path = format!("/v1/tenants/{tenant}/api-keys/{}", url_component(key_id));
        self.call(Method::DELETE, &path, None).await.map(drop)
    }
}

/// A path or query component, percent-encoded (page tokens and ids come from outside).
fn url_component(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
