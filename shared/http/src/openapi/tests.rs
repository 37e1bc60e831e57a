//! The document against the code: every route documented (and nothing else) and served, every reference
//! resolved, the schemas clients rely on there, and the bounds the domain's. The shapes need no test: the
//! schemas are derived on the types the handlers answer.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use omnichat::adapters::embedded::{FileSecretStore, InProcessBus, RedbStore};
use omnichat::domain::{ChannelId, Provider};
use omnichat::ports::clock::SystemClock;
use omnichat::secret::Secret;
use omnichat::usecases::{Context, Providers, tenants};
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN_KEY: &str = "ock_openapi_test_key_0123456789abcdef";
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn document() -> Value {
    serde_json::to_value(super::document()).expect("the document serializes")
}

fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// Every `(METHOD, path)` registered with `.route(path, get(..).post(..))` in this crate's sources. Reading
/// the sources is the only way to list an axum router's routes; a route registered any other way (`nest`,
/// `route_service`) fails the test until this learns it.
fn routes_in_sources() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut files = Vec::new();
    collect_rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let (route_call, nest_calls) = (".route(", [".nest(", ".route_service("]);
    // This file talks about routes without registering any; `app.rs` serves the web app's files (HTML,
    // scripts), which are no part of the API's document.
    for file in files.into_iter().filter(|f| !f.ends_with("openapi/tests.rs") && !f.ends_with("src/app.rs")) {
        let source = std::fs::read_to_string(&file).expect("readable source");
        for call in nest_calls {
            assert!(!source.contains(call), "{}: {call} is not understood by this test", file.display());
        }
        let mut rest = source.as_str();
        while let Some(at) = rest.find(route_call) {
            let args = &rest[at + route_call.len()..];
            let arguments = &args[..closing_paren(args)];
            let path = arguments.trim_start().strip_prefix('"').and_then(|p| p.split('"').next());
            let path =
                path.unwrap_or_else(|| panic!("{}: a route whose path is not a literal", file.display()));
            let methods = route_methods(&arguments[arguments.find(',').unwrap_or(0)..]);
            assert!(!methods.is_empty(), "{}: no method found for {path}", file.display());
            for method in methods {
                routes.insert((method, path.to_owned()));
            }
            rest = &args[arguments.len()..];
        }
    }
    routes
}

fn collect_rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect_rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Where the call whose arguments start at `text` closes.
fn closing_paren(text: &str) -> usize {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses after a route call")
}

/// The methods of a method router expression: `get(a).post(b)`, `axum::routing::put(c)`, `any(d)`.
fn route_methods(expression: &str) -> Vec<String> {
    let mut methods = Vec::new();
    for name in METHODS.iter().chain(&["any"]) {
        let mut from = 0;
        while let Some(found) = expression[from..].find(&format!("{name}(")) {
            let at = from + found;
            let before = expression[..at].chars().next_back();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                methods.push(name.to_uppercase());
            }
            from = at + name.len();
        }
    }
    methods
}

#[test]
fn every_route_of_the_routers_is_documented_and_nothing_else() {
    let routes = routes_in_sources();
    let documented = documented_operations(&document());
    assert!(routes.len() >= 30, "the source scan found too few routes: {routes:?}");
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes without #[utoipa::path] in the document: {undocumented:?}");
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(unrouted.is_empty(), "documented operations no router serves: {unrouted:?}");
}

#[test]
fn the_source_scan_reads_method_chains() {
    assert_eq!(route_methods(", get(list).post(create))"), ["GET", "POST"]);
    assert_eq!(route_methods(", axum::routing::put(update)"), ["PUT"]);
    assert_eq!(route_methods(", post(target_get(x))"), ["POST"]);
    assert_eq!(route_methods(", any(all)"), ["ANY"]);
}

