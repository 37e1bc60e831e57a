//! The contact center's people: employees, the groups that share dialogs among them, and the chatbots a
//! channel can hand dialogs to. What an admin sends is validated here (`*Changes::from_json`); rules that
//! need the tenant's data (is that member an employee of the tenant?) are checked by the use case.

use std::collections::HashSet;
use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ChatbotId, EmployeeId, GroupId, RuleViolation, TenantId};

pub const MAX_NAME_CHARS: usize = 100;
/// More concurrent dialogs than one person can follow is a typo, not a setting.
pub const MAX_DIALOGS_LIMIT: u32 = 100;
pub const DEFAULT_MAX_DIALOGS: u32 = 5;
pub const MAX_GROUP_MEMBERS: usize = 200;
/// How long a dialog may wait for a member to take it: a day at most.
pub const MAX_WAIT_SECONDS: u32 = 24 * 3600;
pub const DEFAULT_WAIT_SECONDS: u32 = 60;
pub const MAX_WEBHOOK_URL_CHARS: usize = 2048;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmployeeStatus {
    Online,
    Away,
    #[default]
    Offline,
}

impl EmployeeStatus {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "online" => Some(Self::Online),
            "away" => Some(Self::Away),
            "offline" => Some(Self::Offline),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Employee {
    pub id: EmployeeId,
    pub tenant_id: TenantId,
    pub name: String,
    pub status: EmployeeStatus,
    /// How many dialogs the employee handles at once; routing skips an employee at capacity.
    pub max_dialogs: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// How a group shares its dialogs among its members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// Each dialog to the next member in order, wrapping around.
    #[default]
    RoundRobin,
    /// To the member with the fewest open dialogs.
    LeastBusy,
    /// Offered to every available member; the first to take it has it.
    AllAtOnce,
}

impl Distribution {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "round_robin" => Some(Self::RoundRobin),
            "least_busy" => Some(Self::LeastBusy),
            "all_at_once" => Some(Self::AllAtOnce),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    pub tenant_id: TenantId,
    pub name: String,
    /// Employees of the tenant, in the order distribution walks them; no duplicates.
    pub members: Vec<EmployeeId>,
    pub distribution: Distribution,
    /// How long a dialog waits for a member before it goes to the next one (or back to the queue).
    pub wait_seconds: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chatbot {
    pub id: ChatbotId,
    pub tenant_id: TenantId,
    pub name: String,
    /// Where the bot service takes the dialog's messages (checked by `check_webhook_url`).
    pub webhook_url: String,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What an admin sends for an employee: `None` keeps the current value (or takes the default on create).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmployeeChanges {
    pub name: Option<String>,
    pub status: Option<EmployeeStatus>,
    pub max_dialogs: Option<u32>,
}

impl EmployeeChanges {
    pub fn from_json(value: &Value) -> Result<Self, RuleViolation> {
        let object = fields_of(value, &["name", "status", "max_dialogs"])?;
        Ok(Self {
            name: present(object, "name").map(|v| parse_name(v, "name")).transpose()?,
            status: present(object, "status")
                .map(|v| {
                    v.as_str().and_then(EmployeeStatus::parse).ok_or_else(|| {
                        RuleViolation::new("invalid_status", "status", "must be online, away or offline")
                    })
                })
                .transpose()?,
            max_dialogs: present(object, "max_dialogs")
                .map(|v| bounded_number(v, "max_dialogs", MAX_DIALOGS_LIMIT))
                .transpose()?,
        })
    }

    /// Which fields other than `status` it changes (an employee key may change only its own status).
    pub fn beyond_status(&self) -> Option<&'static str> {
        if self.name.is_some() {
            Some("name")
        } else if self.max_dialogs.is_some() {
            Some("max_dialogs")
        } else {
            None
        }
    }
}

impl Employee {
    pub fn create(
        tenant_id: TenantId,
        changes: EmployeeChanges,
        now: Timestamp,
    ) -> Result<Self, RuleViolation> {
        Ok(Self {
            id: EmployeeId::generate(),
            tenant_id,
            name: changes.name.ok_or_else(|| required("name"))?,
            status: changes.status.unwrap_or_default(),
            max_dialogs: changes.max_dialogs.unwrap_or(DEFAULT_MAX_DIALOGS),
            created_at: now,
            updated_at: now,
        })
    }

