//! Unit tests of mail parsing: the fixtures, charsets and encodings, threading ids, classification.

use super::*;
use crate::test_support::fixture;

const OWN: &str = "support@shop.example";

fn parsed(raw: &str) -> ParsedMail {
    parse(raw.replace('\n', "\r\n").as_bytes(), OWN, |section| format!("imap:9:42:{section}"))
        .expect("parses")
}

#[test]
fn the_multipart_fixture_keeps_its_text_and_references_its_attachments() {
    let raw = fixture("email_multipart_attachment.eml");
    let mail = parse(&raw, OWN, |section| format!("imap:7:3:{section}")).expect("parses");
    assert_eq!(mail.message_id.as_deref(), Some("4.2.0.58.20000519005818.00a86aa0@pop.example.com"));
    assert_eq!(mail.dedup_key, "mid:4.2.0.58.20000519005818.00a86aa0@pop.example.com");
    let customer = mail.customer.clone().expect("a sender");
    assert_eq!(customer.id, "dwsauder@example.com");
    assert_eq!(customer.name.as_deref(), Some("Doug Sauder"));
    // RFC 2047 (ISO-8859-1, Q) in the subject, quoted-printable ISO-8859-1 in the body.
    assert_eq!(mail.subject.as_deref(), Some("Die Hasen und die Frösche"));
    let text = mail.text.as_deref().expect("text");
    assert!(
        text.starts_with("Die Hasen und die Frösche\n\nDie Hasen klagten einst über ihre mißliche Lage"),
        "{text}"
    );
    assert!(
        !text.contains("Die Hasen und die Frösche\n\nDie Hasen und die Frösche"),
        "the subject is not repeated"
    );
    assert!(!text.contains("begin 600"), "attachments are not inlined in the text");
    assert_eq!(mail.sent_at, Some("2000-05-19T04:59:31Z".parse().unwrap()));
    assert_eq!(mail.class, MailClass::Personal);
    assert!(!mail.is_reply());

    assert_eq!(mail.attachments.len(), 2, "{:?}", mail.attachments);
    let uuencoded = &mail.attachments[0];
    assert_eq!(uuencoded.kind, AttachmentKind::Document);
    assert_eq!(uuencoded.file_ref, "imap:7:3:2");
    assert_eq!(uuencoded.mime.as_deref(), Some("text/plain"));
    assert!(
        uuencoded.name.as_deref().is_some_and(|n| n.starts_with("HasenundFr") && n.ends_with("sche.txt"))
    );
    let stork = &mail.attachments[1];
    assert_eq!(stork.file_ref, "imap:7:3:3");
    assert_eq!(stork.name.as_deref(), Some("farmerandstork.txt"));
    assert_eq!(stork.mime.as_deref(), Some("text/plain"));
    assert!(stork.size.is_some_and(|size| (700..900).contains(&size)), "{:?}", stork.size);

    let inbound = mail.inbound().expect("a customer message");
    assert_eq!(inbound.customer.id, "dwsauder@example.com");
    assert_eq!(inbound.provider_message_id, mail.message_id);
    assert_eq!(inbound.attachments, mail.attachments);
}

#[test]
fn the_ses_fixture_is_a_plain_message() {
    let raw = fixture("email_ses_sns_content.eml");
    let mail = parse(&raw, OWN, |s| s.to_owned()).expect("parses");
    assert_eq!(mail.message_id.as_deref(), Some("61967230-7A45-4A9D-BEC9-87CBCF2211C9@example.com"));
    assert_eq!(mail.customer.as_ref().map(|c| c.id.as_str()), Some("sender@example.com"));
    assert_eq!(mail.text.as_deref(), Some("Example subject\n\nExample content"));
    assert!(mail.attachments.is_empty());
    assert_eq!(mail.class, MailClass::Personal);
}

