//! Proctor's HTTP service: the API (axum), bearer-token authentication with roles, and the
//! workers that run jobs from the queue.
//!
//! # Map
//!
//! | module | holds |
//! | --- | --- |
//! | [`state`] | [`Config`] (read once), [`App`], [`AppState`] |
//! | [`startup`] | [`Server::start`]: data directory, keys, store, first admin, workers |
//! | [`serving`] | the HTTP/1.1 listener: connection limits (per client, in all), the header timeout |
//! | [`error`] | [`ApiError`]: every error body, one `IntoResponse` |
//! | [`extract`] | the bearer-token [`Caller`](extract::Caller); body (with its deadline), upload (authorized from the head), path and query extractors whose rejections are [`ApiError`]s |
//! | [`caching`] | the public reads' `ETag`, `Cache-Control` and `If-None-Match` (304) |
//! | [`routes`] | handlers: accounts, models, evals and datasets, grants, approvals, usage, jobs, the operator's cancel, public reads |
//! | [`log_guard`] | the head this service last vouched for, kept beside its key; the check that the database's log extends it |
//! | [`rotation`] | `proctor log rotate`: retire the key and begin a new log under a new origin |
//! | [`witnessing`] | witnesses asked to cosign each new head (tlog-witness), their cosignatures, the cosigned checkpoint |
//! | [`worker`] | claim, lease renewal, run, finish with a signed result |
//! | [`identity`] | model identity canaries: enrollment and the background fingerprint at registration, a job's checks before and after, scheduled checks, the vendor's `GET /v1/models/{id}/identity` |
//! | [`attest`] | the pre-registration and result statements; a pre-registration read back from the log |
//! | [`ending`] | the one way a job ends (`end_job`), and a revocation's endings |
//! | [`clock`] | the injectable clock, and the time grid an evaluator sees a job's times on |
//! | [`sealing`] | vendor credentials at rest (AES-256-GCM) |
//! | [`meter`] | a job's meter: reservation blocks leased from its grant, drawn in memory, settled in batches; stops the job when the grant no longer covers it |
//! | [`metered`] | the job's model: each query drawn from the job's meter and settled |
//! | [`running`] | this process's running jobs, for revocation to stop at once |
//! | [`metrics`] | Prometheus counters |
//! | [`read_cache`] | the public reads' memory: immutable entries and proofs, the head shared by requests that arrive together |
//! | [`quotas`] | per-account quotas: stored bytes, uploads per hour, compile time per hour, unfinished jobs |
//! | [`openapi`] | the API description served at `/openapi.json` |
//! | [`web`] | the web view: the public log, attestation and history pages, the signed-in views' shell, their embedded assets |
//!
//! # Invariants
//!
//! - Every route under `/v1` that is not a public read takes a [`Caller`](extract::Caller)
//!   and checks its role; resources of another account answer 404, as if absent.
//! - No route returns a model credential, sealed or open; a token's secret appears only in
//!   the response that created it.
//! - A 5xx body never carries details; they go to the log.
//! - Nothing about the log is signed (a checkpoint, an entry naming its index) unless the
//!   database's log extends the head this service last vouched for ([`log_guard`]).
//! - A job's pre-registration commits with the job, and its result commits with its final
//!   status, through the store's transactions.
//! - Under a private policy (`dp_epsilon`) nothing an evaluator can read of a job depends on
//!   model outputs except through the release: no live progress, no attempts, times on the
//!   policy's grid from the injected clock, the end padded to the grid, reasons from a fixed
//!   set of texts ([`attest::Reason`]), and `/metrics` counts such a job's samples only when it
//!   ran to its end.

pub mod alerts;
pub mod alerts_webhook;
pub mod attest;
pub mod caching;
pub mod clock;
pub mod ending;
pub mod error;
pub mod extract;
pub mod identity;
pub mod log_guard;
pub mod meter;
pub mod metered;
pub mod metrics;
pub mod openapi;
pub mod quotas;
pub mod read_cache;
pub mod rotation;
pub mod routes;
pub mod running;
pub mod sealing;
pub mod serving;
pub mod startup;
pub mod state;
pub mod usage_profile;
pub mod web;
pub mod witnessing;
pub mod worker;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ApiResult};
pub use serving::{ConnectionLimits, serve};
pub use startup::{Server, StartError};
pub use state::{App, AppState, BodyLimits, BuildModel, Config, ConfiguredModels};

use routes::{
    accounts, alerts as alert_routes, approvals, artifacts, cosigned, grants, jobs, models,
    operator, public, tiles, usage,
};

/// The HTTP API over `state`, testable without a socket.
pub fn app(state: AppState) -> Router {
    let limits = state.config.limits;
    let (router, _) = api(limits).split_for_parts();
    router
        .merge(web::routes())
        .fallback(not_found)
        // JSON bodies (and anything without a route-specific limit) stay small.
        .layer(DefaultBodyLimit::max(limits.json))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Every route with its description: each module's handlers say what they take and return,
/// and [`openapi`] serves what they said.
pub fn api(limits: BodyLimits) -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .merge(accounts::routes())
        .merge(alert_routes::routes())
        .merge(models::routes())
        .merge(identity::route::routes())
        .merge(identity::alerts::routes())
        .merge(artifacts::routes(limits))
        .merge(grants::routes())
        .merge(approvals::routes())
        .merge(usage::routes())
        .merge(jobs::routes())
        .merge(operator::routes())
        .merge(public::routes())
        .merge(tiles::v1_routes())
        .merge(cosigned::routes());
    OpenApiRouter::with_openapi(openapi::base())
        .nest("/v1", v1)
        .merge(public::service_routes())
        .merge(tiles::routes())
}

async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "no_route",
        "no such route",
    )
}

/// Counts requests by method, matched route (never the raw path, which holds ids) and status
/// class. Every label comes from a closed set: a client choosing made-up methods or paths
/// must not be able to grow the registry without end.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!("http", method, route = %route);
    let response = next.run(req).instrument(span).await;
    let status = response.status();
    if status.is_server_error() {
        // The details were logged where the error was made; this ties them to the route.
        tracing::warn!(method, %route, %status, "request failed");
    }
    state
        .metrics
        .http_requests
        .with_label_values(&[method, &route, status_class(status)])
        .inc();
    response
}

/// The methods the API routes, by name; any other is `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// `2xx`, `4xx`, ...: the class, since the label set must stay small.
fn status_class(status: axum::http::StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}