    pub fn apply(&mut self, changes: EmployeeChanges, now: Timestamp) {
        if let Some(name) = changes.name {
            self.name = name;
        }
        if let Some(status) = changes.status {
            self.status = status;
        }
        if let Some(max_dialogs) = changes.max_dialogs {
            self.max_dialogs = max_dialogs;
        }
        self.updated_at = now.max(self.updated_at);
    }
}

/// What an admin sends for a group: `None` keeps the current value (or takes the default on create).
/// `members` replaces the whole list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupChanges {
    pub name: Option<String>,
    pub members: Option<Vec<EmployeeId>>,
    pub distribution: Option<Distribution>,
    pub wait_seconds: Option<u32>,
}

impl GroupChanges {
    pub fn from_json(value: &Value) -> Result<Self, RuleViolation> {
        let object = fields_of(value, &["name", "members", "distribution", "wait_seconds"])?;
        Ok(Self {
            name: present(object, "name").map(|v| parse_name(v, "name")).transpose()?,
            members: present(object, "members").map(parse_members).transpose()?,
            distribution: present(object, "distribution")
                .map(|v| {
                    v.as_str().and_then(Distribution::parse).ok_or_else(|| {
                        RuleViolation::new(
                            "invalid_distribution",
                            "distribution",
                            "must be round_robin, least_busy or all_at_once",
                        )
                    })
                })
                .transpose()?,
            wait_seconds: present(object, "wait_seconds")
                .map(|v| bounded_number(v, "wait_seconds", MAX_WAIT_SECONDS))
                .transpose()?,
        })
    }
}

impl Group {
    pub fn create(tenant_id: TenantId, changes: GroupChanges, now: Timestamp) -> Result<Self, RuleViolation> {
        Ok(Self {
            id: GroupId::generate(),
            tenant_id,
            name: changes.name.ok_or_else(|| required("name"))?,
            members: changes.members.unwrap_or_default(),
            distribution: changes.distribution.unwrap_or_default(),
            wait_seconds: changes.wait_seconds.unwrap_or(DEFAULT_WAIT_SECONDS),
            created_at: now,
            updated_at: now,
        })
    }

    pub fn apply(&mut self, changes: GroupChanges, now: Timestamp) {
        if let Some(name) = changes.name {
            self.name = name;
        }
        if let Some(members) = changes.members {
            self.members = members;
        }
        if let Some(distribution) = changes.distribution {
            self.distribution = distribution;
        }
        if let Some(wait_seconds) = changes.wait_seconds {
            self.wait_seconds = wait_seconds;
        }
        self.updated_at = now.max(self.updated_at);
    }
}

/// What an admin sends for a chatbot: `None` keeps the current value (or takes the default on create).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatbotChanges {
    pub name: Option<String>,
    pub webhook_url: Option<String>,
    pub enabled: Option<bool>,
}

impl ChatbotChanges {
    pub fn from_json(value: &Value) -> Result<Self, RuleViolation> {
        let object = fields_of(value, &["name", "webhook_url", "enabled"])?;
        Ok(Self {
            name: present(object, "name").map(|v| parse_name(v, "name")).transpose()?,
            webhook_url: present(object, "webhook_url")
                .map(|v| {
                    let url = v.as_str().ok_or_else(|| invalid_type("webhook_url", "a URL"))?;
                    check_webhook_url(url).map(|()| url.to_owned())
                })
                .transpose()?,
            enabled: present(object, "enabled")
                .map(|v| v.as_bool().ok_or_else(|| invalid_type("enabled", "true or false")))
                .transpose()?,
        })
    }
}

impl Chatbot {
    pub fn create(
        tenant_id: TenantId,
        changes: ChatbotChanges,
        now: Timestamp,
    ) -> Result<Self, RuleViolation> {
        let name = changes.name.ok_or_else(|| required("name"))?;
        Ok(Self {
            id: ChatbotId::generate(),
            tenant_id,
            name,
            webhook_url: changes.webhook_url.ok_or_else(|| required("webhook_url"))?,
            enabled: changes.enabled.unwrap_or(true),
            created_at: now,
            updated_at: now,
        })
    }

