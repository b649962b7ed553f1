//! Opening the store, first-start bootstrap, and serving HTTP with graceful shutdown.

use crate::app::AppState;
use crate::auth::jwt::KeyRing;
use crate::auth::ratelimit::RateLimiter;
use crate::auth::{self, password};
use crate::cache::CacheConfig;
use crate::config::{Config, redact_url};
use crate::metrics::Metrics;
use crate::model::{Actor, NewUser, Slug, Tenant, TenantId};
use crate::store::{Store, StoreError, StoreOptions};
use poem::Server;
use poem::listener::{Acceptor, AcceptorExt, Listener, TcpListener};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database at {url}: {source}")]
    Database {
        url: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[source] StoreError),
    #[error("cannot create the default tenant: {0}")]
    Bootstrap(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Connects and migrates. The URL in errors has its password redacted.
pub async fn open_store(config: &Config, metrics: &Metrics) -> Result<Store, StartupError> {
    let opts = StoreOptions {
        max_connections: config.database_max_connections,
        acquire_timeout: config.database_acquire_timeout,
        cache: CacheConfig {
            max_entries: config.cache_max_entries,
            ttl: config.cache_ttl,
            budget_bytes: config.cache_budget_bytes,
        },
        notify_hold: config.cluster_notify_delay,
    };
    let store = Store::connect(config.database_url.expose(), &opts, metrics)
        .await
        .map_err(|source| StartupError::Database {
            url: redact_url(config.database_url.expose()),
            source,
        })?;
    store.migrate().await.map_err(StartupError::Migrate)?;
    Ok(store)
}

/// The default tenant, created when missing (two nodes racing here both end up with it).
pub async fn ensure_default_tenant(store: &Store, config: &Config) -> Result<Tenant, StartupError> {
    let t = find_or_create_default_tenant(store, config).await?;
    store.set_default_tenant(t.id.clone());
    Ok(t)
}

async fn find_or_create_default_tenant(
    store: &Store,
    config: &Config,
) -> Result<Tenant, StartupError> {
    let slug =
        Slug::parse(&config.default_tenant).map_err(|e| StartupError::Bootstrap(e.to_string()))?;
    if let Some(t) = store
        .tenant_by_slug(slug.as_str())
        .await
        .map_err(|e| StartupError::Bootstrap(e.to_string()))?
    {
        return Ok(t);
    }
    match store
        .create_tenant(&Actor::system(), &slug, "Default tenant", &[])
        .await
    {
        Ok(t) => Ok(t),
        Err(StoreError::Conflict { .. }) => store
            .tenant_by_slug(slug.as_str())
            .await
            .map_err(|e| StartupError::Bootstrap(e.to_string()))?
            .ok_or_else(|| StartupError::Bootstrap("default tenant vanished".into())),
        Err(e) => Err(StartupError::Bootstrap(e.to_string())),
    }
}

/// A credential to show once: the bootstrap administrator created at first start.
pub struct BootstrapAdmin {
    pub user_name: String,
    /// `Some` when the password was generated (and must be shown once); `None` when it came
    /// from `IDHUB_ADMIN_PASSWORD`.
    pub generated_password: Option<String>,
}

/// Creates the first operator when no superadmin exists yet.
pub async fn ensure_bootstrap_admin(
    store: &Store,
    config: &Config,
    tenant: &TenantId,
) -> Result<Option<BootstrapAdmin>, StartupError> {
    let ts = store.tenant(tenant.clone());
    let err = |e: StoreError| StartupError::Bootstrap(e.to_string());
    if ts
        .count_role_holders(auth::ROLE_SUPERADMIN)
        .await
        .map_err(err)?
        > 0
    {
        return Ok(None);
    }
    let (pw, generated) = match &config.admin_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (password::generate(), true),
    };
    let hash = password::hash(pw.clone())
        .await
        .map_err(|e| StartupError::Bootstrap(e.to_string()))?;
    let actor = Actor::system();
    let user = match ts
        .find_user_by_user_name(&config.admin_username)
        .await
        .map_err(err)?
    {
        Some(u) => u,
        None => match ts
            .create_user(
                &actor,
                NewUser {
                    user_name: config.admin_username.clone(),
                    display_name: Some("Administrator".into()),
                    active: true,
                    ..NewUser::default()
                },
            )
            .await
        {
            Ok(u) => u,
            // Another node bootstrapped at the same moment: its administrator stands.
            Err(StoreError::Conflict { .. }) => return Ok(None),
            Err(e) => return Err(err(e)),
        },
    };
    ts.set_password_hash(&actor, &user.id, &hash)
        .await
        .map_err(err)?;
    ts.grant_role(&actor, &user.id, auth::ROLE_SUPERADMIN)
        .await
        .map_err(err)?;
    Ok(Some(BootstrapAdmin {
        user_name: user.user_name,
        generated_password: generated.then_some(pw),
    }))
}

/// The sealing key: `secret_key`, or the key file (created with a random key, mode 0600, on
/// first start). Several nodes must share the same key (set `IDHUB_SECRET_KEY`).
fn load_sealer(config: &Config) -> Result<crate::auth::sealing::Sealer, StartupError> {
    use crate::auth::sealing::Sealer;
    use base64::Engine;
    let encoded = match &config.secret_key {
        Some(k) => k.expose().to_owned(),
        None => {
            let path = &config.secret_key_file;
            match std::fs::read_to_string(path) {
                Ok(s) => s.trim().to_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = Sealer::generate_key();
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            StartupError::Bootstrap(format!("{}: {e}", dir.display()))
                        })?;
                    }
                    write_private(path, &key)
                        .map_err(|e| StartupError::Bootstrap(format!("{}: {e}", path.display())))?;
                    tracing::info!(file = %path.display(), "created the secret key file");
                    key
                }
                Err(e) => {
                    return Err(StartupError::Bootstrap(format!("{}: {e}", path.display())));
                }
            }
        }
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| StartupError::Bootstrap("secret key: not base64".into()))?;
    Sealer::new(&raw).map_err(|e| StartupError::Bootstrap(format!("secret key: {e}")))
}

fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(content.as_bytes())
}

/// Re-reads the signing keys every minute, so a rotation made through another node is
/// picked up for signing (verification also reloads on an unknown key id). Stops when the
/// key ring is dropped.
fn spawn_key_reload(keys: &Arc<KeyRing>) {
    let weak = Arc::downgrade(keys);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(keys) = weak.upgrade() else { return };
            if let Err(e) = keys.reload().await {
                tracing::warn!(error = %e, "cannot reload signing keys");
            }
        }
    });
}

/// The application state without a listener, for CLI commands that go through the domain
/// layer (SSO connections): store, default tenant, signing keys, the sealing key.
pub async fn offline_state(config: Config) -> Result<AppState, StartupError> {
    let metrics = Metrics::new()?;
    let store = open_store(&config, &metrics).await?;
    crate::cluster::observe(&store, config.database_url.expose()).await;
    let tenant = ensure_default_tenant(&store, &config).await?;
    let keys = KeyRing::load(
        store.clone(),
        config.public_url.clone(),
        config.access_token_ttl,
    )
    .await
    .map_err(|e| StartupError::Bootstrap(format!("signing keys: {e}")))?;
    let sealer = Arc::new(load_sealer(&config)?);
    let sso = Arc::new(crate::sso::SsoCaches::new(store.caches(), &metrics));
    Ok(AppState {
        config: Arc::new(config),
        store,
        metrics,
        default_tenant: tenant.id,
        started: Instant::now(),
        keys,
        limiter: Arc::new(RateLimiter::new()),
        sealer,
        sso,
    })
}

/// A built, bound, not yet running server.
pub struct Application {
    pub state: AppState,
    pub addr: SocketAddr,
    pub bootstrap: Option<BootstrapAdmin>,
    acceptor: poem::listener::BoxAcceptor,
}

impl Application {
    /// Opens the store, bootstraps, and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let metrics = Metrics::new()?;
        let store = open_store(&config, &metrics).await?;
        let tenant = ensure_default_tenant(&store, &config).await?;
        let bootstrap = ensure_bootstrap_admin(&store, &config, &tenant.id).await?;
        let acceptor = TcpListener::bind(config.listen)
            .into_acceptor()
            .await
            .map_err(|source| StartupError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap_or(config.listen);
        let mut config = config;
        if config.listen.port() == 0 && config.public_url == format!("http://{}", config.listen) {
            // An ephemeral port: links must name the port actually bound.
            config.public_url = format!("http://{addr}");
        }
        let keys = KeyRing::load(
            store.clone(),
            config.public_url.clone(),
            config.access_token_ttl,
        )
        .await
        .map_err(|e| StartupError::Bootstrap(format!("signing keys: {e}")))?;
        spawn_key_reload(&keys);
        let sealer = Arc::new(load_sealer(&config)?);
        let sso = Arc::new(crate::sso::SsoCaches::new(store.caches(), &metrics));
        let state = AppState {
            config: Arc::new(config),
            store,
            metrics,
            default_tenant: tenant.id,
            started: Instant::now(),
            keys,
            limiter: Arc::new(RateLimiter::new()),
            sealer,
            sso,
        };
        Ok(Self {
            state,
            addr,
            bootstrap,
            acceptor: acceptor.boxed(),
        })
    }

    /// The base URL clients should use (`public_url`, or the bound address).
    pub fn base_url(&self) -> String {
        self.state.config.public_url.clone()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (up to the
    /// configured grace period) and closes the pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = self.state.config.shutdown_grace;
        let store = self.state.store.clone();
        let webhooks = crate::webhooks::spawn(self.state.clone());
        let sso_jobs = crate::sso::jobs::spawn(self.state.clone());
        let cluster = crate::cluster::spawn(self.state.clone());
        if let Some(node) = &cluster {
            // Serve from caches only once joined; connections meanwhile wait in the backlog
            // (a node that cannot join in time serves, uncached, from the database).
            let mut joined = node.joined.clone();
            if tokio::time::timeout(JOIN_WAIT, joined.wait_for(|j| *j))
                .await
                .is_err()
            {
                tracing::warn!("cluster: not joined yet; serving from the database meanwhile");
            }
        }
        let usage = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(TOKEN_USAGE_INTERVAL);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = store.flush_token_usage().await {
                        tracing::warn!(error = %e, "cannot write token use summaries");
                    }
                }
            })
        };
        let state = self.state.clone();
        let app = crate::http::app(self.state);
        let result = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, shutdown, Some(grace))
            .await;
        crate::cluster::leave(&state).await;
        webhooks.abort();
        sso_jobs.abort();
        if let Some(c) = cluster {
            c.task.abort();
        }
        usage.abort();
        if let Err(e) = store.flush_token_usage().await {
            tracing::warn!(error = %e, "cannot write token use summaries");
        }
        store.close().await;
        result
    }
}

/// How long a PostgreSQL node waits to join the cluster before it serves.
const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often token use is summarised into the audit trail.
const TOKEN_USAGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// Resolves on SIGTERM or SIGINT.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    // The handlers are installed now, before the caller announces that it is listening: a
    // SIGTERM that arrives before the server's loop first polls this future must still mean
    // "shut down gracefully", not the default action (exit by signal).
    #[cfg(unix)]
    let (mut int, mut term) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = int => {},
                () = term => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    }
}
