//! The live function's handler fed the events API Gateway and EventBridge deliver (JSON fixtures in
//! `../events`), against moto's DynamoDB (a fresh table of the real layout per test) and API Gateway's
//! management API faked at its HTTP boundary (`wiremock`: `POST /live/@connections/{id}` answering 200, or
//! 410 with the `GoneException` API Gateway gives for a closed connection).
//!
//! Run under moto: `infra/moto/with-moto.sh cargo test -p live`. With `OMNICHAT_MOTO=1` (set by with-moto.sh)
//! and no reachable moto the tests fail; with neither they pass without running and say "skipped".

use std::io::Write as _;
use std::sync::{Arc, Once};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use omnichat::adapters::aws::{self, ApiGatewayConnections, DynamoStore, SdkConfig};
use omnichat::adapters::embedded::{FileSecretStore, InProcessBus};
use omnichat::domain::people::{EmployeeChanges, EmployeeStatus};
use omnichat::domain::{
    Channel, Customer, DialogId, EmployeeId, Features, InboundKind, InboundMessage, MessageId, TenantId,
};
use omnichat::ports::clock::{Clock, ManualClock};
use omnichat::ports::events::DomainEvent;
use omnichat::ports::store::{EXPIRES_AT, Index, Query};
use omnichat::repo;
use omnichat::usecases::auth::{Principal, Role};
use omnichat::usecases::ingest::{self, IngestOutcome};
use omnichat::usecases::live as contract;
use omnichat::usecases::{Context, Providers, people, routing, tenants};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const AUTHORIZER: &str = include_str!("../events/authorizer.json");
const CONNECT: &str = include_str!("../events/connect.json");
const DISCONNECT: &str = include_str!("../events/disconnect.json");
const EVENTBRIDGE: &str = include_str!("../events/eventbridge.json");

/// The stage in the callback URL, as the template's `LIVE_CALLBACK_URL` ends.
const STAGE: &str = "live";

/// 2026-01-01T12:00:00Z.
const T0: i64 = 1_767_268_800;

/// moto's SDK configuration, or `None` (the test passes without running) when moto is not configured.
/// Panics when `OMNICHAT_MOTO=1` promises moto and it is not there: a missing emulator must fail the run.
async fn moto() -> Option<SdkConfig> {
    let required = std::env::var("OMNICHAT_MOTO").is_ok_and(|value| value == "1");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok().filter(|value| !value.trim().is_empty());
    let Some(endpoint) = endpoint else {
        assert!(
            !required,
            "OMNICHAT_MOTO=1 but AWS_ENDPOINT_URL is not set: run under infra/moto/with-moto.sh"
        );
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "skipped: moto not running (AWS_ENDPOINT_URL unset): the live function's tests did not run; \
                 run `infra/moto/with-moto.sh cargo test -p live`"
            );
        });
        return None;
    };
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let probe = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(&address)).await;
    assert!(
        matches!(probe, Ok(Ok(_))),
        "AWS_ENDPOINT_URL={endpoint} does not answer: is moto running? ({probe:?})"
    );
    Some(aws::load_sdk_config().await)
}

struct Harness {
    ctx: Context,
    clock: Arc<ManualClock>,
    config: SdkConfig,
    tenant: TenantId,
    channel: Channel,
    anna: EmployeeId,
    bob: EmployeeId,
    _dir: tempfile::TempDir,
}

/// A tenant with two online employees, Anna (whom the channel's dialogs go to) and Bob, on a fresh table.
async fn harness(config: SdkConfig) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let table = format!("omnichat-test-live-{}", uuid::Uuid::now_v7().simple());
    let store = DynamoStore::from_config(&config, table);
    aws::create_table(store.client(), store.table()).await.expect("create the table on moto");
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(T0).expect("valid")));
    let ctx = Context::new(
        Arc::new(store.clone()),
        Arc::new(FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets")),
        Arc::new(InProcessBus::new(64)),
        clock.clone(),
        Providers::default(),
        "https://example.test",
    );
    let (tenant, _) = tenants::create_tenant(&ctx, "Acme", Features::default()).await.expect("tenant");
    let admin = Principal { tenant_id: tenant.id.clone(), role: Role::Admin, employee_id: None };
    let anna = online_employee(&ctx, &admin, "Anna").await;
    let bob = online_employee(&ctx, &admin, "Bob").await;
    let channel = omnichat_tests::put_telegram_channel(&ctx, &tenant.id, &anna).await;
    Harness { ctx, clock, config, tenant: tenant.id, channel, anna, bob, _dir: dir }
}

