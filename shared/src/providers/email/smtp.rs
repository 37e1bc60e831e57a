//! SMTP over `lettre`: the login check of connect, and replies with our own `Message-ID` and the
//! `In-Reply-To` / `References` that make the customer's client thread them under the customer's mail.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox as MailAddress, MessageBuilder};
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
        // Without a customer's mail to answer (none kept), the first line of the text names the reply.
        _ => out.text.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("Re:").to_owned(),
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
/// list of options under the text.
pub fn build(mailbox: &Mailbox, out: &Outgoing, message_id: &str) -> Result<Message, ProviderError> {
    let from: MailAddress = mailbox
        .address
        .parse()
        .map_err(|e| ProviderError::InvalidCredentials(format!("the channel's address is unusable: {e}")))?;
    let to: MailAddress = out
        .customer_id
        .parse()
        .map_err(|e| ProviderError::Rejected(format!("{} is not an e-mail address: {e}", out.customer_id)))?;
    let mut builder: MessageBuilder = Message::builder()
        .from(from)
        .to(to)
        .subject(subject(out))
        .message_id(Some(bracketed(message_id)))
        .header(ContentType::TEXT_PLAIN);
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
    builder.body(body).map_err(|e| ProviderError::Rejected(format!("the message cannot be built: {e}")))
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
    let message = build(mailbox, out, message_id)?;
    let transport = transport(mailbox, policy, secret).await?;
    transport.send(message).await.map(drop).map_err(classify)
}
