//! The store's one error type. Rendered to HTTP in `http::error` and to SCIM in the SCIM layer.

/// A failure of a store call.
///
/// "Not found" is not an error here: finders return `Result<Option<T>, StoreError>`, so a
/// database failure can never be mistaken for an absent row.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The target of an update or delete does not exist (in this tenant).
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint refused the write; `constraint` is the logical constraint name
    /// (the same on both backends, see `dialect::conflict_constraint`).
    #[error("conflict on {constraint}")]
    Conflict { constraint: &'static str },
    /// A referenced row (e.g. a group member) does not exist in this tenant.
    #[error("no such resource: {0}")]
    InvalidReference(String),
    /// The optimistic-concurrency version did not match (the row changed meanwhile).
    #[error("version mismatch")]
    VersionMismatch,
    /// A query the caller built cannot be run (e.g. a filter on an attribute the store
    /// cannot compare): a client error.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A value read back from the database could not be understood.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed or is unreachable. Details go to the log, never to a client.
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
}

impl StoreError {
    /// Whether the failure is the database's momentary state rather than the request's: no
    /// connection to be had, the connection dropped or was terminated (SQLSTATE class 08,
    /// 57P01-57P03), or the transaction lost a deadlock or serialization conflict (40P01,
    /// 40001). Answered 503: the same request may succeed when retried.
    pub fn is_transient(&self) -> bool {
        let Self::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
            sqlx::Error::Database(d) => d.code().is_some_and(|c| {
                c.starts_with("08")
                    || matches!(&*c, "57P01" | "57P02" | "57P03" | "40P01" | "40001")
            }),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match super::dialect::conflict_constraint(&e) {
            Some(constraint) => Self::Conflict { constraint },
            None => Self::Db(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Db(sqlx::Error::Migrate(Box::new(e)))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
