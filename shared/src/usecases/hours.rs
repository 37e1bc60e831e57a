//! The tenant's working hours: read and replaced by admins, consulted by routing and auto-replies to tell
//! working from non-working time. A tenant that never set them is always open.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::TenantId;
use crate::domain::hours::WorkingHours;
use crate::error::Result;
use crate::ports::store::{Condition, Write};
use crate::records;
use crate::usecases::Context;
use crate::usecases::auth::Principal;

#[derive(Debug, Serialize, Deserialize)]
struct HoursRecord {
    tenant_id: TenantId,
    hours: WorkingHours,
    updated_at: Timestamp,
}

/// The tenant's hours, or `WorkingHours::always_open()` until they are set.
pub async fn get_working_hours(ctx: &Context, tenant: &TenantId) -> Result<WorkingHours> {
    match ctx.store.get(&records::working_hours_key(tenant)).await? {
        Some(item) => Ok(records::from_item::<HoursRecord>(item)?.hours),
        None => Ok(WorkingHours::always_open()),
    }
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
    let record = HoursRecord { tenant_id: principal.tenant_id.clone(), hours, updated_at: ctx.clock.now() };
    let item = records::to_item(&record, &records::working_hours_key(&principal.tenant_id), &[])?;
    ctx.store.transact(vec![Write::Put { item, condition: Condition::Always }]).await?;
    Ok(record.hours)
}
