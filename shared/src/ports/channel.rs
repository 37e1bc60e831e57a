//! The channel port: what every provider module offers the use cases (verify and parse an inbound webhook,
//! send, connect an account), and the words they share.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::domain::{
    Account, Attachment, AttachmentKind, ChannelId, InboundMessage, OutStatus, Provider, Template,
};
use crate::error::{Error, ProviderError, Result, WebhookError};
use crate::ports::media::{MediaSink, SinkError};
use crate::secret::Secret;

/// What every provider module offers the use cases. `receive` is pure (no I/O): it verifies and parses
/// one inbound request with the channel's credentials.
#[async_trait]
pub trait ChannelProvider: Send + Sync {
    /// Checks the admin's credentials with the provider and names the account. Errors are rule
    /// violations naming the credential at fault (422), or the provider's trouble.
    async fn connect(&self, credentials: &Map<String, Value>) -> Result<Connection>;

    /// The accounts the credentials give access to, for the admin to pick one (Infobip: the account's
    /// WhatsApp numbers). Most providers connect exactly the account of their credentials.
    async fn list_accounts(&self, _credentials: &Map<String, Value>) -> Result<Vec<Account>> {
        Err(Error::rule(
            "nothing_to_pick",
            "provider",
            "these credentials connect exactly one account; create the channel with them",
        ))
    }

    /// Whether the webhook URL carries the channel's `webhook_secret` as an extra, unguessable path segment
    /// (providers that sign nothing, or whose webhooks must be told apart by URL).
    fn secret_in_webhook_path(&self) -> bool {
        false
    }

    /// The URL the provider must call.
    fn webhook_url(
        &self,
        base: &str,
        provider: Provider,
        channel: &ChannelId,
        secrets: &ChannelSecrets,
    ) -> String {
        match secrets.get(ChannelSecrets::WEBHOOK_SECRET).filter(|_| self.secret_in_webhook_path()) {
            Some(secret) => format!("{base}/webhooks/{}/{channel}/{}", provider.slug(), secret.expose()),
            None => format!("{base}/webhooks/{}/{channel}", provider.slug()),
        }
    }

    /// Registers the webhook with the provider, where its API allows it.
    async fn register_webhook(&self, _secrets: &ChannelSecrets, _url: &str) -> Result<()> {
        Ok(())
    }

    /// Whether `register_webhook` really tells the provider the URL. Where it does not (Infobip), the admin
    /// pastes the URL into the provider's console, and a changed URL must be pasted again.
    fn registers_webhook(&self) -> bool {
        false
    }

    /// Points the provider at a new URL for an already connected channel (the public base changed),
    /// leaving one registration, not one per URL the channel ever had. Providers whose registration
    /// replaces the previous one (Telegram, Viber, edna) register again; those that add one per call
    /// remove the channel's registrations first. Repeating it is harmless.
    async fn reregister_webhook(&self, secrets: &ChannelSecrets, url: &str) -> Result<()> {
        self.register_webhook(secrets, url).await
    }

    /// Removes the webhook from the provider (disconnect).
    async fn remove_webhook(&self, _secrets: &ChannelSecrets) -> Result<()> {
        Ok(())
    }

    /// Verifies one inbound request and parses it. Nothing is written when this fails.
    fn receive(&self, secrets: &ChannelSecrets, request: &WebhookRequest) -> Result<Delivery, WebhookError>;

