//! Connecting and reading channels. Connecting checks the credential with the provider, keeps every
//! credential in the secret store, registers the webhook, and enforces "one account, one channel": the
//! newest channel of an account is the effective one, the older one is marked displaced.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::{Channel, ChannelId, ChannelSettings, ChannelStatus, Provider, TenantId};
use crate::error::{Error, Result};
use crate::ports::store::{Condition, Index, Item, Query, Write};
use crate::providers::ChannelSecrets;
use crate::records;
use crate::secret::Secret;
use crate::usecases::auth::Principal;
use crate::usecases::{Context, auth};

pub const MAX_NAME_CHARS: usize = 100;

/// A channel as the admin asked for it.
#[derive(Debug)]
pub struct NewChannel {
    pub provider: Provider,
    pub name: String,
    pub credentials: Map<String, Value>,
    pub settings: ChannelSettings,
}

#[derive(Debug)]
pub struct Created {
    pub channel: Channel,
    /// The older channel of the same account, now inactive.
    pub displaced: Option<ChannelId>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AccountClaim {
    channel_id: ChannelId,
}

pub async fn create_channel(ctx: &Context, principal: &Principal, new: NewChannel) -> Result<Created> {
    principal.require_admin()?;
    let tenant = auth::get_tenant(ctx, &principal.tenant_id).await?;
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::rule("invalid_name", "name", format!("1 to {MAX_NAME_CHARS} characters")));
    }
    if new.provider.is_whatsapp() && !tenant.features.contact_center {
        return Err(Error::rule(
            "contact_center_off",
            "provider",
            "WhatsApp needs the contact-center service / WhatsApp доступен только с услугой контакт-центра",
        ));
    }
    let module = ctx.providers.get(new.provider)?;
    let id = ChannelId::generate();
    let mut connection = module.connect(&new.credentials).await?;
    connection.secrets = connection.secrets.with(ChannelSecrets::WEBHOOK_SECRET, Secret::generate(48));
    let webhook_url = module.webhook_url(&ctx.public_base_url, new.provider, &id, &connection.secrets);
    ctx.put_channel_secrets(&tenant.id, &id, &connection.secrets).await?;
    if let Err(error) = module.register_webhook(&connection.secrets, &webhook_url).await {
        forget_secrets(ctx, &tenant.id, &id).await;
        return Err(error);
    }
    let now = ctx.clock.now();
    let channel = Channel {
        id,
        tenant_id: tenant.id.clone(),
        provider: new.provider,
        name,
        account: connection.account,
        status: ChannelStatus::Active,
        settings: new.settings,
        webhook_url,
        credentials_masked: connection.masked,
        displaced_by: None,
        created_at: now,
        updated_at: now,
    };
    match save_new_channel(ctx, &channel).await {
        Ok(displaced) => Ok(Created { channel, displaced }),
        Err(error) => {
            forget_secrets(ctx, &tenant.id, &channel.id).await;
            Err(error)
        }
    }
}

async fn forget_secrets(ctx: &Context, tenant: &TenantId, channel: &ChannelId) {
    if let Err(error) = ctx.delete_channel_secrets(tenant, channel).await {
        tracing::error!(%error, %channel, "could not remove the credentials of a channel that was not created");
    }
}

/// Writes the channel and claims its account, displacing the account's previous channel in the same
/// transaction.
async fn save_new_channel(ctx: &Context, channel: &Channel) -> Result<Option<ChannelId>> {
    let claim_key = records::account_claim_key(&channel.tenant_id, channel.provider, &channel.account.id);
    let channel_item = channel_item(channel)?;
    for _ in 0..5 {
        let previous =
            ctx.store.get(&claim_key).await?.map(records::from_item::<AccountClaim>).transpose()?;
        let claim = records::to_item(&AccountClaim { channel_id: channel.id.clone() }, &claim_key, &[])?;
        let mut writes = vec![Write::Put { item: channel_item.clone(), condition: Condition::NotExists }];
        match &previous {
            Some(old) => {
                writes.push(Write::Put {
                    item: claim,
                    condition: Condition::Equals(
                        "channel_id".into(),
                        Value::String(old.channel_id.to_string()),
                    ),
                });
                let mut set = Item::new();
                set.insert(
                    "status".into(),
                    serde_json::to_value(ChannelStatus::Displaced).unwrap_or_default(),
                );
                set.insert("displaced_by".into(), Value::String(channel.id.to_string()));
                set.insert("updated_at".into(), Value::String(channel.created_at.to_string()));
                writes.push(Write::Update {
                    key: records::channel_key(&old.channel_id),
                    set,
                    remove: Vec::new(),
                    condition: Condition::Equals("status".into(), Value::String("active".into())),
                });
            }
            None => writes.push(Write::Put { item: claim, condition: Condition::NotExists }),
        }
        match ctx.store.transact(writes).await {
            Ok(()) => return Ok(previous.map(|old| old.channel_id)),
            Err(crate::ports::StoreError::Conflict { failed }) if failed == [2] => {
                // The previous holder is no longer active (disconnected): take the claim without displacing.
                let claim =
                    records::to_item(&AccountClaim { channel_id: channel.id.clone() }, &claim_key, &[])?;
                let old = previous.map(|o| o.channel_id.to_string()).unwrap_or_default();
                let writes = vec![
                    Write::Put { item: channel_item.clone(), condition: Condition::NotExists },
                    Write::Put {
                        item: claim,
                        condition: Condition::Equals("channel_id".into(), Value::String(old)),
                    },
                ];
                match ctx.store.transact(writes).await {
                    Ok(()) => return Ok(None),
                    Err(crate::ports::StoreError::Conflict { .. }) => continue,
                    Err(other) => return Err(other.into()),
                }
            }
            Err(crate::ports::StoreError::Conflict { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(Error::Conflict("the account was being connected concurrently; try again".into()))
}

pub(crate) fn channel_item(channel: &Channel) -> Result<Item> {
    records::to_item(
        channel,
        &records::channel_key(&channel.id),
        &[(Index::Gsi1, records::channels_of(&channel.tenant_id), channel.id.to_string())],
    )
}

/// A channel by id, as seen by one tenant: another tenant's channel is "not found".
pub async fn get_channel(ctx: &Context, principal: &Principal, id: &str) -> Result<Channel> {
    principal.require_admin()?;
    let channel = ChannelId::parse(id).ok_or(Error::NotFound { what: "channel" })?;
    let found = load_channel(ctx, &channel).await?.filter(|c| c.tenant_id == principal.tenant_id);
    found.ok_or(Error::NotFound { what: "channel" })
}

/// A channel by id, whatever its tenant (webhooks identify the channel, not the tenant).
pub async fn load_channel(ctx: &Context, id: &ChannelId) -> Result<Option<Channel>> {
    ctx.store.get(&records::channel_key(id)).await?.map(records::from_item).transpose()
}

pub async fn list_channels(
    ctx: &Context,
    principal: &Principal,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<Channel>, Option<String>)> {
    principal.require_admin()?;
    let query =
        Query::index(Index::Gsi1, records::channels_of(&principal.tenant_id)).limit(limit).after(page);
    let page = ctx.store.query(&query).await?;
    let channels = page.items.into_iter().map(records::from_item).collect::<Result<Vec<Channel>>>()?;
    Ok((channels, page.next))
}
