//! The Conversations API client: look up the channel, create and delete its webhooks, send text and
//! template (HSM) messages; every answer is read in one place.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{ACCESS_KEY, CHANNEL_ID, DEFAULT_API_BASE, INVALID_KEY, require_namespace};
use crate::domain::Template;
use crate::error::Result as AppResult;
use crate::ports::channel::TemplateInfo;
use crate::ports::media::MediaSink;
use crate::providers::edna::{WHATSAPP_CAPTION_MAX_CHARS, WhatsappMedia};
use crate::providers::{
    ChannelSecrets, FetchError, Http, Outgoing, OutgoingMedia, ProviderError, Purpose, Sent,
    failure_description, json_answer, retry_after_header, text_with_options, transport_error,
};
use crate::secret::Secret;

/// Where MessageBird keeps the files of inbound messages (`https://media.messagebird.com/v1/media/{id}`);
/// they are served to the account's access key only.
pub const MEDIA_HOST: &str = "media.messagebird.com";

/// The webhook list is paged; a channel has a handful of webhooks, so a few pages are plenty.
const WEBHOOK_PAGE_SIZE: usize = 20;
const WEBHOOK_MAX_PAGES: usize = 50;

/// A MessageBird channel as the Conversations API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelInfo {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub platform_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// The channel's address on its platform: for WhatsApp the business number. Bird's channel object
    /// calls it `identifier`; the legacy lookup's exact shape is unconfirmed (docs/PROVIDERS.md 5.4), so
    /// the names it is known under elsewhere are read too, and none at all is fine.
    #[serde(default, alias = "phoneNumber", alias = "msisdn")]
    pub identifier: Option<Value>,
}

impl ChannelInfo {
    /// The business number, as `+<digits>`, when the lookup gave one.
    pub fn number(&self) -> Option<String> {
        let raw = match self.identifier.as_ref()? {
            Value::String(text) => text.trim().to_owned(),
            Value::Number(number) => number.to_string(),
            _ => return None,
        };
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        let plausible = (7..=15).contains(&digits.len())
            && raw.chars().all(|c| c.is_ascii_digit() || "+ -()".contains(c));
        plausible.then(|| format!("+{digits}"))
    }
}

/// Where MessageBird lists an account's WhatsApp templates (the Integrations API, not the Conversations API).
pub const DEFAULT_TEMPLATES_BASE: &str = "https://integrations.messagebird.com";

/// The template list is paged; a few pages of a hundred are plenty for one account.
const TEMPLATE_PAGE_SIZE: usize = 100;
const TEMPLATE_MAX_PAGES: usize = 20;

/// Calls the Conversations API. The access key is passed per call: one process serves many channels.
#[derive(Debug, Clone)]
pub struct MessageBirdClient {
    http: Http,
    base: String,
    /// The Integrations API's base, for the template list.
    templates_base: String,
}

impl MessageBirdClient {
    pub fn new(http: impl Into<Http>, base: impl Into<String>) -> Self {
        Self {
            http: http.into(),
            base: base.into().trim_end_matches('/').to_owned(),
            templates_base: DEFAULT_TEMPLATES_BASE.to_owned(),
        }
    }

    /// Lists templates from another base than MessageBird's Integrations API (a fake in tests).
    pub fn with_templates_base(self, base: impl Into<String>) -> Self {
        Self { templates_base: base.into().trim_end_matches('/').to_owned(), ..self }
    }

    /// `MESSAGEBIRD_API_BASE` points the client at a fake (local runner, tests) or the WhatsApp sandbox;
    /// `MESSAGEBIRD_TEMPLATES_BASE` does the same for the template list.
    pub fn from_env(http: Http) -> Self {
        let base = crate::providers::base_url_from_env("MESSAGEBIRD_API_BASE", DEFAULT_API_BASE);
        let templates =
            crate::providers::base_url_from_env("MESSAGEBIRD_TEMPLATES_BASE", DEFAULT_TEMPLATES_BASE);
        Self::new(http, base).with_templates_base(templates)
    }

