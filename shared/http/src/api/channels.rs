//! `/v1/channels`: connect, read, list, update and disconnect channels.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::wire::{self, Channel, ChannelCreated, ChannelKind, Page, WhatsappProvider};
use super::{IdPath, PageParams, Principal, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;
use omnichat::domain::{ChannelSettings, Provider};
use omnichat::secret::Secret;
use omnichat::usecases::avito_connect;
use omnichat::usecases::channels::{self, ChannelUpdate, NewChannel};
use omnichat::usecases::vk_connect::{self, OAuthApp};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/v1/channels", get(list_channels).post(create_channel))
        .route("/v1/channels/{id}", get(get_channel).put(update_channel))
        .route("/v1/channels/{id}/disconnect", post(disconnect_channel))
        .route("/v1/channels/{id}/templates", get(list_templates))
        .route("/v1/channels/vk/authorize", get(vk_authorize))
        .route("/v1/channels/vk/communities", post(vk_communities))
        .route("/v1/channels/vk/community-token", post(vk_community_token))
        .route("/v1/channels/avito/authorize", get(avito_authorize))
        .route("/v1/channels/avito/connect", post(avito_connect_channel))
}

/// The documentation of the routes above (merged into the document by `crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_channels,
    create_channel,
    list_templates,
    get_channel,
    update_channel,
    disconnect_channel,
    vk_authorize,
    vk_communities,
    vk_community_token,
    avito_authorize,
    avito_connect_channel
))]
pub(crate) struct Docs;

/// Connect a channel. Credentials are provider-specific: Telegram and Viber `{"token"}`; VK
/// `{"access_token", "group_id"}`; WhatsApp edna `{"subject", "api_key"}`, MessageBird `{"access_key",
/// "channel_id", "signing_key", "namespace_id"?}`, Infobip `{"api_key", "base_url", "sender"}`; Avito
/// `{"client_id", "client_secret"}`.
// The provider and the settings are read by hand (`Provider::from_kind`, `ChannelSettings::from_json`), so
// that a wrong one is a 422 naming its field rather than serde's 400.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewChannel)]
pub struct CreateChannelBody {
    #[schema(value_type = ChannelKind)]
    provider: String,
    /// Required when `provider` is `whatsapp`.
    #[schema(value_type = Option<WhatsappProvider>)]
    whatsapp_provider: Option<String>,
    /// Defaults to the provider's name.
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    credentials: Map<String, Value>,
    #[serde(default)]
    #[schema(value_type = Option<wire::ChannelSettings>)]
    settings: Value,
}

