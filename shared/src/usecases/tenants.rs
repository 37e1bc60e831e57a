//! Tenants: the first one of a store, further ones, and the services each has switched on.

use serde_json::Value;

use crate::domain::{Features, Tenant, TenantId};
use crate::error::Result;
use crate::ports::store::{Condition, Item, Write};
use crate::repo;
use crate::secret::Secret;
use crate::usecases::Context;
use crate::usecases::auth::{self, Principal, Role};

pub async fn get_tenant(ctx: &Context, tenant: &TenantId) -> Result<Tenant> {
    repo::get_tenant(ctx.store.as_ref(), tenant).await
}

/// On the very first start of a store: one tenant with both services on and an admin key (the given one,
/// or a generated one). Answers `None` when the store was bootstrapped before.
pub async fn bootstrap_first_tenant(
    ctx: &Context,
    preset_key: Option<Secret>,
) -> Result<Option<(Tenant, Secret)>> {
    let marker = repo::bootstrap_marker_key();
    if ctx.store.get(&marker).await?.is_some() {
        return Ok(None);
    }
    let now = ctx.clock.now();
    let tenant = Tenant {
        id: TenantId::generate(),
        name: "Default".into(),
        features: Features::default(),
        created_at: now,
    };
    let key = preset_key.filter(|k| !k.expose().trim().is_empty()).unwrap_or_else(auth::generate_key);
    let mut marker_item = Item::new();
    marker_item.insert("tenant_id".into(), Value::String(tenant.id.to_string()));
    let writes = vec![
        Write::Put { item: repo::to_item(&marker_item, &marker, &[])?, condition: Condition::NotExists },
        Write::Put {
            item: repo::to_item(&tenant, &repo::tenant_key(&tenant.id), &[])?,
            condition: Condition::NotExists,
        },
        auth::api_key_write(&key, &tenant.id, Role::Admin, None, now)?,
    ];
    match ctx.store.transact(writes).await {
        Ok(()) => Ok(Some((tenant, key))),
        Err(conflict) if conflict.failed_at(0) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// Another tenant with its admin key (platform operations and tests; the local runner makes the first).
pub async fn create_tenant(ctx: &Context, name: &str, features: Features) -> Result<(Tenant, Secret)> {
    let tenant =
        Tenant { id: TenantId::generate(), name: name.to_owned(), features, created_at: ctx.clock.now() };
    let key = auth::generate_key();
    let writes = vec![
        Write::Put {
            item: repo::to_item(&tenant, &repo::tenant_key(&tenant.id), &[])?,
            condition: Condition::NotExists,
        },
        auth::api_key_write(&key, &tenant.id, Role::Admin, None, tenant.created_at)?,
    ];
    ctx.store.transact(writes).await?;
    Ok((tenant, key))
}

/// Switches the tenant's services on or off (admins only).
pub async fn update_features(ctx: &Context, principal: &Principal, features: Features) -> Result<Tenant> {
    principal.require_admin()?;
    let mut tenant = get_tenant(ctx, &principal.tenant_id).await?;
    tenant.features = features;
    let item = repo::to_item(&tenant, &repo::tenant_key(&tenant.id), &[])?;
    ctx.store.transact(vec![Write::Put { item, condition: Condition::Exists }]).await?;
    Ok(tenant)
}
