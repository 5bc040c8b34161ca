//! HTTP caching of the public reads over real HTTP: what never changes under its URL (an
//! envelope, an entry by index, a proof between given sizes, a full page of entries) is
//! immutable with its SHA-256 as a strong `ETag`; what grows with the log (the checkpoint, an
//! attestation with its proof to the head, a proof to the head) is `no-cache` with an `ETag`
//! that stops matching once the log has grown; `If-None-Match` is answered 304 without a body;
//! errors and a job's view are never kept for others.

use std::time::Duration;

use proctor_core::Sha256Digest;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderMap, IF_NONE_MATCH};
use serde_json::json;

use crate::common::{TestDb, TestServer, str_of};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// A GET with an optional `If-None-Match`: the status, the headers and the body.
async fn get(
    s: &TestServer,
    path: &str,
    if_none_match: Option<&str>,
) -> anyhow::Result<(StatusCode, HeaderMap, Vec<u8>)> {
    let mut request = s.client.get(format!("{}{path}", s.base));
    if let Some(tags) = if_none_match {
        request = request.header(IF_NONE_MATCH, tags);
    }
    let response = request.send().await?;
    let (status, headers) = (response.status(), response.headers().clone());
    Ok((status, headers, response.bytes().await?.to_vec()))
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `path` answers 200 with `cache_control` and the body's digest as its tag, and 304 without
/// a body to that tag (strong or weak, alone or in a list), and 200 again to another tag.
/// Returns the tag.
async fn cached(s: &TestServer, path: &str, cache_control: &str) -> anyhow::Result<String> {
    let (status, headers, body) = get(s, path, None).await?;
    anyhow::ensure!(status == StatusCode::OK, "{path}: {status}");
    let tag = header(&headers, ETAG).to_owned();
    anyhow::ensure!(
        tag == format!("\"{}\"", Sha256Digest::of(&body).to_hex()),
        "{path}: the tag {tag:?} is not the body's digest"
    );
    anyhow::ensure!(
        header(&headers, CACHE_CONTROL) == cache_control,
        "{path}: Cache-Control {:?}, not {cache_control:?}",
        header(&headers, CACHE_CONTROL)
    );
    for held in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"other\", {tag}"),
        "*".to_owned(),
    ] {
        let (status, headers, body) = get(s, path, Some(&held)).await?;
        anyhow::ensure!(
            status == StatusCode::NOT_MODIFIED,
            "{path} with If-None-Match {held}: {status}"
        );
        anyhow::ensure!(body.is_empty(), "{path}: a 304 with a body");
        anyhow::ensure!(
            header(&headers, ETAG) == tag,
            "{path}: a 304 with another tag"
        );
        anyhow::ensure!(
            header(&headers, CACHE_CONTROL) == cache_control,
            "{path}: a 304 with another Cache-Control"
        );
    }
    let (status, headers, _) = get(s, path, Some("\"other\"")).await?;
    anyhow::ensure!(
        status == StatusCode::OK && header(&headers, ETAG) == tag,
        "{path} with another tag: {status}"
    );
    Ok(tag)
}

/// A vendor granting the arith model to an academic evaluator; the evaluator's token and the
/// model's id.
async fn parties(s: &TestServer) -> anyhow::Result<(String, String)> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    s.grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    Ok((evaluator, model))
}

