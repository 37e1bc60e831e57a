//! SMTP over `lettre`: the login check of connect, and replies with our own `Message-ID` and the
//! `In-Reply-To` / `References` that make the customer's client thread them under the customer's mail.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox as MailAddress, MessageBuilder, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{LoginSecret, Mailbox, Security};
use crate::net::{OutboundPolicy, Refusal};
use crate::providers::{MailThread, Outgoing, ProviderError};

/// Connecting, each command, and the message data: lettre applies it to each step.
const TIMEOUT: Duration = Duration::from_secs(30);
/// What a subject line may hold before it is cut (RFC 5322 allows longer, clients show less).
const SUBJECT_MAX_CHARS: usize = 200;
/// References kept in a reply: the thread's root and the most recent ones (RFC 5322 §3.6.4 allows trimming).
const MAX_REFERENCES: usize = 20;

/// Our `Message-ID` for an outgoing message, without angle brackets: derived from our message id, so a
/// retried send carries the same one.
pub fn message_id(idempotency_key: &str, domain: &str) -> String {
    let local: String = idempotency_key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect();
    let local = if local.is_empty() { uuid::Uuid::now_v7().to_string() } else { local };
    format!("{local}.omnichat@{domain}")
}

/// The transport connects to an address of the host that passed the outbound `policy` (resolved once,
/// here), while TLS still verifies the certificate against the host name.
async fn transport(
    mailbox: &Mailbox,
    policy: OutboundPolicy,
    secret: &LoginSecret,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, ProviderError> {
    let endpoint = &mailbox.smtp;
    let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
    let address = policy
        .resolve(host, endpoint.port)
        .await
        .map_err(|refusal| match refusal {
            Refusal::Unresolvable => ProviderError::Unavailable(format!("{host}: {refusal}")),
            refusal => ProviderError::Rejected(format!("{host} is refused: {refusal}")),
        })?
        .first()
        .map(|address| address.ip().to_string())
        .ok_or_else(|| ProviderError::Unavailable(format!("{host} does not resolve")))?;
    let tls = |host: &str| {
        TlsParameters::new(host.to_owned())
            .map_err(|e| ProviderError::Unavailable(format!("SMTP over TLS is not available: {e}")))
    };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address);
    let builder = match endpoint.security {
        Security::Tls => builder.tls(Tls::Wrapper(tls(host)?)),
        Security::StartTls => builder.tls(Tls::Required(tls(host)?)),
        Security::Plain => builder,
    };
    let (credentials, mechanisms) = match secret {
        LoginSecret::Password(password) => (
            Credentials::new(mailbox.login.clone(), password.expose().to_owned()),
            vec![Mechanism::Plain, Mechanism::Login],
        ),
        LoginSecret::AccessToken(token) => {
            (Credentials::new(mailbox.login.clone(), token.expose().to_owned()), vec![Mechanism::Xoauth2])
        }
    };
    Ok(builder
        .port(endpoint.port)
        .timeout(Some(TIMEOUT))
        .hello_name(ClientId::Domain(mailbox.domain().to_owned()))
        .credentials(credentials)
        .authentication(mechanisms)
        .build())
}

/// What an SMTP failure means for us: a refused login, a refused message, or trouble worth retrying.
fn classify(error: lettre::transport::smtp::Error) -> ProviderError {
    let code = error.status().map(|code| code.to_string());
    let reason = error.to_string();
    match code.as_deref() {
        // 530 authentication required, 534 mechanism too weak, 535 credentials invalid.
        Some("530" | "534" | "535") => ProviderError::InvalidCredentials(reason),
        _ if error.is_permanent() => ProviderError::Rejected(reason),
        _ if error.is_client() && reason.contains("authentication mechanism") => {
            ProviderError::InvalidCredentials(reason)
        }
        _ => ProviderError::Unavailable(reason),
    }
}

/// Connects, says EHLO, upgrades to TLS where asked and logs in, then quits.
pub async fn check_login(
    mailbox: &Mailbox,
    policy: OutboundPolicy,
    secret: &LoginSecret,
) -> Result<(), ProviderError> {
    let transport = transport(mailbox, policy, secret).await?;
    match transport.test_connection().await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ProviderError::Unavailable("the server did not answer NOOP".into())),
        Err(error) => Err(classify(error)),
    }
}

fn subject(out: &Outgoing) -> String {
    let subject = match &out.thread {
        Some(MailThread { subject: Some(subject), .. }) => reply_subject(subject),
        // Without a customer's mail to answer (none kept), the first line of the text names the reply, or
        // else the first file's name.
        _ => match out.text.lines().map(str::trim).find(|line| !line.is_empty()) {
            Some(line) => line.to_owned(),
            None => out.attachments.first().map_or_else(|| "Re:".to_owned(), |file| file.file_name()),
        },
    };
    let mut subject: String = subject.chars().filter(|c| !c.is_control()).collect();
    if subject.chars().count() > SUBJECT_MAX_CHARS {
        subject = subject.chars().take(SUBJECT_MAX_CHARS - 1).chain(['…']).collect();
    }
    subject
}

