//! What the fuzz targets share: reading the fuzzer's bytes, the channel's fixed test secrets, and the
//! checks every provider's `receive` must pass whatever it is sent.
//!
//! Input layout of the provider targets: byte 0 picks the mode (bit 0) and a provider-specific variant
//! (the other bits). Mode "valid": the target makes the request pass verification (it signs the fuzzed
//! body with the fixed test secret, or sends the right path secret), so the parser is reached; the rest
//! is the body. Mode "arbitrary": the bytes up to the first newline are the credential the request
//! carries (signature, header secret, path secret), the rest is the body, so the rejection path is
//! fuzzed. The seeds (`infra/fuzz/seed.sh`) are the fixtures in both modes.

use std::sync::OnceLock;

use omnichat::providers::{ChannelProvider, ChannelSecrets, Delivery, WebhookError, WebhookRequest};
use omnichat::secret::Secret;

/// The webhook secret (path segment, Telegram header, VK body secret) every fuzzed channel has.
pub const WEBHOOK_SECRET: &str = "fuzz-webhook-secret-0123456789";
/// A token / signing key for the providers that sign.
pub const SIGNING_KEY: &str = "fuzz-signing-key-abcdef";
/// Where the fuzzed channel's webhook is registered (MessageBird signs the URL).
pub const WEBHOOK_URL: &str =
    "https://omnichat.example.test/webhooks/whatsapp-messagebird/c1/fuzz-webhook-secret-0123456789";

/// How the request is made to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Signed with the channel's secret: verification must pass.
    Valid,
    /// Carries whatever credential the fuzzer chose: verification must refuse it unless it is right.
    Arbitrary,
}

/// A fuzzer input split into mode, chosen credential and body.
#[derive(Debug, Clone)]
pub struct Split<'a> {
    pub mode: Mode,
    /// A selector for provider-specific variants (MessageBird: JWT or HMAC scheme).
    pub variant: u8,
    pub credential: String,
    pub body: &'a [u8],
}

impl Split<'_> {
    /// For a credential the request carries as it is (a path segment, a secret header): the right one in
    /// `Valid` mode, else `arbitrary_credential`.
    pub fn shared_secret(&self, expected: &str) -> Option<String> {
        match self.mode {
            Mode::Valid => Some(expected.to_owned()),
            Mode::Arbitrary => self.arbitrary_credential(),
        }
    }

    /// In `Arbitrary` mode: the fuzzer's credential for an even variant, none at all for an odd one.
    pub fn arbitrary_credential(&self) -> Option<String> {
        (self.variant & 1 == 0).then(|| self.credential.clone())
    }
}

pub fn split(data: &[u8]) -> Split<'_> {
    let Some((&first, rest)) = data.split_first() else {
        return Split { mode: Mode::Valid, variant: 0, credential: String::new(), body: &[] };
    };
    let variant = first >> 1;
    if first & 1 == 0 {
        return Split { mode: Mode::Valid, variant, credential: String::new(), body: rest };
    }
    // The credential ends at the first newline (a header or path segment cannot hold one).
    let (credential, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => (&rest[..end], &rest[end + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    Split {
        mode: Mode::Arbitrary,
        variant,
        credential: String::from_utf8_lossy(credential).into_owned(),
        body,
    }
}

/// One HTTP client for the provider modules (never used: `receive` does no I/O).
pub fn http() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new).clone()
}

/// Channel secrets from name/value pairs.
pub fn secrets(pairs: &[(&str, &str)]) -> ChannelSecrets {
    pairs
        .iter()
        .fold(ChannelSecrets::default(), |secrets, (name, value)| secrets.with(name, Secret::new(*value)))
}

/// A POST request as the webhook route hands it to the provider module.
pub fn request(headers: Vec<(String, String)>, path_secret: Option<String>, body: &[u8]) -> WebhookRequest {
    WebhookRequest {
        method: "POST".into(),
        headers,
        body: body.to_vec(),
        path_secret,
        webhook_url: WEBHOOK_URL.into(),
    }
}

/// Runs `receive` and checks what must hold whatever the input:
/// - a validly signed request is never refused as unauthorized (`Mode::Valid`);
/// - a request with a wrong credential is always refused (`accepted_credential` says whether the
///   fuzzer's credential happens to be the right one);
/// - the same request gives the same answer twice (a provider's retry must map to the same dedup keys);
/// - every message has a dedup key and a customer to answer.
pub fn check_receive(
    provider: &dyn ChannelProvider,
    secrets: &ChannelSecrets,
    request: &WebhookRequest,
    mode: Mode,
    accepted_credential: bool,
    checks: Checks,
) -> Result<Delivery, WebhookError> {
    let result = provider.receive(secrets, request);
    match (&result, mode) {
        (Err(WebhookError::Unauthorized), Mode::Valid) => {
            panic!("a validly signed request was refused as unauthorized: {request:?}")
        }
        (Ok(_), Mode::Arbitrary) if !accepted_credential => {
            panic!("a request with a wrong credential got past verification: {request:?} -> {result:?}")
        }
        // Verification comes before parsing: a body is judged only once its origin is proven.
        (Err(WebhookError::Malformed { .. }), Mode::Arbitrary)
            if !accepted_credential && checks.verify_first =>
        {
            panic!("a request with a wrong credential reached the parser: {request:?} -> {result:?}")
        }
        _ => {}
    }
    let deterministic = checks.deterministic;
    if deterministic {
        assert_eq!(result, provider.receive(secrets, request), "receive is not deterministic");
    }
    if let Ok(delivery) = &result {
        for message in &delivery.messages {
            assert!(!message.dedup_key.is_empty(), "a message without a dedup key: {message:?}");
            assert!(!message.customer.id.is_empty(), "a message without a customer: {message:?}");
        }
        for status in &delivery.statuses {
            assert!(!status.provider_message_id.is_empty(), "a status without a message id: {status:?}");
        }
    }
    result
}

/// What a provider promises beyond not panicking.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// The request is verified before the body is parsed (all but VK, whose secret is in the body).
    pub verify_first: bool,
    /// The answer does not depend on the clock (all but MessageBird, whose JWT has a validity window).
    pub deterministic: bool,
}

impl Default for Checks {
    fn default() -> Self {
        Self { verify_first: true, deterministic: true }
    }
}

/// Constant-time-free comparison for the oracle (the fuzzer is no attacker).
pub fn same(candidate: &str, expected: &str) -> bool {
    candidate == expected
}
