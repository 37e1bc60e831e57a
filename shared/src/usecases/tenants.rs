//! Tenants: the first one of a store, further ones made by the platform operator, and the services each
//! has switched on (the operator switches them; a tenant's admins read them).

use serde_json::Value;

use crate::domain::{Features, Tenant, TenantId};
use crate::error::{Error, Result};
use crate::ports::store::{Condition, Index, Item, Write};
use crate::repo;
use crate::secret::Secret;
use crate::usecases::Context;
use crate::usecases::auth::{self, Principal, Role};

/// The secret-store name under which the stack's custom resource keeps the first tenant's admin key on
/// AWS (the local runner prints it instead).
pub const FIRST_ADMIN_KEY_SECRET: &str = "platform/first-admin-key";

pub async fn get_tenant(ctx: &Context, tenant: &TenantId) -> Result<Tenant> {
    repo::get_tenant(ctx.store.as_ref(), tenant).await
}

/// The caller's tenant and its services (admins only).
pub async fn read_tenant(ctx: &Context, principal: &Principal) -> Result<Tenant> {
    principal.require_admin()?;
    get_tenant(ctx, &principal.tenant_id).await
}

/// The tenant's record, listed in the operator's index of tenants.
fn tenant_write(tenant: &Tenant, condition: Condition) -> Result<Write> {
    let item = repo::to_item(
        tenant,
        &repo::tenant_key(&tenant.id),
        &[(Index::Gsi1, repo::tenants_index().to_owned(), tenant.id.to_string())],
    )?;
    Ok(Write::Put { item, condition })
}

/// On the very first start of a store: one tenant with both services on and an admin key (the given one,
/// at least [`auth::MIN_KEY_CHARS`] long, or a generated one). Answers `None` when the store was
/// bootstrapped before.
pub async fn bootstrap_first_tenant(
    ctx: &Context,
    preset_key: Option<Secret>,
) -> Result<Option<(Tenant, Secret)>> {
    if let Some(key) = &preset_key {
        auth::check_preset_key(key, "the admin key")
            .map_err(|message| Error::rule("invalid_key", "admin_key", message))?;
    }
    let marker = repo::bootstrap_marker_key();
    if ctx.store.get(&marker).await?.is_some() {
        return Ok(None);
    }
    let tenant = Tenant::create("Default", Features::default(), ctx.clock.now())?;
    let key = preset_key.unwrap_or_else(auth::generate_key);
    let mut marker_item = Item::new();
    marker_item.insert("tenant_id".into(), Value::String(tenant.id.to_string()));
    let writes = vec![
        Write::Put { item: repo::to_item(&marker_item, &marker, &[])?, condition: Condition::NotExists },
        tenant_write(&tenant, Condition::NotExists)?,
        auth::api_key_write(&key, &tenant.id, Role::Admin, None, tenant.created_at)?,
    ];
    match ctx.store.transact(writes).await {
        Ok(()) => Ok(Some((tenant, key))),
        Err(conflict) if conflict.failed_at(0) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// Another tenant with its first admin key, which is answered this once (the platform operator's work).
pub async fn create_tenant(ctx: &Context, name: &str, features: Features) -> Result<(Tenant, Secret)> {
    let tenant = Tenant::create(name, features, ctx.clock.now())?;
    let key = auth::generate_key();
    let writes = vec![
        tenant_write(&tenant, Condition::NotExists)?,
        auth::api_key_write(&key, &tenant.id, Role::Admin, None, tenant.created_at)?,
    ];
    ctx.store.transact(writes).await?;
    Ok((tenant, key))
}

/// The deployment's tenants, oldest first, a page at a time.
pub async fn list_tenants(
    ctx: &Context,
    limit: usize,
    page: Option<String>,
) -> Result<(Vec<Tenant>, Option<String>)> {
    repo::list_index(ctx.store.as_ref(), Index::Gsi1, repo::tenants_index().to_owned(), limit, page).await
}

/// Switches a tenant's services on or off: the platform operator's decision, never a tenant's own.
pub async fn set_features(ctx: &Context, tenant: &TenantId, features: Features) -> Result<Tenant> {
    let mut tenant = get_tenant(ctx, tenant).await?;
    tenant.features = features;
    ctx.store.transact(vec![tenant_write(&tenant, Condition::Exists)?]).await.map_err(|conflict| {
        if conflict.failed_at(0) { Error::NotFound { what: "tenant" } } else { conflict.into() }
    })?;
    Ok(tenant)
}

/// A tenant's admin asking to switch its services: refused, since only the platform operator may.
pub fn refuse_features_change(principal: &Principal) -> Result<()> {
    principal.require_admin()?;
    Err(Error::Forbidden {
        code: "operator_only",
        message: "only the platform operator switches a tenant's services (features); admins read them"
            .into(),
    })
}
