//! edna (WhatsApp): the secret path segment, then `parse_callback` (inbound messages and statuses).
#![no_main]

use std::sync::OnceLock;

use fuzz_support::{Checks, WEBHOOK_SECRET, check_receive, http, request, secrets, split};
use libfuzzer_sys::fuzz_target;
use omnichat::providers::ChannelSecrets;
use omnichat::providers::edna::EdnaClient;

fuzz_target!(|data: &[u8]| {
    static CLIENT: OnceLock<EdnaClient> = OnceLock::new();
    let client = CLIENT.get_or_init(|| EdnaClient::new(http(), "http://127.0.0.1:9"));
    let input = split(data);
    let path_secret = input.shared_secret(WEBHOOK_SECRET);
    let accepted = path_secret.as_deref() == Some(WEBHOOK_SECRET);
    let secrets = secrets(&[
        (ChannelSecrets::WEBHOOK_SECRET, WEBHOOK_SECRET),
        ("api_key", "fuzz-key"),
        ("subject", "fuzz-subject"),
        ("subject_id", "1"),
        ("cascade_id", "2"),
    ]);
    let _ = check_receive(
        client,
        &secrets,
        &request(Vec::new(), path_secret, input.body),
        input.mode,
        accepted,
        Checks::default(),
    );
});
