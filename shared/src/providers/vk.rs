//! VK community messages: verify and normalize Callback API events, call the VK API (groups.*,
//! messages.send).

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, Outgoing, ProviderError, Reply, Sent,
    WebhookError, WebhookRequest, required_credential, retry_after_header, transport_error,
};
use crate::domain::{Account, Attachment, AttachmentKind, Customer, InboundKind, InboundMessage};
use crate::error::{Error, Result as AppResult};
use crate::ports::oauth::VkOAuth;
use crate::secret::Secret;

pub const DEFAULT_API_BASE: &str = "https://api.vk.com";
pub const DEFAULT_OAUTH_BASE: &str = "https://oauth.vk.com";
/// The API version of every call and of the events VK sends to our callback server.
pub const API_VERSION: &str = "5.199";

const PROVIDER: &str = "vk";
/// The credentials kept for a channel: the admin's community key and community id, and the string VK's
/// `confirmation` request must be answered with (fetched at connect: `register_webhook` cannot add secrets).
const ACCESS_TOKEN: &str = "access_token";
const GROUP_ID: &str = "group_id";
const CONFIRMATION_CODE: &str = "confirmation_code";
/// The name of our server in the community's Callback API settings (VK allows 14 characters).
const SERVER_TITLE: &str = "omnichat";
/// Error 6 (more than 20 requests a second with a community key): the next second is free again.
const TOO_MANY_REQUESTS_RETRY: Duration = Duration::from_secs(1);
/// Error 9 (flood control, repeated identical messages): a retry a second later would flood again.
const FLOOD_CONTROL_RETRY: Duration = Duration::from_secs(30);
/// Error 29 (the method's quota is spent): quotas recover slowly.
const QUOTA_RETRY: Duration = Duration::from_secs(600);
/// An inline keyboard holds at most 10 buttons in at most 6 rows of at most 5.
const INLINE_MAX_BUTTONS: usize = 10;
const INLINE_MAX_ROWS: usize = 6;
const LABEL_MAX_CHARS: usize = 40;
const PAYLOAD_MAX_BYTES: usize = 255;

const INVALID_TOKEN: &str = "VK did not accept the access key / ВКонтакте не принял ключ доступа";
const NO_SUCH_COMMUNITY: &str = "no such community / сообщество не найдено";
const NOT_THIS_COMMUNITY: &str = "the access key is not this community's, or lacks the \"manage\" right \
     / ключ доступа не принадлежит этому сообществу или не имеет права «управление сообществом»";
const MESSAGES_OFF: &str = "community messages are switched off: turn them on in the community's settings \
     (Manage → Messages) / сообщения сообщества выключены: включите их в настройках сообщества (Управление → \
     Сообщения)";

/// Checks the `secret` VK puts in the body of every event once the callback server has a secret key. VK
/// signs nothing, so this shared secret is the only proof of origin.
pub fn verify_secret(candidate: Option<&str>, expected: &Secret) -> Result<(), WebhookError> {
    match candidate {
        Some(candidate) if !expected.expose().is_empty() && expected.matches(candidate) => Ok(()),
        _ => Err(WebhookError::Unauthorized),
    }
}

/// The envelope of every Callback API request.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackEvent {
    pub kind: String,
    pub group_id: i64,
    pub event_id: Option<String>,
    pub secret: Option<String>,
    pub object: Option<Value>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    group_id: i64,
    event_id: Option<String>,
    secret: Option<String>,
    object: Option<Value>,
}

/// Reads the envelope of a Callback API request (its `secret` is not checked here).
pub fn parse_callback(body: &[u8]) -> Result<CallbackEvent, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    // serde also accepts a JSON array for a struct (fields by position).
    if !value.is_object() {
        return Err(malformed("the body is not a JSON object".into()));
    }
    let envelope = Envelope::deserialize(value).map_err(|e| malformed(e.to_string()))?;
    Ok(CallbackEvent {
        kind: envelope.kind,
        group_id: envelope.group_id,
        event_id: envelope.event_id.filter(|id| !id.is_empty()),
        secret: envelope.secret,
        object: envelope.object,
    })
}

/// Normalizes a `message_new` event. `Ok(None)`: nothing a contact center can show (a service message such
/// as a member joining a chat), acknowledged and dropped.
pub fn normalize_message_new(event: &CallbackEvent) -> Result<Option<InboundMessage>, WebhookError> {
    let object = event.object.as_ref().ok_or_else(|| malformed("message_new without an object".into()))?;
    // Since API 5.103 the object is {message, client_info}; before, it was the message itself.
    let message = object.get("message").unwrap_or(object);
    let message = VkMessage::deserialize(message).map_err(|e| malformed(format!("message: {e}")))?;
    if message.out == 1 {
        return Ok(None);
    }
    let dedup_key = match (&event.event_id, message.conversation_message_id) {
        (Some(event_id), _) => event_id.clone(),
        (None, Some(cmid)) => format!("{}:{cmid}", message.peer_id),
        (None, None) if message.id > 0 => format!("{}:id{}", message.peer_id, message.id),
        (None, None) => return Err(malformed("no event_id and no message id".into())),
    };
    let text = Some(message.text.clone()).filter(|t| !t.is_empty());
    let attachments = attachments_of(&message);
    if text.is_none() && attachments.is_empty() {
        return Ok(None);
    }
    // `id` is 0 in group chats; the conversation's own counter identifies the message there.
    let provider_message_id = if message.id > 0 {
        Some(message.id.to_string())
    } else {
        message.conversation_message_id.map(|cmid| format!("{}_{cmid}", message.peer_id))
    };
    let sent_at =
        Timestamp::from_second(message.date).map_err(|e| malformed(format!("date {}: {e}", message.date)))?;
    // A press on one of our text buttons arrives as a message carrying the button's payload.
    let kind = if message.payload.is_some() { InboundKind::ButtonReply } else { InboundKind::Message };
    Ok(Some(InboundMessage {
        dedup_key,
        kind,
        // Replies go to the peer: the person in a private dialog, the chat (2000000000 + id) in a group chat.
        // VK sends no names with events.
        customer: Customer { id: message.peer_id.to_string(), name: None },
        provider_message_id,
        text,
        attachments,
        sent_at: Some(sent_at),
    }))
}

fn malformed(reason: String) -> WebhookError {
    WebhookError::Malformed { provider: PROVIDER, reason }
}

// Only the fields we read; ids are i64 (peer ids of chats are 2000000000 + n, owner ids may be negative).

#[derive(Deserialize)]
struct VkMessage {
    #[serde(default)]
    id: i64,
    date: i64,
    peer_id: i64,
    #[serde(default)]
    out: i64,
    #[serde(default)]
    text: String,
    conversation_message_id: Option<i64>,
    #[serde(default)]
    attachments: Vec<RawAttachment>,
    payload: Option<String>,
    geo: Option<Geo>,
}

