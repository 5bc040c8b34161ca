//! Public reads: attestations, the log (checkpoint, entries, proofs), the service key, health,
//! metrics and the API description. No token needed: the log is public by design, and what
//! it holds (digests, aggregates) is what the attestations publish.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use proctor_api::ErrorBody;
use proctor_api::log::{
    AttestationQuery, AttestationView, ConsistencyProofView, ConsistencyQuery, DsseEnvelope,
    EntryKind as KindView, EntryView, Health, HealthFault, InclusionProofView, InclusionQuery,
    ListEntries,
};
use proctor_attest::TreeHead;
use proctor_attest::proof::{ConsistencyProof, InclusionProof};

use proctor_store::{EntryKind, Fault, JobId, LogEntry};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::caching::{self, Freshness};
use crate::error::{ApiError, ApiResult};
use crate::extract::{PathParam, QueryParams, list_limit, parse_id};
use crate::state::AppState;

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(attestation))
        .routes(routes!(attestation_envelope))
        .routes(routes!(log_checkpoint))
        .routes(routes!(log_entries))
        .routes(routes!(log_entry))
        .routes(routes!(inclusion_proof))
        .routes(routes!(consistency_proof))
        .routes(routes!(public_key))
}

/// The routes outside `/v1`: health, metrics and this API's description.
pub fn service_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

fn with_type(body: impl Into<Body>, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The database's head, once the guard has checked that it extends the head this service
/// last signed and remembered it (shared among requests that arrive together,
/// [`ReadCache::head`](crate::read_cache::ReadCache::head)): the only head a checkpoint is
/// signed of.
pub(crate) async fn vouched_head(state: &AppState) -> ApiResult<TreeHead> {
    Ok(state.reads.head(state).await?.head)
}

/// The checkpoint the service hands out, with the head it is of: at `/v1/log/checkpoint`,
/// `/log/checkpoint`, in attestations and in their tlog-proof receipts (which prove inclusion
/// in exactly this tree). The newest one its witnesses' quorum cosigned, with their
/// cosignatures; the vouched head, signed now, while none is (or none is configured).
pub(crate) async fn served_checkpoint(state: &AppState) -> ApiResult<(TreeHead, String)> {
    crate::witnessing::served_checkpoint(state, 0).await
}

/// [`served_checkpoint`], of a tree that holds the entry at `index`: an entry newer than the
/// cosigned checkpoint is proved in the current one until its witnesses catch up.
pub(crate) async fn served_checkpoint_with(
    state: &AppState,
    index: u64,
) -> ApiResult<(TreeHead, String)> {
    crate::witnessing::served_checkpoint(state, index.saturating_add(1)).await
}

/// A proof as its API view, read from the proof file's JSON so its hashes are encoded as
/// `proctor-attest` writes them (and `proctor verify` reads them).
fn proof_view<T: serde::de::DeserializeOwned>(text: String) -> ApiResult<T> {
    serde_json::from_str(&text).map_err(|e| ApiError::internal("proof JSON", &e))
}

/// `value` as a JSON answer with its caching headers ([`caching::respond`]).
fn json<T: serde::Serialize>(
    request: &HeaderMap,
    value: &T,
    freshness: Freshness,
) -> ApiResult<Response> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::internal("answer JSON", &e))?;
    Ok(caching::respond(
        request,
        body,
        "application/json",
        freshness,
    ))
}

/// What the API description says of a 304.
const NOT_MODIFIED: &str = "`If-None-Match` names the current answer's tag: no body";

/// The stored kind of an asked one (`result` when left out).
pub(crate) fn entry_kind(kind: Option<KindView>) -> EntryKind {
    match kind.unwrap_or_default() {
        KindView::Result => EntryKind::Result,
        KindView::Accepted => EntryKind::Accepted,
    }
}

/// The API's kind of a stored one.
fn kind_view(kind: EntryKind) -> KindView {
    match kind {
        EntryKind::Result => KindView::Result,
        EntryKind::Accepted => KindView::Accepted,
    }
}

pub(crate) async fn job_entry(
    state: &AppState,
    id: &str,
    kind: EntryKind,
) -> ApiResult<Arc<LogEntry>> {
    let job: JobId = parse_id(id, "attestation")?;
    state
        .reads
        .job_entry(state, job, kind)
        .await?
        .ok_or_else(|| ApiError::not_found("attestation"))
}