#[test]
fn alternative_parts_give_the_plain_text_and_html_only_mail_readable_text() {
    let alternative = parsed(
        "From: =?UTF-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <Ivan@Example.RU>
To: support@shop.example
Subject: =?UTF-8?Q?=D0=97=D0=B0=D0=BA=D0=B0=D0=B7_=E2=84=96_42?=
Message-ID: <alt-1@example.ru>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=\"b1\"

--b1
Content-Type: text/plain; charset=koi8-r
Content-Transfer-Encoding: base64

79PUwdfY1MUg0M/WwczVytPUwQ==
--b1
Content-Type: text/html; charset=utf-8

<p>HTML that must not win</p>
--b1--
",
    );
    let customer = alternative.customer.clone().unwrap();
    assert_eq!(customer.id, "ivan@example.ru", "addresses are kept in lower case");
    assert_eq!(customer.name.as_deref(), Some("Иван Петров"));
    assert_eq!(alternative.subject.as_deref(), Some("Заказ № 42"));
    assert_eq!(alternative.text.as_deref(), Some("Заказ № 42\n\nОставьте пожалуйста"));

    let html_only = parsed(
        "From: anna@example.com
To: support@shop.example
Subject: Re: Delivery
In-Reply-To: <our-1.omnichat@shop.example>
Message-ID: <html-1@example.com>
Content-Type: text/html; charset=utf-8

<html><body><p>Hello,</p><p>the parcel <b>arrived</b> &amp; all is well.</p></body></html>
",
    );
    let text = html_only.text.unwrap();
    assert!(text.contains("Hello,") && text.contains("the parcel arrived & all is well."), "{text}");
    assert!(!text.contains('<'), "{text}");
    assert!(!text.contains("Delivery"), "a reply's subject is not repeated in its text: {text}");
}

#[test]
fn a_reply_keeps_only_the_new_text_and_names_its_parents() {
    let reply = parsed(
        "From: Anna <anna@example.com>
To: support@shop.example
Subject: Re: Where is my order?
Message-ID: <r2@example.com>
In-Reply-To: <out-1.omnichat@shop.example>
References: <first@example.com>
 <out-1.omnichat@shop.example>
Content-Type: text/plain; charset=utf-8

Thanks, that helps!

On Mon, 3 Jun 2024 at 10:00, Support <support@shop.example> wrote:
> Your order ships tomorrow.
>
>> Where is my order?
",
    );
    assert!(reply.is_reply());
    assert_eq!(reply.in_reply_to, ["out-1.omnichat@shop.example"]);
    assert_eq!(reply.references, ["first@example.com", "out-1.omnichat@shop.example"]);
    assert_eq!(reply.parents(), ["out-1.omnichat@shop.example", "first@example.com"]);
    assert_eq!(reply.text.as_deref(), Some("Thanks, that helps!"));
}

#[test]
fn quoted_originals_are_cut_but_inline_answers_kept() {
    assert_eq!(
        strip_quoted("Да, подходит.\n\n15.05.2024, 10:00, Support пишет:\n> Вам подходит?\n"),
        "Да, подходит."
    );
    assert_eq!(
        strip_quoted("See below.\n\n-----Original Message-----\nFrom: Support\nSent: Monday\n\nHello"),
        "See below."
    );
    let inline = "> Which size?\nM, please.\n> Which colour?\nBlue.";
    assert_eq!(strip_quoted(inline), inline);
    assert_eq!(strip_quoted("> only a quote"), "> only a quote", "nothing would be left: kept");
}

#[test]
fn automatic_mail_is_told_from_personal_mail() {
    let base = "From: anna@example.com\nTo: support@shop.example\nSubject: Hi\nMessage-ID: <m@example.com>\n";
    let with = |header: &str| parsed(&format!("{base}{header}\n\nBody\n")).class;
    assert_eq!(with("Auto-Submitted: auto-replied"), MailClass::AutoReply);
    assert_eq!(with("Auto-Submitted: no"), MailClass::Personal);
    assert_eq!(with("X-Autoreply: yes"), MailClass::AutoReply);
    assert_eq!(with("Precedence: bulk"), MailClass::Bulk);
    assert_eq!(with("Precedence: list"), MailClass::Bulk);
    assert_eq!(with("Precedence: junk"), MailClass::Bulk);
    assert_eq!(with("List-Id: <news.example.com>"), MailClass::Bulk);
    assert_eq!(with("Return-Path: <>"), MailClass::AutoReply);
    assert_eq!(with("X-Mailer: Thunderbird"), MailClass::Personal);
}