/// `{"type": "photo", "photo": {...}}`: the body sits under the key named by `type`.
#[derive(Deserialize)]
struct RawAttachment {
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
struct Photo {
    #[serde(default)]
    sizes: Vec<PhotoSize>,
}

#[derive(Deserialize)]
struct PhotoSize {
    #[serde(rename = "type", default)]
    kind: String,
    url: String,
    #[serde(default)]
    width: u64,
    #[serde(default)]
    height: u64,
}

#[derive(Deserialize)]
struct Doc {
    id: Option<i64>,
    owner_id: Option<i64>,
    title: Option<String>,
    size: Option<u64>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct AudioMessage {
    link_ogg: Option<String>,
    link_mp3: Option<String>,
}

#[derive(Deserialize)]
struct Sticker {
    sticker_id: Option<i64>,
    #[serde(default)]
    images: Vec<StickerImage>,
}

#[derive(Deserialize)]
struct StickerImage {
    url: String,
    #[serde(default)]
    width: u64,
    #[serde(default)]
    height: u64,
}

#[derive(Deserialize)]
struct MediaRef {
    id: Option<i64>,
    owner_id: Option<i64>,
    title: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct Geo {
    coordinates: Coordinates,
}

#[derive(Deserialize)]
struct Coordinates {
    latitude: f64,
    longitude: f64,
}

fn attachments_of(message: &VkMessage) -> Vec<Attachment> {
    let mut attachments: Vec<Attachment> = message.attachments.iter().map(normalize_attachment).collect();
    if let Some(geo) = &message.geo {
        attachments.push(attachment(
            AttachmentKind::Location,
            format!("{},{}", geo.coordinates.latitude, geo.coordinates.longitude),
        ));
    }
    attachments
}

fn attachment(kind: AttachmentKind, file_ref: String) -> Attachment {
    Attachment { kind, file_ref, mime: None, size: None, name: None }
}

/// One attachment; a body of an unexpected shape degrades to an `Other` reference instead of losing the
/// customer's message.
fn normalize_attachment(raw: &RawAttachment) -> Attachment {
    let body = raw.rest.get(&raw.kind);
    let parsed = |kind: AttachmentKind| -> Option<Attachment> {
        let body = body?;
        match kind {
            AttachmentKind::Image => {
                let photo = Photo::deserialize(body).ok()?;
                largest_photo(&photo).map(|url| attachment(kind, url.to_owned()))
            }
            AttachmentKind::Document => {
                let doc = Doc::deserialize(body).ok()?;
                let file_ref = doc.url.or_else(|| media_id("doc", doc.owner_id, doc.id))?;
                Some(Attachment { kind, file_ref, mime: None, size: doc.size, name: doc.title })
            }
            AttachmentKind::Voice => {
                let voice = AudioMessage::deserialize(body).ok()?;
                let (file_ref, mime) = match (voice.link_ogg, voice.link_mp3) {
                    (Some(ogg), _) => (ogg, "audio/ogg"),
                    (None, Some(mp3)) => (mp3, "audio/mpeg"),
                    (None, None) => return None,
                };
                Some(Attachment { kind, file_ref, mime: Some(mime.to_owned()), size: None, name: None })
            }
            AttachmentKind::Sticker => {
                let sticker = Sticker::deserialize(body).ok()?;
                let largest = sticker.images.iter().max_by_key(|image| image.width * image.height);
                let file_ref = largest
                    .map(|image| image.url.clone())
                    .or_else(|| sticker.sticker_id.map(|id| format!("sticker{id}")))?;
                Some(attachment(kind, file_ref))
            }
            _ => {
                let media = MediaRef::deserialize(body).ok()?;
                let file_ref = media.url.or_else(|| media_id(&raw.kind, media.owner_id, media.id))?;
                Some(Attachment { kind, file_ref, mime: None, size: None, name: media.title })
            }
        }
    };
    let kind = match raw.kind.as_str() {
        "photo" => AttachmentKind::Image,
        "doc" => AttachmentKind::Document,
        "audio_message" => AttachmentKind::Voice,
        "sticker" => AttachmentKind::Sticker,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        _ => AttachmentKind::Other,
    };
    parsed(kind).unwrap_or_else(|| attachment(AttachmentKind::Other, raw.kind.clone()))
}

/// VK's reference to a stored object: `photo123_456`.
fn media_id(kind: &str, owner_id: Option<i64>, id: Option<i64>) -> Option<String> {
    Some(format!("{kind}{}_{}", owner_id?, id?))
}

/// The URL of the largest size. Old photos report 0×0 for every size; their size letters then decide
/// (s < m < x < y < z < w; o, p, q, r are crops).
fn largest_photo(photo: &Photo) -> Option<&str> {
    let rank = |kind: &str| "somxpqryzw".find(kind).unwrap_or(0);
    photo
        .sizes
        .iter()
        .max_by_key(|size| (size.width * size.height, rank(&size.kind)))
        .map(|size| size.url.as_str())
}

/// `random_id` of `messages.send`: VK refuses a second message with the same value, so a retry of the same
/// outgoing message cannot be delivered twice. An int32; the low 31 bits of a SHA-256 keep it positive.
pub fn random_id(idempotency_key: &str) -> i32 {
    let digest = Sha256::digest(idempotency_key.as_bytes());
    let bytes = [digest[28], digest[29], digest[30], digest[31]];
    // 0 would mean "no random_id" to VK.
    ((u32::from_be_bytes(bytes) & 0x7fff_ffff) as i32).max(1)
}

/// The `keyboard` parameter for quick replies: an inline keyboard of `text` buttons (a press sends the
/// label as the customer's message, with a payload that marks it as a button press).
pub fn keyboard(buttons: &[String]) -> Option<String> {
    let buttons: Vec<&String> = buttons.iter().filter(|b| !b.trim().is_empty()).collect();
    if buttons.is_empty() {
        return None;
    }
    if buttons.len() > INLINE_MAX_BUTTONS {
        tracing::warn!(
            given = buttons.len(),
            kept = INLINE_MAX_BUTTONS,
            "VK shows at most 10 inline buttons"
        );
    }
    let buttons = &buttons[..buttons.len().min(INLINE_MAX_BUTTONS)];
    let per_row = buttons.len().div_ceil(INLINE_MAX_ROWS);
    let rows: Vec<Value> = buttons
        .chunks(per_row)
        .map(|row| {
            let cells: Vec<Value> = row
                .iter()
                .map(|label| {
                    let label: String = label.chars().take(LABEL_MAX_CHARS).collect();
                    json!({"action": {"type": "text", "label": label, "payload": button_payload(&label)}})
                })
                .collect();
            Value::Array(cells)
        })
        .collect();
    Some(json!({"inline": true, "buttons": rows}).to_string())
}

/// A JSON string of at most 255 bytes naming the button.
fn button_payload(label: &str) -> String {
    let mut label = label.to_owned();
    loop {
        let payload = json!({ "button": label }).to_string();
        if payload.len() <= PAYLOAD_MAX_BYTES || label.is_empty() {
            return payload;
        }
        label.pop();
    }
}

/// A community key is sent in a form body, never in a URL; this only refuses what cannot be a key.
pub fn is_plausible_token(token: &str) -> bool {
    (16..=4096).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_graphic())
}

/// The community as `groups.getById` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Community {
    pub id: i64,
    pub name: String,
    pub screen_name: Option<String>,
    /// 0 when the community's messages are switched off.
    pub can_message: Option<i64>,
    /// `deleted` or `banned`.
    pub deactivated: Option<String>,
}

/// A community the user administers, as `groups.get` (`extended=1`) reports it.
pub use crate::ports::oauth::AdminCommunity;

/// The community access key in the answer of a community-token code exchange: `access_token_<id>`, or
/// (newer answers) `{"groups": [{"group_id", "access_token"}]}`.
pub fn community_token(answer: &Map<String, Value>, group_id: i64) -> Option<Secret> {
    let flat = answer.get(&format!("access_token_{group_id}")).and_then(Value::as_str);
    let listed = || {
        answer.get("groups")?.as_array()?.iter().find_map(|group| {
            (group.get("group_id")?.as_i64()? == group_id).then(|| group.get("access_token")?.as_str())?
        })
    };
    flat.or_else(listed).filter(|token| !token.is_empty()).map(Secret::new)
}

/// One of the community's Callback API servers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallbackServer {
    pub id: i64,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub secret_key: String,
}

/// A failed call: the VK error code, when VK answered with one, for callers that tell codes apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VkFailure {
    pub code: Option<i64>,
    pub error: ProviderError,
}

impl From<VkFailure> for ProviderError {
    fn from(failure: VkFailure) -> Self {
        failure.error
    }
}

impl From<ProviderError> for VkFailure {
    fn from(error: ProviderError) -> Self {
        VkFailure { code: None, error }
    }
}

/// Calls the VK API with a community key. The key is passed per call: one process serves many communities.
#[derive(Debug, Clone)]
pub struct VkClient {
    http: reqwest::Client,
    base: String,
    oauth_base: String,
}

