//! SQLite reads on the request's own thread: a user by id and a page of a SCIM search.
//!
//! sqlx runs each SQLite connection on a worker thread of its own, so every statement is a
//! message to that thread and a wake-up back on the runtime. For the point reads of the
//! request path that hand-off cost more than the read: a raw sqlx lookup took 39 µs of CPU
//! where SQLite's own work is a few (BENCHMARKS.md, SCIM, tenth session). These reads go to
//! SQLite directly (`rusqlite`, linked against the same `libsqlite3-sys` as sqlx, so one
//! SQLite library serves both) on the thread that serves the request: an indexed lookup over
//! cached pages takes microseconds, less than the hand-off it replaces.
//!
//! Only statements that read are run here (`query_only` connections). In WAL mode (set by
//! the main pool, `dialect::Backend::connection_setup`) a read sees the last commit and
//! never waits for a writer; the cases where a WAL reader does wait (another connection
//! recovering the WAL after a crash) are bounded by a short busy timeout, so a request thread
//! is never held for long. When anything fails here the caller falls back to the sqlx path
//! (which reports a real error as usual) and the connection is dropped. When the failure is
//! the database's rather than the statement's (a connection that cannot be opened, a lock
//! held past the timeout, an I/O error), this path also rests for a moment, so that a
//! persistent condition does not cost every request a failed attempt first; a statement that
//! fails (whatever a request put in it) never turns the path off for other requests.
//!
//! A statement may run on the request thread for [`TIME_BUDGET`] at most: SQLite's progress
//! handler interrupts a longer one (a filter that has to scan a tenant) and the sqlx path runs
//! it again on sqlx's thread, so a slow query never holds a thread that serves other
//! requests. The repeated work is bounded by the budget.
//!
//! Connections are opened when needed — as many as threads read at once, the runtime's
//! worker threads — with the main pool's per-connection set-up, and kept for the next read.

use super::dialect::Backend;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a read may wait on a lock before it gives up and the sqlx path serves it.
const BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// After a failure, how long requests go straight to the sqlx path.
const REST_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// How long one statement may run on the request thread before it is interrupted and handed
/// to the sqlx path (a page of 100 users with their groups takes well under a millisecond).
const TIME_BUDGET: Duration = Duration::from_millis(2);
/// SQLite calls the progress handler every this many virtual-machine instructions.
const PROGRESS_OPS: i32 = 1000;
/// Idle connections kept; more are closed when handed back.
const MAX_IDLE: usize = 16;
/// Prepared statements kept per connection (search pages differ by filter shape and count).
const STATEMENT_CACHE: usize = 64;

pub(crate) struct SqliteReads {
    path: PathBuf,
    outcomes: Outcomes,
    idle: Mutex<Vec<Reader>>,
    closed: AtomicBool,
    failed_at: Mutex<Option<Instant>>,
}

/// Counters of how reads went (`idhub_sqlite_reads_total{outcome}`): `served` on the request
/// thread, `over_budget` (handed to sqlx), `failed` (handed to sqlx; the path rests).
#[derive(Clone)]
pub(crate) struct Outcomes {
    pub(crate) served: prometheus::IntCounter,
    pub(crate) over_budget: prometheus::IntCounter,
    pub(crate) failed: prometheus::IntCounter,
}

/// A connection and the time its current statement must end by (µs on [`clock`]).
struct Reader {
    conn: Connection,
    deadline: Arc<AtomicU64>,
}

/// Microseconds since the first call: a monotonic clock cheap enough for the progress handler.
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A row read here, its columns owned and named.
#[derive(Debug)]
pub(crate) struct NativeRow {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl NativeRow {
    /// The value of the named column; `None` when the statement has no such column.
    pub(crate) fn get(&self, col: &str) -> Option<&Value> {
        let i = self.names.iter().position(|n| n == col)?;
        self.values.get(i)
    }
}

impl SqliteReads {
    /// Reads of the SQLite database file `path`.
    pub(crate) fn new(path: PathBuf, outcomes: Outcomes) -> Self {
        Self {
            path,
            outcomes,
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            failed_at: Mutex::new(None),
        }
    }

