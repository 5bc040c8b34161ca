//! The statements the service signs into the log: a job's pre-registration when it is
//! accepted, and its result when it ends (succeeded, failed or cancelled).
//!
//! Both are signed inside the store's transaction, under the log head's lock, because each
//! statement carries the index its own entry takes ([`LogSlot`]).
//!
//! What a statement says of a job's end is host-written: a [`Reason`] from a fixed set, never
//! an error's or a panic's text (either may quote what a guest or a model said). Its times are
//! the job's [`VisibleTimes`]: on the policy's grid when it has one.

use std::sync::Arc;

use proctor_attest::statement::{AttestedModel, JobRecord};
use proctor_attest::{EvalResult, JobAccepted, SigningKey};
use proctor_core::release::ReleaseStatus;
use proctor_core::{
    DatasetRef, EvalRef, Leakage, MetricSpec, Model, Policy, PolicyRef, RunReport, SampleCounts,
    Sha256Digest, Usage,
};
use proctor_models::ModelConfig;
use proctor_store::{
    AccountId, EntryKind, Job, JobStatus, LogSlot, ModelId, NewJob, REVOKED_REASON, SignError,
    Timestamp,
};

use crate::clock::{TimeGrid, VisibleTimes};
use crate::error::{ApiError, ApiResult};
use crate::state::App;

/// The service's version, in every statement.
pub const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a job's statements say about what it runs, read from the store.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The evaluator's account name.
    pub evaluator: String,
    /// The vendor's account name.
    pub vendor: String,
    /// The eval.
    pub eval: EvalRef,
    /// The dataset.
    pub dataset: DatasetRef,
    /// The model, as its registration describes it.
    pub model: AttestedModel,
    /// The policy.
    pub policy: PolicyRef,
    /// The grid its visible times lie on, if its policy has one.
    pub grid: Option<TimeGrid>,
    /// Its leakage bound, from its policy, its eval's declaration and its sample count: the
    /// same before it runs and after, so its pre-registration and its result state one bound.
    pub leakage: Leakage,
}

impl JobContext {
    /// Reads what `job` refers to.
    ///
    /// # Errors
    ///
    /// A store error, or a 500 when a stored model configuration no longer parses.
    pub async fn load(app: &App, job: &Job) -> ApiResult<JobContext> {
        JobContext::read(
            app,
            &job.evaluator,
            &job.eval,
            &job.dataset,
            job.model,
            (&job.policy_name, job.policy_digest, &job.policy_json),
            job.total,
        )
        .await
    }

    /// Reads what a job about to be submitted refers to.
    ///
    /// # Errors
    ///
    /// As [`JobContext::load`].
    pub async fn for_new(app: &App, job: &NewJob) -> ApiResult<JobContext> {
        JobContext::read(
            app,
            &job.evaluator,
            &job.eval,
            &job.dataset,
            job.model,
            (&job.policy_name, job.policy_digest, &job.policy_json),
            job.total,
        )
        .await
    }

    async fn read(
        app: &App,
        evaluator: &AccountId,
        eval: &Sha256Digest,
        dataset: &Sha256Digest,
        model: ModelId,
        (policy_name, policy_digest, policy_json): (&str, Sha256Digest, &str),
        samples: u64,
    ) -> ApiResult<JobContext> {
        let policy = stored_policy(policy_json)?;
        let eval = app.store.eval(eval).await?;
        // The declaration `describe` made at upload, which every run of the eval repeats.
        let metrics: Vec<MetricSpec> = serde_json::from_str(&eval.metrics)
            .map_err(|e| ApiError::internal("stored eval metrics", &e))?;
        let dataset = app.store.dataset(dataset).await?;
        let model = app.store.model(model).await?;
        let vendor = app.store.account(model.owner).await?;
        let evaluator = app.store.account(*evaluator).await?;
        let built = model_without_credential(&model.config)?;
        Ok(JobContext {
            evaluator: evaluator.name,
            vendor: vendor.name.clone(),
            eval: EvalRef {
                name: eval.name,
                version: eval.version,
                sha256: eval.digest,
            },
            dataset: DatasetRef {
                sha256: dataset.digest,
                items: dataset.items,
            },
            model: AttestedModel::new(&vendor.name, &built.descriptor()),
            policy: PolicyRef {
                name: policy_name.to_owned(),
                sha256: policy_digest,
            },
            grid: TimeGrid::of(&policy),
            leakage: proctor_core::leakage::bound(&policy, &metrics, samples),
        })
    }
}

/// A job's stored policy (canonical JSON, written by the server when it accepted the job).
///
/// # Errors
///
/// A 500 when it no longer parses.
pub fn stored_policy(policy_json: &str) -> ApiResult<Policy> {
    serde_json::from_str(policy_json).map_err(|e| ApiError::internal("stored job policy", &e))
}

