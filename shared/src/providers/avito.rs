//! Avito Messenger API: two ways to connect (the account owner's consent to the platform's application,
//! OAuth authorization code, whose access and refresh tokens the channel keeps; or the account's own
//! client credentials, whose tokens are cached per client), the account, webhook subscription, inbound
//! `message` events (verified by a secret URL segment), replies into existing chats (text, and images
//! uploaded with `uploadImages`), customers' images and voice messages fetched.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, FetchError, Outgoing, OutgoingMedia,
    ProviderError, Purpose, Sent, WebhookError, WebhookRequest, failure_description, first_string_at,
    json_answer, required_credential, retry_after_header, text_with_options, transport_error,
};
use crate::domain::{Account, Attachment, AttachmentKind, Customer, InboundKind, InboundMessage};
use crate::error::{Error, Result as AppResult};
use crate::ports::media::MediaSink;
use crate::ports::oauth::AvitoOAuth;
use crate::providers::Http;
use crate::providers::media::{DOWNLOAD_TIMEOUT, download_link};
use crate::secret::Secret;

pub const DEFAULT_API_BASE: &str = "https://api.avito.ru";
/// Where Avito's consent page lives (`AVITO_OAUTH_BASE` replaces it: a fake in tests).
pub const DEFAULT_OAUTH_BASE: &str = "https://avito.ru";
/// What a messenger channel asks the account owner for: read and write messages, read the account.
pub const SCOPES: &str = "messenger:read,messenger:write,user:read";

/// A consent connection's credentials: the tokens of the platform's application for the account, and
/// when the access token expires (Unix seconds).
pub const ACCESS_TOKEN: &str = "access_token";
pub const REFRESH_TOKEN: &str = "refresh_token";
pub const ACCESS_EXPIRES_AT: &str = "access_expires_at";

/// The admin's credentials, and the account id found at connect time (every messenger path needs it).
pub const CLIENT_ID: &str = "client_id";
pub const CLIENT_SECRET: &str = "client_secret";
pub const USER_ID: &str = "user_id";

const PROVIDER: &str = "avito";
/// The largest image sent (`uploadImages`); Avito takes no other files.
pub const IMAGE_LIMIT: u64 = 15 * 1024 * 1024;
/// How a voice message is referred to: its id is no link, the link comes from `getVoiceFiles`.
pub const VOICE_REF_PREFIX: &str = "voice:";
/// A token is renewed this long before Avito says it expires, so a call never starts with a dying one.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Used when the token answer carries no `expires_in` (Avito's tokens live a day).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
const INVALID_CLIENT: &str =
    "Avito did not accept this client_id and client_secret / Avito не принял client_id и client_secret";
const NO_APP: &str = "the platform's Avito application is not configured (AVITO_CLIENT_ID, AVITO_CLIENT_SECRET) \
     / приложение Avito платформы не настроено";

// --- verification and parsing ---

/// Avito's `x-avito-messenger-signature` algorithm is not documented: the channel's webhook URL ends with
/// an unguessable secret instead, compared here in constant time. A channel without one accepts nothing.
pub fn verify_path_secret(path_secret: Option<&str>, expected: &Secret) -> Result<(), WebhookError> {
    match path_secret {
        Some(candidate) if !expected.expose().is_empty() && expected.matches(candidate) => Ok(()),
        _ => Err(WebhookError::Unauthorized),
    }
}

/// Normalizes one webhook (v3) event. `Ok(None)` means acknowledge and ignore: another event type, our own
/// message echoed back (`author_id == user_id`), a system message (`author_id == 0`), a deleted message, or a
/// message of another Avito account than `account_id` (when known).
pub fn parse_event(body: &[u8], account_id: Option<&str>) -> Result<Option<InboundMessage>, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(malformed("the body is not a JSON object".into()));
    }
    let event = Event::deserialize(&value).map_err(|e| malformed(e.to_string()))?;
    if event.payload.kind != "message" {
        return Ok(None);
    }
    let value = event.payload.value.ok_or_else(|| malformed("a message event without a value".into()))?;
    let message = AvitoMessage::deserialize(&value).map_err(|e| malformed(e.to_string()))?;
    if message.author_id == message.user_id || message.author_id == 0 {
        return Ok(None);
    }
    if account_id.is_some_and(|a| a != message.user_id.to_string()) {
        tracing::warn!(user_id = message.user_id, "an Avito message for another account was ignored");
        return Ok(None);
    }
    // The id is the dedup key and the chat the customer: neither may be empty (found by fuzzing).
    if message.id.is_empty() || message.chat_id.is_empty() {
        return Err(malformed("a message without an id or a chat".into()));
    }
    Ok(normalize(message))
}

fn malformed(reason: String) -> WebhookError {
    WebhookError::Malformed { provider: PROVIDER, reason }
}

#[derive(Deserialize)]
struct Event {
    payload: Payload,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    value: Option<Value>,
}

#[derive(Deserialize)]
struct AvitoMessage {
    /// The message id: the dedup key.
    id: String,
    /// Where replies go: the customer of a dialog is its chat.
    chat_id: String,
    /// The account the subscription belongs to (ours).
    user_id: i64,
    /// Who wrote it: the buyer, us (an echo), or 0 (Avito itself).
    author_id: i64,
    created: Option<i64>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    content: Value,
}

fn normalize(message: AvitoMessage) -> Option<InboundMessage> {
    let content = &message.content;
    let str_at =
        |pointer: &str| content.pointer(pointer).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
    let mut text = None;
    let mut attachments = Vec::new();
    match message.kind.as_str() {
        "text" => text = str_at("/text").map(str::to_owned),
        "image" => {
            // `sizes` maps "WIDTHxHEIGHT" to a URL: the largest picture is the one to keep.
            let largest = content.pointer("/image/sizes").and_then(Value::as_object).and_then(|sizes| {
                sizes
                    .iter()
                    .filter_map(|(size, url)| Some((area(size), url.as_str()?)))
                    .max_by_key(|(area, _)| *area)
                    .map(|(_, url)| url.to_owned())
            });
            if let Some(url) = largest {
                attachments.push(Attachment {
                    kind: AttachmentKind::Image,
                    file_ref: url,
                    mime: None,
                    size: None,
                    name: None,
                });
            }
        }
        // A voice message is an id (`voice:{id}`): its link comes from `getVoiceFiles` when it is fetched.
        "voice" => {
            if let Some(voice_id) = str_at("/voice/voice_id") {
                attachments.push(Attachment {
                    kind: AttachmentKind::Voice,
                    file_ref: format!("{VOICE_REF_PREFIX}{}", voice_id.trim()),
                    mime: None,
                    size: None,
                    name: None,
                });
            }
        }
        "link" => text = str_at("/link/text").or_else(|| str_at("/link/url")).map(str::to_owned),
        "item" => {
            let parts: Vec<&str> =
                [str_at("/item/title"), str_at("/item/item_url").or_else(|| str_at("/item/url"))]
                    .into_iter()
                    .flatten()
                    .collect();
            text = (!parts.is_empty()).then(|| parts.join("\n"));
        }
        "location" => {
            let coordinate = |key: &str| content.pointer(&format!("/location/{key}")).and_then(Value::as_f64);
            if let (Some(lat), Some(lon)) = (coordinate("lat"), coordinate("lon")) {
                attachments.push(Attachment {
                    kind: AttachmentKind::Location,
                    file_ref: format!("{lat},{lon}"),
                    mime: None,
                    size: None,
                    name: str_at("/location/title").or_else(|| str_at("/location/text")).map(str::to_owned),
                });
            }
        }
        "file" => {
            if let Some(url) = str_at("/file/url") {
                attachments.push(Attachment {
                    kind: AttachmentKind::Document,
                    file_ref: url.to_owned(),
                    mime: None,
                    size: content.pointer("/file/size").and_then(Value::as_u64),
                    name: str_at("/file/name").map(str::to_owned),
                });
            }
        }
        // system, deleted, call, appCall, ...: nothing a customer wrote.
        _ => {}
    }
    if text.is_none() && attachments.is_empty() {
        return None;
    }
    Some(InboundMessage {
        dedup_key: message.id.clone(),
        kind: InboundKind::Message,
        customer: Customer { id: message.chat_id, name: None, handle: None },
        provider_message_id: Some(message.id),
        text,
        attachments,
        sent_at: message.created.and_then(|s| Timestamp::from_second(s).ok()),
    })
}

