//! The CloudFormation custom resource protocol: CloudFormation invokes a Lambda with a request (Create,
//! Update or Delete) and waits, up to an hour, for a JSON answer PUT to the request's presigned
//! `ResponseURL`. So every request is answered, also when the work fails or the request is malformed:
//! an unanswered request would hang the stack. Only when even the answer cannot be delivered does
//! [`answer`] return an error (the Lambda then fails and CloudFormation times out; nothing else is left).
//!
//! The answer's fields and limits: "Custom resource response objects" in the CloudFormation user guide
//! (body at most 4096 bytes; `PhysicalResourceId` non-empty, at most 1 KB, the same for every answer about
//! one resource; `StackId`, `RequestId` and `LogicalResourceId` copied from the request).

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::usecases::{Context, platform};

/// One PUT of the answer; the S3 presigned URL answers in milliseconds.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at the PUT (it replaces one S3 object, so repeating it is harmless).
const ANSWER_ATTEMPTS: u32 = 3;
/// CloudFormation refuses an answer body over 4096 bytes; a reason is cut well below that.
const MAX_REASON_BYTES: usize = 1024;

/// What CloudFormation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// A custom resource request, as CloudFormation sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub request_type: RequestType,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// Set on Update and Delete: what the Create answered.
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_properties: Map<String, Value>,
}

/// What the work of a request answers: the resource's physical id and its attributes (`Fn::GetAtt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    pub physical_resource_id: String,
    pub data: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Success,
    Failed,
}

/// The body PUT to the `ResponseURL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub status: Status,
    pub reason: String,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// Hides `Data` from `Fn::GetAtt` outputs and from the stack's events.
    pub no_echo: bool,
    pub data: Map<String, Value>,
}

/// Why a request could not be answered at all.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("not a custom resource request (no ResponseURL to answer): {0}")]
    NoResponseUrl(String),
    #[error("the answer could not be delivered to CloudFormation: {0}")]
    Undelivered(String),
}

/// Runs `work` for one request and PUTs its outcome to the request's `ResponseURL`: SUCCESS with what the
/// work answered, or FAILED with its error as the reason. A request that does not parse is answered
/// FAILED too, when it names a `ResponseURL`. Answers the status that was delivered.
pub async fn answer<F, Fut, E>(http: &reqwest::Client, event: Value, work: F) -> Result<Status, AnswerError>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Done, E>>,
    E: std::fmt::Display,
{
    let request: Request = match serde_json::from_value(event.clone()) {
        Ok(request) => request,
        Err(error) => {
            let field = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
            let response_url = field("ResponseURL");
            if response_url.is_empty() {
                return Err(AnswerError::NoResponseUrl(error.to_string()));
            }
            let logical = field("LogicalResourceId");
            let response = Response {
                status: Status::Failed,
                reason: cut(&format!("malformed custom resource request: {error}")),
                physical_resource_id: non_empty(field("PhysicalResourceId"), &logical, &field("RequestId")),
                stack_id: field("StackId"),
                request_id: field("RequestId"),
                logical_resource_id: logical,
                no_echo: true,
                data: Map::new(),
            };
            return put(http, &response_url, &response).await.map(|()| Status::Failed);
        }
    };
    let response_url = request.response_url.clone();
    // The id an answer carries when the work does not give one: the resource's own on Update and Delete,
    // else (a Create that failed) one that names the request.
    let fallback_id = non_empty(
        request.physical_resource_id.clone().unwrap_or_default(),
        &request.logical_resource_id,
        &request.request_id,
    );
    let (stack_id, request_id, logical_resource_id) =
        (request.stack_id.clone(), request.request_id.clone(), request.logical_resource_id.clone());
    let kind = request.request_type;
    let response = match work(request).await {
        Ok(done) => Response {
            status: Status::Success,
            reason: String::new(),
            physical_resource_id: non_empty(done.physical_resource_id, &fallback_id, &request_id),
            stack_id,
            request_id,
            logical_resource_id,
            no_echo: true,
            data: done.data,
        },
        Err(error) => {
            tracing::error!(%error, request = ?kind, "custom resource request failed");
            Response {
                status: Status::Failed,
                reason: cut(&error.to_string()),
                physical_resource_id: fallback_id,
                stack_id,
                request_id,
                logical_resource_id,
                no_echo: true,
                data: Map::new(),
            }
        }
    };
    let status = response.status;
    put(http, &response_url, &response).await.map(|()| status)
}

