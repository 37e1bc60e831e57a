//! Connecting an Avito account by its owner's consent (OAuth 2.0 authorization code, the seed's
//! «Авторизоваться»): the admin's browser goes to Avito's page for the platform's application, the owner
//! allows it to read and send the account's messages, and the code Avito sends back is exchanged for the
//! tokens the channel is made with. The admin never handles the account's personal keys; client
//! credentials (`POST /v1/channels`) remain the alternative.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::{ChannelSettings, EmployeeId, Provider, TenantId};
use crate::error::{Error, ProviderError, Result};
use crate::ports::store::{Condition, Write};
use crate::repo;
use crate::secret::Secret;
use crate::usecases::Context;
use crate::usecases::auth::Principal;
use crate::usecases::channels::{self, Created, NewChannel};

/// How long an authorization may take, from the authorize URL to posting its code.
const STATE_LIFETIME: SignedDuration = SignedDuration::from_mins(15);
/// What a stored state is for, beside VK's states under the same keys.
const FLOW: &str = "avito";

/// An OAuth `state` handed out with Avito's authorize URL, stored by the hash of the state until it is used
/// once or expires. `client_id` and `group_id` are VK's fields: a VK state presented here lacks `flow`,
/// and this one presented to VK names no VK application, so each flow refuses the other's.
#[derive(Debug, Serialize, Deserialize)]
struct StoredState {
    tenant_id: TenantId,
    #[serde(default)]
    flow: Option<String>,
    /// The admin who asked: an admin key has no employee (`None`), an employee key is no admin.
    #[serde(default)]
    employee_id: Option<EmployeeId>,
    client_id: String,
    redirect_uri: String,
    group_id: Option<i64>,
    expires: Timestamp,
}

fn state_key(state: &str) -> crate::ports::store::Key {
    repo::oauth_state_key(&crate::usecases::auth::hash_key(state))
}

fn valid_redirect_uri(redirect_uri: &str) -> Result<&str> {
    let redirect_uri = redirect_uri.trim();
    match url::Url::parse(redirect_uri) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && redirect_uri.len() <= 2048 => Ok(redirect_uri),
        _ => Err(Error::rule("invalid_redirect_uri", "redirect_uri", "an http(s) URL is required")),
    }
}

fn refused_state() -> Error {
    Error::rule(
        "invalid_state",
        "state",
        "unknown, expired or already used; start the authorization again / \
         недействительный state: начните авторизацию заново",
    )
}

/// The URL of Avito's consent page for the platform's application, and its `state`: Avito returns the
/// state with the code, and the code is accepted only with it, once, within 15 minutes, from the same
/// tenant and admin, for the same redirect URI.
pub async fn authorize_url(
    ctx: &Context,
    principal: &Principal,
    redirect_uri: &str,
) -> Result<(String, Secret)> {
    principal.require_admin()?;
    let redirect_uri = valid_redirect_uri(redirect_uri)?;
    let oauth = ctx.providers.avito_oauth()?;
    let state = Secret::generate(32);
    let url = oauth.authorize_url(redirect_uri, state.expose())?;
    let expires = ctx.clock.now() + STATE_LIFETIME;
    let stored = StoredState {
        tenant_id: principal.tenant_id.clone(),
        flow: Some(FLOW.to_owned()),
        employee_id: principal.employee_id.clone(),
        client_id: FLOW.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        group_id: None,
        expires,
    };
    let mut item = repo::to_item(&stored, &state_key(state.expose()), &[])?;
    item.insert("expires_at".into(), Value::from(expires.as_second()));
    ctx.store.transact(vec![Write::Put { item, condition: Condition::NotExists }]).await?;
    Ok((url, state))
}

/// Uses up the `state`: one this tenant's admin was handed for this flow and redirect URI, unexpired and
/// unused; otherwise a 422 naming `state`, before the code is exchanged.
async fn take_state(ctx: &Context, principal: &Principal, state: &str, redirect_uri: &str) -> Result<()> {
    let state = state.trim();
    if state.is_empty() || state.len() > 256 {
        return Err(refused_state());
    }
    let key = state_key(state);
    // A state of another shape (not ours) is refused like an unknown one.
    let Ok(Some(stored)) = repo::load::<StoredState>(ctx.store.as_ref(), &key).await else {
        return Err(refused_state());
    };
    if stored.tenant_id != principal.tenant_id || stored.flow.as_deref() != Some(FLOW) {
        return Err(refused_state());
    }
    // Used once: of two requests with the same state, one deletes it and the other finds it gone.
    if !repo::take_once(ctx.store.as_ref(), key, &principal.tenant_id).await? {
        return Err(refused_state());
    }
    if stored.expires <= ctx.clock.now()
        || stored.employee_id != principal.employee_id
        || stored.redirect_uri != redirect_uri
    {
        return Err(refused_state());
    }
    Ok(())
}

/// Exchanges the code Avito sent back with `state` and connects the channel with the tokens, as
/// `channels::create_channel` does with client credentials (the webhook subscribed, the seed's last-wins
/// rule applied). A wrong state or a code Avito refuses is a 422 and creates nothing.
pub async fn connect(
    ctx: &Context,
    principal: &Principal,
    code: &str,
    state: &str,
    redirect_uri: &str,
    name: Option<String>,
) -> Result<Created> {
    principal.require_admin()?;
    let oauth = ctx.providers.avito_oauth()?;
    let redirect_uri = valid_redirect_uri(redirect_uri)?;
    let name = name.unwrap_or_else(|| Provider::Avito.kind().to_owned());
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > channels::MAX_NAME_CHARS {
        return Err(Error::rule(
            "invalid_name",
            "name",
            format!("1 to {} characters", channels::MAX_NAME_CHARS),
        ));
    }
    let code = code.trim();
    if code.is_empty() || code.len() > 4096 {
        return Err(Error::rule("required", "code", "is required"));
    }
    take_state(ctx, principal, state, redirect_uri).await?;
    let connection = match oauth.connect_with_code(&Secret::new(code), redirect_uri, ctx.clock.now()).await {
        Ok(connection) => connection,
        Err(ProviderError::Rejected(reason) | ProviderError::InvalidCredentials(reason)) => {
            return Err(Error::rule(
                "code_rejected",
                "code",
                format!("Avito refused the authorization code / Avito не принял код авторизации: {reason}"),
            ));
        }
        Err(other) => return Err(other.into()),
    };
    let new = NewChannel {
        provider: Provider::Avito,
        name,
        credentials: Map::new(),
        settings: ChannelSettings::default(),
    };
    channels::create_channel_with(ctx, principal, new, Some(connection)).await
}
