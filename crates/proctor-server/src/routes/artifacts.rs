//! Evals and datasets: an evaluator uploads them (validated before anything is stored), lists
//! its own and reads its own, and a dataset's exposure to each vendor. Both are content-addressed: the id is the sha256 of the bytes.
//!
//! Uploads are raw bytes ([`Uploaded`]: any content type, described as
//! `application/octet-stream`), each bounded by its own limit instead of the JSON one, read
//! only once the caller is known to be an evaluator and an upload slot is free.

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use proctor_api::ErrorBody;
use proctor_api::artifacts::{DatasetView, EvalView, ExposureView};
use proctor_api::bytes::Bytes;
use proctor_core::{Dataset, MetricSpec, Sha256Digest};
use proctor_store::{DatasetMeta, EvalDescription, EvalMeta, Role, Upload};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, PathParam, Uploaded, parse_id};
use crate::quotas;
use crate::state::{AppState, BodyLimits};

/// This module's routes, under `/v1`.
pub fn routes(limits: BodyLimits) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // The upload's limit replaces the JSON one on its path (the listing reads no body).
        .routes(routes!(upload_eval, list_evals).layer(DefaultBodyLimit::max(limits.component)))
        .routes(routes!(get_eval))
        .routes(routes!(upload_dataset, list_datasets).layer(DefaultBodyLimit::max(limits.dataset)))
        .routes(routes!(get_dataset))
        .routes(routes!(dataset_exposure))
}

/// Which kind of upload a quota check is for.
enum Owned {
    Eval,
    Dataset,
}

/// Refuses an upload that would take the caller past its storage quota, before the upload is
/// parsed or compiled. Bytes the caller holds already count once: uploading them again is
/// never refused.
async fn storage_quota(state: &AppState, upload: &Uploaded, kind: Owned) -> ApiResult<()> {
    let owner = upload.caller.id();
    let digest = Sha256Digest::of(&upload.bytes);
    let held = match kind {
        Owned::Eval => state.store.owns_eval(owner, &digest).await?,
        Owned::Dataset => state.store.owns_dataset(owner, &digest).await?,
    };
    if held {
        return Ok(());
    }
    let used = state.store.stored_bytes_of(owner).await?;
    quotas::check_storage(
        used,
        upload.bytes.len() as u64,
        state.config.quotas.stored_bytes,
    )
}

/// An eval's view.
fn eval_view(e: EvalMeta) -> ApiResult<EvalView> {
    let metrics: Vec<MetricSpec> = serde_json::from_str(&e.metrics)
        .map_err(|err| ApiError::internal("stored metric declarations", &err))?;
    Ok(EvalView {
        id: e.digest.to_hex(),
        sha256: e.digest.to_hex(),
        name: e.name,
        version: e.version,
        metrics,
        size: e.size,
        created_at: e.created_at.to_rfc3339(),
    })
}

/// A dataset's view.
fn dataset_view(d: DatasetMeta) -> DatasetView {
    DatasetView {
        id: d.digest.to_hex(),
        sha256: d.digest.to_hex(),
        items: d.items,
        size: d.size,
        created_at: d.created_at.to_rfc3339(),
    }
}

/// 201 when the bytes were new to the caller, 200 when the caller had uploaded them already:
/// whether another evaluator holds the same bytes does not show.
fn upload_status(upload: Upload) -> StatusCode {
    match upload {
        Upload::Created => StatusCode::CREATED,
        Upload::Existing => StatusCode::OK,
    }
}

