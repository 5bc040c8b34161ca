//! `GET /v1/models/{id}/identity`: the model's owner reads its identity canaries: where the
//! fingerprint stands, what registration measured, the test, and the latest checks with their
//! figures. Never a probe's text or an answer (the service has neither). Another vendor's
//! model is not found; other roles are forbidden.

use axum::Json;
use axum::extract::State;
use proctor_api::ErrorBody;
use proctor_api::identity::{
    CheckKindView, FingerprintStateView, FingerprintView, IdentityCheckView, IdentityTestView,
    ModelIdentityView,
};
use proctor_core::IdentityVerdict;
use proctor_core::identity::{ALPHA, CHECK_QUERIES, JOB_QUERIES, NULL_RATE};
use proctor_store::{CheckKind, FingerprintState, ModelId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{PathParam, VendorCaller, parse_id};
use crate::state::AppState;

/// Checks a view lists.
const LISTED: u32 = 100;

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get))
}

/// A vendor reads its model's identity canaries.
#[utoipa::path(
    get, path = "/models/{id}/identity", tag = "models", operation_id = "get_model_identity",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the model's id")),
    responses(
        (status = 200, description = "the fingerprint's state and figures, the test, the latest checks", body = ModelIdentityView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
        (status = 404, description = "no such model of the vendor's", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    PathParam(id): PathParam,
) -> ApiResult<Json<ModelIdentityView>> {
    let id: ModelId = parse_id(&id, "model")?;
    let model = state.store.model(id).await?;
    if model.owner != caller.id() {
        return Err(ApiError::not_found("model"));
    }
    let stored = state.store.fingerprint(id).await?;
    let checks = state.store.identity_checks(id, LISTED).await?;
    let (state_view, fingerprint, registration_queries) = match stored {
        None => (FingerprintStateView::NotEnrolled, None, 0),
        Some(stored) => (
            match stored.state {
                FingerprintState::Fingerprinting => FingerprintStateView::Fingerprinting,
                FingerprintState::Ready => FingerprintStateView::Ready,
                FingerprintState::Unstable => FingerprintStateView::Unstable,
                FingerprintState::Failed => FingerprintStateView::Failed,
            },
            stored.fingerprint.map(|f| FingerprintView {
                probes: f.probes.len() as u64,
                border_probes: f.probes.iter().filter(|p| p.border).count() as u64,
                null_queries: f.null_queries,
                null_mismatches: f.null_mismatches,
            }),
            stored.queries,
        ),
    };
    Ok(Json(ModelIdentityView {
        model: id.to_string(),
        state: state_view,
        fingerprint,
        registration_queries,
        test: IdentityTestView {
            name: "border-binomial/v1".into(),
            null_rate: NULL_RATE,
            alpha: ALPHA,
            queries_per_check: CHECK_QUERIES,
            queries_per_job: JOB_QUERIES,
        },
        latest: checks
            .first()
            .map_or(IdentityVerdict::NotChecked, |c| c.identity.verdict),
        checks: checks
            .into_iter()
            .map(|c| IdentityCheckView {
                kind: match c.kind {
                    CheckKind::BeforeJob => CheckKindView::BeforeJob,
                    CheckKind::AfterJob => CheckKindView::AfterJob,
                    CheckKind::Scheduled => CheckKindView::Scheduled,
                },
                job: c.job.map(|j| j.to_string()),
                identity: c.identity,
                at: c.created_at.to_rfc3339(),
            })
            .collect(),
    }))
}
