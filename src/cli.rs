//! The `idhub` command line.

use crate::config::{Config, ConfigError, Layers, redact_url};
use crate::metrics::Metrics;
use crate::model::{
    Actor, Hostname, NewUser, PageRequest, ScimProfile, Slug, Tenant, display_name, now_micros,
    rfc3339,
};
use crate::startup::{self, Application};
use crate::store::{Store, TenantStore, TenantUpdate};
use crate::{auth, telemetry};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// idhub: SCIM 2.0 and SAML 2.0 enterprise provisioning hub.
///
/// Configuration comes from built-in defaults, then ./idhub.toml (or --config), then IDHUB_*
/// environment variables (IDHUB_DATABASE_URL, IDHUB_LISTEN, …), then flags; later wins.
#[derive(Parser, Debug)]
#[command(name = "idhub", version, about, long_about)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./idhub.toml when present.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH (default sqlite://data/idhub.db) or postgres://…
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server: migrate, create the default tenant and (on first start) the bootstrap
    /// administrator, then serve HTTP until SIGTERM/SIGINT.
    Serve {
        /// Address to listen on (e.g. 0.0.0.0:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// External base URL, used in printed links and generated URLs.
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage tenants (customer organisations).
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Manage administrators.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Manage a tenant's SCIM bearer tokens (shown once, stored hashed).
    #[command(subcommand, name = "scim-token")]
    ScimToken(ScimTokenCmd),
    /// Manage the keys that sign REST access tokens (JWKS).
    #[command(subcommand, name = "signing-key")]
    SigningKey(SigningKeyCmd),
    /// Manage a tenant's SAML single sign-on (connections, SP keys).
    #[command(subcommand)]
    Sso(SsoCmd),
    /// Import a directory export into a tenant.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Print the OpenAPI document of the REST API.
    Openapi {
        /// YAML instead of JSON.
        #[arg(long)]
        yaml: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant.
    Create {
        /// URL-safe identifier: a-z, 0-9, '-'.
        #[arg(long)]
        slug: String,
        /// Human-readable name.
        #[arg(long)]
        display_name: String,
        /// Hostname that serves this tenant (repeatable).
        #[arg(long = "hostname", value_name = "HOST")]
        hostnames: Vec<String>,
    },
    /// List tenants.
    List {
        /// Substring of slug or display name.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
    /// Show one tenant.
    Show { slug: String },
    /// Update a tenant.
    Update {
        slug: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Replace the hostnames with these (repeatable).
        #[arg(long = "hostname", value_name = "HOST")]
        hostnames: Vec<String>,
        /// Remove every hostname.
        #[arg(long, conflicts_with = "hostnames")]
        clear_hostnames: bool,
        /// Maintenance mode (for the default tenant: the whole installation reports not ready).
        #[arg(long, value_enum)]
        maintenance: Option<OnOff>,
        /// SCIM compatibility profile.
        #[arg(long, value_enum)]
        scim_profile: Option<ProfileArg>,
        /// SCIM DELETE deactivates and hides instead of removing.
        #[arg(long, value_enum)]
        soft_delete: Option<OnOff>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProfileArg {
    Strict,
    Entra,
    Okta,
    Lenient,
}

#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// Create an administrator. The password is IDHUB_ADMIN_PASSWORD when set, otherwise
    /// generated and printed once.
    Create {
        #[arg(long)]
        username: String,
        /// Tenant slug (default: the default tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Make this administrator an operator of every tenant (default tenant only).
        #[arg(long)]
        superadmin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScimTokenCmd {
    /// Issue a token (printed once).
    Create {
        #[command(flatten)]
        tenant: TenantArg,
        /// A label for the token (e.g. "Okta production").
        #[arg(long)]
        name: String,
        /// Expire the token after this many days.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Revoke a token by id.
    Revoke {
        #[command(flatten)]
        tenant: TenantArg,
        /// The token id (from `list`).
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImportCmd {
    /// Create users from SCIM User resources — a JSON array, a SCIM ListResponse, or one
    /// resource per line — exactly as POST /Users would (validation, change log, audit),
    /// 1,000 per transaction. Prints what was created and every record that was not; exits
    /// non-zero when any record was not created.
    Users {
        #[command(flatten)]
        tenant: TenantArg,
        /// The export file (`-` reads standard input).
        file: std::path::PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct TenantArg {
    /// Tenant slug.
    #[arg(long)]
    pub tenant: String,
}

#[derive(Subcommand, Debug)]
pub enum SigningKeyCmd {
    /// Create a new signing key. Older keys stop signing but keep verifying until the tokens
    /// they signed have expired; running nodes pick the new key up within a minute.
    Rotate,
    /// List the keys that still verify.
    List,
}

#[derive(Subcommand, Debug)]
pub enum SsoCmd {
    /// SAML connections to the tenant's IdPs.
    #[command(subcommand)]
    Connection(ConnectionCmd),
    /// The tenant's SP key pairs (signing AuthnRequests, decrypting assertions).
    #[command(subcommand, name = "sp-key")]
    SpKey(SpKeyCmd),
}

#[derive(Subcommand, Debug)]
pub enum ConnectionCmd {
    /// List connections.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Create a connection from exactly one of: --metadata-file, --metadata-url, or
    /// --entity-id with --sso-url and --certificate-file.
    Create {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        name: Option<String>,
        /// The IdP's metadata XML.
        #[arg(long, value_name = "FILE")]
        metadata_file: Option<std::path::PathBuf>,
        /// An https URL to fetch the metadata from (and refresh on a schedule).
        #[arg(long, value_name = "URL")]
        metadata_url: Option<String>,
        #[arg(long, value_name = "ENTITY_ID")]
        entity_id: Option<String>,
        #[arg(long, value_name = "URL")]
        sso_url: Option<String>,
        #[arg(long, value_name = "URL")]
        slo_url: Option<String>,
        /// An IdP signing certificate (PEM); repeat for several.
        #[arg(long, value_name = "FILE")]
        certificate_file: Vec<std::path::PathBuf>,
        /// Accept logins the IdP starts.
        #[arg(long)]
        allow_idp_initiated: bool,
        /// Turn JIT provisioning off (only existing users may sign in).
        #[arg(long)]
        no_jit: bool,
    },
    /// Show a connection and what to configure at the IdP.
    Show {
        #[command(flatten)]
        tenant: TenantArg,
        id: String,
    },
    /// Fetch the connection's metadata URL now.
    RefreshMetadata {
        #[command(flatten)]
        tenant: TenantArg,
        id: String,
    },
    /// The newest login attempts, with outcome and reason.
    Logins {
        #[command(flatten)]
        tenant: TenantArg,
        id: String,
    },
    /// Delete a connection.
    Delete {
        #[command(flatten)]
        tenant: TenantArg,
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SpKeyCmd {
    /// List the SP certificates (current first).
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// A new current key; the old certificate stays published until `retire-previous`.
    Rotate {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Stop publishing and using the previous key.
    RetirePrevious {
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Validate the configuration and show every value and its source (secrets redacted).
    Check,
}

/// Exit status 2: bad configuration or usage.
const EXIT_CONFIG: u8 = 2;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let mut layers = match Layers::load(cli.config.as_deref(), std::env::vars()) {
        Ok(l) => l,
        Err(e) => return config_error(&e),
    };
    if let Some(url) = &cli.database_url {
        layers.set_flag("database_url", "--database-url", url);
    }
    if let Some(f) = cli.log_format {
        layers.set_flag(
            "log_format",
            "--log-format",
            match f {
                LogFormatArg::Text => "text",
                LogFormatArg::Json => "json",
            },
        );
    }
    if let Command::Serve { listen, public_url } = &cli.command {
        if let Some(l) = listen {
            layers.set_flag("listen", "--listen", l);
        }
        if let Some(u) = public_url {
            layers.set_flag("public_url", "--public-url", u);
        }
    }
    let config = match layers.resolve() {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    match cli.command {
        Command::Serve { .. } => {
            telemetry::init(config.log_format, &config.log_level);
            serve(config).await
        }
        Command::Config(ConfigCmd::Check) => {
            for line in layers.describe() {
                println!("{line}");
            }
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Command::Openapi { yaml } => {
            let svc = crate::api::service();
            println!("{}", if yaml { svc.spec_yaml() } else { svc.spec() });
            ExitCode::SUCCESS
        }
        other => {
            telemetry::init(config.log_format, "warn");
            let result = admin_command(&config, other).await;
            flush_opened().await;
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
    }
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("configuration error: {e}");
    ExitCode::from(EXIT_CONFIG)
}

async fn serve(config: Config) -> ExitCode {
    let db = redact_url(config.database_url.expose());
    let app = match Application::build(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = app.base_url();
    let shutdown = startup::shutdown_signal();
    // The banner goes to standard output; a closed stdout (a supervisor that does not read it)
    // must not take the server down, so write errors are ignored.
    macro_rules! say {
        ($($arg:tt)*) => {{
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), $($arg)*);
        }};
    }
    say!(
        "idhub {} is listening on http://{}",
        env!("CARGO_PKG_VERSION"),
        app.addr
    );
    say!("  Swagger UI:  {base}/swagger");
    say!("  Health:      {base}/health/ready");
    say!("  Metrics:     {base}/metrics");
    say!("  Database:    {db}");
    if let Some(b) = &app.bootstrap {
        match &b.generated_password {
            Some(pw) => {
                say!("  Administrator created (the password is shown this once):");
                say!("    user name: {}", b.user_name);
                say!("    password:  {pw}");
            }
            None => say!(
                "  Administrator created: user name {} with the password from IDHUB_ADMIN_PASSWORD",
                b.user_name
            ),
        }
        say!(
            "  Sign in:     curl -X POST {base}/api/v1/auth/login -H 'content-type: application/json' -d '{{\"username\":\"{}\",\"password\":\"PASSWORD\"}}'",
            b.user_name
        );
    } else {
        say!("  Sign in with an administrator account (idhub admin create makes one).");
    }
    match app.run_until(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CmdError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Startup(#[from] startup::StartupError),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Other(String),
}

impl CmdError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => EXIT_CONFIG,
            _ => 1,
        }
    }
}

/// The stores this command opened: their queued cross-node notifications are sent before
/// the process exits (see `store::notifier`).
static OPENED: std::sync::Mutex<Vec<Store>> = std::sync::Mutex::new(Vec::new());

fn opened(store: &Store) {
    OPENED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(store.clone());
}

async fn flush_opened() {
    let stores = std::mem::take(&mut *OPENED.lock().unwrap_or_else(|e| e.into_inner()));
    for s in stores {
        if !s
            .flush_notifications(std::time::Duration::from_secs(5))
            .await
        {
            eprintln!("warning: could not tell the running nodes about this command's changes");
        }
    }
}

async fn open(config: &Config) -> Result<Store, CmdError> {
    let metrics = Metrics::new().map_err(|e| CmdError::Other(e.to_string()))?;
    let store = startup::open_store(config, &metrics).await?;
    opened(&store);
    if let Some(t) = store.tenant_by_slug(&config.default_tenant).await? {
        store.set_default_tenant(t.id);
    }
    // Revocations and other writes from the CLI take effect on every node before it returns.
    crate::cluster::observe(&store, config.database_url.expose()).await;
    Ok(store)
}

async fn tenant_by_slug(store: &Store, slug: &str) -> Result<Tenant, CmdError> {
    store
        .tenant_by_slug(slug)
        .await?
        .ok_or_else(|| CmdError::NotFound(format!("no tenant with slug {slug:?}")))
}

async fn tenant_store(store: &Store, slug: &str) -> Result<TenantStore, CmdError> {
    Ok(store.tenant(tenant_by_slug(store, slug).await?.id))
}

fn hostnames(raw: &[String]) -> Result<Vec<Hostname>, CmdError> {
    raw.iter()
        .map(|h| Hostname::parse(h).map_err(|e| CmdError::Usage(e.to_string())))
        .collect()
}

fn print_tenant(t: &Tenant) {
    println!("id:           {}", t.id);
    println!("slug:         {}", t.slug);
    println!("display name: {}", t.display_name);
    println!(
        "hostnames:    {}",
        if t.hostnames.is_empty() {
            "-".to_owned()
        } else {
            t.hostnames.join(", ")
        }
    );
    println!(
        "settings:     {}",
        serde_json::to_string(&t.settings).unwrap_or_default()
    );
    println!("created:      {}", rfc3339(t.created_at));
}

async fn admin_command(config: &Config, cmd: Command) -> Result<(), CmdError> {
    let actor = Actor::cli();
    match cmd {
        Command::Migrate => {
            let store = open(config).await?;
            println!("migrations applied ({})", store.backend().name());
        }
        Command::Tenant(TenantCmd::Create {
            slug,
            display_name: name,
            hostnames: hosts,
        }) => {
            let slug = Slug::parse(&slug).map_err(|e| CmdError::Usage(e.to_string()))?;
            let name = display_name(&name).map_err(|e| CmdError::Usage(e.to_string()))?;
            let hosts = hostnames(&hosts)?;
            let store = open(config).await?;
            let t = store
                .create_tenant(&actor, &slug, &name, &hosts)
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::Conflict { constraint } => {
                        CmdError::Other(format!("already taken ({constraint})"))
                    }
                    other => other.into(),
                })?;
            print_tenant(&t);
        }
        Command::Tenant(TenantCmd::List {
            search,
            page,
            limit,
        }) => {
            let store = open(config).await?;
            let found = store
                .list_tenants(
                    PageRequest {
                        page: page.max(1),
                        limit: limit.clamp(1, PageRequest::MAX_LIMIT),
                    },
                    search.as_deref(),
                )
                .await?;
            println!("{:<24} {:<32} HOSTNAMES", "SLUG", "DISPLAY NAME");
            for t in &found.items {
                println!(
                    "{:<24} {:<32} {}",
                    t.slug,
                    t.display_name,
                    t.hostnames.join(",")
                );
            }
            println!("({} of {} tenants)", found.items.len(), found.total);
        }
        Command::Tenant(TenantCmd::Show { slug }) => {
            let store = open(config).await?;
            print_tenant(&tenant_by_slug(&store, &slug).await?);
        }
        Command::Tenant(TenantCmd::Update {
            slug,
            display_name: name,
            hostnames: hosts,
            clear_hostnames,
            maintenance,
            scim_profile,
            soft_delete,
        }) => {
            let name = name
                .map(|n| display_name(&n))
                .transpose()
                .map_err(|e| CmdError::Usage(e.to_string()))?;
            let hosts = if clear_hostnames {
                Some(Vec::new())
            } else if hosts.is_empty() {
                None
            } else {
                Some(hostnames(&hosts)?)
            };
            let store = open(config).await?;
            let t = tenant_by_slug(&store, &slug).await?;
            let settings =
                if maintenance.is_some() || scim_profile.is_some() || soft_delete.is_some() {
                    let mut s = t.settings.clone();
                    if let Some(m) = maintenance {
                        s.maintenance = matches!(m, OnOff::On);
                    }
                    if let Some(d) = soft_delete {
                        s.soft_delete = matches!(d, OnOff::On);
                    }
                    if let Some(p) = scim_profile {
                        s.scim_profile = match p {
                            ProfileArg::Strict => ScimProfile::Strict,
                            ProfileArg::Entra => ScimProfile::Entra,
                            ProfileArg::Okta => ScimProfile::Okta,
                            ProfileArg::Lenient => ScimProfile::Lenient,
                        };
                    }
                    Some(s)
                } else {
                    None
                };
            let t = store
                .update_tenant(
                    &actor,
                    &t.id,
                    TenantUpdate {
                        display_name: name,
                        hostnames: hosts,
                        settings,
                    },
                    None,
                )
                .await?;
            print_tenant(&t);
        }
        Command::Admin(AdminCmd::Create {
            username,
            tenant,
            superadmin,
        }) => {
            let store = open(config).await?;
            let slug = tenant.unwrap_or_else(|| config.default_tenant.clone());
            if superadmin && slug != config.default_tenant {
                return Err(CmdError::Usage(
                    "--superadmin is only for administrators of the default tenant".into(),
                ));
            }
            let ts = tenant_store(&store, &slug).await?;
            let (pw, generated) = match &config.admin_password {
                Some(p) => (p.expose().to_owned(), false),
                None => (auth::password::generate(), true),
            };
            let hash = auth::password::hash(pw.clone())
                .await
                .map_err(|e| CmdError::Other(e.to_string()))?;
            let user = ts
                .create_user(
                    &actor,
                    NewUser {
                        user_name: username.clone(),
                        active: true,
                        ..NewUser::default()
                    },
                )
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::Conflict { .. } => {
                        CmdError::Other(format!("user name {username:?} is already taken"))
                    }
                    other => other.into(),
                })?;
            ts.set_password_hash(&actor, &user.id, &hash).await?;
            ts.grant_role(&actor, &user.id, "admin").await?;
            if superadmin {
                ts.grant_role(&actor, &user.id, auth::ROLE_SUPERADMIN)
                    .await?;
            }
            println!(
                "administrator {username} created in tenant {slug} (id {})",
                user.id
            );
            if generated {
                println!("password (shown once): {pw}");
            }
        }
        Command::ScimToken(ScimTokenCmd::Create {
            tenant,
            name,
            expires_in_days,
        }) => {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 200 {
                return Err(CmdError::Usage("--name must be 1-200 characters".into()));
            }
            let store = open(config).await?;
            let ts = tenant_store(&store, &tenant.tenant).await?;
            let expires = expires_in_days.map(|d| now_micros() + i64::from(d) * 86_400 * 1_000_000);
            let issued = ts.create_token(&actor, "scim", &name, expires).await?;
            println!("token id: {}", issued.info.id);
            if let Some(e) = issued.info.expires_at {
                println!("expires:  {}", rfc3339(e));
            }
            println!("token (shown once; store it in your identity provider now):");
            println!("{}", issued.secret);
        }
        Command::Import(ImportCmd::Users { tenant, file }) => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| CmdError::Usage(format!("cannot read standard input: {e}")))?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| CmdError::Usage(format!("cannot read {}: {e}", file.display())))?
            };
            let records = crate::provisioning::import::records(&text)
                .map_err(|e| CmdError::Usage(format!("{}: {e}", file.display())))?;
            let store = open(config).await?;
            let t = tenant_by_slug(&store, &tenant.tenant).await?;
            let ctx = crate::provisioning::ScimCtx::for_tenant(
                &store,
                &t,
                actor.clone(),
                format!("{}/scim/v2", config.public_url),
            )
            .await?;
            let started = std::time::Instant::now();
            let report = crate::provisioning::import::import_users(&ctx, records).await?;
            for (number, e) in &report.failures {
                let kind = e.to_json()["scimType"]
                    .as_str()
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default();
                println!(
                    "record {number}: not created ({}{kind}): {}",
                    e.status, e.detail
                );
            }
            println!(
                "imported {} of {} users into tenant {} in {:.1} s ({} not created)",
                report.created,
                report.records,
                t.slug,
                started.elapsed().as_secs_f64(),
                report.failures.len()
            );
            if !report.failures.is_empty() {
                return Err(CmdError::Other(format!(
                    "{} records were not created",
                    report.failures.len()
                )));
            }
        }
        Command::ScimToken(ScimTokenCmd::List { tenant }) => {
            let store = open(config).await?;
            let ts = tenant_store(&store, &tenant.tenant).await?;
            println!(
                "{:<38} {:<24} {:<16} {:<26} {:<26} STATUS",
                "ID", "NAME", "PREFIX", "CREATED", "LAST USED"
            );
            for t in ts.list_tokens("scim").await? {
                let status = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= now_micros()) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<38} {:<24} {:<16} {:<26} {:<26} {status}",
                    t.id,
                    t.name,
                    t.prefix,
                    rfc3339(t.created_at),
                    t.last_used_at
                        .map(rfc3339)
                        .unwrap_or_else(|| "never".into())
                );
            }
        }
        Command::ScimToken(ScimTokenCmd::Revoke { tenant, id }) => {
            let store = open(config).await?;
            let ts = tenant_store(&store, &tenant.tenant).await?;
            ts.revoke_token(&actor, &id).await.map_err(|e| match e {
                crate::store::StoreError::NotFound => {
                    CmdError::NotFound(format!("no token {id:?} in tenant {}", tenant.tenant))
                }
                other => other.into(),
            })?;
            println!("token {id} revoked");
        }
        Command::SigningKey(SigningKeyCmd::Rotate) => {
            let store = open(config).await?;
            let keys = crate::auth::jwt::KeyRing::load(
                store,
                config.public_url.clone(),
                config.access_token_ttl,
            )
            .await
            .map_err(|e| CmdError::Other(e.to_string()))?;
            let kid = keys
                .rotate()
                .await
                .map_err(|e| CmdError::Other(e.to_string()))?;
            println!("new signing key {kid}");
        }
        Command::SigningKey(SigningKeyCmd::List) => {
            let store = open(config).await?;
            for k in store.signing_keys().await? {
                println!(
                    "{}  {}  created {}  {}",
                    k.kid,
                    k.alg,
                    crate::model::rfc3339(k.created_at),
                    match (k.retired_at, k.expires_at) {
                        (None, _) => "signing".to_owned(),
                        (Some(_), Some(e)) =>
                            format!("retired, verifies until {}", crate::model::rfc3339(e)),
                        (Some(r), None) => format!("retired {}", crate::model::rfc3339(r)),
                    }
                );
            }
        }
        Command::Sso(cmd) => sso_command(config, cmd, &actor).await?,
        Command::Serve { .. } | Command::Config(_) | Command::Openapi { .. } => {}
    }
    Ok(())
}

fn read_file(path: &std::path::Path) -> Result<String, CmdError> {
    std::fs::read_to_string(path)
        .map_err(|e| CmdError::Usage(format!("cannot read {}: {e}", path.display())))
}

fn sso_error(e: crate::sso::SsoError) -> CmdError {
    use crate::sso::SsoError;
    match e {
        SsoError::NotFound(what) => CmdError::NotFound(format!("no such {what}")),
        SsoError::Invalid { field, message } => CmdError::Usage(format!("{field}: {message}")),
        SsoError::Store(s) => CmdError::Store(s),
        other => CmdError::Other(other.to_string()),
    }
}

fn print_connection(state: &crate::app::AppState, c: &crate::store::saml::SamlConnection) {
    let urls = crate::sso::sp_urls(&state.config.public_url, &c.id);
    println!("id:              {}", c.id);
    println!("name:            {}", c.name);
    println!("active:          {}", c.active);
    println!("IdP entity ID:   {}", c.idp_entity_id);
    println!("IdP SSO URL:     {}", c.sso_url);
    println!("IdP SLO URL:     {}", c.slo_url.as_deref().unwrap_or("-"));
    for cert in crate::sso::connections::parse_certificates(&c.certificates).unwrap_or_default() {
        println!(
            "IdP certificate: {} (expires {})",
            cert.sha256_fingerprint,
            rfc3339(cert.not_after_unix.saturating_mul(1_000_000))
        );
    }
    if let Some(u) = &c.metadata_url {
        println!(
            "metadata URL:    {u} ({}{})",
            c.metadata_status.as_deref().unwrap_or("not fetched"),
            c.metadata_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    println!(
        "settings:        idp-initiated={} skew={}s signing={} encrypted={} jit={}",
        c.allow_idp_initiated, c.clock_skew_secs, c.required_signing, c.want_encrypted, c.jit
    );
    println!("SP entity ID:    {}", urls.entity_id);
    println!("SP ACS URL:      {}", urls.acs);
    println!("SP SLO URL:      {}", urls.slo);
    println!("SP metadata:     {}", urls.metadata);
}

async fn sso_command(config: &Config, cmd: SsoCmd, actor: &Actor) -> Result<(), CmdError> {
    let state = startup::offline_state(config.clone()).await?;
    opened(&state.store);
    let ts = |slug: String| {
        let store = state.store.clone();
        async move { tenant_store(&store, &slug).await }
    };
    match cmd {
        SsoCmd::Connection(ConnectionCmd::List { tenant }) => {
            let ts = ts(tenant.tenant).await?;
            println!("{:<38} {:<8} {:<30} IDP ENTITY ID", "ID", "ACTIVE", "NAME");
            for c in ts.saml_connections().await? {
                println!(
                    "{:<38} {:<8} {:<30} {}",
                    c.id, c.active, c.name, c.idp_entity_id
                );
            }
        }
        SsoCmd::Connection(ConnectionCmd::Create {
            tenant,
            name,
            metadata_file,
            metadata_url,
            entity_id,
            sso_url,
            slo_url,
            certificate_file,
            allow_idp_initiated,
            no_jit,
        }) => {
            let ts = ts(tenant.tenant).await?;
            let certificates = if certificate_file.is_empty() {
                None
            } else {
                Some(
                    certificate_file
                        .iter()
                        .map(|p| read_file(p))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            };
            let input = crate::sso::connections::ConnectionInput {
                name,
                metadata_xml: metadata_file.as_deref().map(read_file).transpose()?,
                metadata_url,
                idp_entity_id: entity_id,
                sso_url,
                slo_url,
                certificates,
                allow_idp_initiated: Some(allow_idp_initiated),
                jit: Some(!no_jit),
                ..Default::default()
            };
            let c = crate::sso::connections::create(&state, &ts, actor, input)
                .await
                .map_err(sso_error)?;
            print_connection(&state, &c);
        }
        SsoCmd::Connection(ConnectionCmd::Show { tenant, id }) => {
            let ts = ts(tenant.tenant).await?;
            let c = ts
                .saml_connection(&id)
                .await?
                .ok_or_else(|| CmdError::NotFound(format!("no connection {id:?}")))?;
            print_connection(&state, &c);
        }
        SsoCmd::Connection(ConnectionCmd::RefreshMetadata { tenant, id }) => {
            let ts = ts(tenant.tenant).await?;
            let c = crate::sso::connections::refresh_metadata(&state, &ts, actor, &id)
                .await
                .map_err(sso_error)?;
            print_connection(&state, &c);
        }
        SsoCmd::Connection(ConnectionCmd::Logins { tenant, id }) => {
            let ts = ts(tenant.tenant).await?;
            if ts.saml_connection(&id).await?.is_none() {
                return Err(CmdError::NotFound(format!("no connection {id:?}")));
            }
            for e in ts.saml_login_log(&id, 50).await? {
                println!(
                    "{}  {:<13} {:<7} {:<28} {}",
                    rfc3339(e.at),
                    e.kind,
                    e.outcome,
                    e.reason.as_deref().unwrap_or("-"),
                    e.name_id.as_deref().unwrap_or("-")
                );
            }
        }
        SsoCmd::Connection(ConnectionCmd::Delete { tenant, id }) => {
            let ts = ts(tenant.tenant).await?;
            crate::sso::connections::delete(&state, &ts, actor, &id)
                .await
                .map_err(sso_error)?;
            println!("connection {id} deleted");
        }
        SsoCmd::SpKey(SpKeyCmd::List { tenant }) => {
            let ts = ts(tenant.tenant).await?;
            let keys = crate::sso::keys::tenant_keys(&state, &ts)
                .await
                .map_err(sso_error)?;
            for (row, pair) in keys.rows.iter().zip(keys.pairs.iter()) {
                let cert = pair.certificate();
                println!(
                    "{}  {:<8}  {}  expires {}",
                    row.id,
                    row.status,
                    cert.sha256_fingerprint,
                    rfc3339(cert.not_after_unix.saturating_mul(1_000_000))
                );
            }
        }
        SsoCmd::SpKey(SpKeyCmd::Rotate { tenant }) => {
            let ts = ts(tenant.tenant).await?;
            crate::sso::keys::tenant_keys(&state, &ts)
                .await
                .map_err(sso_error)?;
            crate::sso::keys::rotate(&state, &ts, actor)
                .await
                .map_err(sso_error)?;
            println!(
                "SP key rotated; the previous certificate stays published until retire-previous"
            );
        }
        SsoCmd::SpKey(SpKeyCmd::RetirePrevious { tenant }) => {
            let ts = ts(tenant.tenant).await?;
            crate::sso::keys::retire(&state, &ts, actor)
                .await
                .map_err(sso_error)?;
            println!("previous SP key retired");
        }
    }
    state.store.close().await;
    Ok(())
}