    /// The channel behind `channel_id`, or `None` when the key cannot see such a channel. A refused key is
    /// `InvalidCredentials`.
    pub async fn get_channel(
        &self,
        access_key: &Secret,
        channel_id: &str,
    ) -> Result<Option<ChannelInfo>, ProviderError> {
        let url = self.endpoint(&["v1", "channels", channel_id])?;
        let (status, retry_after, body) = self.call(Method::GET, url, access_key, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        interpret(status, retry_after, &body, Purpose::CredentialCheck, access_key).map(Some)
    }

    /// Subscribes `url` to the channel's message events.
    pub async fn create_webhook(
        &self,
        access_key: &Secret,
        channel_id: &str,
        url: &str,
    ) -> Result<(), ProviderError> {
        let body = json!({
            "channelId": channel_id,
            "events": ["message.created", "message.updated"],
            "url": url,
        });
        let endpoint = self.endpoint(&["v1", "webhooks"])?;
        self.request::<Value>(Method::POST, endpoint, access_key, Some(&body)).await.map(drop)
    }

    /// Deletes the channel's webhooks whose URL contains `needle` (the channel's webhook secret, so that
    /// the webhook of another channel on the same MessageBird channel is left alone). Answers how many.
    pub async fn delete_webhooks_matching(
        &self,
        access_key: &Secret,
        channel_id: &str,
        needle: &str,
    ) -> Result<usize, ProviderError> {
        if needle.is_empty() {
            return Ok(0);
        }
        let mut doomed = Vec::new();
        for page in 0..WEBHOOK_MAX_PAGES {
            let mut url = self.endpoint(&["v1", "webhooks"])?;
            url.query_pairs_mut()
                .append_pair("limit", &WEBHOOK_PAGE_SIZE.to_string())
                .append_pair("offset", &(page * WEBHOOK_PAGE_SIZE).to_string());
            let list: WebhookList = self.request(Method::GET, url, access_key, None).await?;
            let count = list.items.len();
            doomed.extend(
                list.items
                    .into_iter()
                    .filter(|w| w.channel_id.as_deref().is_none_or(|c| c == channel_id))
                    .filter(|w| w.url.contains(needle))
                    .map(|w| w.id),
            );
            if count < WEBHOOK_PAGE_SIZE
                || list.total_count.is_some_and(|t| (page + 1) * WEBHOOK_PAGE_SIZE >= t)
            {
                break;
            }
        }
        for id in &doomed {
            let url = self.endpoint(&["v1", "webhooks", id])?;
            self.request::<Value>(Method::DELETE, url, access_key, None).await?;
        }
        Ok(doomed.len())
    }

    /// Sends a text (quick replies become numbered options: the Conversations API's button format is not
    /// confirmed).
    pub async fn send_text(
        &self,
        access_key: &Secret,
        channel_id: &str,
        out: &Outgoing,
    ) -> Result<Sent, ProviderError> {
        let body = json!({
            "to": out.customer_id,
            "from": channel_id,
            "type": "text",
            "content": {"text": text_with_options(&out.text, &out.buttons)},
        });
        self.send_body(access_key, &body).await
    }

    /// Sends a message with files, each by its link (MessageBird fetches it): one message per file, of type
    /// `image`, `video`, `audio` or `file` with `content.{type}.url`. The text goes as the first file's
    /// caption where WhatsApp shows one (not under audio, at most 1024 characters), else first as a text of
    /// its own. The first message's id is the one reported.
    pub async fn send_with_media(
        &self,
        access_key: &Secret,
        channel_id: &str,
        out: &Outgoing,
    ) -> Result<Sent, ProviderError> {
        let text = text_with_options(&out.text, &out.buttons);
        let has_text = !text.trim().is_empty();
        let captioned = has_text
            && text.chars().count() <= WHATSAPP_CAPTION_MAX_CHARS
            && out.attachments.first().is_some_and(|first| WhatsappMedia::of(first).takes_caption());
        let mut first: Option<Sent> = None;
        if has_text && !captioned {
            first = Some(self.send_text(access_key, channel_id, out).await?);
        }
        for (i, media) in out.attachments.iter().enumerate() {
            let caption = (captioned && i == 0).then_some(text.as_str());
            let body = media_body(channel_id, &out.customer_id, media, caption);
            let sent = self.send_body(access_key, &body).await?;
            first.get_or_insert(sent);
        }
        first.ok_or_else(|| ProviderError::Rejected("nothing to send".into()))
    }

    /// Downloads an inbound message's file. The access key goes only to MessageBird's own https hosts
    /// (`media.messagebird.com`, ...) or to the API base this client is pointed at (a fake in tests); a link
    /// elsewhere is fetched without it.
    pub async fn download_media(
        &self,
        access_key: &Secret,
        url: &str,
        sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        let link = Url::parse(url)
            .map_err(|_| FetchError::Unsupported("the attachment's link is not a URL".into()))?;
        if !self.is_own_host(&link) {
            return crate::providers::media::download_link(&self.http, url, sink).await;
        }
        let request =
            self.http.get(link).header("Authorization", format!("AccessKey {}", access_key.expose()));
        crate::providers::media::download(request, &[access_key], sink).await
    }

    /// Whether `link` is on MessageBird (https, a `messagebird.com` host, the default port) or on the API
    /// base this client calls (same scheme, host and port).
    fn is_own_host(&self, link: &Url) -> bool {
        let messagebird = link.scheme() == "https"
            && link.port().is_none()
            && link.host_str().is_some_and(|host| {
                let host = host.to_ascii_lowercase();
                host == MEDIA_HOST || host.ends_with(".messagebird.com")
            });
        let base = Url::parse(&self.base).ok().is_some_and(|base| {
            base.scheme() == link.scheme()
                && base.host_str() == link.host_str()
                && base.port_or_known_default() == link.port_or_known_default()
        });
        messagebird || base
    }

    /// Sends an approved template (HSM) from the channel's namespace: how a business starts a conversation.
    pub async fn send_hsm(
        &self,
        access_key: &Secret,
        channel_id: &str,
        namespace: &Secret,
        to: &str,
        template: &Template,
    ) -> Result<Sent, ProviderError> {
        let params: Vec<Value> = template.parameters.iter().map(|p| json!({ "default": p })).collect();
        let body = json!({
            "to": to,
            "from": channel_id,
            "type": "hsm",
            "content": {"hsm": {
                "namespace": namespace.expose(),
                "templateName": template.name,
                "language": {"policy": "deterministic", "code": template.language},
                "params": params,
            }},
        });
        self.send_body(access_key, &body).await
    }

    /// Starts a conversation with a template, which WhatsApp allows only from a namespace: without one the
    /// answer is a 422 naming `credentials.namespace_id`.
    pub async fn start_conversation(
        &self,
        secrets: &ChannelSecrets,
        to: &str,
        template: &Template,
    ) -> AppResult<Sent> {
        let namespace = require_namespace(secrets)?;
        let access_key = secrets.require(ACCESS_KEY)?;
        let channel_id = secrets.require(CHANNEL_ID)?;
        Ok(self.send_hsm(access_key, channel_id.expose(), namespace, to, template).await?)
    }

    /// The account's WhatsApp templates for this channel (`GET {integrations}/v3/platforms/whatsapp/templates`
    /// with `channelId`, paged by `limit`/`offset`): status in lower case, the body's text from the `BODY`
    /// component, its placeholders counted.
    pub async fn templates(
        &self,
        access_key: &Secret,
        channel_id: &str,
    ) -> Result<Vec<TemplateInfo>, ProviderError> {
        let mut templates = Vec::new();
        for page in 0..TEMPLATE_MAX_PAGES {
            let mut url = crate::providers::endpoint(
                &self.templates_base,
                "MessageBird",
                &["v3", "platforms", "whatsapp", "templates"],
            )?;
            url.query_pairs_mut()
                .append_pair("channelId", channel_id)
                .append_pair("limit", &TEMPLATE_PAGE_SIZE.to_string())
                .append_pair("offset", &(page * TEMPLATE_PAGE_SIZE).to_string());
            let list: TemplateList = self.request(Method::GET, url, access_key, None).await?;
            let (items, total) = match list {
                TemplateList::Page { items, total_count } => (items, total_count),
                TemplateList::Bare(items) => (items, None),
            };
            let count = items.len();
            templates.extend(items.into_iter().filter_map(MbTemplate::info));
            if count < TEMPLATE_PAGE_SIZE || total.is_some_and(|t| (page + 1) * TEMPLATE_PAGE_SIZE >= t) {
                break;
            }
        }
        Ok(templates)
    }

    async fn send_body(&self, access_key: &Secret, body: &Value) -> Result<Sent, ProviderError> {
        let url = self.endpoint(&["v1", "send"])?;
        let sent: SendResponse = self.request(Method::POST, url, access_key, Some(body)).await?;
        Ok(Sent { provider_message_id: Some(sent.id) })
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        crate::providers::endpoint(&self.base, "MessageBird", segments)
    }

    async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        access_key: &Secret,
        body: Option<&Value>,
    ) -> Result<T, ProviderError> {
        let (status, retry_after, bytes) = self.call(method, url, access_key, body).await?;
        interpret(status, retry_after, &bytes, Purpose::Operation, access_key)
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        access_key: &Secret,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), ProviderError> {
        let path = url.path().to_owned();
        let mut request = self
            .http
            .request(method, url)
            .header("Authorization", format!("AccessKey {}", access_key.expose()));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after_header(response.headers());
        let bytes = response.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            tracing::warn!(path, status = status.as_u16(), "messagebird call failed");
        }
        Ok((status, retry_after, bytes.to_vec()))
    }
}

