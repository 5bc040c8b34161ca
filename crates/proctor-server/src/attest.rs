//! The statements the service signs into the log: a job's pre-registration when it is
//! accepted, and its result when it ends (succeeded, failed, cancelled or revoked), which restates the
//! facts of the pre-registration it reads back from the log.
//!
//! Both are signed inside the store's transaction, under the log head's lock, because each
//! statement carries the index its own entry takes ([`LogSlot`]).
//!
//! What a statement says of a job's end is host-written: a [`Reason`] from a fixed set, never
//! an error's or a panic's text (either may quote what a guest or a model said). Its times are
//! the job's [`VisibleTimes`]: on the policy's grid when it has one.

use std::sync::Arc;

use proctor_attest::earlier::SignedAcceptance;
use proctor_attest::statement::{AttestedModel, JobRecord};
use proctor_attest::{Envelope, EvalResult, Exposure, JobAccepted, SigningKey};
use proctor_core::{
    DatasetRef, EvalRef, JobEnd, Leakage, MetricSpec, Model, ModelIdentity, Policy, PolicyRef,
    SampleCounts,
};
use proctor_models::{HostPolicy, ModelConfig};
use proctor_store::{
    Account, DatasetMeta, EntryKind, Job, LogEntry, LogSlot, Model as StoredModel, NewJob,
    SignError, Timestamp,
};

use crate::clock::{TimeGrid, VisibleTimes};
use crate::error::{ApiError, ApiResult};
use crate::state::App;

pub use proctor_core::job_end::Reason;

/// The service's version, in every statement.
pub const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a job's statements say about what it runs: gathered once, when it is submitted, and
/// read back from its signed pre-registration when it ends ([`PreRegistration`]).
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
    /// The facts of a job about to be submitted by `evaluator`, on `model`, over `dataset`
    /// (all three read already by the submission); reads the eval's declaration and the
    /// model's vendor.
    ///
    /// # Errors
    ///
    /// A store error, or a 500 when a stored model configuration or declaration no longer
    /// parses.
    pub async fn for_new(
        app: &App,
        evaluator: &Account,
        job: &NewJob,
        model: &StoredModel,
        dataset: &DatasetMeta,
    ) -> ApiResult<JobContext> {
        let policy = stored_policy(&job.policy_json)?;
        let eval = app.store.eval(&job.eval).await?;
        let vendor = app.store.account(model.owner).await?;
        let built = model_without_credential(&model.config)?;
        Ok(JobContext {
            evaluator: evaluator.name.clone(),
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
                name: job.policy_name.clone(),
                sha256: job.policy_digest,
            },
            grid: TimeGrid::of(&policy),
            leakage: service_bound(
                proctor_core::leakage::bound(&policy, &declared_metrics(&eval.metrics)?, job.total),
                app.config.identity.enabled,
            ),
        })
    }
}

/// A service job's bound: with the channel of its identity figures when the service checks
/// identities (`proctor_core::leakage::Leakage::with_identity_checks`).
fn service_bound(bound: Leakage, identity_checked: bool) -> Leakage {
    if identity_checked {
        bound.with_identity_checks()
    } else {
        bound
    }
}

/// The declaration `describe` made at upload (stored JSON), which every run of the eval repeats.
fn declared_metrics(stored: &str) -> ApiResult<Vec<MetricSpec>> {
    serde_json::from_str(stored).map_err(|e| ApiError::internal("stored eval metrics", &e))
}

/// A job's pre-registration as it was signed: the facts its result restates, read back from
/// its `job-accepted` entry instead of from the (mutable) rows they were first read from.
#[derive(Debug, Clone)]
pub struct PreRegistration {
    /// What the job runs.
    pub ctx: JobContext,
    /// Its dataset's exposure to its vendor before it, as counted when it was accepted.
    pub exposure: Exposure,
    /// The entry's index, which the result statement names (`accepted_log_index`).
    pub index: u64,
}

