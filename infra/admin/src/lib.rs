//! `omnichat-admin`: the platform operator's work without HTTP (docs/API.md "Tenants and keys"), on the
//! local runner's embedded store or on AWS. Commands print JSON on stdout, errors on stderr with a
//! non-zero exit; a command refused for bad input changes nothing. The work is the shared library's use
//! cases; this crate parses arguments, opens the store and prints.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use omnichat::adapters::embedded::{DATABASE_FILE, DataDir, DataDirError, InProcessBus, open_data_dir};
use omnichat::domain::{Features, TenantId};
use omnichat::ports::clock::SystemClock;
use omnichat::usecases::{Context, Providers, auth, platform, tenants};
use serde_json::{Value, json};

mod remote;

#[derive(Debug, Parser)]
#[command(
    name = "omnichat-admin",
    version,
    about = "The omnichat platform operator's CLI: tenants, API keys and webhooks, without HTTP",
    long_about = "The omnichat platform operator's CLI: tenants, API keys and webhooks, without HTTP.\n\n\
        Store: with TABLE_NAME set, AWS (DynamoDB table TABLE_NAME, Secrets Manager under SECRET_PREFIX, \
        default \"omnichat/\"; region, credentials and AWS_ENDPOINT_URL the AWS SDK's usual way); else the \
        local runner's embedded store in OMNICHAT_DATA_DIR (default ./.omnichat); while an omnichat-local \
        runs on it, through that runner's HTTP API on 127.0.0.1 with the operator key it keeps in the data \
        dir (every command but webhooks reregister). --store overrides the choice.\n\n\
        Output: JSON on stdout. Errors: a message on stderr and exit status 1 (2 for bad arguments)."
)]
struct Cli {
    /// Which store to work on [default: aws when TABLE_NAME is set, else embedded]
    #[arg(long, value_enum, global = true)]
    store: Option<StoreKind>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// The local runner's data dir (OMNICHAT_DATA_DIR, default ./.omnichat)
    Embedded,
    /// DynamoDB and Secrets Manager (TABLE_NAME, SECRET_PREFIX)
    Aws,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Tenants (business accounts)
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// A tenant's API keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Providers' webhooks
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// One-off migrations of stored data after an upgrade
    #[command(subcommand)]
    Migrate(MigrateCommand),
}