/// A job's attestation with what a regulator needs to check it offline: the envelope as
/// logged, its log index, the current checkpoint and the inclusion proof to it.
#[utoipa::path(
    get, path = "/attestations/{id}", tag = "log", operation_id = "get_attestation",
    params(("id" = String, Path, description = "the job's id"), AttestationQuery, ("if-none-match" = Option<String>, Header, description = "entity tags of answers the client holds; one that names the current answer's tag is answered 304")),
    responses(
        (status = 200, description = "the attestation; it changes as the log grows (its checkpoint and proof are the current head's), so caches revalidate it", body = AttestationView,
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`no-cache`: keep, but revalidate"))),
        (status = 304, description = NOT_MODIFIED,
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`no-cache`: keep, but revalidate"))),
        (status = 400, description = "`malformed_query`: a `kind` other than `result` or `accepted`", body = ErrorBody),
        (status = 404, description = "no such job, or it has no entry of that kind (yet)", body = ErrorBody),
        (status = 503, description = "`log_fork`: the database's log does not extend the last checkpoint this service signed", body = ErrorBody),
    ),
)]
pub async fn attestation(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    QueryParams(q): QueryParams<AttestationQuery>,
    request: HeaderMap,
) -> ApiResult<Response> {
    let kind = entry_kind(q.kind);
    let entry = job_entry(&state, &id, kind).await?;
    let (head, checkpoint) = served_checkpoint_with(&state, entry.index).await?;
    let hashes = state
        .reads
        .inclusion_proof(&state, entry.index, head.size)
        .await?;
    let proof = InclusionProof {
        log_index: entry.index,
        tree_size: head.size,
        root_hash: head.root,
        hashes: hashes.to_vec(),
    };
    let envelope = std::str::from_utf8(&entry.envelope)
        .map_err(|e| ApiError::internal("a stored envelope is not UTF-8", &e))?;
    let view = AttestationView {
        job_id: entry.job.to_string(),
        kind: kind_view(kind),
        log_index: entry.index,
        envelope: envelope.to_owned(),
        checkpoint,
        inclusion_proof: proof_view(proof.to_json())?,
    };
    json(&request, &view, Freshness::Revalidate)
}

/// A job's DSSE envelope alone, byte for byte the log leaf.
#[utoipa::path(
    get, path = "/attestations/{id}/envelope", tag = "log", operation_id = "get_attestation_envelope",
    params(("id" = String, Path, description = "the job's id"), AttestationQuery, ("if-none-match" = Option<String>, Header, description = "entity tags of answers the client holds; one that names the current answer's tag is answered 304")),
    responses(
        (status = 200, description = "the envelope's bytes as logged; they never change", body = DsseEnvelope, content_type = "application/json",
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`public, max-age=31536000, immutable`"))),
        (status = 304, description = NOT_MODIFIED,
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`public, max-age=31536000, immutable`"))),
        (status = 400, description = "`malformed_query`: a `kind` other than `result` or `accepted`", body = ErrorBody),
        (status = 404, description = "no such job, or it has no entry of that kind (yet)", body = ErrorBody),
    ),
)]
pub async fn attestation_envelope(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    QueryParams(q): QueryParams<AttestationQuery>,
    request: HeaderMap,
) -> ApiResult<Response> {
    let entry = job_entry(&state, &id, entry_kind(q.kind)).await?;
    Ok(caching::respond(
        &request,
        entry.envelope.as_slice(),
        "application/json",
        Freshness::Immutable,
    ))
}

/// The log's current signed checkpoint: a C2SP signed note (origin, size, base64 root hash,
/// then the service key's Ed25519 signature line).
#[utoipa::path(
    get, path = "/log/checkpoint", tag = "log", operation_id = "get_checkpoint",
    params(("if-none-match" = Option<String>, Header, description = "entity tags of answers the client holds; one that names the current answer's tag is answered 304")),
    responses(
        (status = 200, description = "the signed note; it changes as the log grows, so caches revalidate it", body = String, content_type = "text/plain; charset=utf-8",
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`no-cache`: keep, but revalidate"))),
        (status = 304, description = NOT_MODIFIED,
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`no-cache`: keep, but revalidate"))),
        (status = 503, description = "`log_fork`: the database's log does not extend the last checkpoint this service signed", body = ErrorBody),
    ),
)]
pub async fn log_checkpoint(
    State(state): State<AppState>,
    request: HeaderMap,
) -> ApiResult<Response> {
    let (_, checkpoint) = served_checkpoint(&state).await?;
    Ok(caching::respond(
        &request,
        checkpoint.as_bytes(),
        "text/plain; charset=utf-8",
        Freshness::Revalidate,
    ))
}

