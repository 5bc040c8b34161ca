//! Public reads: attestations, the log (checkpoint, entries, proofs), the service key, health,
//! metrics and the API description. No token needed: the log is public by design, and what
//! it holds (digests, aggregates) is what the attestations publish.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use proctor_attest::proof::{ConsistencyProof, InclusionProof};
use proctor_attest::{Checkpoint, TreeHead};
use proctor_store::{EntryKind, JobId, LogEntry};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::{PathParam, QueryParams, parse_id};
use crate::state::AppState;

fn with_type(body: impl Into<Body>, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The signed checkpoint of `head`.
fn checkpoint(state: &AppState, head: TreeHead) -> ApiResult<String> {
    Checkpoint::new(&state.config.origin, head)
        .sign(&state.key)
        .map_err(|e| ApiError::internal("signing a checkpoint", &e))
}

fn proof_json(text: String) -> ApiResult<serde_json::Value> {
    serde_json::from_str(&text).map_err(|e| ApiError::internal("proof JSON", &e))
}

/// `?kind=result|accepted` (default `result`).
#[derive(Debug, Deserialize)]
pub struct KindQuery {
    #[serde(default)]
    kind: Option<String>,
}

fn entry_kind(kind: Option<&str>) -> ApiResult<EntryKind> {
    match kind.unwrap_or("result") {
        "result" => Ok(EntryKind::Result),
        "accepted" => Ok(EntryKind::Accepted),
        _ => Err(ApiError::bad_request(
            "malformed_query",
            "kind must be `result` or `accepted`",
        )),
    }
}

async fn job_entry(state: &AppState, id: &str, kind: EntryKind) -> ApiResult<LogEntry> {
    let job: JobId = parse_id(id, "attestation")?;
    state
        .store
        .job_entry(job, kind)
        .await?
        .ok_or_else(|| ApiError::not_found("attestation"))
}

/// An attestation with what a regulator needs to check it offline.
#[derive(Debug, Serialize)]
pub struct AttestationView {
    job_id: String,
    kind: &'static str,
    log_index: u64,
    /// The DSSE envelope, byte for byte the log leaf (it is JSON text).
    envelope: String,
    /// The signed checkpoint the proof leads to.
    checkpoint: String,
    /// `{"log_index", "tree_size", "root_hash", "hashes"}`.
    inclusion_proof: serde_json::Value,
}

pub async fn attestation(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    QueryParams(q): QueryParams<KindQuery>,
) -> ApiResult<Json<AttestationView>> {
    let kind = entry_kind(q.kind.as_deref())?;
    let entry = job_entry(&state, &id, kind).await?;
    let head = state.store.tree_head().await?;
    let hashes = state.store.inclusion_proof(entry.index, head.size).await?;
    let proof = InclusionProof {
        log_index: entry.index,
        tree_size: head.size,
        root_hash: head.root,
        hashes,
    };
    let envelope = String::from_utf8(entry.envelope)
        .map_err(|e| ApiError::internal("a stored envelope is not UTF-8", &e))?;
    Ok(Json(AttestationView {
        job_id: entry.job.to_string(),
        kind: kind.as_str(),
        log_index: entry.index,
        envelope,
        checkpoint: checkpoint(&state, head)?,
        inclusion_proof: proof_json(proof.to_json())?,
    }))
}

/// The envelope alone, byte for byte as logged.
pub async fn attestation_envelope(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    QueryParams(q): QueryParams<KindQuery>,
) -> ApiResult<Response> {
    let kind = entry_kind(q.kind.as_deref())?;
    let entry = job_entry(&state, &id, kind).await?;
    Ok(with_type(entry.envelope, "application/json"))
}

pub async fn log_checkpoint(State(state): State<AppState>) -> ApiResult<Response> {
    let head = state.store.tree_head().await?;
    Ok(with_type(
        checkpoint(&state, head)?,
        "text/plain; charset=utf-8",
    ))
}

/// `?start=&limit=`.
#[derive(Debug, Deserialize)]
pub struct EntriesQuery {
    #[serde(default)]
    start: u64,
    #[serde(default)]
    limit: Option<u32>,
}

/// A log entry; `envelope` is standard base64 of the leaf bytes. It has no time of its own:
/// its statement carries the signed times (on the policy's grid for a private job), and the
/// database's time of the append would show a private job's end off the grid.
#[derive(Debug, Serialize)]
pub struct EntryView {
    index: u64,
    kind: &'static str,
    job_id: String,
    envelope: String,
}

pub async fn log_entries(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<EntriesQuery>,
) -> ApiResult<Json<Vec<EntryView>>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = state.store.log_entries(q.start, limit).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| EntryView {
                index: e.index,
                kind: e.kind.as_str(),
                job_id: e.job.to_string(),
                envelope: base64::engine::general_purpose::STANDARD.encode(&e.envelope),
            })
            .collect(),
    ))
}

/// One entry's leaf bytes.
pub async fn log_entry(
    State(state): State<AppState>,
    PathParam(index): PathParam,
) -> ApiResult<Response> {
    let index: u64 = parse_id(&index, "log entry")?;
    let entry = state.store.log_entry(index).await?;
    Ok(with_type(entry.envelope, "application/json"))
}

/// `?index=&size=` (size defaults to the current head).
#[derive(Debug, Deserialize)]
pub struct InclusionQuery {
    index: u64,
    #[serde(default)]
    size: Option<u64>,
}

pub async fn inclusion_proof(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<InclusionQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let size = match q.size {
        Some(size) => size,
        None => state.store.tree_head().await?.size,
    };
    if q.index >= size {
        return Err(ApiError::not_found("log entry"));
    }
    let hashes = state.store.inclusion_proof(q.index, size).await?;
    let root_hash = state.store.root_at(size).await?;
    let proof = InclusionProof {
        log_index: q.index,
        tree_size: size,
        root_hash,
        hashes,
    };
    Ok(Json(proof_json(proof.to_json())?))
}

/// `?old=&new=` (new defaults to the current head).
#[derive(Debug, Deserialize)]
pub struct ConsistencyQuery {
    old: u64,
    #[serde(default)]
    new: Option<u64>,
}

pub async fn consistency_proof(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ConsistencyQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let new = match q.new {
        Some(new) => new,
        None => state.store.tree_head().await?.size,
    };
    if q.old > new {
        return Err(ApiError::unprocessable(
            "invalid_range",
            "old must not exceed new",
        ));
    }
    let hashes = state.store.consistency_proof(q.old, new).await?;
    let proof = ConsistencyProof {
        old_size: q.old,
        new_size: new,
        hashes,
    };
    Ok(Json(proof_json(proof.to_json())?))
}

pub async fn public_key(State(state): State<AppState>) -> Response {
    let mut response = with_type(state.key.verifying_key().to_pem(), "application/x-pem-file");
    if let Ok(id) = HeaderValue::from_str(&state.key.key_id()) {
        response.headers_mut().insert("x-proctor-key-id", id);
    }
    response
}

pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.now().await {
        Ok(_) => (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))).into_response(),
        Err(err) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database does not answer",
        )
        .with_log(&err)
        .into_response(),
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    with_type(
        state.metrics.render(),
        "text/plain; version=0.0.4; charset=utf-8",
    )
}

pub async fn openapi() -> Response {
    with_type(crate::openapi::DOCUMENT, "application/json")
}