async fn online_employee(ctx: &Context, admin: &Principal, name: &str) -> EmployeeId {
    let changes = EmployeeChanges {
        name: Some(name.into()),
        status: Some(EmployeeStatus::Online),
        max_dialogs: Some(5),
    };
    people::create_employee(ctx, admin, changes).await.expect("employee").id
}

impl Harness {
    fn admin(&self) -> Principal {
        Principal { tenant_id: self.tenant.clone(), role: Role::Admin, employee_id: None }
    }

    fn employee(&self, id: &EmployeeId) -> Principal {
        Principal { tenant_id: self.tenant.clone(), role: Role::Employee, employee_id: Some(id.clone()) }
    }

    /// The adapter pointed at the fake management API.
    fn connections(&self, fake: &MockServer) -> ApiGatewayConnections {
        ApiGatewayConnections::from_config(&self.config, format!("{}/{STAGE}", fake.uri()))
    }

    /// A customer's first message, routed as the DialogOpened event would: a dialog assigned to Anna.
    async fn dialog_of_anna(&self) -> (DialogId, MessageId) {
        let inbound = InboundMessage {
            dedup_key: "update-1".into(),
            kind: InboundKind::Message,
            customer: Customer { id: "1111".into(), name: Some("Ann".into()), handle: None },
            provider_message_id: Some("1".into()),
            text: Some("Hello".into()),
            attachments: Vec::new(),
            sent_at: None,
        };
        let outcome = ingest::ingest(&self.ctx, &self.channel, &inbound).await.expect("stored");
        let IngestOutcome::Stored { dialog_id, message_id, opened_dialog: true, .. } = outcome else {
            panic!("a new dialog: {outcome:?}")
        };
        let opened = DomainEvent::DialogOpened {
            tenant_id: self.tenant.clone(),
            channel_id: self.channel.id.clone(),
            dialog_id: dialog_id.clone(),
        };
        routing::handle_event(&self.ctx, &opened).await.expect("routed");
        let dialog =
            repo::load_dialog(self.ctx.store.as_ref(), &dialog_id).await.expect("read").expect("dialog");
        assert_eq!(dialog.assignee_id.as_ref(), Some(&self.anna), "the channel's dialogs go to Anna");
        (dialog_id, message_id)
    }

    /// The connections the table lists for the tenant (gsi1), by id.
    async fn listed(&self, tenant: &TenantId) -> Vec<String> {
        let page = self
            .ctx
            .store
            .query(&Query::index(Index::Gsi1, repo::live_connections_of(tenant)))
            .await
            .expect("query");
        let mut ids: Vec<String> = page
            .items
            .into_iter()
            .map(|item| repo::from_item::<contract::Connection>(item).expect("connection").connection_id)
            .collect();
        ids.sort();
        ids
    }
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture")
}

fn authorizer_event(ticket: Option<&str>) -> Value {
    let mut event = fixture(AUTHORIZER);
    match ticket {
        Some(ticket) => {
            event["queryStringParameters"]["ticket"] = json!(ticket);
            event["multiValueQueryStringParameters"]["ticket"] = json!([ticket]);
        }
        None => {
            event["queryStringParameters"] = Value::Null;
            event["multiValueQueryStringParameters"] = Value::Null;
        }
    }
    event
}

/// `$connect` as API Gateway delivers it after the authorizer allowed: its context under
/// `requestContext.authorizer`, beside the principal id.
fn connect_event(connection_id: &str, authorized: &Value) -> Value {
    let mut event = fixture(CONNECT);
    let mut context = authorized["context"].clone();
    context["principalId"] = authorized["principalId"].clone();
    event["requestContext"]["authorizer"] = context;
    event["requestContext"]["connectionId"] = json!(connection_id);
    event
}

fn disconnect_event(connection_id: &str) -> Value {
    let mut event = fixture(DISCONNECT);
    event["requestContext"]["connectionId"] = json!(connection_id);
    event
}

fn effect(answer: &Value) -> &str {
    answer["policyDocument"]["Statement"][0]["Effect"].as_str().unwrap_or_default()
}

/// The management API answering 200 to every push (the fake records them).
async fn fake_management_api() -> MockServer {
    let fake = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&fake).await;
    fake
}

/// Issues a ticket for `principal` and has the authorizer redeem it; answers the authorizer's answer.
async fn authorize(harness: &Harness, fake: &MockServer, principal: &Principal) -> Value {
    let ticket = contract::issue_ticket(&harness.ctx, principal).await.expect("ticket");
    let connections = harness.connections(fake);
    live::handle(&harness.ctx, &connections, authorizer_event(Some(&ticket.ticket))).await.expect("answered")
}

