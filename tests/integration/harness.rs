//! The shared harness: builds the real application on a fresh database (an SQLite file in a
//! temporary directory, or a fresh PostgreSQL database created for the test and dropped after
//! it) and serves it on an ephemeral loopback port.

use idhub::config::{Config, Layers};
use idhub::startup::Application;
use idhub::store::Store;
use std::sync::OnceLock;
use tokio::sync::oneshot;

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

/// The PostgreSQL server URL for tests, or `None` to skip PostgreSQL cases.
///
/// Under `CI=true` a missing `IDHUB_TEST_POSTGRES_URL` or an unreachable server fails the
/// test: PostgreSQL cases never silently skip in CI.
pub fn postgres() -> Option<Backend> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    let url = URL.get_or_init(|| {
        std::env::var("IDHUB_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
    });
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    match url {
        Some(u) => Some(Backend::Postgres(u.clone())),
        None if in_ci => panic!(
            "CI=true but IDHUB_TEST_POSTGRES_URL is not set: PostgreSQL tests must run in CI"
        ),
        None => {
            eprintln!("IDHUB_TEST_POSTGRES_URL not set: skipping the PostgreSQL case");
            None
        }
    }
}

/// A fresh database on `backend`: its URL and what to clean up afterwards.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: &Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/idhub.db", dir.path().display());
                Self {
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
            Backend::Postgres(server) => {
                let name = format!("idhub_t_{}", uuid::Uuid::new_v4().simple());
                let admin = admin_conn(server).await;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("cannot create a test database on {server}: {e}"));
                admin.close().await;
                let url = replace_db(server, &name);
                Self {
                    url,
                    _dir: None,
                    pg: Some((server.clone(), name)),
                }
            }
        }
    }
}

async fn admin_conn(server: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(server)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {server} is unreachable: {e}"))
}

