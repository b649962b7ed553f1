//! What the benchmarks share: a load generator and a release `idhub` server process.

#![allow(dead_code)]

pub mod http;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const SECONDS: u64 = 5;
pub const POOL: u32 = 16;

pub struct Rate {
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
}

impl Rate {
    /// The rate and latency percentiles of `latencies` (µs, one per success) over `elapsed`.
    pub fn of(mut latencies: Vec<u32>, errors: usize, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        Rate {
            per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            errors,
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>9.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
            self.per_sec, self.p50_ms, self.p99_ms, self.errors
        )
    }
}

/// Runs `op` from `concurrency` tasks for `SECONDS`, counting completions and latencies.
pub async fn load<F, Fut>(concurrency: usize, op: F) -> Rate
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    load_for(concurrency, Duration::from_secs(SECONDS), op).await
}

/// [`load`] for a given duration.
pub async fn load_for<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Rate
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let op = op.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if op(i).await {
                    lat.push(t.elapsed().as_micros() as u32);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    gather(tasks, started).await
}

/// Waits for the load tasks (each returning its latencies in µs and its error count) and
/// sums them up into a [`Rate`] over the time since `started`.
pub async fn gather(
    tasks: Vec<tokio::task::JoinHandle<(Vec<u32>, usize)>>,
    started: Instant,
) -> Rate {
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap_or_default();
        all.extend(l);
        errors += e;
    }
    Rate::of(all, errors, started.elapsed())
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18555)
}

pub async fn start_server(db_url: &str, dir: &std::path::Path) -> Server {
    start_server_with(db_url, dir, &[]).await
}

/// Starts the release binary with extra `IDHUB_*` settings and issues a SCIM token.
pub async fn start_server_with(
    db_url: &str,
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> Server {
    let bin = env!("CARGO_BIN_EXE_idhub");
    let port = free_port();
    let mut child = Command::new(bin)
        .current_dir(dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("IDHUB_DATABASE_URL", db_url)
        .env("IDHUB_ADMIN_PASSWORD", "bench-admin-password")
        .env("IDHUB_LOG_LEVEL", "warn")
        .env("IDHUB_DATABASE_MAX_CONNECTIONS", POOL.to_string())
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start idhub");
    let base = format!("http://127.0.0.1:{port}");
    // The banner's first line says the server is listening.
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next();
    assert!(
        first.is_some_and(|l| l.is_ok_and(|l| l.contains("listening"))),
        "idhub did not start"
    );
    // Keep reading so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.by_ref().for_each(drop));
    let out = Command::new(bin)
        .current_dir(dir)
        .args([
            "scim-token",
            "create",
            "--tenant",
            "default",
            "--name",
            "bench",
        ])
        .env("IDHUB_DATABASE_URL", db_url)
        .output()
        .expect("create token");
    let token = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("idh_scim_"))
        .expect("token printed")
        .trim()
        .to_owned();
    Server { child, base, token }
}

pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Starts the release binary listening on `port` (without issuing a token) and returns once
/// its banner says it listens; `None` if it exited first. Used where a node must come back on
/// the same port after a kill.
pub fn spawn_node(
    db_url: &str,
    dir: &std::path::Path,
    port: u16,
    extra: &[(&str, &str)],
) -> Option<Child> {
    let bin = env!("CARGO_BIN_EXE_idhub");
    let mut child = Command::new(bin)
        .current_dir(dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("IDHUB_DATABASE_URL", db_url)
        .env("IDHUB_ADMIN_PASSWORD", "bench-admin-password")
        .env("IDHUB_LOG_LEVEL", "warn")
        .env("IDHUB_DATABASE_MAX_CONNECTIONS", POOL.to_string())
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let mut lines = BufReader::new(stdout).lines();
    if !lines
        .next()
        .is_some_and(|l| l.is_ok_and(|l| l.contains("listening")))
    {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    std::thread::spawn(move || lines.by_ref().for_each(drop));
    Some(child)
}

/// Issues a SCIM token for `tenant` with the CLI (`idhub scim-token create`).
pub fn cli_scim_token(db_url: &str, dir: &std::path::Path, tenant: &str) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_idhub"))
        .current_dir(dir)
        .args([
            "scim-token",
            "create",
            "--tenant",
            tenant,
            "--name",
            "bench",
        ])
        .env("IDHUB_DATABASE_URL", db_url)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("idh_scim_"))
        .map(|l| l.trim().to_owned())
}

/// Clock ticks per second of the `/proc` CPU counters (USER_HZ).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `(comm, utime + stime)` of a process from `/proc/<pid>/stat`, in clock ticks.
pub fn proc_cpu(pid: &str) -> Option<(String, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_owned();
    // Fields after the command: state is field 3, utime 14, stime 15 (1-based).
    let rest: Vec<&str> = s.get(close + 2..)?.split_whitespace().collect();
    let ticks = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
    Some((comm, ticks))
}

/// `(busy, total)` ticks of the whole machine from `/proc/stat`.
pub fn machine_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle.min(total), total)
}

