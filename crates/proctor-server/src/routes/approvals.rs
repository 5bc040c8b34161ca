//! Manual approval: jobs under a vendor's `manual` grants wait until the vendor has looked at
//! the eval (its metadata, and the component itself if it wants) and approved or rejected it.
//! A rejected job ends `cancelled` with a signed result entry, so the log shows it never ran.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use proctor_core::JobEnd;
use proctor_store::{Approval, Job, JobId, JobStatus, Tier};
use serde::{Deserialize, Serialize};

use crate::ending::{Closer, end_job};
use crate::error::{ApiError, ApiResult};
use crate::extract::{PathParam, RawBody, VendorCaller, parse_id};
use crate::routes::jobs::{JobView, job_view};
use crate::state::{App, AppState};

#[derive(Debug, Serialize)]
struct EvaluatorView {
    id: String,
    name: String,
    tier: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct EvalView {
    sha256: String,
    name: String,
    version: String,
    size: u64,
    metrics: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct DatasetView {
    sha256: String,
    items: u64,
}

#[derive(Debug, Serialize)]
struct PolicyView {
    name: String,
    sha256: String,
}

/// A job waiting for the vendor, with what it needs to decide.
#[derive(Debug, Serialize)]
pub struct PendingView {
    job: String,
    grant: String,
    evaluator: EvaluatorView,
    eval: EvalView,
    dataset: DatasetView,
    policy: PolicyView,
    created_at: String,
}

async fn pending_view(app: &App, job: Job) -> ApiResult<PendingView> {
    let under = app
        .store
        .job_grant(job.id)
        .await?
        .ok_or_else(|| ApiError::internal("a pending job without a grant", &job.id))?;
    let evaluator = app.store.account(job.evaluator).await?;
    let eval = app.store.eval(&job.eval).await?;
    let dataset = app.store.dataset(&job.dataset).await?;
    Ok(PendingView {
        job: job.id.to_string(),
        grant: under.grant.to_string(),
        evaluator: EvaluatorView {
            id: evaluator.id.to_string(),
            name: evaluator.name,
            tier: evaluator.tier.map(Tier::as_str),
        },
        eval: EvalView {
            sha256: eval.digest.to_hex(),
            name: eval.name,
            version: eval.version,
            size: eval.size,
            metrics: serde_json::from_str(&eval.metrics)
                .map_err(|e| ApiError::internal("stored metric declarations", &e))?,
        },
        dataset: DatasetView {
            sha256: dataset.digest.to_hex(),
            items: dataset.items,
        },
        policy: PolicyView {
            name: job.policy_name,
            sha256: job.policy_digest.to_hex(),
        },
        created_at: job.created_at.to_rfc3339(),
    })
}

pub async fn list(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
) -> ApiResult<Json<Vec<PendingView>>> {
    let jobs = state.store.awaiting_approval(caller.id()).await?;
    let mut views = Vec::with_capacity(jobs.len());
    for job in jobs {
        views.push(pending_view(&state, job).await?);
    }
    Ok(Json(views))
}

/// A job waiting for this vendor's approval, or 404 (other vendors' jobs look absent) or 409
/// (decided or ended).
async fn waiting_job(app: &App, vendor: proctor_store::AccountId, id: &str) -> ApiResult<Job> {
    let id: JobId = parse_id(id, "job")?;
    let job = app.store.job(id).await?;
    let under = match app.store.job_grant(id).await? {
        Some(under) if app.store.grant(under.grant).await?.vendor == vendor => under,
        // Absent, or another vendor's: not found either way.
        _ => return Err(ApiError::not_found("job")),
    };
    if job.status != JobStatus::Queued || under.approval != Approval::Pending {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
            format!(
                "job {} is not waiting for approval ({})",
                job.id, job.status
            ),
        ));
    }
    Ok(job)
}

pub async fn component(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    PathParam(id): PathParam,
) -> ApiResult<impl IntoResponse> {
    let job = waiting_job(&state, caller.id(), &id).await?;
    let bytes = state.store.eval_bytes(&job.eval).await?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes))
}

pub async fn approve(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    PathParam(id): PathParam,
) -> ApiResult<Json<JobView>> {
    let id: JobId = parse_id(&id, "job")?;
    let job = state.store.approve_job(caller.id(), id).await?;
    Ok(Json(job_view(&state, job).await?))
}

/// `POST /v1/approvals/{job}/reject`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    #[serde(default)]
    reason: Option<String>,
}

const MAX_REASON: usize = 500;

pub async fn reject(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    PathParam(id): PathParam,
    RawBody(body): RawBody,
) -> ApiResult<Json<JobView>> {
    // The body is optional: an empty one rejects without a reason.
    let body: Reject = if body.is_empty() {
        Reject::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("malformed_json", format!("invalid body: {e}")))?
    };
    let reason = body.reason.unwrap_or_else(|| "no reason given".to_owned());
    if reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid",
            format!("reason must be at most {MAX_REASON} characters, on one line"),
        ));
    }
    let job = waiting_job(&state, caller.id(), &id).await?;
    let end = JobEnd::rejected(reason);
    let ended = end_job(&state, &job, end, Closer::Vendor(caller.id()))
        .await?
        .into_job();
    Ok(Json(job_view(&state, ended).await?))
}