    pub fn apply(&mut self, changes: ChatbotChanges, now: Timestamp) {
        if let Some(name) = changes.name {
            self.name = name;
        }
        if let Some(webhook_url) = changes.webhook_url {
            self.webhook_url = webhook_url;
        }
        if let Some(enabled) = changes.enabled {
            self.enabled = enabled;
        }
        self.updated_at = now.max(self.updated_at);
    }
}

/// A chatbot's webhook: HTTPS, or plain HTTP only to this machine (a local bot in development and tests).
/// No credentials in the URL: the API shows it back, and it is not a secret store.
pub fn check_webhook_url(raw: &str) -> Result<(), RuleViolation> {
    let bad = |message: &str| RuleViolation::new("invalid_webhook_url", "webhook_url", message);
    if raw.chars().count() > MAX_WEBHOOK_URL_CHARS {
        return Err(bad(&format!("at most {MAX_WEBHOOK_URL_CHARS} characters")));
    }
    let url = url::Url::parse(raw.trim()).map_err(|_| bad("must be an absolute https:// URL"))?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("must name a host"))?;
    // The URL parser has normalized the host: IPv6 in brackets, IPv4 in dotted decimal, names lowercase.
    let loopback = match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(bad("must use https (plain http only for localhost, 127.0.0.0/8 and ::1)")),
        _ => Err(bad("must be an absolute https:// URL")),
    }
}

fn fields_of<'a>(value: &'a Value, known: &[&str]) -> Result<&'a Map<String, Value>, RuleViolation> {
    let object = value.as_object().ok_or_else(|| invalid_type("body", "a JSON object"))?;
    for key in object.keys() {
        // `id` is ignored, so what GET answers can be sent back with PUT.
        if key != "id" && !known.contains(&key.as_str()) {
            return Err(RuleViolation::new("unknown_field", key.clone(), "is not a field of this resource"));
        }
    }
    Ok(object)
}

/// A field that was sent (`null` counts as not sent).
fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn required(field: &str) -> RuleViolation {
    RuleViolation::new("required", field, "is required")
}

fn invalid_type(field: &str, expected: &str) -> RuleViolation {
    RuleViolation::new("invalid_type", field, format!("must be {expected}"))
}