/// `postgres://u@h:p/db?x` with the database name replaced.
fn replace_db(server: &str, name: &str) -> String {
    let (base, query) = server
        .split_once('?')
        .map_or((server, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap();
    let authority = rest.split('/').next().unwrap();
    match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = self.pg.take() {
            // Runs on its own thread and runtime: the test's runtime may be shutting down.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&server)
                        .await
                    {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&pool)
                        .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Configuration for a test server on `db`, with extra `IDHUB_*` settings.
pub fn config(db: &TestDb, extra: &[(&str, &str)]) -> Config {
    let mut env = vec![
        ("IDHUB_DATABASE_URL".to_owned(), db.url.clone()),
        ("IDHUB_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("IDHUB_ADMIN_PASSWORD".to_owned(), ADMIN_PASSWORD.to_owned()),
        ("IDHUB_DATABASE_MAX_CONNECTIONS".to_owned(), "8".to_owned()),
        ("IDHUB_SHUTDOWN_GRACE_SECS".to_owned(), "5".to_owned()),
        (
            "IDHUB_SECRET_KEY".to_owned(),
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned(),
        ),
    ];
    for (k, v) in extra {
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    Layers::load(None, env).unwrap().resolve().unwrap()
}

pub const ADMIN_PASSWORD: &str = "test-admin-password-1";

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub default_tenant: idhub::model::TenantId,
    /// The server's shared state (to run background jobs on demand).
    pub state: idhub::app::AppState,
    /// The database URL (a second node can share it).
    pub db_url: String,
    _db: TestDb,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(backend: &Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(backend: &Backend, extra: &[(&str, &str)]) -> Self {
        let db = TestDb::new(backend).await;
        Self::spawn_on(db, extra).await
    }

    pub async fn spawn_on(db: TestDb, extra: &[(&str, &str)]) -> Self {
        let db_url = db.url.clone();
        let app = Application::build(config(&db, extra)).await.unwrap();
        let base = format!("http://{}", app.addr);
        let store = app.state.store.clone();
        let default_tenant = app.state.default_tenant.clone();
        let state = app.state.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let done = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self {
            base,
            client: reqwest::Client::new(),
            store,
            default_tenant,
            state,
            db_url,
            _db: db,
            stop: Some(tx),
            done: Some(done),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Another idhub node on the same database (it must stop before this one).
    pub async fn second_node(&self, extra: &[(&str, &str)]) -> TestApp {
        let db = TestDb {
            url: self.db_url.clone(),
            _dir: None,
            pg: None,
        };
        Self::spawn_on(db, extra).await
    }

    pub fn admin(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        rb.basic_auth("admin", Some(ADMIN_PASSWORD))
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.unwrap().unwrap();
        }
    }
}

/// Runs one case against SQLite and PostgreSQL: `backend_tests!(case_a, case_b)` makes
/// `sqlite::case_a`, `postgres::case_a`, … each calling `case_a(Backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(b) = $crate::harness::postgres() {
                        super::$name(b).await
                    }
                }
            )*
        }
    };
}

/// A SCIM client for one tenant's token.
pub struct Scim<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

/// A SCIM response: status, headers and JSON body (`Value::Null` when empty).
pub struct ScimReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl ScimReply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl TestApp {
    /// A SCIM token for the tenant with this slug (created through the store).
    pub async fn scim_token(&self, slug: &str) -> String {
        let t = self.store.tenant_by_slug(slug).await.unwrap().unwrap();
        self.store
            .tenant(t.id)
            .create_token(&idhub::model::Actor::system(), "scim", "test", None)
            .await
            .unwrap()
            .secret
    }

    /// A SCIM client for the default tenant.
    pub async fn scim(&self) -> Scim<'_> {
        Scim {
            app: self,
            token: self.scim_token("default").await,
        }
    }

    /// Creates a tenant (slug = display name) and returns a SCIM client for it.
    pub async fn scim_for_new_tenant(&self, slug: &str) -> Scim<'_> {
        self.store
            .create_tenant(
                &idhub::model::Actor::system(),
                &idhub::model::Slug::parse(slug).unwrap(),
                slug,
                &[],
            )
            .await
            .unwrap();
        Scim {
            app: self,
            token: self.scim_token(slug).await,
        }
    }

    /// Sets the SCIM compatibility profile / soft delete of the tenant with this slug.
    pub async fn set_scim_settings(
        &self,
        slug: &str,
        profile: idhub::model::ScimProfile,
        soft_delete: bool,
    ) {
        let t = self.store.tenant_by_slug(slug).await.unwrap().unwrap();
        let mut s = t.settings.clone();
        s.scim_profile = profile;
        s.soft_delete = soft_delete;
        self.store
            .update_tenant(
                &idhub::model::Actor::system(),
                &t.id,
                idhub::store::TenantUpdate {
                    settings: Some(s),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
    }
}

impl Scim<'_> {
    pub fn url(&self, path: &str) -> String {
        self.app.url(&format!("/scim/v2{path}"))
    }

    /// Sends a request; `body` is sent as `application/scim+json`. Extra headers as pairs.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> ScimReply {
        let mut rb = self
            .app
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON body ({e}): {text}"))
        };
        if !body.is_null() {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                ct.starts_with("application/scim+json"),
                "SCIM response content type {ct:?} for {path}"
            );
        }
        ScimReply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> ScimReply {
        self.send(reqwest::Method::GET, path, None, &[]).await
    }
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> ScimReply {
        self.send(reqwest::Method::POST, path, Some(body), &[])
            .await
    }
    pub async fn put(&self, path: &str, body: &serde_json::Value) -> ScimReply {
        self.send(reqwest::Method::PUT, path, Some(body), &[]).await
    }
    pub async fn patch(&self, path: &str, body: &serde_json::Value) -> ScimReply {
        self.send(reqwest::Method::PATCH, path, Some(body), &[])
            .await
    }
    pub async fn delete(&self, path: &str) -> ScimReply {
        self.send(reqwest::Method::DELETE, path, None, &[]).await
    }

    /// Creates a user with this userName (and any extra attributes) and returns its id.
    pub async fn create_user(&self, user_name: &str, extra: serde_json::Value) -> String {
        let mut body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let r = self.post("/Users", &body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a group with these member ids and returns its id.
    pub async fn create_group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<serde_json::Value> = members
            .iter()
            .map(|m| serde_json::json!({"value": m}))
            .collect();
        let r = self
            .post(
                "/Groups",
                &serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": name,
                    "members": members,
                }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// A URL-encoded filter query.
    pub async fn filter(&self, resource: &str, filter: &str) -> ScimReply {
        let q: String = url_encode(filter);
        self.get(&format!("/{resource}?filter={q}")).await
    }
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `probe` until it yields `Some` (a condition, not a fixed delay), for at most
/// `within`; panics naming `what` when it never does. For state that settles asynchronously
/// (webhook attempts, events behind PostgreSQL's transaction horizon).
pub async fn eventually<T, F, Fut>(what: &str, within: std::time::Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
