//! VK community messages: the channel as `ChannelProvider` and `VkOAuth` see it (connect, the Callback API
//! server, receive, send, the customer's name), built on `inbound` (what VK sends us) and `client` (the VK
//! API: groups.*, messages.send, users.get).

mod client;
mod inbound;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{
    ChannelProvider, ChannelSecrets, Connection, Delivery, FetchError, Outgoing, ProviderError, Reply, Sent,
    WebhookError, WebhookRequest, required_credential,
};
use crate::domain::{Account, Attachment, AttachmentKind};
use crate::error::{Error, Result as AppResult};
use crate::ports::media::MediaSink;
use crate::ports::oauth::VkOAuth;
use crate::secret::Secret;

pub use client::{
    CallbackServer, Community, DOC_LIMIT, MAX_ATTACHMENTS, PHOTO_LIMIT, VkClient, VkFailure, community_token,
    keyboard, random_id,
};
pub use inbound::{CallbackEvent, normalize_message_new, parse_callback, verify_secret};

pub const DEFAULT_API_BASE: &str = "https://api.vk.com";
pub const DEFAULT_OAUTH_BASE: &str = "https://oauth.vk.com";
/// The API version of every call and of the events VK sends to our callback server.
pub const API_VERSION: &str = "5.199";

const PROVIDER: &str = "vk";
/// Group chats' peer ids are 2000000000 + the chat id.
const GROUP_CHAT_PEER_BASE: i64 = 2_000_000_000;
/// The credentials kept for a channel: the admin's community key and community id, and the string VK's
/// `confirmation` request must be answered with (fetched at connect: `register_webhook` cannot add secrets).
const ACCESS_TOKEN: &str = "access_token";
const GROUP_ID: &str = "group_id";
const CONFIRMATION_CODE: &str = "confirmation_code";

const INVALID_TOKEN: &str = "VK did not accept the access key / ВКонтакте не принял ключ доступа";
const NO_SUCH_COMMUNITY: &str = "no such community / сообщество не найдено";
const NOT_THIS_COMMUNITY: &str = "the access key is not this community's, or lacks the \"manage\" right \
     / ключ доступа не принадлежит этому сообществу или не имеет права «управление сообществом»";
const MESSAGES_OFF: &str = "community messages are switched off: turn them on in the community's settings \
     (Manage → Messages) / сообщения сообщества выключены: включите их в настройках сообщества (Управление → \
     Сообщения)";

/// A community key is sent in a form body, never in a URL; this only refuses what cannot be a key.
pub fn is_plausible_token(token: &str) -> bool {
    (16..=4096).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_graphic())
}

/// A community the user administers, as `groups.get` (`extended=1`) reports it.
pub use crate::ports::oauth::AdminCommunity;

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

    /// VK's events carry ids, not names: the customer's name is asked with `users.get`.
    fn looks_up_names(&self) -> bool {
        true
    }

    /// `users.get` for a user's private dialog; a group chat (peer id 2000000000 + chat id) or a
    /// community (negative id) has no user to name.
    async fn customer_name(
        &self,
        secrets: &ChannelSecrets,
        customer_id: &str,
    ) -> Result<Option<String>, ProviderError> {
        let Some(user_id) =
            customer_id.parse::<i64>().ok().filter(|id| (1..GROUP_CHAT_PEER_BASE).contains(id))
        else {
            return Ok(None);
        };
        let token = secrets
            .get(ACCESS_TOKEN)
            .ok_or_else(|| ProviderError::InvalidCredentials("no community access key".into()))?;
        self.user_name(token, user_id).await
    }

    /// VK drops a second `messages.send` with the same `random_id`, which derives from the idempotency key.
    fn idempotent_sends(&self) -> bool {
        true
    }

    /// Inbound files are links (the largest photo size, `doc.url`, the voice message's ogg): a plain GET.
    async fn fetch_media(
        &self,
        _secrets: &ChannelSecrets,
        attachment: &Attachment,
        sink: &mut MediaSink,
    ) -> Result<Option<String>, FetchError> {
        if !self.fetchable(attachment) {
            return Err(FetchError::not_fetched(attachment));
        }
        let declared = self.fetch_link(&attachment.file_ref, sink).await?;
        Ok(attachment.mime.clone().or(declared))
    }

    /// Photos up to 50 MB; every other file goes as a document, up to 200 MB.
    fn media_limit(&self, kind: AttachmentKind) -> Option<u64> {
        client::media_limit(kind)
    }

    /// Files are uploaded to VK's upload servers, then attached by reference.
    fn sends_media_from_file(&self) -> bool {
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
mod tests;
