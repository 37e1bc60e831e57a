//! The embedded secret store: one JSON file readable only by its owner (0600), replaced atomically.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::ports::secrets::{SecretError, SecretStore};
use crate::secret::Secret;

#[derive(Clone)]
pub struct FileSecretStore {
    path: PathBuf,
    secrets: Arc<Mutex<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for FileSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSecretStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn io_error(context: &'static str) -> impl Fn(std::io::Error) -> SecretError {
    move |error| SecretError::Unavailable(format!("{context}: {error}"))
}

impl FileSecretStore {
    /// Opens the file, creating it (0600) if missing. An existing file with looser permissions is
    /// tightened to 0600.
    pub fn open(path: &Path) -> Result<Self, SecretError> {
        let secrets = match fs::read(path) {
            Ok(bytes) => {
                fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                    .map_err(io_error("restrict secrets file"))?;
                serde_json::from_slice(&bytes)
                    .map_err(|_| SecretError::Unavailable("the secrets file is not valid JSON".into()))?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let empty = BTreeMap::new();
                write_atomically(path, &empty)?;
                empty
            }
            Err(error) => return Err(io_error("read secrets file")(error)),
        };
        Ok(Self { path: path.to_owned(), secrets: Arc::new(Mutex::new(secrets)) })
    }

    async fn update(&self, change: impl FnOnce(&mut BTreeMap<String, String>)) -> Result<(), SecretError> {
        let mut secrets = self.secrets.lock().await;
        let mut next = secrets.clone();
        change(&mut next);
        let path = self.path.clone();
        let snapshot = next.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &snapshot))
            .await
            .map_err(|error| SecretError::Unavailable(format!("secrets task failed: {error}")))??;
        *secrets = next;
        Ok(())
    }
}

/// Writes to a 0600 temporary file beside the target, syncs it and renames it over the target, so a
/// crash leaves either the old file or the new one.
fn write_atomically(path: &Path, secrets: &BTreeMap<String, String>) -> Result<(), SecretError> {
    let bytes = serde_json::to_vec_pretty(secrets)
        .map_err(|_| SecretError::Unavailable("secrets not serializable".into()))?;
    let temporary = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io_error("create secrets file"))?;
    file.write_all(&bytes).map_err(io_error("write secrets file"))?;
    file.sync_all().map_err(io_error("sync secrets file"))?;
    fs::rename(&temporary, path).map_err(io_error("replace secrets file"))
}

#[async_trait]
impl SecretStore for FileSecretStore {
    async fn put(&self, name: &str, value: &Secret) -> Result<(), SecretError> {
        let (name, value) = (name.to_owned(), value.expose().to_owned());
        self.update(move |secrets| {
            secrets.insert(name, value);
        })
        .await
    }

    async fn get(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        Ok(self.secrets.lock().await.get(name).map(|value| Secret::new(value.clone())))
    }

    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        let name = name.to_owned();
        self.update(move |secrets| {
            secrets.remove(&name);
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_is_owner_only_and_survives_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("secrets.json");
        let store = FileSecretStore::open(&path).expect("opens");
        store.put("a", &Secret::new("one")).await.expect("put");
        let mode = fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let reopened = FileSecretStore::open(&path).expect("reopens");
        assert_eq!(reopened.get("a").await.expect("get").map(|s| s.expose().to_owned()), Some("one".into()));
    }
}