    /// Sends one message to a customer.
    async fn send(&self, secrets: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError>;

    /// Whether the credentials hold an access token that is to be renewed (with their refresh token)
    /// before it is used at `now`: it expires within a safety margin. False for credentials without one.
    fn renewal_due(&self, _secrets: &ChannelSecrets, _now: jiff::Timestamp) -> bool {
        false
    }

    /// Renews the access token with the refresh token (`grant_type=refresh_token`): the credentials to
    /// keep at once (the new access token, its expiry from `now` and the rotated refresh token), or `None` for
    /// credentials that renew nothing. A refresh token the provider refuses is `InvalidCredentials`.
    async fn renew_tokens(
        &self,
        _secrets: &ChannelSecrets,
        _now: jiff::Timestamp,
    ) -> Result<Option<ChannelSecrets>, ProviderError> {
        Ok(None)
    }

    /// Whether the provider drops a repeated send with the same `Outgoing::idempotency_key` (VK
    /// `random_id`, edna `requestId`). Where it does not, a send whose outcome is unknown (the sender died
    /// mid-call) is marked failed rather than repeated: at most once beats twice.
    fn idempotent_sends(&self) -> bool {
        false
    }

    /// The longest text one message may carry, in characters: a longer reply is refused with this limit
    /// named, before anything is stored or sent.
    fn max_text_chars(&self) -> usize {
        crate::domain::MAX_REPLY_CHARS
    }

    /// Whether the provider can give us this attachment's bytes (`fetch_media`): by default, a file whose
    /// reference is an `http(s)` link. Locations, contacts and stickers known only by an id are data.
    fn fetchable(&self, attachment: &Attachment) -> bool {
        !attachment.kind.is_data()
            && (attachment.file_ref.starts_with("https://") || attachment.file_ref.starts_with("http://"))
    }

    /// Fetches one attachment's bytes from the provider into `sink`, after the webhook was acknowledged;
    /// answers the media type the provider declared, if any (the stored type is sniffed from the bytes).
    async fn fetch_media(
        &self,
        _secrets: &ChannelSecrets,
        attachment: &Attachment,
        _sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        Err(FetchError::not_fetched(attachment))
    }

    /// The largest file of `kind` the provider takes in one message, or `None` where it takes none of that
    /// kind: a reply carrying one is refused (422, naming the attachment) before anything is sent.
    fn media_limit(&self, _kind: AttachmentKind) -> Option<u64> {
        None
    }

    /// Whether `send` reads an attachment's bytes from `OutgoingMedia::path` (uploads it to the provider)
    /// rather than handing the provider `OutgoingMedia::url` to fetch.
    fn sends_media_from_file(&self) -> bool {
        false
    }

    /// How long after the customer's last message the business may send free text: WhatsApp's 24-hour
    /// customer-service window. Outside it only a template goes (`sends_templates`). `None`: no window.
    fn service_window(&self) -> Option<jiff::SignedDuration> {
        None
    }

    /// Whether `send` sends `Outgoing::template` (WhatsApp's approved templates).
    fn sends_templates(&self) -> bool {
        false
    }

    /// The channel's templates, where the provider's API lists them; `Ok(None)` where it offers no list
    /// (a template is then sent as given, and the provider judges it).
    async fn list_templates(&self, _secrets: &ChannelSecrets) -> Result<Option<Vec<TemplateInfo>>> {
        Ok(None)
    }

    /// The customer id (`Customer::id`: where messages go) of someone the business writes to first, who
    /// never wrote: a WhatsApp number or an e-mail address. `None` where the provider lets a business write
    /// only to customers who wrote (Telegram, VK, Viber, Avito), or the recipient is not of its kind.
    fn first_contact(&self, _to: &Recipient) -> Option<String> {
        None
    }

    /// Whether `customer_name` asks the provider (VK `users.get`, Avito's chat): the webhook named no one.
    fn looks_up_names(&self) -> bool {
        false
    }

    /// The customer's name as the provider's API gives it, for a customer the webhook did not name; asked
    /// after the acknowledgement, never on the webhook's path. `customer_id` is `InboundMessage::customer.id`.
    async fn customer_name(
        &self,
        _secrets: &ChannelSecrets,
        _customer_id: &str,
    ) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }
}

/// Someone the business writes to first (`POST /v1/dialogs`), as checked and normalized by the use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A phone number's digits, country code first, no `+`.
    Phone(String),
    /// An e-mail address, lower case.
    Address(String),
}

/// A template as the provider lists it (`GET /v1/channels/{id}/templates`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TemplateInfo {
    pub name: String,
    pub language: String,
    /// As the provider says it, lower case: `approved`, `pending`, `rejected`...
    pub status: String,
    /// The body's text with its placeholders (`{{1}}`...), where the provider gives it.
    pub text: Option<String>,
    /// How many values the body's placeholders take: a template sent with another count is refused (422).
    pub parameters: usize,
}

impl TemplateInfo {
    /// Whether the template may be sent now.
    pub fn is_approved(&self) -> bool {
        self.status == "approved"
    }
}

/// Why an attachment's bytes could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Larger than the sink takes, or than the provider lets us download (Telegram's 20 MB).
    #[error("larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The provider's trouble: retried when it is worth retrying.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Nothing to fetch this way (the reference is not a file of this provider).
    #[error("{0}")]
    Unsupported(String),
    /// Our side: the temporary file could not be written.
    #[error("local file: {0}")]
    Local(String),
}

impl FetchError {
    /// An attachment this provider gives no bytes for (a place, a contact, a sticker known by its id).
    pub fn not_fetched(attachment: &Attachment) -> Self {
        FetchError::Unsupported(format!("{:?} attachments are not fetched", attachment.kind))
    }
}

impl From<SinkError> for FetchError {
    fn from(error: SinkError) -> Self {
        match error {
            SinkError::TooLarge { limit } => FetchError::TooLarge { limit },
            SinkError::Io(reason) => FetchError::Local(reason),
        }
    }
}

/// A file of ours sent with an outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMedia {
    pub kind: AttachmentKind,
    pub name: Option<String>,
    pub mime: String,
    pub size: u64,
    /// A time-limited link serving the bytes, for providers that fetch the file themselves.
    pub url: String,
    /// The bytes in a local file, for providers that upload them (`sends_media_from_file`).
    pub path: Option<std::path::PathBuf>,
}

