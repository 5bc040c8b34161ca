//! `/evals/{sha256}`: one eval's history. Its results across the models and versions it ran
//! on, oldest first, one metric at a time, as a chart and a table, each row linking to its
//! attestation page.

use std::collections::BTreeSet;
use std::str::FromStr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use maud::html;
use proctor_core::digest::Sha256Digest;
use proctor_store::{EntryFilter, EntryKind};
use serde::Deserialize;

use crate::state::AppState;
use crate::web::chart::{Point, forest};
use crate::web::layout::{PageError, Section, column_heads, shell};
use crate::web::signed::{Signed, segment, text};

/// The newest results a history shows.
pub const HISTORY: u32 = 500;

/// Which metric to chart (the first, by name, when not given).
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    /// A metric's name.
    pub metric: Option<String>,
}

/// `GET /evals/{sha256}`.
pub async fn page(
    State(state): State<AppState>,
    Path(sha): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let Query(query) = query.map_err(|e| PageError::bad_request(e.body_text()))?;
    let digest = Sha256Digest::from_str(&sha.to_ascii_lowercase())
        .map_err(|_| PageError::not_found("an eval is named by its 64-digit SHA-256"))?;
    let filter = EntryFilter {
        eval: Some(digest),
        kind: Some(EntryKind::Result),
        ..EntryFilter::default()
    };
    let entries = state
        .store
        .log_entries_matching(&filter, None, HISTORY)
        .await
        .map_err(crate::ApiError::from)?;
    // Oldest first: a history reads left to right, top to bottom.
    let results: Vec<Signed> = entries.iter().rev().filter_map(Signed::of).collect();
    let Some(first) = results.last() else {
        return Err(PageError::not_found("no result of this eval is in the log"));
    };
    let name = format!(
        "{} {}",
        text(first.at("predicate.eval.name")),
        text(first.at("predicate.eval.version"))
    );
    let metrics: BTreeSet<String> = results
        .iter()
        .flat_map(|r| r.keys("predicate.metrics"))
        .collect();
    let metric = match query.metric.filter(|m| !m.is_empty()) {
        Some(m) if metrics.contains(&m) => Some(m),
        Some(_) => return Err(PageError::not_found("this eval released no such metric")),
        None => metrics.iter().next().cloned(),
    };
    let at = |r: &Signed, field: &str| {
        metric
            .as_ref()
            .and_then(|m| r.at(&format!("predicate.metrics.{}.{field}", segment(m))))
            .and_then(serde_json::Value::as_f64)
    };
    let label = |r: &Signed| {
        format!(
            "{} {}",
            text(r.at("predicate.model.name")),
            text(r.at("predicate.model.version"))
        )
    };
    let points: Vec<Point> = results
        .iter()
        .map(|r| Point {
            label: label(r),
            mean: at(r, "mean"),
            ci95: at(r, "ci95.0")
                .zip(at(r, "ci95.1"))
                .map(|(lo, hi)| [lo, hi]),
            href: Some(format!("/jobs/{}", text(r.at("predicate.job_id")))),
        })
        .collect();
    let body = html! {
        h1 { "History of " (name) }
        p.lede {
            "Results of this eval component across the models and versions it ran on, oldest first"
            @if entries.len() == HISTORY as usize { " (the newest " (HISTORY) ")" }
            ". Component " code.digest { (digest) } "."
        }
        @if metrics.len() > 1 {
            form.search method="get" {
                label for="metric" { "Metric" }
                select #metric name="metric" {
                    @for m in &metrics {
                        option value=(m) selected[Some(m) == metric.as_ref()] { (m) }
                    }
                }
                button type="submit" { "Show" }
            }
        }
        @if let Some(m) = &metric {
            figure {
                (forest(&format!("{m}: released means with their 95% intervals, by model and version"), &points))
                figcaption { (m) ": each result's released mean (dot) and 95% interval (bar)." }
            }
        } @else {
            p { "No result of this eval released a metric." }
        }
        table.history {
            caption.visually-hidden { "Results" }
            (column_heads(&["Model", "Version", "Status", "Mean", "95% interval", "n", "Finished (UTC)", "Attestation"]))
            tbody {
                @for r in &results {
                    @let job = text(r.at("predicate.job_id"));
                    @let field = |f: &str| text(metric.as_ref().and_then(|m| r.at(&format!("predicate.metrics.{}.{f}", segment(m)))));
                    tr {
                        td { (text(r.at("predicate.model.name"))) }
                        td { (text(r.at("predicate.model.version"))) }
                        td { (text(r.at("predicate.status"))) }
                        td.num { (field("mean")) }
                        td.num { "[" (field("ci95.0")) ", " (field("ci95.1")) "]" }
                        td.num { (field("n")) }
                        td { (text(r.at("predicate.finished_at"))) }
                        td { a href={ "/jobs/" (job) } { code { (job.get(..8).unwrap_or(&job)) } } }
                    }
                }
            }
        }
    };
    Ok(shell(
        &format!("History of {name}"),
        Section::Log,
        &[],
        body,
    ))
}
