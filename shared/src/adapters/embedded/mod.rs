//! Embedded adapters: redb for the store, a 0600 file for secrets, an in-process bus for events.

pub mod bus;
pub mod secrets;
pub mod store;

use std::path::{Path, PathBuf};

pub use bus::InProcessBus;
pub use secrets::FileSecretStore;
pub use store::RedbStore;

/// The database file inside a data dir.
pub const DATABASE_FILE: &str = "omnichat.redb";
/// The secrets file inside a data dir.
pub const SECRETS_FILE: &str = "secrets.json";

/// A data dir's store and secrets, as the local runner and the operator's CLI open them.
#[derive(Debug)]
pub struct DataDir {
    pub store: RedbStore,
    pub secrets: FileSecretStore,
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process has the database open (a running `omnichat-local`): redb allows one, and the
    /// secrets file is kept in that process's memory, so a second writer would lose changes.
    #[error("the data dir {} is in use by another process (a running omnichat-local?)", .0.display())]
    InUse(PathBuf),
    #[error("{0}")]
    Unavailable(String),
}

/// Opens the data dir (created 0700 if missing): the redb database first, which locks the dir for this
/// process, then the 0600 secrets file.
pub fn open_data_dir(dir: &Path) -> Result<DataDir, DataDirError> {
    create_private_dir(dir)?;
    let store = RedbStore::open_unless_in_use(&dir.join(DATABASE_FILE))
        .map_err(|e| DataDirError::Unavailable(e.to_string()))?
        .ok_or_else(|| DataDirError::InUse(dir.to_owned()))?;
    let secrets = FileSecretStore::open(&dir.join(SECRETS_FILE))
        .map_err(|e| DataDirError::Unavailable(e.to_string()))?;
    Ok(DataDir { store, secrets })
}

fn create_private_dir(dir: &Path) -> Result<(), DataDirError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| DataDirError::Unavailable(format!("cannot create data dir {}: {e}", dir.display())))
}
