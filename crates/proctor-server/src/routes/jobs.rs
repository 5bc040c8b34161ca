//! Jobs: an evaluator submits (eval + dataset + model + policy), reads, lists and cancels its
//! own jobs and reads their released results. Submission writes the job and its signed
//! pre-registration entry, with the job's leakage bound, in one transaction.
//!
//! What a view shows depends on the job's policy, never on what its samples did. Under a
//! private policy (`dp_epsilon`) `progress.done` is `null` until the job has ended (then the
//! total, if it ran all its samples) and `attempts` is `null`; under a policy with a time
//! grid every time is a grid point of the server's clock, the end the padded one
//! ([`crate::clock`]). Other jobs show live progress, attempts and the database's exact
//! times, which their leakage bound lists as excluded channels.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use proctor_core::{JobEnd, Policy, Sha256Digest};
use proctor_store::{Hold, Job, JobDemand, JobGrant, JobId, ModelId, NewJob, Role};
use serde::{Deserialize, Serialize};

use crate::attest::{JobContext, sign_accepted, stored_policy};
use crate::clock::{TimeGrid, VisibleTimes};
use crate::ending::{Closer, Ended, end_job};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, EvaluatorCaller, JsonBody, PathParam, QueryParams, parse_id};
use crate::routes::grants::grant_policy;
use crate::state::{App, AppState};

/// `POST /v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    eval: String,
    dataset: String,
    model: String,
    #[serde(default)]
    policy: Option<String>,
}

/// A job as its evaluator sees it: status and progress, never per-sample data.
#[derive(Debug, Serialize)]
pub struct JobView {
    id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    eval: String,
    dataset: String,
    model: String,
    policy: PolicyView,
    progress: ProgressView,
    cancel_requested: bool,
    /// Claims so far; `null` under a private policy (a crash a guest caused would show).
    attempts: Option<u32>,
    /// The grant it was accepted under.
    #[serde(skip_serializing_if = "Option::is_none")]
    grant: Option<String>,
    /// `auto`, or where a manual grant's job stands: `pending`, `approved`, `rejected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    approval: Option<&'static str>,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct PolicyView {
    name: String,
    sha256: String,
}

#[derive(Debug, Serialize)]
struct ProgressView {
    /// Samples processed; `null` under a private policy until the job has ended, since how
    /// fast samples finish depends on what the model said.
    done: Option<u64>,
    total: u64,
}

/// The view of `job` with its grant and approval state.
///
/// # Errors
///
/// A store error; a 500 when the job's stored policy no longer parses.
pub async fn job_view(app: &App, job: Job) -> ApiResult<JobView> {
    let under = app.store.job_grant(job.id).await?;
    JobView::new(job, under)
}

impl JobView {
    fn new(j: Job, under: Option<JobGrant>) -> ApiResult<JobView> {
        let policy = stored_policy(&j.policy_json)?;
        let private = policy.release.is_private();
        let times = VisibleTimes::of(&j, TimeGrid::of(&policy));
        // A private job that ran to its end has a report and ran every sample; one stopped
        // early shows no count, since how far it got depends on its samples' timing.
        let done = match (private, j.report.is_some()) {
            (false, _) => Some(j.done),
            (true, true) => Some(j.total),
            (true, false) => None,
        };
        Ok(JobView {
            id: j.id.to_string(),
            status: j.status.as_str(),
            reason: j.reason,
            eval: j.eval.to_hex(),
            dataset: j.dataset.to_hex(),
            model: j.model.to_string(),
            policy: PolicyView {
                name: j.policy_name,
                sha256: j.policy_digest.to_hex(),
            },
            progress: ProgressView {
                done,
                total: j.total,
            },
            cancel_requested: j.cancel_requested,
            attempts: (!private).then_some(j.attempts),
            grant: under.map(|u| u.grant.to_string()),
            approval: under.map(|u| u.approval.as_str()),
            created_at: times.created_at.to_rfc3339(),
            started_at: times.started_at.map(|t| t.to_rfc3339()),
            finished_at: times.finished_at.map(|t| t.to_rfc3339()),
        })
    }
}

