//! The vendor's usage report: exact, metered usage of its models, per job and summed per
//! grant, evaluator and model. Evaluators never see this; their copy of a DP job's usage is
//! noised in its report.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use proctor_store::{AccountId, GrantId, ModelId, UsageRow};
use serde::Serialize;

use crate::error::ApiResult;
use crate::extract::VendorCaller;
use crate::state::AppState;

/// Queries and tokens, settled, and queries still in flight.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Counters {
    queries: u64,
    input_tokens: u64,
    output_tokens: u64,
    in_flight: u64,
}

impl Counters {
    fn add(&mut self, row: &UsageRow) {
        self.queries += row.usage.queries;
        self.input_tokens += row.usage.input_tokens;
        self.output_tokens += row.usage.output_tokens;
        self.in_flight += row.in_flight;
    }
}

#[derive(Debug, Serialize)]
struct GrantUsage {
    grant: String,
    #[serde(flatten)]
    counters: Counters,
}

#[derive(Debug, Serialize)]
struct EvaluatorUsage {
    evaluator: String,
    name: String,
    #[serde(flatten)]
    counters: Counters,
}

#[derive(Debug, Serialize)]
struct ModelUsage {
    model: String,
    name: String,
    #[serde(flatten)]
    counters: Counters,
}

#[derive(Debug, Serialize)]
struct JobUsage {
    job: String,
    grant: String,
    model: String,
    evaluator: String,
    #[serde(flatten)]
    counters: Counters,
}

/// `GET /v1/usage`.
#[derive(Debug, Serialize)]
pub struct UsageReport {
    total: Counters,
    by_grant: Vec<GrantUsage>,
    by_evaluator: Vec<EvaluatorUsage>,
    by_model: Vec<ModelUsage>,
    by_job: Vec<JobUsage>,
}

pub async fn report(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
) -> ApiResult<Json<UsageReport>> {
    let rows = state.store.usage_report(caller.id()).await?;
    let mut total = Counters::default();
    let mut grants: BTreeMap<GrantId, Counters> = BTreeMap::new();
    let mut evaluators: BTreeMap<AccountId, Counters> = BTreeMap::new();
    let mut models: BTreeMap<ModelId, Counters> = BTreeMap::new();
    let mut by_job = Vec::with_capacity(rows.len());
    for row in &rows {
        total.add(row);
        grants.entry(row.grant).or_default().add(row);
        evaluators.entry(row.evaluator).or_default().add(row);
        models.entry(row.model).or_default().add(row);
        let mut counters = Counters::default();
        counters.add(row);
        by_job.push(JobUsage {
            job: row.job.to_string(),
            grant: row.grant.to_string(),
            model: row.model.to_string(),
            evaluator: row.evaluator.to_string(),
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