/// Upload an eval component (a WebAssembly component, as raw bytes): validated, compiled and
/// described before anything is stored, so a refused component leaves nothing behind.
#[utoipa::path(
    post, path = "/evals", tag = "evals", operation_id = "upload_eval",
    security(("bearer" = [])),
    request_body(content = inline(Bytes), content_type = "application/octet-stream", description = "the component's bytes (`.wasm`), at most 64 MiB by default"),
    responses(
        (status = 200, description = "the caller had uploaded the same bytes already: that eval", body = EvalView),
        (status = 201, description = "stored for the caller (new to it, whoever else holds the same bytes)", body = EvalView),
        (status = 400, description = "`malformed_request`: a body that cannot be read", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator", body = ErrorBody),
        (status = 408, description = "`body_timeout`: the body did not arrive within the service's body deadline", body = ErrorBody),
        (status = 413, description = "`body_too_large`: over the component limit", body = ErrorBody),
        (status = 422, description = "refused: `empty_component`, `not_wasm`, `core_module`, `unsupported_wasm_version`, `invalid_component`, `forbidden_imports`, `wrong_world`, `describe_failed`, `invalid_declaration`, `too_many_metrics`", body = ErrorBody),
        (status = 429, description = "`quota_exceeded`: the caller's uploads per hour, its stored bytes, or its compile time in the last hour", body = ErrorBody),
        (status = 503, description = "`uploads_busy`: as many uploads as the service takes at once are being read; nothing of the body was read", body = ErrorBody),
    ),
)]
pub async fn upload_eval(
    State(state): State<AppState>,
    upload: Uploaded,
) -> ApiResult<(StatusCode, Json<EvalView>)> {
    storage_quota(&state, &upload, Owned::Eval).await?;
    let account = upload.caller.id();
    state
        .compile_time
        .check(account, state.config.quotas.compile_per_hour)?;
    // Validated, compiled and described before anything is stored: a refused component
    // leaves no row. The upload (and its slot) is held until the row is written. The time it
    // took counts against the account's compile quota, refused or not.
    let compiling = std::time::Instant::now();
    let prepared = state.sandbox.prepare(&upload.bytes).await;
    state.compile_time.charge(account, compiling.elapsed());
    let prepared = prepared?;
    let metrics = serde_json::to_string(&prepared.info.metrics)
        .map_err(|e| ApiError::internal("eval metrics", &e))?;
    let description = EvalDescription {
        name: prepared.info.name.clone(),
        version: prepared.info.version.clone(),
        metrics,
    };
    let (meta, stored) = state
        .store
        .put_eval(upload.caller.id(), &upload.bytes, &description)
        .await?;
    Ok((upload_status(stored), Json(eval_view(meta)?)))
}

/// The evaluator's evals.
#[utoipa::path(
    get, path = "/evals", tag = "evals", operation_id = "list_evals",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the evals the evaluator uploaded", body = Vec<EvalView>),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator", body = ErrorBody),
    ),
)]
pub async fn list_evals(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<EvalView>>> {
    caller.require(&[Role::Evaluator])?;
    let evals = state.store.evals_of(caller.id()).await?;
    let views = evals
        .into_iter()
        .map(eval_view)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(views))
}