/// Runs one arith job to `succeeded`; returns its id.
async fn run_job(s: &TestServer, evaluator: &str, model: &str) -> anyhow::Result<String> {
    let (status, job) = s.submit_arith(evaluator, model).await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{status} {job}");
    let id = str_of(&job, "id")?;
    let view = s
        .wait_ended(evaluator, &id, Duration::from_secs(60))
        .await?;
    anyhow::ensure!(view["status"] == "succeeded", "{view}");
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn immutable_reads_are_kept_for_a_year_and_what_grows_with_the_log_is_revalidated()
-> anyhow::Result<()> {
    for db in TestDb::all().await? {
        reads_are_cached(&db)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        db.cleanup().await?;
    }
    Ok(())
}

async fn reads_are_cached(db: &TestDb) -> anyhow::Result<()> {
    let s = TestServer::start(db, 1).await?;
    let (evaluator, model) = parties(&s).await?;
    let job = run_job(&s, &evaluator, &model).await?;
    // The log: the job's pre-registration (0) and result (1).

    let envelope = cached(&s, &format!("/v1/attestations/{job}/envelope"), IMMUTABLE).await?;
    let accepted = cached(
        &s,
        &format!("/v1/attestations/{job}/envelope?kind=accepted"),
        IMMUTABLE,
    )
    .await?;
    anyhow::ensure!(envelope != accepted, "two entries, one tag");
    // The log's leaf is the same bytes as the job's envelope, so the same tag.
    anyhow::ensure!(cached(&s, "/v1/log/entries/1", IMMUTABLE).await? == envelope);
    cached(&s, "/v1/log/entries/0", IMMUTABLE).await?;
    cached(&s, "/v1/log/entries?start=0&limit=2", IMMUTABLE).await?;
    cached(&s, "/v1/log/proof/inclusion?index=0&size=2", IMMUTABLE).await?;
    cached(&s, "/v1/log/proof/consistency?old=1&new=2", IMMUTABLE).await?;

    let grows = [
        format!("/v1/attestations/{job}"),
        "/v1/log/checkpoint".to_owned(),
        "/v1/log/entries?start=0&limit=3".to_owned(),
        "/v1/log/proof/inclusion?index=0".to_owned(),
        "/v1/log/proof/consistency?old=1".to_owned(),
    ];
    let mut before = Vec::new();
    for path in &grows {
        before.push(cached(&s, path, REVALIDATE).await?);
    }

    // A second job grows the log to four entries: what depended on the head changes, and the
    // tags a client holds no longer match; what was immutable is as it was.
    run_job(&s, &evaluator, &model).await?;
    for (path, tag) in grows.iter().zip(&before) {
        let (status, headers, _) = get(&s, path, Some(tag)).await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "{path}: {status} to the tag from before the log grew"
        );
        anyhow::ensure!(header(&headers, ETAG) != tag, "{path}: the same tag");
    }
    anyhow::ensure!(
        cached(&s, &format!("/v1/attestations/{job}/envelope"), IMMUTABLE).await? == envelope
    );
    cached(&s, "/v1/log/entries?start=0&limit=3", IMMUTABLE).await?;
    s.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_are_never_kept_and_a_job_view_is_its_evaluators_alone() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let s = TestServer::start(&db, 1).await?;
    let (evaluator, model) = parties(&s).await?;
    let job = run_job(&s, &evaluator, &model).await?;

    // A job with no result entry yet, an index the log has not reached, a size beyond it:
    // 404s that must not be kept, since each may be a 200 later.
    for path in [
        format!("/v1/attestations/{}", uuid::Uuid::new_v4()),
        "/v1/log/entries/2".to_owned(),
        "/v1/log/proof/inclusion?index=0&size=3".to_owned(),
    ] {
        let (status, headers, _) = get(&s, &path, Some("*")).await?;
        anyhow::ensure!(status == StatusCode::NOT_FOUND, "{path}: {status}");
        anyhow::ensure!(
            headers.get(ETAG).is_none() && headers.get(CACHE_CONTROL).is_none(),
            "{path}: caching headers on an error: {headers:?}"
        );
    }

    let response = s
        .client
        .get(format!("{}/v1/jobs/{job}", s.base))
        .bearer_auth(&evaluator)
        .send()
        .await?;
    anyhow::ensure!(response.status() == StatusCode::OK);
    anyhow::ensure!(
        header(response.headers(), CACHE_CONTROL) == "private, no-cache",
        "{:?}",
        response.headers()
    );
    anyhow::ensure!(header(response.headers(), CONTENT_TYPE) == "application/json");
    s.stop().await;
    db.cleanup().await?;
    Ok(())
}
