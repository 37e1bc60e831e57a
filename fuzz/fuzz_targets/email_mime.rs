//! E-mail: one raw fetched mail through `mail::parse` (mail-parser: MIME structure, RFC 2047 headers,
//! charsets, HTML bodies; then classification, bounce details, quote stripping and attachments).
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnichat::providers::email::mail::{MAX_TEXT_CHARS, parse, strip_quoted};

const OWN_ADDRESS: &str = "support@example.test";

fuzz_target!(|data: &[u8]| {
    let reference = |section: &str| format!("imap:{section}");
    if let Some(mail) = parse(data, OWN_ADDRESS, reference) {
        assert!(!mail.dedup_key.is_empty());
        if let Some(text) = &mail.text {
            assert!(!text.trim().is_empty(), "an empty text is None");
            // The cap plus the "\n[…]" marker.
            assert!(text.chars().count() <= MAX_TEXT_CHARS + 4, "the text cap was not applied");
        }
        if let Some(customer) = &mail.customer {
            assert!(customer.id.contains('@'), "a customer without an address: {customer:?}");
        }
        let _ = mail.is_reply();
        let _ = mail.parents();
        if let Some(inbound) = mail.inbound() {
            assert_eq!(inbound.dedup_key, mail.dedup_key);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let stripped = strip_quoted(text);
        assert!(stripped.len() <= text.len() + 1, "stripping quotes made the text longer");
    }
});
