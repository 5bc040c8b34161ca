//! The web view over real HTTP: the pages are HTML with the security headers, readable
//! without JavaScript, and every figure they mark is the logged statement's value at its
//! path; the log page searches and pages; bad input is a 400 or 404 page; the assets are
//! embedded and nothing else is served under `/assets/`.

use std::time::Duration;

use proctor_server::web::layout::CONTENT_SECURITY_POLICY;
use proctor_server::web::signed::text;
use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_SECURITY_POLICY as CSP, CONTENT_TYPE, HeaderMap, X_CONTENT_TYPE_OPTIONS,
};
use serde_json::{Value, json};

use crate::common::{TestDb, TestServer, str_of};

async fn get(s: &TestServer, path: &str) -> anyhow::Result<(StatusCode, HeaderMap, String)> {
    let response = s.client.get(format!("{}{path}", s.base)).send().await?;
    let (status, headers) = (response.status(), response.headers().clone());
    Ok((status, headers, response.text().await?))
}

/// A page that answered 200 as HTML under the strict policy: its body.
async fn page(s: &TestServer, path: &str) -> anyhow::Result<String> {
    let (status, headers, body) = get(s, path).await?;
    anyhow::ensure!(status == StatusCode::OK, "{path}: {status} {body}");
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    anyhow::ensure!(
        header(CONTENT_TYPE).starts_with("text/html"),
        "{path}: {:?}",
        header(CONTENT_TYPE)
    );
    anyhow::ensure!(
        header(CSP) == CONTENT_SECURITY_POLICY,
        "{path}: CSP {:?}",
        header(CSP)
    );
    anyhow::ensure!(header(X_CONTENT_TYPE_OPTIONS) == "nosniff", "{path}");
    // Nothing inline that the policy would block: every script has a source, no style
    // attribute, no event handler attribute.
    for (i, _) in body.match_indices("<script") {
        let tag = &body[i..i + body[i..].find('>').unwrap_or(0)];
        anyhow::ensure!(
            tag.contains(" src=\"/assets/"),
            "{path}: inline script {tag}"
        );
    }
    anyhow::ensure!(!body.contains(" style=\""), "{path}: a style attribute");
    anyhow::ensure!(
        !body.contains(" onclick=") && !body.contains(" onload="),
        "{path}: a handler"
    );
    Ok(body)
}

fn unescape(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Every `<span data-entry=E data-path=P>TEXT</span>` of a page.
fn figures(html: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for (i, _) in html.match_indices("<span data-entry=\"") {
        let rest = &html[i + "<span data-entry=\"".len()..];
        let Some((entry, rest)) = rest.split_once("\" data-path=\"") else {
            continue;
        };
        let Some((path, rest)) = rest.split_once("\">") else {
            continue;
        };
        let Some((shown, _)) = rest.split_once("</span>") else {
            continue;
        };
        found.push((entry.to_owned(), path.to_owned(), unescape(shown)));
    }
    found
}

/// The value at a page's path, read apart from `Signed::at`: `~1` is a dot within a key.
fn at<'a>(statement: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(statement, |v, raw| {
        let key = raw.replace("~1", ".").replace("~0", "~");
        match v {
            Value::Object(map) => map.get(&key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
    })
}

