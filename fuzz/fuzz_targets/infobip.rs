//! Infobip (WhatsApp): the secret path segment, then `parse_batch` (inbound messages and reports).
#![no_main]

use std::sync::OnceLock;

use fuzz_support::{Checks, WEBHOOK_SECRET, check_receive, http, request, secrets, split};
use libfuzzer_sys::fuzz_target;
use omnichat::providers::ChannelSecrets;
use omnichat::providers::infobip::InfobipClient;

fuzz_target!(|data: &[u8]| {
    static CLIENT: OnceLock<InfobipClient> = OnceLock::new();
    let client = CLIENT.get_or_init(|| InfobipClient::new(http()));
    let input = split(data);
    let path_secret = input.shared_secret(WEBHOOK_SECRET);
    let accepted = path_secret.as_deref() == Some(WEBHOOK_SECRET);
    let secrets = secrets(&[
        (ChannelSecrets::WEBHOOK_SECRET, WEBHOOK_SECRET),
        ("api_key", "fuzz-key"),
        ("base_url", "https://fuzz.api.infobip.com"),
        ("sender", "441134960000"),
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