impl PreRegistration {
    /// Reads `job`'s pre-registration entry: one store read (two in the rare case of
    /// [`PreRegistration::decode`] returning no exact bound).
    ///
    /// # Errors
    ///
    /// A store error; a 500 when the job has no pre-registration (every job is written with
    /// one) or it does not decode or match the job.
    pub async fn of(app: &App, job: &Job) -> ApiResult<PreRegistration> {
        let entry = app
            .store
            .job_entry(job.id, EntryKind::Accepted)
            .await?
            .ok_or_else(|| ApiError::internal("job without a pre-registration entry", &job.id))?;
        let (mut registered, unread) = PreRegistration::decode(job, &entry)?;
        if unread.leakage {
            tracing::debug!(job = %job.id, "recomputing the pre-registered leakage bound");
            // The bound's floats did not parse back bit for bit: the result must repeat the
            // pre-registration's bytes, so it is recomputed as it was at submission.
            let eval = app.store.eval(&job.eval).await?;
            let checked = registered
                .ctx
                .leakage
                .channels
                .contains_key(proctor_core::leakage::IDENTITY_CHANNEL);
            registered.ctx.leakage = service_bound(
                proctor_core::leakage::bound(
                    &stored_policy(&job.policy_json)?,
                    &declared_metrics(&eval.metrics)?,
                    job.total,
                ),
                checked,
            );
        }
        if unread.exposure {
            tracing::debug!(job = %job.id, "recounting the exposure of a v2 pre-registration");
            registered.exposure = app.store.exposure_before(job.id, entry.index).await?;
        }
        Ok(registered)
    }

    /// Decodes `entry`, the `job-accepted/v3` (or, for a job accepted before an upgrade,
    /// `v2`) statement of `job`, and checks it names the job's eval, dataset and policy.
    /// [`Unread`] says what [`PreRegistration::of`] must recompute.
    ///
    /// # Errors
    ///
    /// A 500 when the entry does not decode or does not match the job.
    pub fn decode(job: &Job, entry: &LogEntry) -> ApiResult<(PreRegistration, Unread)> {
        let envelope = Envelope::from_bytes(&entry.envelope)
            .map_err(|e| ApiError::internal("a stored pre-registration", &e))?;
        let payload = envelope.payload_unverified();
        let signed = SignedAcceptance::from_payload(payload)
            .map_err(|e| ApiError::internal("a stored pre-registration", &e))?;
        let (accepted, stated_exposure) = match signed {
            SignedAcceptance::V3(accepted) => (accepted, true),
            // Counted by `of`, from the rows the count at acceptance would have read.
            SignedAcceptance::V2(accepted) => (accepted.with_exposure(Exposure::default()), false),
        };
        let matches = entry.kind == EntryKind::Accepted
            && accepted.job_id == job.id.to_string()
            && accepted.log_index == entry.index
            && accepted.eval.sha256 == job.eval
            && accepted.dataset.sha256 == job.dataset
            && accepted.policy.sha256 == job.policy_digest;
        if !matches {
            return Err(ApiError::internal(
                "a pre-registration that does not match its job",
                &job.id,
            ));
        }
        let signed_leakage = serde_json::to_string(&accepted.leakage)
            .map_err(|e| ApiError::internal("a pre-registration's leakage bound", &e))?;
        let exact_leakage = contains(payload, format!("\"leakage\":{signed_leakage}").as_bytes());
        let policy = stored_policy(&job.policy_json)?;
        Ok((
            PreRegistration {
                ctx: JobContext {
                    evaluator: accepted.evaluator,
                    vendor: accepted.model.vendor.clone(),
                    eval: accepted.eval,
                    dataset: accepted.dataset,
                    model: accepted.model,
                    policy: accepted.policy,
                    grid: TimeGrid::of(&policy),
                    leakage: accepted.leakage,
                },
                exposure: accepted.exposure,
                index: entry.index,
            },
            Unread {
                leakage: !exact_leakage,
                exposure: !stated_exposure,
            },
        ))
    }
}

/// What a pre-registration's entry did not give back exactly, which the result must restate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    /// The leakage bound's floats do not re-serialize to the signed bytes (serde_json's
    /// default float parsing may miss by an ulp).
    pub leakage: bool,
    /// The entry is a `job-accepted/v2`, signed before exposure was counted.
    pub exposure: bool,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
