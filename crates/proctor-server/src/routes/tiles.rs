//! The log as C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>) under the prefix `/log/`, beside
//! the JSON API: `GET /log/checkpoint`, `GET /log/tile/<L>/<N>[.p/<W>]` and
//! `GET /log/tile/entries/<N>[.p/<W>]`, so any tlog client, mirror or CDN can read the log
//! without Proctor's API. The log's origin line should be this prefix without its scheme
//! (`proctor.example.org/log`); see `proctor serve --origin`.
//!
//! Tiles are read from the stored subtree hashes (one range read, never a rehash; see
//! [`proctor_attest::tiles`]) and only within the head the log guard vouches for, so a database
//! that was replaced by a fork cannot put a tile into anyone's cache. Full tiles and full
//! entry bundles never change: they are served `immutable` and kept in an in-process cache
//! ([`TileCache`]); partial ones and the checkpoint are served with a short max-age.
//!
//! Also, under `/v1`: `GET /v1/log/vkey`, the log key as a C2SP signed-note verifier key, for
//! convenience (a verifier should pin it from the operator, out of band), and
//! `GET /v1/attestations/{id}/tlog-proof`, a job's C2SP tlog-proof receipt.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use axum::body::{Body, Bytes as Shared};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use lru::LruCache;
use proctor_api::ErrorBody;
use proctor_api::bytes::Bytes;
use proctor_api::log::AttestationQuery;
use proctor_attest::SignatureType;
use proctor_attest::tiles::{self, Tile, TileKind};
use proctor_attest::tlog_proof::TlogProof;
use proctor_attest::vkey::Vkey;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{PathParam, QueryParams};
use crate::routes::public;
use crate::state::AppState;

/// How long a client may keep the checkpoint or a partial tile: the log grows, and tlog-tiles
/// asks that the checkpoint not be cached "beyond a few seconds".
const SHORT_LIVED: &str = "public, max-age=5";
/// A full tile or bundle never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Full hash tiles kept in memory: 8 KiB each, 16 MiB in all, enough for the upper levels of
/// any log and the level-0 tiles of the last half million entries.
const HASH_TILES_CACHED: usize = 2048;
/// Full entry bundles kept in memory: 256 envelopes of a few KiB each.
const BUNDLES_CACHED: usize = 32;

/// The full tiles and bundles served so far (they never change, so a hit is always right).
pub struct TileCache {
    hashes: Mutex<LruCache<Tile, Shared>>,
    bundles: Mutex<LruCache<Tile, Shared>>,
}

impl Default for TileCache {
    fn default() -> TileCache {
        let size = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        TileCache {
            hashes: Mutex::new(LruCache::new(size(HASH_TILES_CACHED))),
            bundles: Mutex::new(LruCache::new(size(BUNDLES_CACHED))),
        }
    }
}

impl std::fmt::Debug for TileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileCache").finish_non_exhaustive()
    }
}

impl TileCache {
    fn of(&self, tile: &Tile) -> &Mutex<LruCache<Tile, Shared>> {
        match tile.kind {
            TileKind::Hashes { .. } => &self.hashes,
            TileKind::Entries => &self.bundles,
        }
    }

    fn get(&self, tile: &Tile) -> Option<Shared> {
        self.of(tile)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tile)
            .cloned()
    }

    fn put(&self, tile: Tile, bytes: Shared) {
        self.of(&tile)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(tile, bytes);
    }
}

/// The tile routes, at the root (the tlog-tiles prefix is `/log/`).
pub fn routes() -> OpenApiRouter<AppState> {
    // The tile path has a variable number of segments (`x001/x234/067`): axum routes it as a
    // wildcard, the description names it one parameter (OpenAPI has no wildcards).
    let (schemas, paths, method_router) = routes!(tile);
    let mut doc = OpenApi::default();
    doc.paths = paths;
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
    OpenApiRouter::new()
        .routes(routes!(tlog_checkpoint))
        .merge(OpenApiRouter::with_openapi(doc).route("/log/tile/{*path}", method_router))
}

/// The routes under `/v1`.
pub fn v1_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(log_vkey))
        .routes(routes!(attestation_tlog_proof))
}

fn bytes_response(
    body: impl Into<Body>,
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The log's checkpoint, as at `/v1/log/checkpoint`, at the tlog-tiles path.
#[utoipa::path(
    get, path = "/log/checkpoint", tag = "log", operation_id = "get_tlog_checkpoint",
    responses(
        (status = 200, description = "the signed note (tlog-checkpoint), with the witnesses' cosignatures it has", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 503, description = "`log_fork`: the database's log does not extend the last checkpoint this service signed", body = ErrorBody),
    ),
)]
pub async fn tlog_checkpoint(State(state): State<AppState>) -> ApiResult<Response> {
    let (_, note) = public::served_checkpoint(&state).await?;
    Ok(bytes_response(
        note,
        "text/plain; charset=utf-8",
        SHORT_LIVED,
    ))
}

