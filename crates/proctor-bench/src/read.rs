//! `proctor-bench read`: the read path under load. A service with a log of a few hundred
//! entries (pre-registrations and results of cancelled jobs), one job that succeeded and one
//! that runs all along (`builtin:arith?latency_ms=50`, 16 samples in flight, by default); then,
//! route by route, `--connections` keep-alive connections send requests back to back for
//! `--duration` after a warm-up, and the table gives requests/s and latency percentiles.
//! Routes whose answer carries an `ETag` are measured a second time with `If-None-Match`
//! (answered 304 with no body).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, ETAG, HeaderName, HeaderValue, IF_NONE_MATCH};
use proctor_api::jobs::{JobStatus, JobView};
use proctor_api::log::AttestationView;

use crate::client::Client;
use crate::database::{self, StoreKind};
use crate::load::{self, Headers, Load, Target};
use crate::parties::{Approval, Parties};
use crate::service::Service;
use crate::table::{Table, count, machine};
use crate::{dataset, jobs};

#[derive(Args)]
pub struct ReadArgs {
    /// The stores to measure on, in order.
    #[arg(long, value_delimiter = ',', default_value = "sqlite")]
    stores: Vec<StoreArg>,
    /// A PostgreSQL server for `--stores postgres` (a fresh database is made on it and
    /// dropped after).
    #[arg(long, env = crate::POSTGRES_ENV)]
    postgres: Option<String>,
    /// Keep-alive connections, each with one request in flight (the service admits 64 per
    /// client by default).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// How long each route is measured.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long each route is loaded before it is measured.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Jobs submitted and cancelled before the measurement, each leaving two log entries.
    #[arg(long, default_value_t = 250)]
    filler_jobs: u64,
    /// The running job's model latency, in milliseconds.
    #[arg(long, default_value_t = 50)]
    running_latency_ms: u64,
    /// The running job's max_concurrency.
    #[arg(long, default_value_t = 16)]
    running_concurrency: u64,
    /// Runtime threads of the service (default: one per core, as `proctor serve`).
    #[arg(long)]
    threads: Option<usize>,
}

/// A store as `--stores` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StoreArg {
    Sqlite,
    Postgres,
}

impl From<StoreArg> for StoreKind {
    fn from(store: StoreArg) -> StoreKind {
        match store {
            StoreArg::Sqlite => StoreKind::Sqlite,
            StoreArg::Postgres => StoreKind::Postgres,
        }
    }
}

/// Items of the small datasets (above `standard`'s `min_samples`).
const SMALL_ITEMS: u64 = 20;

pub async fn run(args: ReadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let mut reports = Vec::new();
    for &store in &args.stores {
        let kind = StoreKind::from(store);
        if kind == StoreKind::Postgres {
            let (available, note) = database::stores(args.postgres.as_deref()).await;
            if !available.contains(&StoreKind::Postgres) {
                reports.push(note.unwrap_or_default());
                continue;
            }
        }
        let db = database::fresh(kind, args.postgres.as_deref()).await?;
        let service = Service::start(&db, threads).await?;
        eprintln!("{kind}: the service listens on {}", service.base);
        let measured = measure(&service, kind, &args).await;
        service.stop().await?;
        db.remove().await?;
        reports.push(measured?);
    }
    println!("{}", reports.join("\n"));
    Ok(())
}

/// What the routes are measured against: the log's size, the finished job, the running one.
struct Scene {
    log_size: u64,
    finished: String,
    finished_index: u64,
    running: String,
    running_total: u64,
}

