//! E-mail: a company mailbox read over IMAP (by the poller, `usecases::email_poll`) and answered over SMTP,
//! with a password or OAuth 2 (SASL XOAUTH2, the access token refreshed from the kept refresh token).
//!
//! Nothing is pushed: `receive` refuses every request. Known providers (Gmail, Yandex, Mail.ru, Outlook)
//! get their IMAP/SMTP hosts from the address's domain (or `credentials.service` for a custom domain).

pub mod imap;
pub mod mail;
mod smtp;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, FetchError, Outgoing, ProviderError, Sent,
    WebhookError, WebhookRequest, transport_error,
};
use crate::domain::{Account, Attachment, AttachmentKind, ChannelId, Provider};
use crate::error::{Error, Result as AppResult};
use crate::net::{GuardedClient, OutboundPolicy};
use crate::ports::channel::Recipient;
use crate::ports::mailbox::{FetchedMail, Inbox as InboxPort, Mailboxes};
use crate::ports::media::MediaSink;
use crate::providers::Http;
use crate::secret::Secret;

pub use crate::ports::mailbox::{MailClass, ParsedMail};
pub use imap::Inbox;

const PROVIDER: &str = "email";
/// The largest file a reply carries. Mail servers limit the whole message, attachments base64-encoded
/// (a third larger): Gmail takes 25 MB, Yandex and Mail.ru about 30 MB, many servers 25 MB or less (SMTP
/// SIZE); 18 MB of file is about 24 MB encoded, under the common 25 MB.
pub const MAX_ATTACHMENT_BYTES: u64 = 18_000_000;
/// Bytes handed to the media sink at once.
const SINK_CHUNK: usize = 64 * 1024;

/// An attachment's reference, as the poller keeps it: `imap:{uidvalidity}:{uid}:{section}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRef {
    pub uid_validity: u32,
    pub uid: u32,
    /// The IMAP body section (`2`, `1.2`).
    pub section: String,
}

impl PartRef {
    pub fn parse(reference: &str) -> Option<Self> {
        let mut fields = reference.strip_prefix("imap:")?.splitn(3, ':');
        let uid_validity = fields.next()?.parse().ok()?;
        let uid = fields.next()?.parse().ok()?;
        let section = fields.next()?;
        let valid_section = !section.is_empty()
            && section.len() <= 64
            && section.split('.').all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        valid_section.then(|| Self { uid_validity, uid, section: section.to_owned() })
    }
}
/// `OMNICHAT_EMAIL_OAUTH_TOKEN_URL` sends every token refresh to one URL (a local fake of the providers'
/// token endpoints in tests and the local runner).
pub const TOKEN_URL_ENV: &str = "OMNICHAT_EMAIL_OAUTH_TOKEN_URL";
/// A refreshed access token is renewed this long before the provider says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);
/// When a token endpoint answers without `expires_in` (Google and Yandex always send it).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

// The names under which a mailbox's settings are kept in the channel's secret (one secret per channel).
const ADDRESS: &str = "address";
const LOGIN: &str = "login";
const PASSWORD: &str = "password";
const OAUTH_CLIENT_ID: &str = "oauth_client_id";
const OAUTH_CLIENT_SECRET: &str = "oauth_client_secret";
const OAUTH_REFRESH_TOKEN: &str = "oauth_refresh_token";
const OAUTH_TOKEN_URL: &str = "oauth_token_url";
const OAUTH_SCOPE: &str = "oauth_scope";

/// How a connection to a server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (IMAP 993, SMTP 465).
    Tls,
    /// Plain text upgraded with STARTTLS before logging in (IMAP 143, SMTP 587).
    StartTls,
    /// No encryption: only to a loopback host, and only where loopback is allowed (tests, local runner).
    Plain,
}

impl Security {
    fn parse(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(true) => Some(Security::Tls),
            Value::Bool(false) => Some(Security::Plain),
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "tls" | "ssl" | "implicit" => Some(Security::Tls),
                "starttls" => Some(Security::StartTls),
                "none" | "plain" | "plaintext" => Some(Security::Plain),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::StartTls => "starttls",
            Security::Plain => "none",
        }
    }
}

/// One server of the mailbox: IMAP or SMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