/// The id of a voice message attachment: `voice:{id}` (or, stored before that scheme, a bare id).
fn voice_id(attachment: &Attachment) -> Option<&str> {
    if attachment.kind != AttachmentKind::Voice || is_link(&attachment.file_ref) {
        return None;
    }
    let id = attachment.file_ref.strip_prefix(VOICE_REF_PREFIX).unwrap_or(&attachment.file_ref).trim();
    (!id.is_empty()).then_some(id)
}

fn is_link(file_ref: &str) -> bool {
    file_ref.starts_with("https://") || file_ref.starts_with("http://")
}

fn area(size: &str) -> u64 {
    let (width, height) = size.split_once('x').unwrap_or((size, "1"));
    width.parse::<u64>().unwrap_or(0).saturating_mul(height.parse::<u64>().unwrap_or(0))
}

// --- client ---

/// The Avito account a client's credentials act for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AvitoAccount {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
}

struct CachedToken {
    token: Secret,
    renew_at: Instant,
}

/// The platform's Avito application: what the consent flow exchanges codes and refresh tokens with.
#[derive(Clone)]
struct App {
    client_id: Secret,
    client_secret: Secret,
}

/// How a call is authorized: a consent connection's access token (renewed by the use cases, which keep
/// the rotated refresh token), or the account's client credentials (tokens fetched and cached here).
enum Auth<'a> {
    Bearer(&'a Secret),
    Client { id: &'a Secret, secret: &'a Secret },
}

impl<'a> Auth<'a> {
    fn of(secrets: &'a ChannelSecrets) -> Result<Self, ProviderError> {
        if let Some(token) = secrets.get(ACCESS_TOKEN).filter(|t| !t.expose().is_empty()) {
            return Ok(Auth::Bearer(token));
        }
        match (secrets.get(CLIENT_ID), secrets.get(CLIENT_SECRET)) {
            (Some(id), Some(secret)) => Ok(Auth::Client { id, secret }),
            _ => Err(ProviderError::InvalidCredentials("the channel has no Avito credentials".into())),
        }
    }
}

/// What a call sends: JSON, or an image as `multipart/form-data` (`uploadImages`).
#[derive(Clone, Copy)]
enum Body<'a> {
    Json(&'a Value),
    Image(&'a ImageUpload),
}

/// An image's bytes for `uploadImages`, kept for a repeated call (a form is consumed by its request).
struct ImageUpload {
    bytes: Vec<u8>,
    name: String,
    mime: String,
}

/// What Avito's token endpoint granted.
struct Grant {
    access_token: Secret,
    refresh_token: Option<Secret>,
    lifetime: Duration,
}

/// Calls the Avito API. Client-credentials tokens are cached in memory per (client id, secret digest)
/// until shortly before they expire, and renewed on a 401; a process that starts cold fetches one on
/// first use. Consent connections carry their tokens in the channel's credentials.
#[derive(Clone)]
pub struct AvitoClient {
    http: Http,
    base: String,
    oauth_base: String,
    app: Option<App>,
    tokens: Arc<Mutex<HashMap<String, CachedToken>>>,
}

impl std::fmt::Debug for AvitoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvitoClient")
            .field("base", &self.base)
            .field("oauth_base", &self.oauth_base)
            .field("app", &self.app.is_some())
            .finish_non_exhaustive()
    }
}

impl AvitoClient {
    pub fn new(http: impl Into<Http>, base: impl Into<String>) -> Self {
        Self {
            http: http.into(),
            base: base.into().trim_end_matches('/').to_owned(),
            oauth_base: DEFAULT_OAUTH_BASE.to_owned(),
            app: None,
            tokens: Arc::default(),
        }
    }

    /// `AVITO_API_BASE` points the client at a fake (local runner, tests), `AVITO_OAUTH_BASE` the consent
    /// page; `AVITO_CLIENT_ID` and `AVITO_CLIENT_SECRET` are the platform's application (without them the
    /// consent flow answers 422 and client credentials still work).
    pub fn from_env(http: Http) -> Self {
        let base = super::base_url_from_env("AVITO_API_BASE", DEFAULT_API_BASE);
        let oauth_base = super::base_url_from_env("AVITO_OAUTH_BASE", DEFAULT_OAUTH_BASE);
        let client = Self::new(http, base).with_oauth_base(oauth_base);
        let variable =
            |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        match (variable("AVITO_CLIENT_ID"), variable("AVITO_CLIENT_SECRET")) {
            (Some(id), Some(secret)) => client.with_app(Secret::new(id), Secret::new(secret)),
            _ => client,
        }
    }

    /// The consent page's base URL.
    pub fn with_oauth_base(mut self, base: impl Into<String>) -> Self {
        self.oauth_base = base.into().trim_end_matches('/').to_owned();
        self
    }

    /// The platform's Avito application, for the consent flow.
    pub fn with_app(mut self, client_id: Secret, client_secret: Secret) -> Self {
        self.app = Some(App { client_id, client_secret });
        self
    }

    fn app(&self) -> Result<&App, ProviderError> {
        self.app.as_ref().ok_or_else(|| ProviderError::Rejected(NO_APP.into()))
    }

