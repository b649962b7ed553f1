//! Cross-node notifications, sent after commit and batched (PostgreSQL).
//!
//! PostgreSQL serialises every committing transaction that has called `NOTIFY`: it takes one
//! database-wide lock before its commit record is written and keeps it until the commit is on
//! disk (`PreCommit_Notify` in `async.c`), so notifying transactions cannot share a WAL flush
//! ("group commit"). Measured here with `pgbench`, 32 clients: a one-row INSERT 8.7-9.8k tps,
//! the same INSERT with a `pg_notify` in its statement 550-660 tps. A write that announced its
//! invalidations inside its own transaction therefore capped every node's write rate at one
//! disk flush at a time.
//!
//! So writes commit without notifying and hand their invalidations to this node's
//! [`Notifier`], which sends whatever has queued meanwhile as ONE transaction on its own
//! connection (one lock, one flush for the whole batch), and the write is answered once every
//! peer has acknowledged (`peers`), exactly as before. What changes is the window between a
//! commit and its notification: a node that dies inside it (after its commit, before its
//! batch went out) leaves peers that never hear of that write. The peers cover it: each node
//! checks every second which nodes still listen and drops all it caches when a peer vanishes
//! without having said `bye` (`cluster`), and a node says `bye` only through this queue, after
//! everything it committed has gone out. The client of such a write never got an answer.

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The most notifications sent in one transaction.
const MAX_BATCH: usize = 512;

enum Item {
    Send(&'static str, String),
    /// Answered once everything queued before it has been sent (or given up on at close).
    Flush(oneshot::Sender<()>),
}

/// This node's queue of outgoing notifications and the task that sends them.
pub struct Notifier {
    tx: mpsc::UnboundedSender<Item>,
}

impl Notifier {
    /// Starts the sending task on its own connection (opened on first use, reopened after a
    /// failure). `hold` delays each batch: fault injection for tests, zero otherwise.
    pub fn spawn(opts: PgConnectOptions, hold: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(opts, hold, rx));
        Self { tx }
    }

    /// Queues `payload` on `channel`; sent after everything queued before it.
    pub fn send(&self, channel: &'static str, payload: String) {
        // The task ends only with the runtime: nothing is left to deliver to then.
        let _ = self.tx.send(Item::Send(channel, payload));
    }

    /// Waits until everything queued so far has been sent, for at most `within`.
    pub async fn flush(&self, within: Duration) -> bool {
        let (done, sent) = oneshot::channel();
        if self.tx.send(Item::Flush(done)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(within, sent).await, Ok(Ok(())))
    }
}

async fn run(opts: PgConnectOptions, hold: Duration, mut rx: mpsc::UnboundedReceiver<Item>) {
    let mut conn: Option<PgConnection> = None;
    while let Some(first) = rx.recv().await {
        let mut channels = Vec::new();
        let mut payloads = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Item::Send(c, p) => {
                    channels.push(c.to_owned());
                    payloads.push(p);
                }
                Item::Flush(f) => flushes.push(f),
            }
            if payloads.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !payloads.is_empty() {
            if !hold.is_zero() {
                tokio::time::sleep(hold).await;
            }
            send_batch(&opts, &mut conn, &channels, &payloads).await;
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

/// Sends one batch as one transaction, retrying on a fresh connection until it goes out: a
/// committed write's invalidations must reach the other nodes. Errors here are connection
/// failures (the statement itself cannot fail), so a retry may deliver a batch twice, which
/// is harmless: applying an invalidation or an acknowledgement twice changes nothing.
async fn send_batch(
    opts: &PgConnectOptions,
    conn: &mut Option<PgConnection>,
    channels: &[String],
    payloads: &[String],
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if conn.is_none() {
            match PgConnection::connect_with(opts).await {
                Ok(c) => *conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: cannot open the notification connection")
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            let sent = sqlx::query(
                "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS x(c, p)",
            )
            .bind(channels)
            .bind(payloads)
            .execute(&mut *c)
            .await;
            match sent {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: sending notifications failed; retrying");
                    *conn = None;
                }
            }
        }
        // Backoff of this background task between reconnects (never on a request path
        // beyond the wait for acknowledgements, which gives up on its own).
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