/// The `/v1/send` body of one file: `type` and `content.{type}` = `{url, caption?}`.
fn media_body(channel_id: &str, to: &str, media: &OutgoingMedia, caption: Option<&str>) -> Value {
    let kind = match WhatsappMedia::of(media) {
        WhatsappMedia::Image => "image",
        WhatsappMedia::Video => "video",
        WhatsappMedia::Audio => "audio",
        WhatsappMedia::Document => "file",
    };
    let mut file = json!({"url": media.url});
    if let Some(caption) = caption {
        file["caption"] = Value::String(caption.to_owned());
    }
    json!({"to": to, "from": channel_id, "type": kind, "content": {kind: file}})
}

/// The v3 list is a page (`items`, `totalCount`); v2 answered a bare array, read too.
#[derive(Deserialize)]
#[serde(untagged)]
enum TemplateList {
    #[serde(rename_all = "camelCase")]
    Page {
        #[serde(default)]
        items: Vec<MbTemplate>,
        total_count: Option<usize>,
    },
    Bare(Vec<MbTemplate>),
}

#[derive(Deserialize)]
struct MbTemplate {
    name: Option<String>,
    language: Option<String>,
    status: Option<String>,
    #[serde(default)]
    components: Vec<MbComponent>,
}

#[derive(Deserialize)]
struct MbComponent {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
}

