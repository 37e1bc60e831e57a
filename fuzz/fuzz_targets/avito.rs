//! Avito: the secret path segment, then `parse_event` (with and without the account's user id known).
#![no_main]

use std::sync::OnceLock;

use fuzz_support::{Checks, WEBHOOK_SECRET, check_receive, http, request, secrets, split};
use libfuzzer_sys::fuzz_target;
use omnichat::providers::ChannelSecrets;
use omnichat::providers::avito::AvitoClient;

fuzz_target!(|data: &[u8]| {
    static CLIENT: OnceLock<AvitoClient> = OnceLock::new();
    let client = CLIENT.get_or_init(|| AvitoClient::new(http(), "http://127.0.0.1:9"));
    let input = split(data);
    let path_secret = input.shared_secret(WEBHOOK_SECRET);
    let accepted = path_secret.as_deref() == Some(WEBHOOK_SECRET);
    let mut pairs = vec![
        (ChannelSecrets::WEBHOOK_SECRET, WEBHOOK_SECRET),
        ("client_id", "fuzz-client"),
        ("client_secret", "fuzz-secret"),
    ];
    // Variant bit 1: the account's user id is known (messages of other accounts are then ignored).
    if input.variant & 2 == 0 {
        pairs.push(("user_id", "375811020"));
    }
    let _ = check_receive(
        client,
        &secrets(&pairs),
        &request(Vec::new(), path_secret, input.body),
        input.mode,
        accepted,
        Checks::default(),
    );
});