/// Connects `connection_id` for `principal` through the authorizer and `$connect`.
async fn connect(harness: &Harness, fake: &MockServer, connection_id: &str, principal: &Principal) {
    let authorized = authorize(harness, fake, principal).await;
    assert_eq!(effect(&authorized), "Allow", "{authorized}");
    let connections = harness.connections(fake);
    let answer = live::handle(&harness.ctx, &connections, connect_event(connection_id, &authorized))
        .await
        .expect("connected");
    assert_eq!(answer, json!({"statusCode": 200}));
}

/// The pushes the fake received: connection id and body.
async fn pushes(fake: &MockServer) -> Vec<(String, Value)> {
    let prefix = format!("/{STAGE}/@connections/");
    let mut pushes: Vec<(String, Value)> = fake
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .map(|request| {
            let id = request.url.path().strip_prefix(&prefix).unwrap_or(request.url.path()).to_owned();
            (id, serde_json::from_slice(&request.body).expect("a JSON push"))
        })
        .collect();
    pushes.sort_by(|a, b| a.0.cmp(&b.0));
    pushes
}

#[tokio::test]
async fn the_authorizer_allows_a_fresh_ticket_once_with_the_principal_in_its_context() {
    let Some(config) = moto().await else { return };
    let harness = harness(config).await;
    let fake = fake_management_api().await;
    let connections = harness.connections(&fake);
    let anna = harness.employee(&harness.anna);
    let ticket = contract::issue_ticket(&harness.ctx, &anna).await.expect("ticket");

    let method_arn = fixture(AUTHORIZER)["methodArn"].clone();
    let allowed = live::handle(&harness.ctx, &connections, authorizer_event(Some(&ticket.ticket)))
        .await
        .expect("answer");
    assert_eq!(
        allowed,
        json!({
            "principalId": harness.anna,
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": method_arn}],
            },
            "context": {"tenant_id": harness.tenant, "role": "employee", "employee_id": harness.anna},
        })
    );
    // Used once: the same ticket again is denied.
    let again = live::handle(&harness.ctx, &connections, authorizer_event(Some(&ticket.ticket)))
        .await
        .expect("answer");
    assert_eq!(effect(&again), "Deny", "{again}");
    assert_eq!(again["policyDocument"]["Statement"][0]["Resource"], method_arn);
    assert!(again.get("context").is_none(), "{again}");

    // An admin's context names no employee.
    let admin = authorize(&harness, &fake, &harness.admin()).await;
    assert_eq!(effect(&admin), "Allow");
    assert_eq!(admin["context"], json!({"tenant_id": harness.tenant, "role": "admin", "employee_id": ""}));
    assert!(pushes(&fake).await.is_empty(), "the authorizer pushes nothing");
}

#[tokio::test]
async fn the_authorizer_denies_an_expired_unknown_or_missing_ticket() {
    let Some(config) = moto().await else { return };
    let harness = harness(config).await;
    let fake = fake_management_api().await;
    let connections = harness.connections(&fake);
    let ticket = contract::issue_ticket(&harness.ctx, &harness.admin()).await.expect("ticket");
    harness.clock.advance(contract::TICKET_TTL + SignedDuration::from_secs(1));
    let expired = live::handle(&harness.ctx, &connections, authorizer_event(Some(&ticket.ticket)))
        .await
        .expect("answer");
    assert_eq!(effect(&expired), "Deny", "{expired}");
    for ticket in [Some("no-such-ticket"), Some(""), None] {
        let answer =
            live::handle(&harness.ctx, &connections, authorizer_event(ticket)).await.expect("answer");
        assert_eq!(effect(&answer), "Deny", "{ticket:?}: {answer}");
    }
    let long = "x".repeat(500);
    let answer =
        live::handle(&harness.ctx, &connections, authorizer_event(Some(&long))).await.expect("answer");
    assert_eq!(effect(&answer), "Deny");
}

