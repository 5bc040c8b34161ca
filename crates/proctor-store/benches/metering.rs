//! Metering cost: every model query of a service job reserves budget before it goes out and
//! settles after, two transactions under the grant's row lock. This measures how many queries
//! per second one grant can meter, and the latency a query pays for it, at 1, 16 and 64
//! queries in flight, on SQLite (a temporary file) and, when `PROCTOR_TEST_POSTGRES_URL` is set,
//! on a fresh PostgreSQL database.
//!
//! What it must show: a query's metering is small next to a model call (tens of milliseconds
//! at best), and a grant meters more queries per second than an endpoint serves. Run with
//! `cargo bench -p proctor-store --bench metering`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proctor_core::Sha256Digest;
use proctor_store::{
    ApprovalMode, Budgets, EvalDescription, Grantee, Job, JobDemand, LogSlot, NewGrant, NewJob,
    NewModel, Role, SignError, Store, Tier,
};
use sqlx::{Connection, Executor, PgConnection};

/// Queries metered per concurrency level.
const QUERIES: usize = 4_000;

fn sign(job: &Job, slot: LogSlot) -> Result<Vec<u8>, SignError> {
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

async fn measure(label: &str, store: &Store) -> anyhow::Result<()> {
    let (grant, job) = job_under_grant(store).await?;
    for in_flight in [1_usize, 16, 64] {
        let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(QUERIES)));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let store = store.clone();
            let latencies = latencies.clone();
            let job = job.id;
            tasks.push(tokio::spawn(async move {
                for _ in 0..QUERIES / in_flight {
                    let t = Instant::now();
                    let r = store.reserve_query(grant, job, 1_100).await?;
                    store.settle(r.id, 40, 10).await?;
                    latencies
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(t.elapsed());
                }
                Ok::<_, proctor_store::StoreError>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let elapsed = started.elapsed();
        let mut times = latencies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{label:10} {in_flight:>3} in flight: {:>7.0} queries/s metered; reserve+settle {:.2} ms median, {:.2} ms p99",
            times.len() as f64 / elapsed.as_secs_f64(),
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
