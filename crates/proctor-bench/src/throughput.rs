//! `proctor-bench service`: the table of issue 12. One job per row of the arithmetic example
//! against `builtin:arith?latency_ms=L` under a grant of `standard` tightened to
//! `max_concurrency = C`, timed from the submission's request to the first status read that
//! shows `succeeded`; on SQLite, on PostgreSQL when a server is given and answers, and through
//! `proctor run`'s job loop in this process. Each row's dataset is sized so the job runs about
//! `--seconds` at the rate it should reach: the ideal C / L, or at zero latency the issue's
//! target of 10,000 samples/s.

use std::time::Duration;

use clap::Args;

use crate::database::{self, StoreKind};
use crate::parties::Parties;
use crate::service::Service;
use crate::table::{Table, count, machine};
use crate::{dataset, jobs, local};

/// The rate a zero-latency row is sized for: issue 12's target through the service on SQLite.
const ZERO_LATENCY_TARGET: f64 = 10_000.0;
/// The fewest samples a row runs, whatever `--seconds` says: a job of fewer is mostly its
/// start and end.
const MIN_SAMPLES: u64 = 1_000;

#[derive(Args)]
pub struct ServiceArgs {
    /// A PostgreSQL server for the PostgreSQL rows (a fresh database is made on it and dropped
    /// after), e.g. postgres://postgres@127.0.0.1:5432/postgres; without it, or when it does
    /// not answer, those rows are skipped with a note.
    #[arg(long, env = crate::POSTGRES_ENV)]
    postgres: Option<String>,
    /// The model latencies L, in milliseconds.
    #[arg(long, value_delimiter = ',', default_value = "0,50")]
    latency_ms: Vec<u64>,
    /// The policy's max_concurrency C (at most 256, `standard`'s).
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    concurrency: Vec<u64>,
    /// How long each job should run at the rate it should reach; sets the datasets' sizes.
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// The longest wait for one job.
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Runtime threads of the service (default: one per core, as `proctor serve`).
    #[arg(long)]
    threads: Option<usize>,
    /// Leave out the `proctor run` rows.
    #[arg(long)]
    no_local: bool,
}

/// Who ran a row's job, in the table's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Runner {
    Service(StoreKind),
    Local,
}

/// One measured job.
struct Row {
    runner: Runner,
    latency_ms: u64,
    concurrency: u64,
    samples: u64,
    ok: u64,
    elapsed: Duration,
    /// The service's own `started_at` to `finished_at`.
    run_time: Option<Duration>,
    /// Why the job did not succeed, if it did not.
    failure: Option<String>,
}

pub async fn run(args: ServiceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.seconds > 0.0, "--seconds must be positive");
    for &c in &args.concurrency {
        anyhow::ensure!(
            (1..=256).contains(&c),
            "--concurrency {c}: between 1 and 256"
        );
    }
    let cases: Vec<(u64, u64)> = args
        .latency_ms
        .iter()
        .flat_map(|&l| args.concurrency.iter().map(move |&c| (l, c)))
        .collect();
    let items = |l: u64, c: u64| -> u64 {
        let rate = ideal(l, c).unwrap_or(ZERO_LATENCY_TARGET);
        ((rate * args.seconds).ceil() as u64).max(MIN_SAMPLES)
    };
    let mut rows = Vec::new();

    if !args.no_local {
        for &(l, c) in &cases {
            let n = items(l, c);
            eprintln!("proctor run: L = {l} ms, C = {c}, {n} samples");
            let run = local::run(&dataset::arith(n), l, c).await?;
            rows.push(Row {
                runner: Runner::Local,
                latency_ms: l,
                concurrency: c,
                samples: n,
                ok: run.ok,
                elapsed: run.elapsed,
                run_time: None,
                failure: None,
            });
        }
    }

    let (stores, note) = database::stores(args.postgres.as_deref()).await;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    for kind in stores {
        let db = database::fresh(kind, args.postgres.as_deref()).await?;
        let service = Service::start(&db, threads).await?;
        eprintln!("{kind}: the service listens on {}", service.base);
        let measured = service_rows(&service, kind, &cases, &items, args.timeout).await;
        service.stop().await?;
        db.remove().await?;
        rows.extend(measured?);
    }

    rows.sort_by_key(|r| (r.runner, r.latency_ms, r.concurrency));
    println!("{}", render(&rows, &args, note.as_deref()));
    Ok(())
}

