//! What the store reports: one enum the server maps to HTTP statuses.

use std::error::Error as StdError;

use crate::grants::{Budget, Refusal};

/// A failure to sign an entry, from the caller's signing closure.
pub type SignError = Box<dyn StdError + Send + Sync>;

/// Why a store operation failed.
///
/// Suggested HTTP mapping: [`StoreError::NotFound`] 404, [`StoreError::Conflict`] 409,
/// [`StoreError::LeaseLost`], [`StoreError::InvalidState`] and [`StoreError::ReservationEnded`]
/// 409, [`StoreError::Invalid`] 422, [`StoreError::NoGrant`] 403,
/// [`StoreError::BudgetExhausted`] 429, everything else 500 (with details only in the server's
/// log).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for (or one it refers to) does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique name is taken (an account name; a model name of the same vendor).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The caller no longer holds the job's lease: it expired and may have been claimed by
    /// another worker, or the job ended. The caller must stop working on the job.
    #[error("the lease on job {0} was lost")]
    LeaseLost(String),
    /// The job is not in a state that allows the operation (e.g. cancelling a finished job).
    #[error("job {job} is {status}; {action} is not possible")]
    InvalidState {
        /// The job.
        job: String,
        /// Its current status.
        status: &'static str,
        /// What was tried.
        action: &'static str,
    },
    /// No grant lets the evaluator run this (none names it or its tier, or the one that did
    /// was revoked or expired). HTTP 403; the [`Refusal`] says which, for the message.
    #[error("no grant covers this: {}", .0.message())]
    NoGrant(Refusal),
    /// Accepting the job or sending the query would exceed one of the grant's budgets; nothing
    /// was counted. HTTP 429.
    #[error("the grant's budget is exhausted: {}", .0.message())]
    BudgetExhausted(Budget),
    /// A query reservation already ended the other way (settling a released one, or releasing
    /// a settled one). HTTP 409.
    #[error("reservation {id} is {state}; {action} is not possible")]
    ReservationEnded {
        /// The reservation.
        id: String,
        /// How it ended.
        state: &'static str,
        /// What was tried.
        action: &'static str,
    },
    /// A value that the database cannot hold or that breaks a rule of the store.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The caller's signing closure failed; nothing was written.
    #[error("signing the log entry failed: {0}")]
    Sign(#[source] SignError),
    /// The database URL is not one the store supports.
    #[error("unsupported database URL (want sqlite:… or postgres://…): {0}")]
    UnsupportedUrl(String),
    /// A stored value does not decode (a corrupted or foreign database).
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
    /// Applying the migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Maps a unique violation to [`StoreError::Conflict`] and a foreign-key violation to
/// [`StoreError::NotFound`], naming `what`; other errors pass through.
pub(crate) fn classify(
    err: sqlx::Error,
    conflict: &'static str,
    missing: &'static str,
) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            return StoreError::Conflict(conflict);
        }
        if db.is_foreign_key_violation() {
            return StoreError::NotFound(missing);
        }
    }
    StoreError::Database(err)
}