#[test]
fn every_reference_resolves_and_the_security_scheme_exists() {
    let doc = document();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let schemas = doc["components"]["schemas"].as_object().expect("component schemas");
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let name = reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{reference}"));
        assert!(schemas.contains_key(name), "{reference} does not resolve");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    for (method, path) in documented_operations(&doc) {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        let public = path.starts_with("/webhooks/") || path == "/openapi.json";
        assert_eq!(operation.get("security") == Some(&json!([{}])), public, "{method} {path}: security");
        let responses = operation["responses"].as_object().expect("responses");
        if !public {
            assert!(responses.contains_key("401"), "{method} {path}: 401 undocumented");
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {status}");
            }
        }
    }
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                refs.push(reference.clone());
            }
            object.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

#[test]
fn the_bounds_are_the_domains() {
    use omnichat::domain::{hours, people, settings};
    use omnichat::usecases::channels;
    let doc = document();
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let bound = |value: &Value, key: &str| value[key].as_u64().unwrap_or_else(|| panic!("{key} in {value}"));
    let as_u64 = |n: usize| u64::try_from(n).expect("fits");

    let settings_schema = schema("ChannelSettings");
    assert_eq!(
        bound(&settings_schema["properties"]["auto_replies"], "maxItems"),
        as_u64(settings::MAX_AUTO_REPLIES)
    );
    let auto_reply = schema("AutoReply");
    assert_eq!(bound(&auto_reply["properties"]["text"], "maxLength"), as_u64(settings::MAX_AUTO_REPLY_CHARS));
    assert_eq!(bound(&auto_reply["properties"]["text"], "minLength"), 1);
    let delay = &auto_reply["properties"]["delay_seconds"];
    assert_eq!(
        (bound(delay, "minimum"), bound(delay, "maximum")),
        (1, settings::MAX_AUTO_REPLY_DELAY_SECONDS)
    );
    let hours_after = &schema("AutoCloseHours")["properties"]["after"];
    assert_eq!(
        (bound(hours_after, "minimum"), bound(hours_after, "maximum")),
        (1, settings::MAX_AUTO_CLOSE_HOURS.into())
    );
    let days_after = &schema("AutoCloseDays")["properties"]["after"];
    assert_eq!(
        (bound(days_after, "minimum"), bound(days_after, "maximum")),
        (1, settings::MAX_AUTO_CLOSE_DAYS.into())
    );

    for name in ["NewChannel", "ChannelUpdate"] {
        assert_eq!(bound(&schema(name)["properties"]["name"], "maxLength"), as_u64(channels::MAX_NAME_CHARS));
    }
    for name in ["EmployeeInput", "GroupInput", "ChatbotInput"] {
        assert_eq!(bound(&schema(name)["properties"]["name"], "maxLength"), as_u64(people::MAX_NAME_CHARS));
    }
    let max_dialogs = &schema("EmployeeInput")["properties"]["max_dialogs"];
    assert_eq!(
        (bound(max_dialogs, "minimum"), bound(max_dialogs, "maximum")),
        (1, people::MAX_DIALOGS_LIMIT.into())
    );
    let group = schema("GroupInput");
    assert_eq!(bound(&group["properties"]["members"], "maxItems"), as_u64(people::MAX_GROUP_MEMBERS));
    let wait = &group["properties"]["wait_seconds"];
    assert_eq!((bound(wait, "minimum"), bound(wait, "maximum")), (1, people::MAX_WAIT_SECONDS.into()));
    let webhook_url = &schema("ChatbotInput")["properties"]["webhook_url"];
    assert_eq!(bound(webhook_url, "maxLength"), as_u64(people::MAX_WEBHOOK_URL_CHARS));

    let weekly = schema("Weekly");
    for day in hours::WEEKDAYS {
        assert_eq!(
            bound(&weekly["properties"][day], "maxItems"),
            as_u64(hours::MAX_INTERVALS_PER_DAY),
            "{day}"
        );
    }
    let working_hours = schema("WorkingHours");
    assert_eq!(bound(&working_hours["properties"]["holidays"], "maxItems"), as_u64(hours::MAX_HOLIDAYS));
    assert_eq!(bound(&working_hours["properties"]["extra_days"], "maxItems"), as_u64(hours::MAX_EXTRA_DAYS));
    assert_eq!(
        bound(&schema("ExtraDay")["properties"]["intervals"], "maxItems"),
        as_u64(hours::MAX_INTERVALS_PER_DAY)
    );

    let reply = schema("NewReply");
    assert_eq!(
        bound(&reply["properties"]["text"], "maxLength"),
        as_u64(omnichat::domain::MAX_ANY_REPLY_CHARS)
    );
    assert_eq!(bound(&reply["properties"]["buttons"], "maxItems"), as_u64(omnichat::domain::MAX_BUTTONS));
    assert_eq!(bound(&schema("ButtonLabel"), "maxLength"), as_u64(omnichat::domain::MAX_BUTTON_CHARS));

    let list = &doc["paths"]["/v1/employees"]["get"]["parameters"];
    let limit = list.as_array().expect("parameters").iter().find(|p| p["name"] == "limit").expect("limit");
    assert_eq!(bound(&limit["schema"], "maximum"), as_u64(crate::api::MAX_PAGE_SIZE));
    assert_eq!(bound(&limit["schema"], "default"), as_u64(crate::api::DEFAULT_PAGE_SIZE));
}