impl Endpoint {
    fn encode(&self) -> String {
        format!("{}:{}:{}", self.security.name(), self.port, self.host)
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ':');
        let security = Security::parse(&Value::String(parts.next()?.to_owned()))?;
        let port = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_owned();
        Some(Self { host, port, security })
    }

    fn shown(&self) -> String {
        format!("{}:{} ({})", self.host, self.port, self.security.name())
    }
}

/// The OAuth 2 client that refreshes the mailbox's access tokens.
#[derive(Debug, Clone)]
pub struct OAuth {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub refresh_token: Secret,
    pub token_url: String,
    /// Microsoft wants the scopes again on every refresh; Google and Yandex take none.
    pub scope: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Auth {
    Password(Secret),
    OAuth(OAuth),
}

/// A mailbox, once its settings are complete and valid.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// Lower case: it is the account id and the sender of every reply.
    pub address: String,
    pub login: String,
    pub auth: Auth,
    pub imap: Endpoint,
    pub smtp: Endpoint,
}

/// A provider whose servers are known: `credentials.service`, or picked by the address's domain.
struct Preset {
    service: &'static str,
    domains: &'static [&'static str],
    imap: (&'static str, u16, Security),
    smtp: (&'static str, u16, Security),
    token_url: &'static str,
}

const PRESETS: [Preset; 4] = [
    Preset {
        service: "gmail",
        domains: &["gmail.com", "googlemail.com"],
        imap: ("imap.gmail.com", 993, Security::Tls),
        smtp: ("smtp.gmail.com", 465, Security::Tls),
        token_url: "https://oauth2.googleapis.com/token",
    },
    Preset {
        service: "yandex",
        domains: &["yandex.ru", "ya.ru", "yandex.com", "yandex.by", "yandex.kz", "yandex.ua", "narod.ru"],
        imap: ("imap.yandex.ru", 993, Security::Tls),
        smtp: ("smtp.yandex.ru", 465, Security::Tls),
        token_url: "https://oauth.yandex.ru/token",
    },
    Preset {
        service: "mailru",
        domains: &["mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru", "mail.ua"],
        imap: ("imap.mail.ru", 993, Security::Tls),
        smtp: ("smtp.mail.ru", 465, Security::Tls),
        token_url: "https://oauth.mail.ru/token",
    },
    Preset {
        service: "outlook",
        domains: &["outlook.com", "hotmail.com", "live.com", "msn.com", "outlook.ru"],
        imap: ("outlook.office365.com", 993, Security::Tls),
        smtp: ("smtp.office365.com", 587, Security::StartTls),
        token_url: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    },
];

fn preset_named(service: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.service == service)
}

fn preset_for_domain(domain: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.domains.contains(&domain))
}

/// `credentials.{path}` is wrong: a 422 naming it.
fn invalid(path: &str, message: impl Into<String>) -> Error {
    Error::rule("invalid_credentials", format!("credentials.{path}"), message)
}

