//! Metering cost: a service job's queries draw from reservation blocks in memory; the store
//! sees one metering step per block (the last block's batch applied, a new block leased) under
//! the grant's row lock. This measures how many steps per second one grant takes, and their
//! latency, with 1, 16 and 64 jobs' meters stepping at once, on SQLite (a temporary file) and,
//! when `PROCTOR_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL database; and, for comparison,
//! the cost of metering one query at a time (a block of one, then a batch of one).
//!
//! What it must show: a grant meters far more queries per second than an endpoint serves.
//! Run with `cargo bench -p proctor-store --bench metering`.

use std::time::{Duration, Instant};

use proctor_attest::Exposure;
use proctor_core::Sha256Digest;
use proctor_store::{
    ApprovalMode, Batch, Budgets, EvalDescription, Grantee, Job, JobDemand, LogSlot, NewGrant,
    NewJob, NewModel, Role, SignError, Step, Store, StoreError, Tier, Want,
};
use sqlx::{Connection, Executor, PgConnection};

/// Metering steps per concurrency level.
const STEPS: usize = 2_000;
/// A query's worst-case tokens.
const WORST: u64 = 1_100;

fn sign(job: &Job, _: Exposure, slot: LogSlot) -> Result<Vec<u8>, SignError> {
    Ok(format!("accepted {} {}", job.id, slot.index).into_bytes())
}

/// A grant with a budget large enough never to run out, and a job under it.
async fn job_under_grant(store: &Store) -> anyhow::Result<(proctor_store::GrantId, Job)> {
    let evaluator = store
        .create_account("lab", Role::Evaluator, Some(Tier::Academic))
        .await?;
    let vendor = store.create_account("acme", Role::Vendor, None).await?;
    let model = store
        .register_model(&NewModel {
            owner: vendor.id,
            name: "m".into(),
            version: "1".into(),
            adapter: "builtin".into(),
            config: r#"{"model":"builtin:arith"}"#.into(),
            credential: None,
        })
        .await?;
    let description = EvalDescription {
        name: "e".into(),
        version: "1".into(),
        metrics: "[]".into(),
    };
    let (eval, _) = store
        .put_eval(evaluator.id, b"\0asm bench", &description)
        .await?;
    let (dataset, _) = store.put_dataset(evaluator.id, b"{}\n", 1).await?;
    let grant = store
        .create_grant(&NewGrant {
            vendor: vendor.id,
            model: model.id,
            grantee: Grantee::Tier(Tier::Academic),
            policy_name: "standard".into(),
            policy_overrides: "{}".into(),
            budgets: Budgets {
                queries_total: Some(u64::MAX >> 2),
                tokens_total: Some(u64::MAX >> 2),
                ..Budgets::default()
            },
            approval: ApprovalMode::Auto,
            expires_at: None,
        })
        .await?;
    let new_job = NewJob {
        evaluator: evaluator.id,
        eval: eval.digest,
        dataset: dataset.digest,
        model: model.id,
        policy_name: "standard".into(),
        policy_json: "{}".into(),
        policy_digest: Sha256Digest::of(b"{}"),
        concurrency: 64,
        seed: 1,
        total: 1,
    };
    let (job, _, _) = store
        .submit_job_under(grant.id, &JobDemand::default(), &new_job, sign)
        .await?;
    Ok((grant.id, job))
}

/// One meter's loop: `steps` steps, each applying the last block's batch (every query
/// settled) and leasing a block of `block` queries; the latency of each step.
async fn meter_loop(
    store: Store,
    (grant, job): (proctor_store::GrantId, proctor_store::JobId),
    steps: usize,
    block: u64,
) -> Result<Vec<Duration>, StoreError> {
    let mut times = Vec::with_capacity(steps);
    let mut last: Vec<(proctor_store::BlockId, Batch)> = Vec::new();
    for _ in 0..steps {
        let t = Instant::now();
        let stepped = store
            .meter(Step {
                grant,
                job,
                batches: &last,
                lease: Some(Want {
                    queries: block,
                    tokens: block * WORST,
                    min_tokens: WORST,
                }),
            })
            .await?;
        times.push(t.elapsed());
        let leased = stepped.lease.ok_or(StoreError::Invalid("no lease"))??;
        last = vec![(
            leased.id,
            Batch {
                settled: leased.queries,
                settled_worst: leased.tokens,
                input_tokens: 40 * leased.queries,
                output_tokens: 10 * leased.queries,
                ..Batch::default()
            },
        )];
    }
    Ok(times)
}

async fn measure(label: &str, store: &Store) -> anyhow::Result<()> {
    let (grant, job) = job_under_grant(store).await?;
    for (meters, block) in [(1_usize, 1_u64), (1, 256), (16, 256), (64, 256)] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..meters {
            tasks.push(tokio::spawn(meter_loop(
                store.clone(),
                (grant, job.id),
                STEPS / meters,
                block,
            )));
        }
        let mut times = Vec::new();
        for task in tasks {
            times.extend(task.await??);
        }
        let elapsed = started.elapsed();
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let steps = times.len() as f64 / elapsed.as_secs_f64();
        println!(
            "{label:10} {meters:>2} meters, blocks of {block:>3}: {steps:>6.0} steps/s \
             ({:>9.0} queries/s metered); a step {:.2} ms median, {:.2} ms p99",
            steps * block as f64,
            ms(at(0.5)),
            ms(at(0.99)),
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let store = Store::connect(&url).await?;
    measure("sqlite", &store).await?;
    store.close().await;

    if let Ok(admin) = std::env::var("PROCTOR_TEST_POSTGRES_URL") {
        let name = format!("proctor_bench_{}", std::process::id());
        let mut conn = PgConnection::connect(&admin).await?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let (server, _) = admin
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("no database in the URL"))?;
        let store = Store::connect(&format!("{server}/{name}")).await?;
        let result = measure("postgres", &store).await;
        store.close().await;
        conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
            .await?;
        result?;
    } else {
        println!("postgres   skipped: set PROCTOR_TEST_POSTGRES_URL");
    }
    Ok(())
}
