//! Issue 21: whoever can write the data dir can write the database and so insert an admin key. The dir
//! is made (or tightened to) 0700, the database file 0600, and a dir another user owns is refused.
//! The umask case has a test binary of its own (`umask.rs`): the umask is process-wide.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use omnichat::adapters::embedded::{DATABASE_FILE, DataDirError, open_data_dir};
use omnichat::secret::Secret;
use omnichat_local::{Config, ConnectionLimits};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

#[test]
fn an_existing_open_data_dir_and_database_are_tightened() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("data");
    std::fs::create_dir(&dir).expect("create");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let database = dir.join(DATABASE_FILE);
    std::fs::write(&database, b"").expect("an empty database file, as a umask-following create leaves it");
    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o666)).expect("chmod db");

    let opened = open_data_dir(&dir).expect("opens");
    assert_eq!(mode(&dir), 0o700, "the data dir");
    assert_eq!(mode(&database), 0o600, "the database");
    drop(opened);
}

#[test]
fn a_new_data_dir_is_private() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("new").join("data");
    let opened = open_data_dir(&dir).expect("opens");
    assert_eq!(mode(&dir), 0o700, "the data dir");
    assert_eq!(mode(&dir.join(DATABASE_FILE)), 0o600, "the database");
    drop(opened);
}

#[tokio::test]
async fn a_data_dir_owned_by_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: only root can give a dir to another user (this process is not root)");
        return;
    }
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("data");
    std::fs::create_dir(&dir).expect("create");
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown to nobody");

    match open_data_dir(&dir) {
        Err(DataDirError::NotOwned { owner, user, .. }) => assert_eq!((owner, user), (65534, 0)),
        other => panic!("a foreign data dir is refused, not {other:?}"),
    }
    assert!(!dir.join(DATABASE_FILE).exists(), "nothing is created in it");

    let config = Config {
        port: 0,
        data_dir: dir.clone(),
        admin_key: Some(Secret::new("ock_foreign_dir_admin_key_0123456789")),
        operator_key: None,
        public_base_url: None,
        providers: None,
        tick: Duration::from_secs(3600),
        max_concurrent_requests: 4,
        max_media_bytes: omnichat::ports::media::DEFAULT_MAX_MEDIA_BYTES,
        connections: ConnectionLimits::default(),
    };
    let refused = omnichat_local::start_with_system_clock(config, std::future::pending()).await;
    let message = refused.err().expect("the runner refuses to start");
    assert!(message.contains("belongs to uid 65534") && message.contains("uid 0"), "{message}");
    println!("the runner says: {message}");
}
