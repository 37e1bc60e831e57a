//! The platform operator's work above any one tenant: the first tenant and the operator key of a new AWS
//! stack (its custom resource runs this).

use serde_json::Value;

use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::repo;
use crate::secret::Secret;
use crate::usecases::Context;
use crate::usecases::auth::{self, Role};
use crate::usecases::tenants;

/// The secret holding the platform operator's key.
const OPERATOR_KEY_SECRET: &str = "platform/operator-key";
/// The secret holding the first tenant's admin key.
const FIRST_ADMIN_KEY_SECRET: &str = "platform/first-admin-key";
/// A key kept in a secret is refused below this length (as the local runner refuses a short preset key).
const MIN_KEY_CHARS: usize = 24;

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
        if key.expose().trim().chars().count() < MIN_KEY_CHARS {
            return Err(Error::Internal(format!(
                "the secret {name} holds a key shorter than {MIN_KEY_CHARS} characters; put a longer one \
                 there or delete the secret to have one generated"
            )));
        }
        return Ok((Secret::new(key.expose().trim()), false));
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
