//! Connections for the one-statement reads of the request path (a user by id, a search page,
//! a user's groups), handed out without sqlx's pool bookkeeping.
//!
//! sqlx tests every connection it takes back into its pool (`PoolConnection::return_to_pool`
//! pings it): on PostgreSQL one more round trip, on SQLite one more hop to the connection's
//! worker thread — as much again as the read itself. A read that completed leaves its
//! connection ready for the next statement, so these connections go back to a plain list
//! without that test. A read that failed, or was abandoned part-way (a client went away and
//! its request future was dropped), never hands its connection back: the connection is
//! closed and a fresh one is opened when next needed. As in the main pool, a connection idle
//! for a while is pinged before use (a restarted server, a dropped NAT entry).
//!
//! The connections are opened with the main pool's options and per-connection set-up, and
//! counted apart from it: at most `size` of them, on top of the pool's `max_connections`.

use super::{IDLE_BEFORE_PING, StoreError, StoreResult};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor};
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::{Semaphore, SemaphorePermit};

pub(crate) struct Readers {
    pool: AnyPool,
    setup: &'static [&'static str],
    idle: Mutex<Vec<(AnyConnection, Instant)>>,
    permits: Semaphore,
}

/// One connection, lent for one statement. Call [`Reader::done`] once the statement has
/// completed; dropping it otherwise closes the connection.
pub(super) struct Reader<'a> {
    readers: &'a Readers,
    conn: Option<AnyConnection>,
    _permit: SemaphorePermit<'a>,
}

impl Readers {
    pub(super) fn new(pool: AnyPool, setup: &'static [&'static str], size: usize) -> Self {
        Self {
            pool,
            setup,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size.max(1)),
        }
    }

    /// Waits for a turn, then lends an idle connection (pinged first if it sat idle) or opens
    /// one.
    pub(super) async fn get(&self) -> StoreResult<Reader<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Db(sqlx::Error::PoolClosed))?;
        if self.pool.is_closed() {
            return Err(StoreError::Db(sqlx::Error::PoolClosed));
        }
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match idle {
            Some((mut c, since)) if since.elapsed() >= IDLE_BEFORE_PING => {
                if c.ping().await.is_ok() {
                    c
                } else {
                    self.open().await?
                }
            }
            Some((c, _)) => c,
            None => self.open().await?,
        };
        Ok(Reader {
            readers: self,
            conn: Some(conn),
            _permit: permit,
        })
    }

    /// Runs a statement that returns at most one row.
    pub(crate) async fn fetch_optional(
        &self,
        q: Query<'_, Any, AnyArguments>,
    ) -> StoreResult<Option<AnyRow>> {
        let mut r = self.get().await?;
        let row = q.fetch_optional(r.conn()?).await?;
        r.done();
        Ok(row)
    }

    /// Runs a statement and collects its rows.
    pub(crate) async fn fetch_all(
        &self,
        q: Query<'_, Any, AnyArguments>,
    ) -> StoreResult<Vec<AnyRow>> {
        let mut r = self.get().await?;
        let rows = q.fetch_all(r.conn()?).await?;
        r.done();
        Ok(rows)
    }

    /// A new connection with the pool's options and per-connection set-up (never one of the
    /// pool's idle connections, which may have died unnoticed).
    async fn open(&self) -> StoreResult<AnyConnection> {
        let mut conn = AnyConnection::connect_with(&self.pool.connect_options()).await?;
        for stmt in self.setup {
            conn.execute(*stmt).await?;
        }
        Ok(conn)
    }

    /// Closes every idle connection; lent ones close when dropped (the pool is closed, so
    /// none is handed back).
    pub(super) async fn close(&self) {
        self.permits.close();
        let idle: Vec<(AnyConnection, Instant)> = self
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for (c, _) in idle {
            let _ = c.close().await;
        }
    }
}

impl Reader<'_> {
    pub(super) fn conn(&mut self) -> StoreResult<&mut AnyConnection> {
        self.conn
            .as_mut()
            .ok_or(StoreError::Db(sqlx::Error::PoolClosed))
    }

    /// The statement completed: the connection goes back for the next read.
    pub(super) fn done(mut self) {
        if let Some(c) = self.conn.take()
            && !self.readers.pool.is_closed()
            && let Ok(mut idle) = self.readers.idle.lock()
        {
            idle.push((c, Instant::now()));
        }
    }
}