/// Builds a stored model without its credential, for its descriptor: building contacts no
/// endpoint, and the credential is opened only by the worker that runs the job.
pub fn model_without_credential(config_json: &str) -> ApiResult<Arc<dyn Model>> {
    let config: ModelConfig = serde_json::from_str(config_json)
        .map_err(|e| ApiError::internal("stored model configuration", &e))?;
    config
        .build(None, Some(0))
        .map_err(|e| ApiError::internal("building a stored model", &e))
}

/// Signs the pre-registration of `job`, which takes `slot`. `clock` is the server's clock at
/// submission: on a grid, the statement's `accepted_at` is its grid point (the job's visible
/// `created_at`), else the database's time of the entry.
pub fn sign_accepted(
    key: &SigningKey,
    ctx: &JobContext,
    job: &Job,
    slot: LogSlot,
    clock: Timestamp,
) -> Result<Vec<u8>, SignError> {
    let accepted_at = ctx.grid.map_or(slot.at, |grid| grid.floor(clock));
    let envelope = JobAccepted {
        job_id: job.id.to_string(),
        evaluator: ctx.evaluator.clone(),
        eval: ctx.eval.clone(),
        dataset: ctx.dataset.clone(),
        model: ctx.model.clone(),
        policy: ctx.policy.clone(),
        accepted_at: accepted_at.to_rfc3339(),
        leakage: ctx.leakage.clone(),
        log_index: slot.index,
        service_version: SERVICE_VERSION.into(),
    }
    .into_statement()
    .sign(key)?;
    Ok(envelope.as_bytes().to_vec())
}

/// Why a job ended as it did, when it did not simply succeed. Each has one fixed, host-written
/// text, which the job's row, its view and its result statement carry: so nothing a guest or
/// a panic chose reaches anyone, and a job's end shows one of `Reason::ALL.len() + 1` values
/// (`proctor_core::leakage::VISIBLE_ENDINGS`). The details (which budget, which error) go to
/// the service's log, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// It ran to its end, but some queries were refused: the grant's budget ran out, or the
    /// grant stopped covering the job, while it ran.
    BudgetRanOut,
    /// It ran to its end and its release was withheld (its report says why).
    Withheld,
    /// Both of the above.
    WithheldBudgetRanOut,
    /// It could not be set up: the sandbox, the dataset or the model's configuration refused.
    Setup,
    /// The service could not run it to its end: an internal error, a panic, or every
    /// attempt's worker died.
    Internal,
    /// Its evaluator cancelled it.
    Cancelled,
    /// Its vendor revoked the grant.
    Revoked,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 7] = [
        Reason::BudgetRanOut,
        Reason::Withheld,
        Reason::WithheldBudgetRanOut,
        Reason::Setup,
        Reason::Internal,
        Reason::Cancelled,
        Reason::Revoked,
    ];

    /// The text the job's row, view and result statement carry.
    pub fn text(self) -> &'static str {
        match self {
            Reason::BudgetRanOut => {
                "the grant's budget ran out, or the grant stopped covering the job, while it ran \
                 (the grant's budget view says which)"
            }
            Reason::Withheld => "the release was withheld under the policy's release rules",
            Reason::WithheldBudgetRanOut => {
                "the release was withheld under the policy's release rules; the grant's budget \
                 ran out, or the grant stopped covering the job, while it ran"
            }
            Reason::Setup => {
                "the job could not be set up: its eval, dataset or model configuration was refused"
            }
            Reason::Internal => "the service could not run the job to its end",
            Reason::Cancelled => "cancelled by its evaluator",
            // The store writes the same text when it revokes a job that had not started.
            Reason::Revoked => REVOKED_REASON,
        }
    }

    /// The status a job ending for this reason has.
    pub fn status(self) -> JobStatus {
        match self {
            Reason::BudgetRanOut => JobStatus::Succeeded,
            Reason::Withheld | Reason::WithheldBudgetRanOut | Reason::Setup | Reason::Internal => {
                JobStatus::Failed
            }
            Reason::Cancelled => JobStatus::Cancelled,
            Reason::Revoked => JobStatus::Revoked,
        }
    }
}

/// How a job ended, for its result statement.
pub enum Ending {
    /// It ran to its end with this report: `succeeded`, or `failed` when the release was
    /// withheld.
    Ran {
        /// The report (aggregates only).
        report: Box<RunReport>,
        /// `succeeded` or `failed`.
        status: JobStatus,
        /// A [`Reason`]'s text: why it failed, or what ran out while it ran.
        reason: Option<String>,
    },
    /// It failed, was cancelled or revoked, with the usage it had consumed.
    Other {
        /// The final status.
        status: JobStatus,
        /// Why: a [`Reason`]'s text, or (a job its vendor rejected before it ran) the
        /// vendor's.
        reason: String,
        /// What the vendor was billed before it ended.
        usage: Usage,
    },
}

