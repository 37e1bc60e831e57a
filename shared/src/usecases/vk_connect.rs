//! Connecting a VK community through OAuth: the admin signs in to VK as a community administrator, we list
//! the communities they administer, and a community-token authorization yields the community's access key
//! the channel is made with. The user token is used for one request and never kept.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::domain::{ChannelSettings, Provider, TenantId};
use crate::error::ProviderError;
use crate::error::{Error, Result};
use crate::ports::oauth::{AdminCommunity, VkOAuth};
use crate::ports::store::{Condition, Write};
use crate::repo;
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

/// How long an authorization may take, from the authorize URL to posting its code.
const STATE_LIFETIME: SignedDuration = SignedDuration::from_mins(15);

/// An OAuth `state` handed out with an authorize URL: which tenant asked, for which flow, application and
/// callback. Stored by the hash of the state until it is used once or expires.
#[derive(Debug, Serialize, Deserialize)]
struct StoredState {
    tenant_id: TenantId,
    client_id: String,
    redirect_uri: String,
    /// The community-token flow's community; none for the user authorization.
    group_id: Option<i64>,
    expires: Timestamp,
}

fn state_key(state: &str) -> crate::ports::store::Key {
    repo::oauth_state_key(&crate::usecases::auth::hash_key(state))
}

/// The URL to send the admin's browser to, and its `state`: VK returns the state with the code, and the
/// code is accepted only with it, once, within 15 minutes, from the same tenant, for the same flow,
/// application and callback. `group_id` chooses the community-token flow.
pub async fn authorize_url(
    ctx: &Context,
    principal: &Principal,
    client_id: &str,
    redirect_uri: &str,
    group_id: Option<i64>,
) -> Result<(String, Secret)> {
    principal.require_admin()?;
    let client_id = valid_client_id(client_id)?;
    let redirect_uri = valid_redirect_uri(redirect_uri)?;
    if group_id.is_some_and(|id| id <= 0) {
        return Err(Error::rule("invalid_group_id", "group_ids", "a community's numeric id is required"));
    }
    let state = Secret::generate(32);
    let url = ctx.providers.vk_oauth()?.authorize_url(client_id, redirect_uri, state.expose(), group_id)?;
    let expires = ctx.clock.now() + STATE_LIFETIME;
    let stored = StoredState {
        tenant_id: principal.tenant_id.clone(),
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        group_id,
        expires,
    };
    let mut item = repo::to_item(&stored, &state_key(state.expose()), &[])?;
    item.insert("expires_at".into(), Value::from(expires.as_second()));
    ctx.store.transact(vec![Write::Put { item, condition: Condition::NotExists }]).await?;
    Ok((url, state))
}

/// Uses up the `state` a code came with: it must be one this tenant was handed, unexpired, unused, and for
/// this flow, application and callback; otherwise a 422 naming `state`, before the code is exchanged.
async fn take_state(
    ctx: &Context,
    principal: &Principal,
    state: &str,
    app: &OAuthApp,
    group_id: Option<i64>,
) -> Result<()> {
    let refused = || {
        Error::rule(
            "invalid_state",
            "state",
            "unknown, expired or already used; start the authorization again / \
             недействительный state: начните авторизацию заново",
        )
    };
    let state = state.trim();
    if state.is_empty() || state.len() > 256 {
        return Err(refused());
    }
    let key = state_key(state);
    let Some(stored) = repo::load::<StoredState>(ctx.store.as_ref(), &key).await? else {
        return Err(refused());
    };
    if stored.tenant_id != principal.tenant_id {
        return Err(refused());
    }
    // Used once: of two requests with the same state, one deletes it and the other finds it gone.
    if !repo::take_once(ctx.store.as_ref(), key, &principal.tenant_id).await? {
        return Err(refused());
    }
    let same_flow = stored.group_id == group_id
        && stored.client_id == app.client_id.trim()
        && stored.redirect_uri == app.redirect_uri.trim();
    if stored.expires <= ctx.clock.now() || !same_flow {
        return Err(refused());
    }
    Ok(())
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
    state: &str,
) -> Result<Vec<AdminCommunity>> {
    principal.require_admin()?;
    let client = ctx.providers.vk_oauth()?;
    take_state(ctx, principal, state, app, None).await?;
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
    state: &str,
    group_id: i64,
    name: Option<String>,
) -> Result<Created> {
    principal.require_admin()?;
    if group_id <= 0 {
        return Err(Error::rule("invalid_group_id", "group_id", "a community's numeric id is required"));
    }
    let client = ctx.providers.vk_oauth()?;
    take_state(ctx, principal, state, app, Some(group_id)).await?;
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
