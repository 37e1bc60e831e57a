//! The first-tenant custom resource (`functions/first-tenant`): CloudFormation's requests answered through
//! a stand-in for the presigned ResponseURL (wiremock on 127.0.0.1), on the embedded store and, with moto
//! (`infra/moto/with-moto.sh`), on DynamoDB and Secrets Manager. The secrets named in the stack hold
//! working keys; repeating a request changes nothing; a failure is answered FAILED with its reason.

use std::sync::Arc;

use omnichat::adapters::aws::{self, DynamoStore, SecretsManagerStore};
use omnichat::adapters::embedded::{FileSecretStore, InProcessBus, RedbStore};
use omnichat::custom_resource::{self, AnswerError, Status};
use omnichat::ports::clock::SystemClock;
use omnichat::ports::{SecretStore, Store};
use omnichat::usecases::auth::{self, OPERATOR_KEY_SECRET, Role};
use omnichat::usecases::tenants::FIRST_ADMIN_KEY_SECRET;
use omnichat::usecases::{Context, Providers, tenants};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::conformance::{moto, unique_name};

/// A context on one way to run, with what keeps its files alive.
struct Setup {
    name: &'static str,
    ctx: Context,
    _dir: Option<tempfile::TempDir>,
}

fn context(store: Arc<dyn Store>, secrets: Arc<dyn SecretStore>) -> Context {
    Context::new(
        store,
        secrets,
        Arc::new(InProcessBus::new(8)),
        Arc::new(SystemClock),
        Providers::default(),
        "",
    )
}

fn embedded() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RedbStore::open(&dir.path().join("omnichat.redb")).expect("redb");
    let secrets = FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets");
    Setup { name: "embedded", ctx: context(Arc::new(store), Arc::new(secrets)), _dir: Some(dir) }
}

/// The embedded setup, and the AWS one (a fresh table and secret prefix on moto) when moto runs.
async fn setups() -> Vec<Setup> {
    let mut setups = vec![embedded()];
    if let Some(config) = moto().await {
        let store = DynamoStore::from_config(&config, unique_name("table"));
        aws::create_table(store.client(), store.table()).await.expect("create the table on moto");
        let secrets = SecretsManagerStore::from_config(&config, format!("{}/", unique_name("secrets")));
        setups.push(Setup { name: "aws", ctx: context(Arc::new(store), Arc::new(secrets)), _dir: None });
    }
    setups
}

/// The stand-in for CloudFormation's presigned S3 URL: takes PUTs on /cfn-response.
async fn response_url() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/cfn-response"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

fn request(kind: &str, server: &MockServer, physical: Option<&str>) -> Value {
    let mut event = json!({
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:first-tenant",
        "ResponseURL": format!("{}/cfn-response?X-Amz-Signature=abc", server.uri()),
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/omnichat/5b2d3a30",
        "RequestId": format!("req-{}", uuid::Uuid::now_v7()),
        "LogicalResourceId": "FirstTenant",
        "ResourceType": "Custom::FirstTenant",
        "ResourceProperties": {}
    });
    if let Some(physical) = physical {
        event["PhysicalResourceId"] = Value::String(physical.to_owned());
    }
    event
}

/// Sends one request through the function's handler and answers what reached the ResponseURL.
async fn invoke(ctx: Result<&Context, &str>, server: &MockServer, event: Value) -> Value {
    let before = server.received_requests().await.unwrap_or_default().len();
    let http = custom_resource::http_client().expect("client");
    let delivered =
        custom_resource::answer(&http, event.clone(), |request| custom_resource::first_tenant(ctx, request))
            .await
            .expect("the answer is delivered");
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), before + 1, "exactly one answer per request");
    let answer = requests.last().expect("an answer");
    assert_eq!(answer.url.query(), Some("X-Amz-Signature=abc"), "the presigned URL is used as given");
    let content_type = answer.headers.get("content-type").map(|v| v.as_bytes().to_vec());
    assert_eq!(content_type, Some(Vec::new()), "an empty Content-Type, as the URL was signed for");
    let body: Value = serde_json::from_slice(&answer.body).expect("a JSON answer");
    assert!(answer.body.len() <= 4096, "CloudFormation's limit");
    for copied in ["StackId", "RequestId", "LogicalResourceId"] {
        assert_eq!(body[copied], event[copied], "{copied} is copied from the request");
    }
    assert_eq!(body["NoEcho"], true);
    let status = if body["Status"] == "SUCCESS" { Status::Success } else { Status::Failed };
    assert_eq!(delivered, status);
    body
}

async fn secret(ctx: &Context, name: &str) -> String {
    ctx.secrets.get(name).await.expect("secret store").expect("the secret exists").expose().to_owned()
}

