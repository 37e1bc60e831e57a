//! Embedded adapters: redb for the store, a 0600 file for secrets, an in-process bus for events, an
//! in-process queue for work.

pub mod bus;
pub mod media;
pub mod secrets;
pub mod store;
pub mod work;

use std::path::{Path, PathBuf};

pub use bus::InProcessBus;
pub use media::FileMediaStore;
pub use secrets::FileSecretStore;
pub use store::RedbStore;
pub use work::InProcessWorkQueue;

/// The database file inside a data dir.
pub const DATABASE_FILE: &str = "omnichat.redb";
/// The secrets file inside a data dir.
pub const SECRETS_FILE: &str = "secrets.json";
/// Written by a running `omnichat-local` into its data dir: `{"address", "pid"}`, removed when it stops.
/// `omnichat-admin` reaches that runner over HTTP through it, since the runner holds the database.
pub const RUNNER_FILE: &str = "runner.json";

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
    /// The data dir belongs to another user: whoever owns it can write the database (and so insert an
    /// admin key), so the runner refuses to use it.
    #[error(
        "the data dir {} belongs to uid {owner}, not to this process's user (uid {user}): refusing to use it, \
         since its owner could write the database; use a data dir of your own (OMNICHAT_DATA_DIR) or run as \
         its owner",
        dir.display()
    )]
    NotOwned { dir: PathBuf, owner: u32, user: u32 },
    #[error("{0}")]
    Unavailable(String),
}

/// Opens the data dir: created 0700 if missing, refused if another user owns it, tightened to 0700 if
/// it is more open; then the redb database (0600 whatever the umask), which locks the dir for this
/// process, then the 0600 secrets file.
pub fn open_data_dir(dir: &Path) -> Result<DataDir, DataDirError> {
    create_private_dir(dir)?;
    let database = dir.join(DATABASE_FILE);
    create_private_file(&database)?;
    let store = RedbStore::open_unless_in_use(&database)
        .map_err(|e| DataDirError::Unavailable(e.to_string()))?
        .ok_or_else(|| DataDirError::InUse(dir.to_owned()))?;
    let secrets = FileSecretStore::open(&dir.join(SECRETS_FILE))
        .map_err(|e| DataDirError::Unavailable(e.to_string()))?;
    Ok(DataDir { store, secrets })
}

fn create_private_dir(dir: &Path) -> Result<(), DataDirError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| DataDirError::Unavailable(format!("cannot create data dir {}: {e}", dir.display())))?;
    let metadata = std::fs::metadata(dir)
        .map_err(|e| DataDirError::Unavailable(format!("cannot read data dir {}: {e}", dir.display())))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let user = unsafe { libc::geteuid() };
    if metadata.uid() != user {
        return Err(DataDirError::NotOwned { dir: dir.to_owned(), owner: metadata.uid(), user });
    }
    if metadata.mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            DataDirError::Unavailable(format!("cannot restrict data dir {}: {e}", dir.display()))
        })?;
    }
    Ok(())
}

/// Creates `path` empty with mode 0600 if missing (redb fills an empty file), and sets 0600 on it either
/// way: the mode given at creation is cut by the umask, and an older file may be more open.
fn create_private_file(path: &Path) -> Result<(), DataDirError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| DataDirError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| DataDirError::Unavailable(format!("cannot restrict {}: {e}", path.display())))
}