    /// One grant at `/token` for the platform's application (`authorization_code` or `refresh_token`).
    /// A refused code or refresh token is `InvalidCredentials` with Avito's reason.
    async fn grant(&self, form: &[(&str, &str)], hidden: &[&Secret]) -> Result<Grant, ProviderError> {
        let app = self.app()?;
        let url = self.endpoint(&["token"])?;
        let mut body: Vec<(&str, &str)> =
            vec![("client_id", app.client_id.expose()), ("client_secret", app.client_secret.expose())];
        body.extend_from_slice(form);
        let response = self.http.post(url).form(&body).send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after_header(response.headers());
        let bytes = response.bytes().await.map_err(transport_error)?;
        let mut secrets = vec![&app.client_id, &app.client_secret];
        secrets.extend_from_slice(hidden);
        if status.is_success() || status.as_u16() == 429 || status.is_server_error() {
            let answer: TokenAnswer = interpret(status, retry_after, &bytes, Purpose::Operation, &secrets)?;
            if let Some(token) = answer.access_token.filter(|t| !t.is_empty()) {
                return Ok(Grant {
                    access_token: Secret::new(token),
                    refresh_token: answer.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
                    lifetime: answer.expires_in.map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs),
                });
            }
        }
        // A 4xx, or (as Avito has answered) a 200 with an `error` and no token: refused.
        let found = first_string_at(&bytes, &["/error_description", "/error/message", "/message", "/error"]);
        Err(ProviderError::InvalidCredentials(failure_description(status.as_u16(), found, &secrets)))
    }

    /// The consent page for the platform's application.
    pub fn consent_url(&self, redirect_uri: &str, state: &str) -> Result<String, ProviderError> {
        let app = self.app()?;
        let mut url = Url::parse(&format!("{}/oauth", self.oauth_base))
            .map_err(|_| ProviderError::Unavailable("AVITO_OAUTH_BASE is not a URL".into()))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", app.client_id.expose())
            .append_pair("scope", SCOPES)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        Ok(url.into())
    }

    /// The credentials of a consent connection after a grant: the new tokens beside what else it keeps.
    fn with_grant(secrets: ChannelSecrets, grant: Grant, now: Timestamp) -> ChannelSecrets {
        let lifetime = i64::try_from(grant.lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let expires_at = now.as_second().saturating_add(lifetime);
        let secrets = secrets
            .with(ACCESS_TOKEN, grant.access_token)
            .with(ACCESS_EXPIRES_AT, Secret::new(expires_at.to_string()));
        match grant.refresh_token {
            Some(refresh) => secrets.with(REFRESH_TOKEN, refresh),
            None => secrets,
        }
    }

    /// A fresh token from `/token` (client credentials), cached for later calls. A refused pair is
    /// `InvalidCredentials`.
    pub async fn fetch_token(
        &self,
        client_id: &Secret,
        client_secret: &Secret,
    ) -> Result<Secret, ProviderError> {
        let url = self.endpoint(&["token"])?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id.expose()),
            ("client_secret", client_secret.expose()),
        ];
        let response = self.http.post(url).form(&form).send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after_header(response.headers());
        let bytes = response.bytes().await.map_err(transport_error)?;
        let answer: TokenAnswer =
            interpret(status, retry_after, &bytes, Purpose::CredentialCheck, &[client_id, client_secret])?;
        // Avito has answered an unknown client with 200 and an `error` field: no token is a refusal.
        let Some(token) = answer.access_token.filter(|t| !t.is_empty()) else {
            return Err(ProviderError::InvalidCredentials(INVALID_CLIENT.into()));
        };
        let lifetime = answer.expires_in.map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        let token = Secret::new(token);
        let cached = CachedToken {
            token: token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        };
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(cache_key(client_id, client_secret), cached);
        }
        Ok(token)
    }

    async fn token(&self, client_id: &Secret, client_secret: &Secret) -> Result<Secret, ProviderError> {
        let cached = self.tokens.lock().ok().and_then(|tokens| {
            tokens
                .get(&cache_key(client_id, client_secret))
                .filter(|t| t.renew_at > Instant::now())
                .map(|t| t.token.clone())
        });
        match cached {
            Some(token) => Ok(token),
            None => self.fetch_token(client_id, client_secret).await,
        }
    }

    fn forget_token(&self, client_id: &Secret, client_secret: &Secret) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(&cache_key(client_id, client_secret));
        }
    }

    /// The account the token acts for: its id (the `user_id` of messenger paths) and name.
    pub async fn account(&self, token: &Secret) -> Result<AvitoAccount, ProviderError> {
        let url = self.endpoint(&["core", "v1", "accounts", "self"])?;
        self.bearer_call(Method::GET, url, token, None).await
    }

    /// Subscribes `url` to the account's messenger events (webhook v3).
    async fn subscribe(&self, auth: &Auth<'_>, url: &str) -> Result<(), ProviderError> {
        let endpoint = self.endpoint(&["messenger", "v3", "webhook"])?;
        self.authorized::<Value>(auth, Method::POST, endpoint, Some(Body::Json(&json!({ "url": url }))))
            .await
            .map(drop)
    }

    /// Unsubscribes every subscription whose URL contains `needle` (the channel's webhook secret: the URL
    /// itself is not known when disconnecting). Answers how many.
    async fn unsubscribe_matching(&self, auth: &Auth<'_>, needle: &str) -> Result<usize, ProviderError> {
        if needle.is_empty() {
            return Ok(0);
        }
        let list_url = self.endpoint(&["messenger", "v1", "subscriptions"])?;
        let list: Subscriptions =
            self.authorized(auth, Method::POST, list_url, Some(Body::Json(&json!({})))).await?;
        let doomed: Vec<String> =
            list.subscriptions.into_iter().map(|s| s.url).filter(|u| u.contains(needle)).collect();
        for url in &doomed {
            let endpoint = self.endpoint(&["messenger", "v1", "webhook", "unsubscribe"])?;
            self.authorized::<Value>(auth, Method::POST, endpoint, Some(Body::Json(&json!({ "url": url }))))
                .await?;
        }
        Ok(doomed.len())
    }

    /// Replies in an existing chat (Avito has no buttons: quick replies become numbered options).
    async fn send_text(&self, auth: &Auth<'_>, user_id: &str, out: &Outgoing) -> Result<Sent, ProviderError> {
        let url =
            self.endpoint(&["messenger", "v1", "accounts", user_id, "chats", &out.customer_id, "messages"])?;
        let text = text_with_options(&out.text, &out.buttons);
        // Options alone (files without a text) start without blank lines.
        let body = json!({"message": {"text": text.trim_start()}, "type": "text"});
        let sent: SentMessage = self.authorized(auth, Method::POST, url, Some(Body::Json(&body))).await?;
        Ok(Sent { provider_message_id: sent.id })
    }

    /// Sends an image into an existing chat: `uploadImages` (multipart `uploadfile[]`), whose answer is keyed
    /// by the new image's id, then `messages/image` with that id.
    async fn send_image(
        &self,
        auth: &Auth<'_>,
        user_id: &str,
        chat_id: &str,
        media: &OutgoingMedia,
    ) -> Result<Sent, ProviderError> {
        if media.kind != AttachmentKind::Image {
            return Err(ProviderError::Rejected("Avito takes images only".into()));
        }
        let upload =
            ImageUpload { bytes: media.read().await?, name: media.file_name(), mime: media.mime.clone() };
        let url = self.endpoint(&["messenger", "v1", "accounts", user_id, "uploadImages"])?;
        let uploaded: Map<String, Value> =
            self.authorized(auth, Method::POST, url, Some(Body::Image(&upload))).await?;
        let image_id = uploaded
            .keys()
            .find(|id| !id.trim().is_empty())
            .ok_or_else(|| ProviderError::Unavailable("Avito's uploadImages answered no image id".into()))?;
        let url =
            self.endpoint(&["messenger", "v1", "accounts", user_id, "chats", chat_id, "messages", "image"])?;
        let body = json!({ "image_id": image_id });
        let sent: SentMessage = self.authorized(auth, Method::POST, url, Some(Body::Json(&body))).await?;
        Ok(Sent { provider_message_id: sent.id })
    }

    /// The link of a voice message (`getVoiceFiles`).
    async fn voice_link(
        &self,
        auth: &Auth<'_>,
        user_id: &str,
        voice_id: &str,
    ) -> Result<String, ProviderError> {
        #[derive(Deserialize)]
        struct VoiceFiles {
            #[serde(default)]
            voices_urls: HashMap<String, String>,
        }
        let mut url = self.endpoint(&["messenger", "v1", "accounts", user_id, "getVoiceFiles"])?;
        url.query_pairs_mut().append_pair("voice_ids", voice_id);
        let files: VoiceFiles = self.authorized(auth, Method::GET, url, None).await?;
        files
            .voices_urls
            .get(voice_id)
            .filter(|link| is_link(link))
            .cloned()
            .ok_or_else(|| ProviderError::Rejected("Avito gave no link for the voice message".into()))
    }

    /// The name of the chat's other participant (`GET /messenger/v2/accounts/{user_id}/chats/{chat_id}`:
    /// its `users` are the account and the customer), or `None` where Avito names no one else.
    async fn chat_partner_name(
        &self,
        auth: &Auth<'_>,
        user_id: &str,
        chat_id: &str,
    ) -> Result<Option<String>, ProviderError> {
        #[derive(Deserialize)]
        struct Chat {
            #[serde(default)]
            users: Vec<ChatUser>,
        }
        #[derive(Deserialize)]
        struct ChatUser {
            id: Option<Value>,
            name: Option<String>,
        }
        let url = self.endpoint(&["messenger", "v2", "accounts", user_id, "chats", chat_id])?;
        let chat: Chat = self.authorized(auth, Method::GET, url, None).await?;
        let is_account = |id: &Option<Value>| match id {
            Some(Value::Number(n)) => n.to_string() == user_id,
            Some(Value::String(s)) => s == user_id,
            _ => false,
        };
        Ok(chat
            .users
            .into_iter()
            .filter(|u| !is_account(&u.id))
            .find_map(|u| u.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty())))
    }

    /// A call with the channel's access token (a 401 is `InvalidCredentials`: the use case renews it), or
    /// with the client's cached token, renewed once here on a 401 and the call repeated.
    async fn authorized<T: DeserializeOwned>(
        &self,
        auth: &Auth<'_>,
        method: Method,
        url: Url,
        body: Option<Body<'_>>,
    ) -> Result<T, ProviderError> {
        let (client_id, client_secret) = match auth {
            Auth::Bearer(token) => return self.bearer_call(method, url, token, body).await,
            Auth::Client { id, secret } => (*id, *secret),
        };
        let token = self.token(client_id, client_secret).await?;
        match self.bearer_call(method.clone(), url.clone(), &token, body).await {
            Err(ProviderError::InvalidCredentials(_)) => {
                self.forget_token(client_id, client_secret);
                let token = self.fetch_token(client_id, client_secret).await?;
                self.bearer_call(method, url, &token, body).await
            }
            other => other,
        }
    }

    /// One call with a bearer token: a 401 is `InvalidCredentials` (the token is no longer good).
    async fn bearer_call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        token: &Secret,
        body: Option<Body<'_>>,
    ) -> Result<T, ProviderError> {
        let path = url.path().to_owned();
        let mut request = self.http.request(method, url).bearer_auth(token.expose());
        match body {
            Some(Body::Json(body)) => request = request.json(body),
            Some(Body::Image(image)) => {
                let part = reqwest::multipart::Part::bytes(image.bytes.clone())
                    .file_name(image.name.clone())
                    .mime_str(&image.mime)
                    .map_err(|_| ProviderError::Rejected(format!("{:?} is not a media type", image.mime)))?;
                let form = reqwest::multipart::Form::new().part("uploadfile[]", part);
                request = request.multipart(form).timeout(DOWNLOAD_TIMEOUT);
            }
            None => {}
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after_header(response.headers());
        let bytes = response.bytes().await.map_err(transport_error)?;
        let outcome = interpret(status, retry_after, &bytes, Purpose::Operation, &[token]);
        if let Err(error) = &outcome {
            tracing::warn!(path, status = status.as_u16(), %error, "avito call failed");
        }
        outcome
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        super::endpoint(&self.base, "Avito", segments)
    }
}