/// One of the evaluator's evals, by sha256.
#[utoipa::path(
    get, path = "/evals/{id}", tag = "evals", operation_id = "get_eval",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the eval's sha256")),
    responses(
        (status = 200, description = "the eval", body = EvalView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator", body = ErrorBody),
        (status = 404, description = "no such eval of the caller's", body = ErrorBody),
    ),
)]
pub async fn get_eval(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<EvalView>> {
    caller.require(&[Role::Evaluator])?;
    let digest: Sha256Digest = parse_id(&id, "eval")?;
    // Another evaluator's eval is not found, so digests of others' uploads do not leak.
    let eval = state.store.eval_of(caller.id(), &digest).await?;
    Ok(Json(eval_view(
        eval.ok_or_else(|| ApiError::not_found("eval"))?,
    )?))
}

/// Upload a dataset: UTF-8 JSONL, one JSON value per line, as raw bytes.
#[utoipa::path(
    post, path = "/datasets", tag = "datasets", operation_id = "upload_dataset",
    security(("bearer" = [])),
    request_body(content = inline(Bytes), content_type = "application/octet-stream", description = "UTF-8 JSONL, one JSON value per line; at most 256 MiB by default"),
    responses(
        (status = 200, description = "the caller had uploaded the same bytes already: that dataset", body = DatasetView),
        (status = 201, description = "stored for the caller (new to it, whoever else holds the same bytes)", body = DatasetView),
        (status = 400, description = "`malformed_request`: a body that cannot be read", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator", body = ErrorBody),
        (status = 408, description = "`body_timeout`: the body did not arrive within the service's body deadline", body = ErrorBody),
        (status = 413, description = "`body_too_large`: over the dataset limit", body = ErrorBody),
        (status = 422, description = "`invalid_dataset`: not UTF-8 JSONL, empty, or over the line limit; the message names the line", body = ErrorBody),
        (status = 429, description = "`quota_exceeded`: the caller's uploads per hour, or its stored bytes", body = ErrorBody),
        (status = 503, description = "`uploads_busy`: as many uploads as the service takes at once are being read; nothing of the body was read", body = ErrorBody),
    ),
)]
pub async fn upload_dataset(
    State(state): State<AppState>,
    upload: Uploaded,
) -> ApiResult<(StatusCode, Json<DatasetView>)> {
    storage_quota(&state, &upload, Owned::Dataset).await?;
    let dataset = Dataset::parse(&upload.bytes, state.config.max_dataset_lines)?;
    let (meta, stored) = state
        .store
        .put_dataset(upload.caller.id(), &upload.bytes, dataset.len() as u64)
        .await?;
    Ok((upload_status(stored), Json(dataset_view(meta))))
}

/// The evaluator's datasets.
#[utoipa::path(
    get, path = "/datasets", tag = "datasets", operation_id = "list_datasets",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the datasets the evaluator uploaded", body = Vec<DatasetView>),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator", body = ErrorBody),
    ),
)]
pub async fn list_datasets(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<DatasetView>>> {
    caller.require(&[Role::Evaluator])?;
    let datasets = state.store.datasets_of(caller.id()).await?;
    Ok(Json(datasets.into_iter().map(dataset_view).collect()))
}

/// One of the evaluator's datasets, by sha256.
#[utoipa::path(
    get, path = "/datasets/{id}", tag = "datasets", operation_id = "get_dataset",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the dataset's sha256")),
    responses(
        (status = 200, description = "the dataset", body = DatasetView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator", body = ErrorBody),
        (status = 404, description = "no such dataset of the caller's", body = ErrorBody),
    ),
)]
pub async fn get_dataset(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<DatasetView>> {
    caller.require(&[Role::Evaluator])?;
    let digest: Sha256Digest = parse_id(&id, "dataset")?;
    let dataset = state.store.dataset_of(caller.id(), &digest).await?;
    Ok(Json(dataset_view(
        dataset.ok_or_else(|| ApiError::not_found("dataset"))?,
    )))
}

/// The exposure of one of the evaluator's datasets to each vendor whose models jobs over it ran
/// on: jobs and samples, counted when each job was accepted, by whoever held the same bytes.
#[utoipa::path(
    get, path = "/datasets/{id}/exposure", tag = "datasets", operation_id = "dataset_exposure",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the dataset's sha256")),
    responses(
        (status = 200, description = "one entry per vendor, by vendor name; empty when no job ran over it", body = Vec<ExposureView>),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an evaluator", body = ErrorBody),
        (status = 404, description = "no such dataset of the caller's", body = ErrorBody),
    ),
)]
pub async fn dataset_exposure(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<Vec<ExposureView>>> {
    caller.require(&[Role::Evaluator])?;
    let digest: Sha256Digest = parse_id(&id, "dataset")?;
    // Another evaluator's dataset is not found, as for `GET /datasets/{id}`.
    let exposure = state
        .store
        .exposure_of(caller.id(), &digest)
        .await?
        .ok_or_else(|| ApiError::not_found("dataset"))?;
    Ok(Json(
        exposure
            .into_iter()
            .map(|x| ExposureView {
                vendor: x.vendor_name,
                jobs: x.exposure.jobs,
                items: x.exposure.items,
                updated_at: x.updated_at.to_rfc3339(),
            })
            .collect(),
    ))
}
