//! The witness's HTTP interface:
//!
//! - `POST /add-checkpoint`: c2sp.org/tlog-witness v1.0.0 ([`crate::witness`] has the checks
//!   and their statuses). A 200 body is the cosignature line; a 409 body is the latest
//!   cosigned size and a newline, `Content-Type: text/x.tlog.size`; other refusals carry
//!   `{"error": {"code", "message"}}` as Proctor's API does.
//! - `GET /<lowercase hex sha256(origin)>/checkpoint`: the latest checkpoint it cosigned for
//!   that log, with the log's verified signature and its cosignature (the spec's monitoring
//!   endpoint); 404 when it cosigned none.
//! - `GET /evidence`: the split-view evidence kept ([`crate::evidence`]), newest first.
//!
//! Bodies are bounded ([`MAX_BODY`]: a request with 63 proof lines and a hundred signature
//! lines fits in a sixth of it); a larger one is 413 before it is read whole.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use proctor_api::ErrorBody;
use serde::Serialize;

use crate::evidence::Evidence;
use crate::witness::{Refusal, Witness};

/// The largest request body read.
pub const MAX_BODY: usize = 64 << 10;

/// Most evidence rows one `GET /evidence` returns.
pub const EVIDENCE_PAGE: u32 = 100;

/// The 409 body's content type.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// The witness's routes over `witness`, testable without a socket.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/evidence", get(evidence))
        .route("/{origin_hash}/checkpoint", get(checkpoint))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no_route", "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(witness)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(ErrorBody::new(code, message))).into_response()
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn add_checkpoint(
    State(witness): State<Arc<Witness>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error(rejection.status(), "bad_body", rejection.body_text());
        }
    };
    match witness.add_checkpoint(&body).await {
        Ok(lines) => text(StatusCode::OK, lines, "text/plain; charset=utf-8"),
        Err(refusal) => refused(&refusal),
    }
}

fn refused(refusal: &Refusal) -> Response {
    let status =
        StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match refusal {
        Refusal::Conflict { latest } => {
            return text(status, format!("{latest}\n"), SIZE_CONTENT_TYPE);
        }
        Refusal::Cosign(err) => {
            tracing::error!(%err, "add-checkpoint");
            return error(status, "internal", "internal error");
        }
        Refusal::Store(err) => {
            tracing::error!(%err, "add-checkpoint");
            return error(status, "internal", "internal error");
        }
        Refusal::Request(_) | Refusal::OldAboveSize { .. } => "bad_request",
        Refusal::Checkpoint(_) | Refusal::TooLarge => "bad_checkpoint",
        Refusal::UnknownLog => "unknown_log",
        Refusal::Signature(_) => "bad_signature",
        Refusal::Proof(_) | Refusal::EmptyRoot => "inconsistent",
        Refusal::Contended => "contended",
    };
    error(status, code, refusal.to_string())
}

async fn checkpoint(State(witness): State<Arc<Witness>>, Path(hash): Path<String>) -> Response {
    let well_formed =
        hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !well_formed {
        return error(StatusCode::NOT_FOUND, "not_found", "no such log");
    }
    match witness.store().latest_note_by_hash(&hash).await {
        Ok(Some(note)) => text(StatusCode::OK, note, "text/plain; charset=utf-8"),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this witness cosigned no checkpoint of that log",
        ),
        Err(err) => {
            tracing::error!(%err, "reading a checkpoint");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}

/// `GET /evidence`'s body.
#[derive(Debug, Serialize)]
pub struct EvidenceList {
    /// The witness's name.
    pub witness: String,
    /// The evidence, newest first.
    pub evidence: Vec<Evidence>,
}

async fn evidence(State(witness): State<Arc<Witness>>) -> Response {
    match witness.store().evidence(EVIDENCE_PAGE).await {
        Ok(evidence) => axum::Json(EvidenceList {
            witness: witness.name().to_owned(),
            evidence,
        })
        .into_response(),
        Err(err) => {
            tracing::error!(%err, "reading evidence");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}
