//! `GET /v1/identity-alerts` and `POST /v1/identity-alerts/{id}/ack`: a model answered unlike
//! its fingerprint. A vendor reads every alert on its models (a changed check, before or after
//! a job or scheduled, and a job whose result attests changed); an evaluator reads the alerts
//! on its own jobs' results, which it can read exactly when it can read the job's end, at the
//! job's visible end (the time its view and attestation show, on the policy's grid), so the
//! alert tells it nothing the job's attestation does not; an admin reads every alert. Each of
//! vendor and evaluator acknowledges its own.

use axum::Json;
use axum::extract::State;
use proctor_api::ErrorBody;
use proctor_api::alerts::ListAlerts;
use proctor_api::identity::{CheckKindView, IdentityAlertSubjectView, IdentityAlertView};
use proctor_store::{
    CheckKind, IdentityAlert, IdentityAlertId, IdentityAlertReader, IdentityAlertSubject, Role,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::attest::stored_policy;
use crate::clock::{TimeGrid, VisibleTimes};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, PathParam, QueryParams, list_limit, parse_id};
use crate::state::{App, AppState};

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(acknowledge))
}

/// Who the caller reads as, when it may read identity alerts at all (`roles`).
fn reader(caller: &Caller, roles: &[Role]) -> ApiResult<IdentityAlertReader> {
    caller.require(roles)?;
    match caller.0.role {
        Role::Admin => Ok(IdentityAlertReader::Admin),
        Role::Evaluator => Ok(IdentityAlertReader::Evaluator(caller.id())),
        Role::Vendor => Ok(IdentityAlertReader::Vendor(caller.id())),
        // It reads the attestations, which state the same.
        Role::Regulator => Err(ApiError::forbidden("a regulator account may not do this")),
    }
}

fn check_kind(kind: CheckKind) -> CheckKindView {
    match kind {
        CheckKind::BeforeJob => CheckKindView::BeforeJob,
        CheckKind::AfterJob => CheckKindView::AfterJob,
        CheckKind::Scheduled => CheckKindView::Scheduled,
    }
}

/// `alert` as `reader` sees it.
async fn view(
    app: &App,
    reader: IdentityAlertReader,
    alert: IdentityAlert,
) -> ApiResult<IdentityAlertView> {
    let (subject, check, job) = match alert.subject {
        IdentityAlertSubject::Check { kind, job, .. } => {
            (IdentityAlertSubjectView::Check, Some(check_kind(kind)), job)
        }
        IdentityAlertSubject::Job { job, .. } => (IdentityAlertSubjectView::Job, None, Some(job)),
    };
    let (at, acknowledged_at) = match reader {
        IdentityAlertReader::Evaluator(_) => {
            // The job ended in the transaction that raised the alert; what the evaluator may
            // see of when is the job's visible end, never the row's exact time.
            let Some(job) = job else {
                return Err(ApiError::internal(
                    "an evaluator's identity alert",
                    &"it has no job",
                ));
            };
            let job = app.store.job(job).await?;
            let grid = TimeGrid::of(&stored_policy(&job.policy_json)?);
            let ended = VisibleTimes::of(&job, grid)
                .finished_at
                .ok_or_else(|| ApiError::internal("an identity alert's job", &"not ended"))?;
            (ended, alert.evaluator_acknowledged_at)
        }
        IdentityAlertReader::Vendor(_) | IdentityAlertReader::Admin => {
            (alert.created_at, alert.vendor_acknowledged_at)
        }
    };
    Ok(IdentityAlertView {
        id: alert.id.to_string(),
        model: alert.model.to_string(),
        subject,
        check,
        job: job.map(|j| j.to_string()),
        identity: alert.identity,
        at: at.to_rfc3339(),
        acknowledged_at: acknowledged_at.map(|t| t.to_rfc3339()),
    })
}

/// The identity alerts the caller may read, newest first: a vendor's models', an evaluator's
/// jobs', or (an admin) every one.
#[utoipa::path(
    get, path = "/identity-alerts", tag = "alerts", operation_id = "list_identity_alerts",
    security(("bearer" = [])),
    params(ListAlerts),
    responses(
        (status = 200, description = "the alerts", body = Vec<IdentityAlertView>),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "a regulator: it reads the attestations, which state the same", body = ErrorBody),
        (status = 400, description = "`malformed_query`: a `limit` outside 1 to 1000", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListAlerts>,
) -> ApiResult<Json<Vec<IdentityAlertView>>> {
    let reader = reader(&caller, &[Role::Vendor, Role::Evaluator, Role::Admin])?;
    let limit = list_limit(query.limit)?;
    let mut views = Vec::new();
    for alert in state.store.identity_alerts(reader, limit).await? {
        views.push(view(&state, reader, alert).await?);
    }
    Ok(Json(views))
}

/// Acknowledge an identity alert the caller may read (a vendor or an evaluator; each its
/// own). Again keeps the first time.
#[utoipa::path(
    post, path = "/identity-alerts/{id}/ack", tag = "alerts",
    operation_id = "acknowledge_identity_alert",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the alert's id")),
    responses(
        (status = 200, description = "the alert, acknowledged", body = IdentityAlertView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "neither a vendor nor an evaluator (an admin reads alerts and acknowledges none)", body = ErrorBody),
        (status = 404, description = "no such alert the caller may read", body = ErrorBody),
    ),
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<IdentityAlertView>> {
    let reader = reader(&caller, &[Role::Vendor, Role::Evaluator])?;
    let id: IdentityAlertId = parse_id(&id, "identity alert")?;
    let alert = state.store.acknowledge_identity_alert(reader, id).await?;
    Ok(Json(view(&state, reader, alert).await?))
}
