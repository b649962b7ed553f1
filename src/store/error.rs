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