/// `Re: <subject>`, without stacking a second `Re:` (nor keeping the localized ones some clients write).
pub fn reply_subject(subject: &str) -> String {
    const PREFIXES: [&str; 5] = ["re:", "re :", "aw:", "sv:", "ответ:"];
    let mut rest = subject.trim();
    while let Some(prefix) =
        PREFIXES.iter().find(|p| rest.get(..p.len()).is_some_and(|head| head.to_lowercase() == **p))
    {
        rest = rest[prefix.len()..].trim_start();
    }
    if rest.is_empty() { "Re:".to_owned() } else { format!("Re: {rest}") }
}

fn bracketed(id: &str) -> String {
    format!("<{}>", id.trim().trim_start_matches('<').trim_end_matches('>'))
}

/// The message as it goes out: plain text UTF-8; quick-reply buttons (which e-mail does not have) as a
/// list of options under the text. With files (`files[i]` holds the bytes of `out.attachments[i]`), it is
/// `multipart/mixed`: the text part first (left out when there is no text), then each file as an
/// attachment part with its name and type (base64 where it is not text).
pub fn build(
    mailbox: &Mailbox,
    out: &Outgoing,
    message_id: &str,
    files: &[Vec<u8>],
) -> Result<Message, ProviderError> {
    if files.len() != out.attachments.len() {
        return Err(ProviderError::Rejected("the files' bytes were not all handed to the sender".into()));
    }
    let from: MailAddress = mailbox
        .address
        .parse()
        .map_err(|e| ProviderError::InvalidCredentials(format!("the channel's address is unusable: {e}")))?;
    let to: MailAddress = out
        .customer_id
        .parse()
        .map_err(|e| ProviderError::Rejected(format!("{} is not an e-mail address: {e}", out.customer_id)))?;
    let mut builder: MessageBuilder =
        Message::builder().from(from).to(to).subject(subject(out)).message_id(Some(bracketed(message_id)));
    if out.automatic {
        builder = builder.header(AutoSubmitted);
    }
    if let Some(thread) = &out.thread {
        if let Some(parent) = &thread.in_reply_to {
            builder = builder.in_reply_to(bracketed(parent));
        }
        let mut references: Vec<&String> = thread.references.iter().collect();
        if references.len() > MAX_REFERENCES {
            let tail = references.split_off(references.len() - (MAX_REFERENCES - 1));
            references.truncate(1);
            references.extend(tail);
        }
        if !references.is_empty() {
            let joined = references.iter().map(|id| bracketed(id)).collect::<Vec<_>>().join(" ");
            builder = builder.references(joined);
        }
    }
    let mut body = out.text.clone();
    if !out.buttons.is_empty() {
        body.push_str("\n\n");
        for option in &out.buttons {
            body.push_str(&format!("• {option}\n"));
        }
    }
    let built = if out.attachments.is_empty() {
        builder.header(ContentType::TEXT_PLAIN).body(body)
    } else {
        let mut parts = MultiPart::mixed().build();
        if !body.trim().is_empty() {
            parts = parts.singlepart(SinglePart::plain(body));
        }
        for (media, bytes) in out.attachments.iter().zip(files) {
            let content_type = ContentType::parse(&media.mime)
                .or_else(|_| ContentType::parse("application/octet-stream"))
                .map_err(|e| ProviderError::Rejected(format!("the file's type is unusable: {e}")))?;
            parts = parts.singlepart(Attachment::new(media.file_name()).body(bytes.clone(), content_type));
        }
        builder.multipart(parts)
    };
    built.map_err(|e| ProviderError::Rejected(format!("the message cannot be built: {e}")))
}

/// `Auto-Submitted: auto-replied` (RFC 3834 section 5): the mail was written by the system in answer to
/// the customer's; autoresponders that follow the RFC do not answer it, so two systems cannot loop.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl lettre::message::header::Header for AutoSubmitted {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), "auto-replied".to_owned())
    }
}

pub async fn send(
    mailbox: &Mailbox,
    policy: OutboundPolicy,
    secret: &LoginSecret,
    out: &Outgoing,
    message_id: &str,
) -> Result<(), ProviderError> {
    let mut files = Vec::with_capacity(out.attachments.len());
    for media in &out.attachments {
        files.push(media.read().await?);
    }
    let message = build(mailbox, out, message_id, &files)?;
    let transport = transport(mailbox, policy, secret).await?;
    transport.send(message).await.map(drop).map_err(classify)
}
