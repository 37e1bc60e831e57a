//! Issue 21: the database file is 0600 whatever the umask. The only test of this binary: the umask is
//! process-wide, so no other test may create files beside it.

use std::os::unix::fs::PermissionsExt;

use omnichat::adapters::embedded::{DATABASE_FILE, SECRETS_FILE, open_data_dir};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

#[test]
fn under_umask_000_the_data_dir_is_0700_and_its_files_0600() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("data");
    // SAFETY: umask only swaps the process's file-creation mask.
    let previous = unsafe { libc::umask(0) };
    let opened = open_data_dir(&dir);
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    let opened = opened.expect("opens");
    assert_eq!(mode(&dir), 0o700, "the data dir");
    assert_eq!(mode(&dir.join(DATABASE_FILE)), 0o600, "the database");
    assert_eq!(mode(&dir.join(SECRETS_FILE)), 0o600, "the secrets");
    drop(opened);
}