impl VkClient {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        Self { http, base, oauth_base: DEFAULT_OAUTH_BASE.to_owned() }
    }

    /// Where the OAuth authorize and code-exchange endpoints are (`https://oauth.vk.com`).
    pub fn with_oauth_base(mut self, oauth_base: impl Into<String>) -> Self {
        self.oauth_base = oauth_base.into().trim_end_matches('/').to_owned();
        self
    }

    /// `VK_API_BASE` and `VK_OAUTH_BASE` point the client at fakes (local runner, tests).
    pub fn from_env(http: reqwest::Client) -> Self {
        let base = super::base_url_from_env("VK_API_BASE", DEFAULT_API_BASE);
        let oauth_base = super::base_url_from_env("VK_OAUTH_BASE", DEFAULT_OAUTH_BASE);
        Self::new(http, base).with_oauth_base(oauth_base)
    }

    /// The OAuth authorize URL the admin's browser is sent to. Without `group_id`: the user flow (scope
    /// `groups`), whose token lists the communities the user administers. With it: the community-token
    /// flow (scope `messages,manage`), whose code exchanges for that community's access key.
    pub fn authorize_url(
        &self,
        client_id: &str,
        redirect_uri: &str,
        state: &str,
        group_id: Option<i64>,
    ) -> AppResult<String> {
        let mut params = vec![("client_id", client_id.to_owned()), ("redirect_uri", redirect_uri.to_owned())];
        match group_id {
            Some(id) => {
                params.push(("group_ids", id.to_string()));
                params.push(("scope", "messages,manage".to_owned()));
            }
            None => params.push(("scope", "groups".to_owned())),
        }
        params.push(("response_type", "code".to_owned()));
        params.push(("v", API_VERSION.to_owned()));
        params.push(("state", state.to_owned()));
        reqwest::Url::parse_with_params(&format!("{}/authorize", self.oauth_base), &params)
            .map(String::from)
            .map_err(|_| Error::Internal("VK_OAUTH_BASE is not a URL".into()))
    }

    /// Exchanges an OAuth code at `<oauth>/access_token`. VK's own refusals (`{"error",
    /// "error_description"}`: an expired or used code, a wrong secret or redirect URI) are
    /// `ProviderError::Rejected` with VK's description; the answer is the token object otherwise.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &Secret,
        redirect_uri: &str,
        code: &Secret,
    ) -> Result<Map<String, Value>, ProviderError> {
        let url = format!("{}/access_token", self.oauth_base);
        let query = [
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
            ("redirect_uri", redirect_uri),
            ("code", code.expose()),
        ];
        let url = reqwest::Url::parse_with_params(&url, &query)
            .map_err(|_| ProviderError::Unavailable("VK_OAUTH_BASE is not a URL".into()))?;
        let response = self.http.get(url).send().await.map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?;
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ProviderError::Unavailable(format!("VK OAuth: HTTP {}", status.as_u16())));
        }
        let body: Map<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|_| ProviderError::Unavailable("unreadable answer from VK OAuth".into()))?;
        if let Some(error) = body.get("error") {
            let description = body.get("error_description").and_then(Value::as_str).unwrap_or_default();
            let error = error.as_str().unwrap_or("error");
            let reason = client_secret.redacted(&code.redacted(&format!("{error}: {description}")));
            tracing::warn!(status = status.as_u16(), %reason, "vk oauth code exchange refused");
            return Err(ProviderError::Rejected(reason));
        }
        if !status.is_success() {
            return Err(ProviderError::Rejected(format!("VK OAuth: HTTP {}", status.as_u16())));
        }
        Ok(body)
    }

    /// The communities the user of a user token administers (`groups.get`, `filter=admin`).
    pub async fn admin_communities(&self, user_token: &Secret) -> Result<Vec<AdminCommunity>, VkFailure> {
        #[derive(Deserialize)]
        struct Groups {
            #[serde(default)]
            items: Vec<AdminCommunity>,
        }
        let params = [("filter", "admin".to_owned()), ("extended", "1".to_owned())];
        let groups: Groups = self.call(user_token, "groups.get", &params).await?;
        Ok(groups.items)
    }

    pub async fn community(&self, token: &Secret, group_id: i64) -> Result<Community, VkFailure> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum ById {
            // API ≥ 5.139: {"groups": [...], "profiles": [...]}.
            Object { groups: Vec<Community> },
            List(Vec<Community>),
        }
        let params = [("group_id", group_id.to_string()), ("fields", "can_message".to_owned())];
        let groups = match self.call::<ById>(token, "groups.getById", &params).await? {
            ById::Object { groups } | ById::List(groups) => groups,
        };
        groups.into_iter().next().ok_or_else(|| VkFailure {
            code: None,
            error: ProviderError::Rejected("groups.getById returned no community".into()),
        })
    }

    pub async fn confirmation_code(&self, token: &Secret, group_id: i64) -> Result<Secret, VkFailure> {
        #[derive(Deserialize)]
        struct Code {
            code: String,
        }
        let params = [("group_id", group_id.to_string())];
        let code: Code = self.call(token, "groups.getCallbackConfirmationCode", &params).await?;
        Ok(Secret::new(code.code))
    }

    pub async fn callback_servers(
        &self,
        token: &Secret,
        group_id: i64,
    ) -> Result<Vec<CallbackServer>, VkFailure> {
        #[derive(Deserialize)]
        struct Servers {
            #[serde(default)]
            items: Vec<CallbackServer>,
        }
        let params = [("group_id", group_id.to_string())];
        let servers: Servers = self.call(token, "groups.getCallbackServers", &params).await?;
        Ok(servers.items)
    }

    /// Adds our server; VK then sends it the `confirmation` request.
    pub async fn add_callback_server(
        &self,
        token: &Secret,
        group_id: i64,
        url: &str,
        secret_key: &Secret,
    ) -> Result<i64, VkFailure> {
        #[derive(Deserialize)]
        struct Added {
            server_id: i64,
        }
        let params = [
            ("group_id", group_id.to_string()),
            ("url", url.to_owned()),
            ("title", SERVER_TITLE.to_owned()),
            ("secret_key", secret_key.expose().to_owned()),
        ];
        let added: Added = self.call(token, "groups.addCallbackServer", &params).await?;
        Ok(added.server_id)
    }

    /// Subscribes the server to incoming messages, in our API version.
    pub async fn set_callback_settings(
        &self,
        token: &Secret,
        group_id: i64,
        server_id: i64,
    ) -> Result<(), VkFailure> {
        let params = [
            ("group_id", group_id.to_string()),
            ("server_id", server_id.to_string()),
            ("api_version", API_VERSION.to_owned()),
            ("message_new", "1".to_owned()),
        ];
        self.call::<Value>(token, "groups.setCallbackSettings", &params).await.map(drop)
    }

    pub async fn delete_callback_server(
        &self,
        token: &Secret,
        group_id: i64,
        server_id: i64,
    ) -> Result<(), VkFailure> {
        let params = [("group_id", group_id.to_string()), ("server_id", server_id.to_string())];
        self.call::<Value>(token, "groups.deleteCallbackServer", &params).await.map(drop)
    }

    pub async fn send_message(&self, token: &Secret, out: &Outgoing) -> Result<Sent, ProviderError> {
        let peer_id = out
            .customer_id
            .parse::<i64>()
            .map_err(|_| ProviderError::Rejected(format!("{:?} is not a VK peer id", out.customer_id)))?;
        let mut params = vec![
            ("peer_id", peer_id.to_string()),
            ("message", out.text.clone()),
            ("random_id", random_id(&out.idempotency_key).to_string()),
        ];
        if let Some(keyboard) = keyboard(&out.buttons) {
            params.push(("keyboard", keyboard));
        }
        let response: Value = self.call(token, "messages.send", &params).await?;
        // The message id; an array of {peer_id, message_id, ...} when sent with `peer_ids`.
        let id = response
            .as_i64()
            .or_else(|| response.get("message_id").and_then(Value::as_i64))
            .or_else(|| response.get(0).and_then(|first| first.get("message_id")).and_then(Value::as_i64));
        Ok(Sent { provider_message_id: id.filter(|id| *id > 0).map(|id| id.to_string()) })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        token: &Secret,
        method: &str,
        params: &[(&str, String)],
    ) -> Result<T, VkFailure> {
        let url = format!("{}/method/{method}", self.base);
        let mut form: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // In the body, not the URL: request logs and reqwest's errors never see the key.
        form.push(("access_token", token.expose()));
        form.push(("v", API_VERSION));
        let response = self.http.post(url).form(&form).send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after_header(response.headers());
        let bytes = response.bytes().await.map_err(transport_error)?;
        let outcome = interpret(status, &bytes, retry_after, token);
        if let Err(failure) = &outcome {
            let (code, error) = (failure.code, &failure.error);
            tracing::warn!(method, status = status.as_u16(), ?code, %error, "vk call failed");
        }
        outcome
    }
}

