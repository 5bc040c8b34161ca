//! `/jobs/{id}`: one job's attestation as a person reads it. What ran (eval, dataset, model
//! and version, policy), what was released (sample counts, metrics with their intervals as a
//! chart, the release's mechanism, epsilon and noise), the leakage bound, the model identity
//! check, and the pre-registration beside the result with their times. Every figure comes
//! from the logged statements; `job.js` checks them in the browser (the verification panel).

use axum::extract::{Path, State};
use axum::response::Html;
use maud::{Markup, html};
use proctor_store::{EntryKind, JobId};

use crate::state::AppState;
use crate::web::chart::{Point, forest};
use crate::web::layout::{PageError, Section, column_heads, shell};
use crate::web::signed::{Signed, segment, text};

/// `GET /jobs/{id}`.
pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Html<String>, PageError> {
    let job: JobId = id
        .parse()
        .map_err(|_| PageError::not_found("no job has this id"))?;
    let accepted = state
        .reads
        .job_entry(&state, job, EntryKind::Accepted)
        .await?
        .ok_or_else(|| PageError::not_found("no job has this id"))?;
    let result = state
        .reads
        .job_entry(&state, job, EntryKind::Result)
        .await?;
    let accepted = Signed::of(&accepted)
        .ok_or_else(|| PageError::not_found("this job's pre-registration does not parse"))?;
    let result = result.as_deref().and_then(Signed::of);
    // The figures that both entries state are shown from the result when there is one.
    let main = result.as_ref().unwrap_or(&accepted);
    let p = |path: &str| text(main.at(&format!("predicate.{path}")));
    let title = format!(
        "{} {} on {} {}",
        p("eval.name"),
        p("eval.version"),
        p("model.name"),
        p("model.version")
    );
    let status = result
        .as_ref()
        .map_or("not ended".to_owned(), |r| text(r.at("predicate.status")));
    let body = html! {
        header.job-head {
            p.kicker { "Attestation" }
            h1 { (title) }
            p {
                span class={ "status status-" (status.replace(' ', "-")) } #job-status { (status) }
                " · job " code { (id) }
            }
            @if let Some(r) = &result && r.at("predicate.reason").is_some() {
                p.reason { "Reason: " (r.figure("predicate.reason")) }
            }
        }
        (verification(&state, &id, result.is_some()))
        (what_ran(main, &accepted))
        @if let Some(r) = &result {
            (released(r))
            (samples_and_usage(r))
            (release_terms(r))
            (identity(r))
        }
        (leakage(main))
        (pair(&id, &accepted, result.as_ref()))
    };
    Ok(shell(&title, Section::Log, &["job.js"], body))
}

/// The browser's checks, each pending until `job.js` runs them; without JavaScript, how to
/// run them offline.
fn verification(state: &AppState, id: &str, has_result: bool) -> Markup {
    let entries: &[(&str, &str)] = if has_result {
        &[
            ("result", "The result"),
            ("accepted", "The pre-registration"),
        ]
    } else {
        &[("accepted", "The pre-registration")]
    };
    html! {
        section #verification .panel aria-labelledby="verification-title"
            data-job=(id) data-has-result=(has_result) {
            h2 #verification-title { "Verification in this browser" }
            p #verdict data-status="pending" aria-live="polite" {
                "Not checked yet: the checks run in your browser with JavaScript."
            }
            dl.facts {
                dt { "Service key id (SHA-256 of the key)" }
                dd { code.digest #served-key-id { (state.key.key_id()) } }
                dt { "Key id your browser computed" }
                dd { code.digest #computed-key-id { "—" } }
            }
            form #pin-form .pin {
                label for="pin" { "Pin a key id (kept in this browser; every check then requires it)" }
                input #pin name="pin" spellcheck="false" autocomplete="off" pattern="[0-9a-fA-F]{64}"
                    placeholder="64 hex digits";
                button type="submit" { "Pin" }
                button type="button" #unpin { "Forget pin" }
            }
            @for (entry, name) in entries {
                h3 { (name) }
                ol.checks data-entry=(entry) {
                    @for (check, what) in CHECKS {
                        li data-check=(check) data-status="pending" {
                            span.check-name { (what) } ": "
                            span.check-detail { "not checked" }
                        }
                    }
                }
            }
            noscript {
                p {
                    "Without JavaScript, check it offline: "
                    code { "proctor attestation get " (id) " --out DIR" } " then "
                    code { "proctor verify DIR" } "."
                }
            }
        }
    }
}

/// The checks per entry, in the order they run.
const CHECKS: [(&str, &str); 5] = [
    ("key", "The key is the pinned one"),
    ("signature", "DSSE signature by the service key"),
    ("checkpoint", "Checkpoint signed by the same key"),
    ("inclusion", "Included in the log at its index"),
    ("figures", "This page shows the signed figures"),
];

