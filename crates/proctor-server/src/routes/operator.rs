//! What the service's operator (an admin) may do and see: cancel any job, as its evaluator
//! could (it ends `cancelled` with the fixed reason "cancelled by the service's operator", and
//! its result entry in the public log says so, so an operator's intervention is as visible as
//! any other ending); read the operator's metrics, which move with what models answered and so
//! are not public ([`crate::metrics`]).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proctor_api::ErrorBody;
use proctor_api::jobs::JobView;
use proctor_core::JobEnd;
use proctor_store::JobId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ending::{Closer, Ended, end_job};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AdminCaller, PathParam, parse_id};
use crate::routes::jobs::job_view;
use crate::state::AppState;

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cancel_any))
        .routes(routes!(operator_metrics))
}

/// Cancel any job as the operator: at once when it is queued (or waiting for approval), at
/// its next sample when it runs. Its result is attested as cancelled by the operator.
#[utoipa::path(
    post, path = "/admin/jobs/{id}/cancel", tag = "jobs", operation_id = "operator_cancel_job",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "cancelled, with its result entry logged", body = JobView),
        (status = 202, description = "asked to stop: its worker ends it", body = JobView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such job", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the job has ended", body = ErrorBody),
    ),
)]
pub async fn cancel_any(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    PathParam(id): PathParam,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let id: JobId = parse_id(&id, "job")?;
    let job = state.store.job(id).await?;
    if job.status.is_terminal() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
            format!("job {} is {}; it cannot be cancelled", job.id, job.status),
        ));
    }
    tracing::info!(job = %job.id, admin = %caller.id(), "the operator cancels a job");
    let end = JobEnd::operator_cancelled(Default::default());
    Ok(match end_job(&state, &job, end, Closer::Operator).await? {
        Ended::Now(job) => (StatusCode::OK, Json(job_view(&state, job).await?)),
        Ended::Requested(job) => (StatusCode::ACCEPTED, Json(job_view(&state, job).await?)),
    })
}

/// The operator's Prometheus metrics (text exposition format 0.0.4): the public ones and those
/// that move with the models' outputs or timing (model latency and errors, reservation blocks,
/// budget refusals, the queue). Prometheus reads it with an admin's token as a bearer.
#[utoipa::path(
    get, path = "/admin/metrics", tag = "service", operation_id = "get_operator_metrics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the metrics", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
    ),
)]
pub async fn operator_metrics(
    State(state): State<AppState>,
    AdminCaller(_): AdminCaller,
) -> ApiResult<Response> {
    let queued = state.store.queued_jobs_count().await?;
    state
        .metrics
        .queue_depth
        .set(i64::try_from(queued).unwrap_or(i64::MAX));
    let mut response = state.metrics.render_operator().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