#[derive(Deserialize)]
struct ApiEnvelope {
    response: Option<Value>,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    error_code: i64,
    #[serde(default)]
    error_msg: String,
}

/// The one place a VK answer becomes a result or an error. VK reports errors as HTTP 200 with an `error`
/// object; HTTP statuses other than 200 come from the infrastructure in front of it.
fn interpret<T: DeserializeOwned>(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    token: &Secret,
) -> Result<T, VkFailure> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = retry_after.unwrap_or(TOO_MANY_REQUESTS_RETRY);
        return Err(ProviderError::RateLimited { retry_after }.into());
    }
    if status.is_server_error() {
        return Err(ProviderError::Unavailable(format!("HTTP {}", status.as_u16())).into());
    }
    if !status.is_success() {
        return Err(ProviderError::Rejected(format!("HTTP {}", status.as_u16())).into());
    }
    match serde_json::from_slice::<ApiEnvelope>(body) {
        Ok(ApiEnvelope { error: Some(error), .. }) => {
            let message = token.redacted(&error.error_msg);
            Err(VkFailure { code: Some(error.error_code), error: api_error(error.error_code, message) })
        }
        Ok(ApiEnvelope { response: Some(response), .. }) => serde_json::from_value(response)
            .map_err(|_| ProviderError::Unavailable("unexpected response from VK".into()).into()),
        _ => Err(ProviderError::Unavailable("unreadable answer from VK".into()).into()),
    }
}

fn api_error(code: i64, message: String) -> ProviderError {
    match code {
        6 => ProviderError::RateLimited { retry_after: TOO_MANY_REQUESTS_RETRY },
        9 => ProviderError::RateLimited { retry_after: FLOOD_CONTROL_RETRY },
        29 => ProviderError::RateLimited { retry_after: QUOTA_RETRY },
        // User authorization failed; application authorization failed; access token has expired.
        5 | 28 | 1117 => ProviderError::InvalidCredentials(INVALID_TOKEN.into()),
        // Unknown error; internal server error.
        1 | 10 => ProviderError::Unavailable(format!("VK error {code}: {message}")),
        _ => ProviderError::Rejected(format!("VK error {code}: {message}")),
    }
}

/// The community id from the admin's input: `123`, `"123"`, `"-123"`, `"club123"` or `"public123"`.
fn group_id_credential(credentials: &Map<String, Value>) -> AppResult<i64> {
    let invalid = || {
        Error::rule(
            "invalid_group_id",
            "credentials.group_id",
            "the community's numeric id is required / нужен числовой id сообщества",
        )
    };
    let raw = match credentials.get(GROUP_ID) {
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::String(text)) => text.trim().to_owned(),
        _ => return Err(invalid()),
    };
    let digits = ["club", "public", "-"].iter().find_map(|prefix| raw.strip_prefix(prefix)).unwrap_or(&raw);
    match digits.parse::<i64>() {
        Ok(id) if id > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(invalid()),
    }
}

fn stored_group_id(secrets: &ChannelSecrets) -> AppResult<i64> {
    secrets
        .require(GROUP_ID)?
        .expose()
        .parse::<i64>()
        .map_err(|_| Error::Internal("a VK channel's group_id is not a number".into()))
}

fn invalid_token() -> Error {
    Error::rule("invalid_access_token", "credentials.access_token", INVALID_TOKEN)
}

/// Errors of the connect step: what the admin can fix is a 422 naming the credential.
fn connect_error(failure: VkFailure) -> Error {
    match (failure.code, failure.error) {
        (_, ProviderError::InvalidCredentials(_)) => invalid_token(),
        // Invalid parameter, invalid group id, unknown group.
        (Some(100 | 125 | 40), _) => {
            Error::rule("community_not_found", "credentials.group_id", NO_SUCH_COMMUNITY)
        }
        // Permission denied, access denied, group authorization failed, access to group denied.
        (Some(7 | 15 | 27 | 203), _) => {
            Error::rule("insufficient_rights", "credentials.access_token", NOT_THIS_COMMUNITY)
        }
        (_, other) => other.into(),
    }
}

#[async_trait]
impl ChannelProvider for VkClient {
    async fn connect(&self, credentials: &Map<String, Value>) -> AppResult<Connection> {
        let token = required_credential(credentials, ACCESS_TOKEN)?;
        if !is_plausible_token(token.expose()) {
            return Err(invalid_token());
        }
        let group_id = group_id_credential(credentials)?;
        let community = self.community(&token, group_id).await.map_err(connect_error)?;
        if community.id != group_id || community.deactivated.is_some() {
            return Err(Error::rule("community_not_found", "credentials.group_id", NO_SUCH_COMMUNITY));
        }
        if community.can_message == Some(0) {
            return Err(Error::rule("messages_disabled", "credentials.group_id", MESSAGES_OFF));
        }
        // Needs the key's "manage" right, and fails for a key of another community: it proves both.
        let code = self.confirmation_code(&token, group_id).await.map_err(connect_error)?;
        Ok(Connection {
            account: Account { id: group_id.to_string(), name: community.name },
            masked: [(ACCESS_TOKEN.to_owned(), token.masked()), (GROUP_ID.to_owned(), group_id.to_string())]
                .into(),
            secrets: ChannelSecrets::default()
                .with(ACCESS_TOKEN, token)
                .with(GROUP_ID, Secret::new(group_id.to_string()))
                .with(CONFIRMATION_CODE, code),
        })
    }

    async fn register_webhook(&self, secrets: &ChannelSecrets, url: &str) -> AppResult<()> {
        let token = secrets.require(ACCESS_TOKEN)?;
        let secret_key = secrets.require(ChannelSecrets::WEBHOOK_SECRET)?;
        let group_id = stored_group_id(secrets)?;
        // A connect that failed after adding the server leaves it behind; VK allows only 10 per community.
        for server in self.callback_servers(token, group_id).await.map_err(connect_error)? {
            if server.url == url {
                self.delete_callback_server(token, group_id, server.id).await.map_err(connect_error)?;
            }
        }
        let server_id = match self.add_callback_server(token, group_id, url, secret_key).await {
            Ok(id) => id,
            // Servers number limit is reached.
            Err(VkFailure { code: Some(2000), .. }) => {
                return Err(Error::rule(
                    "callback_servers_limit",
                    "credentials.group_id",
                    "the community already has 10 Callback API servers: remove one (Manage → API → \
                     Callback API) / у сообщества уже 10 серверов Callback API: удалите один (Управление → \
                     Работа с API)",
                ));
            }
            Err(other) => return Err(connect_error(other)),
        };
        self.set_callback_settings(token, group_id, server_id).await.map_err(connect_error)
    }

    /// Finds our server by its secret key (unique to the channel; the URL is not among the credentials).
    async fn remove_webhook(&self, secrets: &ChannelSecrets) -> AppResult<()> {
        let token = secrets.require(ACCESS_TOKEN)?;
        let secret_key = secrets.require(ChannelSecrets::WEBHOOK_SECRET)?;
        let group_id = stored_group_id(secrets)?;
        let servers = self.callback_servers(token, group_id).await.map_err(ProviderError::from)?;
        for server in servers.iter().filter(|s| !s.secret_key.is_empty() && secret_key.matches(&s.secret_key))
        {
            self.delete_callback_server(token, group_id, server.id).await.map_err(ProviderError::from)?;
        }
        Ok(())
    }

    fn receive(&self, secrets: &ChannelSecrets, request: &WebhookRequest) -> Result<Delivery, WebhookError> {
        let event = parse_callback(&request.body)?;
        // The secret alone does not say which community an event is about.
        if !secrets.for_verifying(GROUP_ID)?.matches(&event.group_id.to_string()) {
            return Err(WebhookError::Unauthorized);
        }
        let secret = secrets.for_verifying(ChannelSecrets::WEBHOOK_SECRET)?;
        if event.kind == "confirmation" {
            // VK adds the secret to the confirmation request once the server has one; the code itself only
            // lets VK confirm this very URL.
            if event.secret.is_some() {
                verify_secret(event.secret.as_deref(), secret)?;
            }
            let code = secrets.for_verifying(CONFIRMATION_CODE)?;
            return Ok(Delivery { reply: Reply::text(code.expose()), ..Delivery::default() });
        }
        verify_secret(event.secret.as_deref(), secret)?;
        // Anything but the bare `ok` makes VK retry the event.
        let reply = Reply::text("ok");
        let messages = match event.kind.as_str() {
            "message_new" => normalize_message_new(&event)?.into_iter().collect(),
            // message_reply (our own messages echoed), typing, read receipts, ...: not used.
            _ => Vec::new(),
        };
        Ok(Delivery { messages, statuses: Vec::new(), reply })
    }