impl MbTemplate {
    fn info(self) -> Option<TemplateInfo> {
        let text = self
            .components
            .into_iter()
            .find(|c| c.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case("BODY")))
            .and_then(|c| c.text);
        Some(TemplateInfo {
            name: self.name.filter(|n| !n.is_empty())?,
            language: self.language.unwrap_or_default(),
            status: self.status.unwrap_or_default().to_lowercase(),
            parameters: text.as_deref().map_or(0, crate::providers::placeholder_count),
            text,
        })
    }
}

#[derive(Deserialize)]
struct SendResponse {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookList {
    #[serde(default)]
    items: Vec<WebhookItem>,
    total_count: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookItem {
    id: String,
    #[serde(default)]
    url: String,
    channel_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    description: Option<String>,
}

/// The one place a Conversations API answer becomes a result or a `ProviderError`.
pub(super) fn interpret<T: DeserializeOwned>(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    purpose: Purpose,
    access_key: &Secret,
) -> Result<T, ProviderError> {
    if status.is_success() {
        return json_answer(body, "MessageBird");
    }
    let found = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().find_map(|e| e.description));
    let description = failure_description(status.as_u16(), found, &[access_key]);
    Err(crate::providers::http_failure(
        status.as_u16(),
        description,
        retry_after,
        purpose.refusal(INVALID_KEY),
    ))
}