/// The statement of `job`'s entry of `kind`.
async fn statement(s: &TestServer, job: &str, kind: &str) -> anyhow::Result<Value> {
    let (status, view) = s
        .call(
            "GET",
            &format!("/v1/attestations/{job}?kind={kind}"),
            None,
            crate::common::Body::None,
        )
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "{status} {view}");
    let envelope: Value = serde_json::from_str(&str_of(&view, "envelope")?)?;
    let payload = crate::end_to_end::base64_decode(envelope["payload"].as_str().unwrap_or(""))?;
    Ok(serde_json::from_slice(&payload)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pages_show_what_the_log_holds() -> anyhow::Result<()> {
    for db in TestDb::all().await? {
        pages(&db)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        db.cleanup().await?;
    }
    Ok(())
}

async fn pages(db: &TestDb) -> anyhow::Result<()> {
    let s = TestServer::start(db, 1).await?;
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    let other = s.builtin_model(&vendor, "echo", "echo").await?;
    for m in [&model, &other] {
        s.grant(&vendor, m, json!({"tier": "academic"}), json!({}))
            .await?;
    }
    let mut jobs = Vec::new();
    for m in [&model, &other] {
        let (status, job) = s.submit_arith(&evaluator, m).await?;
        anyhow::ensure!(status == StatusCode::CREATED, "{status} {job}");
        let id = str_of(&job, "id")?;
        let view = s
            .wait_ended(&evaluator, &id, Duration::from_secs(60))
            .await?;
        anyhow::ensure!(view["status"] == "succeeded", "{view}");
        jobs.push(id);
    }
    let job = &jobs[0];
    let result = statement(&s, job, "result").await?;
    let accepted = statement(&s, job, "accepted").await?;

    // The attestation page: every marked figure is the signed value at its path, of the
    // entry it names; both entries' figures are there, and the checks await the browser.
    let html = page(&s, &format!("/jobs/{job}")).await?;
    let shown = figures(&html);
    anyhow::ensure!(shown.len() > 40, "only {} figures", shown.len());
    for (entry, path, text_shown) in &shown {
        let signed = match entry.as_str() {
            "result" => &result,
            "accepted" => &accepted,
            other => anyhow::bail!("a figure of entry {other:?}"),
        };
        let value = at(signed, path);
        anyhow::ensure!(value.is_some(), "{path} is not in the {entry} statement");
        anyhow::ensure!(
            &text(value) == text_shown,
            "{path}: shows {text_shown:?}, signed {value:?}"
        );
    }
    for path in [
        "predicate.samples.total",
        "predicate.metrics.accuracy.mean",
        "predicate.leakage.bits_max",
        // A channel's name holds a dot: escaped in the path, not read as two keys.
        "predicate.leakage.channels.metrics~1accuracy",
    ] {
        anyhow::ensure!(
            shown
                .iter()
                .any(|(e, p, t)| e == "result" && p == path && t != "—"),
            "{path} not shown"
        );
    }
    anyhow::ensure!(
        shown
            .iter()
            .any(|(e, p, _)| e == "accepted" && p == "predicate.accepted_at")
    );
    anyhow::ensure!(html.contains(&format!("data-job=\"{job}\" data-has-result=\"true\"")));
    anyhow::ensure!(html.matches("data-status=\"pending\"").count() == 1 + 2 * 5);
    anyhow::ensure!(html.contains("<svg class=\"chart\""), "no chart");
    anyhow::ensure!(html.contains("src=\"/assets/job.js\""));
    anyhow::ensure!(
        html.contains(&format!("proctor attestation get {job} --out DIR")),
        "no offline hint"
    );

    // The log page: newest first, each entry linked to its job and its eval's history.
    let eval_sha = result["predicate"]["eval"]["sha256"].as_str().unwrap_or("");
    let html = page(&s, "/").await?;
    let rows: Vec<usize> = (0..4)
        .map(|i| html.find(&format!("data-index=\"{i}\"")).unwrap_or(0))
        .collect();
    anyhow::ensure!(rows.iter().all(|r| *r > 0), "not every entry: {rows:?}");
    anyhow::ensure!(
        rows[3] < rows[2] && rows[2] < rows[1] && rows[1] < rows[0],
        "not newest first"
    );
    anyhow::ensure!(html.contains(&format!("href=\"/jobs/{job}\"")));
    anyhow::ensure!(html.contains(&format!("href=\"/evals/{eval_sha}\"")));
    anyhow::ensure!(html.contains("<dd id=\"log-size\">4</dd>"), "head size");

    // Search: by model name, by kind, by eval; paging below an index.
    let by_model = page(&s, "/?model=echo").await?;
    anyhow::ensure!(
        by_model.matches("<tr data-index=").count() == 2,
        "{by_model}"
    );
    anyhow::ensure!(
        by_model.contains(&format!("/jobs/{}", jobs[1]))
            && !by_model.contains(&format!("/jobs/{job}\""))
    );
    let results = page(&s, "/?kind=result&eval=").await?;
    anyhow::ensure!(results.matches("data-kind=\"result\"").count() == 2);
    anyhow::ensure!(!results.contains("data-kind=\"accepted\""));
    let by_eval = page(&s, &format!("/?eval={}", eval_sha.to_uppercase())).await?;
    anyhow::ensure!(by_eval.matches("<tr data-index=").count() == 4);
    let older = page(&s, "/?before=1").await?;
    anyhow::ensure!(
        older.matches("<tr data-index=").count() == 1 && older.contains("data-index=\"0\"")
    );
    let none = page(&s, &format!("/?dataset={}", "0".repeat(64))).await?;
    anyhow::ensure!(none.contains("No entries."));

    // The eval's history: both results, oldest first, with a chart linking to each job.
    let html = page(&s, &format!("/evals/{eval_sha}")).await?;
    anyhow::ensure!(html.contains("<svg class=\"chart\""));
    let (a, b) = (
        html.find(&format!("/jobs/{}", jobs[0])),
        html.find(&format!("/jobs/{}", jobs[1])),
    );
    anyhow::ensure!(a.is_some() && b.is_some() && a < b, "history order");
    page(&s, &format!("/evals/{eval_sha}?metric=accuracy")).await?;

    // The signed-in shell and the assets.
    anyhow::ensure!(page(&s, "/app").await?.contains("<div id=\"app\">"));
    for (asset, kind) in [
        ("verify.js", "text/javascript"),
        ("job.js", "text/javascript"),
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("app.css", "text/css"),
    ] {
        let (status, headers, body) = get(&s, &format!("/assets/{asset}")).await?;
        anyhow::ensure!(
            status == StatusCode::OK && !body.is_empty(),
            "{asset}: {status}"
        );
        let served = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        anyhow::ensure!(served.starts_with(kind), "{asset}: {served}");
        anyhow::ensure!(headers.contains_key("etag"), "{asset}: no ETag");
    }

    // Bad input: a sentence on an HTML page with the right status, under the same headers.
    for (path, status, says) in [
        (
            "/?eval=zz",
            StatusCode::BAD_REQUEST,
            "64 hexadecimal digits",
        ),
        ("/?kind=everything", StatusCode::BAD_REQUEST, "kind must be"),
        ("/?before=-1", StatusCode::BAD_REQUEST, "log index"),
        ("/jobs/not-a-job", StatusCode::NOT_FOUND, "no job"),
        (
            "/jobs/00000000-0000-4000-8000-000000000000",
            StatusCode::NOT_FOUND,
            "no job",
        ),
        ("/evals/xyz", StatusCode::NOT_FOUND, "SHA-256"),
        (
            &format!("/evals/{}", "0".repeat(64)),
            StatusCode::NOT_FOUND,
            "no result",
        ),
        (
            &format!("/evals/{eval_sha}?metric=nope"),
            StatusCode::NOT_FOUND,
            "no such metric",
        ),
        ("/assets/nope.js", StatusCode::NOT_FOUND, "no such asset"),
        (
            "/assets/..%2FCargo.toml",
            StatusCode::NOT_FOUND,
            "no such asset",
        ),
    ] {
        let (got, headers, body) = get(&s, path).await?;
        anyhow::ensure!(got == status, "{path}: {got}, not {status}");
        anyhow::ensure!(
            body.contains("role=\"alert\"") && body.contains(says),
            "{path}: {body}"
        );
        anyhow::ensure!(headers.get(CSP).is_some(), "{path}: no CSP");
    }
    // The API's own 404 stays JSON.
    let (status, _, body) = get(&s, "/v1/no-such-route").await?;
    anyhow::ensure!(
        status == StatusCode::NOT_FOUND && body.contains("\"no_route\""),
        "{body}"
    );
    s.stop().await;
    Ok(())
}
