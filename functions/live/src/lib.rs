//! The live Lambda's handler, separate from `main` so tests feed it the events Lambda delivers. One function
//! serves the WebSocket API (template.yaml's `LiveApi`) and the bus (`usecases::live` says who is told what):
//!
//! - The `$connect` route's **REQUEST authorizer** (`"type": "REQUEST"`, `methodArn`, the query's `ticket`):
//!   redeems the one-time ticket (`live::redeem_ticket`). A good ticket gets an IAM policy allowing
//!   `execute-api:Invoke` on `methodArn`, with the principal in its `context` (`tenant_id`, `role`,
//!   `employee_id`, empty for an admin), which API Gateway hands to the `$connect` route. A ticket unknown,
//!   used or expired gets the same policy denying it (API Gateway answers 403 and opens nothing).
//! - The **routes** (`requestContext.eventType`): `CONNECT` keeps the connection for the authorizer's
//!   principal (`live::connected`), `DISCONNECT` forgets it (`live::disconnected`), a client's message
//!   (`$default`, `MESSAGE`) is ignored: the page only listens. Each is answered `{"statusCode": 200}`.
//! - An **event of the omnichat bus** (source `omnichat`, the domain event in `detail`): pushed to every open
//!   connection of its tenant that may see it (`live::fan_out`); the connections API Gateway answers 410 for
//!   are forgotten. Answers the counts.
//!
//! Anything else is an error naming what it was. A push that fails is not retried (the page catches up when
//! it reconnects); a store failure is an error, so Lambda retries the event.

use omnichat::domain::{EmployeeId, TenantId};
use omnichat::ports::events::{DomainEvent, EVENT_SOURCE, EVENT_VERSION};
use omnichat::ports::live::LiveConnections;
use omnichat::usecases::Context;
use omnichat::usecases::auth::{Principal, Role};
use omnichat::usecases::live;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("not an event the live function handles: {0}")]
    Unknown(String),
    #[error("the {what} is not readable: {reason}")]
    Malformed { what: String, reason: String },
    #[error(transparent)]
    UseCase(#[from] omnichat::Error),
}

/// What Lambda records for a failed invocation (the message names no ticket and no secret).
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Unknown(_) => "UnknownEvent",
            HandlerError::Malformed { .. } => "MalformedEvent",
            HandlerError::UseCase(_) => "LiveFailed",
        };
        tracing::error!(%error, "live invocation failed");
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: error.to_string() }
    }
}

/// One invocation, as read from its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// The `$connect` route's authorizer: the ticket (empty when the query has none) and the ARN to allow.
    Authorize { method_arn: String, ticket: String },
    /// `$connect`, authorized: the connection and the principal the authorizer put in its context (`None`
    /// when the context does not name one, which a route without the authorizer would give).
    Connect { connection_id: String, principal: Option<Principal> },
    /// `$disconnect`.
    Disconnect { connection_id: String },
    /// A message from the page (`$default`): nothing is expected of it.
    Message { connection_id: String },
    /// A domain event of the omnichat bus.
    Event { detail_type: String, event: DomainEvent },
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Reads what an event is (no I/O).
pub fn classify(event: &Value) -> Result<Invocation, HandlerError> {
    // The authorizer's event also carries a requestContext with `eventType: CONNECT`: it goes first.
    if text(event, "/type") == Some("REQUEST")
        && let Some(method_arn) = text(event, "/methodArn")
    {
        let ticket = text(event, "/queryStringParameters/ticket").unwrap_or_default();
        return Ok(Invocation::Authorize { method_arn: method_arn.to_owned(), ticket: ticket.to_owned() });
    }
    if let Some(event_type) = text(event, "/requestContext/eventType") {
        let connection_id = text(event, "/requestContext/connectionId")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| HandlerError::Malformed {
                what: format!("WebSocket {event_type} event"),
                reason: "no requestContext.connectionId".into(),
            })?
            .to_owned();
        return match event_type {
            "CONNECT" => {
                let principal = event.pointer("/requestContext/authorizer").and_then(principal_of);
                Ok(Invocation::Connect { connection_id, principal })
            }
            "DISCONNECT" => Ok(Invocation::Disconnect { connection_id }),
            "MESSAGE" => Ok(Invocation::Message { connection_id }),
            other => Err(HandlerError::Unknown(format!("a WebSocket event of type {other:?}"))),
        };
    }
    let source = text(event, "/source");
    let detail_type = text(event, "/detail-type");
    match (source, detail_type) {
        (Some(EVENT_SOURCE), Some(detail_type)) => {
            let detail = event.get("detail").cloned().unwrap_or(Value::Null);
            let (version, domain) =
                DomainEvent::from_detail(detail).map_err(|error| HandlerError::Malformed {
                    what: format!("{detail_type} event's detail"),
                    reason: error.to_string(),
                })?;
            if version != EVENT_VERSION {
                tracing::warn!(version, detail_type, "event of another version; read as far as it matches");
            }
            Ok(Invocation::Event { detail_type: detail_type.to_owned(), event: domain })
        }
        (Some(source), Some(detail_type)) => {
            Err(HandlerError::Unknown(format!("an EventBridge event {detail_type:?} from {source:?}")))
        }
        _ => {
            let keys: Vec<&str> =
                event.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
            Err(HandlerError::Unknown(format!("an event with the keys {keys:?}")))
        }
    }
}

