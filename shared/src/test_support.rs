//! Helpers of the unit tests: the providers' real payloads, which live in the repository's `tests/fixtures`
//! beside the integration tests that read them too.

use std::path::PathBuf;

/// The folder of the providers' payloads (each with a `.source.txt` saying where it comes from).
pub(crate) fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures"))
}

/// A real webhook payload as the provider publishes it, byte for byte.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}
