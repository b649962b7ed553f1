//! SCIM throughput benchmark (issue "SCIM 2.0 service provider", Benchmark section).
//!
//! `cargo bench --bench scim` (PostgreSQL too when IDHUB_BENCH_POSTGRES_URL is set, e.g.
//! postgres://postgres@127.0.0.1:5432/postgres). For each backend it starts the release
//! `idhub` binary as its own process on a fresh database, imports 100,000 users through /Bulk,
//! and measures every figure beside its denominator in the same run:
//! - HTTP floor: the server's own `GET /health` rate at the same concurrency;
//! - raw sqlx: the same primitive straight through sqlx's native driver on the same database
//!   (indexed single-row lookup, single-row insert, 1,000-row batched insert).
//!
//! Reads run at 64 connections, writes at 32. The load generator shares the machine's cores
//! with the server (2 cores here), which is why only same-run ratios are reported as results.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{CpuCost, POOL, http as lean, load, profile, rss_mib, start_server};

use serde_json::{Value, json};
use sqlx::{Connection, Executor};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USERS: usize = 100_000;
const BATCH: usize = 1_000;
const READ_CONCURRENCY: usize = 64;
const WRITE_CONCURRENCY: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

fn user_doc(i: usize, tag: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{tag}user{i:06}@example.com"),
        "externalId": format!("{tag}ext-{i}"),
        "name": {"givenName": "Given", "familyName": format!("Family{i}")},
        "displayName": format!("User {i}"),
        "emails": [{"value": format!("{tag}user{i:06}@example.com"), "type": "work", "primary": true}],
        "active": true
    })
}

/// The raw side: the same rows and lookups through sqlx's native drivers.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    async fn connect(b: Backend, url: &str) -> Self {
        match b {
            Backend::Sqlite => {
                let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("sqlite url");
                let opts = opts
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                Raw::Sqlite(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(POOL)
                        // No ping per acquire (sqlx's default), as in the server: each
                        // primitive is exactly one statement.
                        .test_before_acquire(false)
                        .connect_with(opts)
                        .await
                        .expect("raw sqlite"),
                )
            }
            Backend::Postgres => Raw::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(POOL)
                    .test_before_acquire(false)
                    .connect(url)
                    .await
                    .expect("raw pg"),
            ),
        }
    }

    async fn exec(&self, sql: &'static str) {
        match self {
            Raw::Sqlite(p) => {
                p.execute(sql).await.expect("exec");
            }
            Raw::Postgres(p) => {
                p.execute(sql).await.expect("exec");
            }
        }
    }

    /// One multi-row INSERT of `rows` users into the scratch tenant.
    async fn batch_insert(&self, start: usize, rows: usize, now: i64) {
        let mut sql = String::from(
            "INSERT INTO users (id, tenant_id, user_name, user_name_norm, external_id, display_name, email, active, attributes, version, created_at, updated_at) VALUES ",
        );
        let mut args: Vec<String> = Vec::new();
        for (n, i) in (start..start + rows).enumerate() {
            if n > 0 {
                sql.push(',');
            }
            let b = n * 8;
            sql.push_str(&format!(
                "(${}, 'raw-tenant', ${}, ${}, ${}, ${}, ${}, 1, ${}, 1, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 8
            ));
            let name = format!("rawuser{i:06}@example.com");
            args.extend([
                uuid::Uuid::now_v7().to_string(),
                name.clone(),
                name.clone(),
                format!("raw-ext-{i}"),
                format!("User {i}"),
                name,
                user_doc(i, "raw").to_string(),
                now.to_string(),
            ]);
        }
        match self {
            Raw::Sqlite(p) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (k, a) in args.into_iter().enumerate() {
                    q = if k % 8 == 7 {
                        q.bind(a.parse::<i64>().unwrap_or(0))
                    } else {
                        q.bind(a)
                    };
                }
                q.execute(p).await.expect("batch insert");
            }
            Raw::Postgres(p) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (k, a) in args.into_iter().enumerate() {
                    q = if k % 8 == 7 {
                        q.bind(a.parse::<i64>().unwrap_or(0))
                    } else {
                        q.bind(a)
                    };
                }
                q.execute(p).await.expect("batch insert");
            }
        }
    }

    async fn lookup(&self, tenant: &str, id: &str) -> bool {
        const SQL: &str = "SELECT id, user_name, external_id, display_name, email, active, attributes, version, created_at, updated_at FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL";
        match self {
            Raw::Sqlite(p) => sqlx::query(SQL)
                .bind(tenant)
                .bind(id)
                .fetch_optional(p)
                .await
                .ok()
                .flatten()
                .is_some(),
            Raw::Postgres(p) => sqlx::query(SQL)
                .bind(tenant)
                .bind(id)
                .fetch_optional(p)
                .await
                .ok()
                .flatten()
                .is_some(),
        }
    }

    async fn insert_one(&self, i: usize, now: i64) -> bool {
        const SQL: &str = "INSERT INTO users (id, tenant_id, user_name, user_name_norm, external_id, display_name, email, active, attributes, version, created_at, updated_at) VALUES ($1, 'raw-tenant', $2, $2, $3, $4, $2, 1, $5, 1, $6, $6)";
        let name = format!("rawone{i:07}@example.com");
        let doc = user_doc(i, "rawone").to_string();
        let id = uuid::Uuid::now_v7().to_string();
        match self {
            Raw::Sqlite(p) => sqlx::query(SQL)
                .bind(id)
                .bind(&name)
                .bind(format!("x{i}"))
                .bind("User")
                .bind(doc)
                .bind(now)
                .execute(p)
                .await
                .is_ok(),
            Raw::Postgres(p) => sqlx::query(SQL)
                .bind(id)
                .bind(&name)
                .bind(format!("x{i}"))
                .bind("User")
                .bind(doc)
                .bind(now)
                .execute(p)
                .await
                .is_ok(),
        }
    }

    async fn default_tenant_id(&self) -> String {
        const SQL: &str = "SELECT id FROM tenants WHERE slug = 'default'";
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar(SQL).fetch_one(p).await.expect("tenant"),
            Raw::Postgres(p) => sqlx::query_scalar(SQL).fetch_one(p).await.expect("tenant"),
        }
    }

    async fn user_ids(&self, tenant: &str) -> Vec<String> {
        const SQL: &str =
            "SELECT id FROM users WHERE tenant_id = $1 AND user_name LIKE 'bench%' ORDER BY id";
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar(SQL)
                .bind(tenant)
                .fetch_all(p)
                .await
                .expect("ids"),
            Raw::Postgres(p) => sqlx::query_scalar(SQL)
                .bind(tenant)
                .fetch_all(p)
                .await
                .expect("ids"),
        }
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