#[tokio::test]
async fn create_makes_the_tenant_and_both_keys_and_repeating_it_changes_nothing() {
    for setup in setups().await {
        let (name, ctx) = (setup.name, &setup.ctx);
        let server = response_url().await;
        let created = invoke(Ok(ctx), &server, request("Create", &server, None)).await;
        assert_eq!(created["Status"], "SUCCESS", "{name}: {created}");
        let tenant_id = created["Data"]["TenantId"].as_str().expect("TenantId").to_owned();
        assert_eq!(created["PhysicalResourceId"], format!("first-tenant-{tenant_id}"), "{name}");

        let operator_key = secret(ctx, OPERATOR_KEY_SECRET).await;
        let admin_key = secret(ctx, FIRST_ADMIN_KEY_SECRET).await;
        for key in [&operator_key, &admin_key] {
            assert!(key.starts_with("ock_") && key.len() >= 24, "{name}: a generated key");
            assert!(!created.to_string().contains(key.as_str()), "{name}: no key material in the answer");
        }
        assert_ne!(operator_key, admin_key);
        let principal = auth::authenticate(ctx, Some(&admin_key)).await.expect("the first admin key works");
        assert_eq!(principal.tenant_id.to_string(), tenant_id, "{name}");
        assert_eq!(principal.role, Role::Admin);
        let tenant = tenants::get_tenant(ctx, &principal.tenant_id).await.expect("the tenant exists");
        assert_eq!(tenant.id.to_string(), tenant_id);

        // CloudFormation may repeat a Create (a retried invocation): same tenant, same keys.
        let again = invoke(Ok(ctx), &server, request("Create", &server, None)).await;
        assert_eq!(again["Status"], "SUCCESS", "{name}: {again}");
        assert_eq!(again["Data"]["TenantId"], tenant_id.as_str(), "{name}");
        assert_eq!(again["PhysicalResourceId"], created["PhysicalResourceId"], "{name}");
        assert_eq!(secret(ctx, OPERATOR_KEY_SECRET).await, operator_key, "{name}");
        assert_eq!(secret(ctx, FIRST_ADMIN_KEY_SECRET).await, admin_key, "{name}");

        let physical = created["PhysicalResourceId"].as_str().expect("id").to_owned();
        for kind in ["Update", "Delete"] {
            let answered = invoke(Ok(ctx), &server, request(kind, &server, Some(&physical))).await;
            assert_eq!(answered["Status"], "SUCCESS", "{name} {kind}: {answered}");
            assert_eq!(answered["PhysicalResourceId"], physical.as_str(), "{name} {kind}: same resource");
            assert_eq!(secret(ctx, OPERATOR_KEY_SECRET).await, operator_key, "{name} {kind}");
            assert_eq!(secret(ctx, FIRST_ADMIN_KEY_SECRET).await, admin_key, "{name} {kind}");
            let still = auth::authenticate(ctx, Some(&admin_key)).await.expect("the key still works");
            assert_eq!(still.tenant_id.to_string(), tenant_id, "{name} {kind}");
        }
        // Update answers the attribute again (an output reading it keeps working); Delete keeps everything.
        let updated = invoke(Ok(ctx), &server, request("Update", &server, Some(&physical))).await;
        assert_eq!(updated["Data"]["TenantId"], tenant_id.as_str(), "{name}");
    }
}

#[tokio::test]
async fn a_preset_admin_key_is_the_first_tenants_and_a_short_one_is_refused_changing_nothing() {
    for setup in setups().await {
        let (name, ctx) = (setup.name, &setup.ctx);
        let server = response_url().await;
        let short = omnichat::secret::Secret::new("too-short");
        ctx.secrets.put(FIRST_ADMIN_KEY_SECRET, &short).await.expect("preset");
        let refused = invoke(Ok(ctx), &server, request("Create", &server, None)).await;
        assert_eq!(refused["Status"], "FAILED", "{name}: {refused}");
        let reason = refused["Reason"].as_str().expect("a reason");
        assert!(reason.contains(FIRST_ADMIN_KEY_SECRET) && reason.contains("24"), "{name}: {reason}");
        assert!(!refused["PhysicalResourceId"].as_str().unwrap_or_default().is_empty(), "{name}");
        assert!(auth::authenticate(ctx, Some("too-short")).await.is_err(), "{name}: no tenant was made");

        let preset = "ock_preset_first_admin_key_0123456789";
        ctx.secrets
            .put(FIRST_ADMIN_KEY_SECRET, &omnichat::secret::Secret::new(preset))
            .await
            .expect("preset");
        let created = invoke(Ok(ctx), &server, request("Create", &server, None)).await;
        assert_eq!(created["Status"], "SUCCESS", "{name}: {created}");
        let principal = auth::authenticate(ctx, Some(preset)).await.expect("the preset key works");
        assert_eq!(principal.tenant_id.to_string(), created["Data"]["TenantId"].as_str().expect("id"));
        assert_eq!(secret(ctx, FIRST_ADMIN_KEY_SECRET).await, preset, "{name}: kept as it was");
    }
}