/// Log entries in index order, envelopes in base64.
#[utoipa::path(
    get, path = "/log/entries", tag = "log", operation_id = "list_log_entries",
    params(ListEntries, ("if-none-match" = Option<String>, Header, description = "entity tags of answers the client holds; one that names the current answer's tag is answered 304")),
    responses(
        (status = 200, description = "the entries from `start` on; empty past the log's end. A full page (`limit` entries) never changes and is marked immutable; a shorter one grows with the log, so caches revalidate it", body = Vec<EntryView>,
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`public, max-age=31536000, immutable` or `no-cache`, as the description says"))),
        (status = 304, description = NOT_MODIFIED,
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`public, max-age=31536000, immutable` or `no-cache`, as the description says"))),
        (status = 400, description = "`malformed_query`: a `start` that is not a non-negative 64-bit integer, or a `limit` outside 1 to 1000", body = ErrorBody),
        (status = 422, description = "`invalid`: a `start` beyond 2^63 - 1", body = ErrorBody),
    ),
)]
pub async fn log_entries(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListEntries>,
    request: HeaderMap,
) -> ApiResult<Response> {
    let limit = list_limit(q.limit)?;
    let entries = state.store.log_entries(q.start.unwrap_or(0), limit).await?;
    // Entries are never rewritten, so a page the log has filled stays as it is.
    let freshness = if entries.len() == limit as usize {
        Freshness::Immutable
    } else {
        Freshness::Revalidate
    };
    let views: Vec<EntryView> = entries
        .into_iter()
        .map(|e| EntryView {
            index: e.index,
            kind: kind_view(e.kind),
            job_id: e.job.to_string(),
            envelope: base64::engine::general_purpose::STANDARD.encode(&e.envelope),
        })
        .collect();
    json(&request, &views, freshness)
}

/// One entry's leaf bytes: its DSSE envelope as logged.
#[utoipa::path(
    get, path = "/log/entries/{id}", tag = "log", operation_id = "get_log_entry",
    params(("id" = u64, Path, minimum = 0, description = "the entry's index"), ("if-none-match" = Option<String>, Header, description = "entity tags of answers the client holds; one that names the current answer's tag is answered 304")),
    responses(
        (status = 200, description = "the envelope's bytes as logged; they never change", body = DsseEnvelope, content_type = "application/json",
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`public, max-age=31536000, immutable`"))),
        (status = 304, description = NOT_MODIFIED,
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`public, max-age=31536000, immutable`"))),
        (status = 404, description = "no entry at that index (or not an index)", body = ErrorBody),
    ),
)]
pub async fn log_entry(
    State(state): State<AppState>,
    PathParam(index): PathParam,
    request: HeaderMap,
) -> ApiResult<Response> {
    let index: u64 = parse_id(&index, "log entry")?;
    let entry = state.reads.entry(&state, index).await?;
    Ok(caching::respond(
        &request,
        entry.envelope.as_slice(),
        "application/json",
        Freshness::Immutable,
    ))
}

/// The inclusion proof of an entry in the tree of a given size.
#[utoipa::path(
    get, path = "/log/proof/inclusion", tag = "log", operation_id = "get_inclusion_proof",
    params(InclusionQuery, ("if-none-match" = Option<String>, Header, description = "entity tags of answers the client holds; one that names the current answer's tag is answered 304")),
    responses(
        (status = 200, description = "the proof; with `size` given it never changes and is marked immutable, without it it is the current head's, so caches revalidate it", body = InclusionProofView,
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`public, max-age=31536000, immutable` or `no-cache`, as the description says"))),
        (status = 304, description = NOT_MODIFIED,
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`public, max-age=31536000, immutable` or `no-cache`, as the description says"))),
        (status = 400, description = "`malformed_query`: `index` missing, or `index` or `size` not a non-negative 64-bit integer", body = ErrorBody),
        (status = 404, description = "`index` not below the size, or a size beyond the log's", body = ErrorBody),
    ),
)]
pub async fn inclusion_proof(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<InclusionQuery>,
    request: HeaderMap,
) -> ApiResult<Response> {
    let (size, freshness) = match q.size {
        Some(size) => (size, Freshness::Immutable),
        None => (state.store.tree_head().await?.size, Freshness::Revalidate),
    };
    if q.index >= size {
        return Err(ApiError::not_found("log entry"));
    }
    let hashes = state
        .reads
        .inclusion_proof(&state, q.index, size)
        .await?
        .to_vec();
    let root_hash = state.reads.root_at(&state, size).await?;
    let proof = InclusionProof {
        log_index: q.index,
        tree_size: size,
        root_hash,
        hashes,
    };
    let view: InclusionProofView = proof_view(proof.to_json())?;
    json(&request, &view, freshness)
}

