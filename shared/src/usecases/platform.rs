//! The platform operator's work above any one tenant: the first tenant and the operator key of a new AWS
//! stack (its custom resource runs this), pointing every channel's webhook at a new public URL, and the
//! one-off migrations of stored data.

use serde_json::{Value, json};

use crate::domain::{Channel, ChannelId, Dialog, DialogStatus, Provider, TenantId};
use crate::error::{Error, Result};
use crate::ports::store::{Condition, Index, StoreError, Write};
use crate::repo;
use crate::secret::Secret;
use crate::usecases::auth::{self, OPERATOR_KEY_SECRET, Principal, Role};
use crate::usecases::tenants::FIRST_ADMIN_KEY_SECRET;
use crate::usecases::tokens::{self, Renewal};
use crate::usecases::{Context, channels, routing, tenants};

/// What provisioning found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub tenant_id: TenantId,
    /// Whether this call created the first tenant (else the store had it already).
    pub created: bool,
}

/// A new stack's first tenant, idempotently: the operator key's secret is created if missing; the first
/// admin key is taken from its secret, or generated and stored there before anything else, then the
/// store is bootstrapped with it. Called again (or on a store bootstrapped before), it changes nothing
/// and answers the same tenant. The keys never leave the secret store.
pub async fn provision_first_tenant(ctx: &Context) -> Result<Provisioned> {
    key_in_secret(ctx, OPERATOR_KEY_SECRET).await?;
    let (admin_key, generated) = key_in_secret(ctx, FIRST_ADMIN_KEY_SECRET).await?;
    if let Some((tenant, _)) = tenants::bootstrap_first_tenant(ctx, Some(admin_key.clone())).await? {
        return Ok(Provisioned { tenant_id: tenant.id, created: true });
    }
    let tenant_id = first_tenant(ctx).await?;
    // The store was bootstrapped before this secret existed (a kept table under a new stack): the key
    // just stored becomes an admin key of the first tenant, so the secret the stack names works. A key
    // found in the secret is never added again (it may have been revoked on purpose).
    if generated {
        let write = auth::api_key_write(&admin_key, &tenant_id, Role::Admin, None, ctx.clock.now())?;
        ctx.store.transact(vec![write]).await?;
    }
    Ok(Provisioned { tenant_id, created: false })
}

/// The key kept in the named secret, generated and stored first when the secret is missing. Answers
/// whether it was generated now.
async fn key_in_secret(ctx: &Context, name: &str) -> Result<(Secret, bool)> {
    if let Some(key) = ctx.secrets.get(name).await? {
        let key = Secret::new(key.expose().trim());
        auth::check_preset_key(&key, &format!("the key in the secret {name}")).map_err(|refusal| {
            Error::Internal(format!(
                "{refusal}; put another there, or delete the secret to have one generated"
            ))
        })?;
        return Ok((key, false));
    }
    let key = auth::generate_key();
    ctx.secrets.put(name, &key).await?;
    Ok((key, true))
}

/// The tenant the store was bootstrapped with, if it was.
pub async fn first_tenant_id(ctx: &Context) -> Result<Option<TenantId>> {
    let Some(marker) = ctx.store.get(&repo::bootstrap_marker_key()).await? else {
        return Ok(None);
    };
    let id = marker.get("tenant_id").and_then(Value::as_str).and_then(TenantId::parse);
    id.map(Some).ok_or_else(|| Error::Internal("the bootstrap marker names no tenant".into()))
}

async fn first_tenant(ctx: &Context) -> Result<TenantId> {
    first_tenant_id(ctx).await?.ok_or_else(|| Error::Internal("the store has no bootstrap marker".into()))
}

/// What re-registering did for one channel.
#[derive(Debug, Clone)]
pub struct Reregistration {
    pub tenant_id: TenantId,
    pub channel_id: ChannelId,
    pub provider: Provider,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    /// The provider was told the new URL.
    Registered,
    /// The provider has no API for it: the admin must paste this URL (it may carry the channel's webhook
    /// secret as a path segment) into the provider's console.
    Manual {
        url: Secret,
    },
    Failed {
        reason: String,
    },
}

