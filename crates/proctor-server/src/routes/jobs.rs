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
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use proctor_api::ErrorBody;
use proctor_api::jobs::{
    ApprovalState, JobStatus, JobView, ListJobs, PolicyRefView, Progress, ResultView, SubmitJob,
};
use proctor_core::{JobEnd, Policy, Sha256Digest};
use proctor_store::{Hold, Job, JobDemand, JobGrant, JobId, ModelId, NewJob, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::attest::{JobContext, sign_accepted, stored_policy};
use crate::clock::{TimeGrid, VisibleTimes};
use crate::ending::{Closer, Ended, end_job};
use crate::error::{ApiError, ApiResult};
use crate::extract::{
    Caller, EvaluatorCaller, JsonBody, PathParam, QueryParams, list_limit, parse_id,
};
use crate::quotas;
use crate::routes::grants::grant_policy;
use crate::state::{App, AppState};

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit, list))
        .routes(routes!(get))
        .routes(routes!(cancel))
        .routes(routes!(result))
}

/// The view of `job` with its grant and approval state.
///
/// # Errors
///
/// A store error; a 500 when the job's stored policy no longer parses.
pub async fn job_view(app: &App, job: Job) -> ApiResult<JobView> {
    let under = app.store.job_grant(job.id).await?;
    view(job, under)
}

/// The API's status of a stored one.
pub fn status_view(status: proctor_store::JobStatus) -> JobStatus {
    use proctor_store::JobStatus as Stored;
    match status {
        Stored::Queued => JobStatus::Queued,
        Stored::Running => JobStatus::Running,
        Stored::Succeeded => JobStatus::Succeeded,
        Stored::Failed => JobStatus::Failed,
        Stored::Cancelled => JobStatus::Cancelled,
        Stored::Revoked => JobStatus::Revoked,
    }
}

/// The API's state of a stored approval.
pub fn approval_view(approval: proctor_store::Approval) -> ApprovalState {
    use proctor_store::Approval as Stored;
    match approval {
        Stored::Auto => ApprovalState::Auto,
        Stored::Pending => ApprovalState::Pending,
        Stored::Approved => ApprovalState::Approved,
        Stored::Rejected => ApprovalState::Rejected,
    }
}

/// The view of `j` under its grant.
fn view(j: Job, under: Option<JobGrant>) -> ApiResult<JobView> {
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
        status: status_view(j.status),
        reason: j.reason,
        eval: j.eval.to_hex(),
        dataset: j.dataset.to_hex(),
        model: j.model.to_string(),
        policy: PolicyRefView {
            name: j.policy_name,
            sha256: j.policy_digest.to_hex(),
        },
        progress: Progress {
            done,
            total: j.total,
        },
        cancel_requested: j.cancel_requested,
        attempts: (!private).then_some(j.attempts),
        grant: under.map(|u| u.grant.to_string()),
        approval: under.map(|u| approval_view(u.approval)),
        created_at: times.created_at.to_rfc3339(),
        started_at: times.started_at.map(|t| t.to_rfc3339()),
        finished_at: times.finished_at.map(|t| t.to_rfc3339()),
    })
}