fn text_field(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.get(name).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// Whether `address` looks like `local@domain` with a dotted domain (the servers decide the rest).
fn valid_address(address: &str) -> bool {
    address.len() <= 254 && address.parse::<lettre::Address>().is_ok_and(|a| a.domain().contains('.'))
}

fn is_loopback(host: &str) -> bool {
    OutboundPolicy::names_loopback(host)
}

/// The outbound policy for the mailbox's hosts and token endpoint (`crate::net`).
fn policy(allow_loopback: bool) -> OutboundPolicy {
    if allow_loopback { OutboundPolicy::allowing_loopback() } else { OutboundPolicy::strict() }
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

impl Mailbox {
    /// The admin's credentials, completed with the known provider's defaults and checked. Every error is
    /// a 422 naming the credential at fault.
    pub fn from_credentials(credentials: &Map<String, Value>, allow_loopback: bool) -> AppResult<Self> {
        let address = text_field(credentials, ADDRESS)
            .ok_or_else(|| Error::rule("credential_missing", "credentials.address", "is required"))?
            .to_lowercase();
        if !valid_address(&address) {
            return Err(invalid(ADDRESS, "is not an e-mail address"));
        }
        let domain = address.rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
        let preset = match text_field(credentials, "service") {
            Some(service) => Some(preset_named(&service.to_ascii_lowercase()).ok_or_else(|| {
                invalid("service", "must be one of gmail, yandex, mailru, outlook (or left out)")
            })?),
            None => preset_for_domain(&domain),
        };
        let login = text_field(credentials, LOGIN).unwrap_or_else(|| address.clone());
        let auth = match (credentials.get("oauth"), text_field(credentials, PASSWORD)) {
            (Some(oauth), _) => Auth::OAuth(oauth_settings(oauth, preset, allow_loopback)?),
            (None, Some(password)) if password.len() <= 1024 => Auth::Password(Secret::new(password)),
            (None, Some(_)) => return Err(invalid(PASSWORD, "is too long")),
            (None, None) => {
                return Err(Error::rule(
                    "credential_missing",
                    "credentials.password",
                    "is required (or credentials.oauth for OAuth 2)",
                ));
            }
        };
        let imap = endpoint(credentials, "imap", preset.map(|p| p.imap), (993, 143), allow_loopback)?;
        let smtp = endpoint(credentials, "smtp", preset.map(|p| p.smtp), (465, 587), allow_loopback)?;
        Ok(Self { address, login, auth, imap, smtp })
    }

    /// Everything needed to log in again, for the secret store only.
    pub fn to_secrets(&self) -> ChannelSecrets {
        let mut secrets = ChannelSecrets::default()
            .with(ADDRESS, Secret::new(self.address.clone()))
            .with(LOGIN, Secret::new(self.login.clone()))
            .with("imap", Secret::new(self.imap.encode()))
            .with("smtp", Secret::new(self.smtp.encode()));
        match &self.auth {
            Auth::Password(password) => secrets = secrets.with(PASSWORD, password.clone()),
            Auth::OAuth(oauth) => {
                secrets = secrets
                    .with(OAUTH_CLIENT_ID, Secret::new(oauth.client_id.clone()))
                    .with(OAUTH_REFRESH_TOKEN, oauth.refresh_token.clone())
                    .with(OAUTH_TOKEN_URL, Secret::new(oauth.token_url.clone()));
                if let Some(client_secret) = &oauth.client_secret {
                    secrets = secrets.with(OAUTH_CLIENT_SECRET, client_secret.clone());
                }
                if let Some(scope) = &oauth.scope {
                    secrets = secrets.with(OAUTH_SCOPE, Secret::new(scope.clone()));
                }
            }
        }
        secrets
    }

    /// The mailbox a connected channel was made with.
    pub fn from_secrets(secrets: &ChannelSecrets) -> Result<Self, ProviderError> {
        let lacking =
            |name: &str| ProviderError::InvalidCredentials(format!("the channel's mailbox lacks {name}"));
        let text = |name: &str| secrets.get(name).map(|s| s.expose().to_owned()).ok_or_else(|| lacking(name));
        let endpoint = |name: &str| Endpoint::decode(&text(name)?).ok_or_else(|| lacking(name));
        let auth = match secrets.get(PASSWORD) {
            Some(password) => Auth::Password(password.clone()),
            None => Auth::OAuth(OAuth {
                client_id: text(OAUTH_CLIENT_ID)?,
                client_secret: secrets.get(OAUTH_CLIENT_SECRET).cloned(),
                refresh_token: secrets
                    .get(OAUTH_REFRESH_TOKEN)
                    .cloned()
                    .ok_or_else(|| lacking("a refresh token"))?,
                token_url: text(OAUTH_TOKEN_URL)?,
                scope: secrets.get(OAUTH_SCOPE).map(|s| s.expose().to_owned()),
            }),
        };
        Ok(Self {
            address: text(ADDRESS)?,
            login: text(LOGIN)?,
            auth,
            imap: endpoint("imap")?,
            smtp: endpoint("smtp")?,
        })
    }

    /// What an API response may show: addresses and servers as entered, secrets masked.
    pub fn masked(&self) -> BTreeMap<String, String> {
        let mut shown = BTreeMap::from([
            (ADDRESS.to_owned(), self.address.clone()),
            (LOGIN.to_owned(), self.login.clone()),
            ("imap".to_owned(), self.imap.shown()),
            ("smtp".to_owned(), self.smtp.shown()),
        ]);
        match &self.auth {
            Auth::Password(password) => {
                shown.insert(PASSWORD.to_owned(), password.masked());
            }
            Auth::OAuth(oauth) => {
                shown.insert("oauth.client_id".to_owned(), oauth.client_id.clone());
                shown.insert("oauth.refresh_token".to_owned(), oauth.refresh_token.masked());
                if let Some(client_secret) = &oauth.client_secret {
                    shown.insert("oauth.client_secret".to_owned(), client_secret.masked());
                }
            }
        }
        shown
    }

    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map_or("localhost", |(_, domain)| domain)
    }
}

fn oauth_settings(value: &Value, preset: Option<&Preset>, allow_loopback: bool) -> AppResult<OAuth> {
    let Value::Object(oauth) = value else {
        return Err(invalid("oauth", "must be an object with client_id, client_secret and refresh_token"));
    };
    let required = |name: &str| {
        text_field(oauth, name).filter(|v| v.len() <= 4096).ok_or_else(|| {
            Error::rule("credential_missing", format!("credentials.oauth.{name}"), "is required")
        })
    };
    let token_url = match (text_field(oauth, "token_url"), preset) {
        (Some(url), _) => url,
        (None, Some(preset)) => preset.token_url.to_owned(),
        (None, None) => {
            return Err(Error::rule(
                "credential_missing",
                "credentials.oauth.token_url",
                "is required for a mailbox that is not on Gmail, Yandex, Mail.ru or Outlook",
            ));
        }
    };
    let url = reqwest::Url::parse(&token_url).map_err(|_| invalid("oauth.token_url", "is not a URL"))?;
    policy(allow_loopback)
        .check_url(&url)
        .map_err(|refusal| invalid("oauth.token_url", refusal.message()))?;
    Ok(OAuth {
        client_id: required("client_id")?,
        client_secret: text_field(oauth, "client_secret").map(Secret::new),
        refresh_token: Secret::new(required("refresh_token")?),
        token_url,
        scope: text_field(oauth, "scope"),
    })
}

/// `credentials.imap` / `credentials.smtp`: `{"host", "port", "tls"}`, each part defaulting to the known
/// provider's, the port to the usual one for the protection asked for.
fn endpoint(
    credentials: &Map<String, Value>,
    name: &str,
    preset: Option<(&'static str, u16, Security)>,
    (tls_port, starttls_port): (u16, u16),
    allow_loopback: bool,
) -> AppResult<Endpoint> {
    let given = match credentials.get(name) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(invalid(name, "must be an object: {\"host\", \"port\", \"tls\"}")),
    };
    let host = match (text_field(&given, "host"), preset) {
        (Some(host), _) => host.to_ascii_lowercase(),
        (None, Some((host, _, _))) => host.to_owned(),
        (None, None) => {
            return Err(Error::rule(
                "credential_missing",
                format!("credentials.{name}"),
                "is required: {\"host\", \"port\", \"tls\"} (no defaults are known for this address's domain)",
            ));
        }
    };
    if !valid_host(&host) {
        return Err(invalid(&format!("{name}.host"), "is not a host name"));
    }
    let security = match given.get("tls") {
        None | Some(Value::Null) => preset.map_or(Security::Tls, |(_, _, security)| security),
        Some(value) => Security::parse(value)
            .ok_or_else(|| invalid(&format!("{name}.tls"), "must be \"tls\", \"starttls\" or \"none\""))?,
    };
    let port = match given.get("port") {
        None | Some(Value::Null) => match (preset, security) {
            (Some((_, port, preset_security)), _) if preset_security == security => port,
            (_, Security::Tls) => tls_port,
            (_, _) => starttls_port,
        },
        Some(value) => value
            .as_u64()
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|port| u16::try_from(port).ok())
            .filter(|port| *port > 0)
            .ok_or_else(|| invalid(&format!("{name}.port"), "must be a port number"))?,
    };
    policy(allow_loopback)
        .check_host(&host)
        .map_err(|refusal| invalid(&format!("{name}.host"), refusal.message()))?;
    if security == Security::Plain && !is_loopback(&host) {
        // A password or token sent in clear over the internet: refuse rather than leak it.
        return Err(invalid(
            &format!("{name}.tls"),
            "must be \"tls\" or \"starttls\": passwords are not sent unencrypted",
        ));
    }
    Ok(Endpoint { host, port, security })
}

