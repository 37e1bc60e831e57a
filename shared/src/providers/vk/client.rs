//! The VK API client: `groups.*` for the community and its Callback API servers, the OAuth code
//! exchange, `messages.send` with its keyboard, `random_id` and attachments (uploaded through
//! `photos.*` / `docs.*` upload servers), and plain downloads of the links VK's events carry; every
//! answer is read in one place.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{API_VERSION, AdminCommunity, DEFAULT_API_BASE, DEFAULT_OAUTH_BASE, INVALID_TOKEN};
use crate::domain::AttachmentKind;
use crate::error::{Error, Result as AppResult};
use crate::ports::channel::{FetchError, OutgoingMedia};
use crate::ports::media::MediaSink;
use crate::providers::media::{DOWNLOAD_TIMEOUT, download_link};
use crate::providers::{Http, Outgoing, ProviderError, Sent, retry_after_header, transport_error};
use crate::secret::Secret;

/// The name of our server in the community's Callback API settings (VK allows 14 characters).
const SERVER_TITLE: &str = "omnichat";
/// Error 6 (more than 20 requests a second with a community key): the next second is free again.
const TOO_MANY_REQUESTS_RETRY: Duration = Duration::from_secs(1);
/// Error 9 (flood control, repeated identical messages): a retry a second later would flood again.
pub(super) const FLOOD_CONTROL_RETRY: Duration = Duration::from_secs(30);
/// Error 29 (the method's quota is spent): quotas recover slowly.
const QUOTA_RETRY: Duration = Duration::from_secs(600);
/// An inline keyboard holds at most 10 buttons in at most 6 rows of at most 5.
pub(super) const INLINE_MAX_BUTTONS: usize = 10;
pub(super) const INLINE_MAX_ROWS: usize = 6;
pub(super) const LABEL_MAX_CHARS: usize = 40;
pub(super) const PAYLOAD_MAX_BYTES: usize = 255;
/// The largest photo VK takes (JPG, PNG, GIF; photos.getMessagesUploadServer).
pub const PHOTO_LIMIT: u64 = 50 * 1024 * 1024;
/// The largest document VK takes (any format but MP3 and executables; docs.getMessagesUploadServer).
pub const DOC_LIMIT: u64 = 200 * 1024 * 1024;
/// Attachments one `messages.send` carries.
pub const MAX_ATTACHMENTS: usize = 10;

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
    http: Http,
    pub(super) base: String,
    oauth_base: String,
}

impl VkClient {
    pub fn new(http: impl Into<Http>, base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        Self { http: http.into(), base, oauth_base: DEFAULT_OAUTH_BASE.to_owned() }
    }

    /// Where the OAuth authorize and code-exchange endpoints are (`https://oauth.vk.com`).
    pub fn with_oauth_base(mut self, oauth_base: impl Into<String>) -> Self {
        self.oauth_base = oauth_base.into().trim_end_matches('/').to_owned();
        self
    }

