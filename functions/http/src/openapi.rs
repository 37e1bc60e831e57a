//! The OpenAPI 3 document of the REST API and the webhooks, served at `GET /openapi.json`.
//!
//! The shapes here are the wire shapes, and they live in the HTTP glue rather than on the domain types:
//! the API shows a channel's provider as kind + WhatsApp provider and its credentials masked
//! (`channel_json`), employees, groups and chatbots without their tenant and times, working hours in a
//! shape of their own (`WorkingHours::to_json`), and request bodies are validated by hand so that a broken
//! rule names its field. Deriving schemas on the domain types would document their storage shape instead,
//! and put HTTP concerns in the domain. Tests below keep the two in step: the property names of each
//! response schema are the keys the handlers answer, and the bounds are the domain's constants.
//!
//! Each API module documents its own routes (a `Docs` struct next to its `router()`); `document()` merges
//! them, and a test checks that every route any router registers is in the document.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder, ResponsesBuilder};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// The document, built once.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| document().to_pretty_json().expect("the OpenAPI document serializes"));

/// The whole document: REST API, webhooks and this route.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Root::openapi();
    doc.merge(crate::api::docs());
    doc.merge(crate::webhooks::Docs::openapi());
    doc.merge(Meta::openapi());
    doc
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "omnichat",
        description = "Multichannel contact center: channels (Telegram, VK, Viber, WhatsApp, e-mail, Avito), \
            the contact center's people and hours, dialogs and replies, and the providers' webhooks.\n\n\
            Errors answer `{\"error\": {\"code\", \"message\", \"field\"}}`; `field` names the setting at \
            fault. Lists answer `{\"items\": [...], \"next\"}`: pass `?page=<next>` for the next page and \
            `?limit=N` (1 to 500, default 50) for its size. Another tenant's ids answer 404."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "tenant", description = "The tenant's services and API keys"),
        (name = "channels", description = "Connected provider accounts and their settings"),
        (name = "people", description = "Employees, groups and chatbots"),
        (name = "hours", description = "Working hours"),
        (name = "dialogs", description = "Dialogs, their messages and replies"),
        (name = "workspace", description = "An employee's own dialogs, queue and status"),
        (name = "webhooks", description = "Called by the providers, not by API clients"),
        (name = "meta", description = "This document")
    )
)]
struct Root;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A tenant's API key (admin or employee role)"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(paths(openapi_json))]
struct Meta;

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3 document", body = OpenApiDocument))
)]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

// ---- error responses, one per status, for `responses(...)` of the paths ----

macro_rules! error_response {
    ($(#[$doc:meta])* $name:ident, $status:literal, $description:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
                let content = ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build();
                ResponsesBuilder::new()
                    .response(
                        $status,
                        ResponseBuilder::new().description($description).content("application/json", content),
                    )
                    .build()
                    .into()
            }
        }
    };
}

error_response!(BadRequest, "400", "Malformed request: not JSON, a wrong type, or a bad query parameter");
error_response!(Unauthorized, "401", "No or bad API key (webhooks: the request is not verifiable)");
error_response!(
    NotFound,
    "404",
    "No such resource in the caller's tenant (or not visible to an employee key)"
);
error_response!(Conflict, "409", "The state changed meanwhile, or the resource is still in use");
error_response!(Unprocessable, "422", "A rule is broken; `field` names the setting at fault");
error_response!(BadGateway, "502", "The provider refused the call or could not be reached");
error_response!(Unavailable, "503", "The service's storage is unavailable; try again");

// ---- common shapes ----

/// Every error answers this body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`not_found`, `invalid_limit`, `auto_close_out_of_range`, ...).
    pub code: String,
    pub message: String,
    /// The field or setting at fault (`auto_close.after`, `auto_replies[0].text`), or null.
    #[schema(required = true)]
    pub field: Option<String>,
}

