//! `/`: the public log. Its head and the checkpoint the service signs of it, the service key
//! to compare, the entries newest first with what each is about, a search by eval, dataset or
//! model, and paging by index.

use std::str::FromStr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use maud::{Markup, html};
use proctor_core::digest::Sha256Digest;
use proctor_store::{EntryFilter, EntryKind, LogEntry};
use serde::{Deserialize, Serialize};

use crate::routes::public::served_checkpoint;
use crate::state::AppState;
use crate::web::layout::{PageError, Section, column_heads, shell};
use crate::web::signed::{Signed, text};

/// Entries per page.
pub const PAGE: u32 = 50;

/// The page's query: a search and a position, all optional. Kept as text, so a bad value is
/// this page's 400 with a sentence, not a JSON rejection.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct LogQuery {
    /// Entries below this index (older ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// An eval component's SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<String>,
    /// A dataset's SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// A model's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `accepted` or `result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// An empty form field counts as not given.
fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn digest(field: &Option<String>, what: &str) -> Result<Option<Sha256Digest>, PageError> {
    given(field)
        .map(|hex| {
            Sha256Digest::from_str(&hex.to_ascii_lowercase()).map_err(|_| {
                PageError::bad_request(format!("the {what} digest must be 64 hexadecimal digits"))
            })
        })
        .transpose()
}

impl LogQuery {
    fn filter(&self) -> Result<EntryFilter, PageError> {
        let kind = match given(&self.kind) {
            None => None,
            Some("accepted") => Some(EntryKind::Accepted),
            Some("result") => Some(EntryKind::Result),
            Some(_) => return Err(PageError::bad_request("kind must be accepted or result")),
        };
        let model = given(&self.model).map(str::to_owned);
        if model.as_ref().is_some_and(|m| m.len() > 256) {
            return Err(PageError::bad_request("a model name has at most 256 bytes"));
        }
        Ok(EntryFilter {
            eval: digest(&self.eval, "eval")?,
            dataset: digest(&self.dataset, "dataset")?,
            model,
            kind,
        })
    }

    fn before(&self) -> Result<Option<u64>, PageError> {
        given(&self.before)
            .map(|b| {
                b.parse::<u64>()
                    .ok()
                    .filter(|b| *b <= i64::MAX as u64)
                    .ok_or_else(|| PageError::bad_request("before must be a log index"))
            })
            .transpose()
    }

    /// This search's URL, positioned below `before`.
    fn url_before(&self, before: Option<u64>) -> String {
        let query = LogQuery {
            before: before.map(|b| b.to_string()),
            ..self.clone()
        };
        match serde_urlencoded::to_string(&query) {
            Ok(q) if !q.is_empty() => format!("/?{q}"),
            _ => "/".to_owned(),
        }
    }
}

/// `GET /`.
pub async fn page(
    State(state): State<AppState>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let Query(query) = query.map_err(|e| PageError::bad_request(e.body_text()))?;
    let filter = query.filter()?;
    let before = query.before()?;
    let (head, checkpoint) = served_checkpoint(&state).await?;
    let entries = state
        .store
        .log_entries_matching(&filter, before, PAGE)
        .await
        .map_err(crate::ApiError::from)?;
    let searching = filter != EntryFilter::default();
    let body = html! {
        h1 { "The transparency log" }
        p.lede {
            "Every job is logged when it is accepted, before it runs, and again when it ends, "
            "as a signed in-toto statement. Entries are never changed; the head below commits "
            "to all of them."
        }
        section aria-labelledby="head-title" {
            h2 #head-title { "Head" }
            dl.facts {
                dt { "Entries" } dd #log-size { (head.size) }
                dt { "Root hash (SHA-256)" } dd { code.digest { (hex::encode(head.root)) } }
                dt { "Service key id" } dd { code.digest #key-id { (state.key.key_id()) } }
            }
            details {
                summary { "The signed checkpoint" }
                pre.note { (checkpoint) }
            }
            p.links {
                a href="/v1/log/checkpoint" { "checkpoint" } " · "
                a href="/v1/public-key" { "public key (PEM)" } " · "
                a href="/log/checkpoint" { "tlog-tiles" } " · "
                a href="/v1/log/entries" { "entries (JSON)" }
            }
        }
        section aria-labelledby="search-title" {
            h2 #search-title { "Search" }
            (search_form(&query))
        }
        section aria-labelledby="entries-title" {
            h2 #entries-title {
                @if searching { "Matching entries" } @else { "Entries, newest first" }
            }
            @if entries.is_empty() {
                p #no-entries { "No entries." }
            } @else {
                (entry_table(&entries))
            }
            nav.paging aria-label="Pages" {
                @if before.is_some() {
                    a href=(query.url_before(None)) { "Newest" }
                }
                @if entries.len() == PAGE as usize
                    && let Some(last) = entries.last()
                    && last.index > 0 {
                    a rel="next" href=(query.url_before(Some(last.index))) { "Older entries" }
                }
            }
        }
    };
    Ok(shell("Log", Section::Log, &[], body))
}