#[derive(Debug, Subcommand)]
enum MigrateCommand {
    /// Flags the open-dialog pointer of every open dialog a chatbot has (data written before pointers
    /// carried the flag, issue 16), so its customers' messages reach the router, and forwards what reached
    /// those dialogs meanwhile. Prints {"chatbot_dialogs", "marked"}. Safe to run again.
    ChatbotPointers {
        /// Only this tenant's dialogs
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TenantsCommand {
    /// Creates a tenant and its admin key; prints {"tenant_id", "admin_key"} (the key is shown this once)
    Create(CreateTenant),
    /// Lists every tenant as a JSON array
    List,
}

#[derive(Debug, Args)]
struct CreateTenant {
    /// The tenant's name (1 to 100 characters)
    #[arg(long)]
    name: String,
    /// A paid service to switch on (repeatable); without any, both are on
    #[arg(long = "feature", value_enum)]
    features: Vec<Feature>,
    /// Switch every paid service off
    #[arg(long, conflicts_with = "features")]
    no_features: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Feature {
    /// The contact-center service (WhatsApp channels need it)
    ContactCenter,
    /// The chatbot service
    Chatbots,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Lists a tenant's API keys (id, role, employee, dates, last 4 characters; never the key)
    List {
        /// The tenant's id
        #[arg(long)]
        tenant: String,
    },
    /// Revokes one of a tenant's API keys: from the next request on it is refused
    Revoke {
        /// The tenant's id
        #[arg(long)]
        tenant: String,
        /// The key's id (from `keys list`)
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Points every active channel's webhook at PUBLIC_BASE_URL (after the public URL changed).
    ///
    /// Providers with an API for it (Telegram, VK, Viber, edna, MessageBird, Avito) are told the new URL;
    /// for Infobip the output names the URL the admin must paste into the provider's console (it carries
    /// the channel's webhook secret: handle it as a secret). Prints a JSON array, one object per channel:
    /// {tenant_id, channel_id, provider, outcome: registered|manual|failed, url (manual), reason
    /// (failed)}. One channel's failure does not stop the others; the exit status is 1 if any failed.
    /// Safe to run again.
    Reregister {
        /// Only this tenant's channels
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// Runs the CLI with these arguments (the first is the program's name) and answers the exit status.
pub async fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with status 0; usage errors to stderr with status 2.
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    init_logging();
    match run(cli).await {
        Ok(Outcome { output, success }) => {
            println!("{output}");
            if success { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(message) => {
            eprintln!("omnichat-admin: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Warnings and errors on stderr (`RUST_LOG` overrides); stdout is the command's JSON alone.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

struct Outcome {
    output: Value,
    success: bool,
}

impl Outcome {
    fn ok(output: Value) -> Self {
        Self { output, success: true }
    }
}

async fn run(cli: Cli) -> Result<Outcome, String> {
    // Arguments are checked before the store is opened: bad input touches nothing.
    let command = Checked::from(cli.command)?;
    let ctx = match open(cli.store, &command).await? {
        Target::Store(ctx) => ctx,
        Target::Runner(runner) => return run_on(&runner, command).await,
    };
    let failed = |e: omnichat::Error| e.to_string();
    match command {
        Checked::CreateTenant { name, features } => {
            let (tenant, key) = tenants::create_tenant(&ctx, &name, features).await.map_err(failed)?;
            Ok(Outcome::ok(json!({"tenant_id": tenant.id.to_string(), "admin_key": key.expose()})))
        }
        Checked::ListTenants => {
            let mut all = Vec::new();
            let mut page = None;
            loop {
                let (found, next) = tenants::list_tenants(&ctx, 100, page).await.map_err(failed)?;
                all.extend(found);
                page = next;
                if page.is_none() {
                    break;
                }
            }
            Ok(Outcome::ok(serde_json::to_value(all).map_err(|e| e.to_string())?))
        }
        Checked::ListKeys { tenant } => {
            let keys = auth::list_api_keys(&ctx, &auth::Principal::admin_of(tenant)).await.map_err(failed)?;
            Ok(Outcome::ok(serde_json::to_value(keys).map_err(|e| e.to_string())?))
        }
        Checked::RevokeKey { tenant, key_id } => {
            auth::revoke_api_key(&ctx, &auth::Principal::admin_of(tenant.clone()), &key_id)
                .await
                .map_err(failed)?;
            Ok(Outcome::ok(json!({"revoked": key_id, "tenant_id": tenant.to_string()})))
        }
        Checked::Reregister { tenant } => {
            let done = platform::reregister_webhooks(&ctx, tenant.as_ref()).await.map_err(failed)?;
            let success = !done.iter().any(platform::Reregistration::failed);
            let output = Value::Array(done.iter().map(platform::Reregistration::to_report).collect());
            Ok(Outcome { output, success })
        }
        Checked::MarkChatbotPointers { tenant } => {
            let done = platform::mark_chatbot_dialogs(&ctx, tenant.as_ref()).await.map_err(failed)?;
            Ok(Outcome::ok(json!({"chatbot_dialogs": done.chatbot_dialogs, "marked": done.marked})))
        }
    }
}

/// A command through a running local runner's HTTP API.
async fn run_on(runner: &remote::Runner, command: Checked) -> Result<Outcome, String> {
    match command {
        Checked::CreateTenant { name, features } => {
            Ok(Outcome::ok(runner.create_tenant(&name, &features).await?))
        }
        Checked::ListTenants => Ok(Outcome::ok(runner.list_tenants().await?)),
        Checked::ListKeys { tenant } => Ok(Outcome::ok(runner.list_keys(&tenant).await?)),
        Checked::RevokeKey { tenant, key_id } => {
            runner.revoke_key(&tenant, &key_id).await?;
            Ok(Outcome::ok(json!({"revoked": key_id, "tenant_id": tenant.to_string()})))
        }
        Checked::Reregister { .. } => Err("webhooks reregister needs the data dir itself (it reads every \
                                           channel's secrets, which the HTTP API never answers): stop the \
                                           running omnichat-local and run it again"
            .into()),
        Checked::MarkChatbotPointers { .. } => {
            Err("migrate chatbot-pointers needs the data dir itself (no HTTP \
                                                    route does it): stop the running omnichat-local and run \
                                                    it again"
                .into())
        }
    }
}

/// Where a command runs: on a store this process opened, or through the local runner holding it.
enum Target {
    Store(Box<Context>),
    Runner(remote::Runner),
}

/// A command with its arguments checked.
enum Checked {
    CreateTenant { name: String, features: Features },
    ListTenants,
    ListKeys { tenant: TenantId },
    RevokeKey { tenant: TenantId, key_id: String },
    Reregister { tenant: Option<TenantId> },
    MarkChatbotPointers { tenant: Option<TenantId> },
}

impl Checked {
    fn from(command: Command) -> Result<Self, String> {
        Ok(match command {
            Command::Tenants(TenantsCommand::Create(create)) => {
                let features = if create.no_features {
                    Features { contact_center: false, chatbots: false }
                } else if create.features.is_empty() {
                    Features::default()
                } else {
                    Features {
                        contact_center: create.features.contains(&Feature::ContactCenter),
                        chatbots: create.features.contains(&Feature::Chatbots),
                    }
                };
                Checked::CreateTenant { name: create.name, features }
            }
            Command::Tenants(TenantsCommand::List) => Checked::ListTenants,
            Command::Keys(KeysCommand::List { tenant }) => Checked::ListKeys { tenant: tenant_id(&tenant)? },
            Command::Keys(KeysCommand::Revoke { tenant, key_id }) => {
                if key_id.trim().is_empty() {
                    return Err("KEY_ID must not be empty".into());
                }
                Checked::RevokeKey { tenant: tenant_id(&tenant)?, key_id }
            }
            Command::Webhooks(WebhooksCommand::Reregister { tenant }) => {
                Checked::Reregister { tenant: tenant.as_deref().map(tenant_id).transpose()? }
            }
            Command::Migrate(MigrateCommand::ChatbotPointers { tenant }) => {
                Checked::MarkChatbotPointers { tenant: tenant.as_deref().map(tenant_id).transpose()? }
            }
        })
    }

    fn needs_public_url(&self) -> bool {
        matches!(self, Checked::Reregister { .. })
    }
}

fn tenant_id(raw: &str) -> Result<TenantId, String> {
    TenantId::parse(raw.trim()).ok_or_else(|| format!("--tenant {raw:?} is not a tenant id (a UUID)"))
}

/// The context on the chosen store, or the running local runner that holds it.
async fn open(kind: Option<StoreKind>, command: &Checked) -> Result<Target, String> {
    let public_base_url = std::env::var("PUBLIC_BASE_URL").unwrap_or_default();
    if command.needs_public_url() && public_base_url.trim().is_empty() {
        return Err("PUBLIC_BASE_URL is not set: set it to the public base URL providers must call \
                    (for example https://abc123.execute-api.eu-central-1.amazonaws.com)"
            .into());
    }
    let table_set = std::env::var("TABLE_NAME").is_ok_and(|t| !t.is_empty());
    match kind.unwrap_or(if table_set { StoreKind::Aws } else { StoreKind::Embedded }) {
        StoreKind::Aws => {
            if !table_set {
                return Err("--store aws needs TABLE_NAME (the DynamoDB table of the stack)".into());
            }
            omnichat::bootstrap::aws_platform_context().await.map(|ctx| Target::Store(Box::new(ctx)))
        }
        StoreKind::Embedded => {
            let dir = std::env::var_os("OMNICHAT_DATA_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| ".omnichat".into());
            // Never create a store here: a mistyped OMNICHAT_DATA_DIR must not leave an empty one behind.
            if !dir.join(DATABASE_FILE).is_file() {
                return Err(format!(
                    "no omnichat data in {} (OMNICHAT_DATA_DIR): start omnichat-local once to create it, or \
                     point OMNICHAT_DATA_DIR at its data dir",
                    dir.display()
                ));
            }
            let DataDir { store, secrets } = match open_data_dir(&dir) {
                Ok(opened) => opened,
                Err(DataDirError::InUse(dir)) => return remote::Runner::find(&dir).await.map(Target::Runner),
                Err(other) => return Err(other.to_string()),
            };
            Ok(Target::Store(Box::new(Context::new(
                Arc::new(store),
                Arc::new(secrets),
                Arc::new(InProcessBus::new(16)),
                Arc::new(SystemClock),
                Providers::from_env(),
                public_base_url,
            ))))
        }
    }
}
