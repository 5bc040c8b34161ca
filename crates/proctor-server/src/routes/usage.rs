//! The vendor's usage report: exact, metered usage of its models, per job and summed per
//! grant, evaluator and model. Evaluators never see this; their copy of a DP job's usage is
//! noised in its report.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use proctor_api::ErrorBody;
use proctor_api::usage::{
    EvaluatorUsage, GrantUsage, JobUsage, ModelUsage, UsageCounters, UsageReport,
};
use proctor_store::{AccountId, GrantId, ModelId, UsageRow};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::VendorCaller;
use crate::state::AppState;

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report))
}

/// Adds a job's row to `counters`.
fn add(counters: &mut UsageCounters, row: &UsageRow) {
    counters.queries += row.usage.queries;
    counters.input_tokens += row.usage.input_tokens;
    counters.output_tokens += row.usage.output_tokens;
    counters.in_flight += row.in_flight;
}

/// The caller's usage report: exact, metered usage of its models, per job and summed per
/// grant, evaluator and model.
#[utoipa::path(
    get, path = "/usage", tag = "usage", operation_id = "get_usage",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the report", body = UsageReport),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
    ),
)]
pub async fn report(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
) -> ApiResult<Json<UsageReport>> {
    let rows = state.store.usage_report(caller.id()).await?;
    let mut total = UsageCounters::default();
    let mut grants: BTreeMap<GrantId, UsageCounters> = BTreeMap::new();
    let mut evaluators: BTreeMap<AccountId, UsageCounters> = BTreeMap::new();
    let mut models: BTreeMap<ModelId, UsageCounters> = BTreeMap::new();
    let mut by_job = Vec::with_capacity(rows.len());
    for row in &rows {
        add(&mut total, row);
        add(grants.entry(row.grant).or_default(), row);
        add(evaluators.entry(row.evaluator).or_default(), row);
        add(models.entry(row.model).or_default(), row);
        let mut counters = UsageCounters::default();
        add(&mut counters, row);
        by_job.push(JobUsage {
            job: row.job.to_string(),
            grant: row.grant.to_string(),
            model: row.model.to_string(),
            evaluator: row.evaluator.to_string(),
            created_at: row.created_at.to_rfc3339(),
            counters,
        });
    }
    let mut by_evaluator = Vec::with_capacity(evaluators.len());
    for (id, counters) in evaluators {
        by_evaluator.push(EvaluatorUsage {
            evaluator: id.to_string(),
            name: state.store.account(id).await?.name,
            counters,
        });
    }
    let mut by_model = Vec::with_capacity(models.len());
    for (id, counters) in models {
        by_model.push(ModelUsage {
            model: id.to_string(),
            name: state.store.model(id).await?.name,
            counters,
        });
    }
    Ok(Json(UsageReport {
        total,
        by_grant: grants
            .into_iter()
            .map(|(id, counters)| GrantUsage {
                grant: id.to_string(),
                counters,
            })
            .collect(),
        by_evaluator,
        by_model,
        by_job,
    }))
}