#[utoipa::path(
    post,
    path = "/v1/channels",
    tag = "channels",
    summary = "Connect a channel (admin)",
    description = "Checks the credentials with the provider, keeps them in the secret store and registers \
        the webhook where the provider allows it. Connecting an account another channel of the tenant holds \
        displaces that channel.",
    request_body = CreateChannelBody,
    responses(
        (status = 201, description = "The channel, and the channel it displaced", body = ChannelCreated),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::BadGateway,
        doc::Unavailable
    )
)]
async fn create_channel(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
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
    Ok((StatusCode::CREATED, Json(ChannelCreated::from(created))).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/channels",
    tag = "channels",
    summary = "List the tenant's channels (admin)",
    params(PageParams),
    responses(
        (status = 200, description = "A page of channels", body = Page<Channel>),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_channels(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Page<Channel>>, ApiError> {
    let (items, next) =
        channels::list_channels(&ctx, &principal, params.limit()?, params.page.clone()).await?;
    Ok(Json(Page::of(items, next)))
}

#[utoipa::path(
    get,
    path = "/v1/channels/{id}",
    tag = "channels",
    summary = "Read a channel (admin)",
    params(IdPath),
    responses(
        (status = 200, description = "The channel", body = Channel),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_channel(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<Channel>, ApiError> {
    Ok(Json(channels::get_channel(&ctx, &principal, &id).await?.into()))
}

/// Change a channel: the fields sent replace the current ones; without credentials the stored secret is
/// kept.
// The settings are read by hand, as on connecting.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ChannelUpdate)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannelBody {
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    #[schema(value_type = Option<wire::ChannelSettings>)]
    settings: Option<Value>,
    #[schema(value_type = Option<Object>)]
    credentials: Option<Map<String, Value>>,
}

#[utoipa::path(
    put,
    path = "/v1/channels/{id}",
    tag = "channels",
    summary = "Change a channel's name, settings or credentials (admin)",
    params(IdPath),
    request_body = UpdateChannelBody,
    responses(
        (status = 200, description = "The channel as it is now", body = Channel),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::BadGateway,
        doc::Unavailable
    )
)]
async fn update_channel(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Channel>, ApiError> {
    let body: UpdateChannelBody = json_body(&body)?;
    let settings =
        body.settings.as_ref().map(ChannelSettings::from_json).transpose().map_err(omnichat::Error::from)?;
    let update = ChannelUpdate { name: body.name, settings, credentials: body.credentials };
    Ok(Json(channels::update_channel(&ctx, &principal, &id, update).await?.into()))
}

/// Disconnecting needs `{"confirm": true}`; without it nothing changes (422).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = Disconnect)]
pub struct DisconnectBody {
    #[serde(default)]
    confirm: bool,
}

#[utoipa::path(
    post,
    path = "/v1/channels/{id}/disconnect",
    tag = "channels",
    summary = "Disconnect a channel (admin)",
    description = "Needs `{\"confirm\": true}`; then the provider's webhook is removed, the channel neither \
        receives nor sends, and its secret is scheduled for deletion.",
    params(IdPath),
    request_body(content = DisconnectBody, description = "An empty body counts as `{}` (then 422)"),
    responses(
        (status = 200, description = "The disconnected channel", body = Channel),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::BadGateway,
        doc::Unavailable
    )
)]
async fn disconnect_channel(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Channel>, ApiError> {
    let body: DisconnectBody = if body.is_empty() { DisconnectBody::default() } else { json_body(&body)? };
    Ok(Json(channels::disconnect_channel(&ctx, &principal, &id, body.confirm).await?.into()))
}

/// `?client_id&redirect_uri[&group_ids]` of the VK authorize URL.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct VkAuthorizeQuery {
    /// The id of the admin's VK application.
    client_id: String,
    /// The application's redirect URI; VK sends the browser there with `?code=`.
    redirect_uri: String,
    /// A community id: builds the community-token URL (scope `messages,manage`) instead of the user one.
    group_ids: Option<i64>,
}

/// The URL to send the admin's browser to.
#[derive(Serialize, utoipa::ToSchema)]
struct VkAuthorizeUrl {
    url: String,
    /// Also in the URL; VK returns it with the code, and the code is accepted only with it (once,
    /// within 15 minutes, by this tenant, for this flow, application and redirect URI).
    state: String,
}

#[utoipa::path(
    get,
    path = "/v1/channels/vk/authorize",
    tag = "channels",
    summary = "The VK OAuth authorize URL (admin)",
    description = "Connecting a VK community takes two authorizations as a community administrator. First \
        without `group_ids`: the user authorization (scope `groups`); its code, posted to \
        `/v1/channels/vk/communities`, lists the communities the account administers. Then with \
        `group_ids=<community id>`: the community-token authorization (scope `messages,manage`); its code, \
        posted to `/v1/channels/vk/community-token`, connects the channel with the community's access key. \
        A community access key may also be given directly to `POST /v1/channels` (`{\"access_token\", \
        \"group_id\"}`), for scripts. `state` is random; VK returns it with the code.",
    params(VkAuthorizeQuery),
    responses(
        (status = 200, description = "The authorize URL", body = VkAuthorizeUrl),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unprocessable, doc::Unavailable
    )
)]
async fn vk_authorize(
    State(ctx): State<AppState>,
    Query(query): Query<VkAuthorizeQuery>,
    principal: Principal,
) -> Result<Json<VkAuthorizeUrl>, ApiError> {
    let (url, state) =
        vk_connect::authorize_url(&ctx, &principal, &query.client_id, &query.redirect_uri, query.group_ids)
            .await?;
    Ok(Json(VkAuthorizeUrl { url, state: state.expose().to_owned() }))
}

