//! The storage error: what went wrong, and whether trying again may help.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid database configuration: {0}")]
    Config(String),
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    /// The database refused a value of the request (text it cannot hold).
    #[error("{0}")]
    Invalid(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The failure of a group commit, shared by every item of the batch.
    #[error(transparent)]
    Batch(std::sync::Arc<StoreError>),
}

impl StoreError {
    /// True when the same call may succeed later (connection lost, pool exhausted, locked).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Batch(shared) => shared.is_transient(),
            other => matches!(other, StoreError::Unavailable(_)),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            sqlx::Error::Database(db) if is_transient_code(db.code().as_deref()) => {
                StoreError::Unavailable(err)
            }
            // PostgreSQL: untranslatable character (U+0000 in text or jsonb), character not
            // in the encoding.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("22P05" | "22021")) =>
            {
                StoreError::Invalid(
                    "text may not contain U+0000 or characters outside UTF-8".into(),
                )
            }
            _ => StoreError::Database(err),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> Self {
        StoreError::Corrupt(err.to_string())
    }
}

/// SQLite BUSY/LOCKED and PostgreSQL's connection, shutdown, serialization and lock-timeout
/// classes.
fn is_transient_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    matches!(code, "5" | "6" | "261" | "517")
        || code.starts_with("08")
        || code.starts_with("57P")
        || code == "40001"
        || code == "55P03"
        || code == "40P01"
}
