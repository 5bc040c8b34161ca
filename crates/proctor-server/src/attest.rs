//! The statements the service signs into the log: a job's pre-registration when it is
//! accepted, and its result when it ends (succeeded, failed or cancelled).
//!
//! Both are signed inside the store's transaction, under the log head's lock, because each
//! statement carries the index its own entry takes ([`LogSlot`]).

use std::sync::Arc;

use proctor_attest::statement::{AttestedModel, JobRecord};
use proctor_attest::{EvalResult, JobAccepted, SigningKey};
use proctor_core::{
    DatasetRef, EvalRef, Model, PolicyRef, RunReport, SampleCounts, Sha256Digest, Usage,
};
use proctor_models::ModelConfig;
use proctor_store::{AccountId, EntryKind, Job, JobStatus, LogSlot, ModelId, NewJob, SignError};

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
            &job.policy_name,
            job.policy_digest,
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
            &job.policy_name,
            job.policy_digest,
        )
        .await
    }

    async fn read(
        app: &App,
        evaluator: &AccountId,
        eval: &Sha256Digest,
        dataset: &Sha256Digest,
        model: ModelId,
        policy_name: &str,
        policy_digest: Sha256Digest,
    ) -> ApiResult<JobContext> {
        let eval = app.store.eval(eval).await?;
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
        })
    }
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

/// Signs the pre-registration of `job`, which takes `slot`.
pub fn sign_accepted(
    key: &SigningKey,
    ctx: &JobContext,
    job: &Job,
    slot: LogSlot,
) -> Result<Vec<u8>, SignError> {
    let envelope = JobAccepted {
        job_id: job.id.to_string(),
        evaluator: ctx.evaluator.clone(),
        eval: ctx.eval.clone(),
        dataset: ctx.dataset.clone(),
        model: ctx.model.clone(),
        policy: ctx.policy.clone(),
        accepted_at: slot.at.to_rfc3339(),
        log_index: slot.index,
        service_version: SERVICE_VERSION.into(),
    }
    .into_statement()
    .sign(key)?;
    Ok(envelope.as_bytes().to_vec())
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
        /// Why it failed, or what ran out while it ran.
        reason: Option<String>,
    },
    /// It failed, was cancelled or revoked, with the usage it had consumed.
    Other {
        /// The final status.
        status: JobStatus,
        /// Why.
        reason: String,
        /// What the vendor was billed before it ended.
        usage: Usage,
    },
}

/// Signs the result of `ended` (the job as the store is about to write it), which takes
/// `slot`. `accepted_index` pairs it with the job's pre-registration.
pub fn sign_result(
    key: &SigningKey,
    ctx: &JobContext,
    ended: &Job,
    accepted_index: u64,
    ending: &Ending,
    slot: LogSlot,
) -> Result<Vec<u8>, SignError> {
    let record = JobRecord {
        job_id: ended.id.to_string(),
        vendor: ctx.vendor.clone(),
        started_at: ended.started_at.map(|t| t.to_rfc3339()),
        finished_at: slot.at.to_rfc3339(),
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