async fn run(b: Backend, pg_server: Option<&str>) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db_url, drop_db) = match b {
        Backend::Sqlite => (format!("sqlite://{}/bench.db", dir.path().display()), None),
        Backend::Postgres => {
            let server = pg_server.unwrap_or_default();
            let name = format!("idhub_bench_{}", uuid::Uuid::new_v4().simple());
            let mut c = sqlx::PgConnection::connect(server).await.expect("pg");
            c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("create db");
            let (left, _) = server.rsplit_once('/').expect("pg url with database");
            (format!("{left}/{name}"), Some((server.to_owned(), name)))
        }
    };
    let label = if b == Backend::Sqlite {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let mut out = Vec::new();
    let server = start_server(&db_url, dir.path()).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let raw = Arc::new(Raw::connect(b, &db_url).await);
    let tenant = raw.default_tenant_id().await;
    raw.exec("INSERT INTO tenants (id, slug, display_name, settings, change_seq, version, created_at, updated_at) VALUES ('raw-tenant', 'raw-tenant', 'raw', '{}', 0, 1, 0, 0)").await;

    // Import: raw batched insert vs /Bulk, the same 100,000 rows.
    let t = Instant::now();
    for start in (0..USERS).step_by(BATCH) {
        raw.batch_insert(start, BATCH, now_micros()).await;
    }
    let raw_import = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut bulk_errors = 0;
    for start in (0..USERS).step_by(BATCH) {
        let ops: Vec<Value> = (start..start + BATCH)
            .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": user_doc(i, "bench")}))
            .collect();
        let r = http
            .post(format!("{}/scim/v2/Bulk", server.base))
            .bearer_auth(&server.token)
            .header("Content-Type", "application/scim+json")
            .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}).to_string())
            .send()
            .await
            .expect("bulk");
        let body: Value = r.json().await.unwrap_or(Value::Null);
        bulk_errors += body["Operations"]
            .as_array()
            .map(|a| a.iter().filter(|o| o["status"] != "201").count())
            .unwrap_or(BATCH);
    }
    let bulk_import = t.elapsed().as_secs_f64();
    eprintln!("[{label}] imported");
    out.push(format!("{label}: import 100,000 users: /Bulk {bulk_import:.1} s vs raw batched insert {raw_import:.1} s = {:.2}x (target <= 2.5x and < 25 s), failed operations {bulk_errors}", bulk_import / raw_import));
    // The same users (other names) through `idhub import users` into a tenant of their own:
    // the file written first, the command timed from start to exit.
    let file = dir.path().join("export.ndjson");
    let mut export = String::with_capacity(USERS * 320);
    for i in 0..USERS {
        export.push_str(&user_doc(i, "cmd").to_string());
        export.push('\n');
    }
    std::fs::write(&file, export).expect("write the export");
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_idhub"))
            .current_dir(dir.path())
            .args(args)
            .env("IDHUB_DATABASE_URL", &db_url)
            .output()
            .expect("run idhub")
    };
    let made = cli(&[
        "tenant",
        "create",
        "--slug",
        "imported",
        "--display-name",
        "Imported",
    ]);
    assert!(made.status.success(), "tenant create failed");
    let t = Instant::now();
    let done = cli(&[
        "import",
        "users",
        "--tenant",
        "imported",
        &file.to_string_lossy(),
    ]);
    let cmd_import = t.elapsed().as_secs_f64();
    let summary = String::from_utf8_lossy(&done.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    let cmd_ok = done.status.success();
    eprintln!("[{label}] imported with the command: {summary}");
    out.push(format!("{label}: import 100,000 users: `idhub import users` {cmd_import:.1} s vs raw batched insert {raw_import:.1} s = {:.2}x (target <= 2.5x and < 25 s), all created: {cmd_ok}", cmd_import / raw_import));

    let ids = Arc::new(raw.user_ids(&tenant).await);
    let pg_db = drop_db.as_ref().map(|(_, name)| name.clone());
    let cost = || CpuCost::start(server.child.id(), pg_db.as_deref());
    let names: Arc<Vec<String>> = Arc::new(
        (0..USERS)
            .map(|i| format!("benchuser{i:06}@example.com"))
            .collect(),
    );
    assert_eq!(ids.len(), USERS, "all users imported");

    // Every HTTP load phase goes through the lean client (`common::http`): it shares the 2
    // cores with the server, so the less it spends per request the more the figures measure
    // idhub rather than the client.
    let host = server.base.trim_start_matches("http://").to_owned();
    let token = server.token.clone();
    let get = move |path: String| lean::get(&host, &path, &token);
    let is_200 = |s: u16| s == 200;

    // Reads at 64.
    let base = server.base.clone();
    let addr = base.trim_start_matches("http://").to_owned();
    let floor64 = {
        let get = get.clone();
        lean::load(
            READ_CONCURRENCY,
            &addr,
            move |_| get("/health".to_owned()),
            is_200,
        )
        .await
    };
    let raw_lookup_cost = cost();
    let raw_lookup = {
        let raw = raw.clone();
        let ids = ids.clone();
        let tenant = tenant.clone();
        load(READ_CONCURRENCY, move |i| {
            let raw = raw.clone();
            let id = ids[(i * 7919) % ids.len()].clone();
            let tenant = tenant.clone();
            async move { raw.lookup(&tenant, &id).await }
        })
        .await
    };
    let raw_lookup_cpu = raw_lookup_cost.per_request(&raw_lookup);
    let hot_cost = cost();
    let hot = {
        let _perf = profile(server.child.id(), &format!("{label}-hot"));
        let get = get.clone();
        let ids = ids.clone();
        lean::load(
            READ_CONCURRENCY,
            &addr,
            move |i| get(format!("/scim/v2/Users/{}", ids[i % 1000])),
            is_200,
        )
        .await
    };
    let hot_cpu = hot_cost.per_request(&hot);
    let uniform_cost = cost();
    let uniform = {
        let _perf = profile(server.child.id(), &format!("{label}-uniform"));
        let get = get.clone();
        let ids = ids.clone();
        lean::load(
            READ_CONCURRENCY,
            &addr,
            move |i| {
                get(format!(
                    "/scim/v2/Users/{}",
                    ids[(i * 7919 + 13) % ids.len()]
                ))
            },
            is_200,
        )
        .await
    };
    let uniform_cpu = uniform_cost.per_request(&uniform);
    let filter_cost = cost();
    let filter = {
        let _perf = profile(server.child.id(), &format!("{label}-filter"));
        let get = get.clone();
        let names = names.clone();
        lean::load(
            READ_CONCURRENCY,
            &addr,
            move |i| {
                let n = &names[(i * 104_729 + 7) % names.len()];
                get(format!("/scim/v2/Users?filter=userName%20eq%20%22{n}%22"))
            },
            is_200,
        )
        .await
    };
    let filter_cpu = filter_cost.per_request(&filter);
    out.push(format!(
        "{label}: GET /health @64 (HTTP floor)            {floor64}"
    ));
    out.push(format!(
        "{label}: raw sqlx indexed lookup @64             {raw_lookup}; {raw_lookup_cpu}"
    ));
    out.push(format!("{label}: GET /Users/{{id}} hot set @64            {hot}  = {:.0}% of floor (target >= 50%); {hot_cpu}", 100.0 * hot.per_sec / floor64.per_sec));
    let target = if b == Backend::Sqlite { 60 } else { 50 };
    out.push(format!("{label}: GET /Users/{{id}} uniform @64            {uniform}  = {:.0}% of raw lookup (target >= {target}%); {uniform_cpu}", 100.0 * uniform.per_sec / raw_lookup.per_sec));
    out.push(format!("{label}: filter userName eq @64                  {filter}  = {:.0}% of uniform GET (target >= 85%); {filter_cpu}", 100.0 * filter.per_sec / uniform.per_sec));

    // Writes at 32.
    let raw_insert_cost = cost();
    let raw_insert = {
        let raw = raw.clone();
        load(WRITE_CONCURRENCY, move |i| {
            let raw = raw.clone();
            async move { raw.insert_one(i, now_micros()).await }
        })
        .await
    };
    let raw_insert_cpu = raw_insert_cost.per_request(&raw_insert);
    let post_cost = cost();
    let post = {
        let _perf = profile(server.child.id(), &format!("{label}-post"));
        let host = addr.clone();
        let token = server.token.clone();
        lean::load(
            WRITE_CONCURRENCY,
            &addr,
            move |i| {
                lean::post(
                    &host,
                    "/scim/v2/Users",
                    &token,
                    &user_doc(i, "post").to_string(),
                )
            },
            |s| s == 201,
        )
        .await
    };
    let post_cpu = post_cost.per_request(&post);
    let target = if b == Backend::Sqlite { 40 } else { 50 };
    out.push(format!(
        "{label}: raw sqlx single-row insert @32          {raw_insert}; {raw_insert_cpu}"
    ));
    out.push(format!("{label}: POST /Users @32                         {post}  = {:.0}% of raw insert (target >= {target}%); {post_cpu}", 100.0 * post.per_sec / raw_insert.per_sec));

    // A 100,000-member group, then one PATCH adding 1,000 more.
    let group: Value = http
        .post(format!("{base}/scim/v2/Groups"))
        .bearer_auth(&server.token)
        .header("Content-Type", "application/scim+json")
        .body(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone"}).to_string())
        .send()
        .await
        .expect("group")
        .json()
        .await
        .expect("group json");
    let gid = group["id"].as_str().unwrap_or_default().to_owned();
    let patch = |members: &[String]| {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": members.iter().map(|m| json!({"value": m, "type": "User"})).collect::<Vec<_>>()}]});
        http.patch(format!("{base}/scim/v2/Groups/{gid}"))
            .bearer_auth(&server.token)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
    };
    for chunk in ids[..USERS - 1000].chunks(10_000) {
        let r = patch(chunk).await.expect("patch");
        assert!(
            r.status().is_success(),
            "member setup failed: {}",
            r.status()
        );
    }
    let t = Instant::now();
    let r = patch(&ids[USERS - 1000..]).await.expect("patch");
    let patch_ms = t.elapsed().as_secs_f64() * 1000.0;
    let ok = r.status().is_success();
    let t = Instant::now();
    let g = http
        .get(format!(
            "{base}/scim/v2/Groups/{gid}?excludedAttributes=members"
        ))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("get group");
    let get_ms = t.elapsed().as_secs_f64() * 1000.0;
    out.push(format!("{label}: PATCH +1,000 members to a 99,000-member group: {patch_ms:.0} ms (ok={ok}; target < 250 ms); GET it with excludedAttributes=members: {get_ms:.1} ms ({})", g.status()));
    out.push(format!(
        "{label}: server RSS after the run: {:.0} MiB (target < 200 MiB)",
        rss_mib(server.child.id())
    ));

    drop(server);
    match &*raw {
        Raw::Sqlite(p) => p.close().await,
        Raw::Postgres(p) => p.close().await,
    }
    if let Some((srv, name)) = drop_db
        && let Ok(mut c) = sqlx::PgConnection::connect(&srv).await
    {
        let _ = c
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
    }
    out
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; a filter argument picks one backend.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let pg = std::env::var("IDHUB_BENCH_POSTGRES_URL").ok();
    let mut lines = Vec::new();
    if args.is_empty() || args.iter().any(|a| a == "sqlite") {
        lines.extend(run(Backend::Sqlite, None).await);
    }
    if let Some(url) = pg.as_deref()
        && (args.is_empty() || args.iter().any(|a| a == "postgres"))
    {
        lines.extend(run(Backend::Postgres, Some(url)).await);
    }
    println!(
        "\n== idhub SCIM benchmark ({} cores) ==",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    for l in lines {
        println!("{l}");
    }
}