struct App {
    router: axum::Router,
    _dir: tempfile::TempDir,
}

impl App {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = Arc::new(Context::new(
            Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store")),
            Arc::new(FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets")),
            Arc::new(InProcessBus::new(64)),
            Arc::new(SystemClock),
            Providers::default(),
            "https://omnichat.test",
        ));
        tenants::bootstrap_first_tenant(&ctx, Some(Secret::new(ADMIN_KEY))).await.expect("tenant");
        Self { router: crate::app(ctx), _dir: dir }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {ADMIN_KEY}"))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

/// The schemas every client relies on are in the document, and each list answers a page of its item.
#[test]
fn the_document_has_the_api_schemas() {
    let doc = document();
    let schemas = doc["components"]["schemas"].as_object().expect("component schemas");
    for name in [
        "ErrorBody",
        "Tenant",
        "ApiKey",
        "Channel",
        "ChannelCreated",
        "ChannelSettings",
        "Employee",
        "Group",
        "Chatbot",
        "WorkingHours",
        "Dialog",
        "Message",
        "NewChannel",
        "EmployeeInput",
        "NewReply",
    ] {
        assert!(schemas.contains_key(name), "{name} is not in the document");
    }
    for (path, item) in [
        ("/v1/channels", "Channel"),
        ("/v1/employees", "Employee"),
        ("/v1/groups", "Group"),
        ("/v1/chatbots", "Chatbot"),
        ("/v1/dialogs", "Dialog"),
        ("/v1/dialogs/{id}/messages", "Message"),
        ("/v1/me/dialogs", "Dialog"),
        ("/v1/me/queue", "Dialog"),
    ] {
        let page = &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(page["$ref"], format!("#/components/schemas/Page_{item}"), "GET {path}");
    }
}

/// The wire's channel kinds are the strings the domain reads back (`Provider::from_kind`).
#[test]
fn channel_kinds_are_the_domains() {
    for provider in Provider::ALL {
        let (kind, whatsapp) = crate::api::wire::kind_of(provider);
        assert_eq!(serde_json::to_value(kind).expect("serializes"), provider.kind(), "{provider:?}");
        assert_eq!(
            serde_json::to_value(whatsapp).expect("serializes"),
            json!(provider.whatsapp_provider()),
            "{provider:?}"
        );
    }
}

/// Working hours answer through their wire type without losing anything of the domain's shape.
#[test]
fn working_hours_fit_their_wire_type() {
    use crate::api::wire::WorkingHours as Wire;
    use omnichat::domain::hours::WorkingHours;
    let full = WorkingHours::from_json(&json!({"time_zone": "Europe/Moscow",
        "weekly": {"mon": [{"from": "09:00", "to": "18:00"}], "sat": [{"from": "22:00", "to": "02:00"}]},
        "holidays": ["2030-01-01"],
        "extra_days": [{"date": "2030-01-05", "intervals": [{"from": "10:00", "to": "15:00"}]}]}))
    .expect("valid hours");
    for hours in [WorkingHours::always_open(), full] {
        let wire = Wire::try_from(&hours).expect("fits");
        assert_eq!(serde_json::to_value(wire).expect("serializes"), hours.to_json());
    }
}

/// Each property the people schemas document is a field the domain reads (the bodies are validated by
/// hand, so the schemas are written next to them rather than derived).
#[test]
fn the_people_schemas_name_fields_the_domain_reads() {
    use omnichat::domain::people::{ChatbotChanges, EmployeeChanges, GroupChanges};
    let doc = document();
    /// The code of the rule a body breaks, if any.
    type Reader = fn(&Value) -> Option<String>;
    let readers: [(&str, Reader); 3] = [
        ("EmployeeInput", |v| EmployeeChanges::from_json(v).err().map(|e| e.code.to_owned())),
        ("GroupInput", |v| GroupChanges::from_json(v).err().map(|e| e.code.to_owned())),
        ("ChatbotInput", |v| ChatbotChanges::from_json(v).err().map(|e| e.code.to_owned())),
    ];
    for (schema, read) in readers {
        let properties = doc["components"]["schemas"][schema]["properties"].as_object().expect(schema);
        assert!(properties.len() >= 3, "{schema}");
        for name in properties.keys() {
            // A wrong type is refused naming the field; an unknown field would be refused as unknown.
            let code = read(&json!({ name: [[]] }));
            assert_ne!(code.as_deref(), Some("unknown_field"), "{schema}.{name}");
        }
        assert_eq!(read(&json!({"no_such_field": 1})).as_deref(), Some("unknown_field"), "{schema}");
    }
}

/// The reverse of the route scan: a request to each documented operation reaches its handler (not the
/// fallback, not a 405).
#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = App::start().await;
    let id = ChannelId::generate().to_string();
    for (method, path) in documented_operations(&document()) {
        let concrete = path
            .replace("{id}", &id)
            .replace("{channel_id}", &id)
            .replace("{provider}", "telegram")
            .replace("{secret}", "s3cret");
        let body = matches!(method.as_str(), "POST" | "PUT").then(|| json!({}));
        let (status, answer) = app.call(&method, &concrete, body).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(answer["error"]["message"], "no such route", "{method} {path}");
    }
}

#[tokio::test]
async fn axum_refusals_answer_the_error_body() {
    let app = App::start().await;
    let (status, body) = app.call("GET", "/v1/employees?limit=1&limit=2", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    let (status, body) = app.call("DELETE", "/v1/tenant", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
}

#[tokio::test]
async fn the_document_is_served_without_a_key() {
    let app = App::start().await;
    let request = Request::builder().uri("/openapi.json").body(Body::empty()).expect("request");
    let response = app.router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let served: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(served, document());
}

/// A chatbot's signing secret is documented where it is shown (the create's 201 and the rotation's 200)
/// and nowhere else: not in the chatbot that reads, lists and changes answer.
#[test]
fn the_signing_secret_is_documented_only_where_it_is_shown() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let answer = |path: &str, method: &str, status: &str| {
        doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .unwrap_or_else(|| panic!("{method} {path} {status}"))
            .to_owned()
    };
    let created = serde_json::to_string(&schemas[answer("/v1/chatbots", "post", "201")]).expect("json");
    assert!(
        created.contains("signing_secret") && created.contains("#/components/schemas/Chatbot"),
        "{created}"
    );
    let rotated = &schemas[answer("/v1/chatbots/{id}/rotate-secret", "post", "200")];
    assert_eq!(rotated["required"], json!(["signing_secret"]), "{rotated}");
    assert_eq!(answer("/v1/chatbots/{id}", "get", "200"), "Chatbot");
    assert_eq!(answer("/v1/chatbots/{id}", "put", "200"), "Chatbot");
    assert!(schemas["Chatbot"]["properties"].get("signing_secret").is_none());
}