/// endpoint, and the credential is opened only by the worker that runs the job. The model is
/// never called, so no host rules apply here; the worker's build applies the service's.
pub fn model_without_credential(config_json: &str) -> ApiResult<Arc<dyn Model>> {
    let config: ModelConfig = serde_json::from_str(config_json)
        .map_err(|e| ApiError::internal("stored model configuration", &e))?;
    config
        .build(None, Some(0), &HostPolicy::any())
        .map_err(|e| ApiError::internal("building a stored model", &e))
}

/// Signs the pre-registration of `job`, which takes `slot`; `exposure` is its dataset's
/// exposure to its vendor before it, counted in the same transaction. `clock` is the server's
/// clock at submission: on a grid, the statement's `accepted_at` is its grid point (the job's
/// visible `created_at`), else the database's time of the entry.
pub fn sign_accepted(
    key: &SigningKey,
    ctx: &JobContext,
    job: &Job,
    exposure: Exposure,
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
        exposure,
        log_index: slot.index,
        service_version: SERVICE_VERSION.into(),
    }
    .into_statement()
    .sign(key)?;
    Ok(envelope.as_bytes().to_vec())
}

/// Signs the result of `ended` (the job as the store is about to write it), which ends as
/// `end` and takes `slot`; `registered` is its pre-registration, which the result pairs with
/// and restates. Its times are the job's [`VisibleTimes`] (on a grid, the end its worker
/// padded it to).
pub fn sign_result(
    key: &SigningKey,
    registered: &PreRegistration,
    ended: &Job,
    end: &JobEnd,
    slot: LogSlot,
) -> Result<Vec<u8>, SignError> {
    let ctx = &registered.ctx;
    let times = VisibleTimes::of(ended, ctx.grid);
    let record = JobRecord {
        job_id: ended.id.to_string(),
        vendor: ctx.vendor.clone(),
        started_at: times.started_at.map(Timestamp::to_rfc3339),
        finished_at: times.finished_at.unwrap_or(slot.at).to_rfc3339(),
        exposure: registered.exposure,
        accepted_log_index: registered.index,
        log_index: slot.index,
        service_version: SERVICE_VERSION.into(),
    };
    let reason = end.reason_text().map(String::from);
    let result = match end.report() {
        Some(report) => {
            let mut result = EvalResult::succeeded(record, report.clone());
            result.status = end.status();
            result.reason = reason;
            result
        }
        None => EvalResult {
            job_id: record.job_id,
            status: end.status(),
            reason,
            eval: ctx.eval.clone(),
            dataset: ctx.dataset.clone(),
            model: ctx.model.clone(),
            policy: ctx.policy.clone(),
            samples: SampleCounts::default(),
            usage: end.usage(),
            metrics: Default::default(),
            release: None,
            leakage: ctx.leakage.clone(),
            exposure: registered.exposure,
            // Its checks, if any ran, are in its vendor's identity history.
            model_identity: ModelIdentity::not_checked(),
            started_at: record.started_at,
            finished_at: record.finished_at,
            accepted_log_index: registered.index,
            log_index: slot.index,
            service_version: record.service_version,
        },
    };
    Ok(result.into_statement().sign(key)?.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use proctor_attest::Statement;
    use proctor_attest::earlier::JobAcceptedV2;
    use proctor_core::Sha256Digest;
    use proctor_core::metric::MetricSpec;
    use proctor_core::model::ModelDescriptor;
    use proctor_store::{AccountId, JobId, JobStatus, ModelId};

    use super::*;

    fn queued(policy: &Policy, eval: Sha256Digest, dataset: Sha256Digest) -> Job {
        Job {
            id: JobId::new(),
            evaluator: AccountId::new(),
            eval,
            dataset,
            model: ModelId::new(),
            policy_name: policy.name.clone(),
            policy_json: policy.canonical_json(),
            policy_digest: policy.digest(),
            concurrency: 1,
            seed: 7,
            status: JobStatus::Queued,
            reason: None,
            cancel_requested: false,
            done: 0,
            total: 20,
            attempts: 0,
            lease: None,
            report: None,
            created_at: Timestamp(1_700_000_000_000),
            started_at: None,
            finished_at: None,
            clock_created_at: None,
            clock_started_at: None,
            clock_finished_at: None,
        }
    }

    #[test]
    fn an_ending_reads_back_the_facts_its_job_pre_registered() -> anyhow::Result<()> {
        let key = SigningKey::from_seed(&[9; 32]);
        let policy = Policy::named("strict")?;
        let (eval, dataset) = (Sha256Digest::of(b"eval"), Sha256Digest::of(b"dataset"));
        let job = queued(&policy, eval, dataset);
        let metrics = [MetricSpec {
            name: "accuracy".into(),
            description: "share of right answers".into(),
            min: 0.0,
            max: 1.0,
        }];
        let ctx = JobContext {
            evaluator: "lab".into(),
            vendor: "acme".into(),
            eval: EvalRef {
                name: "arith".into(),
                version: "1".into(),
                sha256: eval,
            },
            dataset: DatasetRef {
                sha256: dataset,
                items: job.total,
            },
            model: AttestedModel::new(
                "acme",
                &ModelDescriptor {
                    reference: "builtin:arith".into(),
                    name: "arith".into(),
                    version: "1".into(),
                },
            ),
            policy: PolicyRef {
                name: policy.name.clone(),
                sha256: policy.digest(),
            },
            grid: TimeGrid::of(&policy),
            leakage: proctor_core::leakage::bound(&policy, &metrics, job.total),
        };
        let exposure = Exposure { jobs: 2, items: 40 };
        let slot = LogSlot {
            index: 41,
            at: job.created_at,
        };
        let entry = LogEntry {
            index: slot.index,
            kind: EntryKind::Accepted,
            job: job.id,
            envelope: sign_accepted(&key, &ctx, &job, exposure, slot, job.created_at)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            created_at: slot.at,
        };

        let (read, unread) = PreRegistration::decode(&job, &entry)?;
        let nothing = Unread {
            leakage: false,
            exposure: false,
        };
        assert_eq!(
            unread, nothing,
            "the bound re-serializes to the signed bytes"
        );
        assert_eq!(read.index, 41);
        assert_eq!(read.exposure, exposure);
        assert_eq!(read.ctx.leakage, ctx.leakage);
        assert_eq!(
            (read.ctx.evaluator, read.ctx.vendor),
            ("lab".into(), "acme".into())
        );
        assert_eq!(
            (read.ctx.eval, read.ctx.dataset, read.ctx.model),
            (ctx.eval, ctx.dataset, ctx.model)
        );
        assert_eq!(read.ctx.policy, ctx.policy);
        assert_eq!(read.ctx.grid, ctx.grid);

        // Another job's entry is not this job's pre-registration.
        let other = queued(&policy, eval, dataset);
        assert!(PreRegistration::decode(&other, &entry).is_err());

        // A job accepted before an upgrade: its v2 entry decodes, all but the exposure, which
        // `of` recounts.
        let v3 = Statement::<JobAccepted>::from_payload(
            Envelope::from_bytes(&entry.envelope)?.payload_unverified(),
        )?
        .predicate;
        let v2 = JobAcceptedV2 {
            job_id: v3.job_id,
            evaluator: v3.evaluator,
            eval: v3.eval,
            dataset: v3.dataset,
            model: v3.model,
            policy: v3.policy,
            accepted_at: v3.accepted_at,
            leakage: v3.leakage,
            log_index: v3.log_index,
            service_version: v3.service_version,
        };
        let old = LogEntry {
            envelope: Statement::new(eval, dataset, v2)
                .sign(&key)?
                .as_bytes()
                .to_vec(),
            ..entry
        };
        let (read, unread) = PreRegistration::decode(&job, &old)?;
        assert_eq!(
            unread,
            Unread {
                leakage: false,
                exposure: true
            }
        );
        assert_eq!((read.index, read.ctx.leakage), (41, ctx.leakage));
        Ok(())
    }

    #[test]
    fn the_revoked_reason_is_the_text_the_store_flags_a_running_job_with() {
        assert_eq!(Reason::Revoked.text(), proctor_store::REVOKED_REASON);
    }
}