/// A tile of Merkle tree hashes or an entry bundle.
#[utoipa::path(
    get, path = "/log/tile/{path}", tag = "log", operation_id = "get_tlog_tile",
    params(("path" = String, Path, description = "`<L>/<N>[.p/<W>]` (hashes at tile level L) or `entries/<N>[.p/<W>]` (an entry bundle), N in 3-digit groups, all but the last prefixed with `x`: `0/x001/x234/067.p/8`")),
    responses(
        (status = 200, description = "the tile: 32-byte hashes, concatenated; or the bundle: each entry (a DSSE envelope, byte for byte the leaf) after its big-endian 16-bit length. Full ones are immutable", body = inline(Bytes), content_type = "application/octet-stream"),
        (status = 400, description = "a path that is not UTF-8 once percent-decoded", body = ErrorBody),
        (status = 404, description = "`no_tile`: not a tile path, or a tile the log does not have (yet)", body = ErrorBody),
        (status = 503, description = "`log_fork`: the database's log does not extend the last checkpoint this service signed", body = ErrorBody),
    ),
)]
pub async fn tile(
    State(state): State<AppState>,
    PathParam(path): PathParam,
) -> ApiResult<Response> {
    let no_tile = |why: &str| ApiError::new(axum::http::StatusCode::NOT_FOUND, "no_tile", why);
    let tile = Tile::parse_path(&path).map_err(|e| no_tile(&e.to_string()))?;
    if !tile.is_partial()
        && let Some(bytes) = state.tiles.get(&tile)
    {
        return Ok(bytes_response(bytes, "application/octet-stream", IMMUTABLE));
    }
    let head = public::vouched_head(&state).await?;
    let Some((level, start, end)) = tile.node_range().filter(|_| tile.exists_in(head.size)) else {
        return Err(no_tile("the log has no such tile (yet)"));
    };
    let bytes = match tile.kind {
        TileKind::Hashes { .. } => {
            tiles::hash_tile(&state.store.log_nodes(level, start, end).await?)
        }
        TileKind::Entries => {
            let entries = state
                .store
                .log_entries(start, u32::from(tile.width))
                .await?;
            if entries.len() != usize::from(tile.width)
                || entries.iter().zip(start..).any(|(e, i)| e.index != i)
            {
                return Err(ApiError::internal(
                    "an entry bundle",
                    &"entries missing below the log's head",
                ));
            }
            let envelopes: Vec<&[u8]> = entries.iter().map(|e| e.envelope.as_slice()).collect();
            tiles::entry_bundle(start, &envelopes)
                .map_err(|e| ApiError::internal("an entry bundle", &e))?
        }
    };
    if tile.is_partial() {
        return Ok(bytes_response(
            bytes,
            "application/octet-stream",
            SHORT_LIVED,
        ));
    }
    let bytes = Shared::from(bytes);
    state.tiles.put(tile, bytes.clone());
    Ok(bytes_response(bytes, "application/octet-stream", IMMUTABLE))
}

/// The log's verifier key: `<origin>+<key id>+<base64(0x01 || Ed25519 key)>`.
#[utoipa::path(
    get, path = "/log/vkey", tag = "log", operation_id = "get_log_vkey",
    responses(
        (status = 200, description = "the vkey, one line with a final newline (pin it out of band: this copy is only as good as the connection)", body = String, content_type = "text/plain; charset=utf-8"),
    ),
)]
pub async fn log_vkey(State(state): State<AppState>) -> ApiResult<Response> {
    let vkey = Vkey::new(
        &state.config.origin,
        SignatureType::Ed25519,
        state.key.verifying_key(),
    )
    .map_err(|e| ApiError::internal("the log's vkey", &e))?;
    Ok(bytes_response(
        format!("{vkey}\n"),
        "text/plain; charset=utf-8",
        SHORT_LIVED,
    ))
}

/// A job's attestation receipt: C2SP tlog-proof text (index, inclusion proof, the served
/// checkpoint with its cosignatures), checked offline with the envelope and a tlog-policy
/// (`proctor verify --policy`).
#[utoipa::path(
    get, path = "/attestations/{id}/tlog-proof", tag = "log", operation_id = "get_attestation_tlog_proof",
    params(("id" = String, Path, description = "the job's id"), AttestationQuery),
    responses(
        (status = 200, description = "the receipt (`.tlog-proof`) of the job's entry of that kind", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 400, description = "`malformed_query`: a `kind` other than `result` or `accepted`", body = ErrorBody),
        (status = 404, description = "no such job, or it has no entry of that kind (yet)", body = ErrorBody),
        (status = 503, description = "`log_fork`: the database's log does not extend the last checkpoint this service signed", body = ErrorBody),
    ),
)]
pub async fn attestation_tlog_proof(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    QueryParams(q): QueryParams<AttestationQuery>,
) -> ApiResult<Response> {
    let entry = public::job_entry(&state, &id, public::entry_kind(q.kind)).await?;
    let (head, checkpoint) = public::served_checkpoint_with(&state, entry.index).await?;
    let hashes = state.store.inclusion_proof(entry.index, head.size).await?;
    let receipt = TlogProof {
        extra: None,
        index: entry.index,
        hashes,
        checkpoint,
    };
    Ok(bytes_response(
        receipt.encode(),
        "text/plain; charset=utf-8",
        SHORT_LIVED,
    ))
}
