//! The Secrets Manager adapter of the [`SecretStore`] port: one secret per name, under a common prefix.
//!
//! `put` updates first (`PutSecretValue`: a new version of an existing secret, all that rotating a
//! credential needs and all the e-mail poller's role may do) and creates only a secret that does not exist.
//!
//! A deleted secret is only scheduled for deletion (7 days' recovery window): while it is, Secrets Manager
//! refuses to read it, to give it a new value or to create one of the same name. This adapter reads it as
//! missing and, when it is put again, restores it and writes the new value. (moto 5.2 would store a new
//! value in a deleted secret and keep it deleted; `infra/moto/with-moto.sh` makes it refuse, as AWS does.)

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;

use super::LazyClient;
use crate::ports::secrets::{SecretError, SecretStore};
use crate::secret::Secret;

/// The shortest recovery window Secrets Manager allows: a deletion by mistake can still be undone.
const RECOVERY_WINDOW_DAYS: i64 = 7;

const NOT_FOUND: &str = "ResourceNotFoundException";
const EXISTS: &str = "ResourceExistsException";
/// What Secrets Manager answers on a secret scheduled for deletion (among other wrong states).
const INVALID_STATE: &str = "InvalidRequestException";

/// The [`SecretStore`] on Secrets Manager; secret `name` is stored as `prefix + name`.
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: LazyClient<Client>,
    prefix: String,
}

impl SecretsManagerStore {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self { client: client.into(), prefix: prefix.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, prefix: impl Into<String>) -> Self {
        Self { client: LazyClient::of(config, Client::new), prefix: prefix.into() }
    }

    fn secret_id(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn put_value(&self, id: &str, value: &Secret) -> Result<(), SdkError<PutSecretValueError>> {
        self.client
            .get()
            .put_secret_value()
            .secret_id(id)
            .secret_string(value.expose())
            .send()
            .await
            .map(drop)
    }

    async fn restore(&self, id: &str) -> Result<(), SecretError> {
        self.client
            .get()
            .restore_secret()
            .secret_id(id)
            .send()
            .await
            .map(drop)
            .map_err(|err| sdk_error("RestoreSecret", err))
    }

    /// A secret that did not exist when `PutSecretValue` was tried.
    async fn create(&self, id: &str, value: &Secret) -> Result<(), SecretError> {
        match self.client.get().create_secret().name(id).secret_string(value.expose()).send().await {
            Ok(_) => Ok(()),
            // Created meanwhile by another writer; moto also answers this for a secret scheduled for
            // deletion (and would keep it deleted), so a secret found here is checked before the update.
            Err(err) if err.code() == Some(EXISTS) => {
                if self.scheduled_for_deletion(id).await? {
                    self.restore(id).await?;
                }
                self.put_value(id, value).await.map_err(|err| sdk_error("PutSecretValue", err))
            }
            // AWS refuses to create a secret whose name is scheduled for deletion.
            Err(err) if err.code() == Some(INVALID_STATE) => self.restore_and_put(id, value).await,
            Err(err) => Err(sdk_error("CreateSecret", err)),
        }
    }

    async fn restore_and_put(&self, id: &str, value: &Secret) -> Result<(), SecretError> {
        self.restore(id).await?;
        self.put_value(id, value).await.map_err(|err| sdk_error("PutSecretValue", err))
    }

    /// Whether the secret exists but is scheduled for deletion: what an `InvalidRequestException` means here.
    async fn scheduled_for_deletion(&self, id: &str) -> Result<bool, SecretError> {
        match self.client.get().describe_secret().secret_id(id).send().await {
            Ok(described) => Ok(described.deleted_date().is_some()),
            Err(err) if err.code() == Some(NOT_FOUND) => Ok(false),
            Err(err) => Err(sdk_error("DescribeSecret", err)),
        }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    /// An update first (`PutSecretValue`, a new version): what a rotation needs, and all a role without
    /// `secretsmanager:CreateSecret` (the e-mail poller's) can do. `CreateSecret` only when there is no
    /// secret of the name.
    async fn put(&self, name: &str, value: &Secret) -> Result<(), SecretError> {
        let id = self.secret_id(name);
        match self.put_value(&id, value).await {
            Ok(()) => Ok(()),
            Err(err) if err.code() == Some(NOT_FOUND) => self.create(&id, value).await,
            // AWS refuses a new value for a secret scheduled for deletion: restore it, then write.
            Err(err) if err.code() == Some(INVALID_STATE) => self.restore_and_put(&id, value).await,
            Err(err) => Err(sdk_error("PutSecretValue", err)),
        }
    }

    async fn get(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        let id = self.secret_id(name);
        match self.client.get().get_secret_value().secret_id(&id).send().await {
            Ok(output) => match output.secret_string() {
                Some(value) => Ok(Some(Secret::new(value))),
                None => Err(SecretError::Unavailable(format!("secret {name} holds no string value"))),
            },
            Err(err) if err.code() == Some(NOT_FOUND) => Ok(None),
            Err(err) if err.code() == Some(INVALID_STATE) && self.scheduled_for_deletion(&id).await? => {
                Ok(None)
            }
            Err(err) => Err(sdk_error("GetSecretValue", err)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        let id = self.secret_id(name);
        match self
            .client
            .get()
            .delete_secret()
            .secret_id(&id)
            .recovery_window_in_days(RECOVERY_WINDOW_DAYS)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some(NOT_FOUND) => Ok(()),
            Err(err) if err.code() == Some(INVALID_STATE) && self.scheduled_for_deletion(&id).await? => {
                Ok(())
            }
            Err(err) => Err(sdk_error("DeleteSecret", err)),
        }
    }
}

/// The error's code and Secrets Manager's message: neither carries a secret's value (the request is never
/// printed).
fn sdk_error<E>(operation: &str, err: SdkError<E>) -> SecretError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err.as_service_error() {
        Some(service) => SecretError::Unavailable(format!(
            "Secrets Manager {operation}: {}: {}",
            service.code().unwrap_or("UnknownError"),
            service.message().unwrap_or_default()
        )),
        None => {
            SecretError::Unavailable(format!("Secrets Manager {operation}: {}", DisplayErrorContext(&err)))
        }
    }
}
