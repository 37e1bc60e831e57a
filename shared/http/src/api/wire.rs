//! What the API answers: the wire types the handlers serialize, each converted from the domain here, and by
//! the same derive the OpenAPI schema of those answers (so the document cannot describe another shape).
//!
//! They live in the HTTP glue rather than on the domain types: the API shows a channel's provider as kind +
//! WhatsApp provider and its credentials masked, people without their tenant and times, and working hours
//! in a shape of their own; a schema derived on the domain would document its storage shape, and put HTTP
//! concerns in the domain. Request bodies are next to their handlers.

use std::collections::BTreeMap;

use jiff::Timestamp;
use omnichat::domain::people as domain_people;
use omnichat::domain::{
    self, ChannelId, ChatbotId, CustomerId, DialogId, EmployeeId, GroupId, MessageId, Provider, TenantId,
    settings,
};
use omnichat::usecases::auth;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A wire enum of snake_case names and its conversion from the domain enum of the same variants (an
/// exhaustive match: a variant the domain adds does not compile until it is here).
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident from $domain:path { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl From<$domain> for $name {
            fn from(value: $domain) -> Self {
                type Domain = $domain;
                match value {
                    $(Domain::$variant => Self::$variant),+
                }
            }
        }
    };
}

/// A page of a list; pass `next` as `?page=` for the one after it.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The token of the next page, or null on the last one.
    #[schema(required = true)]
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// A use case's page of domain items, as the API shows them.
    pub fn of<D>(items: Vec<D>, next: Option<String>) -> Self
    where
        T: From<D>,
    {
        Self { items: items.into_iter().map(T::from).collect(), next }
    }
}

// ---- tenant ----

#[derive(Serialize, ToSchema)]
pub struct Tenant {
    #[schema(value_type = String, format = "uuid")]
    pub id: TenantId,
    pub name: String,
    pub features: Features,
    #[schema(value_type = String, format = "date-time")]
    pub created_at: Timestamp,
}

impl From<domain::Tenant> for Tenant {
    fn from(tenant: domain::Tenant) -> Self {
        Self {
            id: tenant.id,
            name: tenant.name,
            features: tenant.features.into(),
            created_at: tenant.created_at,
        }
    }
}

/// A tenant the operator created, with its first admin key: shown this once, the service keeps its hash.
#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub admin_key: String,
}

/// The tenant's services.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Features {
    /// WhatsApp channels need it.
    pub contact_center: bool,
    /// Chatbots in handling and off-hours need it.
    pub chatbots: bool,
}

impl From<domain::Features> for Features {
    fn from(features: domain::Features) -> Self {
        Self { contact_center: features.contact_center, chatbots: features.chatbots }
    }
}

impl From<Features> for domain::Features {
    fn from(features: Features) -> Self {
        Self { contact_center: features.contact_center, chatbots: features.chatbots }
    }
}

#[derive(Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Employee,
}

impl From<Role> for auth::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => auth::Role::Admin,
            Role::Employee => auth::Role::Employee,
        }
    }
}

impl From<auth::Role> for Role {
    fn from(role: auth::Role) -> Self {
        match role {
            auth::Role::Admin => Role::Admin,
            auth::Role::Employee => Role::Employee,
        }
    }
}

/// An API key as its tenant's admins see it: never the key itself.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKeyInfo)]
pub struct ApiKeyInfo {
    pub id: String,
    pub role: Role,
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub employee_id: Option<EmployeeId>,
    #[schema(value_type = String, format = "date-time")]
    pub created_at: Timestamp,
    /// Within an hour; null until first used.
    #[schema(value_type = Option<String>, format = "date-time", required = true)]
    pub last_used_at: Option<Timestamp>,
    /// The key's last 4 characters (null for keys made before they were kept).
    #[schema(required = true)]
    pub last4: Option<String>,
}

impl From<auth::ApiKeyInfo> for ApiKeyInfo {
    fn from(key: auth::ApiKeyInfo) -> Self {
        Self {
            id: key.id,
            role: key.role.into(),
            employee_id: key.employee_id,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            last4: key.last4,
        }
    }
}

/// The clear key is in this response only; the service keeps its hash.
#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    /// The key's id, to list or revoke it by (not the key).
    pub id: String,
    pub key: String,
    pub role: Role,
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub employee_id: Option<EmployeeId>,
}

// ---- channels ----