impl Ending {
    /// A job that ended without running to its end, for `reason`, with the usage it had
    /// consumed.
    pub fn stopped(reason: Reason, usage: Usage) -> Ending {
        Ending::Other {
            status: reason.status(),
            reason: reason.text().to_owned(),
            usage,
        }
    }

    /// A job that ran to its end: `succeeded`, or `failed` when its release was withheld
    /// (the report kept either way, so the attestation shows the counts); `budget_ran_out`
    /// when the grant refused some of its queries.
    pub fn ran(report: RunReport, budget_ran_out: bool) -> Ending {
        let reason = match (&report.release.status, budget_ran_out) {
            (ReleaseStatus::Released, false) => None,
            (ReleaseStatus::Released, true) => Some(Reason::BudgetRanOut),
            (ReleaseStatus::Withheld, false) => Some(Reason::Withheld),
            (ReleaseStatus::Withheld, true) => Some(Reason::WithheldBudgetRanOut),
        };
        Ending::Ran {
            report: Box::new(report),
            status: reason.map_or(JobStatus::Succeeded, Reason::status),
            reason: reason.map(|r| r.text().to_owned()),
        }
    }
}

/// Signs the result of `ended` (the job as the store is about to write it), which takes
/// `slot`. `accepted_index` pairs it with the job's pre-registration. Its times are the job's
/// [`VisibleTimes`] (on a grid, the end its worker padded it to).
pub fn sign_result(
    key: &SigningKey,
    ctx: &JobContext,
    ended: &Job,
    accepted_index: u64,
    ending: &Ending,
    slot: LogSlot,
) -> Result<Vec<u8>, SignError> {
    let times = VisibleTimes::of(ended, ctx.grid);
    let record = JobRecord {
        job_id: ended.id.to_string(),
        vendor: ctx.vendor.clone(),
        started_at: times.started_at.map(Timestamp::to_rfc3339),
        finished_at: times.finished_at.unwrap_or(slot.at).to_rfc3339(),
        accepted_log_index: accepted_index,
        log_index: slot.index,
        service_version: SERVICE_VERSION.into(),
    };
    let result = match ending {
        Ending::Ran {
            report,
            status,
            reason,
        } => {
            let mut result = EvalResult::succeeded(record, (**report).clone());
            result.status = attested_status(*status);
            result.reason.clone_from(reason);
            result
        }
        Ending::Other {
            status,
            reason,
            usage,
        } => EvalResult {
            job_id: record.job_id,
            status: attested_status(*status),
            reason: Some(reason.clone()),
            eval: ctx.eval.clone(),
            dataset: ctx.dataset.clone(),
            model: ctx.model.clone(),
            policy: ctx.policy.clone(),
            samples: SampleCounts::default(),
            usage: *usage,
            metrics: Default::default(),
            release: None,
            leakage: ctx.leakage.clone(),
            started_at: record.started_at,
            finished_at: record.finished_at,
            accepted_log_index: accepted_index,
            log_index: slot.index,
            service_version: record.service_version,
        },
    };
    Ok(result.into_statement().sign(key)?.as_bytes().to_vec())
}

fn attested_status(status: JobStatus) -> proctor_attest::JobStatus {
    match status {
        JobStatus::Cancelled => proctor_attest::JobStatus::Cancelled,
        JobStatus::Revoked => proctor_attest::JobStatus::Revoked,
        JobStatus::Succeeded => proctor_attest::JobStatus::Succeeded,
        // Queued and running are not endings; the store refuses them before signing.
        JobStatus::Failed | JobStatus::Queued | JobStatus::Running => {
            proctor_attest::JobStatus::Failed
        }
    }
}

/// The index of a job's pre-registration entry.
///
/// # Errors
///
/// A store error; a 500 when the job has none (every job is written with one).
pub async fn accepted_index(app: &App, job: &Job) -> ApiResult<u64> {
    match app.store.job_entry(job.id, EntryKind::Accepted).await? {
        Some(entry) => Ok(entry.index),
        None => Err(ApiError::internal(
            "job without a pre-registration entry",
            &job.id,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobs_end_shows_one_of_as_many_values_as_the_leakage_bound_counts() {
        // Succeeded without a reason, and one (status, text) per reason.
        let mut endings: Vec<(JobStatus, &str)> =
            Reason::ALL.iter().map(|r| (r.status(), r.text())).collect();
        endings.push((JobStatus::Succeeded, ""));
        endings.sort_by_key(|(status, text)| (status.as_str(), *text));
        endings.dedup();
        assert_eq!(
            endings.len(),
            proctor_core::leakage::VISIBLE_ENDINGS as usize
        );
    }
}