fn search_form(query: &LogQuery) -> Markup {
    let kind = given(&query.kind).unwrap_or("");
    html! {
        form.search method="get" action="/" role="search" {
            div {
                label for="q-eval" { "Eval digest" }
                input #q-eval name="eval" inputmode="latin" spellcheck="false" autocomplete="off"
                    pattern="[0-9a-fA-F]{64}" placeholder="64 hex digits"
                    value=[given(&query.eval)];
            }
            div {
                label for="q-dataset" { "Dataset digest" }
                input #q-dataset name="dataset" spellcheck="false" autocomplete="off"
                    pattern="[0-9a-fA-F]{64}" placeholder="64 hex digits"
                    value=[given(&query.dataset)];
            }
            div {
                label for="q-model" { "Model name" }
                input #q-model name="model" spellcheck="false" autocomplete="off"
                    value=[given(&query.model)];
            }
            div {
                label for="q-kind" { "Kind" }
                select #q-kind name="kind" {
                    option value="" selected[kind.is_empty()] { "both" }
                    option value="result" selected[kind == "result"] { "results" }
                    option value="accepted" selected[kind == "accepted"] { "pre-registrations" }
                }
            }
            div.actions {
                button type="submit" { "Search" }
                a href="/" { "Clear" }
            }
        }
    }
}

/// One row per entry, each with what its statement says it is about.
fn entry_table(entries: &[LogEntry]) -> Markup {
    html! {
        table.entries {
            caption.visually-hidden { "Log entries" }
            (column_heads(&["#", "Kind", "Eval", "Model", "Outcome", "Time (UTC)", "Job"]))
            tbody {
                @for entry in entries {
                    (entry_row(entry))
                }
            }
        }
    }
}

fn entry_row(entry: &LogEntry) -> Markup {
    let job = entry.job.to_string();
    let Some(s) = Signed::of(entry) else {
        return html! {
            tr data-index=(entry.index) {
                td { (entry.index) } td colspan="6" { "This entry's statement does not parse." }
            }
        };
    };
    let p = |path: &str| text(s.at(&format!("predicate.{path}")));
    let (kind, outcome, time) = match entry.kind {
        EntryKind::Accepted => ("pre-registration", "accepted".to_owned(), p("accepted_at")),
        EntryKind::Result => ("result", p("status"), p("finished_at")),
    };
    let eval_sha = p("eval.sha256");
    let model = p("model.name");
    html! {
        tr data-index=(entry.index) data-kind=(entry.kind.as_str()) {
            td { a href={ "/v1/log/entries/" (entry.index) } { (entry.index) } }
            td { (kind) }
            td { a href={ "/evals/" (eval_sha) } { (p("eval.name")) " " (p("eval.version")) } }
            td {
                a href={ "/?" (serde_urlencoded::to_string([("model", &model)]).unwrap_or_default()) } { (model) }
                " " span.muted { (p("model.version")) }
            }
            td { span class={ "status status-" (outcome) } { (outcome) } }
            td { time datetime=(time) { (time.replace('T', " ").trim_end_matches('Z')) } }
            td { a href={ "/jobs/" (job) } { code { (job.get(..8).unwrap_or(&job)) } } }
        }
    }
}