/// What logs in to a server: a password (LOGIN / AUTH PLAIN) or an OAuth access token (XOAUTH2).
#[derive(Debug, Clone)]
pub enum LoginSecret {
    Password(Secret),
    AccessToken(Secret),
}

/// The SASL XOAUTH2 initial response (before base64), the same for IMAP and SMTP.
pub fn xoauth2_response(user: &str, access_token: &Secret) -> String {
    format!("user={user}\x01auth=Bearer {}\x01\x01", access_token.expose())
}

/// Logs in to mailboxes: IMAP for the poller and connection checks, SMTP for replies, OAuth token refresh.
pub struct EmailProvider {
    /// For the operator's token URL override only.
    http: Http,
    /// For the admin's token endpoints: public https addresses only (`crate::net`); made at its first use.
    guarded: OnceLock<GuardedClient>,
    token_url_override: Option<String>,
    allow_loopback: bool,
    /// Access tokens by a digest of the refresh token that got them: one refresh per token lifetime and
    /// process, not one per call.
    tokens: Mutex<HashMap<[u8; 32], (Secret, Instant)>>,
    /// Refresh tokens the token endpoint replaced (Microsoft rotates them), by a digest of the old one,
    /// until the poller keeps the new one in the channel's secret.
    rotated: Mutex<HashMap<[u8; 32], Secret>>,
}