/// The client answers are PUT with (the shared TLS setup; each PUT has its own time-out).
pub fn http_client() -> Result<reqwest::Client, String> {
    crate::tls::http_client_builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The attribute of the first-tenant resource: `Fn::GetAtt <resource>.TenantId` (no key material; the
/// keys are in their secrets).
pub const TENANT_ID: &str = "TenantId";

/// The first-tenant resource of the stack. Create provisions the first tenant, the operator key and the
/// first admin key (`platform::provision_first_tenant`, idempotent); Update changes nothing and answers
/// the same tenant; Delete changes nothing (the table and the secrets outlive the resource). `ctx` is the
/// Lambda's context, or why it could not be built: a Create or Update then fails with that reason,
/// while a Delete still succeeds (it has nothing to do).
pub async fn first_tenant(ctx: Result<&Context, &str>, request: Request) -> Result<Done, String> {
    let kept_id = request.physical_resource_id.clone().unwrap_or_default();
    if request.request_type == RequestType::Delete {
        return Ok(Done { physical_resource_id: kept_id, data: Map::new() });
    }
    let ctx = ctx.map_err(|reason| format!("the function is not configured: {reason}"))?;
    let (tenant_id, physical_resource_id) = match request.request_type {
        RequestType::Create => {
            let provisioned = platform::provision_first_tenant(ctx).await.map_err(|e| e.to_string())?;
            let id = format!("first-tenant-{}", provisioned.tenant_id);
            (Some(provisioned.tenant_id), id)
        }
        _ => (platform::first_tenant_id(ctx).await.map_err(|e| e.to_string())?, kept_id),
    };
    let mut data = Map::new();
    if let Some(tenant_id) = tenant_id {
        data.insert(TENANT_ID.into(), Value::String(tenant_id.to_string()));
    }
    Ok(Done { physical_resource_id, data })
}

/// The first non-empty of the given ids, cut to CloudFormation's 1 KB.
fn non_empty(id: String, fallback: &str, last: &str) -> String {
    let chosen = [id.as_str(), fallback, last].into_iter().find(|s| !s.is_empty()).unwrap_or("omnichat");
    truncate(chosen, 1024)
}

fn cut(reason: &str) -> String {
    truncate(reason, MAX_REASON_BYTES)
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// PUTs the answer with an empty Content-Type, as the presigned URL was signed for. The URL itself is
/// never logged: it is a bearer credential for the stack's answer.
async fn put(http: &reqwest::Client, url: &str, response: &Response) -> Result<(), AnswerError> {
    let body = serde_json::to_vec(response).map_err(|e| AnswerError::Undelivered(e.to_string()))?;
    let mut last = String::new();
    for attempt in 1..=ANSWER_ATTEMPTS {
        let sent = http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "")
            .timeout(ANSWER_TIMEOUT)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answered) if answered.status().is_success() => {
                tracing::info!(status = ?response.status, "custom resource answer delivered");
                return Ok(());
            }
            Ok(answered) => last = format!("the ResponseURL answered HTTP {}", answered.status().as_u16()),
            Err(error) => last = transport_failure(&error),
        }
        tracing::warn!(attempt, failure = %last, "custom resource answer not delivered");
        if attempt < ANSWER_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
    tracing::error!(failure = %last, "custom resource answer given up");
    Err(AnswerError::Undelivered(last))
}

/// What went wrong with the PUT, without the URL (reqwest's errors include it).
fn transport_failure(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    format!("the PUT to the ResponseURL {kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let cut = cut(&long);
        assert!(cut.len() <= MAX_REASON_BYTES && cut.len() >= MAX_REASON_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn an_id_falls_back_to_the_next_non_empty_one() {
        assert_eq!(non_empty(String::new(), "Logical", "req"), "Logical");
        assert_eq!(non_empty(String::new(), "", "req"), "req");
        assert_eq!(non_empty("phys".into(), "Logical", "req"), "phys");
    }

    #[test]
    fn the_response_has_cloudformations_field_names() {
        let response = Response {
            status: Status::Failed,
            reason: "r".into(),
            physical_resource_id: "p".into(),
            stack_id: "s".into(),
            request_id: "q".into(),
            logical_resource_id: "l".into(),
            no_echo: true,
            data: Map::new(),
        };
        let json = serde_json::to_value(&response).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"Status": "FAILED", "Reason": "r", "PhysicalResourceId": "p", "StackId": "s",
                "RequestId": "q", "LogicalResourceId": "l", "NoEcho": true, "Data": {}})
        );
    }
}