/// Creates a fresh database `idhub_bench_<random>` on the server at `server_url` and returns
/// its URL and name.
pub async fn create_pg_database(server_url: &str) -> Result<(String, String), String> {
    use sqlx::{Connection, Executor};
    let name = format!("idhub_bench_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(server_url)
        .await
        .map_err(|e| format!("connect {server_url}: {e}"))?;
    c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .map_err(|e| format!("create database: {e}"))?;
    let _ = c.close().await;
    let (left, _) = server_url
        .rsplit_once('/')
        .ok_or_else(|| "the PostgreSQL URL needs a database".to_owned())?;
    Ok((format!("{left}/{name}"), name))
}

/// Drops a database made by [`create_pg_database`], disconnecting whoever is left on it.
pub async fn drop_pg_database(server_url: &str, name: &str) {
    use sqlx::{Connection, Executor};
    if let Ok(mut c) = sqlx::PgConnection::connect(server_url).await {
        let _ = c
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
        let _ = c.close().await;
    }
}

/// CPU ticks of the PostgreSQL server processes that work for database `db`: its backends and
/// autovacuum workers (their title names the database) plus the shared background processes
/// (WAL writer, checkpointer, …); backends of other databases are left out, so a test suite
/// running on the same server does not count.
pub fn postgres_ticks_for(db: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|p| {
            let (comm, ticks) = proc_cpu(&p)?;
            if comm != "postgres" {
                return None;
            }
            let title = std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let other_client = title.contains('(') || title.contains("[local]");
            let autovacuum_elsewhere = title.contains("autovacuum worker");
            (title.contains(db) || !(other_client || autovacuum_elsewhere)).then_some(ticks)
        })
        .sum()
}

/// With `IDHUB_BENCH_PERF` set, records a `perf` CPU profile of process `pid` while alive, to
/// `$IDHUB_BENCH_PERF/<name>.data` (`perf report -i … --no-children`); otherwise does nothing.
/// Uses the `cpu-clock` software event, which works where hardware counters are not exposed.
pub struct Profile(Option<Child>);

pub fn profile(pid: u32, name: &str) -> Profile {
    let Ok(dir) = std::env::var("IDHUB_BENCH_PERF") else {
        return Profile(None);
    };
    let out = format!(
        "{dir}/{}.data",
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    Profile(
        Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "499",
                "--call-graph",
                "dwarf,16384",
                "-p",
            ])
            .arg(pid.to_string())
            .args(["-o", &out])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok(),
    )
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // perf writes its file on SIGINT.
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

/// CPU spent per request during one load phase, by the server process, PostgreSQL's backends
/// for the bench database, and the load generator (this process): a figure the machine's
/// speed of the hour moves far less than a rate does.
pub struct CpuCost {
    server: u32,
    db: Option<String>,
    at: (u64, u64, u64),
}

impl CpuCost {
    fn ticks(server: u32, db: Option<&str>) -> (u64, u64, u64) {
        (
            proc_cpu(&server.to_string()).map_or(0, |(_, t)| t),
            db.map_or(0, postgres_ticks_for),
            proc_cpu("self").map_or(0, |(_, t)| t),
        )
    }

    pub fn start(server: u32, db: Option<&str>) -> Self {
        Self {
            server,
            db: db.map(str::to_owned),
            at: Self::ticks(server, db),
        }
    }

    /// `server X µs + PostgreSQL Y µs + load Z µs per request` for `rate` over the phase.
    pub fn per_request(&self, rate: &Rate) -> String {
        let now = Self::ticks(self.server, self.db.as_deref());
        let requests = rate.per_sec * SECONDS as f64;
        let hz = clock_ticks();
        let us = |a: u64, b: u64| b.saturating_sub(a) as f64 * 1e6 / hz / requests.max(1.0);
        let (s, p, l) = (
            us(self.at.0, now.0),
            us(self.at.1, now.1),
            us(self.at.2, now.2),
        );
        match self.db {
            Some(_) => format!(
                "CPU/request: idhub {s:.0} µs + PostgreSQL {p:.0} µs + load {l:.0} µs = {:.0} µs",
                s + p + l
            ),
            None => format!(
                "CPU/request: idhub {s:.0} µs + load {l:.0} µs = {:.0} µs",
                s + l
            ),
        }
    }
}