impl std::fmt::Debug for EmailProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailProvider")
            .field("token_url_override", &self.token_url_override)
            .field("allow_loopback", &self.allow_loopback)
            .finish_non_exhaustive()
    }
}

impl EmailProvider {
    pub fn new(http: impl Into<Http>) -> Self {
        Self {
            http: http.into(),
            guarded: OnceLock::new(),
            token_url_override: None,
            allow_loopback: false,
            tokens: Mutex::new(HashMap::new()),
            rotated: Mutex::new(HashMap::new()),
        }
    }

    /// `OMNICHAT_EMAIL_OAUTH_TOKEN_URL` (a fake token endpoint) and `OMNICHAT_ALLOW_LOOPBACK_PROVIDERS=1`
    /// (mail servers on 127.0.0.1 without TLS) for the local runner against local servers.
    pub fn from_env(http: Http) -> Self {
        let mut provider = Self::new(http);
        provider.token_url_override =
            std::env::var(TOKEN_URL_ENV).ok().map(|url| url.trim().to_owned()).filter(|url| !url.is_empty());
        if OutboundPolicy::from_env().allows_loopback() {
            provider = provider.allowing_loopback();
        }
        provider
    }

    /// Mail servers and token endpoints on a loopback address, also without TLS (tests, the local runner).
    pub fn allowing_loopback(mut self) -> Self {
        self.allow_loopback = true;
        self.guarded = OnceLock::new();
        self
    }

    fn policy(&self) -> OutboundPolicy {
        policy(self.allow_loopback)
    }

    fn guarded(&self) -> &GuardedClient {
        self.guarded.get_or_init(|| self.policy().client(super::CONNECT_TIMEOUT, super::REQUEST_TIMEOUT))
    }

