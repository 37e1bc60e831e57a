//! The REST API's JSON bodies: byte 0 picks the route, the rest is the body. What runs is exactly this, and
//! no more:
//! - every body goes through the handlers' own `json_body` into the route's request type (the handler's
//!   parser, its size and depth limits and its error mapping);
//! - for the routes whose handler hands fields to the domain's parsers, those same domain functions run on
//!   the same bytes: `Provider::from_kind`, `ChannelSettings::from_json`, `WorkingHours::from_json`, the
//!   `*Changes::from_json` of people, `EmployeeId::parse`, `Tenant::create`, `transfer_target`,
//!   `PageParams::limit`. The request types keep their fields private, so the fields are read from the
//!   bytes parsed a second time as a `serde_json::Value`, not from the typed body the handler holds; the
//!   handler's own glue between the two (which field a refusal names, defaults) is not run here;
//! - nothing a use case checks runs: a reply's text and buttons (`dialogs::reply`), the VK codes, the
//!   disconnect confirmation, a tenant's features and an API key's role are only parsed. The handler
//!   tests and schemathesis (`infra/api/schemathesis.sh`) cover those through the running API.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use omnichat::domain::hours::WorkingHours;
use omnichat::domain::people::{ChatbotChanges, EmployeeChanges, GroupChanges};
use omnichat::domain::{ChannelSettings, EmployeeId, Provider};
use omnichat_http::api::channels::{
    CreateChannelBody, DisconnectBody, UpdateChannelBody, VkCode, VkCommunityCode,
};
use omnichat_http::api::connect::{AccountsBody, ChangeProviderBody};
use omnichat_http::api::dialogs::ReplyBody;
use omnichat_http::api::operator::{NewTenantBody, TenantBody};
use omnichat_http::api::tenant::ApiKeyBody;
use omnichat_http::api::workspace::transfer_target;
use omnichat_http::api::{PageParams, json_body};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The body as the handler reads it; when the request type accepts it, the same bytes as a JSON value
/// (what the checks below read the fields from: the request types keep their fields private).
fn read<T: DeserializeOwned>(body: &Bytes) -> Option<Value> {
    let typed = json_body::<T>(body);
    let value = serde_json::from_slice::<Value>(body);
    match typed {
        Ok(_) => Some(value.expect("a body its request type accepts is JSON")),
        Err(_) => None,
    }
}

fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    value.get(name).unwrap_or(&Value::Null)
}

/// `Provider::from_kind` as the channel and accounts handlers call it.
fn provider(value: &Value) -> Option<Provider> {
    let kind = field(value, "provider").as_str().expect("provider is a string");
    let whatsapp = field(value, "whatsapp_provider").as_str();
    let provider = Provider::from_kind(kind, whatsapp);
    if let Some(provider) = provider {
        assert_eq!(Provider::from_slug(provider.slug()), Some(provider));
    }
    provider
}

fn object(body: &Bytes) -> Option<Value> {
    json_body::<Map<String, Value>>(body).ok().map(Value::Object)
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, body)) = data.split_first() else { return };
    let body = Bytes::copy_from_slice(body);
    match route % 16 {
        // POST /v1/channels
        0 => {
            if let Some(value) = read::<CreateChannelBody>(&body) {
                let _ = provider(&value);
                let _ = ChannelSettings::from_json(field(&value, "settings"));
            }
        }
        // PUT /v1/channels/{id}
        1 => {
            if let Some(value) = read::<UpdateChannelBody>(&body) {
                if let Some(settings) = value.get("settings") {
                    let _ = ChannelSettings::from_json(settings);
                }
            }
        }
        // POST /v1/channels/{id}/disconnect (an empty body counts as {})
        2 => {
            if !body.is_empty() {
                let _ = read::<DisconnectBody>(&body);
            }
        }
        // POST /v1/channels/vk/communities
        3 => {
            let _ = read::<VkCode>(&body);
        }
        // POST /v1/channels/vk/community-token
        4 => {
            let _ = read::<VkCommunityCode>(&body);
        }
        // POST /v1/channels/accounts
        5 => {
            if let Some(value) = read::<AccountsBody>(&body) {
                let _ = provider(&value);
            }
        }
        // POST /v1/channels/{id}/provider
        6 => {
            if let Some(value) = read::<ChangeProviderBody>(&body) {
                let whatsapp = field(&value, "whatsapp_provider").as_str();
                let _ = Provider::from_kind("whatsapp", whatsapp);
            }
        }
        // POST /v1/dialogs/{id}/messages
        7 => {
            let _ = read::<ReplyBody>(&body);
        }
        // PUT /v1/tenants/{id} and POST /v1/tenants (the operator's)
        8 => {
            let _ = read::<TenantBody>(&body);
            if let Some(value) = read::<NewTenantBody>(&body) {
                if let Some(name) = field(&value, "name").as_str() {
                    let _ = omnichat::domain::Tenant::create(
                        name,
                        omnichat::domain::Features::default(),
                        jiff::Timestamp::UNIX_EPOCH,
                    );
                }
            }
        }
        // POST /v1/api-keys
        9 => {
            if let Some(value) = read::<ApiKeyBody>(&body) {
                if let Some(raw) = field(&value, "employee_id").as_str() {
                    if let Some(id) = EmployeeId::parse(raw) {
                        assert_eq!(EmployeeId::parse(id.as_str()), Some(id));
                    }
                }
            }
        }
        // PUT /v1/working-hours
        10 => {
            if let Some(value) = object(&body) {
                let _ = WorkingHours::from_json(&value);
            }
        }
        // POST/PUT /v1/employees
        11 => {
            if let Some(value) = object(&body) {
                let _ = EmployeeChanges::from_json(&value);
            }
        }
        // POST/PUT /v1/groups
        12 => {
            if let Some(value) = object(&body) {
                let _ = GroupChanges::from_json(&value);
            }
        }
        // POST/PUT /v1/chatbots
        13 => {
            if let Some(value) = object(&body) {
                let _ = ChatbotChanges::from_json(&value);
            }
        }
        // PUT /v1/me/status
        14 => {
            if let Some(value) = object(&body) {
                if let Ok(changes) = EmployeeChanges::from_json(&value) {
                    let _ = changes.beyond_status();
                }
            }
        }
        // POST /v1/dialogs/{id}/transfer; and the page parameters of the list routes
        _ => {
            if let Ok(map) = json_body::<Map<String, Value>>(&body) {
                let _ = transfer_target(&map);
            }
            if let Ok(params) = json_body::<PageParams>(&body) {
                let _ = params.limit();
            }
        }
    }
});