#[tokio::test]
async fn connect_keeps_the_connection_with_a_ttl_and_disconnect_forgets_it() {
    let Some(config) = moto().await else { return };
    let harness = harness(config).await;
    let fake = fake_management_api().await;
    let connections = harness.connections(&fake);
    connect(&harness, &fake, "AnnaConn001", &harness.employee(&harness.anna)).await;

    let item = harness.store_item("AnnaConn001").await.expect("the connection is stored");
    let connection: contract::Connection = repo::from_item(item.clone()).expect("a connection");
    assert_eq!(connection.principal(), harness.employee(&harness.anna));
    assert_eq!(connection.connected_at, harness.clock.now());
    assert_eq!(
        item.get(EXPIRES_AT).and_then(Value::as_i64),
        Some((harness.clock.now() + contract::CONNECTION_TTL).as_second()),
        "kept for the connection's TTL: {item:?}"
    );
    assert_eq!(harness.listed(&harness.tenant).await, ["AnnaConn001"]);

    // A message from the page changes nothing.
    let mut message = disconnect_event("AnnaConn001");
    message["requestContext"]["eventType"] = json!("MESSAGE");
    message["requestContext"]["routeKey"] = json!("$default");
    message["body"] = json!("{\"action\":\"ping\"}");
    let answer = live::handle(&harness.ctx, &connections, message).await.expect("answered");
    assert_eq!(answer, json!({"statusCode": 200}));
    assert_eq!(harness.listed(&harness.tenant).await, ["AnnaConn001"]);

    let answer =
        live::handle(&harness.ctx, &connections, disconnect_event("AnnaConn001")).await.expect("answered");
    assert_eq!(answer, json!({"statusCode": 200}));
    assert!(harness.store_item("AnnaConn001").await.is_none(), "forgotten");
    assert!(harness.listed(&harness.tenant).await.is_empty());
    // API Gateway may deliver $disconnect for a connection already forgotten: no error.
    let answer =
        live::handle(&harness.ctx, &connections, disconnect_event("AnnaConn001")).await.expect("answered");
    assert_eq!(answer, json!({"statusCode": 200}));

    // $connect without the authorizer's principal is refused and stores nothing.
    let mut unauthorized = fixture(CONNECT);
    unauthorized["requestContext"].as_object_mut().expect("object").remove("authorizer");
    let answer = live::handle(&harness.ctx, &connections, unauthorized).await.expect("answered");
    assert_eq!(answer, json!({"statusCode": 403}));
    assert!(harness.listed(&harness.tenant).await.is_empty());
}

impl Harness {
    async fn store_item(&self, connection_id: &str) -> Option<omnichat::ports::store::Item> {
        self.ctx.store.get(&repo::live_connection_key(connection_id)).await.expect("read")
    }
}

/// The bus event of the fixture, for this tenant's dialog.
fn bus_event(harness: &Harness, detail_type: &str, detail: Value) -> Value {
    let mut event = fixture(EVENTBRIDGE);
    event["detail-type"] = json!(detail_type);
    let mut full = json!({"version": 1, "tenant_id": harness.tenant, "channel_id": harness.channel.id});
    for (key, value) in detail.as_object().expect("object") {
        full[key] = value.clone();
    }
    event["detail"] = full;
    event
}

#[tokio::test]
async fn an_event_is_pushed_to_the_admin_and_the_assigned_employee_only() {
    let Some(config) = moto().await else { return };
    let harness = harness(config.clone()).await;
    let (dialog, message) = harness.dialog_of_anna().await;
    let fake = fake_management_api().await;
    connect(&harness, &fake, "AdminConn01", &harness.admin()).await;
    connect(&harness, &fake, "AnnaConn001", &harness.employee(&harness.anna)).await;
    connect(&harness, &fake, "BobConn0001", &harness.employee(&harness.bob)).await;
    // Another tenant's admin, on the same table.
    let (other, _) =
        tenants::create_tenant(&harness.ctx, "Other", Features::default()).await.expect("tenant");
    let other_admin = Principal { tenant_id: other.id.clone(), role: Role::Admin, employee_id: None };
    connect(&harness, &fake, "OtherAdmin1", &other_admin).await;
    assert_eq!(harness.listed(&harness.tenant).await, ["AdminConn01", "AnnaConn001", "BobConn0001"]);

    let connections = harness.connections(&fake);
    let event = bus_event(
        &harness,
        "MessageReceived",
        json!({"type": "message_received", "dialog_id": dialog, "message_id": message}),
    );
    let answer = live::handle(&harness.ctx, &connections, event).await.expect("pushed");
    assert_eq!(answer, json!({"pushed": 2, "skipped": 1, "dropped": 0, "failed": 0}));
    let told = json!({"type": "message_received", "dialog_id": dialog, "message_id": message});
    assert_eq!(
        pushes(&fake).await,
        [("AdminConn01".to_owned(), told.clone()), ("AnnaConn001".to_owned(), told)]
    );

    // DialogOpened goes to admins only.
    fake.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&fake).await;
    let event = bus_event(&harness, "DialogOpened", json!({"type": "dialog_opened", "dialog_id": dialog}));
    let answer = live::handle(&harness.ctx, &connections, event).await.expect("pushed");
    assert_eq!(answer, json!({"pushed": 1, "skipped": 2, "dropped": 0, "failed": 0}));
    let pushed = pushes(&fake).await;
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].0, "AdminConn01");
    // Nothing reached the other tenant, which still has its connection.
    assert_eq!(harness.listed(&other.id).await, ["OtherAdmin1"]);
}