/// A VK OAuth code with the application it was issued to.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VkCode {
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    /// The `code` VK added to the redirect URI.
    code: String,
    /// The `state` VK added beside it: the one `GET /v1/channels/vk/authorize` answered for this flow
    /// (a missing one is refused like a wrong one: 422 naming `state`).
    #[serde(default)]
    state: String,
}

impl VkCode {
    fn app(&self) -> OAuthApp {
        OAuthApp {
            client_id: self.client_id.clone(),
            client_secret: Secret::new(self.client_secret.clone()),
            redirect_uri: self.redirect_uri.clone(),
        }
    }
}

/// A community the VK account administers.
#[derive(Serialize, utoipa::ToSchema)]
struct VkCommunity {
    group_id: i64,
    name: String,
}

/// The communities the VK account administers.
#[derive(Serialize, utoipa::ToSchema)]
struct VkCommunities {
    items: Vec<VkCommunity>,
}

#[utoipa::path(
    post,
    path = "/v1/channels/vk/communities",
    tag = "channels",
    summary = "List the communities a VK account administers (admin)",
    description = "Exchanges the code of the user authorization (`GET /v1/channels/vk/authorize` without \
        `group_ids`) and lists the communities the account administers. The user's token is used for this \
        request only and never kept. A code VK refuses → 422 `code_rejected`; an account that administers \
        no community → 422 `not_community_admin`.",
    request_body = VkCode,
    responses(
        (status = 200, description = "The communities", body = VkCommunities),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unprocessable, doc::BadGateway,
        doc::Unavailable
    )
)]
async fn vk_communities(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<VkCommunities>, ApiError> {
    let body: VkCode = json_body(&body)?;
    let communities =
        vk_connect::admin_communities(&ctx, &principal, &body.app(), &body.code, &body.state).await?;
    let items = communities.into_iter().map(|c| VkCommunity { group_id: c.id, name: c.name }).collect();
    Ok(Json(VkCommunities { items }))
}

/// A community-token code, and the channel to make with the key it exchanges for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VkCommunityCode {
    #[serde(flatten)]
    code: VkCode,
    /// The community the authorization was for (`group_ids` of the authorize URL).
    group_id: i64,
    /// Defaults to `vk`.
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/channels/vk/community-token",
    tag = "channels",
    summary = "Connect a VK community with a community-token code (admin)",
    description = "Exchanges the code of the community-token authorization (`GET /v1/channels/vk/authorize` \
        with `group_ids`) for the community's access key and connects the channel with it, as \
        `POST /v1/channels` does; the key is never shown.",
    request_body = VkCommunityCode,
    responses(
        (status = 201, description = "The channel, and the channel it displaced", body = ChannelCreated),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::BadGateway,
        doc::Unavailable
    )
)]
async fn vk_community_token(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: VkCommunityCode = json_body(&body)?;
    let created = vk_connect::connect_community(
        &ctx,
        &principal,
        &body.code.app(),
        &body.code.code,
        &body.code.state,
        body.group_id,
        body.name,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ChannelCreated::from(created))).into_response())
}

/// `?redirect_uri` of Avito's authorize URL.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AvitoAuthorizeQuery {
    /// Where Avito sends the browser back with `?code=&state=` (registered with the platform's Avito
    /// application).
    redirect_uri: String,
}

/// The URL of Avito's consent page to send the admin's browser to.
#[derive(Serialize, utoipa::ToSchema)]
struct AvitoAuthorizeUrl {
    url: String,
    /// Also in the URL; Avito returns it with the code, and the code is accepted only with it (once,
    /// within 15 minutes, by this tenant's admin, for this redirect URI).
    state: String,
}