/// `?limit` and `?page` of every list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u32>,
    /// The `next` token of the previous page (opaque).
    pub page: Option<String>,
}

/// `{id}` in a path: a UUID (anything else is 404).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    #[param(format = "uuid")]
    pub id: String,
}

macro_rules! page_of {
    ($page:ident, $item:ident) => {
        #[doc = concat!("A page of ", stringify!($item), "s.")]
        #[derive(Serialize, ToSchema)]
        pub struct $page {
            pub items: Vec<$item>,
            /// The token of the next page, or null on the last one.
            #[schema(required = true)]
            pub next: Option<String>,
        }
    };
}

page_of!(ChannelPage, Channel);
page_of!(EmployeePage, Employee);
page_of!(GroupPage, Group);
page_of!(ChatbotPage, Chatbot);
page_of!(DialogPage, Dialog);
page_of!(MessagePage, Message);

// ---- tenant ----

#[derive(Serialize, ToSchema)]
pub struct Tenant {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    pub features: Features,
}

/// The tenant's services.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Features {
    /// WhatsApp channels need it.
    pub contact_center: bool,
    /// Chatbots in handling and off-hours need it.
    pub chatbots: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    pub features: Features,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Employee,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub role: Role,
    /// For an employee key: the employee it belongs to.
    #[schema(format = "uuid")]
    pub employee_id: Option<String>,
}

/// The clear key is in this response only; the service keeps its hash.
#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    pub key: String,
    pub role: Role,
    #[schema(format = "uuid", required = true)]
    pub employee_id: Option<String>,
}

// ---- channels ----

/// The kind of channel the admin picks (WhatsApp is one kind with three providers).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Telegram,
    Vk,
    Viber,
    Whatsapp,
    Email,
    Avito,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhatsappProvider {
    Edna,
    Messagebird,
    Infobip,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelStatus {
    Active,
    Displaced,
    Disconnected,
}

/// The provider account behind a channel.
#[derive(Serialize, ToSchema)]
pub struct Account {
    /// Stable id at the provider (bot id, community id, phone number, address).
    pub id: String,
    /// Bot name, community name, number or address.
    pub name: String,
}

/// A channel. Credentials are masked: never shown in clear.
#[derive(Serialize, ToSchema)]
pub struct Channel {
    #[schema(format = "uuid")]
    pub id: String,
    pub provider: ChannelKind,
    #[schema(required = true)]
    pub whatsapp_provider: Option<WhatsappProvider>,
    pub name: String,
    pub account: Account,
    pub status: ChannelStatus,
    /// The channel that took this one's account over (status `displaced`).
    #[schema(format = "uuid", required = true)]
    pub displaced_by: Option<String>,
    /// The full URL the provider calls.
    pub webhook_url: String,
    pub settings: ChannelSettings,
    /// Each credential masked (at most its last 4 characters shown).
    pub credentials: std::collections::BTreeMap<String, String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
}

/// A new channel, and the older channel of the same account it displaced (or null).
#[derive(Serialize, ToSchema)]
pub struct ChannelCreated {
    #[serde(flatten)]
    pub channel: Channel,
    #[schema(format = "uuid", required = true)]
    pub displaced: Option<String>,
}

/// Connect a channel. Credentials are provider-specific: Telegram and Viber `{"token"}`; VK
/// `{"access_token", "group_id"}`; WhatsApp edna `{"subject", "api_key"}`, MessageBird `{"access_key",
/// "channel_id", "signing_key", "namespace_id"?}`, Infobip `{"api_key", "base_url", "sender"}`; Avito
/// `{"client_id", "client_secret"}`.
#[derive(Deserialize, ToSchema)]
pub struct NewChannel {
    pub provider: ChannelKind,
    /// Required when `provider` is `whatsapp`.
    pub whatsapp_provider: Option<WhatsappProvider>,
    /// Defaults to the provider's name.
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[schema(value_type = Object, required = false)]
    pub credentials: Option<serde_json::Value>,
    pub settings: Option<ChannelSettings>,
}

/// Credentials to list the accounts they reach (Infobip: `{"api_key", "base_url"}`).
#[derive(Deserialize, ToSchema)]
pub struct AccountsQuery {
    pub provider: ChannelKind,
    pub whatsapp_provider: Option<WhatsappProvider>,
    #[schema(value_type = Object)]
    pub credentials: serde_json::Value,
}

/// The accounts credentials reach.
#[derive(Serialize, ToSchema)]
pub struct AccountList {
    pub items: Vec<Account>,
}

/// A WhatsApp channel's new provider and its credentials.
#[derive(Deserialize, ToSchema)]
pub struct ChangeProvider {
    pub whatsapp_provider: WhatsappProvider,
    #[schema(value_type = Object)]
    pub credentials: serde_json::Value,
}

/// Change a channel: the fields sent replace the current ones; without credentials the stored secret is
/// kept.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelUpdate {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    pub settings: Option<ChannelSettings>,
    #[schema(value_type = Object)]
    pub credentials: Option<serde_json::Value>,
}