fn cache_key(client_id: &Secret, client_secret: &Secret) -> String {
    // The secret is part of the key (as a digest) so that a wrong secret never rides on a cached token.
    let digest = Sha256::digest(client_secret.expose().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}#{hex}", client_id.expose())
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct Subscriptions {
    #[serde(default)]
    subscriptions: Vec<Subscription>,
}

#[derive(Deserialize)]
struct Subscription {
    url: String,
}

#[derive(Deserialize)]
struct SentMessage {
    id: Option<String>,
}

/// The one place an Avito answer becomes a result or a `ProviderError`.
fn interpret<T: DeserializeOwned>(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    purpose: Purpose,
    secrets: &[&Secret],
) -> Result<T, ProviderError> {
    if status.is_success() {
        return json_answer(body, "Avito");
    }
    let found = first_string_at(body, &["/error/message", "/error_description", "/message", "/error"]);
    let description = failure_description(status.as_u16(), found, secrets);
    match (status.as_u16(), purpose) {
        (429, _) => {
            Err(ProviderError::RateLimited { retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER) })
        }
        (400 | 401 | 403, Purpose::CredentialCheck) => {
            Err(ProviderError::InvalidCredentials(INVALID_CLIENT.into()))
        }
        (401, Purpose::Operation) => {
            Err(ProviderError::InvalidCredentials("the Avito token was refused".into()))
        }
        (400..=499, _) => Err(ProviderError::Rejected(description)),
        _ => Err(ProviderError::Unavailable(description)),
    }
}

/// Avito is for answering buyers: the business cannot open a chat. Always false.
pub fn can_start_conversation() -> bool {
    false
}

/// The 422 for an attempt to start an Avito conversation.
pub fn start_conversation_refused() -> Error {
    Error::rule(
        "reply_only",
        "provider",
        "Avito chats are started by buyers; the business can only reply / в Avito чат начинает покупатель, \
         бизнес может только отвечать",
    )
}

#[async_trait]
impl ChannelProvider for AvitoClient {
    /// Avito's messenger documents no limit; its chat input and the clients built on its API stop at
    /// 1,000 characters, so a longer reply is refused here rather than cut or refused by Avito.
    fn max_text_chars(&self) -> usize {
        1_000
    }

    async fn connect(&self, credentials: &Map<String, Value>) -> AppResult<Connection> {
        let client_id = required_credential(credentials, CLIENT_ID)?;
        let client_secret = required_credential(credentials, CLIENT_SECRET)?;
        let refused =
            || Error::rule("invalid_client", format!("credentials.{CLIENT_SECRET}"), INVALID_CLIENT);
        // Always a fresh token: a cached one would not prove that this secret is right.
        let token = match self.fetch_token(&client_id, &client_secret).await {
            Ok(token) => token,
            Err(ProviderError::InvalidCredentials(_)) => return Err(refused()),
            Err(other) => return Err(other.into()),
        };
        let account = match self.account(&token).await {
            Ok(account) => account,
            Err(ProviderError::InvalidCredentials(_)) => return Err(refused()),
            Err(other) => return Err(other.into()),
        };
        let id = account.id.to_string();
        let name = account.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| id.clone());
        let masked = BTreeMap::from([
            (CLIENT_ID.to_owned(), client_id.masked()),
            (CLIENT_SECRET.to_owned(), client_secret.masked()),
        ]);
        let secrets = ChannelSecrets::default()
            .with(CLIENT_ID, client_id)
            .with(CLIENT_SECRET, client_secret)
            .with(USER_ID, Secret::new(id.clone()));
        Ok(Connection { account: Account { id, name }, secrets, masked })
    }

    fn secret_in_webhook_path(&self) -> bool {
        true
    }

    fn registers_webhook(&self) -> bool {
        true
    }

    /// Each registration is added beside the others: the channel's ones (found by its webhook secret) go
    /// first, so exactly one, at the new URL, remains.
    async fn reregister_webhook(&self, secrets: &ChannelSecrets, url: &str) -> AppResult<()> {
        self.remove_webhook(secrets).await?;
        self.register_webhook(secrets, url).await
    }

    async fn register_webhook(&self, secrets: &ChannelSecrets, url: &str) -> AppResult<()> {
        Ok(self.subscribe(&Auth::of(secrets)?, url).await?)
    }

    async fn remove_webhook(&self, secrets: &ChannelSecrets) -> AppResult<()> {
        let Some(secret) = secrets.get(ChannelSecrets::WEBHOOK_SECRET) else {
            return Ok(());
        };
        self.unsubscribe_matching(&Auth::of(secrets)?, secret.expose()).await?;
        Ok(())
    }

    fn receive(&self, secrets: &ChannelSecrets, request: &WebhookRequest) -> Result<Delivery, WebhookError> {
        verify_path_secret(
            request.path_secret.as_deref(),
            secrets.for_verifying(ChannelSecrets::WEBHOOK_SECRET)?,
        )?;
        let account = secrets.get(USER_ID).map(Secret::expose);
        let messages = parse_event(&request.body, account)?.into_iter().collect();
        Ok(Delivery { messages, statuses: Vec::new(), reply: Default::default() })
    }

    /// The text (with its quick replies as numbered options) first, then each image as its own message;
    /// answers the last message's id.
    async fn send(&self, secrets: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError> {
        let missing = || ProviderError::InvalidCredentials("the channel has no Avito credentials".into());
        let user_id = secrets.get(USER_ID).ok_or_else(missing)?;
        let auth = Auth::of(secrets)?;
        if let Some(media) = out.attachments.iter().find(|media| media.kind != AttachmentKind::Image) {
            return Err(ProviderError::Rejected(format!("Avito takes images only, not {:?}", media.kind)));
        }
        let mut sent = Sent { provider_message_id: None };
        if out.attachments.is_empty() || !out.text.trim().is_empty() || !out.buttons.is_empty() {
            sent = self.send_text(&auth, user_id.expose(), out).await?;
        }
        for media in &out.attachments {
            sent = self.send_image(&auth, user_id.expose(), &out.customer_id, media).await?;
        }
        Ok(sent)
    }

    /// Avito's webhook names no one: the customer's name is the chat's other participant.
    fn looks_up_names(&self) -> bool {
        true
    }

    /// `customer_id` is the chat id (`receive` makes the chat the customer).
    async fn customer_name(
        &self,
        secrets: &ChannelSecrets,
        customer_id: &str,
    ) -> Result<Option<String>, ProviderError> {
        let missing = || ProviderError::InvalidCredentials("the channel has no Avito credentials".into());
        let user_id = secrets.get(USER_ID).ok_or_else(missing)?;
        if customer_id.trim().is_empty() {
            return Ok(None);
        }
        self.chat_partner_name(&Auth::of(secrets)?, user_id.expose(), customer_id).await
    }

    /// Images are links; a voice message (`voice:{id}`) is fetchable through `getVoiceFiles`.
    fn fetchable(&self, attachment: &Attachment) -> bool {
        !attachment.kind.is_data() && (is_link(&attachment.file_ref) || voice_id(attachment).is_some())
    }

    async fn fetch_media(
        &self,
        secrets: &ChannelSecrets,
        attachment: &Attachment,
        sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        if attachment.kind.is_data() {
            return Err(FetchError::not_fetched(attachment));
        }
        if let Some(voice_id) = voice_id(attachment) {
            let missing = || ProviderError::InvalidCredentials("the channel has no Avito credentials".into());
            let user_id = secrets.get(USER_ID).ok_or_else(missing)?;
            let link = self.voice_link(&Auth::of(secrets)?, user_id.expose(), voice_id).await?;
            return download_link(&self.http, &link, sink).await;
        }
        if is_link(&attachment.file_ref) {
            return download_link(&self.http, &attachment.file_ref, sink).await;
        }
        Err(FetchError::Unsupported("the attachment is neither a link nor a voice message".into()))
    }

    /// Images only (`uploadImages`); Avito's chats take no other files.
    fn media_limit(&self, kind: AttachmentKind) -> Option<u64> {
        (kind == AttachmentKind::Image).then_some(IMAGE_LIMIT)
    }

    fn sends_media_from_file(&self) -> bool {
        true
    }

    /// A consent connection's access token is renewed a minute before it expires; one whose expiry is
    /// unreadable is renewed at once.
    fn renewal_due(&self, secrets: &ChannelSecrets, now: Timestamp) -> bool {
        if secrets.get(REFRESH_TOKEN).is_none() {
            return false;
        }
        let margin = i64::try_from(TOKEN_MARGIN.as_secs()).unwrap_or(60);
        match secrets.get(ACCESS_EXPIRES_AT).and_then(|at| at.expose().parse::<i64>().ok()) {
            Some(expires_at) => now.as_second().saturating_add(margin) >= expires_at,
            None => true,
        }
    }

    async fn renew_tokens(
        &self,
        secrets: &ChannelSecrets,
        now: Timestamp,
    ) -> Result<Option<ChannelSecrets>, ProviderError> {
        let Some(refresh) = secrets.get(REFRESH_TOKEN).filter(|t| !t.expose().is_empty()) else {
            return Ok(None);
        };
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.expose())];
        let grant = self.grant(&form, &[refresh]).await.map_err(|error| match error {
            ProviderError::InvalidCredentials(reason) => ProviderError::InvalidCredentials(format!(
                "Avito refused to renew the channel's authorization ({reason}); authorize the account again \
                 / Avito не продлил авторизацию: авторизуйтесь заново"
            )),
            other => other,
        })?;
        Ok(Some(Self::with_grant(secrets.clone(), grant, now)))
    }
}

