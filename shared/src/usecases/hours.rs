//! The tenant's working hours: read and replaced by admins, consulted by routing and auto-replies to tell
//! working from non-working time. A tenant that never set them is always open.

use jiff::Timestamp;

use crate::domain::TenantId;
use crate::domain::hours::WorkingHours;
use crate::error::Result;
use crate::repo;
use crate::usecases::Context;
use crate::usecases::auth::Principal;

/// The tenant's hours, or `WorkingHours::always_open()` until they are set.
pub async fn get_working_hours(ctx: &Context, tenant: &TenantId) -> Result<WorkingHours> {
    repo::get_working_hours(ctx.store.as_ref(), tenant).await
}

/// Whether the tenant's contact center is open at this instant.
pub async fn is_open(ctx: &Context, tenant: &TenantId, at: Timestamp) -> Result<bool> {
    Ok(get_working_hours(ctx, tenant).await?.is_open(at))
}

pub async fn read_working_hours(ctx: &Context, principal: &Principal) -> Result<WorkingHours> {
    principal.require_admin()?;
    get_working_hours(ctx, &principal.tenant_id).await
}

/// Replaces the tenant's hours as a whole (they arrive validated).
pub async fn put_working_hours(
    ctx: &Context,
    principal: &Principal,
    hours: WorkingHours,
) -> Result<WorkingHours> {
    principal.require_admin()?;
    let write = repo::working_hours_write(&principal.tenant_id, &hours, ctx.clock.now())?;
    ctx.store.transact(vec![write]).await?;
    Ok(hours)
}