impl OutgoingMedia {
    /// The name the file goes out under: its own, else one made of its kind and type.
    pub fn file_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let extension = self.mime.rsplit('/').next().unwrap_or("bin");
            format!("file.{extension}")
        })
    }

    /// The file's bytes (for providers that upload them).
    pub async fn read(&self) -> Result<Vec<u8>, ProviderError> {
        let path = self.path.as_ref().ok_or_else(|| {
            ProviderError::Rejected("the file's bytes were not handed to the sender".into())
        })?;
        tokio::fs::read(path)
            .await
            .map_err(|error| ProviderError::Unavailable(format!("local file: {error}")))
    }
}

/// The parts of an HTTP request a provider module looks at.
#[derive(Debug, Clone, Default)]
pub struct WebhookRequest {
    pub method: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The raw body, exactly as received (signatures are over these bytes).
    pub body: Vec<u8>,
    /// The extra path segment of providers that sign nothing.
    pub path_secret: Option<String>,
    /// The channel's webhook URL as registered with the provider (signatures may cover it); filled in by
    /// the webhook use case once it knows the channel.
    pub webhook_url: String,
}

impl WebhookRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What one verified inbound request carries, and what to answer the provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub messages: Vec<InboundMessage>,
    /// Delivery reports on our outgoing messages.
    pub statuses: Vec<StatusUpdate>,
    /// The body the provider expects (VK: `ok` or the confirmation code); empty for a bare 200.
    pub reply: Reply,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn text(body: impl Into<String>) -> Self {
        Self { content_type: "text/plain; charset=utf-8", body: body.into() }
    }

    pub fn json(body: impl Into<String>) -> Self {
        Self { content_type: "application/json", body: body.into() }
    }
}

/// A provider's report on one of our outgoing messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub provider_message_id: String,
    pub status: OutStatus,
    pub reason: Option<String>,
}

/// What a provider's connect step hands back.
#[derive(Debug, Clone)]
pub struct Connection {
    pub account: Account,
    /// Every credential to keep (the admin's and any the module generated), for the secret store only.
    pub secrets: ChannelSecrets,
    /// The credentials as an API response may show them.
    pub masked: BTreeMap<String, String>,
}

/// A channel's credentials (token, webhook secret, ...), kept together in one secret.
#[derive(Clone, Default)]
pub struct ChannelSecrets(BTreeMap<String, Secret>);

impl std::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl ChannelSecrets {
    /// The name under which the generated webhook secret is kept.
    pub const WEBHOOK_SECRET: &'static str = "webhook_secret";

    pub fn with(mut self, name: &str, value: Secret) -> Self {
        self.0.insert(name.to_owned(), value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    /// The credential, or an internal error: a connected channel has the ones it was made with.
    pub fn require(&self, name: &str) -> Result<&Secret> {
        self.get(name).ok_or_else(|| Error::Internal(format!("the channel's credentials lack {name}")))
    }

    /// The credential for verifying a webhook: a channel without it cannot verify anything.
    pub fn for_verifying(&self, name: &str) -> std::result::Result<&Secret, WebhookError> {
        self.get(name).filter(|s| !s.expose().is_empty()).ok_or(WebhookError::Unauthorized)
    }

    pub fn encode(&self) -> Result<Secret> {
        let clear: BTreeMap<&str, &str> = self.0.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        serde_json::to_string(&clear)
            .map(Secret::new)
            .map_err(|_| Error::Internal("credentials not serializable".into()))
    }

    pub fn decode(secret: &Secret) -> Result<Self> {
        let clear: BTreeMap<String, String> = serde_json::from_str(secret.expose())
            .map_err(|_| Error::Internal("a channel secret is not a JSON object of strings".into()))?;
        Ok(Self(clear.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()))
    }
}

/// A message to send to a customer through a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where it goes: the customer's id on the provider (chat id, peer id, number).
    pub customer_id: String,
    /// Empty for a message of attachments only.
    pub text: String,
    /// Files of ours to send with the text (the provider takes them: `media_limit` was checked).
    pub attachments: Vec<OutgoingMedia>,
    /// Quick-reply buttons, where the messenger supports them.
    pub buttons: Vec<String>,
    /// Our outgoing message id: the idempotency key for providers that take one.
    pub idempotency_key: String,
    /// E-mail only: what the reply answers, so the customer's client threads it.
    pub thread: Option<MailThread>,
    /// Sent by the system, not a person (an auto-reply, a chatbot's answer): e-mail marks it
    /// `Auto-Submitted: auto-replied` (RFC 3834), so that other autoresponders do not answer it.
    pub automatic: bool,
    /// An approved template instead of `text` (only where the module `sends_templates`).
    pub template: Option<Template>,
}

/// The customer's last mail in the dialog, as an e-mail reply refers to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailThread {
    pub subject: Option<String>,
    /// Its Message-ID (without angle brackets).
    pub in_reply_to: Option<String>,
    /// Its `References` followed by its Message-ID: the thread up to it, oldest first.
    pub references: Vec<String>,
}

/// What the provider answered to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub provider_message_id: Option<String>,
}
