//! Bounds on what a request may carry, checked before anything parses it.

/// The deepest nesting of JSON arrays and objects a request body may have. Provider payloads and API bodies
/// nest far less (Telegram's deepest fixture: 5); serde_json's own limit (128) would only stop a stack
/// overflow, not the work of parsing a hostile body.
pub const MAX_JSON_DEPTH: usize = 32;

/// Whether `body` nests arrays and objects deeper than `max`. A linear scan that skips strings (and the
/// escapes in them); it does not validate the JSON, which the parser then does.
pub fn json_too_deep(body: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// `OMNICHAT_MAX_MEDIA_BYTES`: the largest file kept (larger inbound media is `too_large`) or taken as an
/// upload; unset, 25 MiB. Anything but a whole number of bytes from 1 to 5 GiB is refused with the reason.
pub fn max_media_bytes_from_env() -> Result<u64, String> {
    const NAME: &str = "OMNICHAT_MAX_MEDIA_BYTES";
    match std::env::var(NAME) {
        Err(std::env::VarError::NotPresent) => Ok(crate::ports::media::DEFAULT_MAX_MEDIA_BYTES),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{NAME} is not text")),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(bytes @ 1..=5_368_709_120) => Ok(bytes),
            _ => Err(format!("{NAME}: {text:?} is not a number of bytes from 1 to 5 GiB")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_arrays_and_objects_but_not_brackets_in_strings() {
        assert!(!json_too_deep(br#"{"a":[1,{"b":[]}]}"#, 4));
        assert!(json_too_deep(br#"{"a":[1,{"b":[]}]}"#, 3));
        assert!(!json_too_deep(br#"{"text":"[[[[[[{{{{{{ \" [[[[ \\"}"#, 1));
        assert!(!json_too_deep(b"", 0));
        assert!(!json_too_deep(b"42", 0));
    }

    #[test]
    fn a_hostile_body_is_caught_at_the_limit() {
        let deep = "[".repeat(MAX_JSON_DEPTH + 1) + &"]".repeat(MAX_JSON_DEPTH + 1);
        assert!(json_too_deep(deep.as_bytes(), MAX_JSON_DEPTH));
        let fine = "[".repeat(MAX_JSON_DEPTH) + &"]".repeat(MAX_JSON_DEPTH);
        assert!(!json_too_deep(fine.as_bytes(), MAX_JSON_DEPTH));
        // Unbalanced closers cannot push the count below zero and hide a deep body behind them.
        let tricky = "]".repeat(100) + &"[".repeat(MAX_JSON_DEPTH + 1);
        assert!(json_too_deep(tricky.as_bytes(), MAX_JSON_DEPTH));
    }

    #[test]
    fn every_fixture_is_within_the_limit() {
        let dir = crate::test_support::fixtures_dir();
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let body = std::fs::read(&path).expect("fixture");
                assert!(!json_too_deep(&body, MAX_JSON_DEPTH), "{}", path.display());
                checked += 1;
            }
        }
        assert!(checked > 10, "only {checked} fixtures found in {}", dir.display());
    }
}
