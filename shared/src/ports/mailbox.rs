//! The mailbox port: what the e-mail poller needs of a mailbox (nothing is pushed: mail is fetched), and a
//! fetched mail as the poller sees it. The IMAP adapter is `providers::email`.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::domain::{Attachment, Customer, InboundKind, InboundMessage};
use crate::error::{ProviderError, Result};
use crate::ports::channel::ChannelSecrets;

/// Opens mailboxes with a channel's credentials.
#[async_trait]
pub trait Mailboxes: Send + Sync {
    /// Logs in to the channel's mailbox and selects its INBOX.
    async fn open(&self, secrets: &ChannelSecrets) -> Result<Box<dyn Inbox>>;

    /// The channel's credentials with what a token endpoint rotated while the mailbox was used (a new
    /// refresh token), once; `None` when nothing changed.
    fn rotated_secrets(&self, secrets: &ChannelSecrets) -> Option<ChannelSecrets>;
}

/// One open INBOX. Messages are named by UID; a UIDVALIDITY change means the UIDs start over.
#[async_trait]
pub trait Inbox: Send {
    /// The mailbox's own address, lower case (mail from it is ours, never a customer's).
    fn address(&self) -> &str;
    fn uid_validity(&self) -> u32;
    /// The UID the next message will get, when the server says.
    fn uid_next(&self) -> Option<u32>;
    /// The UIDs above `last_uid`, ascending.
    async fn uids_after(&mut self, last_uid: u32) -> Result<Vec<u32>, ProviderError>;
    /// The UIDs of the messages that arrived at or after `since`, ascending.
    async fn uids_since(&mut self, since: Timestamp) -> Result<Vec<u32>, ProviderError>;
    /// One message, parsed, without marking it read; `None` when it was expunged meanwhile.
    async fn fetch(&mut self, uid: u32) -> Result<Option<FetchedMail>, ProviderError>;
    /// Ends the session; a failure here changes nothing.
    async fn logout(self: Box<Self>);
}

/// One fetched message.
#[derive(Debug, Clone)]
pub struct FetchedMail {
    /// `None` when the message has no readable headers.
    pub mail: Option<ParsedMail>,
    /// When it arrived in the mailbox (INTERNALDATE).
    pub arrived: Option<Timestamp>,
}

/// Who or what sent a mail, by its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailClass {
    /// Written by a person: may open a dialog.
    Personal,
    /// An automatic answer (`Auto-Submitted`, `X-Autoreply`, `Precedence: auto_reply`, a null sender):
    /// joins the customer's open dialog when it answers one of its messages, never opens one.
    AutoReply,
    /// A mailing list or bulk mail (`Precedence: bulk|list|junk`, `List-Id`): same rule as auto-replies.
    Bulk,
    /// A non-delivery report (MAILER-DAEMON, postmaster, `multipart/report; report-type=delivery-status`):
    /// marks our outgoing message failed, never stored as a customer message.
    Bounce,
}

/// A mail as the poller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMail {
    /// Without angle brackets.
    pub message_id: Option<String>,
    /// The same mail fetched twice (another poll, a changed UIDVALIDITY) has the same key.
    pub dedup_key: String,
    /// The address replies go to (`Reply-To`, else `From`), lower case, with the sender's name.
    pub customer: Option<Customer>,
    /// The `From` address, lower case.
    pub from: Option<String>,
    pub subject: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The body as text (HTML converted), the quoted original of a reply cut off; for a new conversation
    /// (not a reply) the subject comes first, as it often is the message.
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
    pub sent_at: Option<Timestamp>,
    pub class: MailClass,
    /// For a bounce: the Message-IDs of the mail that could not be delivered (ours, hopefully).
    pub bounced: Vec<String>,
    pub bounce_reason: Option<String>,
}

impl ParsedMail {
    /// Whether it answers another mail (`In-Reply-To` or `References`).
    pub fn is_reply(&self) -> bool {
        !self.in_reply_to.is_empty() || !self.references.is_empty()
    }

    /// Every Message-ID it names as its parents, nearest first.
    pub fn parents(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.in_reply_to.iter().map(String::as_str).collect();
        for id in self.references.iter().rev() {
            if !ids.contains(&id.as_str()) {
                ids.push(id);
            }
        }
        ids
    }

    /// The normalized inbound message, or `None` when there is no sender or nothing to show.
    pub fn inbound(&self) -> Option<InboundMessage> {
        let customer = self.customer.clone()?;
        if self.text.is_none() && self.attachments.is_empty() {
            return None;
        }
        Some(InboundMessage {
            dedup_key: self.dedup_key.clone(),
            kind: InboundKind::Message,
            customer,
            provider_message_id: self.message_id.clone(),
            text: self.text.clone(),
            attachments: self.attachments.clone(),
            sent_at: self.sent_at,
        })
    }
}