    /// Runs a read-only statement whose parameters are written `$1`, `$2`, … and returns its
    /// rows — or `None` when this path cannot serve it now (closed, resting after a failure,
    /// or this attempt failed): the caller then runs the same statement through sqlx.
    pub(crate) fn query(&self, sql: &str, params: &[Value]) -> Option<Vec<NativeRow>> {
        if self.closed.load(Ordering::Acquire) || self.resting() {
            return None;
        }
        let conn = match self.idle.lock().ok().and_then(|mut v| v.pop()) {
            Some(c) => c,
            None => match self.open() {
                Ok(c) => c,
                Err(e) => {
                    self.failed(&e, true);
                    return None;
                }
            },
        };
        let budget = u64::try_from(TIME_BUDGET.as_micros()).unwrap_or(u64::MAX);
        conn.deadline
            .store(clock().saturating_add(budget), Ordering::Relaxed);
        match run(&conn.conn, sql, params) {
            Ok(rows) => {
                self.give_back(conn);
                self.outcomes.served.inc();
                Some(rows)
            }
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                // Over budget: a long statement, not a failure. The connection is fine.
                self.give_back(conn);
                self.outcomes.over_budget.inc();
                None
            }
            Err(e) => {
                // The connection is dropped with the error: a fresh one is opened next time.
                self.failed(&e, of_the_database(&e));
                None
            }
        }
    }

    /// Closes the idle connections; a connection in use is closed when its read ends.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    fn open(&self) -> rusqlite::Result<Reader> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The main pool's set-up (WAL, case-sensitive LIKE, ...), so that a statement means
        // the same here as there; then the short busy timeout and no writes at all.
        for stmt in Backend::Sqlite.connection_setup() {
            conn.execute_batch(stmt)?;
        }
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch("PRAGMA query_only = ON")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let by = deadline.clone();
        conn.progress_handler(
            PROGRESS_OPS,
            Some(move || clock() > by.load(Ordering::Relaxed)),
        )?;
        Ok(Reader { conn, deadline })
    }

    fn give_back(&self, conn: Reader) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
    }

    fn resting(&self) -> bool {
        match self.failed_at.lock() {
            Ok(at) => at.is_some_and(|t| t.elapsed() < REST_AFTER_FAILURE),
            Err(_) => true,
        }
    }

    /// Counts a failure; `rest`: the database's, so the sqlx path serves reads for a while.
    fn failed(&self, e: &rusqlite::Error, rest: bool) {
        self.outcomes.failed.inc();
        if !rest {
            tracing::debug!(error = %e, "sqlite: a statement failed on the request thread; the sqlx path runs it");
            return;
        }
        tracing::warn!(error = %e, "sqlite: a read on the request thread failed; the sqlx path serves reads for a while");
        if let Ok(mut at) = self.failed_at.lock() {
            *at = Some(Instant::now());
        }
    }
}

/// Whether a failure is the database's (locked past the timeout, I/O, corruption, out of
/// memory or file handles) rather than the statement's.
fn of_the_database(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            C::DatabaseBusy
                | C::DatabaseLocked
                | C::SystemIoFailure
                | C::DatabaseCorrupt
                | C::NotADatabase
                | C::CannotOpen
                | C::OutOfMemory
        ),
        _ => false,
    }
}