pub async fn submit(
    State(state): State<AppState>,
    EvaluatorCaller(caller): EvaluatorCaller,
    JsonBody(body): JsonBody<SubmitJob>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let eval: Sha256Digest = parse_id(&body.eval, "eval")?;
    let dataset: Sha256Digest = parse_id(&body.dataset, "dataset")?;
    let model: ModelId = parse_id(&body.model, "model")?;
    if !state.store.owns_eval(caller.id(), &eval).await? {
        return Err(ApiError::not_found("eval"));
    }
    if !state.store.owns_dataset(caller.id(), &dataset).await? {
        return Err(ApiError::not_found("dataset"));
    }
    let registered = state.store.model(model).await?;
    // The grant decides the policy: the evaluator may name it, not choose another.
    let grant = state.store.grant_for(caller.id(), registered.id).await?;
    if let Some(name) = body.policy.as_deref()
        && name != grant.policy_name
    {
        return Err(ApiError::unprocessable(
            "policy_mismatch",
            format!(
                "the grant for this model runs jobs under `{}`; leave `policy` out or name it",
                grant.policy_name
            ),
        ));
    }
    let policy = grant_policy(&grant.policy_name, &grant.policy_overrides)?;
    // Refused now rather than after it is in the log: a policy the engine cannot run, or an
    // eval the policy does not admit (WASI under `none`, too many metrics, a private release
    // whose noise scale would pass the safe bound: `noise_scale_too_large`, naming the metric).
    state.sandbox.check_policy(&policy)?;
    let bytes = state.store.eval_bytes(&eval).await?;
    state.sandbox.prepare(&bytes).await?.check_policy(&policy)?;
    let dataset = state.store.dataset(&dataset).await?;
    let items = dataset.items;
    let new_job = NewJob {
        evaluator: caller.id(),
        eval,
        dataset: dataset.digest,
        model: registered.id,
        policy_name: policy.name.clone(),
        policy_json: policy.canonical_json(),
        policy_digest: policy.digest(),
        concurrency: u32::try_from(policy.limits.max_concurrency).unwrap_or(u32::MAX),
        seed: uuid::Uuid::new_v4().as_u64_pair().0,
        total: items,
    };
    // The statement's facts, read before the transaction so the head lock is held briefly;
    // among them the leakage bound, from the policy, the declaration `describe` made at upload
    // and the dataset's size, all fixed before any model output exists. Its endings read them
    // back from the signed statement.
    let ctx = JobContext::for_new(&state, &caller.0, &new_job, &registered, &dataset).await?;
    let demand = demand(&policy, items, ctx.leakage.bits_max);
    let clock = state.config.clock.now();
    let (mut job, under, _entry) = state
        .store
        .submit_job_under(grant.id, &demand, &new_job, |job, slot| {
            sign_accepted(&state.key, &ctx, job, slot, clock)
        })
        .await?;
    // The reading the pre-registration was signed with, so the job's visible `created_at` is
    // its `accepted_at`. The job is accepted and logged already: should the note fail, its
    // views stand in the database's time of submission on the grid.
    if let Err(err) = state.store.note_clock_created(job.id, clock).await {
        tracing::warn!(%err, job = %job.id, "noting the job's submission time failed");
    }
    job.clock_created_at = Some(clock);
    state.metrics.jobs.with_label_values(&["queued"]).inc();
    Ok((StatusCode::CREATED, Json(JobView::new(job, Some(under))?)))
}

/// What a job takes from its grant when accepted: a DP job spends its epsilon from the
/// grant's ledger and holds its worst case (every sample making `max_per_sample` queries of
/// the largest size), so no sample's budget depends on what other samples' outputs made them
/// do. Other jobs draw from the grant query by query. Every job spends its leakage bound
/// (bits) from the evaluator's ledger on the model.
fn demand(policy: &Policy, items: u64, bits: f64) -> JobDemand {
    let Some(epsilon) = policy.release.dp_epsilon else {
        return JobDemand {
            bits,
            ..JobDemand::default()
        };
    };
    let queries = items.saturating_mul(policy.queries.max_per_sample);
    JobDemand {
        epsilon: Some(epsilon),
        bits,
        hold: Some(Hold {
            queries,
            tokens: queries.saturating_mul(policy.queries.worst_case_tokens_per_query()),
        }),
    }
}

/// A job of the caller's, or 404 (another evaluator's job looks absent).
async fn own_job(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Job> {
    caller.require(&[Role::Evaluator])?;
    let id: JobId = parse_id(id, "job")?;
    let job = state.store.job(id).await?;
    if job.evaluator != caller.id() {
        return Err(ApiError::not_found("job"));
    }
    Ok(job)
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<JobView>> {
    let job = own_job(&state, &caller, &id).await?;
    Ok(Json(job_view(&state, job).await?))
}

/// `GET /v1/jobs?limit=N`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Vec<JobView>>> {
    caller.require(&[Role::Evaluator])?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let jobs = state.store.jobs_of(caller.id(), limit).await?;
    let mut under = state.store.job_grants_of(caller.id()).await?;
    let views = jobs
        .into_iter()
        .map(|job| {
            let grant = under.remove(&job.id);
            JobView::new(job, grant)
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(views))
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let job = own_job(&state, &caller, &id).await?;
    if job.status.is_terminal() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
            format!("job {} is {}; it cannot be cancelled", job.id, job.status),
        ));
    }
    let end = JobEnd::cancelled(Default::default());
    Ok(match end_job(&state, &job, end, Closer::Evaluator).await? {
        Ended::Now(job) => (StatusCode::OK, Json(job_view(&state, job).await?)),
        Ended::Requested(job) => (StatusCode::ACCEPTED, Json(job_view(&state, job).await?)),
    })
}

/// A job's end as its evaluator sees it: the released report (aggregates only).
#[derive(Debug, Serialize)]
pub struct ResultView {
    job: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    report: Option<serde_json::Value>,
}

pub async fn result(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<ResultView>> {
    let job = own_job(&state, &caller, &id).await?;
    if !job.status.is_terminal() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_finished",
            format!("job {} is {}", job.id, job.status),
        ));
    }
    let report = job
        .report
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| ApiError::internal("stored report", &e))?;
    Ok(Json(ResultView {
        job: job.id.to_string(),
        status: job.status.as_str(),
        reason: job.reason,
        report,
    }))
}
