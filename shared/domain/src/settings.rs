//! A channel's settings and the seed's rules for them. A `ChannelSettings` that exists is valid on its
//! own; rules that need the tenant's data (does that employee exist?) are checked by the admin use case.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ChatbotId, EmployeeId, GroupId, RuleViolation};

pub const MAX_AUTO_REPLIES: usize = 10;
pub const MAX_AUTO_REPLY_CHARS: usize = 4096;
pub const MAX_AUTO_REPLY_DELAY_SECONDS: u64 = 7 * 24 * 3600;
pub const MAX_AUTO_CLOSE_HOURS: u32 = 24 * 365;
pub const MAX_AUTO_CLOSE_DAYS: u32 = 365;

/// Who handles the channel's dialogs in working hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Handling {
    Employee { employee_id: EmployeeId },
    Group { group_id: GroupId },
    Chatbot { chatbot_id: ChatbotId },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoReply {
    pub text: String,
    pub delay_seconds: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffHours {
    pub chatbot_id: Option<ChatbotId>,
    pub auto_replies: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoCloseUnit {
    Hours,
    Days,
}

/// Close a dialog idle for `after` hours or days; `after` > 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoClose {
    after: u32,
    unit: AutoCloseUnit,
}

impl AutoClose {
    pub fn new(after: u32, unit: AutoCloseUnit) -> Result<Self, RuleViolation> {
        let max = match unit {
            AutoCloseUnit::Hours => MAX_AUTO_CLOSE_HOURS,
            AutoCloseUnit::Days => MAX_AUTO_CLOSE_DAYS,
        };
        if after == 0 || after > max {
            return Err(RuleViolation::new(
                "auto_close_out_of_range",
                "auto_close.after",
                format!("must be greater than zero and at most {max} / должно быть больше нуля"),
            ));
        }
        Ok(Self { after, unit })
    }

    pub fn after(self) -> u32 {
        self.after
    }

    pub fn unit(self) -> AutoCloseUnit {
        self.unit
    }

    pub fn seconds(self) -> u64 {
        let unit = match self.unit {
            AutoCloseUnit::Hours => 3600,
            AutoCloseUnit::Days => 86_400,
        };
        u64::from(self.after) * unit
    }
}

impl Default for AutoClose {
    fn default() -> Self {
        Self { after: 24, unit: AutoCloseUnit::Hours }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSettings {
    pub handling: Option<Handling>,
    pub auto_replies: Vec<AutoReply>,
    pub off_hours: OffHours,
    pub auto_close: AutoClose,
}

impl ChannelSettings {
    /// Validates settings as an admin sent them (a JSON object; omitted sections take defaults).
    /// Type errors are rule violations naming the field too, so the admin sees which one is wrong.
    pub fn from_json(value: &Value) -> Result<Self, RuleViolation> {
        let object = match value {
            Value::Null => return Ok(Self::default()),
            Value::Object(object) => object,
            _ => return Err(invalid_type("settings", "an object")),
        };
        for key in object.keys() {
            if !matches!(key.as_str(), "handling" | "auto_replies" | "off_hours" | "auto_close") {
                return Err(RuleViolation::new(
                    "unknown_setting",
                    format!("settings.{key}"),
                    "is not a setting of a channel",
                ));
            }
        }
        Ok(Self {
            handling: parse_handling(object.get("handling").unwrap_or(&Value::Null))?,
            auto_replies: parse_auto_replies(object.get("auto_replies").unwrap_or(&Value::Null))?,
            off_hours: parse_off_hours(object.get("off_hours").unwrap_or(&Value::Null))?,
            auto_close: parse_auto_close(object.get("auto_close").unwrap_or(&Value::Null))?,
        })
        .and_then(Self::check_exclusive)
    }

    /// The seed: a chatbot and auto-replies outside working hours are mutually exclusive.
    fn check_exclusive(self) -> Result<Self, RuleViolation> {
        if self.off_hours.chatbot_id.is_some() && self.off_hours.auto_replies {
            return Err(RuleViolation::new(
                "off_hours_exclusive",
                "off_hours",
                "a chatbot and auto-replies outside working hours cannot both be on / \
                 чат-бот и автоответы в нерабочее время не могут быть включены одновременно",
            ));
        }
        Ok(self)
    }
}

fn invalid_type(field: &str, expected: &str) -> RuleViolation {
    RuleViolation::new("invalid_type", field, format!("must be {expected}"))
}

fn parse_id<T>(value: &Value, field: &str, parse: fn(&str) -> Option<T>) -> Result<T, RuleViolation> {
    value.as_str().and_then(parse).ok_or_else(|| invalid_type(field, "an id (UUID)"))
}

fn parse_handling(value: &Value) -> Result<Option<Handling>, RuleViolation> {
    let object = match value {
        Value::Null => return Ok(None),
        Value::Object(object) => object,
        _ => return Err(invalid_type("handling", "an object")),
    };
    let present: Vec<&str> = ["employee_id", "group_id", "chatbot_id"]
        .into_iter()
        .filter(|key| object.get(*key).is_some_and(|v| !v.is_null()))
        .collect();
    match present.as_slice() {
        ["employee_id"] => Ok(Some(Handling::Employee {
            employee_id: parse_id(&object["employee_id"], "handling.employee_id", EmployeeId::parse)?,
        })),
        ["group_id"] => Ok(Some(Handling::Group {
            group_id: parse_id(&object["group_id"], "handling.group_id", GroupId::parse)?,
        })),
        ["chatbot_id"] => Ok(Some(Handling::Chatbot {
            chatbot_id: parse_id(&object["chatbot_id"], "handling.chatbot_id", ChatbotId::parse)?,
        })),
        [] => Ok(None),
        _ => Err(RuleViolation::new(
            "handling_ambiguous",
            "handling",
            "name exactly one of employee_id, group_id, chatbot_id",
        )),
    }
}

fn parse_auto_replies(value: &Value) -> Result<Vec<AutoReply>, RuleViolation> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(invalid_type("auto_replies", "a list")),
    };
    if items.len() > MAX_AUTO_REPLIES {
        return Err(RuleViolation::new(
            "too_many_auto_replies",
            "auto_replies",
            format!("at most {MAX_AUTO_REPLIES} auto-replies"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let text_field = format!("auto_replies[{i}].text");
            let delay_field = format!("auto_replies[{i}].delay_seconds");
            let text = item
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_type(&text_field, "a text"))?;
            if text.trim().is_empty() {
                return Err(RuleViolation::new(
                    "auto_reply_text_empty",
                    text_field,
                    "must not be empty / текст не может быть пустым",
                ));
            }
            if text.chars().count() > MAX_AUTO_REPLY_CHARS {
                return Err(RuleViolation::new(
                    "auto_reply_text_too_long",
                    text_field,
                    format!("at most {MAX_AUTO_REPLY_CHARS} characters"),
                ));
            }
            let delay = item.get("delay_seconds").ok_or_else(|| invalid_type(&delay_field, "a number"))?;
            let delay_seconds = match delay.as_u64() {
                Some(0) | None if delay.is_number() => {
                    return Err(RuleViolation::new(
                        "auto_reply_delay_not_positive",
                        delay_field,
                        "must be greater than zero / задержка должна быть больше нуля",
                    ));
                }
                Some(d) if d > MAX_AUTO_REPLY_DELAY_SECONDS => {
                    return Err(RuleViolation::new(
                        "auto_reply_delay_too_long",
                        delay_field,
                        format!("at most {MAX_AUTO_REPLY_DELAY_SECONDS} seconds"),
                    ));
                }
                Some(d) => d,
                None => return Err(invalid_type(&delay_field, "a whole number of seconds")),
            };
            Ok(AutoReply { text: text.to_owned(), delay_seconds })
        })
        .collect()
}

fn parse_off_hours(value: &Value) -> Result<OffHours, RuleViolation> {
    let object = match value {
        Value::Null => return Ok(OffHours::default()),
        Value::Object(object) => object,
        _ => return Err(invalid_type("off_hours", "an object")),
    };
    let chatbot_id = match object.get("chatbot_id") {
        None | Some(Value::Null) => None,
        Some(id) => Some(parse_id(id, "off_hours.chatbot_id", ChatbotId::parse)?),
    };
    let auto_replies = match object.get("auto_replies") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(on)) => *on,
        Some(_) => return Err(invalid_type("off_hours.auto_replies", "true or false")),
    };
    Ok(OffHours { chatbot_id, auto_replies })
}

