//! The web view, served by `proctor serve` itself: the public log, an attestation page per
//! job, one eval's history across model versions, and the signed-in views' shell.
//!
//! # Map
//!
//! | module | holds |
//! | --- | --- |
//! | [`assets`] | the scripts and styles, embedded in the binary, served at `/assets/{name}` |
//! | [`layout`] | the page shell, the security headers every page carries, error pages |
//! | [`signed`] | figures read from a logged statement by path, rendered as the browser re-checks them |
//! | [`chart`] | server-drawn SVG: means with their 95% intervals |
//! | [`log_page`] | `/`: the head, its checkpoint, the entries newest first, search and paging |
//! | [`job_page`] | `/jobs/{id}`: what ran and what was released, pre-registration beside result, and the browser's checks |
//! | [`history_page`] | `/evals/{sha256}`: one eval's metric across the models and versions it ran on |
//! | [`app_page`] | `/app`: the signed-in views' shell; `app.js` does the rest with the visitor's token |
//!
//! # Why it is built this way
//!
//! Every public page is HTML rendered here, readable without JavaScript; the figures on it are
//! what the log's statements say. With JavaScript, the attestation page checks in the
//! visitor's browser what the server only asserts: the DSSE signature under the service key
//! (its id shown to compare, and pinnable), the checkpoint's signature, the entry's inclusion
//! proof, and that every figure the page shows is the signed one (`assets/verify.js`, an
//! implementation independent of `proctor-attest`, tested against it). No page holds a
//! secret: the signed-in views keep the visitor's token in the tab's session storage and call
//! the API with it; it is never in a URL or a cookie. The Content-Security-Policy allows
//! scripts, styles and fetches from this origin only, and no inline code.

pub mod app_page;
pub mod assets;
pub mod chart;
pub mod history_page;
pub mod job_page;
pub mod layout;
pub mod log_page;
pub mod signed;

use axum::Router;
use axum::middleware;
use axum::routing::get;

use crate::state::AppState;

/// The pages and their assets, outside `/v1` (and outside the API description: they are
/// HTML for people, over the same public reads the API serves).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(log_page::page))
        .route("/jobs/{id}", get(job_page::page))
        .route("/evals/{sha256}", get(history_page::page))
        .route("/app", get(app_page::page))
        .route("/assets/{name}", get(assets::serve))
        .layer(middleware::map_response(layout::security_headers))
}