#[utoipa::path(
    get,
    path = "/v1/channels/avito/authorize",
    tag = "channels",
    summary = "Avito's consent page for the platform's application (admin)",
    description = "Connecting an Avito account by its owner's consent (the seed's «Авторизоваться»): the URL \
        of Avito's authorize page (`response_type=code`, the platform's `client_id` from `AVITO_CLIENT_ID`, \
        scopes `messenger:read,messenger:write,user:read`, `redirect_uri`, `state`). Avito sends the browser \
        back to `redirect_uri` with `code` and `state`; post them to `/v1/channels/avito/connect`. Without \
        a configured platform application → 422 `provider_not_available`. The account's own client \
        credentials remain accepted on `POST /v1/channels`.",
    params(AvitoAuthorizeQuery),
    responses(
        (status = 200, description = "The authorize URL", body = AvitoAuthorizeUrl),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unprocessable, doc::Unavailable
    )
)]
async fn avito_authorize(
    State(ctx): State<AppState>,
    Query(query): Query<AvitoAuthorizeQuery>,
    principal: Principal,
) -> Result<Json<AvitoAuthorizeUrl>, ApiError> {
    let (url, state) = avito_connect::authorize_url(&ctx, &principal, &query.redirect_uri).await?;
    Ok(Json(AvitoAuthorizeUrl { url, state: state.expose().to_owned() }))
}

/// The code Avito sent back, and the channel to make with it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AvitoCode {
    /// The `code` Avito added to the redirect URI.
    code: String,
    /// The `state` Avito added beside it: the one `GET /v1/channels/avito/authorize` answered (a missing
    /// one is refused like a wrong one: 422 naming `state`).
    #[serde(default)]
    state: String,
    /// The redirect URI the authorize URL was made for.
    redirect_uri: String,
    /// Defaults to `avito`.
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/channels/avito/connect",
    tag = "channels",
    summary = "Connect an Avito account with the code of its owner's consent (admin)",
    description = "Exchanges the code (`grant_type=authorization_code` at `AVITO_API_BASE` + `/token`) and \
        connects the channel as `POST /v1/channels` does: the account is looked up and named, the webhook \
        subscribed, an earlier channel of the account displaced. The access and refresh tokens are kept in \
        the secret store only, never shown; the access token is renewed before it expires and when Avito \
        refuses it, and a renewal Avito refuses sets the channel's status to `reauthorization_required` \
        (authorize again to connect it anew). A wrong, expired or reused `state` → 422 `invalid_state`; a \
        code Avito refuses → 422 `code_rejected`; nothing is created.",
    request_body = AvitoCode,
    responses(
        (status = 201, description = "The channel, and the channel it displaced", body = ChannelCreated),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::BadGateway,
        doc::Unavailable
    )
)]
async fn avito_connect_channel(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: AvitoCode = json_body(&body)?;
    let created =
        avito_connect::connect(&ctx, &principal, &body.code, &body.state, &body.redirect_uri, body.name)
            .await?;
    Ok((StatusCode::CREATED, Json(ChannelCreated::from(created))).into_response())
}

/// An approved (or pending, or rejected) WhatsApp template of the channel.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TemplateInfo {
    name: String,
    language: String,
    /// As the provider says it, lower case: `approved`, `pending`, `rejected`...
    status: String,
    /// The body with its placeholders ({{1}}...).
    #[schema(required = true)]
    text: Option<String>,
    /// How many values `template.parameters` must carry.
    parameters: usize,
}

#[utoipa::path(
    get,
    path = "/v1/channels/{id}/templates",
    tag = "channels",
    summary = "List a WhatsApp channel's templates, as its provider's API lists them",
    params(IdPath),
    responses(
        (status = 200, description = "The channel's templates", body = Vec<TemplateInfo>),
        doc::Unauthorized, doc::NotFound, doc::Unprocessable, doc::BadGateway, doc::Unavailable
    )
)]
async fn list_templates(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<Vec<TemplateInfo>>, ApiError> {
    let listed = omnichat::usecases::templates::list(&ctx, &principal, &id).await?;
    Ok(Json(
        listed
            .into_iter()
            .map(|t| TemplateInfo {
                name: t.name,
                language: t.language,
                status: t.status,
                text: t.text,
                parameters: t.parameters,
            })
            .collect(),
    ))
}