fn parse_auto_close(value: &Value) -> Result<AutoClose, RuleViolation> {
    let object = match value {
        Value::Null => return Ok(AutoClose::default()),
        Value::Object(object) => object,
        _ => return Err(invalid_type("auto_close", "an object")),
    };
    let unit = match object.get("unit").and_then(Value::as_str) {
        Some("hours") => AutoCloseUnit::Hours,
        Some("days") => AutoCloseUnit::Days,
        _ => return Err(invalid_type("auto_close.unit", "\"hours\" or \"days\"")),
    };
    let after = object.get("after").ok_or_else(|| invalid_type("auto_close.after", "a number"))?;
    match after.as_i64() {
        Some(n) => AutoClose::new(u32::try_from(n.max(0)).unwrap_or(u32::MAX), unit),
        None if after.is_number() => AutoClose::new(0, unit),
        None => Err(invalid_type("auto_close.after", "a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(value: Value) -> String {
        ChannelSettings::from_json(&value).expect_err("must be rejected").field
    }

    #[test]
    fn omitted_sections_take_defaults() {
        let settings = ChannelSettings::from_json(&json!({})).expect("valid");
        assert_eq!(settings, ChannelSettings::default());
        assert_eq!(settings.auto_close.seconds(), 24 * 3600);
    }

    #[test]
    fn accepts_the_documented_shape() {
        let employee = EmployeeId::generate();
        let settings = ChannelSettings::from_json(&json!({
            "handling": {"employee_id": employee.as_str()},
            "auto_replies": [{"text": "Hi", "delay_seconds": 60}, {"text": "Still here", "delay_seconds": 600}],
            "off_hours": {"chatbot_id": null, "auto_replies": true},
            "auto_close": {"after": 2, "unit": "days"}
        }))
        .expect("valid");
        assert_eq!(settings.handling, Some(Handling::Employee { employee_id: employee }));
        assert_eq!(settings.auto_replies.len(), 2);
        assert_eq!(settings.auto_close.seconds(), 2 * 86_400);
        let round_trip: ChannelSettings =
            serde_json::from_value(serde_json::to_value(&settings).expect("serializes")).expect("parses");
        assert_eq!(round_trip, settings);
    }

    #[test]
    fn every_rule_names_its_field() {
        assert_eq!(field_of(json!({"auto_close": {"after": 0, "unit": "hours"}})), "auto_close.after");
        assert_eq!(field_of(json!({"auto_close": {"after": -3, "unit": "days"}})), "auto_close.after");
        assert_eq!(field_of(json!({"auto_close": {"after": 1.5, "unit": "days"}})), "auto_close.after");
        assert_eq!(field_of(json!({"auto_close": {"after": 3, "unit": "weeks"}})), "auto_close.unit");
        assert_eq!(
            field_of(
                json!({"auto_replies": [{"text": "ok", "delay_seconds": 5}, {"text": " ", "delay_seconds": 5}]})
            ),
            "auto_replies[1].text"
        );
        assert_eq!(
            field_of(json!({"auto_replies": [{"text": "a", "delay_seconds": 0}]})),
            "auto_replies[0].delay_seconds"
        );
        assert_eq!(
            field_of(json!({"auto_replies": [{"text": "a", "delay_seconds": -1}]})),
            "auto_replies[0].delay_seconds"
        );
        assert_eq!(field_of(json!({"auto_replies": [{"text": "a"}]})), "auto_replies[0].delay_seconds");
        let chatbot = ChatbotId::generate();
        assert_eq!(
            field_of(json!({"off_hours": {"chatbot_id": chatbot.as_str(), "auto_replies": true}})),
            "off_hours"
        );
        assert_eq!(field_of(json!({"handling": {"employee_id": "x"}})), "handling.employee_id");
        assert_eq!(field_of(json!({"bogus": 1})), "settings.bogus");
        let too_many: Vec<Value> =
            (0..=MAX_AUTO_REPLIES).map(|_| json!({"text": "a", "delay_seconds": 1})).collect();
        assert_eq!(field_of(json!({ "auto_replies": too_many })), "auto_replies");
    }
}
