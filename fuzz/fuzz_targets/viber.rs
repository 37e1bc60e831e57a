//! Viber: `X-Viber-Content-Signature` (hex HMAC-SHA256 of the body keyed with the bot token), then
//! `parse_callback`.
#![no_main]

use std::sync::OnceLock;

use fuzz_support::{Checks, Mode, SIGNING_KEY, check_receive, http, request, secrets, split};
use libfuzzer_sys::fuzz_target;
use omnichat::providers::viber::{ViberClient, signature};
use omnichat::secret::Secret;

fuzz_target!(|data: &[u8]| {
    static CLIENT: OnceLock<ViberClient> = OnceLock::new();
    let client = CLIENT.get_or_init(|| ViberClient::new(http(), "http://127.0.0.1:9"));
    let input = split(data);
    let correct = signature(input.body, &Secret::new(SIGNING_KEY));
    let header = match input.mode {
        Mode::Valid if input.variant & 1 == 0 => Some(correct.clone()),
        // Viber sends lower-case hex; upper case and surrounding blanks are accepted too.
        Mode::Valid => Some(format!(" {} ", correct.to_uppercase())),
        Mode::Arbitrary => input.arbitrary_credential(),
    };
    let accepted = header.as_deref().is_some_and(|h| h.trim().eq_ignore_ascii_case(&correct));
    let headers: Vec<(String, String)> =
        header.into_iter().map(|value| ("x-viber-content-signature".to_owned(), value)).collect();
    let secrets = secrets(&[("token", SIGNING_KEY), ("sender_name", "Fuzz")]);
    let _ = check_receive(
        client,
        &secrets,
        &request(headers, None, input.body),
        input.mode,
        accepted,
        Checks::default(),
    );
});
