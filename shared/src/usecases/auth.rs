//! API keys and who is calling: keys are stored only as SHA-256 hashes (they are long random strings, so
//! a fast hash is enough), each tied to a tenant and a role.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{EmployeeId, TenantId};
use crate::error::{Error, Result};
use crate::ports::store::{Condition, Index, Key, Query, Write};
use crate::repo;
use crate::secret::Secret;
use crate::usecases::Context;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Employee,
}

/// The caller of an API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub role: Role,
    /// For an employee key: the employee it belongs to.
    pub employee_id: Option<EmployeeId>,
}

impl Principal {
    pub fn require_admin(&self) -> Result<()> {
        match self.role {
            Role::Admin => Ok(()),
            // An employee key cannot see admin resources at all: as if they did not exist.
            Role::Employee => Err(Error::NotFound { what: "resource" }),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ApiKeyRecord {
    id: String,
    tenant_id: TenantId,
    role: Role,
    employee_id: Option<EmployeeId>,
    created_at: Timestamp,
}

pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The caller behind `Authorization: Bearer <key>`, or `Unauthorized`.
pub async fn authenticate(ctx: &Context, bearer: Option<&str>) -> Result<Principal> {
    let key = bearer.map(str::trim).filter(|k| !k.is_empty() && k.len() <= 256).ok_or(Error::Unauthorized)?;
    let item = ctx.store.get(&repo::api_key_key(&hash_key(key))).await?.ok_or(Error::Unauthorized)?;
    let record: ApiKeyRecord = repo::from_item(item)?;
    Ok(Principal { tenant_id: record.tenant_id, role: record.role, employee_id: record.employee_id })
}

pub(crate) fn generate_key() -> Secret {
    Secret::new(format!("ock_{}", Secret::generate(40).expose()))
}

pub(crate) fn api_key_write(
    key: &Secret,
    tenant: &TenantId,
    role: Role,
    employee: Option<EmployeeId>,
    at: Timestamp,
) -> Result<Write> {
    let id = uuid::Uuid::now_v7().to_string();
    let record = ApiKeyRecord {
        id: id.clone(),
        tenant_id: tenant.clone(),
        role,
        employee_id: employee,
        created_at: at,
    };
    let item = repo::to_item(
        &record,
        &repo::api_key_key(&hash_key(key.expose())),
        &[(Index::Gsi1, repo::api_keys_of(tenant), id)],
    )?;
    Ok(Write::Put { item, condition: Condition::NotExists })
}

/// A new API key for the tenant; the clear key is answered once and never stored. An employee key is
/// tied to an employee of the same tenant; an admin key to none.
pub async fn create_api_key(
    ctx: &Context,
    tenant: &TenantId,
    role: Role,
    employee: Option<EmployeeId>,
) -> Result<Secret> {
    match (role, &employee) {
        (Role::Admin, Some(_)) => {
            return Err(Error::rule(
                "admin_key_with_employee",
                "employee_id",
                "an admin key is not tied to an employee",
            ));
        }
        (Role::Employee, None) => {
            return Err(Error::rule(
                "employee_required",
                "employee_id",
                "an employee key names its employee",
            ));
        }
        (Role::Employee, Some(id)) => {
            if repo::get_employee(ctx.store.as_ref(), tenant, id).await?.is_none() {
                return Err(Error::rule("not_found", "employee_id", "no such employee in this tenant"));
            }
        }
        (Role::Admin, None) => {}
    }
    let key = generate_key();
    ctx.store.transact(vec![api_key_write(&key, tenant, role, employee, ctx.clock.now())?]).await?;
    Ok(key)
}

/// Deletes every API key tied to the employee (when the employee is deleted).
pub async fn revoke_employee_keys(ctx: &Context, tenant: &TenantId, employee: &EmployeeId) -> Result<usize> {
    let mut revoked = 0;
    let mut page = None;
    // Bounded: a tenant has few keys; 100 pages of 100 is far beyond any real tenant.
    for _ in 0..100 {
        let query = Query::index(Index::Gsi1, repo::api_keys_of(tenant)).limit(100).after(page);
        let found = ctx.store.query(&query).await?;
        for item in found.items {
            let key = Key::of(&item);
            let record: ApiKeyRecord = repo::from_item(item)?;
            if let (Some(key), Some(owner)) = (key, record.employee_id.as_ref())
                && owner == employee
            {
                ctx.store.transact(vec![Write::Delete { key, condition: Condition::Always }]).await?;
                revoked += 1;
            }
        }
        page = found.next;
        if page.is_none() {
            break;
        }
    }
    Ok(revoked)
}
