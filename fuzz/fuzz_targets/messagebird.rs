//! MessageBird / Bird (WhatsApp): the secret path segment, then the `MessageBird-Signature-JWT` (HS256/384/
//! 512 over the URL and body hashes, with a validity window) or the `MessageBird-Signature` HMAC with its
//! timestamp, then `parse_event` (Conversations API and Bird channel events).
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fuzz_support::{
    Checks, Mode, SIGNING_KEY, WEBHOOK_SECRET, WEBHOOK_URL, check_receive, http, request, secrets, split,
};
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use omnichat::providers::ChannelSecrets;
use omnichat::providers::messagebird::{MessageBirdClient, sign_webhook, verify_signature_jwt};
use omnichat::secret::Secret;
use sha2::{Digest, Sha256};

const JWT: &str = "messagebird-signature-jwt";
const SIGNATURE: &str = "messagebird-signature";
const TIMESTAMP: &str = "messagebird-request-timestamp";

/// base64(HMAC-SHA256(key, timestamp + "\n" + url + "\n" + SHA-256(body))), as Bird signs.
fn hmac_signature(timestamp: &str, url: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SIGNING_KEY.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(url.as_bytes());
    mac.update(b"\n");
    mac.update(&Sha256::digest(body));
    STANDARD.encode(mac.finalize().into_bytes())
}

fn header(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

fuzz_target!(|data: &[u8]| {
    static CLIENT: OnceLock<MessageBirdClient> = OnceLock::new();
    let client = CLIENT.get_or_init(|| MessageBirdClient::new(http(), "http://127.0.0.1:9"));
    let input = split(data);
    let key = Secret::new(SIGNING_KEY);
    let now = Timestamp::now();
    let mut path_secret = Some(WEBHOOK_SECRET.to_owned());
    let headers = match (input.mode, input.variant % 4) {
        (Mode::Valid, 0 | 2) => {
            vec![header(JWT, sign_webhook(&key, WEBHOOK_URL, input.body, now, "fuzz-jti"))]
        }
        (Mode::Valid, _) => {
            let timestamp = now.as_second().to_string();
            vec![
                header(SIGNATURE, hmac_signature(&timestamp, WEBHOOK_URL, input.body)),
                header(TIMESTAMP, timestamp),
            ]
        }
        // The fuzzer's JWT (never genuine: it cannot forge the HMAC without the key).
        (Mode::Arbitrary, 0) => vec![header(JWT, input.credential.clone())],
        // The fuzzer's HMAC signature with a timestamp.
        (Mode::Arbitrary, 1) => {
            vec![header(SIGNATURE, input.credential.clone()), header(TIMESTAMP, "1700000000")]
        }
        // A genuine signature on the wrong channel's path (or none).
        (Mode::Arbitrary, 2) => {
            path_secret = (!input.credential.is_empty()).then(|| input.credential.clone());
            vec![header(JWT, sign_webhook(&key, WEBHOOK_URL, input.body, now, "fuzz-jti"))]
        }
        // No signature at all.
        (Mode::Arbitrary, _) => Vec::new(),
    };
    let accepted = match (input.mode, input.variant % 4) {
        (Mode::Arbitrary, 2) => path_secret.as_deref() == Some(WEBHOOK_SECRET),
        (Mode::Arbitrary, 1) => {
            input.credential.trim() == hmac_signature("1700000000", WEBHOOK_URL, input.body)
        }
        _ => false,
    };
    let secrets = secrets(&[
        (ChannelSecrets::WEBHOOK_SECRET, WEBHOOK_SECRET),
        ("signing_key", SIGNING_KEY),
        ("access_key", "fuzz-access-key"),
        ("channel_id", "fuzz-channel"),
    ]);
    let _ = check_receive(
        client,
        &secrets,
        &request(headers, path_secret, input.body),
        input.mode,
        accepted,
        // The JWT has a validity window: the answer depends on the clock.
        Checks { verify_first: true, deterministic: false },
    );
    // The JWT check on its own, at a fixed instant, with the fuzzer's token and every algorithm's path.
    if input.mode == Mode::Arbitrary {
        let fixed = Timestamp::from_second(1_700_000_000).expect("in range");
        let _ = verify_signature_jwt(&input.credential, &key, WEBHOOK_URL, input.body, fixed);
    }
});