    /// `VK_API_BASE` and `VK_OAUTH_BASE` point the client at fakes (local runner, tests).
    pub fn from_env(http: Http) -> Self {
        let base = crate::providers::base_url_from_env("VK_API_BASE", DEFAULT_API_BASE);
        let oauth_base = crate::providers::base_url_from_env("VK_OAUTH_BASE", DEFAULT_OAUTH_BASE);
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
        if out.attachments.len() > MAX_ATTACHMENTS {
            return Err(ProviderError::Rejected(format!(
                "VK takes at most {MAX_ATTACHMENTS} attachments in one message"
            )));
        }
        // Uploads first: a retried send uploads again (harmless), and `random_id` keeps the message single.
        let mut attachments = Vec::with_capacity(out.attachments.len());
        for media in &out.attachments {
            attachments.push(self.upload(token, peer_id, media).await?);
        }
        let mut params = vec![
            ("peer_id", peer_id.to_string()),
            ("message", out.text.clone()),
            ("random_id", random_id(&out.idempotency_key).to_string()),
        ];
        if !attachments.is_empty() {
            params.push(("attachment", attachments.join(",")));
        }
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

    /// A user's name as `users.get` gives it (`First Last`), or `None` for a deactivated user (deleted,
    /// banned) or one without a name.
    pub async fn user_name(&self, token: &Secret, user_id: i64) -> Result<Option<String>, ProviderError> {
        #[derive(Deserialize)]
        struct User {
            #[serde(default)]
            first_name: String,
            #[serde(default)]
            last_name: String,
            deactivated: Option<String>,
        }
        let params = [("user_ids", user_id.to_string())];
        let users: Vec<User> = self.call(token, "users.get", &params).await?;
        Ok(users.into_iter().next().filter(|u| u.deactivated.is_none()).and_then(|u| {
            let name = format!("{} {}", u.first_name.trim(), u.last_name.trim()).trim().to_owned();
            (!name.is_empty()).then_some(name)
        }))
    }

    /// Uploads one file for a message to `peer_id`; answers its `attachment` reference. JPEG, PNG and GIF
    /// images become photos (`photo{owner_id}_{id}`), anything else a document (`doc{owner_id}_{id}`).
    async fn upload(
        &self,
        token: &Secret,
        peer_id: i64,
        media: &OutgoingMedia,
    ) -> Result<String, ProviderError> {
        #[derive(Deserialize)]
        struct UploadServer {
            upload_url: String,
        }
        let peer = ("peer_id", peer_id.to_string());
        if is_photo(media) {
            #[derive(Deserialize)]
            struct Uploaded {
                server: Value,
                #[serde(default)]
                photo: String,
                #[serde(default)]
                hash: String,
            }
            let server: UploadServer = self.call(token, "photos.getMessagesUploadServer", &[peer]).await?;
            let answer = self.post_file(&server.upload_url, "photo", media).await?;
            let uploaded = Uploaded::deserialize(&answer).map_err(|_| {
                ProviderError::Unavailable("unexpected answer from VK's upload server".into())
            })?;
            // An upload server that took nothing answers `"photo": "[]"`.
            if uploaded.photo.trim().is_empty() || uploaded.photo.trim() == "[]" || uploaded.hash.is_empty() {
                return Err(ProviderError::Rejected("VK's upload server took no photo from the file".into()));
            }
            let server = match uploaded.server {
                Value::Number(number) => number.to_string(),
                Value::String(text) => text,
                _ => {
                    return Err(ProviderError::Unavailable(
                        "unexpected answer from VK's upload server".into(),
                    ));
                }
            };
            let params = [("photo", uploaded.photo), ("server", server), ("hash", uploaded.hash)];
            let saved: Vec<SavedMedia> = self.call(token, "photos.saveMessagesPhoto", &params).await?;
            let photo = saved
                .first()
                .ok_or_else(|| ProviderError::Unavailable("photos.saveMessagesPhoto saved nothing".into()))?;
            Ok(photo.reference("photo"))
        } else {
            #[derive(Deserialize)]
            struct Uploaded {
                #[serde(default)]
                file: String,
            }
            #[derive(Deserialize)]
            struct Saved {
                doc: SavedMedia,
            }
            let params = [("type", "doc".to_owned()), peer];
            let server: UploadServer = self.call(token, "docs.getMessagesUploadServer", &params).await?;
            let answer = self.post_file(&server.upload_url, "file", media).await?;
            let uploaded = Uploaded::deserialize(&answer).map_err(|_| {
                ProviderError::Unavailable("unexpected answer from VK's upload server".into())
            })?;
            if uploaded.file.is_empty() {
                return Err(ProviderError::Rejected("VK's upload server took no file".into()));
            }
            let params = [("file", uploaded.file), ("title", media.file_name())];
            let saved: Saved = self.call(token, "docs.save", &params).await?;
            Ok(saved.doc.reference("doc"))
        }
    }

    /// POSTs a file (`multipart/form-data`, one field) to an upload address VK gave; answers its JSON. The
    /// upload server reports refusals as `{"error": ...}` in a 200.
    async fn post_file(
        &self,
        upload_url: &str,
        field: &str,
        media: &OutgoingMedia,
    ) -> Result<Value, ProviderError> {
        let url = reqwest::Url::parse(upload_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "https" | "http"))
            .ok_or_else(|| ProviderError::Unavailable("VK gave no usable upload address".into()))?;
        let bytes = media.read().await?;
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(media.file_name())
            .mime_str(&media.mime)
            .map_err(|_| ProviderError::Rejected(format!("{:?} is not a media type", media.mime)))?;
        let form = reqwest::multipart::Form::new().part(field.to_owned(), part);
        // The address carries VK's upload signature: reqwest's errors go through `transport_error`, which
        // drops it.
        let response = self
            .http
            .post(url)
            .multipart(form)
            .timeout(DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after_header(response.headers());
        let bytes = response.bytes().await.map_err(transport_error)?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ProviderError::RateLimited {
                retry_after: retry_after.unwrap_or(TOO_MANY_REQUESTS_RETRY),
            });
        }
        if !status.is_success() {
            let reason = format!("VK's upload server: HTTP {}", status.as_u16());
            return Err(if status.is_client_error() {
                ProviderError::Rejected(reason)
            } else {
                ProviderError::Unavailable(reason)
            });
        }
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|_| ProviderError::Unavailable("unreadable answer from VK's upload server".into()))?;
        if let Some(error) = answer.get("error") {
            let reason = match error {
                Value::String(text) => text.clone(),
                other => other.get("error_msg").and_then(Value::as_str).unwrap_or("refused").to_owned(),
            };
            tracing::warn!(%reason, "vk upload refused");
            return Err(ProviderError::Rejected(format!("VK refused the upload: {reason}")));
        }
        Ok(answer)
    }

    /// Downloads a link of an inbound attachment (photo size, doc, voice message) into `sink`.
    pub async fn fetch_link(&self, url: &str, sink: &mut MediaSink) -> Result<Option<String>, FetchError> {
        download_link(&self.http, url, sink).await
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

/// Whether a file goes to VK as a photo: an image of a format VK's photo upload takes.
pub(super) fn is_photo(media: &OutgoingMedia) -> bool {
    media.kind == AttachmentKind::Image
        && matches!(media.mime.to_ascii_lowercase().as_str(), "image/jpeg" | "image/png" | "image/gif")
}

/// The largest file of `kind` VK takes in a message: photos up to 50 MB, documents (everything else, video
/// and audio included: a community cannot upload those as such) up to 200 MB. Stickers are not sent.
pub(super) fn media_limit(kind: AttachmentKind) -> Option<u64> {
    match kind {
        AttachmentKind::Image => Some(PHOTO_LIMIT),
        AttachmentKind::Document | AttachmentKind::Video | AttachmentKind::Audio | AttachmentKind::Voice => {
            Some(DOC_LIMIT)
        }
        AttachmentKind::Sticker
        | AttachmentKind::Location
        | AttachmentKind::Contact
        | AttachmentKind::Other => None,
    }
}

/// A saved photo or document.
#[derive(Deserialize)]
struct SavedMedia {
    id: i64,
    owner_id: i64,
    access_key: Option<String>,
}

impl SavedMedia {
    /// `photo{owner_id}_{id}`, with `_{access_key}` where VK gave one.
    fn reference(&self, kind: &str) -> String {
        match self.access_key.as_deref().filter(|key| !key.is_empty()) {
            Some(key) => format!("{kind}{}_{}_{key}", self.owner_id, self.id),
            None => format!("{kind}{}_{}", self.owner_id, self.id),
        }
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
pub(super) fn interpret<T: DeserializeOwned>(
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
