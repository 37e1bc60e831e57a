//! One fetched mail, parsed with `mail-parser` (RFC 2047 headers, charsets, multipart/alternative, HTML-only
//! bodies as readable text) into what the contact center keeps: the customer, the text without the quoted
//! original, attachments by reference, the threading ids, and whether a person wrote it at all.

use std::collections::HashMap;

use jiff::Timestamp;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use crate::domain::{Attachment, AttachmentKind, Customer};
use crate::ports::mailbox::{MailClass, ParsedMail};

/// Text kept per mail: a long newsletter-like body must not blow the item size (DynamoDB: 400 KB).
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Message-IDs longer than this go into the dedup key as a digest (keys have a size limit).
const MAX_ID_IN_KEY: usize = 200;

/// Parses one raw mail. `own_address` (the channel's, lower case) is never taken as the customer;
/// `attachment_ref` turns an IMAP body section (`2`, `1.2`) into the reference kept for an attachment.
pub fn parse(raw: &[u8], own_address: &str, attachment_ref: impl Fn(&str) -> String) -> Option<ParsedMail> {
    let message = MessageParser::default().parse(raw)?;
    let message_id = message.message_id().and_then(clean_id);
    let dedup_key = match &message_id {
        Some(id) if id.len() <= MAX_ID_IN_KEY => format!("mid:{id}"),
        Some(id) => format!("mid-sha256:{}", hex(&Sha256::digest(id.as_bytes()))),
        None => format!("sha256:{}", hex(&Sha256::digest(raw))),
    };
    let from_addr = message.from().and_then(|a| a.first());
    let from = from_addr.and_then(|a| a.address()).map(str::to_lowercase);
    let reply_to = message
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_lowercase)
        .filter(|address| address.contains('@') && address != own_address);
    let name = from_addr.and_then(|a| a.name()).map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
    let customer = reply_to
        .or_else(|| from.clone())
        .filter(|address| address.contains('@'))
        .map(|id| Customer { id, name, handle: None });
    let subject = message.subject().map(collapse_whitespace).filter(|s| !s.is_empty());
    let in_reply_to = id_list(message.in_reply_to());
    let references = id_list(message.references());
    let class = classify(&message, from.as_deref());
    let sent_at = message.date().and_then(|date| Timestamp::from_second(date.to_timestamp()).ok());
    let (bounced, bounce_reason) = match class {
        MailClass::Bounce => bounce_details(&message, &in_reply_to, &references),
        _ => (Vec::new(), None),
    };
    let is_reply = !in_reply_to.is_empty() || !references.is_empty();
    let text = mail_text(&message, subject.as_deref(), is_reply);
    let attachments = attachments(&message, attachment_ref);
    Some(ParsedMail {
        message_id,
        dedup_key,
        customer,
        from,
        subject,
        in_reply_to,
        references,
        text,
        attachments,
        sent_at,
        class,
        bounced,
        bounce_reason,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// A Message-ID without angle brackets and spaces; `None` when nothing is left.
fn clean_id(id: &str) -> Option<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>').trim();
    (!id.is_empty() && !id.chars().any(char::is_whitespace)).then(|| id.to_owned())
}

fn id_list(value: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    let ids: Vec<String> = match value {
        mail_parser::HeaderValue::Text(id) => clean_id(id).into_iter().collect(),
        mail_parser::HeaderValue::TextList(ids) => ids.iter().filter_map(|id| clean_id(id)).collect(),
        _ => Vec::new(),
    };
    let mut unique = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    unique
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header_lower(message: &Message<'_>, name: &str) -> Option<String> {
    message.header_raw(name).map(|value| value.trim().to_ascii_lowercase())
}

fn classify(message: &Message<'_>, from: Option<&str>) -> MailClass {
    let local_part = from.and_then(|f| f.split('@').next()).unwrap_or_default();
    let content_type = message.root_part().content_type();
    let report_type = content_type
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    if matches!(local_part, "mailer-daemon" | "postmaster")
        || report_type.as_deref() == Some("delivery-status")
    {
        return MailClass::Bounce;
    }
    if header_lower(message, "Auto-Submitted").is_some_and(|value| !value.starts_with("no"))
        || message.header_raw("X-Autoreply").is_some()
        || message.header_raw("X-Autorespond").is_some()
        || report_type.is_some()
    {
        return MailClass::AutoReply;
    }
    match header_lower(message, "Precedence").as_deref() {
        Some("bulk" | "list" | "junk") => return MailClass::Bulk,
        Some("auto_reply") => return MailClass::AutoReply,
        _ => {}
    }
    if message.header_raw("List-Id").is_some() {
        return MailClass::Bulk;
    }
    // RFC 5321 §4.5.5: notifications go out with a null reverse path, which the final server records.
    if message.header_raw("Return-Path").is_some_and(|path| path.trim() == "<>") {
        return MailClass::AutoReply;
    }
    MailClass::Personal
}

/// The Message-IDs a bounce reports (of the returned message or its headers, or the ids the bounce
/// itself answers), and the reason it gives.
fn bounce_details(
    message: &Message<'_>,
    in_reply_to: &[String],
    references: &[String],
) -> (Vec<String>, Option<String>) {
    let mut ids: Vec<String> = in_reply_to.iter().chain(references).cloned().collect();
    let mut reason = None;
    for part in &message.parts {
        let content_type = part.content_type();
        let subtype = content_type.and_then(|ct| ct.subtype()).map(str::to_ascii_lowercase);
        match &part.body {
            PartType::Message(returned) => ids.extend(returned.message_id().and_then(clean_id)),
            PartType::Text(text) | PartType::Html(text) => {
                if subtype.as_deref() == Some("rfc822-headers") {
                    ids.extend(returned_message_id(text.as_bytes()));
                }
                if reason.is_none() {
                    reason = diagnostic(text);
                }
            }
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
                if subtype.as_deref() == Some("rfc822-headers") {
                    ids.extend(returned_message_id(bytes));
                }
                if reason.is_none() && subtype.as_deref() == Some("delivery-status") {
                    reason = diagnostic(&String::from_utf8_lossy(bytes));
                }
            }
            PartType::Multipart(_) => {}
        }
    }
    let mut unique = Vec::new();
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    (unique, reason)
}

/// The Message-ID in the returned headers of a bounce (`text/rfc822-headers`), which end without the
/// blank line a header parser waits for.
fn returned_message_id(headers: &[u8]) -> Option<String> {
    let mut complete = headers.to_vec();
    complete.extend_from_slice(b"\r\n\r\n");
    MessageParser::default().parse_headers(&complete).and_then(|h| h.message_id().and_then(clean_id))
}

/// `Diagnostic-Code:` (or `Status:`) of a delivery-status report.
fn diagnostic(text: &str) -> Option<String> {
    let find = |name: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| collapse_whitespace(value))
                .filter(|v| !v.is_empty())
        })
    };
    find("Diagnostic-Code").or_else(|| find("Status")).map(|reason| reason.chars().take(300).collect())
}

