//! Connecting a VK community through OAuth: the admin signs in to VK as a community administrator, we list
//! the communities they administer, and a community-token authorization yields the community's access key
//! the channel is made with. The user token is used for one request and never kept.

use serde_json::{Map, Value, json};

use crate::domain::{ChannelSettings, Provider};
use crate::error::ProviderError;
use crate::error::{Error, Result};
use crate::ports::oauth::{AdminCommunity, VkOAuth};
use crate::secret::Secret;
use crate::usecases::Context;
use crate::usecases::auth::Principal;
use crate::usecases::channels::{self, Created, NewChannel};

const NOT_ADMIN: &str =
    "this VK account administers no community / аккаунт не является администратором сообщества";

/// The admin's VK application and the callback it was authorized with.
#[derive(Debug)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: String,
}

fn valid_client_id(client_id: &str) -> Result<&str> {
    let client_id = client_id.trim();
    if client_id.is_empty() || client_id.len() > 32 || !client_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::rule(
            "invalid_client_id",
            "client_id",
            "the VK application's numeric id is required",
        ));
    }
    Ok(client_id)
}

fn valid_redirect_uri(redirect_uri: &str) -> Result<&str> {
    let redirect_uri = redirect_uri.trim();
    match url::Url::parse(redirect_uri) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && redirect_uri.len() <= 2048 => Ok(redirect_uri),
        _ => Err(Error::rule("invalid_redirect_uri", "redirect_uri", "an http(s) URL is required")),
    }
}

fn required(value: &str, field: &'static str) -> Result<Secret> {
    let value = value.trim();
    if value.is_empty() || value.len() > 4096 {
        return Err(Error::rule("required", field, "is required"));
    }
    Ok(Secret::new(value))
}

/// The URL to send the admin's browser to. `group_id` chooses the community-token flow.
pub fn authorize_url(
    ctx: &Context,
    principal: &Principal,
    client_id: &str,
    redirect_uri: &str,
    group_id: Option<i64>,
) -> Result<String> {
    principal.require_admin()?;
    let client_id = valid_client_id(client_id)?;
    let redirect_uri = valid_redirect_uri(redirect_uri)?;
    if group_id.is_some_and(|id| id <= 0) {
        return Err(Error::rule("invalid_group_id", "group_ids", "a community's numeric id is required"));
    }
    let state = Secret::generate(32);
    ctx.providers.vk_oauth()?.authorize_url(client_id, redirect_uri, state.expose(), group_id)
}

/// Exchanges the code; VK's refusal of it is the admin's to fix (422 naming `code`).
async fn exchange(client: &dyn VkOAuth, app: &OAuthApp, code: &str) -> Result<Map<String, Value>> {
    let client_id = valid_client_id(&app.client_id)?;
    let redirect_uri = valid_redirect_uri(&app.redirect_uri)?;
    let client_secret = required(app.client_secret.expose(), "client_secret")?;
    let code = required(code, "code")?;
    match client.exchange_code(client_id, &client_secret, redirect_uri, &code).await {
        Ok(answer) => Ok(answer),
        Err(ProviderError::Rejected(reason)) => Err(Error::rule(
            "code_rejected",
            "code",
            format!("VK refused the authorization code / ВКонтакте не принял код авторизации: {reason}"),
        )),
        Err(other) => Err(other.into()),
    }
}

/// The communities the VK user who authorized the code administers; none → 422 `not_community_admin`.
pub async fn admin_communities(
    ctx: &Context,
    principal: &Principal,
    app: &OAuthApp,
    code: &str,
) -> Result<Vec<AdminCommunity>> {
    principal.require_admin()?;
    let client = ctx.providers.vk_oauth()?;
    let answer = exchange(client, app, code).await?;
    let user_token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| ProviderError::Unavailable("VK OAuth answered no access_token".into()))?;
    let communities = client.admin_communities(&user_token).await.map_err(|error| match error {
        ProviderError::InvalidCredentials(_) => Error::rule(
            "code_rejected",
            "code",
            "VK did not accept the user's token / ВКонтакте не принял ключ",
        ),
        other => other.into(),
    })?;
    if communities.is_empty() {
        return Err(Error::rule("not_community_admin", "code", NOT_ADMIN));
    }
    Ok(communities)
}

/// Exchanges a community-token code and connects the channel with the community's key, as
/// `channels::create_channel` does with a key given directly.
pub async fn connect_community(
    ctx: &Context,
    principal: &Principal,
    app: &OAuthApp,
    code: &str,
    group_id: i64,
    name: Option<String>,
) -> Result<Created> {
    principal.require_admin()?;
    if group_id <= 0 {
        return Err(Error::rule("invalid_group_id", "group_id", "a community's numeric id is required"));
    }
    let client = ctx.providers.vk_oauth()?;
    let answer = exchange(client, app, code).await?;
    let token = client.community_token(&answer, group_id).ok_or_else(|| {
        Error::rule(
            "not_community_admin",
            "code",
            format!("{NOT_ADMIN} (no access key for community {group_id} in VK's answer)"),
        )
    })?;
    let mut credentials = Map::new();
    credentials.insert("access_token".into(), json!(token.expose()));
    credentials.insert("group_id".into(), json!(group_id));
    let new = NewChannel {
        provider: Provider::Vk,
        name: name.unwrap_or_else(|| Provider::Vk.kind().to_owned()),
        credentials,
        settings: ChannelSettings::default(),
    };
    channels::create_channel(ctx, principal, new).await
}