#[tokio::test]
async fn a_connection_api_gateway_answers_410_for_is_dropped() {
    let Some(config) = moto().await else { return };
    let harness = harness(config).await;
    let (dialog, _) = harness.dialog_of_anna().await;
    let fake = MockServer::start().await;
    // What API Gateway answers for a closed connection.
    Mock::given(method("POST"))
        .and(path(format!("/{STAGE}/@connections/AnnaGone001")))
        .respond_with(
            ResponseTemplate::new(410)
                .insert_header("x-amzn-errortype", "GoneException")
                .set_body_json(json!({"message": null})),
        )
        .mount(&fake)
        .await;
    // Refused for another reason: the push is lost, the connection kept.
    Mock::given(method("POST"))
        .and(path(format!("/{STAGE}/@connections/AdminForbid")))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-amzn-errortype", "ForbiddenException")
                .set_body_json(json!({"message": "Forbidden"})),
        )
        .mount(&fake)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&fake).await;
    connect(&harness, &fake, "AnnaGone001", &harness.employee(&harness.anna)).await;
    connect(&harness, &fake, "AnnaOpen001", &harness.employee(&harness.anna)).await;
    connect(&harness, &fake, "AdminForbid", &harness.admin()).await;

    let connections = harness.connections(&fake);
    let event = bus_event(&harness, "DialogClosed", json!({"type": "dialog_closed", "dialog_id": dialog}));
    let answer = live::handle(&harness.ctx, &connections, event).await.expect("pushed");
    assert_eq!(answer, json!({"pushed": 1, "skipped": 0, "dropped": 1, "failed": 1}));
    assert!(harness.store_item("AnnaGone001").await.is_none(), "the gone connection is deleted");
    assert_eq!(harness.listed(&harness.tenant).await, ["AdminForbid", "AnnaOpen001"]);
    let tried: Vec<String> = pushes(&fake).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(tried, ["AdminForbid", "AnnaGone001", "AnnaOpen001"], "one try each (neither is retried)");
}

#[tokio::test]
async fn the_adapter_tells_gone_from_failed() {
    let Some(config) = moto().await else { return };
    use omnichat::ports::live::{LiveConnections, PushError};
    let fake = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{STAGE}/@connections/gone")))
        .respond_with(
            ResponseTemplate::new(410)
                .insert_header("x-amzn-errortype", "GoneException")
                .set_body_json(json!({"message": null})),
        )
        .mount(&fake)
        .await;
    // A 410 without the error type header is still API Gateway's "gone".
    Mock::given(method("POST"))
        .and(path(format!("/{STAGE}/@connections/bare410")))
        .respond_with(ResponseTemplate::new(410))
        .mount(&fake)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{STAGE}/@connections/open")))
        .respond_with(ResponseTemplate::new(200))
        .mount(&fake)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).insert_header("x-amzn-errortype", "BadRequestException"))
        .mount(&fake)
        .await;
    // A trailing slash on the callback URL changes nothing.
    let connections = ApiGatewayConnections::from_config(&config, format!("{}/{STAGE}/", fake.uri()));
    assert_eq!(connections.post("open", b"{\"type\":\"queue_changed\"}").await, Ok(()));
    assert_eq!(connections.post("gone", b"{}").await, Err(PushError::Gone));
    assert_eq!(connections.post("bare410", b"{}").await, Err(PushError::Gone));
    assert!(matches!(connections.post("other", b"{}").await, Err(PushError::Failed(_))));
    let requests = fake.received_requests().await.expect("recorded");
    let open = &requests[0];
    assert_eq!(open.body, b"{\"type\":\"queue_changed\"}");
    assert!(
        open.headers
            .get("authorization")
            .is_some_and(|v| v.to_str().unwrap_or_default().contains("execute-api")),
        "signed for execute-api: {:?}",
        open.headers.get("authorization")
    );
}