#[async_trait]
impl AvitoOAuth for AvitoClient {
    fn authorize_url(&self, redirect_uri: &str, state: &str) -> AppResult<String> {
        self.consent_url(redirect_uri, state).map_err(|error| match error {
            ProviderError::Rejected(reason) => Error::rule("provider_not_available", "provider", reason),
            other => other.into(),
        })
    }

    async fn connect_with_code(
        &self,
        code: &Secret,
        redirect_uri: &str,
        now: Timestamp,
    ) -> Result<Connection, ProviderError> {
        let form =
            [("grant_type", "authorization_code"), ("code", code.expose()), ("redirect_uri", redirect_uri)];
        let grant = self.grant(&form, &[code]).await.map_err(|error| match error {
            ProviderError::InvalidCredentials(reason) => ProviderError::Rejected(reason),
            other => other,
        })?;
        if grant.refresh_token.is_none() {
            return Err(ProviderError::Unavailable("Avito granted no refresh token".into()));
        }
        let account = self.account(&grant.access_token).await.map_err(|error| match error {
            ProviderError::InvalidCredentials(_) => {
                ProviderError::Rejected("Avito did not accept the token it granted for this code".into())
            }
            other => other,
        })?;
        let id = account.id.to_string();
        let name = account.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| id.clone());
        let secrets = ChannelSecrets::default().with(USER_ID, Secret::new(id.clone()));
        let secrets = Self::with_grant(secrets, grant, now);
        let masked = BTreeMap::from([("authorization".to_owned(), "oauth".to_owned())]);
        Ok(Connection { account: Account { id, name }, secrets, masked })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChannelId, Provider};
    use crate::ports::media::MediaSink;
    use crate::test_support::fixture;
    use wiremock::matchers::{body_json, body_string_contains, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const CLIENT: &str = "avito-client-id-0123";
    const SECRET: &str = "avito-client-secret-0123456789";
    const HOOK_SECRET: &str = "HookSecret0123456789HookSecret0123456789HookSecr";
    const CHAT: &str = "u2i-5u1BZROboeSAFX7u00euug";

    #[test]
    fn parses_the_text_fixture() {
        assert_eq!(
            parse_event(&fixture("avito_text.json"), Some("375811020")).unwrap(),
            Some(InboundMessage {
                dedup_key: "4e40017827104f1c5d42c5eb0a276585".into(),
                kind: InboundKind::Message,
                customer: Customer { id: CHAT.into(), name: None, handle: None },
                provider_message_id: Some("4e40017827104f1c5d42c5eb0a276585".into()),
                text: Some("есть в наличии?".into()),
                attachments: vec![],
                sent_at: Some(Timestamp::from_second(1712220290).unwrap()),
            })
        );
    }

    fn event(kind: &str, author_id: i64, content: Value) -> Vec<u8> {
        json!({"id": "evt-1", "version": "v3.0.0", "timestamp": 1712220290, "payload": {"type": "message", "value": {
            "id": "msg-1", "chat_id": CHAT, "user_id": 375811020, "author_id": author_id, "created": 1712220290,
            "type": kind, "chat_type": "u2i", "content": content, "item_id": 4073598608_u64}}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn drops_echoes_system_messages_other_accounts_and_other_events() {
        assert_eq!(parse_event(&event("text", 375811020, json!({"text": "our reply"})), None), Ok(None));
        assert_eq!(parse_event(&event("system", 0, json!({"text": "Покупатель оплатил"})), None), Ok(None));
        assert_eq!(parse_event(&event("deleted", 1000676, json!({})), None), Ok(None));
        assert_eq!(parse_event(&event("text", 1000676, json!({"text": "hi"})), Some("999")), Ok(None));
        assert!(
            parse_event(&event("text", 1000676, json!({"text": "hi"})), Some("375811020")).unwrap().is_some()
        );
        assert_eq!(parse_event(br#"{"id":"e","payload":{"type":"chat_read","value":{}}}"#, None), Ok(None));
    }

    #[test]
    fn normalizes_images_voice_links_items_and_locations() {
        let image = parse_event(
            &event("image", 1, json!({"image": {"sizes": {"140x105": "https://img/s", "1280x960": "https://img/l", "640x480": "https://img/m"}}})),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            image.attachments,
            vec![Attachment {
                kind: AttachmentKind::Image,
                file_ref: "https://img/l".into(),
                mime: None,
                size: None,
                name: None
            }]
        );
        let voice =
            parse_event(&event("voice", 1, json!({"voice": {"voice_id": "v-1"}})), None).unwrap().unwrap();
        assert_eq!(
            (voice.attachments[0].kind, voice.attachments[0].file_ref.as_str()),
            (AttachmentKind::Voice, "voice:v-1")
        );
        let link = parse_event(&event("link", 1, json!({"link": {"text": "see", "url": "https://x"}})), None)
            .unwrap()
            .unwrap();
        assert_eq!(link.text.as_deref(), Some("see"));
        let item = parse_event(
            &event("item", 1, json!({"item": {"title": "Bike", "item_url": "https://avito.ru/1"}})),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(item.text.as_deref(), Some("Bike\nhttps://avito.ru/1"));
        let location = parse_event(
            &event("location", 1, json!({"location": {"lat": 55.7, "lon": 37.6, "title": "Moscow"}})),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(location.attachments[0].file_ref, "55.7,37.6");
        assert_eq!(parse_event(&event("call", 1, json!({"call": {}})), None), Ok(None));
    }

    #[test]
    fn refuses_malformed_bodies() {
        for body in [
            &b"not json"[..],
            b"",
            b"[]",
            b"{}",
            br#"{"payload":{"type":"message"}}"#,
            br#"{"payload":{"type":"message","value":{"id":"x","chat_id":"c","user_id":"1","author_id":2,"type":"text"}}}"#,
            br#"{"payload":{"type":"message","value":{"chat_id":"c","user_id":1,"author_id":2,"type":"text"}}}"#,
        ] {
            match parse_event(body, None) {
                Err(WebhookError::Malformed { provider: "avito", .. }) => {}
                other => panic!("{}: expected Malformed, got {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    fn channel_secrets() -> ChannelSecrets {
        ChannelSecrets::default()
            .with(CLIENT_ID, Secret::new(CLIENT))
            .with(CLIENT_SECRET, Secret::new(SECRET))
            .with(USER_ID, Secret::new("375811020"))
            .with(ChannelSecrets::WEBHOOK_SECRET, Secret::new(HOOK_SECRET))
    }

    fn request(body: Vec<u8>, path_secret: Option<&str>) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            headers: vec![("x-avito-messenger-signature".into(), "whatever".into())],
            body,
            path_secret: path_secret.map(str::to_owned),
            webhook_url: String::new(),
        }
    }

    #[test]
    fn receive_needs_the_path_secret_before_anything_is_parsed() {
        let client = AvitoClient::new(reqwest::Client::new(), "http://127.0.0.1:9");
        let delivery = client
            .receive(&channel_secrets(), &request(fixture("avito_text.json"), Some(HOOK_SECRET)))
            .unwrap();
        assert_eq!(delivery.messages.len(), 1);
        for wrong in [None, Some(""), Some("nope")] {
            assert_eq!(
                client.receive(&channel_secrets(), &request(fixture("avito_text.json"), wrong)),
                Err(WebhookError::Unauthorized)
            );
            assert_eq!(
                client.receive(&channel_secrets(), &request(b"{".to_vec(), wrong)),
                Err(WebhookError::Unauthorized)
            );
        }
        let channel = ChannelId::generate();
        assert_eq!(
            client.webhook_url("https://x.test", Provider::Avito, &channel, &channel_secrets()),
            format!("https://x.test/webhooks/avito/{channel}/{HOOK_SECRET}")
        );
    }

    #[test]
    fn conversations_cannot_be_started() {
        assert!(!can_start_conversation());
        match start_conversation_refused() {
            Error::Rule(rule) => assert!(format!("{rule:?}").contains("reply_only")),
            other => panic!("{other:?}"),
        }
    }

    // --- client, against a fake Avito API ---

    async fn token_endpoint(server: &MockServer, token: &str, expires_in: u64) {
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(body_string_contains("grant_type=client_credentials"))
            .and(body_string_contains(format!("client_id={CLIENT}")))
            .and(body_string_contains(format!("client_secret={SECRET}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": token, "expires_in": expires_in, "token_type": "Bearer"})))
            .mount(server)
            .await;
    }

    fn credentials(secret: &str) -> Map<String, Value> {
        json!({"client_id": CLIENT, "client_secret": secret}).as_object().cloned().unwrap()
    }

    fn rule_text(error: &Error) -> String {
        match error {
            Error::Rule(rule) => format!("{rule:?} {error}"),
            other => panic!("expected a rule violation, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn connect_fetches_a_token_and_names_the_account() {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok-1", 86400).await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_client"})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/core/v1/accounts/self"))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": 375811020, "name": "Магазин велосипедов", "email": "shop@example.test",
                "profile_url": "https://www.avito.ru/user/abc"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = AvitoClient::new(reqwest::Client::new(), server.uri());
        let connection = client.connect(&credentials(SECRET)).await.unwrap();
        assert_eq!(
            connection.account,
            Account { id: "375811020".into(), name: "Магазин велосипедов".into() }
        );
        assert_eq!(connection.secrets.get(USER_ID).map(Secret::expose), Some("375811020"));
        let shown = format!("{connection:?} {client:?}");
        assert!(!shown.contains(SECRET) && !shown.contains("tok-1"), "{shown}");
        let refused = client.connect(&credentials("wrong-secret")).await.unwrap_err();
        assert!(rule_text(&refused).contains("credentials.client_secret"));
        assert!(!format!("{refused} {refused:?}").contains("wrong-secret"));
    }

    #[tokio::test]
    async fn an_error_answer_with_status_200_is_a_refusal() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"error": "invalid_client", "error_description": "invalid client"})),
            )
            .mount(&server)
            .await;
        let client = AvitoClient::new(reqwest::Client::new(), server.uri());
        assert!(
            rule_text(&client.connect(&credentials(SECRET)).await.unwrap_err()).contains("invalid_client")
        );
    }

    #[tokio::test]
    async fn subscribes_and_unsubscribes_only_this_channels_url() {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok-1", 86400).await;
        let url = format!("https://omnichat.example.test/webhooks/avito/c1/{HOOK_SECRET}");
        Mock::given(method("POST"))
            .and(path("/messenger/v3/webhook"))
            .and(header("authorization", "Bearer tok-1"))
            .and(body_json(json!({ "url": url })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/messenger/v1/subscriptions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"subscriptions": [
                {"url": url, "version": "3"}, {"url": "https://other.example/hook", "version": "3"}]})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/messenger/v1/webhook/unsubscribe"))
            .and(body_json(json!({ "url": url })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .expect(1)
            .mount(&server)
            .await;
        let client = AvitoClient::new(reqwest::Client::new(), server.uri());
        client.register_webhook(&channel_secrets(), &url).await.unwrap();
        client.remove_webhook(&channel_secrets()).await.unwrap();
        // One token served all three calls.
        let token_calls =
            server.received_requests().await.unwrap().iter().filter(|r| r.url.path() == "/token").count();
        assert_eq!(token_calls, 1);
    }

    fn outgoing(buttons: &[&str]) -> Outgoing {
        Outgoing {
            attachments: Vec::new(),
            customer_id: CHAT.into(),
            text: "Да, есть".into(),
            buttons: buttons.iter().map(|b| (*b).to_owned()).collect(),
            idempotency_key: "out-1".into(),
            thread: None,
            automatic: false,
            template: None,
        }
    }

    #[tokio::test]
    async fn replies_into_the_chat_and_renews_a_refused_token_once() {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok-fresh", 86400).await;
        let messages = format!("/messenger/v1/accounts/375811020/chats/{CHAT}/messages");
        Mock::given(method("POST"))
            .and(path(messages.as_str()))
            .and(header("authorization", "Bearer tok-stale"))
            .respond_with(
                ResponseTemplate::new(401).set_body_json(json!({"code": 401, "message": "Unauthorized"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(messages.as_str()))
            .and(header("authorization", "Bearer tok-fresh"))
            .and(body_json(json!({"message": {"text": "Да, есть\n\n1. Забронировать\n2. Нет"}, "type": "text"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "bd7d6b5d", "created": 1712220300, "direction": "out", "type": "text", "content": {"text": "Да, есть"}})))
            .expect(1)
            .mount(&server)
            .await;
        let client = AvitoClient::new(reqwest::Client::new(), server.uri());
        // A token cached earlier that Avito no longer accepts.
        client.tokens.lock().unwrap().insert(
            cache_key(&Secret::new(CLIENT), &Secret::new(SECRET)),
            CachedToken {
                token: Secret::new("tok-stale"),
                renew_at: Instant::now() + Duration::from_secs(600),
            },
        );
        let sent = client.send(&channel_secrets(), &outgoing(&["Забронировать", "Нет"])).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("bd7d6b5d".into()) });
    }

    #[tokio::test]
    async fn an_expired_token_is_renewed_before_the_call() {
        let server = MockServer::start().await;
        // expires_in below the safety margin: the token is due for renewal at once.
        token_endpoint(&server, "tok-short", 30).await;
        Mock::given(method("POST"))
            .and(path("/messenger/v3/webhook"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .mount(&server)
            .await;
        let client = AvitoClient::new(reqwest::Client::new(), server.uri());
        client.register_webhook(&channel_secrets(), "https://x/1").await.unwrap();
        client.register_webhook(&channel_secrets(), "https://x/2").await.unwrap();
        let token_calls =
            server.received_requests().await.unwrap().iter().filter(|r| r.url.path() == "/token").count();
        assert_eq!(token_calls, 2);
    }

    #[tokio::test]
    async fn chat_ids_cannot_escape_their_path_segment() {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok-1", 86400).await;
        Mock::given(method("POST"))
            .and(path("/messenger/v1/accounts/375811020/chats/..%2F..%2Fwebhook/messages"))
            .respond_with(ResponseTemplate::new(404))
            .expect(1)
            .mount(&server)
            .await;
        let client = AvitoClient::new(reqwest::Client::new(), server.uri());
        let mut out = outgoing(&[]);
        out.customer_id = "../../webhook".into();
        assert!(matches!(client.send(&channel_secrets(), &out).await, Err(ProviderError::Rejected(_))));
    }

    #[tokio::test]
    async fn throttling_server_errors_and_time_outs_hide_the_secrets() {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok-1", 86400).await;
        let messages = format!("/messenger/v1/accounts/375811020/chats/{CHAT}/messages");
        Mock::given(method("POST"))
            .and(path(messages.as_str()))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "30"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(messages.as_str()))
            .respond_with(ResponseTemplate::new(502).set_body_json(json!({"message": "upstream tok-1"})))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(messages.as_str()))
            .respond_with(
                ResponseTemplate::new(403)
                    .set_body_json(json!({"error": {"code": 403, "message": "no messenger access"}})),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(messages.as_str()))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
            .mount(&server)
            .await;
        let client = AvitoClient::new(reqwest::Client::new(), server.uri());
        let throttled = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert_eq!(throttled, ProviderError::RateLimited { retry_after: Duration::from_secs(30) });
        let down = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert_eq!(down, ProviderError::Unavailable("HTTP 502: upstream ****".into()));
        let forbidden = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert_eq!(forbidden, ProviderError::Rejected("HTTP 403: no messenger access".into()));
        let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
        let slow = AvitoClient::new(http, server.uri());
        let timed_out = slow.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
        assert!(matches!(timed_out, ProviderError::Unavailable(_)), "{timed_out:?}");
        for error in [throttled, down, forbidden, timed_out] {
            let text = format!("{error} {error:?}");
            assert!(
                !text.contains(SECRET) && !text.contains("tok-1") && !text.contains(HOOK_SECRET),
                "{text}"
            );
        }
    }

    /// Found by fuzzing (fuzz/regressions/avito/): an empty message id became the dedup key and an empty
    /// chat id the customer id.
    #[test]
    fn a_message_without_an_id_or_a_chat_is_refused() {
        let event = |id: &str, chat: &str| {
            format!(
                r#"{{"id":"e","version":"v3.0.0","timestamp":1712220290,"payload":{{"type":"message",
                "value":{{"id":"{id}","chat_id":"{chat}","user_id":375811020,"author_id":1000676,
                "created":1712220290,"type":"text","chat_type":"u2i","content":{{"text":"hi"}}}}}}}}"#
            )
        };
        assert!(matches!(parse_event(event("m1", "u2i-1").as_bytes(), None), Ok(Some(_))));
        for (id, chat) in [("", "u2i-1"), ("m1", "")] {
            let parsed = parse_event(event(id, chat).as_bytes(), None);
            assert!(matches!(parsed, Err(WebhookError::Malformed { .. })), "{id:?} {chat:?}: {parsed:?}");
        }
    }

    // --- the consent flow (authorization code) against a fake token endpoint ---

    const APP_ID: &str = "platform-app-id-0123";
    const APP_SECRET: &str = "platform-app-secret-0123456789";
    const REDIRECT: &str = "https://admin.example.test/avito/callback";

    fn app_client(server: &MockServer) -> AvitoClient {
        AvitoClient::new(reqwest::Client::new(), server.uri())
            .with_oauth_base("http://127.0.0.1:9/fake-avito")
            .with_app(Secret::new(APP_ID), Secret::new(APP_SECRET))
    }

    #[tokio::test]
    async fn the_consent_url_names_the_app_the_scopes_the_callback_and_the_state() {
        let server = MockServer::start().await;
        let url = Url::parse(&app_client(&server).consent_url(REDIRECT, "state-123").unwrap()).unwrap();
        assert_eq!(url.path(), "/fake-avito/oauth");
        let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(
            query,
            BTreeMap::from([
                ("response_type".to_owned(), "code".to_owned()),
                ("client_id".to_owned(), APP_ID.to_owned()),
                ("scope".to_owned(), "messenger:read,messenger:write,user:read".to_owned()),
                ("redirect_uri".to_owned(), REDIRECT.to_owned()),
                ("state".to_owned(), "state-123".to_owned()),
            ])
        );
        let without_app = AvitoClient::new(reqwest::Client::new(), server.uri());
        assert!(matches!(without_app.consent_url(REDIRECT, "s"), Err(ProviderError::Rejected(_))));
        let refused = AvitoOAuth::authorize_url(&without_app, REDIRECT, "s").unwrap_err();
        assert!(rule_text(&refused).contains("provider_not_available"));
    }

    #[tokio::test]
    async fn a_code_is_exchanged_for_tokens_kept_as_secrets_and_the_account_named() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=authorization_code"))
            .and(body_string_contains(format!("client_id={APP_ID}")))
            .and(body_string_contains(format!("client_secret={APP_SECRET}")))
            .and(body_string_contains("code=good-code"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "acc-1", "refresh_token": "ref-1", "expires_in": 86400, "token_type": "Bearer"})))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "error": "invalid_grant", "error_description": "code is expired"})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/core/v1/accounts/self"))
            .and(header("authorization", "Bearer acc-1"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 375811020, "name": "Магазин"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let client = app_client(&server);
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let connection = client.connect_with_code(&Secret::new("good-code"), REDIRECT, now).await.unwrap();
        assert_eq!(connection.account, Account { id: "375811020".into(), name: "Магазин".into() });
        let secrets = &connection.secrets;
        assert_eq!(secrets.get(ACCESS_TOKEN).map(Secret::expose), Some("acc-1"));
        assert_eq!(secrets.get(REFRESH_TOKEN).map(Secret::expose), Some("ref-1"));
        assert_eq!(secrets.get(ACCESS_EXPIRES_AT).map(Secret::expose), Some("1800086400"));
        assert_eq!(secrets.get(USER_ID).map(Secret::expose), Some("375811020"));
        let shown = format!("{connection:?} {:?}", connection.masked);
        assert!(
            !shown.contains("acc-1") && !shown.contains("ref-1") && !shown.contains(APP_SECRET),
            "{shown}"
        );
        let form = String::from_utf8_lossy(&server.received_requests().await.unwrap()[0].body).into_owned();
        assert!(form.contains("redirect_uri=https%3A%2F%2Fadmin.example.test%2Favito%2Fcallback"), "{form}");

        let refused = client.connect_with_code(&Secret::new("stale-code"), REDIRECT, now).await.unwrap_err();
        match refused {
            ProviderError::Rejected(reason) => {
                assert!(reason.contains("code is expired") && !reason.contains(APP_SECRET), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    fn consent_secrets(expires_at: i64) -> ChannelSecrets {
        ChannelSecrets::default()
            .with(ACCESS_TOKEN, Secret::new("acc-old"))
            .with(REFRESH_TOKEN, Secret::new("ref-old"))
            .with(ACCESS_EXPIRES_AT, Secret::new(expires_at.to_string()))
            .with(USER_ID, Secret::new("375811020"))
            .with(ChannelSecrets::WEBHOOK_SECRET, Secret::new(HOOK_SECRET))
    }

    #[tokio::test]
    async fn a_refresh_rotates_both_tokens_and_a_refused_one_says_so() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .and(body_string_contains("refresh_token=ref-old"))
            .and(body_string_contains(format!("client_secret={APP_SECRET}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "acc-new", "refresh_token": "ref-new", "expires_in": 3600})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
            .mount(&server)
            .await;
        let client = app_client(&server);
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        // Due a minute before it expires, not earlier; client credentials never are.
        assert!(!client.renewal_due(&consent_secrets(1_800_000_061), now));
        assert!(client.renewal_due(&consent_secrets(1_800_000_060), now));
        assert!(client.renewal_due(&consent_secrets(1_700_000_000), now));
        assert!(!client.renewal_due(&channel_secrets(), now));
        assert_eq!(
            client.renew_tokens(&channel_secrets(), now).await.unwrap().map(|s| format!("{s:?}")),
            None
        );

        let renewed = client.renew_tokens(&consent_secrets(1_700_000_000), now).await.unwrap().unwrap();
        assert_eq!(renewed.get(ACCESS_TOKEN).map(Secret::expose), Some("acc-new"));
        assert_eq!(renewed.get(REFRESH_TOKEN).map(Secret::expose), Some("ref-new"));
        assert_eq!(renewed.get(ACCESS_EXPIRES_AT).map(Secret::expose), Some("1800003600"));
        assert_eq!(renewed.get(ChannelSecrets::WEBHOOK_SECRET).map(Secret::expose), Some(HOOK_SECRET));

        let spent = consent_secrets(1_700_000_000).with(REFRESH_TOKEN, Secret::new("ref-spent"));
        match client.renew_tokens(&spent, now).await {
            Err(ProviderError::InvalidCredentials(reason)) => {
                assert!(
                    reason.contains("authorize the account again") && !reason.contains("ref-spent"),
                    "{reason}"
                )
            }
            other => panic!("{:?}", other.map(|s| s.map(|s| format!("{s:?}")))),
        }
    }

    #[tokio::test]
    async fn a_consent_channel_sends_with_its_access_token_and_reports_a_refused_one() {
        let server = MockServer::start().await;
        let messages = format!("/messenger/v1/accounts/375811020/chats/{CHAT}/messages");
        Mock::given(method("POST"))
            .and(path(messages.as_str()))
            .and(header("authorization", "Bearer acc-old"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "Unauthorized"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = app_client(&server);
        let refused = client.send(&consent_secrets(1_900_000_000), &outgoing(&[])).await.unwrap_err();
        assert!(matches!(refused, ProviderError::InvalidCredentials(_)), "{refused:?}");
        // The client renews nothing by itself: no token call.
        let token_calls =
            server.received_requests().await.unwrap().iter().filter(|r| r.url.path() == "/token").count();
        assert_eq!(token_calls, 0);
    }

    // --- media ---

    /// Whether `needle` occurs in `haystack` (a multipart body holds the file's bytes as they are).
    fn holds(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|window| window == needle)
    }

    fn only_attachment(fixture_name: &str) -> Attachment {
        let message = parse_event(&fixture(fixture_name), Some("375811020")).unwrap().expect("a message");
        assert_eq!(message.attachments.len(), 1, "{fixture_name}");
        message.attachments.into_iter().next().unwrap()
    }

    #[tokio::test]
    async fn the_largest_image_of_the_fixture_is_fetched_from_its_link() {
        let image = only_attachment("avito_image.json");
        assert_eq!(image.kind, AttachmentKind::Image);
        assert_eq!(
            image.file_ref,
            "https://img.k.avito.ru/chat/1280x960/5083651369.3e798a9bf88345ae8fe85ff891266b24.jpg"
        );
        let server = MockServer::start().await;
        let client = AvitoClient::new(reqwest::Client::new(), server.uri());
        assert!(client.fetchable(&image));
        let jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF the buyer's photo".to_vec();
        let link_path = Url::parse(&image.file_ref).unwrap().path().to_owned();
        Mock::given(method("GET"))
            .and(path(link_path.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_raw(jpeg.clone(), "image/jpeg"))
            .expect(1)
            .mount(&server)
            .await;
        let moved = Attachment { file_ref: format!("{}{link_path}", server.uri()), ..image };
        let mut sink = MediaSink::new(1024 * 1024).await.unwrap();
        let declared = client.fetch_media(&channel_secrets(), &moved, &mut sink).await.unwrap();
        assert_eq!(declared.as_deref(), Some("image/jpeg"));
        assert_eq!(std::fs::read(sink.path()).unwrap(), jpeg);
    }

    #[tokio::test]
    async fn a_voice_message_of_the_fixture_is_fetched_through_get_voice_files() {
        let voice = only_attachment("avito_voice.json");
        assert_eq!(
            (voice.kind, voice.file_ref.as_str()),
            (AttachmentKind::Voice, "voice:6f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8")
        );
        let server = MockServer::start().await;
        token_endpoint(&server, "tok-1", 86400).await;
        let link = format!("{}/voices/6f3e2d1c.m4a", server.uri());
        Mock::given(method("GET"))
            .and(path("/messenger/v1/accounts/375811020/getVoiceFiles"))
            .and(query_param("voice_ids", "6f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8"))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "voices_urls": {"6f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8": link}})))
            .expect(1)
            .mount(&server)
            .await;
        let audio = b"\x00\x00\x00\x18ftypM4A the buyer's voice".to_vec();
        Mock::given(method("GET"))
            .and(path("/voices/6f3e2d1c.m4a"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(audio.clone(), "audio/mp4"))
            .expect(1)
            .mount(&server)
            .await;
        let client = AvitoClient::new(reqwest::Client::new(), server.uri());
        assert!(client.fetchable(&voice));
        let mut sink = MediaSink::new(1024 * 1024).await.unwrap();
        let declared = client.fetch_media(&channel_secrets(), &voice, &mut sink).await.unwrap();
        assert_eq!(declared.as_deref(), Some("audio/mp4"));
        assert_eq!(std::fs::read(sink.path()).unwrap(), audio);

        // A voice id Avito has no link for is refused, not retried.
        let unknown = Attachment { file_ref: "voice:gone".into(), ..voice };
        Mock::given(method("GET"))
            .and(path("/messenger/v1/accounts/375811020/getVoiceFiles"))
            .and(query_param("voice_ids", "gone"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"voices_urls": {}})))
            .mount(&server)
            .await;
        let outcome = client.fetch_media(&channel_secrets(), &unknown, &mut sink).await;
        assert!(matches!(outcome, Err(FetchError::Provider(ProviderError::Rejected(_)))), "{outcome:?}");
    }

    #[test]
    fn only_links_and_voice_ids_are_fetchable_and_only_images_are_sent() {
        let client = AvitoClient::new(reqwest::Client::new(), "http://unused.invalid");
        let attachment = |kind, file_ref: &str| Attachment {
            kind,
            file_ref: file_ref.into(),
            mime: None,
            size: None,
            name: None,
        };
        assert!(client.fetchable(&attachment(AttachmentKind::Voice, "voice:v-1")));
        // Stored before the `voice:` scheme.
        assert!(client.fetchable(&attachment(AttachmentKind::Voice, "v-1")));
        assert!(!client.fetchable(&attachment(AttachmentKind::Voice, "voice: ")));
        assert!(!client.fetchable(&attachment(AttachmentKind::Image, "voice:v-1")));
        assert!(!client.fetchable(&attachment(AttachmentKind::Location, "55.7,37.6")));
        assert!(client.sends_media_from_file());
        assert_eq!(client.media_limit(AttachmentKind::Image), Some(15 * 1024 * 1024));
        for kind in [
            AttachmentKind::Document,
            AttachmentKind::Video,
            AttachmentKind::Audio,
            AttachmentKind::Voice,
            AttachmentKind::Sticker,
        ] {
            assert_eq!(client.media_limit(kind), None, "{kind:?}");
        }
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR a tiny picture";

    #[tokio::test]
    async fn an_image_is_uploaded_and_sent_after_the_text() {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok-1", 86400).await;
        Mock::given(method("POST"))
            .and(path(format!("/messenger/v1/accounts/375811020/chats/{CHAT}/messages").as_str()))
            .and(body_json(json!({"message": {"text": "Вот фото"}, "type": "text"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "txt-1", "type": "text"})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/messenger/v1/accounts/375811020/uploadImages"))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "12345.abcdef": {"1280x960": "https://img.k.avito.ru/chat/1280x960/12345.abcdef.jpg"}})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(format!("/messenger/v1/accounts/375811020/chats/{CHAT}/messages/image").as_str()))
            .and(body_json(json!({"image_id": "12345.abcdef"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "img-1", "type": "image"})))
            .expect(1)
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("photo.png");
        std::fs::write(&file, PNG).unwrap();
        let out = Outgoing {
            attachments: vec![OutgoingMedia {
                kind: AttachmentKind::Image,
                name: Some("photo.png".into()),
                mime: "image/png".into(),
                size: PNG.len() as u64,
                url: "https://media.example/unused".into(),
                path: Some(file),
            }],
            text: "Вот фото".into(),
            ..outgoing(&[])
        };
        let client = AvitoClient::new(reqwest::Client::new(), server.uri());
        let sent = client.send(&channel_secrets(), &out).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("img-1".into()) });
        let requests = server.received_requests().await.unwrap();
        let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).filter(|p| *p != "/token").collect();
        assert!(paths[0].ends_with("/messages") && paths[1].ends_with("/uploadImages"), "{paths:?}");
        let upload = requests.iter().find(|r| r.url.path().ends_with("/uploadImages")).unwrap();
        assert!(holds(&upload.body, PNG));
        assert!(holds(&upload.body, b"name=\"uploadfile[]\"; filename=\"photo.png\""));

        // A file that is no image is refused before anything is sent.
        let document = Outgoing {
            attachments: vec![OutgoingMedia {
                kind: AttachmentKind::Document,
                mime: "application/pdf".into(),
                ..out.attachments[0].clone()
            }],
            ..out
        };
        let error = client.send(&channel_secrets(), &document).await.unwrap_err();
        assert!(
            matches!(&error, ProviderError::Rejected(reason) if reason.contains("images only")),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn names_the_customer_after_the_chats_other_user() {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok-1", 86400).await;
        Mock::given(method("GET"))
            .and(path(format!("/messenger/v2/accounts/375811020/chats/{CHAT}").as_str()))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": CHAT,
                "context": {"type": "item", "value": {"id": 4073598608u64, "title": "Велосипед", "price_string": "10 000 ₽",
                            "url": "https://avito.ru/moskva/velosipedy/velosiped_4073598608", "user_id": 375811020}},
                "created": 1712220290,
                "updated": 1712220300,
                "users": [
                    {"id": 375811020, "name": "Магазин велосипедов",
                     "public_user_profile": {"user_id": 375811020, "url": "https://avito.ru/user/abc/profile"}},
                    {"id": 1000676, "name": " Андрей ",
                     "public_user_profile": {"user_id": 1000676, "url": "https://avito.ru/user/def/profile"}},
                ],
                "last_message": {"id": "4e40017827104f1c5d42c5eb0a276585", "author_id": 1000676,
                                 "created": 1712220290, "content": {"text": "есть в наличии?"},
                                 "direction": "in", "type": "text"},
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/messenger/v2/accounts/375811020/chats/u2i-nameless"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "u2i-nameless", "created": 1712220290, "updated": 1712220300,
                "users": [{"id": 375811020, "name": "Магазин велосипедов"}, {"id": 1000677}],
            })))
            .expect(1)
            .mount(&server)
            .await;
        let client = AvitoClient::new(reqwest::Client::new(), server.uri());
        assert!(client.looks_up_names());
        assert_eq!(client.customer_name(&channel_secrets(), CHAT).await.unwrap().as_deref(), Some("Андрей"));
        assert_eq!(client.customer_name(&channel_secrets(), "u2i-nameless").await.unwrap(), None);
    }
}