/// Prepares (or takes from the connection's cache) `sql`, binds each `$n` to `params[n-1]`
/// by name — a parameter may appear more than once and in any order — and collects the rows.
fn run(conn: &Connection, sql: &str, params: &[Value]) -> rusqlite::Result<Vec<NativeRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    if !stmt.readonly() {
        return Err(rusqlite::Error::InvalidQuery);
    }
    for i in 1..=stmt.parameter_count() {
        let value = stmt
            .parameter_name(i)
            .and_then(|n| n.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| params.get(n))
            .ok_or(rusqlite::Error::InvalidParameterCount(i, params.len()))?;
        stmt.raw_bind_parameter(i, value)?;
    }
    let names: Arc<[String]> = stmt.column_names().iter().map(|n| n.to_string()).collect();
    let width = names.len();
    let mut found = Vec::new();
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(width);
        for c in 0..width {
            values.push(row.get::<_, Value>(c)?);
        }
        found.push(NativeRow {
            names: names.clone(),
            values,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, SqliteReads) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let c = Connection::open(&path).expect("open");
        c.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, note TEXT); INSERT INTO t VALUES ('a', 1, NULL), ('b', 2, 'x')",
        )
        .expect("schema");
        let counter = |n: &str| prometheus::IntCounter::new(n, n).expect("counter");
        let outcomes = Outcomes {
            served: counter("served"),
            over_budget: counter("over_budget"),
            failed: counter("failed"),
        };
        (dir, SqliteReads::new(path, outcomes))
    }

    #[test]
    fn binds_by_name_in_any_order_and_repeated() {
        let (_dir, r) = db();
        let rows = r
            .query(
                "SELECT id, n, note FROM t WHERE n >= $2 AND id <> $1 AND (id = $1 OR n = $2)",
                &[Value::Text("a".into()), Value::Integer(2)],
            )
            .expect("served");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get("id"), Some(&Value::Text("b".into())));
        assert_eq!(rows[0].get("note"), Some(&Value::Text("x".into())));
        assert_eq!(rows[0].get("missing"), None);
    }

    #[test]
    fn a_failing_statement_or_a_write_is_refused_and_the_next_read_served() {
        let (_dir, r) = db();
        assert!(r.query("SELECT id FROM t WHERE id = $2", &[]).is_none());
        assert!(r.query("SELECT nope FROM t", &[]).is_none());
        assert_eq!(r.outcomes.failed.get(), 2);
        // The statement's failure, not the database's: other reads go on here.
        let rows = r
            .query("SELECT id FROM t WHERE id = $1", &[Value::Text("a".into())])
            .expect("served");
        assert_eq!(rows.len(), 1);
        let (_dir2, w) = db();
        assert!(w.query("DELETE FROM t", &[]).is_none());
        let c = Connection::open(_dir2.path().join("t.db")).expect("open");
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 2, "nothing was deleted");
    }

    #[test]
    fn a_database_that_cannot_be_opened_rests_the_path() {
        let (dir, r) = db();
        let gone = SqliteReads::new(dir.path().join("no/such/dir/t.db"), r.outcomes.clone());
        let q = "SELECT 1 AS one";
        assert!(gone.query(q, &[]).is_none());
        assert!(gone.query(q, &[]).is_none());
        assert_eq!(
            gone.outcomes.failed.get(),
            1,
            "the second read was not tried: resting"
        );
    }

    #[test]
    fn a_statement_over_budget_is_handed_back_without_resting() {
        let (_dir, r) = db();
        let long = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000000) SELECT COUNT(*) AS n FROM c";
        let t = Instant::now();
        assert!(r.query(long, &[]).is_none(), "interrupted");
        assert_eq!(r.outcomes.over_budget.get(), 1);
        assert_eq!(r.outcomes.failed.get(), 0);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        let rows = r
            .query("SELECT n FROM t WHERE id = $1", &[Value::Text("b".into())])
            .expect("the next read is served at once");
        assert_eq!(rows[0].get("n"), Some(&Value::Integer(2)));
    }

    #[test]
    fn sees_each_commit_and_serves_nothing_once_closed() {
        let (dir, r) = db();
        let q = "SELECT n FROM t WHERE id = $1";
        let p = [Value::Text("a".into())];
        assert_eq!(
            r.query(q, &p).expect("served")[0].get("n"),
            Some(&Value::Integer(1))
        );
        let w = Connection::open(dir.path().join("t.db")).expect("open");
        w.execute("UPDATE t SET n = 7 WHERE id = 'a'", [])
            .expect("update");
        assert_eq!(
            r.query(q, &p).expect("served")[0].get("n"),
            Some(&Value::Integer(7))
        );
        r.close();
        assert!(r.query(q, &p).is_none());
    }
}