    /// Every token refresh goes to this URL instead of the provider's (a fake in tests).
    pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url_override = Some(url.into());
        self
    }

    /// Logs in to the mailbox's IMAP server and selects the INBOX.
    pub async fn open_inbox(&self, mailbox: &Mailbox) -> Result<Inbox, ProviderError> {
        let secret = self.login_secret(mailbox).await?;
        imap::open_inbox(&mailbox.imap, self.policy(), &mailbox.login, &secret)
            .await
            .map_err(imap::ImapError::into_provider_error)
    }

    /// The password, or a fresh access token.
    pub async fn login_secret(&self, mailbox: &Mailbox) -> Result<LoginSecret, ProviderError> {
        match &mailbox.auth {
            Auth::Password(password) => Ok(LoginSecret::Password(password.clone())),
            Auth::OAuth(oauth) => Ok(LoginSecret::AccessToken(self.access_token(oauth).await?)),
        }
    }

    /// An access token for the refresh token: cached until shortly before it expires.
    pub async fn access_token(&self, oauth: &OAuth) -> Result<Secret, ProviderError> {
        let digest = token_digest(&oauth.refresh_token);
        if let Some((token, until)) = lock(&self.tokens).get(&digest)
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, lifetime, replacement) = self.refresh(oauth).await?;
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        lock(&self.tokens).insert(digest, (token.clone(), until));
        if let Some(replacement) = replacement.filter(|new| new.expose() != oauth.refresh_token.expose()) {
            lock(&self.rotated).insert(digest, replacement);
        }
        Ok(token)
    }

    /// The channel's secrets with the refresh token the token endpoint gave in place of theirs, once;
    /// `None` when it gave none.
    pub fn rotated_secrets(&self, secrets: &ChannelSecrets) -> Option<ChannelSecrets> {
        let current = secrets.get(OAUTH_REFRESH_TOKEN)?;
        let replacement = lock(&self.rotated).remove(&token_digest(current))?;
        Some(secrets.clone().with(OAUTH_REFRESH_TOKEN, replacement))
    }

    /// `grant_type=refresh_token` at the provider's token endpoint (RFC 6749 §6).
    async fn refresh(&self, oauth: &OAuth) -> Result<(Secret, Duration, Option<Secret>), ProviderError> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", oauth.refresh_token.expose()),
            ("client_id", oauth.client_id.as_str()),
        ];
        if let Some(client_secret) = &oauth.client_secret {
            form.push(("client_secret", client_secret.expose()));
        }
        if let Some(scope) = &oauth.scope {
            form.push(("scope", scope.as_str()));
        }
        // The operator's override (a local fake) is trusted; the admin's endpoint goes through the policy.
        let request = match self.token_url_override.as_deref() {
            Some(url) => self.http.post(url),
            None => {
                let url = reqwest::Url::parse(&oauth.token_url).map_err(|_| {
                    ProviderError::InvalidCredentials("the OAuth token URL is not a URL".into())
                })?;
                self.guarded().request(reqwest::Method::POST, url).map_err(|refusal| {
                    ProviderError::Rejected(format!("the OAuth token URL is refused: {refusal}"))
                })?
            }
        };
        let response = request.form(&form).send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = response.bytes().await.map_err(transport_error)?;
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: Option<String>,
            expires_in: Option<u64>,
            refresh_token: Option<String>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let answer = serde_json::from_slice::<TokenAnswer>(&body).ok();
        match (status, answer) {
            (status, Some(TokenAnswer { access_token: Some(token), expires_in, refresh_token, .. }))
                if status.is_success() && !token.is_empty() =>
            {
                let lifetime = expires_in.map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
                let replacement = refresh_token.filter(|t| !t.is_empty()).map(Secret::new);
                Ok((Secret::new(token), lifetime, replacement))
            }
            (StatusCode::TOO_MANY_REQUESTS, _) => {
                Err(ProviderError::RateLimited { retry_after: Duration::from_secs(retry_after.unwrap_or(5)) })
            }
            (status, answer) if status.is_client_error() => {
                let (error, description) =
                    answer.map(|a| (a.error, a.error_description)).unwrap_or((None, None));
                let reason = [error, description].into_iter().flatten().collect::<Vec<_>>().join(": ");
                Err(ProviderError::InvalidCredentials(format!(
                    "the OAuth token endpoint refused the refresh token ({})",
                    if reason.is_empty() { format!("HTTP {}", status.as_u16()) } else { reason }
                )))
            }
            (status, _) => Err(ProviderError::Unavailable(format!(
                "the OAuth token endpoint answered HTTP {}",
                status.as_u16()
            ))),
        }
    }

    /// The save-time check of the admin's servers and token endpoint: none may resolve to an address the
    /// outbound policy refuses (a 422 naming the host, in English and Russian).
    async fn check_addresses(&self, mailbox: &Mailbox) -> AppResult<()> {
        let policy = self.policy();
        for (name, endpoint) in [("imap", &mailbox.imap), ("smtp", &mailbox.smtp)] {
            policy
                .check_host_resolves(&endpoint.host, endpoint.port)
                .await
                .map_err(|refusal| invalid(&format!("{name}.host"), refusal.message()))?;
        }
        if let (Auth::OAuth(oauth), None) = (&mailbox.auth, &self.token_url_override)
            && let Ok(url) = reqwest::Url::parse(&oauth.token_url)
        {
            policy
                .check_url_resolves(&url)
                .await
                .map_err(|refusal| invalid("oauth.token_url", refusal.message()))?;
        }
        Ok(())
    }

    /// Sends one reply by SMTP; the answer names the `Message-ID` we gave it (without angle brackets).
    pub async fn send_mail(&self, mailbox: &Mailbox, out: &Outgoing) -> Result<Sent, ProviderError> {
        let secret = self.login_secret(mailbox).await?;
        let message_id = smtp::message_id(&out.idempotency_key, mailbox.domain());
        smtp::send(mailbox, self.policy(), &secret, out, &message_id).await?;
        Ok(Sent { provider_message_id: Some(message_id) })
    }
}

