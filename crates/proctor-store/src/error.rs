//! What the store reports: one enum the server maps to HTTP statuses, the refusal reasons it
//! carries ([`Refusal`] for 403, [`Budget`] for 429), and the [`Fault`]s its health probe finds.
//!
//! A leaf: every module of the crate reports through it, and it knows none of them.

use std::error::Error as StdError;

use crate::text_enum::text_enum;

/// A failure to sign an entry, from the caller's signing closure.
pub type SignError = Box<dyn StdError + Send + Sync>;

/// Why a store operation failed.
///
/// Suggested HTTP mapping: [`StoreError::NotFound`] 404, [`StoreError::Conflict`] 409,
/// [`StoreError::LeaseLost`], [`StoreError::InvalidState`] and [`StoreError::GrantInactive`]
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
    /// The job's grant stopped covering anything (it expired, or was revoked) while the job
    /// waited for its vendor: it can no longer be approved. HTTP 409.
    #[error("job {job} can no longer be approved: {}", .reason.message())]
    GrantInactive {
        /// The job.
        job: String,
        /// Why the grant covers nothing now.
        reason: Refusal,
    },
    /// No grant lets the evaluator run this (none names it or its tier, or the one that did
    /// was revoked or expired). HTTP 403; the [`Refusal`] says which, for the message.
    #[error("no grant covers this: {}", .0.message())]
    NoGrant(Refusal),
    /// Accepting the job or sending the query would exceed one of the grant's budgets; nothing
    /// was counted. HTTP 429.
    #[error("the grant's budget is exhausted: {}", .0.message())]
    BudgetExhausted(Budget),
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

/// What a health probe found wrong with the database ([`Store::probe`](crate::Store::probe)).
/// The server answers `/healthz` with 503 and the fault's code, so an orchestrator replaces the
/// replica; the text (with the database's own error) is for the server's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// No file is at the SQLite database's path any more (deleted or moved away). SQLite goes
    /// on writing to the file it opened, unlinked, and all of it is lost when the server stops.
    #[error("the database file {0} is gone")]
    FileMissing(String),
    /// Another file is at the SQLite database's path (restored, copied over, recreated): this
    /// store still writes the file it opened, and a connection opened now would open the other.
    #[error("the database file {0} was replaced by another file")]
    FileReplaced(String),
    /// The database file's path cannot be examined (a permission or I/O error).
    #[error("the database file {path} cannot be examined: {error}")]
    FileUnreadable {
        /// The path.
        path: String,
        /// The operating system's error.
        error: String,
    },
    /// The probe's write did not commit: a full disk, a read-only file, an unreachable
    /// database, connections that cannot start a transaction.
    #[error("the database refused a write: {0}")]
    WriteFailed(String),
}

/// Why no grant covers an evaluator, a job or a query ([`StoreError::NoGrant`], HTTP 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No grant names the evaluator or its tier for this model.
    NotGranted,
    /// The evaluator is commercial and no grant names its account.
    CommercialTier,
    /// The grant that covered it has expired.
    Expired,
    /// The grant that covered it was revoked.
    Revoked,
    /// The grant that covered it is suspended (by a usage alert, until its vendor reinstates
    /// it).
    Suspended,
    /// The account is not an evaluator.
    NotAnEvaluator,
    /// The job is not (or not yet) approved under this grant.
    NotApproved,
}

text_enum!(
    Refusal,
    "refusal",
    NotGranted = "not-granted",
    CommercialTier = "commercial-tier",
    Expired = "expired",
    Revoked = "revoked",
    Suspended = "suspended",
    NotAnEvaluator = "not-an-evaluator",
    NotApproved = "not-approved"
);

impl Refusal {
    /// Whether it ends the jobs running under the grant at once (a revocation or a
    /// suspension), not only their further queries.
    pub fn stops_jobs(self) -> bool {
        matches!(self, Refusal::Revoked | Refusal::Suspended)
    }

    /// A sentence for the API's error message.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotGranted => "no grant gives this evaluator access to the model",
            Refusal::CommercialTier => {
                "commercial evaluators need a grant that names their account"
            }
            Refusal::Expired => "the grant has expired",
            Refusal::Revoked => "the grant was revoked",
            Refusal::Suspended => "the grant is suspended",
            Refusal::NotAnEvaluator => "only evaluator accounts can be granted access",
            Refusal::NotApproved => "the job is not approved under this grant",
        }
    }
}

/// Which budget of a grant ran out ([`StoreError::BudgetExhausted`], HTTP 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    /// Jobs accepted today.
    JobsPerDay,
    /// Queries today.
    QueriesPerDay,
    /// Tokens today.
    TokensPerDay,
    /// Queries over the grant's life.
    QueriesTotal,
    /// Tokens over the grant's life.
    TokensTotal,
    /// The evaluator's epsilon ledger on the model (differential privacy), against the grant's
    /// `epsilon_total`.
    Epsilon,
    /// The job's leakage bound is above the grant's `bits_per_job`.
    BitsPerJob,
    /// The evaluator's leakage ledger on the model, against the grant's `bits_total`.
    BitsTotal,
    /// The model-wide epsilon cap its vendor set across all evaluators.
    ModelEpsilon,
    /// The model-wide leakage cap (bits) its vendor set across all evaluators.
    ModelBits,
    /// The worst case a DP job held at acceptance is used up (its caller's worst case was
    /// wrong: the hold is never topped up from the grant, so samples stay independent).
    JobWorstCase,
}

text_enum!(
    Budget,
    "budget",
    JobsPerDay = "jobs-per-day",
    QueriesPerDay = "queries-per-day",
    TokensPerDay = "tokens-per-day",
    QueriesTotal = "queries-total",
    TokensTotal = "tokens-total",
    Epsilon = "epsilon",
    BitsPerJob = "bits-per-job",
    BitsTotal = "bits-total",
    ModelEpsilon = "model-epsilon",
    ModelBits = "model-bits",
    JobWorstCase = "job-worst-case",
);

impl Budget {
    /// A sentence for the API's error message.
    pub fn message(self) -> &'static str {
        match self {
            Budget::JobsPerDay => "no more jobs today",
            Budget::QueriesPerDay => "no more queries today",
            Budget::TokensPerDay => "no more tokens today",
            Budget::QueriesTotal => "no more queries",
            Budget::TokensTotal => "no more tokens",
            Budget::Epsilon => {
                "the privacy budget (epsilon_total) of this evaluator on this model would be \
                 overspent"
            }
            Budget::BitsPerJob => "the job's leakage bound is above the grant's bits_per_job",
            Budget::BitsTotal => {
                "the leakage budget (bits_total) of this evaluator on this model would be \
                 overspent"
            }
            Budget::ModelEpsilon => {
                "the model-wide privacy cap (epsilon_total across all evaluators, set by its \
                 vendor) would be overspent"
            }
            Budget::ModelBits => {
                "the model-wide leakage cap (bits_total across all evaluators, set by its \
                 vendor) would be overspent"
            }
            Budget::JobWorstCase => "the job's reserved worst case is used up",
        }
    }
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