/// The text bodies (HTML converted to text where that is all there is), the quoted original of a reply
/// cut off, capped in length.
fn mail_text(message: &Message<'_>, subject: Option<&str>, is_reply: bool) -> Option<String> {
    let bodies: Vec<String> = (0..message.text_body_count().max(1))
        .filter_map(|i| message.body_text(i))
        .map(|body| body.replace("\r\n", "\n"))
        .filter(|body| !body.trim().is_empty())
        .collect();
    let body = strip_quoted(&bodies.join("\n\n"));
    let repeats_subject =
        |subject: &str| body.lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.trim() == subject);
    let text = match (subject, is_reply) {
        (Some(subject), false) if body.is_empty() => subject.to_owned(),
        (Some(subject), false) if !repeats_subject(subject) => format!("{subject}\n\n{body}"),
        _ => body,
    };
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        let cut: String = text.chars().take(MAX_TEXT_CHARS).collect();
        return Some(format!("{cut}\n[…]"));
    }
    Some(text.to_owned())
}

/// Lines that introduce the quoted original under a reply ("On … wrote:", "… написал(а):").
fn is_attribution(line: &str) -> bool {
    let lower = line.trim().to_lowercase();
    lower.ends_with(':')
        && ["wrote", "написал", "пишет", "schrieb", "a écrit", "escribió", "ha scritto"]
            .iter()
            .any(|marker| lower.contains(marker))
}

/// Separators of the quoted original in Outlook-like clients.
fn is_separator(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("-----Original Message-----")
        || line.starts_with("-------- Original Message")
        || line.starts_with("-------- Исходное сообщение")
        || line.starts_with("-------- Пересылаемое сообщение")
        || (line.len() >= 20 && line.chars().all(|c| c == '_'))
}

/// Cuts the quoted original under a reply: from a separator, or from the first quoted line (`>`) after
/// which only quoted or blank lines follow, together with its attribution line. Inline answers between
/// quoted lines are kept whole. Returns the text unchanged when nothing would be left.
pub fn strip_quoted(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let quoted = |line: &&str| line.trim_start().starts_with('>') || line.trim().is_empty();
    let cut = lines.iter().enumerate().position(|(i, line)| {
        is_separator(line) || (line.trim_start().starts_with('>') && lines[i..].iter().all(quoted))
    });
    let Some(cut) = cut else {
        return text.trim().to_owned();
    };
    let mut end = cut;
    while end > 0 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    if end > 0 && is_attribution(lines[end - 1]) {
        end -= 1;
    } else if end > 1 && lines[end - 1].trim().to_lowercase() == "wrote:" {
        // A long "On …, Name <address>" wraps before "wrote:".
        end -= 2;
    }
    let kept = lines[..end].join("\n");
    if kept.trim().is_empty() { text.trim().to_owned() } else { kept.trim().to_owned() }
}