#[test]
fn a_bounce_names_the_message_that_failed() {
    let bounce = parsed(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: support@shop.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-1@mx.example.net>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"

--r
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.
--r
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; nobody@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.com>: Recipient address rejected
--r
Content-Type: text/rfc822-headers

From: support@shop.example
To: nobody@example.com
Subject: Re: Order
Message-ID: <0190a6a0-0000-7000-8000-000000000001.omnichat@shop.example>
--r--
",
    );
    assert_eq!(bounce.class, MailClass::Bounce);
    assert_eq!(bounce.bounced, ["0190a6a0-0000-7000-8000-000000000001.omnichat@shop.example"]);
    assert_eq!(
        bounce.bounce_reason.as_deref(),
        Some("smtp; 550 5.1.1 <nobody@example.com>: Recipient address rejected")
    );
}

#[test]
fn a_returned_message_part_names_the_failed_message_too() {
    let bounce = parsed(
        "From: postmaster@example.org
To: support@shop.example
Subject: Delivery failure
Content-Type: multipart/mixed; boundary=\"x\"

--x
Content-Type: text/plain

Delivery failed.
--x
Content-Type: message/rfc822

From: support@shop.example
To: gone@example.org
Subject: Re: Hello
Message-ID: <ours-2.omnichat@shop.example>

Our reply.
--x--
",
    );
    assert_eq!(bounce.class, MailClass::Bounce);
    assert_eq!(bounce.bounced, ["ours-2.omnichat@shop.example"]);
}

#[test]
fn the_dedup_key_is_the_message_id_or_a_digest_of_the_mail() {
    let with_id = parsed("From: a@example.com\nMessage-ID: < spaced@example.com >\nSubject: x\n\nBody\n");
    assert_eq!(with_id.dedup_key, "mid:spaced@example.com");
    let long_id = format!("From: a@example.com\nMessage-ID: <{}@example.com>\n\nBody\n", "x".repeat(300));
    assert!(parsed(&long_id).dedup_key.starts_with("mid-sha256:"));
    let without = "From: a@example.com\nSubject: no id\n\nBody\n";
    let first = parsed(without);
    assert!(first.dedup_key.starts_with("sha256:"), "{}", first.dedup_key);
    assert_eq!(first.dedup_key, parsed(without).dedup_key, "the same mail, the same key");
    assert_ne!(first.dedup_key, parsed(&without.replace("Body", "Other")).dedup_key);
}

#[test]
fn the_reply_address_is_reply_to_unless_it_is_ours() {
    let reply_to = parsed("From: Form <noreply@forms.example>\nReply-To: Client@Example.com\n\nHi\n");
    assert_eq!(reply_to.customer.unwrap().id, "client@example.com");
    let ours = parsed(&format!("From: anna@example.com\nReply-To: {OWN}\n\nHi\n"));
    assert_eq!(ours.customer.unwrap().id, "anna@example.com");
}