impl Reregistration {
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }

    /// The operator's report line. A manual outcome shows the URL, secret path segment included: the
    /// operator has to paste it. Never log this.
    pub fn to_report(&self) -> Value {
        let mut line = json!({
            "tenant_id": self.tenant_id.to_string(),
            "channel_id": self.channel_id.to_string(),
            "provider": self.provider.slug(),
        });
        let (outcome, extra) = match &self.outcome {
            Outcome::Registered => ("registered", None),
            Outcome::Manual { url } => ("manual", Some(("url", url.expose().to_owned()))),
            Outcome::Failed { reason } => ("failed", Some(("reason", reason.clone()))),
        };
        line["outcome"] = Value::String(outcome.into());
        if let Some((name, value)) = extra {
            line[name] = Value::String(value);
        }
        line
    }
}

/// Bounds of the listings walked (pages of 100): far beyond any real platform.
const PAGE: usize = 100;
const MAX_PAGES: usize = 10_000;

/// Points the webhook of every active channel (of one tenant, or of all) at the current public base
/// URL: providers that register through their API are told the new URL, the others are reported for
/// the admin to change by hand; each channel's stored URL follows. One channel's failure is reported and
/// the others go on. Idempotent: run it again after fixing a failure.
pub async fn reregister_webhooks(ctx: &Context, only: Option<&TenantId>) -> Result<Vec<Reregistration>> {
    check_public_base(&ctx.public_base_url)?;
    let tenant_ids = match only {
        Some(tenant) => vec![tenants::get_tenant(ctx, tenant).await?.id],
        None => all_tenants(ctx).await?,
    };
    let mut done = Vec::new();
    for tenant_id in tenant_ids {
        let principal = Principal::admin_of(tenant_id);
        let mut page = None;
        for _ in 0..MAX_PAGES {
            let (channels, next) = channels::list_channels(ctx, &principal, PAGE, page).await?;
            for channel in channels.iter().filter(|c| c.is_active()) {
                if let Some(outcome) = reregister_channel(ctx, channel).await {
                    done.push(Reregistration {
                        tenant_id: channel.tenant_id.clone(),
                        channel_id: channel.id.clone(),
                        provider: channel.provider,
                        outcome,
                    });
                }
            }
            page = next;
            if page.is_none() {
                break;
            }
        }
    }
    Ok(done)
}

fn check_public_base(base: &str) -> Result<()> {
    let parsed = url::Url::parse(base).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
    match parsed {
        Some(url) if url.host_str().is_some() && url.query().is_none() => Ok(()),
        _ if base.is_empty() => Err(Error::bad_request(
            "public_base_url_missing",
            "the public base URL (PUBLIC_BASE_URL) is not set: it is what providers call",
        )),
        _ => Err(Error::bad_request(
            "public_base_url_invalid",
            format!(
                "the public base URL (PUBLIC_BASE_URL) must be an http(s) URL without a query, not {base:?}"
            ),
        )),
    }
}

async fn all_tenants(ctx: &Context) -> Result<Vec<TenantId>> {
    let mut ids = Vec::new();
    let mut page = None;
    for _ in 0..MAX_PAGES {
        let (found, next) = tenants::list_tenants(ctx, PAGE, page).await?;
        ids.extend(found.into_iter().map(|t| t.id));
        page = next;
        if page.is_none() {
            return Ok(ids);
        }
    }
    Err(Error::Internal(format!("more than {} tenants: not walked", PAGE * MAX_PAGES)))
}