/// The IMAP body section of every part (`1`, `2`, `1.2`, …), by mail-parser's part id.
fn sections(message: &Message<'_>) -> HashMap<u32, String> {
    fn walk(message: &Message<'_>, children: &[u32], prefix: &str, map: &mut HashMap<u32, String>) {
        for (index, id) in children.iter().enumerate() {
            let section =
                if prefix.is_empty() { (index + 1).to_string() } else { format!("{prefix}.{}", index + 1) };
            if let Some(PartType::Multipart(grandchildren)) = message.parts.get(*id as usize).map(|p| &p.body)
            {
                walk(message, grandchildren, &section, map);
            }
            map.insert(*id, section);
        }
    }
    let mut map = HashMap::new();
    match message.parts.first().map(|root| &root.body) {
        Some(PartType::Multipart(children)) => walk(message, children, "", &mut map),
        _ => {
            map.insert(0, "1".to_owned());
        }
    }
    map
}

/// The bytes of the part at IMAP body `section` (as `parse` referred to an attachment), with its
/// Content-Transfer-Encoding (base64, quoted-printable) undone and no charset conversion: the file as the
/// customer attached it. `None` when the mail has no such part (or it is a multipart container).
pub fn part_bytes(raw: &[u8], section: &str) -> Option<Vec<u8>> {
    let message = MessageParser::default().parse(raw)?;
    let id = sections(&message).into_iter().find(|(_, s)| s == section).map(|(id, _)| id)?;
    let part = message.parts.get(id as usize)?;
    match &part.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => Some(bytes.to_vec()),
        PartType::Message(returned) => Some(returned.raw_message().to_vec()),
        // Text was decoded into UTF-8 by the parser: the file's own bytes are taken from the raw mail.
        PartType::Text(text) | PartType::Html(text) => {
            let encoded = raw.get(part.offset_body as usize..part.offset_end as usize);
            let uuencoded = part.content_transfer_encoding().is_some_and(|e| {
                ["x-uuencode", "uuencode", "x-uue"].iter().any(|u| e.eq_ignore_ascii_case(u))
            });
            let decoded = encoded.and_then(|encoded| match part.encoding {
                mail_parser::Encoding::Base64 => mail_parser::decoders::base64::base64_decode(encoded),
                mail_parser::Encoding::QuotedPrintable => {
                    mail_parser::decoders::quoted_printable::quoted_printable_decode(encoded)
                }
                mail_parser::Encoding::None if uuencoded => uudecode(encoded),
                mail_parser::Encoding::None => Some(encoded.to_vec()),
            });
            Some(decoded.unwrap_or_else(|| text.as_bytes().to_vec()))
        }
        PartType::Multipart(_) => None,
    }
}

/// The file inside a uuencoded body (`begin <mode> <name>` ... `end`, the legacy encoding some clients
/// still write as `Content-Transfer-Encoding: x-uuencode`); `None` when it is not one.
fn uudecode(encoded: &[u8]) -> Option<Vec<u8>> {
    // Bytes, not text: the `begin` line names the file in whatever charset the sender used.
    let mut lines = encoded.split(|b| *b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    lines.find(|line| line.starts_with(b"begin "))?;
    let mut out = Vec::with_capacity(encoded.len() * 3 / 4);
    for line in lines {
        if line == b"end" {
            return Some(out);
        }
        let Some((&count, data)) = line.split_first() else { continue };
        let length = usize::from(count.wrapping_sub(b' ') & 0x3f);
        if length == 0 {
            continue;
        }
        let sextet = |c: Option<&u8>| c.map_or(0, |c| c.wrapping_sub(b' ') & 0x3f);
        let mut decoded = Vec::with_capacity(length + 2);
        for group in data.chunks(4) {
            let [a, b, c, d] = [0, 1, 2, 3].map(|i| sextet(group.get(i)));
            decoded.extend_from_slice(&[(a << 2) | (b >> 4), (b << 4) | (c >> 2), (c << 6) | d]);
        }
        decoded.truncate(length);
        out.extend_from_slice(&decoded);
    }
    None
}

fn attachments(message: &Message<'_>, attachment_ref: impl Fn(&str) -> String) -> Vec<Attachment> {
    let sections = sections(message);
    message
        .attachments
        .iter()
        .filter_map(|id| Some((*id, message.parts.get(*id as usize)?)))
        .map(|(id, part)| {
            let mime = part.content_type().map(|ct| match ct.subtype() {
                Some(subtype) => format!("{}/{}", ct.ctype(), subtype).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            });
            let kind = match mime.as_deref().and_then(|m| m.split('/').next()) {
                Some("image") => AttachmentKind::Image,
                Some("video") => AttachmentKind::Video,
                Some("audio") => AttachmentKind::Audio,
                _ => AttachmentKind::Document,
            };
            let name = part.attachment_name().map(str::to_owned).or_else(|| match &part.body {
                PartType::Message(returned) => {
                    Some(format!("{}.eml", returned.subject().unwrap_or("message")))
                }
                _ => None,
            });
            let section = sections.get(&id).cloned().unwrap_or_else(|| id.to_string());
            Attachment { kind, file_ref: attachment_ref(&section), mime, size: Some(part.len() as u64), name }
        })
        .collect()
}

#[cfg(test)]
mod tests;
