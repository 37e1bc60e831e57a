//! Helpers of the unit tests: the providers' real payloads, which live in the repository's `tests/fixtures`
//! beside the integration tests that read them too.

use std::path::{Path, PathBuf};

use crate::domain::AttachmentKind;
use crate::ports::channel::OutgoingMedia;

/// The folder of the providers' payloads (each with a `.source.txt` saying where it comes from).
pub(crate) fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures"))
}

/// A real webhook payload as the provider publishes it, byte for byte.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A file of ours as a provider that fetches it is handed it: a link.
pub(crate) fn linked_file(
    kind: AttachmentKind,
    mime: &str,
    name: &str,
    size: u64,
    url: &str,
) -> OutgoingMedia {
    OutgoingMedia { kind, name: Some(name.into()), mime: mime.into(), size, url: url.into(), path: None }
}

/// A file of ours as a provider that uploads it is handed it: `bytes` in a file of `dir` named `name`.
pub(crate) fn file_in(
    dir: &Path,
    kind: AttachmentKind,
    mime: &str,
    name: &str,
    bytes: &[u8],
) -> OutgoingMedia {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    OutgoingMedia {
        path: Some(path),
        ..linked_file(kind, mime, name, bytes.len() as u64, "https://media.example/unused")
    }
}
