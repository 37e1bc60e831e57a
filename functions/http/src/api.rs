//! The REST API under `/v1` (API.md): authentication, JSON bodies and pages here; rules in the use cases.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use omnichat::domain::{Channel, ChannelSettings, DialogStatus, EmployeeId, Provider};
use omnichat::usecases::auth::{self, Principal};
use omnichat::usecases::channels::{self, NewChannel};
use omnichat::usecases::dialogs::{self, DialogFilter};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiError;

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenant", get(get_tenant))
        .route("/v1/channels", get(list_channels).post(create_channel))
        .route("/v1/channels/{id}", get(get_channel))
        .route("/v1/dialogs", get(list_dialogs))
        .route("/v1/dialogs/{id}", get(get_dialog))
        .route("/v1/dialogs/{id}/messages", get(list_messages))
}

/// The caller, from `Authorization: Bearer <key>`.
async fn caller(ctx: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    Ok(auth::authenticate(ctx, bearer).await?)
}

/// A JSON body, or 400 with our error body (not axum's plain-text rejection).
pub fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request("malformed_json", format!("the body is not valid JSON for this route: {error}"))
    })
}

#[derive(Debug, Deserialize)]
pub struct PageParams {
    limit: Option<String>,
    page: Option<String>,
}

impl PageParams {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.as_deref() {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
                _ => Err(ApiError {
                    field: Some("limit".into()),
                    ..ApiError::bad_request(
                        "invalid_limit",
                        format!("limit is a number from 1 to {MAX_PAGE_SIZE}"),
                    )
                }),
            },
        }
    }
}

fn page_response<T: serde::Serialize>(items: Vec<T>, next: Option<String>) -> Json<Value> {
    Json(json!({"items": items, "next": next}))
}

async fn get_tenant(State(ctx): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let principal = caller(&ctx, &headers).await?;
    principal.require_admin()?;
    let tenant = auth::get_tenant(&ctx, &principal.tenant_id).await?;
    Ok(Json(json!({"id": tenant.id, "name": tenant.name, "features": tenant.features})))
}

/// A channel as the API shows it: WhatsApp as one kind with its provider, credentials masked.
pub fn channel_json(channel: &Channel) -> Value {
    json!({
        "id": channel.id,
        "provider": channel.provider.kind(),
        "whatsapp_provider": channel.provider.whatsapp_provider(),
        "name": channel.name,
        "account": channel.account,
        "status": channel.status,
        "displaced_by": channel.displaced_by,
        "webhook_url": channel.webhook_url,
        "settings": channel.settings,
        "credentials": channel.credentials_masked,
        "created_at": channel.created_at,
        "updated_at": channel.updated_at,
    })
}

#[derive(Debug, Deserialize)]
struct CreateChannelBody {
    provider: String,
    whatsapp_provider: Option<String>,
    name: Option<String>,
    #[serde(default)]
    credentials: Map<String, Value>,
    #[serde(default)]
    settings: Value,
}

async fn create_channel(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = caller(&ctx, &headers).await?;
    let body: CreateChannelBody = json_body(&body)?;
    let provider =
        Provider::from_kind(&body.provider, body.whatsapp_provider.as_deref()).ok_or_else(|| {
            let field = if body.provider == "whatsapp" { "whatsapp_provider" } else { "provider" };
            ApiError::from(omnichat::Error::rule(
                "unknown_provider",
                field,
                "not a provider this product connects",
            ))
        })?;
    let settings = ChannelSettings::from_json(&body.settings).map_err(omnichat::Error::from)?;
    let new = NewChannel {
        provider,
        name: body.name.unwrap_or_else(|| provider.kind().to_owned()),
        credentials: body.credentials,
        settings,
    };
    let created = channels::create_channel(&ctx, &principal, new).await?;
    let mut channel = channel_json(&created.channel);
    channel["displaced"] = json!(created.displaced);
    Ok((StatusCode::CREATED, Json(channel)).into_response())
}

async fn list_channels(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller(&ctx, &headers).await?;
    let (items, next) =
        channels::list_channels(&ctx, &principal, params.limit()?, params.page.clone()).await?;
    Ok(page_response(items.iter().map(channel_json).collect(), next))
}

async fn get_channel(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller(&ctx, &headers).await?;
    Ok(Json(channel_json(&channels::get_channel(&ctx, &principal, &id).await?)))
}

#[derive(Debug, Deserialize)]
struct DialogParams {
    status: Option<String>,
    assignee: Option<String>,
    #[serde(flatten)]
    page: PageParams,
}

async fn list_dialogs(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<DialogParams>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller(&ctx, &headers).await?;
    let status = match params.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some("open") => Some(DialogStatus::Open),
        Some("assigned") => Some(DialogStatus::Assigned),
        Some("closed") => Some(DialogStatus::Closed),
        Some(_) => {
            return Err(ApiError {
                field: Some("status".into()),
                ..ApiError::bad_request("invalid_status", "status is open, assigned or closed")
            });
        }
    };
    let assignee = match params.assignee.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(EmployeeId::parse(raw).ok_or_else(|| ApiError {
            field: Some("assignee".into()),
            ..ApiError::bad_request("invalid_assignee", "assignee is an employee id")
        })?),
    };
    let filter = DialogFilter { status, assignee };
    let (items, next) =
        dialogs::list_dialogs(&ctx, &principal, &filter, params.page.limit()?, params.page.page.clone())
            .await?;
    Ok(page_response(items, next))
}

async fn get_dialog(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller(&ctx, &headers).await?;
    Ok(Json(json!(dialogs::get_dialog(&ctx, &principal, &id).await?)))
}

async fn list_messages(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller(&ctx, &headers).await?;
    let (items, next) =
        dialogs::list_messages(&ctx, &principal, &id, params.limit()?, params.page.clone()).await?;
    Ok(page_response(items, next))
}