fn what_ran(s: &Signed, accepted: &Signed) -> Markup {
    let eval_sha = text(s.at("predicate.eval.sha256"));
    let dataset_sha = text(s.at("predicate.dataset.sha256"));
    html! {
        section aria-labelledby="ran-title" {
            h2 #ran-title { "What ran" }
            dl.facts {
                dt { "Eval" }
                dd {
                    (s.figure("predicate.eval.name")) " " (s.figure("predicate.eval.version"))
                    br; code.digest { (s.figure("predicate.eval.sha256")) }
                    br; a href={ "/evals/" (eval_sha) } { "this eval's history" }
                }
                dt { "Dataset" }
                dd {
                    (s.figure("predicate.dataset.items")) " items"
                    br; code.digest { (s.figure("predicate.dataset.sha256")) }
                    br; a href={ "/?dataset=" (dataset_sha) } { "jobs over this dataset" }
                }
                dt { "Model" }
                dd {
                    (s.figure("predicate.model.name")) " version " (s.figure("predicate.model.version"))
                    br; "registered by vendor " code { (s.figure("predicate.model.vendor")) }
                    ", named by the job as " code { (s.figure("predicate.model.ref")) }
                }
                dt { "Policy" }
                dd {
                    (s.figure("predicate.policy.name"))
                    br; code.digest { (s.figure("predicate.policy.sha256")) }
                }
                dt { "Evaluator" }
                dd { code { (accepted.figure("predicate.evaluator")) } }
                dt { "Dataset's exposure to this vendor before the job" }
                dd {
                    (s.figure("predicate.exposure.jobs")) " jobs, "
                    (s.figure("predicate.exposure.items")) " items"
                }
            }
        }
    }
}

fn released(r: &Signed) -> Markup {
    let metrics = r.keys("predicate.metrics");
    let number = |path: String| r.at(&path).and_then(serde_json::Value::as_f64);
    let points: Vec<Point> = metrics
        .iter()
        .map(|m| Point {
            label: m.clone(),
            mean: number(format!("predicate.metrics.{}.mean", segment(m))),
            ci95: number(format!("predicate.metrics.{}.ci95.0", segment(m)))
                .zip(number(format!("predicate.metrics.{}.ci95.1", segment(m))))
                .map(|(lo, hi)| [lo, hi]),
            href: None,
        })
        .collect();
    html! {
        section aria-labelledby="metrics-title" {
            h2 #metrics-title { "Released metrics" }
            @if metrics.is_empty() {
                p { "No metric was released." }
            } @else {
                table.metrics {
                    caption.visually-hidden { "Released metrics" }
                    (column_heads(&["Metric", "n", "Mean", "Std. error", "95% interval"]))
                    tbody {
                        @for m in &metrics {
                            @let at = |field: &str| format!("predicate.metrics.{}.{field}", segment(m));
                            tr data-metric=(m) {
                                th scope="row" { (m) }
                                td.num { (r.figure(&at("n"))) }
                                td.num { (r.figure(&at("mean"))) }
                                td.num { (r.figure(&at("stderr"))) }
                                td.num { "[" (r.figure(&at("ci95.0"))) ", " (r.figure(&at("ci95.1"))) "]" }
                            }
                        }
                    }
                }
                figure {
                    (forest("Released means with their 95% intervals", &points))
                    figcaption { "Each metric's released mean (dot) and 95% interval (bar)." }
                }
            }
        }
    }
}

/// The keys of an object of counts at `path`, as rows.
fn count_rows(r: &Signed, path: &str, label: &str) -> Markup {
    html! {
        @for key in r.keys(path) {
            tr {
                th scope="row" { (label) " (" (key.replace('_', " ")) ")" }
                td.num { (r.figure(&format!("{path}.{}", segment(&key)))) }
            }
        }
    }
}

fn samples_and_usage(r: &Signed) -> Markup {
    html! {
        section.two aria-labelledby="samples-title" {
            div {
                h2 #samples-title { "Samples" }
                table.counts {
                    tbody {
                        tr { th scope="row" { "Total" } td.num { (r.figure("predicate.samples.total")) } }
                        tr { th scope="row" { "Ok" } td.num { (r.figure("predicate.samples.ok")) } }
                        (count_rows(r, "predicate.samples.failed", "Failed"))
                        (count_rows(r, "predicate.samples.trapped", "Trapped"))
                    }
                }
            }
            div {
                h2 { "Usage" }
                table.counts {
                    tbody {
                        tr { th scope="row" { "Queries" } td.num { (r.figure("predicate.usage.queries")) } }
                        tr { th scope="row" { "Input tokens" } td.num { (r.figure("predicate.usage.input_tokens")) } }
                        tr { th scope="row" { "Output tokens" } td.num { (r.figure("predicate.usage.output_tokens")) } }
                    }
                }
            }
        }
    }
}

