//! Connecting and reading channels. Connecting checks the credential with the provider, keeps every
//! credential in the secret store, registers the webhook, and enforces "one account, one channel": the
//! newest channel of an account is the effective one, the older one is marked displaced.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::settings::Handling;
use crate::domain::{Channel, ChannelId, ChannelSettings, ChannelStatus, Provider, Tenant, TenantId};
use crate::error::{Error, Result};
use crate::ports::channel::ChannelSecrets;
use crate::ports::store::{Condition, Index, Item, Query, Write};
use crate::repo;
use crate::secret::Secret;
use crate::usecases::Context;
use crate::usecases::auth::Principal;
use crate::usecases::tokens::{self, Renewal};

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
    /// The older channel of the same account in the same tenant, now inactive. One of another tenant is
    /// displaced too, but not named: tenants learn nothing of each other.
    pub displaced: Option<ChannelId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccountClaim {
    channel_id: ChannelId,
    /// The holder's tenant (claims of earlier versions, kept per tenant, have none: the key's tenant).
    #[serde(default)]
    tenant_id: Option<TenantId>,
}

impl AccountClaim {
    fn of(channel: &Channel) -> Self {
        Self { channel_id: channel.id.clone(), tenant_id: Some(channel.tenant_id.clone()) }
    }

    fn held_by_tenant(&self, tenant: &TenantId) -> bool {
        self.tenant_id.as_ref().is_none_or(|holder| holder == tenant)
    }
}

/// The account's holder: the deployment-wide claim, and this tenant's claim of an earlier version.
async fn account_holders(
    ctx: &Context,
    tenant: &TenantId,
    provider: Provider,
    account: &str,
) -> Result<(Option<AccountClaim>, Option<AccountClaim>)> {
    let keys = [
        repo::account_claim_key(provider, account),
        repo::tenant_account_claim_key(tenant, provider, account),
    ];
    let mut found = ctx.store.get_many(&keys).await?.into_iter();
    let mut next = || found.next().flatten().map(repo::from_item::<AccountClaim>).transpose();
    Ok((next()?, next()?))
}

pub async fn create_channel(ctx: &Context, principal: &Principal, new: NewChannel) -> Result<Created> {
    create_channel_with(ctx, principal, new, None).await
}

/// Where the connection comes from: the admin's credentials, checked by the provider module
/// (`module.connect`), or a connection a consent flow already made (`usecases::avito_connect`).
pub(crate) async fn create_channel_with(
    ctx: &Context,
    principal: &Principal,
    new: NewChannel,
    made: Option<crate::ports::channel::Connection>,
) -> Result<Created> {
    principal.require_admin()?;
    let tenant = repo::get_tenant(ctx.store.as_ref(), &principal.tenant_id).await?;
    let name = valid_name(&new.name)?;
    if new.provider.is_whatsapp() && !tenant.features.contact_center {
        return Err(Error::rule(
            "contact_center_off",
            "provider",
            "WhatsApp needs the contact-center service / WhatsApp доступен только с услугой контакт-центра",
        ));
    }
    check_settings_references(ctx, &tenant, new.provider, &new.settings).await?;
    let module = ctx.providers.get(new.provider)?;
    let id = ChannelId::generate();
    let mut connection = match made {
        Some(connection) => connection,
        None => module.connect(&new.credentials).await?,
    };
    connection.secrets = connection.secrets.with(ChannelSecrets::WEBHOOK_SECRET, Secret::generate(48));
    let webhook_url = module.webhook_url(&ctx.public_base_url, new.provider, &id, &connection.secrets);
    ctx.put_channel_secrets(&tenant.id, &id, &connection.secrets).await?;
    let now = ctx.clock.now();
    let mut channel = Channel {
        id,
        tenant_id: tenant.id.clone(),
        provider: new.provider,
        name,
        account: connection.account,
        status: ChannelStatus::Pending,
        settings: new.settings,
        webhook_url,
        credentials_masked: connection.masked,
        displaced_by: None,
        created_at: now,
        updated_at: now,
    };
    // The channel exists (pending) before the provider hears of its URL: Viber and VK call the URL while
    // it is being registered, and a pending channel answers their checks without storing anything.
    let pending = Write::Put { item: repo::channel_item(&channel)?, condition: Condition::NotExists };
    let mut writes = vec![pending];
    writes.extend(repo::email_channel_writes(&channel)?);
    if let Err(error) = ctx.store.transact(writes).await {
        forget_secrets(ctx, &tenant.id, &channel.id).await;
        return Err(error.into());
    }
    if let Err(error) = module.register_webhook(&connection.secrets, &channel.webhook_url).await {
        forget_pending(ctx, &channel).await;
        return Err(error);
    }
    channel.status = ChannelStatus::Active;
    match save_new_channel(ctx, &channel).await {
        Ok(displaced) => Ok(Created { channel, displaced }),
        Err(error) => {
            if let Err(cleanup) = module.remove_webhook(&connection.secrets).await {
                tracing::warn!(error = %cleanup, channel = %channel.id, "webhook of a failed connect not removed");
            }
            forget_pending(ctx, &channel).await;
            Err(error)
        }
    }
}