/// The principal in an authorizer's context (what [`policy`] put there), if it names a whole one.
fn principal_of(context: &Value) -> Option<Principal> {
    let tenant_id = TenantId::parse(text(context, "/tenant_id")?)?;
    let role: Role = serde_json::from_value(context.get("role")?.clone()).ok()?;
    let employee_id = match text(context, "/employee_id").unwrap_or_default() {
        "" => None,
        id => Some(EmployeeId::parse(id)?),
    };
    if role == Role::Employee && employee_id.is_none() {
        return None;
    }
    Some(Principal { tenant_id, role, employee_id })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Employee => "employee",
    }
}

/// The authorizer's answer: `execute-api:Invoke` on `method_arn` allowed for `principal`, or denied when
/// there is none. The context's values are strings (API Gateway takes strings, numbers and booleans only).
pub fn policy(method_arn: &str, principal: Option<&Principal>) -> Value {
    let (principal_id, effect, context) = match principal {
        Some(principal) => {
            let id = principal.employee_id.as_ref().map_or(principal.tenant_id.as_str(), EmployeeId::as_str);
            let context = json!({
                "tenant_id": principal.tenant_id,
                "role": role_name(principal.role),
                "employee_id": principal.employee_id.as_ref().map_or("", EmployeeId::as_str),
            });
            (id.to_owned(), "Allow", Some(context))
        }
        None => ("anonymous".to_owned(), "Deny", None),
    };
    let mut answer = json!({
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}],
        },
    });
    if let Some(context) = context {
        answer["context"] = context;
    }
    answer
}

fn status(code: u16) -> Value {
    json!({"statusCode": code})
}

