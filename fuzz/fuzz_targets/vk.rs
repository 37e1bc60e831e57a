//! VK Callback API: the envelope is parsed, then the community and the `secret` in the body are checked,
//! then `message_new` is normalized. In the "valid" mode the channel is given the community and secret the
//! body names, so every event the parser accepts gets through verification.
#![no_main]

use std::sync::OnceLock;

use fuzz_support::{Checks, Mode, WEBHOOK_SECRET, check_receive, http, request, secrets, split};
use libfuzzer_sys::fuzz_target;
use omnichat::providers::ChannelSecrets;
use omnichat::providers::vk::{VkClient, parse_callback};

const GROUP_ID: &str = "1";

fuzz_target!(|data: &[u8]| {
    static CLIENT: OnceLock<VkClient> = OnceLock::new();
    let client = CLIENT.get_or_init(|| VkClient::new(http(), "http://127.0.0.1:9"));
    let input = split(data);
    let event = parse_callback(input.body).ok();
    let (group_id, secret) = match (input.mode, &event) {
        (Mode::Valid, Some(event)) => (
            event.group_id.to_string(),
            event.secret.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| WEBHOOK_SECRET.to_owned()),
        ),
        _ => (GROUP_ID.to_owned(), WEBHOOK_SECRET.to_owned()),
    };
    // What verification must accept: this community, and its secret (a confirmation may come without one).
    let (mode, accepted) = match &event {
        Some(event) => {
            let right_group = event.group_id.to_string() == group_id;
            let right_secret = match &event.secret {
                Some(candidate) => *candidate == secret,
                None => event.kind == "confirmation",
            };
            let accepted = right_group && right_secret;
            (if accepted { Mode::Valid } else { Mode::Arbitrary }, accepted)
        }
        None => (Mode::Arbitrary, false),
    };
    let secrets = secrets(&[
        (ChannelSecrets::WEBHOOK_SECRET, &secret),
        ("group_id", &group_id),
        ("confirmation_code", "fuzz-confirmation"),
        ("access_token", "fuzz-token"),
    ]);
    let _ = check_receive(
        client,
        &secrets,
        &request(Vec::new(), None, input.body),
        mode,
        accepted,
        Checks { verify_first: false, deterministic: true },
    );
});