/// Disconnecting needs `{"confirm": true}`; without it nothing changes (422).
#[derive(Deserialize, ToSchema)]
pub struct Disconnect {
    #[schema(nullable = false)]
    pub confirm: Option<bool>,
}

/// A channel's settings; omitted sections take their defaults.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    /// Who handles the channel's dialogs in working hours (null: the tenant's routing decides).
    pub handling: Option<Handling>,
    /// Sent to a customer who has waited `delay_seconds` without an answer.
    #[schema(max_items = 10)]
    pub auto_replies: Option<Vec<AutoReply>>,
    pub off_hours: Option<OffHours>,
    pub auto_close: Option<AutoClose>,
}

/// Exactly one of an employee, a group or (where the provider allows it) a chatbot of the tenant.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Handling {
    Employee(HandlingEmployee),
    Group(HandlingGroup),
    Chatbot(HandlingChatbot),
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandlingEmployee {
    #[schema(format = "uuid")]
    pub employee_id: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandlingGroup {
    #[schema(format = "uuid")]
    pub group_id: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandlingChatbot {
    #[schema(format = "uuid")]
    pub chatbot_id: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoReply {
    /// Not blank.
    #[schema(min_length = 1, max_length = 4096, pattern = r"\S")]
    pub text: String,
    #[schema(minimum = 1, maximum = 604800)]
    pub delay_seconds: u64,
}

/// Outside working hours: a chatbot or auto-replies, not both (422).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffHours {
    #[schema(format = "uuid")]
    pub chatbot_id: Option<String>,
    pub auto_replies: Option<bool>,
}

/// Close a dialog idle for `after` hours (1 to 8760) or days (1 to 365). Default: 24 hours.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AutoClose {
    Hours(AutoCloseHours),
    Days(AutoCloseDays),
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoCloseHours {
    #[schema(minimum = 1, maximum = 8760)]
    pub after: u32,
    pub unit: HoursUnit,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoCloseDays {
    #[schema(minimum = 1, maximum = 365)]
    pub after: u32,
    pub unit: DaysUnit,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoursUnit {
    Hours,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DaysUnit {
    Days,
}

// ---- people ----

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmployeeStatus {
    Online,
    Away,
    Offline,
}

#[derive(Serialize, ToSchema)]
pub struct Employee {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    pub status: EmployeeStatus,
    /// How many dialogs the employee handles at once.
    pub max_dialogs: u32,
}

/// An employee as sent: `POST` needs `name`; `PUT` changes the fields sent (an employee key may change
/// only its own `status`). `id` is ignored, so what `GET` answers can be sent back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmployeeInput {
    /// Ignored.
    pub id: Option<String>,
    /// 1 to 100 characters, no control characters.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub name: Option<String>,
    /// Default `offline`.
    pub status: Option<EmployeeStatus>,
    /// Default 5.
    #[schema(minimum = 1, maximum = 100)]
    pub max_dialogs: Option<u32>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    RoundRobin,
    LeastBusy,
    AllAtOnce,
}

#[derive(Serialize, ToSchema)]
pub struct Group {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    /// Employee ids, in the order distribution walks them.
    #[schema(format = "uuid")]
    pub members: Vec<String>,
    pub distribution: Distribution,
    /// How long a dialog waits for a member before it moves on.
    pub wait_seconds: u32,
}

/// A group as sent: `POST` needs `name`; `PUT` changes the fields sent (`members` replaces the list).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    /// Ignored.
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub name: Option<String>,
    /// Employees of the tenant, each once.
    #[schema(max_items = 200, format = "uuid")]
    pub members: Option<Vec<String>>,
    /// Default `round_robin`.
    pub distribution: Option<Distribution>,
    /// Default 60.
    #[schema(minimum = 1, maximum = 86400)]
    pub wait_seconds: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Chatbot {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    /// Where the bot service takes the dialog's messages.
    pub webhook_url: String,
    pub enabled: bool,
}

/// A chatbot as sent: `POST` needs `name` and `webhook_url`; `PUT` changes the fields sent.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatbotInput {
    /// Ignored.
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub name: Option<String>,
    /// https:// (plain http only to localhost, 127.0.0.0/8 and ::1), no credentials in it.
    #[schema(max_length = 2048, format = "uri", pattern = r"^(https://|http://(localhost|127\.|\[::1\]))")]
    pub webhook_url: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

// ---- working hours ----

/// Weekly hours in an IANA time zone, holidays and extra working days. Until they are set the tenant is
/// always open. An interval whose `to` is at or before its `from` crosses midnight.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    /// An IANA name such as `Europe/Moscow`.
    #[schema(min_length = 1, max_length = 64, example = "Europe/Moscow")]
    pub time_zone: String,
    pub weekly: Weekly,
    /// Closed dates, `YYYY-MM-DD`, each once.
    #[schema(max_items = 1000, value_type = Option<Vec<String>>, format = Date)]
    pub holidays: Option<Vec<String>>,
    /// Dates open with their own intervals instead of their weekday's; not holidays.
    #[schema(max_items = 366)]
    pub extra_days: Option<Vec<ExtraDay>>,
}

/// Days left out or null are closed.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Weekly {
    #[schema(max_items = 10)]
    pub mon: Option<Vec<Interval>>,
    #[schema(max_items = 10)]
    pub tue: Option<Vec<Interval>>,
    #[schema(max_items = 10)]
    pub wed: Option<Vec<Interval>>,
    #[schema(max_items = 10)]
    pub thu: Option<Vec<Interval>>,
    #[schema(max_items = 10)]
    pub fri: Option<Vec<Interval>>,
    #[schema(max_items = 10)]
    pub sat: Option<Vec<Interval>>,
    #[schema(max_items = 10)]
    pub sun: Option<Vec<Interval>>,
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

// ---- dialogs ----

/// `?status` and `?assignee` of the dialog list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DialogQuery {
    #[param(inline)]
    pub status: Option<DialogStatus>,
    /// An employee id.
    #[param(format = "uuid")]
    pub assignee: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DialogStatus {
    Open,
    Assigned,
    Closed,
}

/// The person writing to the business, as the provider identifies them.
#[derive(Serialize, ToSchema)]
pub struct Customer {
    /// The provider's id of the customer (chat id, user id, phone number, address).
    pub id: String,
    #[schema(required = true)]
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Dialog {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub tenant_id: String,
    #[schema(format = "uuid")]
    pub channel_id: String,
    pub customer: Customer,
    pub status: DialogStatus,
    #[schema(format = "uuid", required = true)]
    pub assignee_id: Option<String>,
    #[schema(format = "uuid", required = true)]
    pub group_id: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: String,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub assigned_at: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub closed_at: Option<String>,
    /// The last message either way.
    #[schema(value_type = String, format = DateTime)]
    pub last_activity_at: String,
    /// The chatbot that has the dialog, until it hands it to people.
    #[schema(format = "uuid", required = true)]
    pub chatbot_id: Option<String>,
    /// Routing's bookkeeping: the assignee's capacity slot the dialog holds.
    pub slot: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Message,
    Edit,
    ButtonReply,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutStatus {
    Pending,
    Sent,
    Delivered,
    Failed,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    Video,
    Audio,
    Voice,
    Document,
    Sticker,
    Location,
    Contact,
    Other,
}

/// A file the provider holds: its reference, not its bytes.
#[derive(Serialize, ToSchema)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub file_ref: String,
    pub mime: Option<String>,
    pub size: Option<u64>,
    pub name: Option<String>,
}

/// A message, either way.
#[derive(Serialize, ToSchema)]
pub struct Message {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub tenant_id: String,
    #[schema(format = "uuid")]
    pub channel_id: String,
    #[schema(format = "uuid")]
    pub dialog_id: String,
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
    pub sent_at: Option<String>,
    /// When the service stored it.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: String,
    /// Outbound only.
    #[schema(required = true)]
    pub status: Option<OutStatus>,
    /// Outbound only: the employee who wrote it.
    #[schema(format = "uuid", required = true)]
    pub author_id: Option<String>,
    /// Outbound only: why it failed, once it has.
    pub failure: Option<String>,
}

/// An employee's reply, sent through the channel's provider.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReply {
    /// Not blank.
    #[schema(min_length = 1, max_length = 4096, pattern = r"\S")]
    pub text: String,
    /// Quick-reply buttons, 1 to 64 characters each.
    #[schema(max_items = 10, nullable = false)]
    pub buttons: Option<Vec<ButtonLabel>>,
}

/// A button's label: 1 to 64 characters, not blank.
#[derive(Deserialize)]
pub struct ButtonLabel;

impl utoipa::PartialSchema for ButtonLabel {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(64))
            .pattern(Some(r"\S"))
            .into()
    }
}

impl ToSchema for ButtonLabel {}

// ---- webhooks ----

/// The providers that call webhooks (e-mail is fetched, not pushed).
#[derive(Deserialize, ToSchema)]
pub enum WebhookProvider {
    #[serde(rename = "telegram")]
    Telegram,
    #[serde(rename = "vk")]
    Vk,
    #[serde(rename = "viber")]
    Viber,
    #[serde(rename = "whatsapp-edna")]
    WhatsappEdna,
    #[serde(rename = "whatsapp-messagebird")]
    WhatsappMessagebird,
    #[serde(rename = "whatsapp-infobip")]
    WhatsappInfobip,
    #[serde(rename = "avito")]
    Avito,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookPath {
    #[param(inline)]
    pub provider: WebhookProvider,
    /// The channel's id.
    #[param(format = "uuid")]
    pub channel_id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookSecretPath {
    #[param(inline)]
    pub provider: WebhookProvider,
    /// The channel's id.
    #[param(format = "uuid")]
    pub channel_id: String,
    /// The channel's secret path segment (part of its `webhook_url`).
    pub secret: String,
}

/// The provider's own payload, exactly as it sends it (opaque here: each provider module parses its own).
pub struct WebhookPayload;

impl utoipa::PartialSchema for WebhookPayload {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        opaque_object("The provider's own payload, exactly as the provider sends it")
    }
}

impl ToSchema for WebhookPayload {}

/// An OpenAPI 3 document.
pub struct OpenApiDocument;

impl utoipa::PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        opaque_object("An OpenAPI 3 document")
    }
}

impl ToSchema for OpenApiDocument {}

fn opaque_object(description: &str) -> RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new().description(Some(description)).into()
}

#[cfg(test)]
mod tests;
