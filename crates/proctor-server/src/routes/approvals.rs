//! Manual approval: jobs under a vendor's `manual` grants wait until the vendor has looked at
//! the eval (its metadata, and the component itself if it wants) and approved or rejected it.
//! A rejected job ends `cancelled` with a signed result entry, so the log shows it never ran.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use proctor_api::ErrorBody;
use proctor_api::accounts::Tier as TierView;
use proctor_api::approvals::{PendingDataset, PendingEval, PendingEvaluator, PendingView, Reject};
use proctor_api::bytes::Bytes;
use proctor_api::jobs::{JobView, PolicyRefView};
use proctor_core::{JobEnd, MetricSpec, text};
use proctor_store::{Approval, Job, JobId, JobStatus, Tier};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ending::{Closer, end_job};
use crate::error::{ApiError, ApiResult};
use crate::extract::{PathParam, RawBody, VendorCaller, parse_id};
use crate::routes::jobs::job_view;
use crate::state::{App, AppState};

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(component))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

/// The content type of a waiting job's component, as downloaded.
const COMPONENT_CONTENT_TYPE: &str = "application/octet-stream";

/// The API's tier of a stored one.
fn tier_view(tier: Tier) -> TierView {
    match tier {
        Tier::Academic => TierView::Academic,
        Tier::Auditor => TierView::Auditor,
        Tier::Regulator => TierView::Regulator,
        Tier::Commercial => TierView::Commercial,
    }
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
    let metrics: Vec<MetricSpec> = serde_json::from_str(&eval.metrics)
        .map_err(|e| ApiError::internal("stored metric declarations", &e))?;
    Ok(PendingView {
        job: job.id.to_string(),
        grant: under.grant.to_string(),
        evaluator: PendingEvaluator {
            id: evaluator.id.to_string(),
            name: evaluator.name,
            tier: evaluator.tier.map(tier_view),
        },
        eval: PendingEval {
            sha256: eval.digest.to_hex(),
            name: eval.name,
            version: eval.version,
            size: eval.size,
            metrics,
        },
        dataset: PendingDataset {
            sha256: dataset.digest.to_hex(),
            items: dataset.items,
        },
        policy: PolicyRefView {
            name: job.policy_name,
            sha256: job.policy_digest.to_hex(),
        },
        created_at: job.created_at.to_rfc3339(),
    })
}

/// Jobs on the caller's models waiting for its approval, oldest first, with what they run.
#[utoipa::path(
    get, path = "/approvals", tag = "approvals", operation_id = "list_approvals",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the waiting jobs", body = Vec<PendingView>),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
    ),
)]
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

/// A waiting job's eval component, byte for byte as uploaded, to inspect before deciding.
#[utoipa::path(
    get, path = "/approvals/{id}/component", tag = "approvals",
    operation_id = "get_approval_component",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "the component (a WebAssembly component)", body = inline(Bytes), content_type = "application/octet-stream"),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
        (status = 404, description = "no such job on the caller's models", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the job is not waiting for approval", body = ErrorBody),
    ),
)]
pub async fn component(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    PathParam(id): PathParam,
) -> ApiResult<impl IntoResponse> {
    let job = waiting_job(&state, caller.id(), &id).await?;
    let bytes = state.store.eval_bytes(&job.eval).await?;
    Ok(([(header::CONTENT_TYPE, COMPONENT_CONTENT_TYPE)], bytes))
}

/// Approve a waiting job: workers may now run it.
#[utoipa::path(
    post, path = "/approvals/{id}/approve", tag = "approvals", operation_id = "approve_job",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "approved: the job, queued", body = JobView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
        (status = 404, description = "no such job on the caller's models", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the job is not waiting for approval (decided or ended); `grant_inactive`: its grant expired (or was revoked) while it waited, so it can only be rejected", body = ErrorBody),
    ),
)]
pub async fn approve(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    PathParam(id): PathParam,
) -> ApiResult<Json<JobView>> {
    let id: JobId = parse_id(&id, "job")?;
    let job = state.store.approve_job(caller.id(), id).await?;
    state.queue_changed.notify_waiters();
    Ok(Json(job_view(&state, job).await?))
}

const MAX_REASON: usize = 500;

/// Reject a waiting job: it ends `cancelled` with the reason, and its signed result entry in
/// the log shows it never ran. The body is optional (empty or `null`: no reason given); it is
/// read whatever its content type.
#[utoipa::path(
    post, path = "/approvals/{id}/reject", tag = "approvals", operation_id = "reject_job",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    request_body = Option<Reject>,
    responses(
        (status = 200, description = "rejected: the job, cancelled", body = JobView),
        (status = 400, description = "`malformed_json`: a body that is not JSON or does not fit", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
        (status = 404, description = "no such job on the caller's models", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the job is not waiting for approval (decided or ended)", body = ErrorBody),
        (status = 413, description = "a body over the JSON limit", body = ErrorBody),
        (status = 422, description = "`invalid`: a reason over 500 characters, not on one line, or holding an invisible format character", body = ErrorBody),
    ),
)]
pub async fn reject(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    PathParam(id): PathParam,
    RawBody(body): RawBody,
) -> ApiResult<Json<JobView>> {
    // The body is optional: an empty one (or `null`) rejects without a reason.
    let body: Reject = if body.is_empty() {
        Reject::default()
    } else {
        serde_json::from_slice::<Option<Reject>>(&body)
            .map_err(|e| ApiError::bad_request("malformed_json", format!("invalid body: {e}")))?
            .unwrap_or_default()
    };
    let reason = body.reason.unwrap_or_else(|| "no reason given".to_owned());
    if reason.chars().count() > MAX_REASON {
        return Err(ApiError::unprocessable(
            "invalid",
            format!("reason must be at most {MAX_REASON} characters, on one line"),
        ));
    }
    // The reason is signed into the public log: what a reader sees must be what was signed.
    text::displayable(&reason)
        .map_err(|e| ApiError::unprocessable("invalid", format!("`reason` {e}")))?;
    let job = waiting_job(&state, caller.id(), &id).await?;
    let end = JobEnd::rejected(reason);
    let ended = end_job(&state, &job, end, Closer::Vendor(caller.id()))
        .await?
        .into_job();
    Ok(Json(job_view(&state, ended).await?))
}