fn release_terms(r: &Signed) -> Markup {
    html! {
        section aria-labelledby="release-title" {
            h2 #release-title { "How the figures were released" }
            @if r.at("predicate.release").is_none_or(serde_json::Value::is_null) {
                p { "The job ended before a release." }
            } @else {
                dl.facts {
                    dt { "Release" } dd { (r.figure("predicate.release.status")) }
                    @if r.at("predicate.release.reason").is_some() {
                        dt { "Why" } dd { (r.figure("predicate.release.reason")) }
                    }
                    dt { "Mechanism" } dd { (r.figure("predicate.release.mechanism")) }
                    dt { "Epsilon (differential privacy)" } dd { (r.figure("predicate.release.epsilon")) }
                    dt { "Grid" } dd { "10" sup { "−" (r.figure("predicate.release.decimals")) } " of each metric's range" }
                    dt { "Minimum samples" } dd { (r.figure("predicate.release.min_samples")) }
                }
                @let noise = r.keys("predicate.release.noise");
                @if !noise.is_empty() {
                    table.counts {
                        caption { "Noise scales (Laplace b, on the release grid)" }
                        tbody {
                            @for key in &noise {
                                tr {
                                    th scope="row" { (key) }
                                    td.num { (r.figure(&format!("predicate.release.noise.{}", segment(key)))) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn identity(r: &Signed) -> Markup {
    html! {
        section aria-labelledby="identity-title" {
            h2 #identity-title { "Model identity" }
            p {
                "Identity canaries before and after the job: the model that answered was "
                @match r.str("predicate.model_identity.verdict") {
                    Some("same") => "the registered one",
                    Some("changed") => strong { "not the registered one" },
                    _ => "not checked",
                }
                " (verdict " (r.figure("predicate.model_identity.verdict")) ")."
            }
            dl.facts {
                dt { "Test" } dd { (r.figure("predicate.model_identity.test")) }
                dt { "Probe queries" } dd { (r.figure("predicate.model_identity.queries")) }
                dt { "Mismatches" } dd { (r.figure("predicate.model_identity.mismatches")) }
                dt { "p-value" } dd { (r.figure("predicate.model_identity.p_value")) }
            }
        }
    }
}

fn leakage(s: &Signed) -> Markup {
    let channels = s.keys("predicate.leakage.channels");
    html! {
        section aria-labelledby="leakage-title" {
            h2 #leakage-title { "Leakage bound" }
            p {
                "At most " strong { (s.figure("predicate.leakage.bits_max")) " bits" }
                " about model outputs can reach the evaluator through everything it sees of this "
                "job, fixed before the job ran."
            }
            @if !channels.is_empty() {
                table.counts {
                    caption { "Bits per channel" }
                    tbody {
                        @for c in &channels {
                            tr {
                                th scope="row" { (c.replace('_', " ")) }
                                td.num { (s.figure(&format!("predicate.leakage.channels.{}", segment(c)))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The pre-registration beside the result: the same job, logged twice, with the times.
fn pair(id: &str, accepted: &Signed, result: Option<&Signed>) -> Markup {
    html! {
        section aria-labelledby="pair-title" {
            h2 #pair-title { "Pre-registration and result" }
            div.pair {
                article {
                    h3 { "Pre-registration" }
                    dl.facts {
                        dt { "Log entry" } dd { a href={ "/v1/log/entries/" (accepted.index) } { (accepted.figure("predicate.log_index")) } }
                        dt { "Predicate" } dd { (accepted.predicate_type()) }
                        dt { "Accepted" } dd { (accepted.figure("predicate.accepted_at")) }
                        dt { "Service" } dd { (accepted.figure("predicate.service_version")) }
                    }
                    p.links { a href={ "/v1/attestations/" (id) "?kind=accepted" } { "attestation (JSON)" } }
                }
                article {
                    h3 { "Result" }
                    @if let Some(r) = result {
                        dl.facts {
                            dt { "Log entry" } dd { a href={ "/v1/log/entries/" (r.index) } { (r.figure("predicate.log_index")) } }
                            dt { "Predicate" } dd { (r.predicate_type()) }
                            dt { "Started" } dd { (r.figure("predicate.started_at")) }
                            dt { "Finished" } dd { (r.figure("predicate.finished_at")) }
                            dt { "Pairs with entry" } dd { (r.figure("predicate.accepted_log_index")) }
                            dt { "Service" } dd { (r.figure("predicate.service_version")) }
                        }
                        p.links {
                            a href={ "/v1/attestations/" (id) } { "attestation (JSON)" } " · "
                            a href={ "/v1/attestations/" (id) "/envelope" } { "envelope" } " · "
                            a href={ "/v1/attestations/" (id) "/tlog-proof" } { "tlog-proof" }
                        }
                    } @else {
                        p { "Not logged yet: the job has not ended." }
                    }
                }
            }
        }
    }
}