/// Submit a job: its pre-registration is in the public log when this answers, in the same
/// transaction as the job. Only under an active grant that covers the evaluator on the model.
#[utoipa::path(
    post, path = "/jobs", tag = "jobs", operation_id = "submit_job",
    security(("bearer" = [])),
    request_body = SubmitJob,
    responses(
        (status = 201, description = "accepted and logged; queued (or waiting for approval)", body = JobView),
        (status = 400, description = "a malformed body", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator, or `no_grant`: no active grant covers the evaluator on the model", body = ErrorBody),
        (status = 404, description = "no such eval, dataset or model of the caller's", body = ErrorBody),
        (status = 413, description = "a body over the JSON limit", body = ErrorBody),
        (status = 415, description = "not `application/json`", body = ErrorBody),
        (status = 422, description = "`policy_mismatch`, or the eval does not fit the grant's policy (e.g. `noise_scale_too_large`)", body = ErrorBody),
        (status = 429, description = "`budget_exhausted` before anything is logged: jobs per day, a private job's worst case, the leakage bound over `bits_per_job`, the evaluator's ledger on the model or the vendor's model-wide caps; `quota_exceeded`: the evaluator has its quota of jobs queued or running", body = ErrorBody),
        (status = 503, description = "`log_fork`: the database's log does not extend the last checkpoint this service signed; nothing was logged", body = ErrorBody),
    ),
)]
pub async fn submit(
    State(state): State<AppState>,
    EvaluatorCaller(caller): EvaluatorCaller,
    JsonBody(body): JsonBody<SubmitJob>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let eval: Sha256Digest = parse_id(&body.eval, "eval")?;
    let dataset: Sha256Digest = parse_id(&body.dataset, "dataset")?;
    let model: ModelId = parse_id(&body.model, "model")?;
    quotas::check_jobs(
        state.store.unfinished_jobs_count(caller.id()).await?,
        state.config.quotas.unfinished_jobs,
    )?;
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
    // Nothing is signed into a log that does not extend the head this service vouched for.
    state.log_guard.vouch(&state.store, &state.key).await?;
    let (mut job, under, _entry) = state
        .store
        .submit_job_under(grant.id, &demand, &new_job, |job, exposure, slot| {
            state.log_guard.admits(slot.index)?;
            sign_accepted(&state.key, &ctx, job, exposure, slot, clock)
        })
        .await?;
    state.log_guard.advance(&state.store, &state.key).await;
    // The reading the pre-registration was signed with, so the job's visible `created_at` is
    // its `accepted_at`. The job is accepted and logged already: should the note fail, its
    // views stand in the database's time of submission on the grid.
    if let Err(err) = state.store.note_clock_created(job.id, clock).await {
        tracing::warn!(%err, job = %job.id, "noting the job's submission time failed");
    }
    job.clock_created_at = Some(clock);
    state.metrics.jobs.with_label_values(&["queued"]).inc();
    state.queue_changed.notify_waiters();
    Ok((StatusCode::CREATED, Json(view(job, Some(under))?)))
}

/// What a job takes from its grant when accepted: a DP job spends its epsilon from the
/// grant's ledger and holds its worst case (every sample making `max_per_sample` queries of
/// the largest size), so no sample's budget depends on what other samples' outputs made them
/// do. Other jobs lease blocks from the grant as they go ([`crate::meter`]). Every job spends
/// its leakage bound
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

/// One of the caller's jobs.
#[utoipa::path(
    get, path = "/jobs/{id}", tag = "jobs", operation_id = "get_job",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "the job; it changes while the job runs and is the caller's alone, so no cache keeps it for others or without asking again", body = JobView,
            headers(("cache-control" = String, description = "`private, no-cache`"))),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator", body = ErrorBody),
        (status = 404, description = "no such job of the caller's", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<([(HeaderName, HeaderValue); 1], Json<JobView>)> {
    let job = own_job(&state, &caller, &id).await?;
    let view = job_view(&state, job).await?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static(PRIVATE))],
        Json(view),
    ))
}

/// `Cache-Control` of a job's view: the caller's own, and it changes while the job runs.
const PRIVATE: &str = "private, no-cache";

/// The caller's jobs, newest first.
#[utoipa::path(
    get, path = "/jobs", tag = "jobs", operation_id = "list_jobs",
    security(("bearer" = [])),
    params(ListJobs),
    responses(
        (status = 200, description = "the jobs", body = Vec<JobView>),
        (status = 400, description = "`malformed_query`: a `limit` outside 1 to 1000", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListJobs>,
) -> ApiResult<Json<Vec<JobView>>> {
    caller.require(&[Role::Evaluator])?;
    let limit = list_limit(q.limit)?;
    let jobs = state.store.jobs_of(caller.id(), limit).await?;
    let mut under = state.store.job_grants_of(caller.id()).await?;
    let views = jobs
        .into_iter()
        .map(|job| {
            let grant = under.remove(&job.id);
            view(job, grant)
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(views))
}

/// Cancel a job: at once when it is queued, at its next sample when it runs.
#[utoipa::path(
    post, path = "/jobs/{id}/cancel", tag = "jobs", operation_id = "cancel_job",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "cancelled, with its result entry logged", body = JobView),
        (status = 202, description = "asked to stop: its worker ends it", body = JobView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator", body = ErrorBody),
        (status = 404, description = "no such job of the caller's", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the job has ended", body = ErrorBody),
        (status = 503, description = "`log_fork`: the database's log does not extend the last checkpoint this service signed; nothing was logged", body = ErrorBody),
    ),
)]
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

/// An ended job's released result: aggregates only, as released under its policy.
#[utoipa::path(
    get, path = "/jobs/{id}/result", tag = "jobs", operation_id = "get_job_result",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "the result", body = ResultView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator", body = ErrorBody),
        (status = 404, description = "no such job of the caller's", body = ErrorBody),
        (status = 409, description = "`not_finished`: the job has not ended", body = ErrorBody),
    ),
)]
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
        status: status_view(job.status),
        reason: job.reason,
        report,
    }))
}