/// The kind of channel the admin picks (WhatsApp is one kind with three providers).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Telegram,
    Vk,
    Viber,
    Whatsapp,
    Email,
    Avito,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhatsappProvider {
    Edna,
    Messagebird,
    Infobip,
}

/// A provider as the API shows it: its kind, and for WhatsApp which of the three carries it.
pub fn kind_of(provider: Provider) -> (ChannelKind, Option<WhatsappProvider>) {
    match provider {
        Provider::Telegram => (ChannelKind::Telegram, None),
        Provider::Vk => (ChannelKind::Vk, None),
        Provider::Viber => (ChannelKind::Viber, None),
        Provider::WhatsappEdna => (ChannelKind::Whatsapp, Some(WhatsappProvider::Edna)),
        Provider::WhatsappMessagebird => (ChannelKind::Whatsapp, Some(WhatsappProvider::Messagebird)),
        Provider::WhatsappInfobip => (ChannelKind::Whatsapp, Some(WhatsappProvider::Infobip)),
        Provider::Email => (ChannelKind::Email, None),
        Provider::Avito => (ChannelKind::Avito, None),
    }
}

wire_enum!(ChannelStatus from domain::ChannelStatus {
    /// Being connected (the provider is registering its webhook).
    Pending,
    Active,
    /// Another channel of the tenant took its account over.
    Displaced,
    Disconnected,
    /// Connected by consent, and the provider refused to renew its tokens: authorize the account again.
    ReauthorizationRequired,
});

/// The provider account behind a channel.
#[derive(Serialize, ToSchema)]
pub struct Account {
    /// Stable id at the provider (bot id, community id, phone number, address).
    pub id: String,
    /// Bot name, community name, number or address.
    pub name: String,
}

impl From<domain::Account> for Account {
    fn from(account: domain::Account) -> Self {
        Self { id: account.id, name: account.name }
    }
}

/// The accounts credentials reach.
#[derive(Serialize, ToSchema)]
pub struct AccountList {
    pub items: Vec<Account>,
}

/// A channel. Credentials are masked: never shown in clear.
#[derive(Serialize, ToSchema)]
pub struct Channel {
    #[schema(value_type = String, format = "uuid")]
    pub id: ChannelId,
    pub provider: ChannelKind,
    #[schema(required = true)]
    pub whatsapp_provider: Option<WhatsappProvider>,
    pub name: String,
    pub account: Account,
    pub status: ChannelStatus,
    /// The channel that took this one's account over (status `displaced`).
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub displaced_by: Option<ChannelId>,
    /// The full URL the provider calls.
    pub webhook_url: String,
    pub settings: ChannelSettings,
    /// Each credential masked (at most its last 4 characters shown).
    pub credentials: BTreeMap<String, String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<domain::Channel> for Channel {
    fn from(channel: domain::Channel) -> Self {
        let (provider, whatsapp_provider) = kind_of(channel.provider);
        Self {
            id: channel.id,
            provider,
            whatsapp_provider,
            name: channel.name,
            account: channel.account.into(),
            status: channel.status.into(),
            displaced_by: channel.displaced_by,
            webhook_url: channel.webhook_url,
            settings: channel.settings.into(),
            credentials: channel.credentials_masked,
            created_at: channel.created_at,
            updated_at: channel.updated_at,
        }
    }
}

/// A new channel, and the older channel of the same account it displaced (or null).
#[derive(Serialize, ToSchema)]
pub struct ChannelCreated {
    #[serde(flatten)]
    pub channel: Channel,
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub displaced: Option<ChannelId>,
}

impl From<omnichat::usecases::channels::Created> for ChannelCreated {
    fn from(created: omnichat::usecases::channels::Created) -> Self {
        Self { channel: created.channel.into(), displaced: created.displaced }
    }
}

/// A channel's settings; omitted sections take their defaults.
// Answered, every section is there; sent, this documents what `ChannelSettings::from_json` reads (by hand,
// so that a broken rule names its field), which also takes null for a section.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    /// Who handles the channel's dialogs in working hours (null: the tenant's routing decides).
    pub handling: Option<Handling>,
    /// Sent to a customer who has waited `delay_seconds` without an answer.
    #[schema(max_items = 10, required = false, nullable)]
    pub auto_replies: Vec<AutoReply>,
    #[schema(required = false, nullable)]
    pub off_hours: OffHours,
    #[schema(required = false, nullable)]
    pub auto_close: AutoClose,
}