fn parse_name(value: &Value, field: &str) -> Result<String, RuleViolation> {
    let name = value.as_str().ok_or_else(|| invalid_type(field, "a text"))?.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(RuleViolation::new("invalid_name", field, format!("1 to {MAX_NAME_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(RuleViolation::new("invalid_name", field, "must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// A whole number from 1 to `max`.
fn bounded_number(value: &Value, field: &str, max: u32) -> Result<u32, RuleViolation> {
    let out_of_range = || RuleViolation::new("out_of_range", field, format!("must be from 1 to {max}"));
    match value.as_i64() {
        Some(n) => u32::try_from(n).ok().filter(|n| (1..=max).contains(n)).ok_or_else(out_of_range),
        // A fraction or a number beyond i64: a number, but not one we take.
        None if value.is_number() => Err(out_of_range()),
        None => Err(invalid_type(field, "a whole number")),
    }
}

fn parse_members(value: &Value) -> Result<Vec<EmployeeId>, RuleViolation> {
    let items = value.as_array().ok_or_else(|| invalid_type("members", "a list of employee ids"))?;
    if items.len() > MAX_GROUP_MEMBERS {
        return Err(RuleViolation::new(
            "too_many_members",
            "members",
            format!("at most {MAX_GROUP_MEMBERS} members"),
        ));
    }
    let mut seen = HashSet::new();
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("members[{i}]");
            let id = item
                .as_str()
                .and_then(EmployeeId::parse)
                .ok_or_else(|| invalid_type(&field, "an employee id"))?;
            if !seen.insert(id.clone()) {
                return Err(RuleViolation::new(
                    "duplicate_member",
                    field,
                    "is already a member of this group",
                ));
            }
            Ok(id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_767_225_600).expect("valid")
    }

    fn employee_field(value: Value) -> String {
        EmployeeChanges::from_json(&value).expect_err("must be rejected").field
    }

    fn group_field(value: Value) -> String {
        GroupChanges::from_json(&value).expect_err("must be rejected").field
    }

    fn chatbot_field(value: Value) -> String {
        ChatbotChanges::from_json(&value).expect_err("must be rejected").field
    }

    #[test]
    fn an_employee_takes_defaults_and_keeps_what_a_change_omits() {
        let tenant = TenantId::generate();
        let changes = EmployeeChanges::from_json(&json!({"name": "  Anna  "})).expect("valid");
        let mut employee = Employee::create(tenant, changes, now()).expect("valid");
        assert_eq!(employee.name, "Anna");
        assert_eq!(employee.status, EmployeeStatus::Offline);
        assert_eq!(employee.max_dialogs, DEFAULT_MAX_DIALOGS);
        let changes =
            EmployeeChanges::from_json(&json!({"status": "online", "id": "ignored"})).expect("valid");
        assert_eq!(changes.beyond_status(), None);
        employee.apply(changes, now());
        assert_eq!((employee.name.as_str(), employee.status), ("Anna", EmployeeStatus::Online));
        let changes = EmployeeChanges::from_json(&json!({"max_dialogs": MAX_DIALOGS_LIMIT, "name": null}))
            .expect("valid");
        assert_eq!(changes.beyond_status(), Some("max_dialogs"));
        employee.apply(changes, now());
        assert_eq!((employee.name.as_str(), employee.max_dialogs), ("Anna", MAX_DIALOGS_LIMIT));
    }

    #[test]
    fn every_employee_rule_names_its_field() {
        assert_eq!(employee_field(json!([])), "body");
        assert_eq!(employee_field(json!({"name": ""})), "name");
        assert_eq!(employee_field(json!({"name": "   "})), "name");
        assert_eq!(employee_field(json!({"name": "x".repeat(MAX_NAME_CHARS + 1)})), "name");
        assert_eq!(employee_field(json!({"name": "a\u{0007}b"})), "name");
        assert_eq!(employee_field(json!({"name": 5})), "name");
        assert_eq!(employee_field(json!({"status": "busy"})), "status");
        assert_eq!(employee_field(json!({"status": true})), "status");
        assert_eq!(employee_field(json!({"max_dialogs": 0})), "max_dialogs");
        assert_eq!(employee_field(json!({"max_dialogs": -1})), "max_dialogs");
        assert_eq!(employee_field(json!({"max_dialogs": MAX_DIALOGS_LIMIT + 1})), "max_dialogs");
        assert_eq!(employee_field(json!({"max_dialogs": 2.5})), "max_dialogs");
        assert_eq!(employee_field(json!({"max_dialogs": "3"})), "max_dialogs");
        assert_eq!(employee_field(json!({"nickname": "x"})), "nickname");
        let missing_name = EmployeeChanges::from_json(&json!({"status": "online"})).expect("valid");
        let error =
            Employee::create(TenantId::generate(), missing_name, now()).expect_err("name is required");
        assert_eq!((error.field.as_str(), error.code), ("name", "required"));
    }

    #[test]
    fn a_group_keeps_its_members_in_order() {
        let members: Vec<EmployeeId> = (0..3).map(|_| EmployeeId::generate()).collect();
        let reversed: Vec<&str> = members.iter().rev().map(EmployeeId::as_str).collect();
        let changes = GroupChanges::from_json(&json!({"name": "Sales", "members": reversed})).expect("valid");
        let group = Group::create(TenantId::generate(), changes, now()).expect("valid");
        assert_eq!(group.members, members.into_iter().rev().collect::<Vec<_>>());
        assert_eq!(group.distribution, Distribution::RoundRobin);
        assert_eq!(group.wait_seconds, DEFAULT_WAIT_SECONDS);
        let changes =
            GroupChanges::from_json(&json!({"distribution": "all_at_once", "wait_seconds": 86_400}))
                .expect("valid");
        assert_eq!(changes.distribution, Some(Distribution::AllAtOnce));
        assert_eq!(changes.wait_seconds, Some(MAX_WAIT_SECONDS));
        let json = serde_json::to_value(Distribution::LeastBusy).expect("serializes");
        assert_eq!(json, "least_busy");
    }

    #[test]
    fn every_group_rule_names_its_field() {
        let a = EmployeeId::generate();
        let b = EmployeeId::generate();
        assert_eq!(group_field(json!({"name": ""})), "name");
        assert_eq!(group_field(json!({"members": "x"})), "members");
        assert_eq!(group_field(json!({"members": [a.as_str(), b.as_str(), a.as_str()]})), "members[2]");
        assert_eq!(group_field(json!({"members": [a.as_str(), "not-an-id"]})), "members[1]");
        assert_eq!(group_field(json!({"members": [7]})), "members[0]");
        let too_many: Vec<String> =
            (0..=MAX_GROUP_MEMBERS).map(|_| EmployeeId::generate().to_string()).collect();
        assert_eq!(group_field(json!({ "members": too_many })), "members");
        assert_eq!(group_field(json!({"distribution": "random"})), "distribution");
        assert_eq!(group_field(json!({"wait_seconds": 0})), "wait_seconds");
        assert_eq!(group_field(json!({"wait_seconds": -5})), "wait_seconds");
        assert_eq!(group_field(json!({"wait_seconds": MAX_WAIT_SECONDS + 1})), "wait_seconds");
        assert_eq!(group_field(json!({"wait_seconds": "60"})), "wait_seconds");
        assert_eq!(group_field(json!({"policy": "x"})), "policy");
        let no_name = GroupChanges::from_json(&json!({})).expect("valid");
        let error = Group::create(TenantId::generate(), no_name, now()).expect_err("name is required");
        assert_eq!(error.field, "name");
    }

    #[test]
    fn a_chatbot_is_enabled_unless_told_otherwise() {
        let changes = ChatbotChanges::from_json(
            &json!({"name": "Night bot", "webhook_url": "https://bot.example/hook"}),
        )
        .expect("valid");
        let mut chatbot = Chatbot::create(TenantId::generate(), changes, now()).expect("valid");
        assert!(chatbot.enabled);
        chatbot.apply(ChatbotChanges::from_json(&json!({"enabled": false})).expect("valid"), now());
        assert!(!chatbot.enabled);
        assert_eq!(chatbot.webhook_url, "https://bot.example/hook");
        let error = Chatbot::create(
            TenantId::generate(),
            ChatbotChanges::from_json(&json!({"name": "x"})).expect("valid"),
            now(),
        )
        .expect_err("a webhook is required");
        assert_eq!(error.field, "webhook_url");
    }

    #[test]
    fn every_chatbot_rule_names_its_field() {
        assert_eq!(chatbot_field(json!({"name": ""})), "name");
        assert_eq!(chatbot_field(json!({"enabled": "yes"})), "enabled");
        assert_eq!(chatbot_field(json!({"webhook_url": 1})), "webhook_url");
        assert_eq!(chatbot_field(json!({"token": "x"})), "token");
        for bad in [
            "http://bot.example/hook",
            "ftp://bot.example/hook",
            "bot.example/hook",
            "https://",
            "https://user:pass@bot.example/hook",
            "http://128.0.0.1/hook",
            "http://localhost.evil.example/hook",
            "http://[::2]/hook",
            "",
        ] {
            assert_eq!(chatbot_field(json!({ "webhook_url": bad })), "webhook_url", "{bad}");
        }
        let long = format!("https://bot.example/{}", "a".repeat(MAX_WEBHOOK_URL_CHARS));
        assert_eq!(chatbot_field(json!({ "webhook_url": long })), "webhook_url");
    }

    #[test]
    fn plain_http_is_only_for_this_machine() {
        for good in [
            "https://bot.example/hook?x=1",
            "https://10.0.0.5:8443/hook",
            "http://localhost:8080/hook",
            "http://LOCALHOST/hook",
            "http://127.0.0.1:9000/hook",
            "http://127.10.20.30/hook",
            "http://[::1]:9000/hook",
        ] {
            assert_eq!(check_webhook_url(good), Ok(()), "{good}");
        }
    }
}
