//! Who sent a webhook: the `MessageBird-Signature-JWT` (HS256/384/512 over the URL and body hashes, with
//! a validity window) or Bird's `MessageBird-Signature` HMAC with its timestamp, and the JWT for tests.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::{SIGNATURE_HEADER, SIGNATURE_JWT_HEADER, TIMESTAMP_HEADER};
use crate::providers::{WebhookError, WebhookRequest};
use crate::secret::Secret;

const ISSUER: &str = "MessageBird";
/// The clock skew the official SDKs tolerate on `nbf` and `exp`.
const MAX_SKEW_SECONDS: i64 = 1;
/// Used when a 429 carries no `Retry-After`.
/// Why a `MessageBird-Signature-JWT` was refused. The texts are those of the official SDKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is malformed")]
    Malformed,
    #[error("signing method is invalid")]
    Algorithm,
    #[error("signature is invalid")]
    Signature,
    #[error("claim iss has wrong value")]
    Issuer,
    #[error("claim nbf is in the future")]
    NotYetValid,
    #[error("claim exp is in the past")]
    Expired,
    #[error("claim jti is empty or missing")]
    MissingJti,
    #[error("claim url_hash is invalid")]
    UrlHash,
    #[error("claim payload_hash is set but actual payload is missing")]
    UnexpectedPayloadHash,
    #[error("claim payload_hash is not set but payload is present")]
    MissingPayloadHash,
    #[error("claim payload_hash is invalid")]
    PayloadHash,
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

#[derive(Deserialize)]
struct JwtClaims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    nbf: i64,
    #[serde(default)]
    exp: i64,
    #[serde(default)]
    jti: String,
    #[serde(default)]
    url_hash: String,
    #[serde(default)]
    payload_hash: Option<String>,
}

/// Verifies a `MessageBird-Signature-JWT` header: an HMAC JWT (HS256/384/512 only; `none` and everything
/// else is refused) signed with the signing key, issued by MessageBird, valid at `now` (±1 s), whose
/// `url_hash` is the SHA-256 of the exact URL MessageBird called and whose `payload_hash` is the SHA-256 of
/// the raw body (absent exactly when the body is empty).
pub fn verify_signature_jwt(
    token: &str,
    signing_key: &Secret,
    url: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<(), JwtError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: JwtHeader = decode_json_part(header_b64)?;
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| JwtError::Malformed)?;
    let key = signing_key.expose().as_bytes();
    let genuine = match header.alg.as_str() {
        "HS256" => mac_matches::<Hmac<Sha256>>(key, signing_input, &signature),
        "HS384" => mac_matches::<Hmac<Sha384>>(key, signing_input, &signature),
        "HS512" => mac_matches::<Hmac<Sha512>>(key, signing_input, &signature),
        _ => return Err(JwtError::Algorithm),
    };
    // An empty key would make anyone's token "genuine": a channel without one verifies nothing.
    if key.is_empty() || !genuine {
        return Err(JwtError::Signature);
    }
    let claims: JwtClaims = decode_json_part(claims_b64)?;
    if claims.iss != ISSUER {
        return Err(JwtError::Issuer);
    }
    let now = now.as_second();
    if now < claims.nbf.saturating_sub(MAX_SKEW_SECONDS) {
        return Err(JwtError::NotYetValid);
    }
    if now > claims.exp.saturating_add(MAX_SKEW_SECONDS) {
        return Err(JwtError::Expired);
    }
    if claims.jti.is_empty() {
        return Err(JwtError::MissingJti);
    }
    if claims.url_hash != sha256_hex(url.as_bytes()) {
        return Err(JwtError::UrlHash);
    }
    match (claims.payload_hash.filter(|h| !h.is_empty()), body.is_empty()) {
        (None, true) => Ok(()),
        (Some(_), true) => Err(JwtError::UnexpectedPayloadHash),
        (None, false) => Err(JwtError::MissingPayloadHash),
        (Some(hash), false) if hash == sha256_hex(body) => Ok(()),
        (Some(_), false) => Err(JwtError::PayloadHash),
    }
}

/// The `MessageBird-Signature-JWT` MessageBird would send for this request (HS256, valid for a minute from
/// `now`): for simulating MessageBird against a local bundle, and for tests.
pub fn sign_webhook(signing_key: &Secret, url: &str, body: &[u8], now: Timestamp, jti: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut claims = json!({
        "iss": ISSUER,
        "nbf": now.as_second(),
        "exp": now.as_second() + 60,
        "jti": jti,
        "url_hash": sha256_hex(url.as_bytes()),
    });
    if !body.is_empty() {
        claims["payload_hash"] = json!(sha256_hex(body));
    }
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let signature = match <Hmac<Sha256> as KeyInit>::new_from_slice(signing_key.expose().as_bytes()) {
        Ok(mut mac) => {
            mac.update(signing_input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("{signing_input}.{signature}")
}

/// Verifies the `MessageBird-Signature` header of Bird webhooks:
/// base64(HMAC-SHA256(key, timestamp + "\n" + URL + "\n" + SHA-256(body))). The legacy Conversations
/// scheme has the same shape with the URL's query string in place of the URL; both are accepted.
pub fn verify_request_signature(
    signature_b64: &str,
    timestamp: &str,
    url: &str,
    body: &[u8],
    signing_key: &Secret,
) -> bool {
    let key = signing_key.expose().as_bytes();
    let Ok(signature) = STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    if key.is_empty() || timestamp.is_empty() {
        return false;
    }
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let body_hash = Sha256::digest(body);
    [url, query].iter().any(|signed| {
        let mut message = Vec::with_capacity(timestamp.len() + signed.len() + 34);
        message.extend_from_slice(timestamp.as_bytes());
        message.push(b'\n');
        message.extend_from_slice(signed.as_bytes());
        message.push(b'\n');
        message.extend_from_slice(&body_hash);
        mac_matches::<Hmac<Sha256>>(key, &message, &signature)
    })
}

/// Checks a request with whichever scheme it carries: the JWT when present (no fallback), else the HMAC.
pub(super) fn verify_request(
    request: &WebhookRequest,
    signing_key: &Secret,
    now: Timestamp,
) -> Result<(), WebhookError> {
    // Without the URL MessageBird called, the url_hash cannot be checked: refuse rather than skip it.
    if request.webhook_url.is_empty() {
        return Err(WebhookError::Unauthorized);
    }
    if let Some(token) = request.header(SIGNATURE_JWT_HEADER) {
        return verify_signature_jwt(token, signing_key, &request.webhook_url, &request.body, now)
            .map_err(|_| WebhookError::Unauthorized);
    }
    match (request.header(SIGNATURE_HEADER), request.header(TIMESTAMP_HEADER)) {
        (Some(signature), Some(timestamp))
            if verify_request_signature(
                signature,
                timestamp,
                &request.webhook_url,
                &request.body,
                signing_key,
            ) =>
        {
            Ok(())
        }
        _ => Err(WebhookError::Unauthorized),
    }
}

fn mac_matches<M: Mac + KeyInit>(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            // Constant time: `verify_slice` compares without an early exit.
            mac.verify_slice(tag).is_ok()
        }
        Err(_) => false,
    }
}

fn decode_json_part<T: DeserializeOwned>(part: &str) -> Result<T, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