#[test]
fn nested_attachments_get_their_imap_sections() {
    let mail = parsed(
        "From: anna@example.com
Subject: Photos
Content-Type: multipart/mixed; boundary=\"outer\"

--outer
Content-Type: multipart/alternative; boundary=\"inner\"

--inner
Content-Type: text/plain

See the photo.
--inner
Content-Type: text/html

<p>See the photo.</p>
--inner--
--outer
Content-Type: image/png; name=\"cat.png\"
Content-Disposition: attachment; filename=\"cat.png\"
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--outer
Content-Type: application/pdf; name=\"invoice.pdf\"
Content-Transfer-Encoding: base64

JVBERi0=
--outer--
",
    );
    assert_eq!(mail.text.as_deref(), Some("Photos\n\nSee the photo."));
    let refs: Vec<(&str, &str, AttachmentKind)> = mail
        .attachments
        .iter()
        .map(|a| (a.name.as_deref().unwrap_or(""), a.file_ref.as_str(), a.kind))
        .collect();
    assert_eq!(
        refs,
        [
            ("cat.png", "imap:9:42:2", AttachmentKind::Image),
            ("invoice.pdf", "imap:9:42:3", AttachmentKind::Document)
        ]
    );
    assert_eq!(mail.attachments[0].size, Some(8));
}

#[test]
fn a_long_body_is_capped() {
    let body = "word ".repeat(10_000);
    let mail = parsed(&format!("From: a@example.com\nIn-Reply-To: <x@y>\n\n{body}\n"));
    let text = mail.text.unwrap();
    assert!(text.chars().count() <= MAX_TEXT_CHARS + 4, "{}", text.chars().count());
    assert!(text.ends_with("[…]"));
}

#[test]
fn an_attachments_bytes_are_its_part_with_the_transfer_encoding_undone() {
    let raw = fixture("email_multipart_attachment.eml");
    let find = |needle: &[u8]| raw.windows(needle.len()).position(|w| w == needle).expect("in the fixture");
    // Section 3 (7bit text): the body after its header's blank line, up to the CRLF of the closing
    // delimiter (RFC 2046 5.1.1: that CRLF belongs to the delimiter).
    let headers_end = b"filename=\"farmerandstork.txt\"\r\n\r\n";
    let start = find(headers_end) + headers_end.len();
    let end = find(b"\r\n--=====================_716740438==_--");
    assert_eq!(part_bytes(&raw, "3").as_deref(), Some(&raw[start..end]));
    // Section 2 (x-uuencode): the ISO-8859-1 file inside, not the encoded text.
    let uudecoded = part_bytes(&raw, "2").expect("the uuencoded part");
    assert!(
        uudecoded.starts_with(b"Die Hasen und die Fr\xf6sche\r\n\r\nDie Hasen klagten einst \xfcber"),
        "{:?}",
        String::from_utf8_lossy(&uudecoded)
    );
    assert!(!uudecoded.windows(5).any(|w| w == b"begin"));
    assert_eq!(part_bytes(&raw, "9"), None);

    // Base64 and quoted-printable parts come back byte for byte.
    let png: Vec<u8> = (0u8..=255).chain([0x89, b'P', b'N', b'G']).collect();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &png);
    let lines: Vec<&str> =
        encoded.as_bytes().chunks(76).map(|chunk| std::str::from_utf8(chunk).expect("ascii")).collect();
    let mail = format!(
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
         --b1\r\nContent-Type: image/png; name=\"p.png\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"p.png\"\r\n\r\n{}\r\n--b1\r\n\
         Content-Type: text/csv; charset=windows-1251\r\nContent-Transfer-Encoding: quoted-printable\r\n\
         Content-Disposition: attachment; filename=\"t.csv\"\r\n\r\na;=E0=E1=E2\r\nb;c=\r\nd\r\n--b1--\r\n",
        lines.join("\r\n")
    );
    let parsed = parse(mail.as_bytes(), OWN, |section| section.to_owned()).expect("parses");
    let refs: Vec<&str> = parsed.attachments.iter().map(|a| a.file_ref.as_str()).collect();
    assert_eq!(refs, ["2", "3"]);
    assert_eq!(part_bytes(mail.as_bytes(), "2"), Some(png));
    // No charset conversion: the windows-1251 bytes as they were.
    assert_eq!(part_bytes(mail.as_bytes(), "3").as_deref(), Some(&b"a;\xe0\xe1\xe2\r\nb;cd"[..]));
}
