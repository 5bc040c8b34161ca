//! Evals and datasets: an evaluator uploads them (validated before anything is stored), lists
//! its own and reads its own. Both are content-addressed: the id is the sha256 of the bytes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use proctor_core::{Dataset, Sha256Digest};
use proctor_store::{DatasetMeta, EvalDescription, EvalMeta, Role, Upload};
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, PathParam, RawBody, parse_id};
use crate::state::AppState;

/// An eval as the API shows it: its digest and what `describe` declared at upload.
#[derive(Debug, Serialize)]
pub struct EvalView {
    id: String,
    sha256: String,
    name: String,
    version: String,
    metrics: serde_json::Value,
    size: u64,
    created_at: String,
}

impl From<EvalMeta> for EvalView {
    fn from(e: EvalMeta) -> EvalView {
        EvalView {
            id: e.digest.to_hex(),
            sha256: e.digest.to_hex(),
            name: e.name,
            version: e.version,
            metrics: serde_json::from_str(&e.metrics).unwrap_or(serde_json::Value::Null),
            size: e.size,
            created_at: e.created_at.to_rfc3339(),
        }
    }
}

/// A dataset as the API shows it (never its lines).
#[derive(Debug, Serialize)]
pub struct DatasetView {
    id: String,
    sha256: String,
    items: u64,
    size: u64,
    created_at: String,
}

impl From<DatasetMeta> for DatasetView {
    fn from(d: DatasetMeta) -> DatasetView {
        DatasetView {
            id: d.digest.to_hex(),
            sha256: d.digest.to_hex(),
            items: d.items,
            size: d.size,
            created_at: d.created_at.to_rfc3339(),
        }
    }
}

/// 201 when the bytes were new, 200 when the same bytes were stored already.
fn upload_status(upload: Upload) -> StatusCode {
    match upload {
        Upload::Created => StatusCode::CREATED,
        Upload::Existing => StatusCode::OK,
    }
}

pub async fn upload_eval(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    RawBody(bytes): RawBody,
) -> ApiResult<(StatusCode, Json<EvalView>)> {
    // Authentication and the role are checked after the body (bounded by the route's limit)
    // is read: refusing while a client is still sending makes it see a reset connection
    // instead of the 401 or 403.
    let caller = caller?;
    caller.require(&[Role::Evaluator])?;
    // Validated, compiled and described before anything is stored: a refused component
    // leaves no row.
    let prepared = state.sandbox.prepare(&bytes).await?;
    let metrics = serde_json::to_string(&prepared.info.metrics)
        .map_err(|e| ApiError::internal("eval metrics", &e))?;
    let description = EvalDescription {
        name: prepared.info.name.clone(),
        version: prepared.info.version.clone(),
        metrics,
    };
    let (meta, upload) = state
        .store
        .put_eval(caller.id(), &bytes, &description)
        .await?;
    Ok((upload_status(upload), Json(meta.into())))
}

pub async fn list_evals(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<EvalView>>> {
    caller.require(&[Role::Evaluator])?;
    let evals = state.store.evals_of(caller.id()).await?;
    Ok(Json(evals.into_iter().map(Into::into).collect()))
}

pub async fn get_eval(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<EvalView>> {
    caller.require(&[Role::Evaluator])?;
    let digest: Sha256Digest = parse_id(&id, "eval")?;
    // Another evaluator's eval is not found, so digests of others' uploads do not leak.
    if !state.store.owns_eval(caller.id(), &digest).await? {
        return Err(ApiError::not_found("eval"));
    }
    Ok(Json(state.store.eval(&digest).await?.into()))
}

pub async fn upload_dataset(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    RawBody(bytes): RawBody,
) -> ApiResult<(StatusCode, Json<DatasetView>)> {
    // The role is checked after the body (bounded by the route's limit) is read: refusing
    // while a client is still sending makes it see a reset connection instead of the 403.
    let caller = caller?;
    caller.require(&[Role::Evaluator])?;
    let dataset = Dataset::parse(&bytes, state.config.max_dataset_lines)?;
    let (meta, upload) = state
        .store
        .put_dataset(caller.id(), &bytes, dataset.len() as u64)
        .await?;
    Ok((upload_status(upload), Json(meta.into())))
}

pub async fn list_datasets(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<DatasetView>>> {
    caller.require(&[Role::Evaluator])?;
    let datasets = state.store.datasets_of(caller.id()).await?;
    Ok(Json(datasets.into_iter().map(Into::into).collect()))
}

pub async fn get_dataset(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<DatasetView>> {
    caller.require(&[Role::Evaluator])?;
    let digest: Sha256Digest = parse_id(&id, "dataset")?;
    if !state.store.owns_dataset(caller.id(), &digest).await? {
        return Err(ApiError::not_found("dataset"));
    }
    Ok(Json(state.store.dataset(&digest).await?.into()))
}