/// Handles one invocation and answers what API Gateway or EventBridge expects.
pub async fn handle(
    ctx: &Context,
    connections: &dyn LiveConnections,
    event: Value,
) -> Result<Value, HandlerError> {
    match classify(&event)? {
        Invocation::Authorize { method_arn, ticket } => match live::redeem_ticket(ctx, &ticket).await {
            Ok(principal) => Ok(policy(&method_arn, Some(&principal))),
            Err(omnichat::Error::Unauthorized) => {
                tracing::info!("live ticket refused (unknown, used or expired)");
                Ok(policy(&method_arn, None))
            }
            Err(other) => Err(other.into()),
        },
        Invocation::Connect { connection_id, principal: Some(principal) } => {
            live::connected(ctx, &connection_id, &principal).await?;
            Ok(status(200))
        }
        Invocation::Connect { connection_id, principal: None } => {
            tracing::warn!(connection = %connection_id, "$connect without the authorizer's principal; refused");
            Ok(status(403))
        }
        Invocation::Disconnect { connection_id } => {
            live::disconnected(ctx, &connection_id).await?;
            Ok(status(200))
        }
        Invocation::Message { connection_id } => {
            tracing::debug!(connection = %connection_id, "a message from a page; ignored");
            Ok(status(200))
        }
        Invocation::Event { detail_type, event } => {
            let report = live::fan_out(ctx, connections, &event).await?;
            tracing::info!(
                detail_type,
                pushed = report.pushed,
                skipped = report.skipped,
                dropped = report.dropped,
                failed = report.failed,
                "live push"
            );
            Ok(json!({
                "pushed": report.pushed,
                "skipped": report.skipped,
                "dropped": report.dropped,
                "failed": report.failed,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTHORIZER: &str = include_str!("../events/authorizer.json");
    const CONNECT: &str = include_str!("../events/connect.json");
    const DISCONNECT: &str = include_str!("../events/disconnect.json");
    const EVENTBRIDGE: &str = include_str!("../events/eventbridge.json");

    fn fixture(text: &str) -> Value {
        serde_json::from_str(text).expect("fixture")
    }

    #[test]
    fn the_authorizers_event_is_told_from_the_connect_route() {
        let Invocation::Authorize { method_arn, ticket } = classify(&fixture(AUTHORIZER)).expect("read")
        else {
            panic!("not the authorizer")
        };
        assert!(method_arn.ends_with("/live/$connect"), "{method_arn}");
        assert_eq!(ticket, "TICKET");
        let mut no_ticket = fixture(AUTHORIZER);
        no_ticket["queryStringParameters"] = Value::Null;
        assert!(
            matches!(classify(&no_ticket), Ok(Invocation::Authorize { ticket, .. }) if ticket.is_empty())
        );

        let Invocation::Connect { connection_id, principal } = classify(&fixture(CONNECT)).expect("read")
        else {
            panic!("not the connect route")
        };
        assert_eq!(connection_id, "L0SM9cOFvHcCIhw=");
        let principal = principal.expect("the authorizer's principal");
        assert_eq!(principal.role, Role::Employee);
        assert_eq!(principal.tenant_id.as_str(), "019b7a2e-0000-7000-8000-000000000001");
        assert_eq!(
            principal.employee_id.as_ref().map(EmployeeId::as_str),
            Some("019b7a2e-0000-7000-8000-000000000009")
        );

        assert_eq!(
            classify(&fixture(DISCONNECT)).expect("read"),
            Invocation::Disconnect { connection_id: "L0SM9cOFvHcCIhw=".into() }
        );
        let mut message = fixture(DISCONNECT);
        message["requestContext"]["eventType"] = json!("MESSAGE");
        message["requestContext"]["routeKey"] = json!("$default");
        assert!(matches!(classify(&message), Ok(Invocation::Message { .. })));

        let Invocation::Event { detail_type, event } = classify(&fixture(EVENTBRIDGE)).expect("read") else {
            panic!("not a bus event")
        };
        assert_eq!((detail_type.as_str(), event.detail_type()), ("DialogAssigned", "DialogAssigned"));
    }

    #[test]
    fn a_connect_whose_context_names_no_whole_principal_has_none() {
        let mut event = fixture(CONNECT);
        event["requestContext"]["authorizer"]["employee_id"] = json!("");
        assert!(
            matches!(classify(&event), Ok(Invocation::Connect { principal: None, .. })),
            "an employee needs an id"
        );
        event["requestContext"]["authorizer"]["role"] = json!("admin");
        let Ok(Invocation::Connect { principal: Some(admin), .. }) = classify(&event) else {
            panic!("an admin")
        };
        assert_eq!((admin.role, admin.employee_id), (Role::Admin, None));
        event["requestContext"]["authorizer"]["role"] = json!("operator");
        assert!(matches!(classify(&event), Ok(Invocation::Connect { principal: None, .. })));
        event["requestContext"].as_object_mut().expect("object").remove("authorizer");
        assert!(matches!(classify(&event), Ok(Invocation::Connect { principal: None, .. })));
    }

    #[test]
    fn anything_else_is_an_error_naming_it() {
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        let error = classify(&scheduled).expect_err("not ours");
        assert!(error.to_string().contains("Scheduled Event"), "{error}");
        let error = classify(&json!({"Records": []})).expect_err("not ours");
        assert!(error.to_string().contains("Records"), "{error}");
        let mut no_id = fixture(CONNECT);
        no_id["requestContext"]["connectionId"] = json!("");
        assert!(matches!(classify(&no_id), Err(HandlerError::Malformed { .. })));
        let mut bad_detail = fixture(EVENTBRIDGE);
        bad_detail["detail"] = json!({"type": "no_such_event"});
        assert!(matches!(classify(&bad_detail), Err(HandlerError::Malformed { .. })));
    }

    #[test]
    fn the_policy_allows_the_method_for_the_principal_or_denies_it() {
        let arn = "arn:aws:execute-api:eu-central-1:123456789012:abcdef123/live/$connect";
        let employee = Principal {
            tenant_id: TenantId::generate(),
            role: Role::Employee,
            employee_id: Some(EmployeeId::generate()),
        };
        let allowed = policy(arn, Some(&employee));
        let employee_id = employee.employee_id.clone().expect("id");
        assert_eq!(
            allowed,
            json!({
                "principalId": employee_id,
                "policyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": arn}],
                },
                "context": {"tenant_id": employee.tenant_id, "role": "employee", "employee_id": employee_id},
            })
        );
        let admin = Principal { tenant_id: TenantId::generate(), role: Role::Admin, employee_id: None };
        let allowed = policy(arn, Some(&admin));
        assert_eq!(allowed["principalId"], json!(admin.tenant_id));
        assert_eq!(
            allowed["context"],
            json!({"tenant_id": admin.tenant_id, "role": "admin", "employee_id": ""})
        );
        // What the policy's context gives the $connect route reads back as the same principal.
        assert_eq!(principal_of(&allowed["context"]), Some(admin));
        assert_eq!(principal_of(&policy(arn, Some(&employee))["context"]), Some(employee));

        let denied = policy(arn, None);
        assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], json!("Deny"));
        assert_eq!(denied["policyDocument"]["Statement"][0]["Resource"], json!(arn));
        assert!(denied.get("context").is_none(), "{denied}");
    }
}