/// One channel: `None` for a channel without a webhook (e-mail is fetched from the mailbox).
async fn reregister_channel(ctx: &Context, channel: &Channel) -> Option<Outcome> {
    let failed = |reason: String| Some(Outcome::Failed { reason });
    let module = match ctx.providers.get(channel.provider) {
        Ok(module) => module,
        Err(error) => return failed(error.to_string()),
    };
    let secrets = match ctx.channel_secrets(&channel.tenant_id, &channel.id).await {
        Ok(Some(secrets)) => secrets,
        Ok(None) => return failed("the channel's credentials are missing from the secret store".into()),
        Err(error) => return failed(error.to_string()),
    };
    // A consent connection's access token may have expired since it was last used.
    let secrets = match tokens::usable_secrets(ctx, channel, module, secrets, Renewal::IfDue).await {
        Ok(secrets) => secrets,
        Err(error) => return failed(error.to_string()),
    };
    let url = module.webhook_url(&ctx.public_base_url, channel.provider, &channel.id, &secrets);
    if url.is_empty() {
        return None;
    }
    let outcome = if module.registers_webhook() {
        if let Err(error) = module.reregister_webhook(&secrets, &url).await {
            tracing::warn!(%error, channel = %channel.id, "webhook not re-registered");
            return failed(error.to_string());
        }
        Outcome::Registered
    } else {
        Outcome::Manual { url: Secret::new(url.clone()) }
    };
    match save_webhook_url(ctx, channel, url).await {
        Ok(()) => Some(outcome),
        Err(error) => failed(format!("the provider has the new URL but the channel was not saved: {error}")),
    }
}

/// The channel's stored URL (what the API shows and signatures are checked against) follows the provider.
async fn save_webhook_url(ctx: &Context, channel: &Channel, url: String) -> Result<()> {
    if channel.webhook_url == url {
        return Ok(());
    }
    let mut changed = channel.clone();
    changed.webhook_url = url;
    changed.updated_at = ctx.clock.now().max(channel.updated_at);
    let write = Write::Put {
        item: repo::channel_item(&changed)?,
        condition: Condition::Equals("updated_at".into(), Value::String(channel.updated_at.to_string())),
    };
    match ctx.store.transact(vec![write]).await {
        Ok(()) => {
            ctx.forget_channel(&channel.id);
            Ok(())
        }
        Err(crate::ports::StoreError::Conflict { .. }) => {
            Err(Error::Conflict("the channel was changed meanwhile; run the re-registration again".into()))
        }
        Err(other) => Err(other.into()),
    }
}

/// What [`mark_chatbot_dialogs`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChatbotMarking {
    /// Open dialogs a chatbot has, seen.
    pub chatbot_dialogs: usize,
    /// Of those, pointers that got the flag now (the rest had it, or the dialog closed meanwhile).
    pub marked: usize,
}

/// One-off after upgrading to open-dialog pointers that carry the chatbot flag (issue 16; data written
/// before has no flag, so ingest would not mark those dialogs' messages for the router): flags the pointer
/// of every open dialog a chatbot has, of one tenant or of all, then forwards to the chatbot what reached
/// the dialog meanwhile. Safe to run again: a flagged pointer is left alone and forwarding is at most once
/// per message. `omnichat-admin migrate chatbot-pointers` runs it.
pub async fn mark_chatbot_dialogs(ctx: &Context, only: Option<&TenantId>) -> Result<ChatbotMarking> {
    let tenant_ids = match only {
        Some(tenant) => vec![tenants::get_tenant(ctx, tenant).await?.id],
        None => all_tenants(ctx).await?,
    };
    let mut done = ChatbotMarking::default();
    for tenant_id in tenant_ids {
        let mut page = None;
        for _ in 0..MAX_PAGES {
            let index = repo::dialogs_with_status(&tenant_id, DialogStatus::Open.as_str());
            let (dialogs, next): (Vec<Dialog>, _) =
                repo::list_index(ctx.store.as_ref(), Index::Gsi2, index, PAGE, page).await?;
            for dialog in dialogs.iter().filter(|d| d.chatbot_id.is_some() && !d.is_closed()) {
                done.chatbot_dialogs += 1;
                match ctx.store.transact(vec![repo::chatbot_flag_missing_write(dialog)]).await {
                    Ok(()) => {
                        done.marked += 1;
                        routing::serve_chatbot(ctx, &dialog.id).await?;
                    }
                    Err(StoreError::Conflict { .. }) => {}
                    Err(other) => return Err(other.into()),
                }
            }
            page = next;
            if page.is_none() {
                break;
            }
        }
    }
    Ok(done)
}
