//! Proctor's HTTP service: the API (axum), bearer-token authentication with roles, and the
//! workers that run jobs from the queue.
//!
//! # Map
//!
//! | module | holds |
//! | --- | --- |
//! | [`state`] | [`Config`] (read once), [`App`], [`AppState`] |
//! | [`startup`] | [`Server::start`]: data directory, keys, store, first admin, workers |
//! | [`error`] | [`ApiError`]: every error body, one `IntoResponse` |
//! | [`extract`] | the bearer-token [`Caller`](extract::Caller); body, path and query extractors whose rejections are [`ApiError`]s |
//! | [`routes`] | handlers: accounts, models, evals and datasets, grants, approvals, usage, jobs, public reads |
//! | [`worker`] | claim, lease renewal, run, finish with a signed result |
//! | [`attest`] | the pre-registration and result statements; a pre-registration read back from the log |
//! | [`ending`] | the one way a job ends (`end_job`), and a revocation's endings |
//! | [`clock`] | the injectable clock, and the time grid an evaluator sees a job's times on |
//! | [`sealing`] | vendor credentials at rest (AES-256-GCM) |
//! | [`metered`] | the job's model: each query reserved from the grant's budgets and settled |
//! | [`running`] | this process's running jobs, for revocation to stop at once |
//! | [`metrics`] | Prometheus counters |
//! | [`openapi`] | the API description served at `/openapi.json` |
//!
//! # Invariants
//!
//! - Every route under `/v1` that is not a public read takes a [`Caller`](extract::Caller)
//!   and checks its role; resources of another account answer 404, as if absent.
//! - No route returns a model credential, sealed or open; a token's secret appears only in
//!   the response that created it.
//! - A 5xx body never carries details; they go to the log.
//! - A job's pre-registration commits with the job, and its result commits with its final
//!   status, through the store's transactions.
//! - Under a private policy (`dp_epsilon`) nothing an evaluator can read of a job depends on
//!   model outputs except through the release: no live progress, no attempts, times on the
//!   policy's grid from the injected clock, the end padded to the grid, reasons from a fixed
//!   set of texts ([`attest::Reason`]), and `/metrics` counts such a job's samples only when it
//!   ran to its end.

pub mod attest;
pub mod clock;
pub mod ending;
pub mod error;
pub mod extract;
pub mod metered;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod running;
pub mod sealing;
pub mod startup;
pub mod state;
pub mod worker;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use tracing::Instrument;

pub use error::{ApiError, ApiResult};
pub use startup::{Server, StartError};
pub use state::{App, AppState, BodyLimits, BuildModel, Config, ConfiguredModels};

use routes::{accounts, approvals, artifacts, grants, jobs, models, public, usage};

/// The HTTP API over `state`, testable without a socket.
pub fn app(state: AppState) -> Router {
    let limits = state.config.limits;
    let v1 = Router::new()
        .route(
            "/accounts",
            post(accounts::create_account).get(accounts::list_accounts),
        )
        .route("/accounts/{id}", get(accounts::get_account))
        .route(
            "/accounts/{id}/tokens",
            post(accounts::create_token).get(accounts::list_tokens),
        )
        .route("/tokens/{id}", delete(accounts::revoke_token))
        .route("/me", get(accounts::me))
        .route("/models", post(models::register).get(models::list))
        .route("/models/{id}", get(models::get))
        .route("/models/{id}/ledger", put(models::set_ledger))
        .route(
            "/evals",
            post(artifacts::upload_eval)
                .layer(DefaultBodyLimit::max(limits.component))
                .get(artifacts::list_evals),
        )
        .route("/evals/{id}", get(artifacts::get_eval))
        .route(
            "/datasets",
            post(artifacts::upload_dataset)
                .layer(DefaultBodyLimit::max(limits.dataset))
                .get(artifacts::list_datasets),
        )
        .route("/datasets/{id}", get(artifacts::get_dataset))
        .route("/grants", post(grants::create).get(grants::list))
        .route("/grants/{id}", get(grants::get))
        .route("/grants/{id}/revoke", post(grants::revoke))
        .route("/grants/{id}/budget", get(grants::budget))
        .route("/approvals", get(approvals::list))
        .route("/approvals/{id}/component", get(approvals::component))
        .route("/approvals/{id}/approve", post(approvals::approve))
        .route("/approvals/{id}/reject", post(approvals::reject))
        .route("/usage", get(usage::report))
        .route("/jobs", post(jobs::submit).get(jobs::list))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/result", get(jobs::result))
        .route("/attestations/{id}", get(public::attestation))
        .route(
            "/attestations/{id}/envelope",
            get(public::attestation_envelope),
        )
        .route("/log/checkpoint", get(public::log_checkpoint))
        .route("/log/entries", get(public::log_entries))
        .route("/log/entries/{id}", get(public::log_entry))
        .route("/log/proof/inclusion", get(public::inclusion_proof))
        .route("/log/proof/consistency", get(public::consistency_proof))
        .route("/public-key", get(public::public_key));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(public::healthz))
        .route("/metrics", get(public::metrics))
        .route("/openapi.json", get(public::openapi))
        .fallback(not_found)
        // JSON bodies (and anything without a route-specific limit) stay small.
        .layer(DefaultBodyLimit::max(limits.json))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "no_route",
        "no such route",
    )
}

/// Counts requests by method, matched route (never the raw path, which holds ids) and status.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!("http", method = %method, route = %route);
    let response = next.run(req).instrument(span).await;
    if response.status().is_server_error() {
        // The details were logged where the error was made; this ties them to the route.
        tracing::warn!(%method, %route, status = %response.status(), "request failed");
    }
    state
        .metrics
        .http_requests
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    response
}