async fn measure(service: &Service, kind: StoreKind, args: &ReadArgs) -> anyhow::Result<String> {
    let parties = Parties::create(service).await?;
    let scene = scene(service, &parties, args).await?;
    let token = HeaderValue::from_str(&format!("Bearer {}", parties.evaluator.token()))?;
    let f = &scene.finished;
    let routes: Vec<(&str, String, Headers)> = vec![
        ("attestation", format!("/v1/attestations/{f}"), vec![]),
        (
            "attestation envelope",
            format!("/v1/attestations/{f}/envelope"),
            vec![],
        ),
        ("checkpoint", "/v1/log/checkpoint".to_owned(), vec![]),
        (
            "log entry",
            format!("/v1/log/entries/{}", scene.finished_index),
            vec![],
        ),
        (
            "log entries (100)",
            "/v1/log/entries?start=0&limit=100".to_owned(),
            vec![],
        ),
        (
            "inclusion proof",
            format!(
                "/v1/log/proof/inclusion?index={}&size={}",
                scene.finished_index, scene.log_size
            ),
            vec![],
        ),
        (
            "consistency proof",
            format!(
                "/v1/log/proof/consistency?old={}&new={}",
                scene.log_size / 2,
                scene.log_size
            ),
            vec![],
        ),
        (
            "job status (running job)",
            format!("/v1/jobs/{}", scene.running),
            vec![(AUTHORIZATION, token)],
        ),
    ];
    let probe = reqwest::Client::new();
    let mut targets = Vec::new();
    for (route, path, headers) in routes {
        let etag = probe_route(&probe, &service.base, &path, &headers).await?;
        let target = Target {
            route: route.to_owned(),
            path,
            headers,
            expect: StatusCode::OK,
        };
        let revalidated = etag.map(|etag| {
            let mut headers = target.headers.clone();
            headers.push((IF_NONE_MATCH, etag));
            Target {
                route: format!("{route}, If-None-Match (304)"),
                path: target.path.clone(),
                headers,
                expect: StatusCode::NOT_MODIFIED,
            }
        });
        targets.push(target);
        targets.extend(revalidated);
    }

    let load = Load {
        connections: args.connections,
        warmup: args.warmup,
        duration: args.duration,
    };
    let before = progress(&parties.evaluator, &scene.running).await?;
    let mut table = Table::new(
        &[
            "route",
            "requests/s",
            "p50 (ms)",
            "p99 (ms)",
            "max (ms)",
            "not as expected",
        ],
        1,
    );
    for target in targets {
        eprintln!("{kind}: {} ({})", target.route, target.path);
        let target = Arc::new(target);
        let figures = load::drive(service.addr, target.clone(), load).await?;
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
        let unexpected = match figures.first_unexpected {
            Some(status) => format!("{} (e.g. {status})", count(figures.unexpected as f64)),
            None => "0".to_owned(),
        };
        table.row(vec![
            target.route.clone(),
            count(figures.rate()),
            ms(figures.quantile(0.5)),
            ms(figures.quantile(0.99)),
            ms(figures.quantile(1.0)),
            unexpected,
        ]);
    }
    let after = progress(&parties.evaluator, &scene.running).await?;
    let still = match after.status {
        JobStatus::Running => format!(
            "still running at the end ({} of {} samples done; {} during the measurement)",
            count(after.progress.done.unwrap_or(0) as f64),
            count(scene.running_total as f64),
            count(
                after
                    .progress
                    .done
                    .unwrap_or(0)
                    .saturating_sub(before.progress.done.unwrap_or(0)) as f64
            ),
        ),
        status => format!("{status} before the end: the figures after it ran without it"),
    };
    let cancel: JobView = parties
        .evaluator
        .post(
            &format!("/v1/jobs/{}/cancel", scene.running),
            &serde_json::json!({}),
        )
        .await?;
    drop(cancel);
    Ok(format!(
        "Read path on {kind} (`proctor-bench read`), {}: {} keep-alive connections, {:?} per route after {:?} of warm-up, \
         a log of {} entries; meanwhile a job against `builtin:arith?latency_ms={}` with max_concurrency {} ran, {still}.\n\n{}",
        machine(),
        args.connections,
        args.duration,
        args.warmup,
        scene.log_size,
        args.running_latency_ms,
        args.running_concurrency,
        table.render()
    ))
}