fn token_digest(refresh_token: &Secret) -> [u8; 32] {
    Sha256::digest(refresh_token.expose().as_bytes()).into()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The 422 for a server that refused or could not be reached, naming it.
fn refused(server: &str, error: ProviderError) -> Error {
    match error {
        ProviderError::InvalidCredentials(reason) => Error::rule(
            "login_refused",
            format!("credentials.{server}"),
            format!("the {} server refused the login: {reason}", server.to_uppercase()),
        ),
        ProviderError::Rejected(reason) | ProviderError::Unavailable(reason) => Error::rule(
            "server_unreachable",
            format!("credentials.{server}"),
            format!("the {} server could not be used: {reason}", server.to_uppercase()),
        ),
        other => other.into(),
    }
}

#[async_trait]
impl ChannelProvider for EmailProvider {
    /// A mailbox writes to any address first.
    fn first_contact(&self, to: &Recipient) -> Option<String> {
        match to {
            Recipient::Address(address) => Some(address.clone()),
            Recipient::Phone(_) => None,
        }
    }

    /// A mail body has no practical limit; this bound keeps one reply reasonable.
    fn max_text_chars(&self) -> usize {
        crate::domain::MAX_ANY_REPLY_CHARS
    }

    /// Logs in to IMAP (and selects the INBOX) and to SMTP: a channel that cannot read or answer mail is
    /// refused with a 422 naming `credentials.imap` or `credentials.smtp`.
    async fn connect(&self, credentials: &Map<String, Value>) -> AppResult<Connection> {
        let mailbox = Mailbox::from_credentials(credentials, self.allow_loopback)?;
        self.check_addresses(&mailbox).await?;
        let secret = match self.login_secret(&mailbox).await {
            Ok(secret) => secret,
            Err(ProviderError::InvalidCredentials(reason)) => {
                return Err(Error::rule("oauth_refused", "credentials.oauth.refresh_token", reason));
            }
            Err(other) => return Err(other.into()),
        };
        let inbox = imap::open_inbox(&mailbox.imap, self.policy(), &mailbox.login, &secret)
            .await
            .map_err(|e| refused("imap", e.into_provider_error()))?;
        inbox.logout().await;
        smtp::check_login(&mailbox, self.policy(), &secret).await.map_err(|e| refused("smtp", e))?;
        Ok(Connection {
            account: Account { id: mailbox.address.clone(), name: mailbox.address.clone() },
            masked: mailbox.masked(),
            secrets: mailbox.to_secrets(),
        })
    }

    /// Mail is fetched from the mailbox: there is no webhook to call.
    fn webhook_url(
        &self,
        _base: &str,
        _provider: Provider,
        _channel: &ChannelId,
        _secrets: &ChannelSecrets,
    ) -> String {
        String::new()
    }

    fn receive(
        &self,
        _secrets: &ChannelSecrets,
        _request: &WebhookRequest,
    ) -> Result<Delivery, WebhookError> {
        Err(WebhookError::Malformed {
            provider: PROVIDER,
            reason: "e-mail is fetched from the mailbox, not pushed".into(),
        })
    }

    async fn send(&self, secrets: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError> {
        let mailbox = Mailbox::from_secrets(secrets)?;
        self.send_mail(&mailbox, out).await
    }

    /// A mail's attachment is a part of a message in the mailbox (`imap:` references).
    fn fetchable(&self, attachment: &Attachment) -> bool {
        !attachment.kind.is_data() && PartRef::parse(&attachment.file_ref).is_some()
    }

    /// Logs in to the mailbox, fetches the whole message (`BODY.PEEK[]`, leaving \Seen as it was) and takes
    /// the part out of it with the parser that named it, its transfer encoding undone. The declared type is
    /// the part's own `Content-Type`.
    async fn fetch_media(
        &self,
        secrets: &ChannelSecrets,
        attachment: &Attachment,
        sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        let reference = PartRef::parse(&attachment.file_ref)
            .ok_or_else(|| FetchError::Unsupported("not a part of a mail in the mailbox".into()))?;
        let mailbox = Mailbox::from_secrets(secrets)?;
        let mut inbox = self.open_inbox(&mailbox).await?;
        // The UIDs of another UIDVALIDITY name other messages (RFC 3501 2.3.1.1): nothing is fetched.
        let fetched = match inbox.uid_validity == reference.uid_validity {
            true => inbox.fetch(reference.uid).await.map(Some).map_err(imap::ImapError::into_provider_error),
            false => Ok(None),
        };
        inbox.logout().await;
        let Some(fetched) = fetched? else {
            return Err(FetchError::Unsupported(
                "the mailbox was rebuilt (its UIDVALIDITY changed): the mail is no longer known by this \
                 reference"
                    .into(),
            ));
        };
        let fetched =
            fetched.ok_or_else(|| FetchError::Unsupported("the mail is no longer in the mailbox".into()))?;
        let bytes = mail::part_bytes(&fetched.raw, &reference.section)
            .ok_or_else(|| FetchError::Unsupported("the mail has no such part".into()))?;
        if bytes.len() as u64 > sink.limit() {
            return Err(FetchError::TooLarge { limit: sink.limit() });
        }
        for chunk in bytes.chunks(SINK_CHUNK) {
            sink.write(chunk).await?;
        }
        sink.finish().await?;
        Ok(attachment.mime.clone())
    }

    /// Any file, up to [`MAX_ATTACHMENT_BYTES`]; places and contacts are not files.
    fn media_limit(&self, kind: AttachmentKind) -> Option<u64> {
        (!kind.is_data()).then_some(MAX_ATTACHMENT_BYTES)
    }

    /// Files go inside the message: the sender reads their bytes.
    fn sends_media_from_file(&self) -> bool {
        true
    }
}

#[async_trait]
impl Mailboxes for EmailProvider {
    async fn open(&self, secrets: &ChannelSecrets) -> AppResult<Box<dyn InboxPort>> {
        let mailbox = Mailbox::from_secrets(secrets)?;
        let inbox = self.open_inbox(&mailbox).await?;
        Ok(Box::new(ImapInbox { inbox, address: mailbox.address }))
    }

    fn rotated_secrets(&self, secrets: &ChannelSecrets) -> Option<ChannelSecrets> {
        EmailProvider::rotated_secrets(self, secrets)
    }
}

/// A logged-in INBOX as the poller reads it: each message parsed, its attachments referred to by IMAP part
/// (`imap:{uidvalidity}:{uid}:{section}`).
struct ImapInbox {
    inbox: Inbox,
    address: String,
}

#[async_trait]
impl InboxPort for ImapInbox {
    fn address(&self) -> &str {
        &self.address
    }

    fn uid_validity(&self) -> u32 {
        self.inbox.uid_validity
    }

    fn uid_next(&self) -> Option<u32> {
        self.inbox.uid_next
    }

    async fn uids_after(&mut self, last_uid: u32) -> Result<Vec<u32>, ProviderError> {
        self.inbox.uids_after(last_uid).await.map_err(imap::ImapError::into_provider_error)
    }

    async fn uids_since(&mut self, since: jiff::Timestamp) -> Result<Vec<u32>, ProviderError> {
        self.inbox.uids_since(since).await.map_err(imap::ImapError::into_provider_error)
    }

    async fn fetch(&mut self, uid: u32) -> Result<Option<FetchedMail>, ProviderError> {
        let Some(fetched) = self.inbox.fetch(uid).await.map_err(imap::ImapError::into_provider_error)? else {
            return Ok(None);
        };
        let uid_validity = self.inbox.uid_validity;
        let reference = |section: &str| format!("imap:{uid_validity}:{uid}:{section}");
        let mail = mail::parse(&fetched.raw, &self.address, reference);
        Ok(Some(FetchedMail { mail, arrived: fetched.internal_date }))
    }

    async fn logout(self: Box<Self>) {
        self.inbox.logout().await;
    }
}

#[cfg(test)]
mod tests;
