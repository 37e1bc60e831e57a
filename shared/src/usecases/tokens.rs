//! Channels connected by consent (Avito's authorization code) keep an access token that expires and a
//! refresh token that Avito replaces at each renewal. The access token is renewed before it expires and
//! after the provider refused it, the rotated refresh token kept in the secret store at once, and one
//! renewal serves every concurrent send of the process (a second renewal would present a refresh token
//! that the first one already used up). A refresh token the provider refuses marks the channel as
//! needing re-authorization, which the API shows, instead of failing every send silently.

use serde_json::Value;

use crate::domain::{Channel, ChannelStatus};
use crate::error::{ProviderError, Result};
use crate::ports::channel::{ChannelProvider, ChannelSecrets};
use crate::ports::store::{Condition, Item, Write};
use crate::repo;
use crate::usecases::Context;

/// Why the credentials are renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Only if the access token is about to expire.
    IfDue,
    /// The provider refused `stale`'s access token: renew unless another send already did.
    Refused,
}

/// The credentials to call the provider with: `secrets`, or renewed ones when their access token is due
/// (`Renewal::IfDue`) or was refused (`Renewal::Refused`). Credentials without a refresh token are
/// returned as they are. A renewal the provider refuses is `InvalidCredentials`, after the channel was
/// marked `reauthorization_required`.
pub async fn usable_secrets(
    ctx: &Context,
    channel: &Channel,
    module: &dyn ChannelProvider,
    stale: ChannelSecrets,
    why: Renewal,
) -> std::result::Result<ChannelSecrets, ProviderError> {
    if why == Renewal::IfDue && !module.renewal_due(&stale, ctx.clock.now()) {
        return Ok(stale);
    }
    let lock = ctx.renewal_lock(&channel.id);
    let _held = lock.lock().await;
    // Read again under the lock: a send that held it before may have renewed them (in this process, or
    // another one that wrote the secret store).
    let current =
        ctx.channel_secrets_uncached(&channel.tenant_id, &channel.id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| ProviderError::InvalidCredentials("the channel has no credentials".into()))?;
    let renewed_meanwhile = access_token(&current) != access_token(&stale);
    if renewed_meanwhile && !module.renewal_due(&current, ctx.clock.now()) {
        return Ok(current);
    }
    if why == Renewal::IfDue && !module.renewal_due(&current, ctx.clock.now()) {
        return Ok(current);
    }
    match module.renew_tokens(&current, ctx.clock.now()).await {
        Ok(Some(renewed)) => {
            // Kept before it is used: the old refresh token is spent.
            ctx.put_channel_secrets(&channel.tenant_id, &channel.id, &renewed).await.map_err(unavailable)?;
            tracing::info!(channel = %channel.id, "the channel's access token was renewed");
            Ok(renewed)
        }
        Ok(None) => Ok(current),
        Err(ProviderError::InvalidCredentials(reason)) => {
            // Another process may have renewed them while this one asked (and so spent the token it
            // presented): the secret store then holds the new ones.
            if let Ok(Some(latest)) = ctx.channel_secrets_uncached(&channel.tenant_id, &channel.id).await
                && refresh_token(&latest) != refresh_token(&current)
            {
                return Ok(latest);
            }
            if let Err(error) = mark_reauthorization_required(ctx, channel).await {
                tracing::error!(%error, channel = %channel.id, "the channel could not be marked for re-authorization");
            }
            Err(ProviderError::InvalidCredentials(reason))
        }
        Err(other) => Err(other),
    }
}

/// The names consent connections keep their tokens under (`providers::avito`).
const ACCESS_TOKEN: &str = "access_token";
const REFRESH_TOKEN: &str = "refresh_token";

/// Whether the credentials hold a refresh token: a refused access token is worth renewing.
pub fn renewable(secrets: &ChannelSecrets) -> bool {
    secrets.get(REFRESH_TOKEN).is_some_and(|token| !token.expose().is_empty())
}

fn access_token(secrets: &ChannelSecrets) -> Option<&str> {
    secrets.get(ACCESS_TOKEN).map(|s| s.expose())
}

fn refresh_token(secrets: &ChannelSecrets) -> Option<&str> {
    secrets.get(REFRESH_TOKEN).map(|s| s.expose())
}

fn unavailable(error: crate::error::Error) -> ProviderError {
    ProviderError::Unavailable(format!("the channel's credentials could not be read or kept: {error}"))
}

/// The channel stops sending until the admin authorizes the account again; what customers write is still
/// stored (`Channel::receives_messages`). An active channel only: a displaced or disconnected one keeps
/// its status.
async fn mark_reauthorization_required(ctx: &Context, channel: &Channel) -> Result<()> {
    let mut set = Item::new();
    set.insert(
        "status".into(),
        serde_json::to_value(ChannelStatus::ReauthorizationRequired).unwrap_or_default(),
    );
    set.insert("updated_at".into(), Value::String(ctx.clock.now().max(channel.updated_at).to_string()));
    let update = Write::Update {
        key: repo::channel_key(&channel.id),
        set,
        remove: Vec::new(),
        condition: Condition::Equals("status".into(), Value::String("active".into())),
    };
    match ctx.store.transact(vec![update]).await {
        Ok(()) | Err(crate::ports::StoreError::Conflict { .. }) => {}
        Err(other) => return Err(other.into()),
    }
    ctx.forget_channel(&channel.id);
    tracing::warn!(channel = %channel.id, "the provider refused to renew the channel's tokens; it needs re-authorization");
    Ok(())
}