#[tokio::test]
async fn a_store_that_fails_is_answered_failed_with_the_reason() {
    // Embedded: the secrets file's folder is gone, so storing the generated key fails.
    let setup = embedded();
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets = FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets");
    drop(dir);
    let ctx = context(Arc::clone(&setup.ctx.store), Arc::new(secrets));
    let server = response_url().await;
    let failed = invoke(Ok(&ctx), &server, request("Create", &server, None)).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    assert!(failed["Reason"].as_str().expect("reason").contains("secret store unavailable"), "{failed}");
    assert_eq!(failed["PhysicalResourceId"], "FirstTenant", "a failed Create names its resource");
    assert!(omnichat::usecases::platform::first_tenant_id(&ctx).await.expect("store").is_none());

    // AWS: the table does not exist.
    if let Some(config) = moto().await {
        let table = unique_name("missing-table");
        let store = DynamoStore::from_config(&config, table.clone());
        let secrets = SecretsManagerStore::from_config(&config, format!("{}/", unique_name("secrets")));
        let ctx = context(Arc::new(store), Arc::new(secrets));
        let failed = invoke(Ok(&ctx), &server, request("Create", &server, None)).await;
        assert_eq!(failed["Status"], "FAILED", "{failed}");
        let reason = failed["Reason"].as_str().expect("reason");
        assert!(reason.contains("store unavailable"), "{reason}");
    }
}

#[tokio::test]
async fn an_unconfigured_function_fails_create_and_update_but_lets_delete_through() {
    let server = response_url().await;
    let not_configured = Err("TABLE_NAME is not set");
    let failed = invoke(not_configured, &server, request("Create", &server, None)).await;
    assert_eq!(failed["Status"], "FAILED");
    assert!(failed["Reason"].as_str().expect("reason").contains("TABLE_NAME is not set"), "{failed}");
    let failed = invoke(not_configured, &server, request("Update", &server, Some("first-tenant-x"))).await;
    assert_eq!(failed["Status"], "FAILED");
    assert_eq!(failed["PhysicalResourceId"], "first-tenant-x", "the resource keeps its id");
    // A stack whose function never worked can still be deleted.
    let deleted = invoke(not_configured, &server, request("Delete", &server, Some("first-tenant-x"))).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(deleted["PhysicalResourceId"], "first-tenant-x");
}

#[tokio::test]
async fn a_malformed_request_is_answered_failed_and_one_without_a_response_url_is_an_error() {
    let setup = embedded();
    let server = response_url().await;
    let mut event = request("Create", &server, None);
    event["RequestType"] = json!("Upgrade");
    let failed = invoke(Ok(&setup.ctx), &server, event).await;
    assert_eq!(failed["Status"], "FAILED");
    assert!(failed["Reason"].as_str().expect("reason").contains("malformed custom resource request"));
    assert!(omnichat::usecases::platform::first_tenant_id(&setup.ctx).await.expect("store").is_none());

    let http = custom_resource::http_client().expect("client");
    let answered = custom_resource::answer(&http, json!({"RequestType": "Create"}), |request| {
        custom_resource::first_tenant(Ok(&setup.ctx), request)
    })
    .await;
    assert!(matches!(answered, Err(AnswerError::NoResponseUrl(_))), "{answered:?}");
    assert!(omnichat::usecases::platform::first_tenant_id(&setup.ctx).await.expect("store").is_none());
}

#[tokio::test]
async fn an_answer_that_cannot_be_delivered_is_retried_then_an_error() {
    let setup = embedded();
    let server = MockServer::start().await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    let http = custom_resource::http_client().expect("client");
    let answered =
        custom_resource::answer(&http, request("Delete", &server, Some("first-tenant-x")), |request| {
            custom_resource::first_tenant(Ok(&setup.ctx), request)
        })
        .await;
    let Err(AnswerError::Undelivered(reason)) = answered else { panic!("an error: {answered:?}") };
    assert!(reason.contains("HTTP 500"), "{reason}");
    assert!(!reason.contains("X-Amz-Signature"), "the presigned URL is not in the error");
    assert_eq!(server.received_requests().await.unwrap_or_default().len(), 3, "three attempts");
}
