//! REST authentication benchmark (issue "REST administration and its security", Benchmark).
//!
//! `cargo bench --bench auth` starts the release `idhub` binary on a fresh SQLite database
//! (PostgreSQL instead when IDHUB_BENCH_POSTGRES_URL is set) and prints, each beside its
//! same-run denominator:
//! - login throughput (`POST /api/v1/auth/login`) vs the raw argon2id verification rate with
//!   the same parameters on all cores (in this process, with the server idle);
//! - SCIM `GET /Users/{id}` while logins saturate the hashing pool vs the same GET idle;
//! - authenticated `GET /api/v1/users/{id}` for a repeat caller with a JWT and with an API
//!   key vs the server's own `GET /health`, all at 64 connections.
//!
//! The load generator shares the cores with the server: only the ratios are results.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use common::{load, load_for, start_server_with};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-admin-password";
/// Interleaved rounds of the login comparison.
const ROUNDS: usize = 4;

/// Raw argon2id verifications per second on every core, for `secs` seconds.
async fn raw_argon2_rate(hash: &str, secs: u64) -> f64 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let count = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..cores {
        let (hash, count) = (hash.to_owned(), count.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).unwrap();
            while Instant::now() < deadline {
                assert!(
                    argon2::Argon2::default()
                        .verify_password(PASSWORD.as_bytes(), &parsed)
                        .is_ok()
                );
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn login(client: &reqwest::Client, base: &str) -> Option<Value> {
    let r = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().await.ok()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let pg = std::env::var("IDHUB_BENCH_POSTGRES_URL").ok();
    let db_url = match &pg {
        Some(server) => {
            let name = format!("idhub_bench_auth_{}", std::process::id());
            let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(server)
                .await
                .unwrap();
            sqlx::Executor::execute(
                &mut admin,
                sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
            )
            .await
            .unwrap();
            let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
            format!("{base}/{name}")
        }
        None => format!("sqlite://{}/bench.db", dir.path().display()),
    };
    let label = if pg.is_some() { "PostgreSQL" } else { "SQLite" };
    let server = start_server_with(
        &db_url,
        dir.path(),
        &[
            ("IDHUB_AUTH_RATE_PER_IP", "100000000"),
            ("IDHUB_AUTH_RATE_PER_ACCOUNT", "100000000"),
            ("IDHUB_LOCKOUT_THRESHOLD", "100000000"),
        ],
    )
    .await;
    let base = server.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();

    // Fixtures: an access token, an API key, a user to read, a SCIM user to read.
    let t = login(&client, &base).await.expect("login");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let key: Value = client
        .post(format!("{base}/api/v1/me/tokens"))
        .bearer_auth(&access)
        .json(&json!({ "name": "bench", "permissions": ["users.read"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_key = key["key"].as_str().unwrap().to_owned();
    let user: Value = client
        .post(format!("{base}/api/v1/users"))
        .bearer_auth(&access)
        .json(&json!({ "user_name": "bench-target", "email": "t@example.com" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uid = user["id"].as_str().unwrap().to_owned();
    let scim_user: Value = client
        .post(format!("{base}/scim/v2/Users"))
        .bearer_auth(&server.token)
        .header("content-type", "application/scim+json")
        .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "scim-target"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = scim_user["id"].as_str().unwrap().to_owned();
    let stored_hash = idhub::auth::password::hash(PASSWORD.to_owned())
        .await
        .unwrap();

    let mut out = Vec::new();

    // 1. Login throughput vs raw argon2id.
    // Interleaved rounds, so drift in what the machine gives us hits both sides alike.
    let (mut raw_sum, mut login_sum) = (0.0, 0.0);
    let mut logins = None;
    for _ in 0..ROUNDS {
        raw_sum += raw_argon2_rate(&stored_hash, 2).await;
        let (c, b) = (client.clone(), base.clone());
        let r = load_for(8, Duration::from_secs(2), move |_| {
            let (c, b) = (c.clone(), b.clone());
            async move { login(&c, &b).await.is_some() }
        })
        .await;
        login_sum += r.per_sec;
        logins = Some(r);
    }
    let raw = raw_sum / ROUNDS as f64;
    let mut logins = logins.unwrap();
    logins.per_sec = login_sum / ROUNDS as f64;
    out.push(format!(
        "{label}: raw argon2id verify, all cores      {raw:>9.1}/s"
    ));
    out.push(format!(
        "{label}: POST /api/v1/auth/login @8             {logins}  = {:.0}% of raw argon2id (target >= 90%)",
        100.0 * logins.per_sec / raw
    ));

    // 2. SCIM GET idle vs during a login flood.
    let scim_get = |c: reqwest::Client, b: String, tok: String, id: String| {
        move |_| {
            let (c, b, tok, id) = (c.clone(), b.clone(), tok.clone(), id.clone());
            async move {
                c.get(format!("{b}/scim/v2/Users/{id}"))
                    .bearer_auth(&tok)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            }
        }
    };
    let idle = load(
        64,
        scim_get(
            client.clone(),
            base.clone(),
            server.token.clone(),
            sid.clone(),
        ),
    )
    .await;
    let flood = {
        let (c, b) = (client.clone(), base.clone());
        tokio::spawn(async move {
            load(32, move |_| {
                let (c, b) = (c.clone(), b.clone());
                async move { login(&c, &b).await.is_some() }
            })
            .await
        })
    };
    let during = load(
        64,
        scim_get(
            client.clone(),
            base.clone(),
            server.token.clone(),
            sid.clone(),
        ),
    )
    .await;
    let flood = flood.await.unwrap();
    out.push(format!(
        "{label}: SCIM GET /Users/{{id}} idle @64          {idle}"
    ));
    out.push(format!(
        "{label}: SCIM GET /Users/{{id}} during login flood  {during}  = {:.0}% of idle (target >= 40%; flood {:.0} logins/s)",
        100.0 * during.per_sec / idle.per_sec,
        flood.per_sec
    ));

    // 3. Authenticated REST reads vs /health.
    let health = {
        let (c, b) = (client.clone(), base.clone());
        load(64, move |_| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                c.get(format!("{b}/health"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            }
        })
        .await
    };
    // A fresh token: the flood above did not revoke it, but use one minted now.
    let access = login(&client, &base).await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rest_get =
        |c: reqwest::Client, b: String, id: String, bearer: Option<String>, key: Option<String>| {
            move |_| {
                let (c, b, id, bearer, key) = (
                    c.clone(),
                    b.clone(),
                    id.clone(),
                    bearer.clone(),
                    key.clone(),
                );
                async move {
                    let mut rb = c.get(format!("{b}/api/v1/users/{id}"));
                    if let Some(t) = bearer {
                        rb = rb.bearer_auth(t);
                    }
                    if let Some(k) = key {
                        rb = rb.header("x-api-key", k);
                    }
                    rb.send().await.is_ok_and(|r| r.status() == 200)
                }
            }
        };
    let jwt = load(
        64,
        rest_get(
            client.clone(),
            base.clone(),
            uid.clone(),
            Some(access),
            None,
        ),
    )
    .await;
    let apikey = load(
        64,
        rest_get(
            client.clone(),
            base.clone(),
            uid.clone(),
            None,
            Some(api_key),
        ),
    )
    .await;
    out.push(format!(
        "{label}: GET /health @64                       {health}"
    ));
    out.push(format!(
        "{label}: GET /api/v1/users/{{id}} JWT @64         {jwt}  = {:.0}% of /health (target >= 50%)",
        100.0 * jwt.per_sec / health.per_sec
    ));
    out.push(format!(
        "{label}: GET /api/v1/users/{{id}} API key @64     {apikey}  = {:.0}% of /health (target >= 50%)",
        100.0 * apikey.per_sec / health.per_sec
    ));

    drop(server);
    println!();
    for l in out {
        println!("{l}");
    }
}
