//! Telegram: the `X-Telegram-Bot-Api-Secret-Token` header check, then `parse_update`.
#![no_main]

use std::sync::OnceLock;

use fuzz_support::{Checks, WEBHOOK_SECRET, check_receive, http, request, secrets, split};
use libfuzzer_sys::fuzz_target;
use omnichat::providers::ChannelSecrets;
use omnichat::providers::telegram::TelegramClient;

fuzz_target!(|data: &[u8]| {
    static CLIENT: OnceLock<TelegramClient> = OnceLock::new();
    let client = CLIENT.get_or_init(|| TelegramClient::new(http(), "http://127.0.0.1:9"));
    let input = split(data);
    // Arbitrary mode: a header with the fuzzer's value, or no header at all.
    let header = input.shared_secret(WEBHOOK_SECRET);
    let accepted = header.as_deref() == Some(WEBHOOK_SECRET);
    let headers: Vec<(String, String)> =
        header.into_iter().map(|value| ("x-telegram-bot-api-secret-token".to_owned(), value)).collect();
    let secrets = secrets(&[(ChannelSecrets::WEBHOOK_SECRET, WEBHOOK_SECRET), ("token", "123456:fuzz")]);
    let _ = check_receive(
        client,
        &secrets,
        &request(headers, None, input.body),
        input.mode,
        accepted,
        Checks::default(),
    );
});