/// Undoes a connect that did not finish: the pending channel and its credentials go.
async fn forget_pending(ctx: &Context, channel: &Channel) {
    let pending = Write::Delete {
        key: repo::channel_key(&channel.id),
        condition: Condition::Equals("status".into(), Value::String("pending".into())),
    };
    if let Err(error) = ctx.store.transact(vec![pending]).await {
        tracing::error!(%error, channel = %channel.id, "a pending channel could not be removed");
    }
    forget_secrets(ctx, &channel.tenant_id, &channel.id).await;
}

async fn forget_secrets(ctx: &Context, tenant: &TenantId, channel: &ChannelId) {
    if let Err(error) = ctx.delete_channel_secrets(tenant, channel).await {
        tracing::error!(%error, %channel, "could not remove the credentials of a channel that was not created");
    }
}

/// Activates the pending channel and claims its account deployment-wide, displacing the account's previous
/// channel (of this tenant or another) in the same transaction: the seed's last-wins rule.
async fn save_new_channel(ctx: &Context, channel: &Channel) -> Result<Option<ChannelId>> {
    let claim_key = repo::account_claim_key(channel.provider, &channel.account.id);
    let earlier_key =
        repo::tenant_account_claim_key(&channel.tenant_id, channel.provider, &channel.account.id);
    let channel_item = repo::channel_item(channel)?;
    let claim = repo::to_item(&AccountClaim::of(channel), &claim_key, &[])?;
    let activate = Condition::Equals("status".into(), Value::String("pending".into()));
    for _ in 0..5 {
        let (current, earlier) =
            account_holders(ctx, &channel.tenant_id, channel.provider, &channel.account.id).await?;
        let claim_condition = match &current {
            Some(old) => Condition::Equals("channel_id".into(), Value::String(old.channel_id.to_string())),
            None => Condition::NotExists,
        };
        let mut writes = vec![
            Write::Put { item: channel_item.clone(), condition: activate.clone() },
            Write::Put { item: claim.clone(), condition: claim_condition },
        ];
        if earlier.is_some() {
            // An earlier version's claim moves to the deployment-wide one.
            writes.push(Write::Delete { key: earlier_key.clone(), condition: Condition::Exists });
        }
        let previous = current.or(earlier);
        let displace_at = writes.len();
        if let Some(old) = &previous {
            let same_tenant = old.held_by_tenant(&channel.tenant_id);
            let mut set = Item::new();
            set.insert("status".into(), serde_json::to_value(ChannelStatus::Displaced).unwrap_or_default());
            if same_tenant {
                set.insert("displaced_by".into(), Value::String(channel.id.to_string()));
            }
            set.insert("updated_at".into(), Value::String(channel.created_at.to_string()));
            writes.push(Write::Update {
                key: repo::channel_key(&old.channel_id),
                set,
                remove: Vec::new(),
                condition: Condition::Equals("status".into(), Value::String("active".into())),
            });
        }
        match ctx.store.transact(writes.clone()).await {
            Ok(()) => {
                let Some(old) = previous else { return Ok(None) };
                ctx.forget_channel(&old.channel_id);
                if !old.held_by_tenant(&channel.tenant_id) {
                    tracing::info!(channel = %channel.id, "the account moved here from another tenant's channel, now displaced");
                    return Ok(None);
                }
                return Ok(Some(old.channel_id));
            }
            Err(crate::ports::StoreError::Conflict { failed }) if failed == [displace_at] => {
                // The previous holder is not active. One that awaits re-authorization is displaced all the
                // same (this is its re-authorization); a disconnected one is left as it is.
                if let Some(Write::Update { condition, .. }) = writes.get_mut(displace_at) {
                    *condition = Condition::Equals(
                        "status".into(),
                        serde_json::to_value(ChannelStatus::ReauthorizationRequired).unwrap_or_default(),
                    );
                }
                match ctx.store.transact(writes.clone()).await {
                    Ok(()) => {
                        let Some(old) = previous else { return Ok(None) };
                        ctx.forget_channel(&old.channel_id);
                        return Ok(old.held_by_tenant(&channel.tenant_id).then_some(old.channel_id));
                    }
                    Err(crate::ports::StoreError::Conflict { failed }) if failed == [displace_at] => {}
                    Err(crate::ports::StoreError::Conflict { .. }) => continue,
                    Err(other) => return Err(other.into()),
                }
                writes.truncate(displace_at);
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

/// A channel by id, as seen by one tenant: another tenant's channel is "not found".
pub async fn get_channel(ctx: &Context, principal: &Principal, id: &str) -> Result<Channel> {
    principal.require_admin()?;
    channel_to_write_on(ctx, principal, id).await
}

/// A channel an employee of the tenant writes on (its templates, a conversation they start): any key of
/// the tenant; another tenant's channel is "not found".
pub async fn channel_to_write_on(ctx: &Context, principal: &Principal, id: &str) -> Result<Channel> {
    let channel = ChannelId::parse(id).ok_or(Error::NotFound { what: "channel" })?;
    let found = repo::load_channel(ctx.store.as_ref(), &channel)
        .await?
        .filter(|c| c.tenant_id == principal.tenant_id);
    found.ok_or(Error::NotFound { what: "channel" })
}

pub async fn list_channels(
    ctx: &Context,
    principal: &Principal,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<Channel>, Option<String>)> {
    principal.require_admin()?;
    let query = Query::index(Index::Gsi1, repo::channels_of(&principal.tenant_id)).limit(limit).after(page);
    let page = ctx.store.query(&query).await?;
    let channels = page.items.into_iter().map(repo::from_item).collect::<Result<Vec<Channel>>>()?;
    Ok((channels, page.next))
}

/// The tenant's channels as the workspace names them, for any key of the tenant (an employee sees which
/// channel a dialog came in on; settings and credentials stay admins').
pub async fn channel_names(
    ctx: &Context,
    principal: &Principal,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<Channel>, Option<String>)> {
    let admin = Principal::admin_of(principal.tenant_id.clone());
    list_channels(ctx, &admin, limit, page).await
}

/// The rules that need the tenant's data: handling names an employee, group or (where the provider
/// allows it) chatbot of the tenant; chatbots only where the tenant's chatbot service is on.
pub async fn check_settings_references(
    ctx: &Context,
    tenant: &Tenant,
    provider: Provider,
    settings: &ChannelSettings,
) -> Result<()> {
    let missing =
        |field: &str, what: &str| Error::rule("not_found", field, format!("no such {what} in this tenant"));
    match &settings.handling {
        None => {}
        Some(Handling::Employee { employee_id }) => {
            let found = repo::get_employee(ctx.store.as_ref(), &tenant.id, employee_id).await?;
            found.ok_or_else(|| missing("handling.employee_id", "employee"))?;
        }
        Some(Handling::Group { group_id }) => {
            let found = repo::get_group(ctx.store.as_ref(), &tenant.id, group_id).await?;
            found.ok_or_else(|| missing("handling.group_id", "group"))?;
        }
        Some(Handling::Chatbot { chatbot_id }) => {
            if !provider.allows_chatbot_handling() {
                return Err(Error::rule(
                    "chatbot_handling_not_allowed",
                    "handling.chatbot_id",
                    format!(
                        "a chatbot cannot handle {} dialogs; choose an employee or a group",
                        provider.kind()
                    ),
                ));
            }
            check_chatbot(ctx, tenant, chatbot_id, "handling.chatbot_id").await?;
        }
    }
    if let Some(chatbot_id) = &settings.off_hours.chatbot_id {
        check_chatbot(ctx, tenant, chatbot_id, "off_hours.chatbot_id").await?;
    }
    Ok(())
}

async fn check_chatbot(
    ctx: &Context,
    tenant: &Tenant,
    chatbot: &crate::domain::ChatbotId,
    field: &str,
) -> Result<()> {
    if !tenant.features.chatbots {
        return Err(Error::rule(
            "chatbots_off",
            field,
            "chatbots need the chatbot service / чат-боты доступны только с услугой чат-ботов",
        ));
    }
    if repo::get_chatbot(ctx.store.as_ref(), &tenant.id, chatbot).await?.is_none() {
        return Err(Error::rule("not_found", field, "no such chatbot in this tenant"));
    }
    Ok(())
}

/// What an admin may change on a channel; `None` keeps the current value. New credentials must belong to
/// the same account (another account is another channel); the webhook secret is kept.
#[derive(Debug, Default)]
pub struct ChannelUpdate {
    pub name: Option<String>,
    pub settings: Option<ChannelSettings>,
    pub credentials: Option<Map<String, Value>>,
}

pub async fn update_channel(
    ctx: &Context,
    principal: &Principal,
    id: &str,
    update: ChannelUpdate,
) -> Result<Channel> {
    let mut channel = get_channel(ctx, principal, id).await?;
    if channel.status == ChannelStatus::Disconnected {
        return Err(Error::rule(
            "channel_disconnected",
            "status",
            "a disconnected channel cannot be changed",
        ));
    }
    let tenant = repo::get_tenant(ctx.store.as_ref(), &principal.tenant_id).await?;
    let previous_update = channel.updated_at;
    if let Some(name) = update.name {
        channel.name = valid_name(&name)?;
    }
    let auto_close_before = channel.settings.auto_close.seconds();
    if let Some(settings) = update.settings {
        check_settings_references(ctx, &tenant, channel.provider, &settings).await?;
        channel.settings = settings;
    }
    if let Some(credentials) = update.credentials {
        let module = ctx.providers.get(channel.provider)?;
        let connection = module.connect(&credentials).await?;
        if connection.account.id != channel.account.id {
            return Err(Error::rule(
                "account_mismatch",
                "credentials",
                "these credentials belong to another account; connect it as a new channel",
            ));
        }
        let current = ctx.channel_secrets(&channel.tenant_id, &channel.id).await?.unwrap_or_default();
        let webhook_secret = current.require(ChannelSecrets::WEBHOOK_SECRET)?.clone();
        let secrets = connection.secrets.with(ChannelSecrets::WEBHOOK_SECRET, webhook_secret);
        module.register_webhook(&secrets, &channel.webhook_url).await?;
        ctx.put_channel_secrets(&channel.tenant_id, &channel.id, &secrets).await?;
        channel.account = connection.account;
        channel.credentials_masked = connection.masked;
        // Working credentials are what a channel awaiting re-authorization lacked (it still holds its
        // account's claim: a displaced one is no longer in that status).
        if channel.status == ChannelStatus::ReauthorizationRequired {
            channel.status = ChannelStatus::Active;
        }
    }
    channel.updated_at = ctx.clock.now().max(previous_update);
    let mut writes = vec![Write::Put {
        item: repo::channel_item(&channel)?,
        condition: Condition::Equals("updated_at".into(), Value::String(previous_update.to_string())),
    }];
    // The open dialogs' close timers were armed under the longer limit: the close job brings them forward
    // (usecases::timers). A longer limit needs nothing: a timer firing early re-arms itself.
    if channel.settings.auto_close.seconds() < auto_close_before {
        writes.push(repo::close_rescan_write(&channel, ctx.clock.now())?);
    }
    match ctx.store.transact(writes).await {
        Ok(()) => {
            ctx.forget_channel(&channel.id);
            Ok(channel)
        }
        Err(crate::ports::StoreError::Conflict { .. }) => {
            Err(Error::Conflict("the channel was changed meanwhile; read it again and retry".into()))
        }
        Err(other) => Err(other.into()),
    }
}

/// Disconnects after explicit confirmation: the provider's webhook is removed, the channel stops receiving
/// and sending, its account may be connected again, and its credentials are deleted (on AWS: scheduled for
/// deletion with a recovery window).
pub async fn disconnect_channel(
    ctx: &Context,
    principal: &Principal,
    id: &str,
    confirm: bool,
) -> Result<Channel> {
    let mut channel = get_channel(ctx, principal, id).await?;
    if !confirm {
        return Err(Error::rule(
            "confirmation_required",
            "confirm",
            "send {\"confirm\": true} to disconnect / подтвердите отключение",
        ));
    }
    if channel.status == ChannelStatus::Disconnected {
        return Ok(channel);
    }
    // A displaced channel's bot or account now belongs to the newer channel: its webhook stays.
    let still_registered = channel.status != ChannelStatus::Displaced;
    if let Some(secrets) =
        ctx.channel_secrets(&channel.tenant_id, &channel.id).await?.filter(|_| still_registered)
    {
        let module = ctx.providers.get(channel.provider)?;
        // A consent connection's token may have expired since the last send: renewed first (best effort).
        let secrets = if module.renewal_due(&secrets, ctx.clock.now()) {
            match tokens::usable_secrets(ctx, &channel, module, secrets.clone(), Renewal::IfDue).await {
                Ok(renewed) => renewed,
                Err(error) => {
                    tracing::warn!(%error, channel = %channel.id, "the token was not renewed to remove the webhook");
                    // A refused renewal marked the channel: disconnect what the store now holds.
                    if let Some(latest) = repo::load_channel(ctx.store.as_ref(), &channel.id).await? {
                        channel.updated_at = latest.updated_at;
                    }
                    secrets
                }
            }
        } else {
            secrets
        };
        if let Err(error) = module.remove_webhook(&secrets).await {
            // The channel stops receiving anyway: without credentials no request verifies.
            tracing::warn!(%error, channel = %channel.id, "the provider's webhook could not be removed");
        }
    }
    let previous_update = channel.updated_at;
    channel.status = ChannelStatus::Disconnected;
    channel.updated_at = ctx.clock.now().max(previous_update);
    let holder = Condition::Equals("channel_id".into(), Value::String(channel.id.to_string()));
    let release_claim = Write::Delete {
        key: repo::account_claim_key(channel.provider, &channel.account.id),
        condition: holder.clone(),
    };
    let save = || -> Result<Write> {
        Ok(Write::Put {
            item: repo::channel_item(&channel)?,
            condition: Condition::Equals("updated_at".into(), Value::String(previous_update.to_string())),
        })
    };
    match ctx.store.transact(vec![save()?, release_claim]).await {
        Ok(()) => {}
        // The account is held by a newer channel (this one was displaced): only this channel changes.
        Err(conflict) if conflict.failed_at(1) && !conflict.failed_at(0) => {
            ctx.store.transact(vec![save()?]).await?
        }
        Err(crate::ports::StoreError::Conflict { .. }) => {
            return Err(Error::Conflict("the channel was changed meanwhile; try again".into()));
        }
        Err(other) => return Err(other.into()),
    }
    // A claim of an earlier version, per tenant, goes too if this channel holds it.
    let earlier = repo::tenant_account_claim_key(&channel.tenant_id, channel.provider, &channel.account.id);
    match ctx.store.transact(vec![Write::Delete { key: earlier, condition: holder }]).await {
        Ok(()) | Err(crate::ports::StoreError::Conflict { .. }) => {}
        Err(other) => return Err(other.into()),
    }
    ctx.forget_channel(&channel.id);
    ctx.delete_channel_secrets(&channel.tenant_id, &channel.id).await?;
    Ok(channel)
}

fn valid_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::rule("invalid_name", "name", format!("1 to {MAX_NAME_CHARS} characters")));
    }
    Ok(name.to_owned())
}

fn check_provider_allowed(tenant: &Tenant, provider: Provider) -> Result<()> {
    if provider.is_whatsapp() && !tenant.features.contact_center {
        return Err(Error::rule(
            "contact_center_off",
            "provider",
            "WhatsApp needs the contact-center service / WhatsApp доступен только с услугой контакт-центра",
        ));
    }
    Ok(())
}

/// The accounts an admin's credentials reach, to pick one before connecting (Infobip: the WhatsApp
/// numbers of the account). Nothing is saved.
pub async fn list_provider_accounts(
    ctx: &Context,
    principal: &Principal,
    provider: Provider,
    credentials: &Map<String, Value>,
) -> Result<Vec<crate::domain::Account>> {
    principal.require_admin()?;
    check_provider_allowed(&repo::get_tenant(ctx.store.as_ref(), &principal.tenant_id).await?, provider)?;
    ctx.providers.get(provider)?.list_accounts(credentials).await
}

/// "Change provider": a WhatsApp channel moves to another of the three providers. It keeps its id, name
/// and settings; the new credentials are checked first (nothing changes when they fail), the new webhook
/// is registered, then the old provider's webhook and credentials are removed.
pub async fn change_whatsapp_provider(
    ctx: &Context,
    principal: &Principal,
    id: &str,
    provider: Provider,
    credentials: &Map<String, Value>,
) -> Result<Channel> {
    let mut channel = get_channel(ctx, principal, id).await?;
    if !channel.provider.is_whatsapp() {
        return Err(Error::rule("not_whatsapp", "provider", "only a WhatsApp channel changes its provider"));
    }
    if !provider.is_whatsapp() || provider == channel.provider {
        return Err(Error::rule(
            "same_provider",
            "whatsapp_provider",
            "choose another of edna, messagebird and infobip",
        ));
    }
    if channel.status != ChannelStatus::Active {
        return Err(Error::rule(
            "channel_not_active",
            "status",
            "only an active channel changes its provider",
        ));
    }
    check_provider_allowed(&repo::get_tenant(ctx.store.as_ref(), &principal.tenant_id).await?, provider)?;
    let module = ctx.providers.get(provider)?;
    let mut connection = module.connect(credentials).await?;
    let claim_key = repo::account_claim_key(provider, &connection.account.id);
    let (current, earlier) =
        account_holders(ctx, &channel.tenant_id, provider, &connection.account.id).await?;
    if let Some(holder) = current.or(earlier) {
        let message = if holder.held_by_tenant(&channel.tenant_id) {
            format!("this number is connected in channel {}; disconnect it first", holder.channel_id)
        } else {
            // Another tenant's: nothing about it is told.
            "this number is connected elsewhere on the platform; it must be disconnected there first".into()
        };
        return Err(Error::rule("account_in_use", "credentials", message));
    }
    connection.secrets = connection.secrets.with(ChannelSecrets::WEBHOOK_SECRET, Secret::generate(48));
    let webhook_url = module.webhook_url(&ctx.public_base_url, provider, &channel.id, &connection.secrets);
    module.register_webhook(&connection.secrets, &webhook_url).await?;
    let old_secrets = ctx.channel_secrets(&channel.tenant_id, &channel.id).await?;
    let (old_provider, old_account) = (channel.provider, channel.account.id.clone());
    let previous_update = channel.updated_at;
    channel.provider = provider;
    channel.account = connection.account;
    channel.webhook_url = webhook_url;
    channel.credentials_masked = connection.masked;
    channel.updated_at = ctx.clock.now().max(previous_update);
    let writes = vec![
        Write::Put {
            item: repo::channel_item(&channel)?,
            condition: Condition::Equals("updated_at".into(), Value::String(previous_update.to_string())),
        },
        Write::Put {
            item: repo::to_item(&AccountClaim::of(&channel), &claim_key, &[])?,
            condition: Condition::NotExists,
        },
        Write::Delete {
            key: repo::account_claim_key(old_provider, &old_account),
            condition: Condition::Always,
        },
        Write::Delete {
            key: repo::tenant_account_claim_key(&channel.tenant_id, old_provider, &old_account),
            condition: Condition::Always,
        },
    ];
    if let Err(error) = ctx.store.transact(writes).await {
        if let Err(cleanup) = module.remove_webhook(&connection.secrets).await {
            tracing::warn!(error = %cleanup, channel = %channel.id, "the new provider's webhook was not removed");
        }
        return Err(match error {
            crate::ports::StoreError::Conflict { .. } => {
                Error::Conflict("the channel changed meanwhile; read it again and retry".into())
            }
            other => other.into(),
        });
    }
    ctx.forget_channel(&channel.id);
    ctx.put_channel_secrets(&channel.tenant_id, &channel.id, &connection.secrets).await?;
    if let Some(old) = old_secrets
        && let Err(error) = ctx.providers.get(old_provider)?.remove_webhook(&old).await
    {
        tracing::warn!(%error, channel = %channel.id, "the old provider's webhook could not be removed");
    }
    Ok(channel)
}