/// The consistency proof from an older tree size to a newer one.
#[utoipa::path(
    get, path = "/log/proof/consistency", tag = "log", operation_id = "get_consistency_proof",
    params(ConsistencyQuery, ("if-none-match" = Option<String>, Header, description = "entity tags of answers the client holds; one that names the current answer's tag is answered 304")),
    responses(
        (status = 200, description = "the proof; with `new` given it never changes and is marked immutable, without it it leads to the current head, so caches revalidate it", body = ConsistencyProofView,
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`public, max-age=31536000, immutable` or `no-cache`, as the description says"))),
        (status = 304, description = NOT_MODIFIED,
            headers(("etag" = String, description = "the body's SHA-256 in hex, quoted: a strong entity tag for `If-None-Match`"), ("cache-control" = String, description = "`public, max-age=31536000, immutable` or `no-cache`, as the description says"))),
        (status = 400, description = "`malformed_query`: `old` missing, or `old` or `new` not a non-negative 64-bit integer", body = ErrorBody),
        (status = 404, description = "a size beyond the log's", body = ErrorBody),
        (status = 422, description = "`invalid_range`: `old` exceeds `new`", body = ErrorBody),
    ),
)]
pub async fn consistency_proof(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ConsistencyQuery>,
    request: HeaderMap,
) -> ApiResult<Response> {
    let (new, freshness) = match q.new {
        Some(new) => (new, Freshness::Immutable),
        None => (state.store.tree_head().await?.size, Freshness::Revalidate),
    };
    if q.old > new {
        return Err(ApiError::unprocessable(
            "invalid_range",
            "old must not exceed new",
        ));
    }
    let hashes = state
        .reads
        .consistency_proof(&state, q.old, new)
        .await?
        .to_vec();
    let proof = ConsistencyProof {
        old_size: q.old,
        new_size: new,
        hashes,
    };
    let view: ConsistencyProofView = proof_view(proof.to_json())?;
    json(&request, &view, freshness)
}

/// The service's Ed25519 public key (PEM), the one its attestations and checkpoints are
/// signed with.
#[utoipa::path(
    get, path = "/public-key", tag = "log", operation_id = "get_public_key",
    responses(
        (status = 200, description = "the key, PEM (SubjectPublicKeyInfo)", body = String, content_type = "application/x-pem-file",
            headers(("x-proctor-key-id" = String, description = "the key's id, as envelopes' `keyid` and checkpoints' signature lines name it"))),
    ),
)]
pub async fn public_key(State(state): State<AppState>) -> Response {
    let mut response = with_type(state.key.verifying_key().to_pem(), "application/x-pem-file");
    if let Ok(id) = HeaderValue::from_str(&state.key.key_id()) {
        response.headers_mut().insert("x-proctor-key-id", id);
    }
    response
}

/// How long `/healthz` waits for the store's probe before it answers `timed_out`, so that a
/// stalled database (or a write lock held for long) is a 503, not a request that hangs; a
/// healthy probe takes milliseconds.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the service can do its work: its database takes a write (a probe, reused for a
/// second) and, on SQLite, the file at its path is still the one it opened.
#[utoipa::path(
    get, path = "/healthz", tag = "service", operation_id = "get_health",
    responses(
        (status = 200, description = "up: `{\"status\": \"ok\"}`", body = Health),
        (status = 503, description = "`{\"status\": \"fault\", \"fault\": CODE, \"message\": TEXT}`: \
            the database refuses writes (`write_failed`), its file is gone (`file_missing`), \
            replaced (`file_replaced`) or cannot be examined (`file_unreadable`), or the probe \
            did not end in time (`timed_out`)", body = Health),
    ),
)]
pub async fn healthz(State(state): State<AppState>) -> Response {
    let fault = match tokio::time::timeout(HEALTH_TIMEOUT, state.store.health()).await {
        Ok(Ok(())) => return (StatusCode::OK, Json(Health::ok())).into_response(),
        Ok(Err(fault)) => {
            tracing::warn!(%fault, "health probe failed");
            match fault {
                Fault::WriteFailed(_) => HealthFault::WriteFailed,
                Fault::FileMissing(_) => HealthFault::FileMissing,
                Fault::FileReplaced(_) => HealthFault::FileReplaced,
                Fault::FileUnreadable { .. } => HealthFault::FileUnreadable,
            }
        }
        Err(_) => {
            tracing::warn!(timeout = ?HEALTH_TIMEOUT, "health probe did not end in time");
            HealthFault::TimedOut
        }
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(Health::fault(fault))).into_response()
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(
    get, path = "/metrics", tag = "service", operation_id = "get_metrics",
    responses(
        (status = 200, description = "the metrics", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    with_type(
        state.metrics.render(),
        "text/plain; version=0.0.4; charset=utf-8",
    )
}

/// This API's description (OpenAPI 3.1), generated from the handlers.
#[utoipa::path(
    get, path = "/openapi.json", tag = "service", operation_id = "get_openapi",
    responses(
        (status = 200, description = "the OpenAPI document", body = Object, content_type = "application/json"),
    ),
)]
pub async fn openapi() -> Response {
    with_type(crate::openapi::document(), "application/json")
}