/// Every case's job on one service, one after the other.
async fn service_rows(
    service: &Service,
    kind: StoreKind,
    cases: &[(u64, u64)],
    items: &dyn Fn(u64, u64) -> u64,
    timeout: Duration,
) -> anyhow::Result<Vec<Row>> {
    let parties = Parties::create(service).await?;
    let eval = parties.upload_eval().await?;
    let mut rows = Vec::new();
    for &(l, c) in cases {
        let n = items(l, c);
        let dataset = parties.upload_dataset(dataset::arith(n)).await?;
        let model = parties
            .granted_model(&format!("arith-l{l}-c{c}"), l, c)
            .await?;
        eprintln!("{kind}: L = {l} ms, C = {c}, {n} samples");
        let ended = jobs::run(&parties.evaluator, &eval, &dataset, &model, timeout).await?;
        let succeeded = ended.view.status == proctor_api::jobs::JobStatus::Succeeded;
        let ok = if succeeded {
            jobs::ok_samples(&parties.evaluator, &ended.view.id).await?
        } else {
            0
        };
        rows.push(Row {
            runner: Runner::Service(kind),
            latency_ms: l,
            concurrency: c,
            samples: n,
            ok,
            elapsed: ended.elapsed,
            run_time: jobs::run_time(&ended.view),
            failure: (!succeeded).then(|| {
                format!(
                    "{}: {}",
                    ended.view.status,
                    ended.view.reason.as_deref().unwrap_or("no reason")
                )
            }),
        });
    }
    Ok(rows)
}

/// C / L in samples per second; `None` at zero latency, where no model bounds the rate.
fn ideal(latency_ms: u64, concurrency: u64) -> Option<f64> {
    (latency_ms > 0).then(|| concurrency as f64 * 1000.0 / latency_ms as f64)
}

fn render(rows: &[Row], args: &ServiceArgs, note: Option<&str>) -> String {
    let mut table = Table::new(
        &[
            "run",
            "L (ms)",
            "C",
            "samples",
            "submit→succeeded (s)",
            "samples/s",
            "ideal",
            "share of ideal",
            "samples/s, started→finished",
        ],
        1,
    );
    for row in rows {
        let secs = row.elapsed.as_secs_f64();
        let rate = row.samples as f64 / secs;
        let ideal = ideal(row.latency_ms, row.concurrency);
        let share = match (ideal, &row.failure) {
            (_, Some(failure)) => failure.clone(),
            (Some(ideal), None) => format!("{:.0}%", 100.0 * rate / ideal),
            (None, None) => "–".to_owned(),
        };
        let runner = match row.runner {
            Runner::Service(kind) => kind.to_string(),
            Runner::Local => "`proctor run`".to_owned(),
        };
        let ok = if row.ok == row.samples {
            String::new()
        } else {
            format!(" ({} ok)", count(row.ok as f64))
        };
        table.row(vec![
            runner,
            row.latency_ms.to_string(),
            row.concurrency.to_string(),
            format!("{}{ok}", count(row.samples as f64)),
            format!("{secs:.2}"),
            count(rate),
            ideal.map_or_else(|| "–".to_owned(), count),
            share,
            row.run_time.map_or_else(
                || "–".to_owned(),
                |t| count(row.samples as f64 / t.as_secs_f64().max(1e-3)),
            ),
        ]);
    }
    let mut out = format!(
        "Service throughput (`proctor-bench service --seconds {}`), {}; one job per row, \
         arith example against `builtin:arith?latency_ms=L`, `standard` with max_concurrency C, \
         budgets checked on every query; a `proctor run` row's time is from preparing the eval \
         (compile cache warm) to its report:\n\n",
        args.seconds,
        machine()
    );
    out.push_str(&table.render());
    if let Some(note) = note {
        out.push_str(&format!("\n{note}\n"));
    }
    out
}