    async fn send(&self, secrets: &ChannelSecrets, out: &Outgoing) -> Result<Sent, ProviderError> {
        let token = secrets
            .get(ACCESS_TOKEN)
            .ok_or_else(|| ProviderError::InvalidCredentials("no community access key".into()))?;
        self.send_message(token, out).await
    }

    /// VK drops a second `messages.send` with the same `random_id`, which derives from the idempotency key.
    fn idempotent_sends(&self) -> bool {
        true
    }
}

#[async_trait]
impl VkOAuth for VkClient {
    fn authorize_url(
        &self,
        client_id: &str,
        redirect_uri: &str,
        state: &str,
        group_id: Option<i64>,
    ) -> AppResult<String> {
        VkClient::authorize_url(self, client_id, redirect_uri, state, group_id)
    }

    async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &Secret,
        redirect_uri: &str,
        code: &Secret,
    ) -> Result<Map<String, Value>, ProviderError> {
        VkClient::exchange_code(self, client_id, client_secret, redirect_uri, code).await
    }

    async fn admin_communities(&self, user_token: &Secret) -> Result<Vec<AdminCommunity>, ProviderError> {
        VkClient::admin_communities(self, user_token).await.map_err(|failure| failure.error)
    }

    fn community_token(&self, answer: &Map<String, Value>, group_id: i64) -> Option<Secret> {
        community_token(answer, group_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    const TOKEN: &str = "vk1.a.communityKeySecretValue_0123456789";
    const HOOK_SECRET: &str = "HookSecret0123456789abcdefghijklmnopqrstuvwxyzABCD";

    /// A Bots Long Poll item has the shape of a Callback API body minus `secret`: add it, as VK does for
    /// servers with a secret key.
    fn longpoll_as_callback(name: &str, secret: &str) -> Vec<u8> {
        let poll: Value = serde_json::from_slice(&fixture(name)).unwrap();
        let mut event = poll["updates"][0].clone();
        event["secret"] = json!(secret);
        serde_json::to_vec(&event).unwrap()
    }

    fn with_secret(body: &[u8], secret: &str) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(body).unwrap();
        value["secret"] = json!(secret);
        serde_json::to_vec(&value).unwrap()
    }

    fn secrets(group_id: i64) -> ChannelSecrets {
        ChannelSecrets::default()
            .with(ACCESS_TOKEN, Secret::new(TOKEN))
            .with(GROUP_ID, Secret::new(group_id.to_string()))
            .with(CONFIRMATION_CODE, Secret::new("693d0ba9"))
            .with(ChannelSecrets::WEBHOOK_SECRET, Secret::new(HOOK_SECRET))
    }

    fn request(body: Vec<u8>) -> WebhookRequest {
        WebhookRequest { method: "POST".into(), body, ..WebhookRequest::default() }
    }

    fn client() -> VkClient {
        VkClient::new(reqwest::Client::new(), "http://unused.invalid")
    }

    fn receive(group_id: i64, body: Vec<u8>) -> Result<Delivery, WebhookError> {
        client().receive(&secrets(group_id), &request(body))
    }

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn parses_the_text_callback_fixture() {
        let body = with_secret(&fixture("vk_message_new_text_callback.json"), HOOK_SECRET);
        let delivery = receive(214167102, body).unwrap();
        assert_eq!(delivery.reply, Reply::text("ok"));
        assert!(delivery.statuses.is_empty());
        assert_eq!(
            delivery.messages,
            vec![InboundMessage {
                dedup_key: "da1b15e9f6d0c3c8a0c937e048cdd3e2b43794d0".into(),
                kind: InboundKind::Message,
                customer: Customer { id: "2000000066".into(), name: None },
                provider_message_id: Some("2000000066_2169".into()),
                text: Some("Ок".into()),
                attachments: vec![],
                sent_at: ts(1683278670),
            }]
        );
    }

    #[test]
    fn parses_the_photo_fixture_with_the_largest_size() {
        let body = longpoll_as_callback("vk_message_new_photo_longpoll.json", HOOK_SECRET);
        let delivery = receive(183287114, body).unwrap();
        assert_eq!(delivery.reply, Reply::text("ok"));
        assert_eq!(
            delivery.messages,
            vec![InboundMessage {
                dedup_key: "2bc491893831d3b0d801f2bc122af6697aa4369a".into(),
                kind: InboundKind::Message,
                customer: Customer { id: "2000000279".into(), name: None },
                provider_message_id: Some("2000000279_241661".into()),
                text: Some("Чувак могёт ракетами кидаться".into()),
                attachments: vec![Attachment {
                    kind: AttachmentKind::Image,
                    file_ref: "https://sun9-3.userapi.com/c857236/v857236595/124a59/nJXapHnUbeo.jpg".into(),
                    mime: None,
                    size: None,
                    name: None,
                }],
                sent_at: ts(1584566394),
            }]
        );
    }

    #[test]
    fn parses_the_voice_fixture() {
        let body = longpoll_as_callback("vk_message_new_voice_longpoll.json", HOOK_SECRET);
        let delivery = receive(183287114, body).unwrap();
        assert_eq!(
            delivery.messages,
            vec![InboundMessage {
                dedup_key: "ccb98c9b065a00f21971a50830751a274f59f515".into(),
                kind: InboundKind::Message,
                customer: Customer { id: "2000000053".into(), name: None },
                provider_message_id: Some("2000000053_518107".into()),
                text: None,
                attachments: vec![Attachment {
                    kind: AttachmentKind::Voice,
                    file_ref: "https://psv4.userapi.com/c852536//u526252082/audiomsg/d12/c02eb6b2fb.ogg"
                        .into(),
                    mime: Some("audio/ogg".into()),
                    size: None,
                    name: None,
                }],
                sent_at: ts(1584565364),
            }]
        );
    }

    #[test]
    fn answers_the_confirmation_fixture_with_the_code() {
        let mut secrets = secrets(123456);
        // The fixture carries the secret of the test it was taken from.
        secrets = secrets.with(ChannelSecrets::WEBHOOK_SECRET, Secret::new("secret_123456"));
        let delivery = client().receive(&secrets, &request(fixture("vk_confirmation.json"))).unwrap();
        assert_eq!(delivery.reply, Reply::text("693d0ba9"));
        assert_eq!(delivery.reply.content_type, "text/plain; charset=utf-8");
        assert!(delivery.messages.is_empty() && delivery.statuses.is_empty());
        // Without a secret (a server set up before it had one) the code is still given to the community.
        let bare = br#"{"type":"confirmation","group_id":123456}"#.to_vec();
        assert_eq!(client().receive(&secrets, &request(bare)).unwrap().reply, Reply::text("693d0ba9"));
    }

    #[test]
    fn refuses_a_confirmation_for_another_community_or_with_a_wrong_secret() {
        let secrets = secrets(123456);
        for body in [
            br#"{"type":"confirmation","group_id":654321}"#.to_vec(),
            br#"{"type":"confirmation","group_id":123456,"secret":"nope"}"#.to_vec(),
        ] {
            assert_eq!(client().receive(&secrets, &request(body)), Err(WebhookError::Unauthorized));
        }
    }

    #[test]
    fn refuses_wrong_missing_or_foreign_secrets() {
        let fixture = fixture("vk_message_new_text_callback.json");
        let wrong = with_secret(&fixture, "HookSecret0123456789abcdefghijklmnopqrstuvwxyzABCE");
        assert_eq!(receive(214167102, wrong), Err(WebhookError::Unauthorized));
        assert_eq!(receive(214167102, fixture.clone()), Err(WebhookError::Unauthorized));
        assert_eq!(receive(214167102, with_secret(&fixture, "")), Err(WebhookError::Unauthorized));
        // The right secret, but the event is about another community.
        assert_eq!(receive(1, with_secret(&fixture, HOOK_SECRET)), Err(WebhookError::Unauthorized));
        // A channel without a webhook secret accepts nothing.
        let bare = secrets(214167102).with(ChannelSecrets::WEBHOOK_SECRET, Secret::new(""));
        let body = with_secret(&fixture, "");
        assert_eq!(client().receive(&bare, &request(body)), Err(WebhookError::Unauthorized));
    }

    #[test]
    fn verifies_secrets() {
        let expected = Secret::new(HOOK_SECRET);
        assert_eq!(verify_secret(Some(HOOK_SECRET), &expected), Ok(()));
        assert_eq!(verify_secret(Some("x"), &expected), Err(WebhookError::Unauthorized));
        assert_eq!(verify_secret(None, &expected), Err(WebhookError::Unauthorized));
        assert_eq!(verify_secret(Some(""), &Secret::new("")), Err(WebhookError::Unauthorized));
    }

    #[test]
    fn acknowledges_events_it_does_not_use() {
        for kind in ["message_reply", "message_typing_state", "wall_post_new", "message_edit", "group_join"] {
            let body = json!({"type": kind, "group_id": 42, "event_id": "e1", "secret": HOOK_SECRET,
                "object": {"id": 1}});
            let delivery = receive(42, serde_json::to_vec(&body).unwrap()).unwrap();
            assert_eq!(delivery, Delivery { reply: Reply::text("ok"), ..Delivery::default() }, "{kind}");
        }
        // A service message in a chat (someone joined): nothing to show.
        let body = json!({"type": "message_new", "group_id": 42, "event_id": "e2", "secret": HOOK_SECRET,
            "object": {"message": {"id": 0, "date": 1, "peer_id": 2000000001, "from_id": 5, "text": "",
            "conversation_message_id": 7, "action": {"type": "chat_invite_user", "member_id": 5}}}});
        let delivery = receive(42, serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(delivery, Delivery { reply: Reply::text("ok"), ..Delivery::default() });
    }

    #[test]
    fn refuses_malformed_bodies() {
        let bodies: [&[u8]; 7] = [
            b"not json",
            b"",
            br#"["message_new", 42]"#,
            br#"{"group_id": 42, "secret": "x"}"#,
            br#"{"type": "message_new", "group_id": "42"}"#,
            br#"{"type": "message_new", "group_id": 42, "event_id": "e", "object": {"message": {"text": "x"}}}"#,
            br#"{"type": "message_new", "group_id": 42, "event_id": "e"}"#,
        ];
        for body in bodies {
            // The secret is checked before the message is read: add it where an envelope exists.
            let body = match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(mut map)) => {
                    map.insert("secret".into(), json!(HOOK_SECRET));
                    serde_json::to_vec(&map).unwrap()
                }
                _ => body.to_vec(),
            };
            match receive(42, body.clone()) {
                Err(WebhookError::Malformed { provider: "vk", .. }) => {}
                other => panic!("{}: expected Malformed, got {other:?}", String::from_utf8_lossy(&body)),
            }
        }
    }

    #[test]
    fn a_private_dialog_with_doc_sticker_geo_and_a_button_payload() {
        let body = json!({"type": "message_new", "group_id": 42, "secret": HOOK_SECRET, "object": {"message": {
            "id": 9001, "date": 1700000000, "peer_id": 612444319, "from_id": 612444319, "text": "Да",
            "conversation_message_id": 12, "payload": "{\"button\":\"Да\"}",
            "geo": {"type": "point", "coordinates": {"latitude": 55.75, "longitude": 37.6175}},
            "attachments": [
                {"type": "doc", "doc": {"id": 5, "owner_id": 612444319, "title": "invoice.pdf", "size": 1234,
                    "ext": "pdf", "url": "https://vk.com/doc612444319_5"}},
                {"type": "sticker", "sticker": {"product_id": 1, "sticker_id": 77, "images": [
                    {"url": "https://vk.com/s/64.png", "width": 64, "height": 64},
                    {"url": "https://vk.com/s/512.png", "width": 512, "height": 512}]}},
                {"type": "video", "video": {"id": 3, "owner_id": -42, "title": "clip"}},
                {"type": "wall", "wall": {"id": 8, "owner_id": -42}},
                {"type": "photo", "photo": "unexpected shape"}
            ]}, "client_info": {}}});
        let delivery = receive(42, serde_json::to_vec(&body).unwrap()).unwrap();
        let message = &delivery.messages[0];
        // No event_id: the conversation's counter makes the key.
        assert_eq!(message.dedup_key, "612444319:12");
        assert_eq!(message.kind, InboundKind::ButtonReply);
        assert_eq!(message.provider_message_id.as_deref(), Some("9001"));
        assert_eq!(message.text.as_deref(), Some("Да"));
        let refs: Vec<(AttachmentKind, &str)> =
            message.attachments.iter().map(|a| (a.kind, a.file_ref.as_str())).collect();
        assert_eq!(
            refs,
            vec![
                (AttachmentKind::Document, "https://vk.com/doc612444319_5"),
                (AttachmentKind::Sticker, "https://vk.com/s/512.png"),
                (AttachmentKind::Video, "video-42_3"),
                (AttachmentKind::Other, "wall-42_8"),
                (AttachmentKind::Other, "photo"),
                (AttachmentKind::Location, "55.75,37.6175"),
            ]
        );
        assert_eq!(message.attachments[0].name.as_deref(), Some("invoice.pdf"));
        assert_eq!(message.attachments[0].size, Some(1234));
    }

    #[test]
    fn random_id_is_a_stable_positive_int32_per_key() {
        let a = random_id("0190a6a0-0000-7000-8000-000000000001");
        assert_eq!(a, random_id("0190a6a0-0000-7000-8000-000000000001"));
        assert_ne!(a, random_id("0190a6a0-0000-7000-8000-000000000002"));
        for key in ["", "k", "another key", "0190a6a0-0000-7000-8000-000000000003"] {
            assert!(random_id(key) > 0, "{key}");
        }
    }

    #[test]
    fn keyboards_are_inline_text_buttons_within_vks_limits() {
        assert_eq!(keyboard(&[]), None);
        let three: Vec<String> = ["Yes", "No", "Call me"].map(String::from).to_vec();
        let parsed: Value = serde_json::from_str(&keyboard(&three).unwrap()).unwrap();
        assert_eq!(
            parsed,
            json!({"inline": true, "buttons": [
                [{"action": {"type": "text", "label": "Yes", "payload": "{\"button\":\"Yes\"}"}}],
                [{"action": {"type": "text", "label": "No", "payload": "{\"button\":\"No\"}"}}],
                [{"action": {"type": "text", "label": "Call me", "payload": "{\"button\":\"Call me\"}"}}],
            ]})
        );
        let many: Vec<String> = (1..=12).map(|n| format!("Option {n}")).collect();
        let parsed: Value = serde_json::from_str(&keyboard(&many).unwrap()).unwrap();
        let rows = parsed["buttons"].as_array().unwrap();
        assert!(rows.len() <= INLINE_MAX_ROWS);
        assert_eq!(rows.iter().map(|r| r.as_array().unwrap().len()).sum::<usize>(), INLINE_MAX_BUTTONS);
        let long = vec!["д".repeat(200)];
        let parsed: Value = serde_json::from_str(&keyboard(&long).unwrap()).unwrap();
        let action = &parsed["buttons"][0][0]["action"];
        assert_eq!(action["label"].as_str().unwrap().chars().count(), LABEL_MAX_CHARS);
        assert!(action["payload"].as_str().unwrap().len() <= PAYLOAD_MAX_BYTES);
    }

    #[test]
    fn reads_group_ids_in_every_usual_form() {
        let read = |value: Value| group_id_credential(json!({ "group_id": value }).as_object().unwrap());
        for good in
            [json!(123), json!("123"), json!(" club123 "), json!("public123"), json!("-123"), json!(-123)]
        {
            assert_eq!(read(good.clone()).ok(), Some(123), "{good}");
        }
        for bad in [
            json!(0),
            json!(1.5),
            json!("-0"),
            json!("abc"),
            json!("12a"),
            json!(""),
            json!(null),
            json!("--1"),
        ] {
            let error = read(bad.clone()).unwrap_err();
            assert!(
                matches!(&error, Error::Rule(r) if r.field == "credentials.group_id"),
                "{bad}: {error:?}"
            );
        }
    }

    // --- client, against a fake VK API ---

    fn token() -> Secret {
        Secret::new(TOKEN)
    }

    /// The form fields of a request (VK takes form-encoded parameters).
    fn form(request: &Request) -> Map<String, Value> {
        let body = String::from_utf8_lossy(&request.body);
        let url = reqwest::Url::parse(&format!("http://form.invalid/?{body}")).unwrap();
        url.query_pairs().map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect()
    }

    /// Matches a form-encoded request having these fields (and maybe others).
    struct FormHas(Vec<(&'static str, String)>);

    impl wiremock::Match for FormHas {
        fn matches(&self, request: &Request) -> bool {
            let form = form(request);
            self.0.iter().all(|(k, v)| form.get(*k).and_then(Value::as_str) == Some(v.as_str()))
        }
    }

    fn answer(body: Value) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(body)
    }

    async fn respond(server: &MockServer, vk_method: &str, template: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path(format!("/method/{vk_method}")))
            .and(FormHas(vec![("access_token", TOKEN.into()), ("v", API_VERSION.into())]))
            .respond_with(template)
            .mount(server)
            .await;
    }

    fn vk_error(code: i64, message: &str) -> ResponseTemplate {
        answer(json!({"error": {"error_code": code, "error_msg": message, "request_params": []}}))
    }

    fn assert_secret_hidden(error: &impl std::fmt::Debug, display: &str) {
        let debug = format!("{error:?}");
        for secret in [TOKEN, HOOK_SECRET, "693d0ba9"] {
            assert!(!display.contains(secret), "Display leaks a secret: {display}");
            assert!(!debug.contains(secret), "Debug leaks a secret: {debug}");
        }
    }

    fn credentials(group_id: Value) -> Map<String, Value> {
        json!({"access_token": TOKEN, "group_id": group_id}).as_object().unwrap().clone()
    }

    fn community(id: i64, can_message: i64) -> Value {
        json!({"response": {"groups": [{"id": id, "name": "Acme Support", "screen_name": "acme",
            "is_closed": 0, "type": "group", "can_message": can_message}], "profiles": []}})
    }

    #[tokio::test]
    async fn connect_names_the_community_and_keeps_its_confirmation_code() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/method/groups.getById"))
            .and(FormHas(vec![("group_id", "214167102".into()), ("fields", "can_message".into())]))
            .respond_with(answer(community(214167102, 1)))
            .expect(1)
            .mount(&server)
            .await;
        respond(
            &server,
            "groups.getCallbackConfirmationCode",
            answer(json!({"response": {"code": "693d0ba9"}})),
        )
        .await;
        let client = VkClient::new(reqwest::Client::new(), format!("{}/", server.uri()));
        let connection = client.connect(&credentials(json!("club214167102"))).await.unwrap();
        assert_eq!(connection.account, Account { id: "214167102".into(), name: "Acme Support".into() });
        assert_eq!(connection.secrets.get(ACCESS_TOKEN).map(Secret::expose), Some(TOKEN));
        assert_eq!(connection.secrets.get(GROUP_ID).map(Secret::expose), Some("214167102"));
        assert_eq!(connection.secrets.get(CONFIRMATION_CODE).map(Secret::expose), Some("693d0ba9"));
        assert_eq!(connection.masked.get(ACCESS_TOKEN).map(String::as_str), Some("****6789"));
        let shown = format!("{connection:?}");
        assert!(!shown.contains(TOKEN) && !shown.contains("693d0ba9"), "{shown}");
    }

    #[tokio::test]
    async fn connect_accepts_the_pre_5_139_list_shape() {
        let server = MockServer::start().await;
        respond(&server, "groups.getById", answer(json!({"response": [{"id": 7, "name": "Old"}]}))).await;
        respond(&server, "groups.getCallbackConfirmationCode", answer(json!({"response": {"code": "c"}})))
            .await;
        let client = VkClient::new(reqwest::Client::new(), server.uri());
        let connection = client.connect(&credentials(json!(7))).await.unwrap();
        assert_eq!(connection.account.name, "Old");
    }

    async fn connect_error_for(get_by_id: ResponseTemplate, code: ResponseTemplate) -> Error {
        let server = MockServer::start().await;
        respond(&server, "groups.getById", get_by_id).await;
        respond(&server, "groups.getCallbackConfirmationCode", code).await;
        let client = VkClient::new(reqwest::Client::new(), server.uri());
        client.connect(&credentials(json!(214167102))).await.unwrap_err()
    }

    fn rule(error: &Error) -> (&'static str, &str) {
        match error {
            Error::Rule(r) => (r.code, r.field.as_str()),
            other => panic!("expected a rule violation, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn connect_refusals_name_the_credential_at_fault() {
        let ok_code = || answer(json!({"response": {"code": "693d0ba9"}}));
        let refused =
            connect_error_for(vk_error(5, "User authorization failed: invalid access_token (4)."), ok_code())
                .await;
        assert_eq!(rule(&refused), ("invalid_access_token", "credentials.access_token"));
        assert!(refused.to_string().contains("ВКонтакте не принял ключ доступа"), "{refused}");
        assert_secret_hidden(&refused, &refused.to_string());

        let off = connect_error_for(answer(community(214167102, 0)), ok_code()).await;
        assert_eq!(rule(&off), ("messages_disabled", "credentials.group_id"));
        assert!(off.to_string().contains("switched off"), "{off}");

        let other = connect_error_for(answer(community(1, 1)), ok_code()).await;
        assert_eq!(rule(&other), ("community_not_found", "credentials.group_id"));

        let unknown =
            connect_error_for(vk_error(100, "One of the parameters specified was missing"), ok_code()).await;
        assert_eq!(rule(&unknown), ("community_not_found", "credentials.group_id"));

        // A key of another community (or without the manage right) cannot read this one's code.
        let foreign =
            connect_error_for(answer(community(214167102, 1)), vk_error(27, "Group authorization failed"))
                .await;
        assert_eq!(rule(&foreign), ("insufficient_rights", "credentials.access_token"));

        let no_token = VkClient::new(reqwest::Client::new(), "http://unused.invalid")
            .connect(json!({"access_token": "short", "group_id": 1}).as_object().unwrap())
            .await
            .unwrap_err();
        assert_eq!(rule(&no_token), ("invalid_access_token", "credentials.access_token"));
    }

    #[tokio::test]
    async fn register_webhook_adds_a_server_with_our_secret_and_subscribes_it_to_messages() {
        let server = MockServer::start().await;
        let url = "https://omnichat.example.test/webhooks/vk/0190a6a0-0000-7000-8000-000000000001";
        // A leftover of a failed attempt with the same URL goes first.
        respond(
            &server,
            "groups.getCallbackServers",
            answer(json!({"response": {"count": 2, "items": [
                {"id": 3, "title": "other", "url": "https://elsewhere.example/cb", "secret_key": "x", "status": "ok"},
                {"id": 4, "title": "omnichat", "url": url, "secret_key": "old", "status": "failed"}]}})),
        )
        .await;
        Mock::given(method("POST"))
            .and(path("/method/groups.deleteCallbackServer"))
            .and(FormHas(vec![("group_id", "42".into()), ("server_id", "4".into())]))
            .respond_with(answer(json!({"response": 1})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/method/groups.addCallbackServer"))
            .and(FormHas(vec![
                ("group_id", "42".into()),
                ("url", url.into()),
                ("title", "omnichat".into()),
                ("secret_key", HOOK_SECRET.into()),
                ("access_token", TOKEN.into()),
                ("v", "5.199".into()),
            ]))
            .respond_with(answer(json!({"response": {"server_id": 5}})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/method/groups.setCallbackSettings"))
            .and(FormHas(vec![
                ("group_id", "42".into()),
                ("server_id", "5".into()),
                ("api_version", "5.199".into()),
                ("message_new", "1".into()),
            ]))
            .respond_with(answer(json!({"response": 1})))
            .expect(1)
            .mount(&server)
            .await;
        let client = VkClient::new(reqwest::Client::new(), server.uri());
        client.register_webhook(&secrets(42), url).await.unwrap();
    }

    #[tokio::test]
    async fn register_webhook_explains_the_server_limit() {
        let server = MockServer::start().await;
        respond(&server, "groups.getCallbackServers", answer(json!({"response": {"count": 0, "items": []}})))
            .await;
        respond(&server, "groups.addCallbackServer", vk_error(2000, "Servers number limit is reached")).await;
        let client = VkClient::new(reqwest::Client::new(), server.uri());
        let error = client.register_webhook(&secrets(42), "https://x.example/cb").await.unwrap_err();
        assert_eq!(rule(&error), ("callback_servers_limit", "credentials.group_id"));
    }

    #[tokio::test]
    async fn remove_webhook_deletes_only_the_server_with_our_secret() {
        let server = MockServer::start().await;
        respond(
            &server,
            "groups.getCallbackServers",
            answer(json!({"response": {"count": 2, "items": [
                {"id": 3, "title": "other", "url": "https://elsewhere.example/cb", "secret_key": "theirs"},
                {"id": 9, "title": "omnichat", "url": "https://o.example/webhooks/vk/x", "secret_key": HOOK_SECRET}]}})),
        )
        .await;
        Mock::given(method("POST"))
            .and(path("/method/groups.deleteCallbackServer"))
            .and(FormHas(vec![("group_id", "42".into()), ("server_id", "9".into())]))
            .respond_with(answer(json!({"response": 1})))
            .expect(1)
            .mount(&server)
            .await;
        let client = VkClient::new(reqwest::Client::new(), server.uri());
        client.remove_webhook(&secrets(42)).await.unwrap();
    }

    fn outgoing(buttons: &[&str]) -> Outgoing {
        Outgoing {
            customer_id: "2000000066".into(),
            text: "Здравствуйте! Чем помочь?".into(),
            buttons: buttons.iter().map(|b| b.to_string()).collect(),
            idempotency_key: "0190a6a0-0000-7000-8000-0000000000aa".into(),
            thread: None,
        }
    }

    #[tokio::test]
    async fn send_posts_peer_text_random_id_and_keyboard() {
        let server = MockServer::start().await;
        let out = outgoing(&["Да", "Нет"]);
        Mock::given(method("POST"))
            .and(path("/method/messages.send"))
            .and(FormHas(vec![
                ("peer_id", "2000000066".into()),
                ("message", "Здравствуйте! Чем помочь?".into()),
                ("random_id", random_id(&out.idempotency_key).to_string()),
                ("access_token", TOKEN.into()),
                ("v", "5.199".into()),
            ]))
            .respond_with(answer(json!({"response": 4711})))
            .expect(1)
            .mount(&server)
            .await;
        let client = VkClient::new(reqwest::Client::new(), server.uri());
        let sent = client.send(&secrets(42), &out).await.unwrap();
        assert_eq!(sent, Sent { provider_message_id: Some("4711".into()) });
        let requests = server.received_requests().await.unwrap();
        let keyboard: Value = serde_json::from_str(form(&requests[0])["keyboard"].as_str().unwrap()).unwrap();
        assert_eq!(
            keyboard,
            json!({"inline": true, "buttons": [
                [{"action": {"type": "text", "label": "Да", "payload": "{\"button\":\"Да\"}"}}],
                [{"action": {"type": "text", "label": "Нет", "payload": "{\"button\":\"Нет\"}"}}],
            ]})
        );
        // Without buttons, no keyboard.
        server.reset().await;
        respond(&server, "messages.send", answer(json!({"response": 4712}))).await;
        client.send(&secrets(42), &outgoing(&[])).await.unwrap();
        let requests = server.received_requests().await.unwrap();
        assert!(!form(&requests[0]).contains_key("keyboard"));
    }

    #[tokio::test]
    async fn errors_in_a_200_are_mapped_in_one_place() {
        let cases = [
            (6, ProviderError::RateLimited { retry_after: Duration::from_secs(1) }),
            (9, ProviderError::RateLimited { retry_after: FLOOD_CONTROL_RETRY }),
            (5, ProviderError::InvalidCredentials(INVALID_TOKEN.into())),
            (10, ProviderError::Unavailable("VK error 10: boom".into())),
            (901, ProviderError::Rejected("VK error 901: boom".into())),
        ];
        for (code, expected) in cases {
            let server = MockServer::start().await;
            respond(&server, "messages.send", vk_error(code, "boom")).await;
            let client = VkClient::new(reqwest::Client::new(), server.uri());
            let error = client.send(&secrets(42), &outgoing(&[])).await.unwrap_err();
            assert_eq!(error, expected, "code {code}");
            assert_secret_hidden(&error, &error.to_string());
        }
    }

    #[tokio::test]
    async fn http_throttling_server_errors_and_time_outs() {
        let server = MockServer::start().await;
        respond(&server, "messages.send", ResponseTemplate::new(429).insert_header("Retry-After", "7")).await;
        let client = VkClient::new(reqwest::Client::new(), server.uri());
        let error = client.send(&secrets(42), &outgoing(&[])).await.unwrap_err();
        assert_eq!(error, ProviderError::RateLimited { retry_after: Duration::from_secs(7) });

        let server = MockServer::start().await;
        respond(&server, "messages.send", ResponseTemplate::new(502).set_body_string("<html>")).await;
        let client = VkClient::new(reqwest::Client::new(), server.uri());
        let error = client.send(&secrets(42), &outgoing(&[])).await.unwrap_err();
        assert_eq!(error, ProviderError::Unavailable("HTTP 502".into()));
        assert!(error.is_retryable());

        let server = MockServer::start().await;
        respond(&server, "messages.send", answer(json!({"response": 1})).set_delay(Duration::from_secs(2)))
            .await;
        let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
        let error = VkClient::new(http, server.uri()).send(&secrets(42), &outgoing(&[])).await.unwrap_err();
        assert_eq!(error, ProviderError::Unavailable("timed out".into()));
        assert_secret_hidden(&error, &error.to_string());

        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = VkClient::new(reqwest::Client::new(), format!("http://127.0.0.1:{port}"));
        let error = client.send(&secrets(42), &outgoing(&[])).await.unwrap_err();
        assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
        assert_secret_hidden(&error, &error.to_string());
    }

    #[test]
    fn interpret_redacts_and_reads_unexpected_answers() {
        let t = token();
        let ok = |body: &str| interpret::<Value>(StatusCode::OK, body.as_bytes(), None, &t);
        assert_eq!(ok(r#"{"response": 1}"#), Ok(json!(1)));
        let echoed = format!(r#"{{"error": {{"error_code": 100, "error_msg": "bad {TOKEN}"}}}}"#);
        let failure = ok(&echoed).unwrap_err();
        assert_eq!(failure.code, Some(100));
        assert_eq!(failure.error, ProviderError::Rejected("VK error 100: bad ****".into()));
        assert_eq!(
            ok("garbage").unwrap_err().error,
            ProviderError::Unavailable("unreadable answer from VK".into())
        );
        assert_eq!(ok("{}").unwrap_err().code, None);
        let not_found = interpret::<Value>(StatusCode::NOT_FOUND, b"", None, &t).unwrap_err();
        assert_eq!(not_found.error, ProviderError::Rejected("HTTP 404".into()));
    }

    #[test]
    fn sends_are_idempotent_through_random_id() {
        assert!(client().idempotent_sends());
    }

    #[test]
    fn the_community_key_is_read_from_either_answer_shape() {
        let flat = json!({"access_token_42": "key42", "expires_in": 0});
        assert_eq!(
            community_token(flat.as_object().unwrap(), 42).map(|k| k.expose().to_owned()),
            Some("key42".into())
        );
        assert!(community_token(flat.as_object().unwrap(), 7).is_none());
        let listed = json!({"groups": [{"group_id": 7, "access_token": "key7"}]});
        assert_eq!(
            community_token(listed.as_object().unwrap(), 7).map(|k| k.expose().to_owned()),
            Some("key7".into())
        );
        assert!(community_token(listed.as_object().unwrap(), 42).is_none());
    }

    #[test]
    fn base_url_loses_its_trailing_slash() {
        assert_eq!(
            VkClient::new(reqwest::Client::new(), "http://localhost:9000/").base,
            "http://localhost:9000"
        );
    }
}