impl From<settings::ChannelSettings> for ChannelSettings {
    fn from(settings: settings::ChannelSettings) -> Self {
        Self {
            handling: settings.handling.map(Handling::from),
            auto_replies: settings
                .auto_replies
                .into_iter()
                .map(|reply| AutoReply { text: reply.text, delay_seconds: reply.delay_seconds })
                .collect(),
            off_hours: OffHours {
                chatbot_id: settings.off_hours.chatbot_id,
                auto_replies: settings.off_hours.auto_replies,
            },
            auto_close: settings.auto_close.into(),
        }
    }
}

/// Exactly one of an employee, a group or (where the provider allows it) a chatbot of the tenant.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Handling {
    Employee(HandlingEmployee),
    Group(HandlingGroup),
    Chatbot(HandlingChatbot),
}

impl From<settings::Handling> for Handling {
    fn from(handling: settings::Handling) -> Self {
        match handling {
            settings::Handling::Employee { employee_id } => Self::Employee(HandlingEmployee { employee_id }),
            settings::Handling::Group { group_id } => Self::Group(HandlingGroup { group_id }),
            settings::Handling::Chatbot { chatbot_id } => Self::Chatbot(HandlingChatbot { chatbot_id }),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandlingEmployee {
    #[schema(value_type = String, format = "uuid")]
    pub employee_id: EmployeeId,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandlingGroup {
    #[schema(value_type = String, format = "uuid")]
    pub group_id: GroupId,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandlingChatbot {
    #[schema(value_type = String, format = "uuid")]
    pub chatbot_id: ChatbotId,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoReply {
    /// Not blank.
    #[schema(min_length = 1, max_length = 4096, pattern = r"\S")]
    pub text: String,
    #[schema(minimum = 1, maximum = 604800)]
    pub delay_seconds: u64,
}

/// Outside working hours: a chatbot or auto-replies, not both (422).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffHours {
    #[schema(value_type = Option<String>, format = "uuid")]
    pub chatbot_id: Option<ChatbotId>,
    #[schema(required = false, nullable)]
    pub auto_replies: bool,
}

/// Close a dialog idle for `after` hours (1 to 8760) or days (1 to 365). Default: 24 hours.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AutoClose {
    Hours(AutoCloseHours),
    Days(AutoCloseDays),
}

impl From<settings::AutoClose> for AutoClose {
    fn from(auto_close: settings::AutoClose) -> Self {
        let after = auto_close.after();
        match auto_close.unit() {
            settings::AutoCloseUnit::Hours => Self::Hours(AutoCloseHours { after, unit: HoursUnit::Hours }),
            settings::AutoCloseUnit::Days => Self::Days(AutoCloseDays { after, unit: DaysUnit::Days }),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoCloseHours {
    #[schema(minimum = 1, maximum = 8760)]
    pub after: u32,
    pub unit: HoursUnit,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoCloseDays {
    #[schema(minimum = 1, maximum = 365)]
    pub after: u32,
    pub unit: DaysUnit,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoursUnit {
    Hours,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DaysUnit {
    Days,
}

// ---- people ----

wire_enum!(EmployeeStatus from domain_people::EmployeeStatus { Online, Away, Offline });

#[derive(Serialize, ToSchema)]
pub struct Employee {
    #[schema(value_type = String, format = "uuid")]
    pub id: EmployeeId,
    pub name: String,
    pub status: EmployeeStatus,
    /// How many dialogs the employee handles at once.
    pub max_dialogs: u32,
}

impl From<domain_people::Employee> for Employee {
    fn from(employee: domain_people::Employee) -> Self {
        Self {
            id: employee.id,
            name: employee.name,
            status: employee.status.into(),
            max_dialogs: employee.max_dialogs,
        }
    }
}

wire_enum!(Distribution from domain_people::Distribution { RoundRobin, LeastBusy, AllAtOnce });

#[derive(Serialize, ToSchema)]
pub struct Group {
    #[schema(value_type = String, format = "uuid")]
    pub id: GroupId,
    pub name: String,
    /// Employee ids, in the order distribution walks them.
    #[schema(value_type = Vec<String>, format = "uuid")]
    pub members: Vec<EmployeeId>,
    pub distribution: Distribution,
    /// How long a dialog waits for a member before it moves on.
    pub wait_seconds: u32,
}

impl From<domain_people::Group> for Group {
    fn from(group: domain_people::Group) -> Self {
        Self {
            id: group.id,
            name: group.name,
            members: group.members,
            distribution: group.distribution.into(),
            wait_seconds: group.wait_seconds,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Chatbot {
    #[schema(value_type = String, format = "uuid")]
    pub id: ChatbotId,
    pub name: String,
    /// Where the bot service takes the dialog's messages.
    pub webhook_url: String,
    pub enabled: bool,
}

impl From<domain_people::Chatbot> for Chatbot {
    fn from(chatbot: domain_people::Chatbot) -> Self {
        Self {
            id: chatbot.id,
            name: chatbot.name,
            webhook_url: chatbot.webhook_url,
            enabled: chatbot.enabled,
        }
    }
}

/// A chatbot just created: the chatbot and the secret its calls are signed with, shown only now.
#[derive(Serialize, ToSchema)]
pub struct NewChatbot {
    #[serde(flatten)]
    pub chatbot: Chatbot,
    /// `whsec_` and the base64 of 32 random bytes: the HMAC key of the `webhook-signature` of every call to
    /// `webhook_url` (Standard Webhooks). Shown once; `POST /v1/chatbots/{id}/rotate-secret` makes a new one.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", pattern = "^whsec_[A-Za-z0-9+/]+={0,2}$")]
    pub signing_secret: String,
}

impl From<omnichat::usecases::people::NewChatbot> for NewChatbot {
    fn from(new: omnichat::usecases::people::NewChatbot) -> Self {
        Self { chatbot: new.chatbot.into(), signing_secret: new.signing_secret.expose().to_owned() }
    }
}

/// A chatbot's new signing secret, shown only now.
#[derive(Serialize, ToSchema)]
pub struct SigningSecret {
    /// `whsec_` and the base64 of 32 random bytes.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", pattern = "^whsec_[A-Za-z0-9+/]+={0,2}$")]
    pub signing_secret: String,
}

// ---- working hours ----

/// Weekly hours in an IANA time zone, holidays and extra working days. Until they are set the tenant is
/// always open. An interval whose `to` is at or before its `from` crosses midnight.
// The domain owns this shape (`WorkingHours::to_json`, which `from_json` reads back naming the field at
// fault, and which also takes null for the optional parts): the answer is read through this type, so that a
// key the domain adds fails the tests rather than reaching clients undocumented.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    /// An IANA name such as `Europe/Moscow`.
    #[schema(min_length = 1, max_length = 64, example = "Europe/Moscow")]
    pub time_zone: String,
    pub weekly: Weekly,
    /// Closed dates, `YYYY-MM-DD`, each once.
    #[serde(default)]
    #[schema(max_items = 1000, value_type = Vec<String>, format = Date, nullable)]
    pub holidays: Vec<String>,
    /// Dates open with their own intervals instead of their weekday's; not holidays.
    #[serde(default)]
    #[schema(max_items = 366, nullable)]
    pub extra_days: Vec<ExtraDay>,
}

impl TryFrom<&domain::hours::WorkingHours> for WorkingHours {
    type Error = omnichat::Error;

    fn try_from(hours: &domain::hours::WorkingHours) -> Result<Self, Self::Error> {
        serde_json::from_value(hours.to_json()).map_err(|error| {
            omnichat::Error::Internal(format!("working hours do not fit their wire type: {error}"))
        })
    }
}

/// Days left out or null are closed.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Weekly {
    #[serde(default)]
    #[schema(max_items = 10, nullable)]
    pub mon: Vec<Interval>,
    #[serde(default)]
    #[schema(max_items = 10, nullable)]
    pub tue: Vec<Interval>,
    #[serde(default)]
    #[schema(max_items = 10, nullable)]
    pub wed: Vec<Interval>,
    #[serde(default)]
    #[schema(max_items = 10, nullable)]
    pub thu: Vec<Interval>,
    #[serde(default)]
    #[schema(max_items = 10, nullable)]
    pub fri: Vec<Interval>,
    #[serde(default)]
    #[schema(max_items = 10, nullable)]
    pub sat: Vec<Interval>,
    #[serde(default)]
    #[schema(max_items = 10, nullable)]
    pub sun: Vec<Interval>,
}

/// `HH:MM` to `HH:MM`, 24-hour; `to` may be `24:00`. Intervals of a day must not overlap.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "09:00")]
    pub from: String,
    #[schema(pattern = "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", example = "18:00")]
    pub to: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtraDay {
    #[schema(format = Date)]
    pub date: String,
    #[schema(min_items = 1, max_items = 10)]
    pub intervals: Vec<Interval>,
}

// ---- dialogs and messages ----

wire_enum!(DialogStatus from domain::DialogStatus { Open, Assigned, Closed });

/// The person writing to the business.
#[derive(Serialize, ToSchema)]
pub struct Customer {
    /// The customer's id (`GET /v1/customers/{id}`); on dialogs stored before customer profiles existed,
    /// the provider's id of them.
    pub id: String,
    #[schema(required = true)]
    pub name: Option<String>,
    /// The provider's id of the customer on this channel (chat id, user id, phone number, address): where
    /// replies go.
    pub external_id: String,
}

/// How one channel knows a customer.
#[derive(Serialize, ToSchema)]
pub struct Identity {
    #[schema(value_type = String, format = "uuid")]
    pub channel_id: ChannelId,
    /// The provider, as in the webhook routes: `telegram`, `vk`, `viber`, `whatsapp-edna`,
    /// `whatsapp-messagebird`, `whatsapp-infobip`, `email`, `avito`.
    pub provider: String,
    /// How a person reads the identity: `@username` (Telegram), else the number, the address or the
    /// provider's id.
    pub handle: String,
    /// The provider's id of the customer: a dialog's `customer.external_id`.
    pub external_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl From<&domain::Identity> for Identity {
    fn from(identity: &domain::Identity) -> Self {
        Self {
            channel_id: identity.channel_id.clone(),
            provider: identity.provider.slug().into(),
            handle: identity.handle(),
            external_id: identity.external_id.clone(),
            phone: identity.phone().map(str::to_owned),
            address: identity.address().map(str::to_owned),
        }
    }
}

/// One person across channels and over time.
#[derive(Serialize, ToSchema)]
pub struct CustomerProfile {
    #[schema(value_type = String, format = "uuid")]
    pub id: CustomerId,
    #[schema(required = true)]
    pub name: Option<String>,
    pub identities: Vec<Identity>,
    /// Their dialogs' ids, newest first (left out of search results).
    #[schema(value_type = Vec<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialogs: Option<Vec<DialogId>>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl CustomerProfile {
    pub fn of(profile: &domain::CustomerProfile, dialogs: Option<Vec<DialogId>>) -> Self {
        Self {
            id: profile.id.clone(),
            name: profile.name.clone(),
            identities: profile.identities.iter().map(Identity::from).collect(),
            dialogs,
            created_at: profile.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Dialog {
    #[schema(value_type = String, format = "uuid")]
    pub id: DialogId,
    #[schema(value_type = String, format = "uuid")]
    pub tenant_id: TenantId,
    #[schema(value_type = String, format = "uuid")]
    pub channel_id: ChannelId,
    pub customer: Customer,
    pub status: DialogStatus,
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub assignee_id: Option<EmployeeId>,
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub group_id: Option<GroupId>,
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub assigned_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub closed_at: Option<Timestamp>,
    /// The last message either way.
    #[schema(value_type = String, format = DateTime)]
    pub last_activity_at: Timestamp,
    /// The chatbot that has the dialog, until it hands it to people.
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub chatbot_id: Option<ChatbotId>,
    /// Routing's bookkeeping: the assignee's capacity slot the dialog holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
}

impl From<domain::Dialog> for Dialog {
    fn from(dialog: domain::Dialog) -> Self {
        Self {
            id: dialog.id,
            tenant_id: dialog.tenant_id,
            channel_id: dialog.channel_id,
            customer: Customer {
                id: dialog
                    .customer_id
                    .as_ref()
                    .map_or_else(|| dialog.customer.id.clone(), ToString::to_string),
                name: dialog.customer.name,
                external_id: dialog.customer.id,
            },
            status: dialog.status.into(),
            assignee_id: dialog.assignee_id,
            group_id: dialog.group_id,
            opened_at: dialog.opened_at,
            assigned_at: dialog.assigned_at,
            closed_at: dialog.closed_at,
            last_activity_at: dialog.last_activity_at,
            chatbot_id: dialog.chatbot_id,
            slot: dialog.slot,
        }
    }
}

wire_enum!(Direction from domain::Direction { In, Out });
wire_enum!(MessageKind from domain::InboundKind { Message, Edit, ButtonReply });
wire_enum!(OutStatus from domain::OutStatus { Pending, Sent, Delivered, Failed });
/// What an attachment is: `document` and `other` of the providers are both a `file` here.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    Video,
    Audio,
    Voice,
    File,
    Sticker,
    Location,
    Contact,
}

impl From<domain::AttachmentKind> for AttachmentKind {
    fn from(kind: domain::AttachmentKind) -> Self {
        use domain::AttachmentKind as Kind;
        match kind {
            Kind::Image => Self::Image,
            Kind::Video => Self::Video,
            Kind::Audio => Self::Audio,
            Kind::Voice => Self::Voice,
            Kind::Document | Kind::Other => Self::File,
            Kind::Sticker => Self::Sticker,
            Kind::Location => Self::Location,
            Kind::Contact => Self::Contact,
        }
    }
}

wire_enum!(MediaStatus from domain::MediaStatus { Pending, Stored, Failed, TooLarge });

/// A file of a message (or a place, or a contact). A file's bytes are served by `url`, a time-limited link
/// that needs no API key, once it is `stored`; `null` before.
#[derive(Serialize, ToSchema)]
pub struct Attachment {
    pub id: String,
    pub kind: AttachmentKind,
    #[schema(required = true)]
    pub name: Option<String>,
    /// Sniffed from the bytes once stored; the provider's word before.
    #[schema(required = true)]
    pub mime_type: Option<String>,
    #[schema(required = true)]
    pub size: Option<u64>,
    pub status: MediaStatus,
    /// Why the file could not be kept (`failed`, `too_large`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[schema(required = true)]
    pub url: Option<String>,
    /// A location's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// A contact's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl From<domain::Media> for Attachment {
    fn from(media: domain::Media) -> Self {
        let coordinates = media.source.coordinates();
        let phone =
            (media.source.kind == domain::AttachmentKind::Contact).then(|| media.source.file_ref.clone());
        let (status, failure) = match media.status {
            Some(status) => (status.into(), media.failure),
            None => (MediaStatus::Failed, Some("stored before files were kept".into())),
        };
        Self {
            id: media.id,
            kind: media.source.kind.into(),
            name: media.source.name.as_deref().and_then(omnichat::ports::media::sanitize_name),
            mime_type: media.object.as_ref().map(|object| object.mime.clone()).or(media.source.mime),
            size: media.object.as_ref().map(|object| object.size).or(media.source.size),
            status,
            failure,
            url: media.url,
            latitude: coordinates.map(|(latitude, _)| latitude),
            longitude: coordinates.map(|(_, longitude)| longitude),
            phone,
        }
    }
}

/// A message, either way.
#[derive(Serialize, ToSchema)]
pub struct Message {
    #[schema(value_type = String, format = "uuid")]
    pub id: MessageId,
    #[schema(value_type = String, format = "uuid")]
    pub tenant_id: TenantId,
    #[schema(value_type = String, format = "uuid")]
    pub channel_id: ChannelId,
    #[schema(value_type = String, format = "uuid")]
    pub dialog_id: DialogId,
    pub direction: Direction,
    pub kind: MessageKind,
    pub customer_id: String,
    #[schema(required = true)]
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Quick-reply buttons shown with an outgoing message.
    pub buttons: Vec<String>,
    #[schema(required = true)]
    pub provider_message_id: Option<String>,
    /// The provider's time of the message (inbound), or when it went out (outbound).
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub sent_at: Option<Timestamp>,
    /// When the service stored it.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Timestamp,
    /// Outbound only.
    #[schema(required = true)]
    pub status: Option<OutStatus>,
    /// Outbound only: the employee who wrote it.
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub author_id: Option<EmployeeId>,
    /// Outbound only: why it failed, once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Outbound only: the approved WhatsApp template sent instead of text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<SentTemplate>,
}

/// A WhatsApp template as sent: its name, language and the placeholders' values.
#[derive(Serialize, ToSchema)]
pub struct SentTemplate {
    pub name: String,
    pub language: String,
    pub parameters: Vec<String>,
}

impl From<domain::Message> for Message {
    fn from(message: domain::Message) -> Self {
        Self {
            id: message.id,
            tenant_id: message.tenant_id,
            channel_id: message.channel_id,
            dialog_id: message.dialog_id,
            direction: message.direction.into(),
            kind: message.kind.into(),
            customer_id: message.customer_id,
            text: message.text,
            attachments: message.attachments.into_iter().map(Attachment::from).collect(),
            buttons: message.buttons,
            provider_message_id: message.provider_message_id,
            sent_at: message.sent_at,
            received_at: message.received_at,
            status: message.status.map(OutStatus::from),
            author_id: message.author_id,
            failure: message.failure,
            template: message.template.map(|t| SentTemplate {
                name: t.name,
                language: t.language,
                parameters: t.parameters,
            }),
        }
    }
}