/// Builds the log and the two jobs.
async fn scene(service: &Service, parties: &Parties, args: &ReadArgs) -> anyhow::Result<Scene> {
    let eval = parties.upload_eval().await?;
    let small = parties.upload_dataset(dataset::arith(SMALL_ITEMS)).await?;

    // Filler: jobs held for approval under a manual grant, then cancelled by their evaluator,
    // each leaving its pre-registration and its (cancelled) result in the log.
    if args.filler_jobs > 0 {
        let held = parties.register("arith-held", 0).await?;
        parties.grant(&held, 16, Approval::Manual).await?;
        eprintln!("building a log of {} cancelled jobs", args.filler_jobs);
        for _ in 0..args.filler_jobs {
            let job = jobs::submit(&parties.evaluator, &eval, &small, &held).await?;
            let _: JobView = parties
                .evaluator
                .post(
                    &format!("/v1/jobs/{}/cancel", job.id),
                    &serde_json::json!({}),
                )
                .await?;
        }
    }

    let quick = parties.granted_model("arith-quick", 0, 16).await?;
    let finished = jobs::run(
        &parties.evaluator,
        &eval,
        &small,
        &quick,
        Duration::from_secs(120),
    )
    .await?
    .view;
    anyhow::ensure!(
        finished.status == JobStatus::Succeeded,
        "the finished job ended {}: {}",
        finished.status,
        finished.reason.unwrap_or_default()
    );
    let attestation: AttestationView = parties
        .evaluator
        .get(&format!("/v1/attestations/{}", finished.id))
        .await?;

    // The running job: long enough to outlast every route's load at its ideal rate, twice.
    let routes = 12;
    let seconds = routes as f64 * (args.warmup + args.duration).as_secs_f64() * 2.0 + 30.0;
    let rate = args.running_concurrency as f64 * 1000.0 / args.running_latency_ms.max(1) as f64;
    let running_total = (rate * seconds).ceil() as u64;
    let long = parties
        .upload_dataset(dataset::arith(running_total))
        .await?;
    let slow = parties
        .granted_model(
            "arith-running",
            args.running_latency_ms,
            args.running_concurrency,
        )
        .await?;
    let running = jobs::submit(&parties.evaluator, &eval, &long, &slow).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = progress(&parties.evaluator, &running.id).await?;
        if view.progress.done.unwrap_or(0) > 0 {
            break;
        }
        anyhow::ensure!(
            view.status == JobStatus::Queued || view.status == JobStatus::Running,
            "the running job ended {} before the measurement",
            view.status
        );
        anyhow::ensure!(Instant::now() < deadline, "the running job did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log_size = checkpoint_size(service).await?;
    Ok(Scene {
        log_size,
        finished: finished.id,
        finished_index: attestation.log_index,
        running: running.id,
        running_total,
    })
}

async fn progress(evaluator: &Client, job: &str) -> anyhow::Result<JobView> {
    evaluator.get(&format!("/v1/jobs/{job}")).await
}

/// The log's size from its checkpoint (origin, size, root hash, signature).
async fn checkpoint_size(service: &Service) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{}/v1/log/checkpoint", service.base))
        .await?
        .text()
        .await?;
    text.lines()
        .nth(1)
        .and_then(|size| size.parse().ok())
        .with_context(|| format!("no size in the checkpoint {text:?}"))
}

/// One request to `path`; fails unless it is answered 200. Returns the answer's `ETag`.
async fn probe_route(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> anyhow::Result<Option<HeaderValue>> {
    let mut request = client.get(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await?;
    let status = response.status();
    let etag = response.headers().get(ETAG).cloned();
    let body = response.text().await?;
    anyhow::ensure!(
        status == reqwest::StatusCode::OK,
        "{path} answered {status}: {body}"
    );
    Ok(etag)
}
