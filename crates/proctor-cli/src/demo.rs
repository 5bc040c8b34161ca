//! `proctor demo`: one evaluation from end to end through the real service. It starts the
//! server in this process on a free loopback port, over a temporary SQLite database and data
//! directory, and then talks to it over HTTP only, as its users would: the admin creates a
//! vendor, an evaluator and a regulator; the vendor registers a built-in model; the evaluator
//! uploads the arithmetic example and its dataset and runs a job; the regulator fetches the
//! attestation, the service key, a checkpoint and the inclusion proof, keeps them (`--out`),
//! and checks them offline with the checks `proctor verify` runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use proctor_api::accounts::{AccountView, CreatedToken, NewAccount, NewToken, Role, Tier};
use proctor_api::artifacts::{DatasetView, EvalView};
use proctor_api::grants::{CreateGrant, GrantBudgets, GrantView, Grantee};
use proctor_api::jobs::{JobStatus, JobView, ResultView, SubmitJob};
use proctor_api::models::{ModelAdapter, ModelConfig, ModelView, RegisterModel};
use proctor_attest::verify::{AttestationInputs, verify_attestation};
use proctor_core::{Policy, Sha256Digest};
use proctor_evals::examples;
use proctor_sandbox::EngineSettings;
use proctor_server::{Config, Server};
use reqwest::Method;

use crate::client::Client;
use crate::keys::PUBLIC_KEY_FILE;
use crate::remote::{prepare_out, save_attestation, wait_for_job};
use crate::run::{Failure, render_table, run_to_exit};
use crate::serve::Signals;
use crate::verify::{
    ATTESTATION_FILE, CHECKPOINT_FILE, DATASET_FILE, EVAL_FILE, INCLUSION_PROOF_FILE,
};

/// The log's origin line in checkpoints.
const ORIGIN: &str = "proctor.local/demo";
/// Who the demo's parties are.
const VENDOR: &str = "demo-vendor";
const EVALUATOR: &str = "demo-evaluator";
const REGULATOR: &str = "demo-regulator";
/// How long the demo waits for its job.
const DEMO_JOB_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Args)]
pub struct DemoArgs {
    /// Keep what a regulator would keep in this directory (created; must not hold an
    /// attestation already).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The model under test: a built-in model reference.
    #[arg(long, default_value = "builtin:arith?latency_ms=20&error_rate=0.05")]
    model: String,
    /// The sandbox policy: a name the service ships.
    #[arg(long, default_value = "standard")]
    policy: String,
    /// Where the embedded service listens (a free loopback port unless given).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// After the attestation verified, keep the service running for its web view (the log,
    /// and the attestation's page, which checks it again in the browser) until Ctrl-C or
    /// SIGTERM.
    #[arg(long)]
    keep_serving: bool,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    run_to_exit(demo(args))
}

async fn demo(args: DemoArgs) -> Result<(), Failure> {
    // Refusals first, before anything is started or written.
    let builtin = args
        .model
        .strip_prefix("builtin:")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| anyhow::anyhow!("--model must be a built-in model, `builtin:NAME[?...]`"))?
        .to_owned();
    let policy = Policy::named(&args.policy)?;
    let out = match &args.out {
        Some(dir) => {
            prepare_out(dir)?;
            Output::Kept(dir.clone())
        }
        None => Output::Temporary(tempfile::tempdir().map_err(internal)?),
    };

    // The service: a temporary database and data directory, removed when the demo ends.
    let scratch = tempfile::tempdir().map_err(internal)?;
    let mut config = Config::new(
        format!(
            "sqlite://{}?mode=rwc",
            scratch.path().join("proctor.db").display()
        ),
        scratch.path().join("data"),
    );
    config.origin = ORIGIN.into();
    config.workers = 1;
    config.poll_interval = Duration::from_millis(100);
    config.progress_interval = Duration::from_millis(200);
    // Sized for the one policy the demo runs, not for every policy the service admits.
    config.engine = EngineSettings::for_policy(&policy);
    let server = Server::start(config)
        .await
        .context("starting the embedded service")
        .map_err(Failure::Internal)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))
        .map_err(Failure::Internal)?;
    let base = format!("http://{}", listener.local_addr().map_err(internal)?);
    let serving = tokio::spawn(proctor_server::serve(
        listener,
        server.router(),
        server.state.config.connections,
        std::future::pending(),
    ));
    eprintln!("proctor demo: the service is listening on {base} (temporary SQLite database)");

    let outcome = session(&server, &base, &builtin, &policy, &args, out.path()).await;
    let stop = async {
        serving.abort();
        server.shutdown().await;
    };
    let (report, job_id, log_index) = match outcome {
        Ok(done) => done,
        Err(failure) => {
            stop.await;
            return Err(failure);
        }
    };

    // The regulator's side: only the files, read back from disk.
    let dir = out.path();
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .with_context(|| format!("reading {name}"))
            .map_err(Failure::Internal)
    };
    let key =
        proctor_attest::VerifyingKey::from_pem(&String::from_utf8_lossy(&read(PUBLIC_KEY_FILE)?))
            .map_err(internal)?;
    let (attestation, checkpoint, proof) = (
        read(ATTESTATION_FILE)?,
        read(CHECKPOINT_FILE)?,
        read(INCLUSION_PROOF_FILE)?,
    );
    let key_id = key.key_id();
    let verification = verify_attestation(&AttestationInputs {
        envelope: &attestation,
        keys: &[key],
        eval: Some(Sha256Digest::of(&read(EVAL_FILE)?)),
        dataset: Some(Sha256Digest::of(&read(DATASET_FILE)?)),
        checkpoint: Some(&checkpoint),
        inclusion_proof: Some(&proof),
    });

    print!("{}", render_table(&report));
    println!("\nattestation of job {job_id}, log index {log_index} (service key id {key_id})");
    for line in verification.to_string().lines() {
        println!("  {line}");
    }
    match &out {
        Output::Kept(dir) => println!(
            "\nkept in {}: check again any time with `proctor verify {}`",
            dir.display(),
            dir.display()
        ),
        Output::Temporary(_) => {
            println!("\n(pass --out DIR to keep the attestation, key, checkpoint and proof)")
        }
    }
    if !verification.all_passed() {
        stop.await;
        return Err(Failure::Internal(anyhow::anyhow!(
            "the demo's own attestation did not verify"
        )));
    }
    if args.keep_serving {
        let signals = Signals::listen().map_err(internal)?;
        println!(
            "\nthe web view: {base}/jobs/{job_id} (this attestation, checked again in your browser) \
             and {base}/ (the log); Ctrl-C stops the service"
        );
        signals.next().await;
    } else {
        println!("(pass --keep-serving to see it in the web view, checked in your browser)");
    }
    stop.await;
    Ok(())
}

/// Everything the three users do over HTTP. Returns the released report, the job id and the
/// result's log index.
async fn session(
    server: &Server,
    base: &str,
    builtin: &str,
    policy: &Policy,
    args: &DemoArgs,
    out: &Path,
) -> Result<(proctor_core::RunReport, String, u64), Failure> {
    let admin_token = server.admin_token.as_deref().ok_or_else(|| {
        Failure::Internal(anyhow::anyhow!("the fresh service created no admin token"))
    })?;
    let admin = Client::new(base, Some(admin_token.to_owned()))?;
    let vendor = account(&admin, VENDOR, Role::Vendor, None).await?;
    let evaluator = account(&admin, EVALUATOR, Role::Evaluator, Some(Tier::Academic)).await?;
    let regulator = account(&admin, REGULATOR, Role::Regulator, None).await?;
    eprintln!(
        "  admin created {VENDOR} (vendor), {EVALUATOR} (evaluator, academic) and {REGULATOR} (regulator)"
    );

    let register = RegisterModel {
        name: "arith".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        config: ModelConfig {
            adapter: ModelAdapter::Builtin,
            model: builtin.to_owned(),
            base_url: None,
            api_key_env: None,
            version: None,
            max_concurrency: None,
            requests_per_minute: None,
            timeout_s: None,
            max_attempts: None,
            max_tokens_field: None,
        },
        credential: None,
    };
    let model: ModelView = vendor.call(Method::POST, "/v1/models", &register).await?;
    let model_id = model.id;
    eprintln!("  {VENDOR} registered {} as model {model_id}", args.model);
    let new_grant = CreateGrant {
        model: model_id.clone(),
        grantee: Grantee::Tier(Tier::Academic.as_str().to_owned()),
        policy: Some(policy.name.clone()),
        overrides: None,
        budgets: GrantBudgets {
            jobs_per_day: Some(10),
            queries_total: Some(10_000),
            epsilon_total: Some(5.0),
            ..GrantBudgets::default()
        },
        approval: None,
        expires_at: None,
        alerts: None,
    };
    let grant: GrantView = vendor.call(Method::POST, "/v1/grants", &new_grant).await?;
    eprintln!(
        "  {VENDOR} granted academic evaluators access under policy {} (grant {}: 10 jobs a day, 10,000 queries, epsilon 5)",
        policy.name, grant.id
    );

    let eval: EvalView = evaluator
        .upload("/v1/evals", examples::ARITH_WASM.to_vec())
        .await?;
    let dataset: DatasetView = evaluator
        .upload("/v1/datasets", examples::ARITH_JSONL.as_bytes().to_vec())
        .await?;
    let submit = SubmitJob {
        eval: eval.id,
        dataset: dataset.id,
        model: model_id,
        policy: Some(policy.name.clone()),
    };
    let job: JobView = evaluator.call(Method::POST, "/v1/jobs", &submit).await?;
    let job_id = job.id;
    eprintln!(
        "  {EVALUATOR} uploaded the arith eval and its {} items, and submitted job {job_id} under policy {} (pre-registered in the log)",
        dataset.items, policy.name
    );

    // A demo job takes seconds; one still running after minutes means the service is stuck,
    // and the demo says so instead of hanging.
    let ended = wait_for_job(&evaluator, &job_id, Some(DEMO_JOB_TIMEOUT)).await?;
    if ended.status != JobStatus::Succeeded {
        let reason = ended.reason.as_deref().unwrap_or("no reason given");
        return Err(Failure::Internal(anyhow::anyhow!(
            "the demo's job ended {}: {reason}",
            ended.status
        )));
    }
    let result: ResultView = evaluator.get(&format!("/v1/jobs/{job_id}/result")).await?;
    let report = result.report.ok_or_else(|| {
        Failure::Internal(anyhow::anyhow!("the demo's job succeeded without a report"))
    })?;

    let log_index = save_attestation(
        &regulator,
        &job_id,
        out,
        Some(examples::ARITH_WASM),
        Some(examples::ARITH_JSONL.as_bytes()),
    )
    .await?;
    eprintln!(
        "  {REGULATOR} fetched the signed result (log index {log_index}), the service key, a checkpoint and the inclusion proof"
    );
    Ok((report, job_id, log_index))
}

/// Creates an account and a token for it; returns a client acting as that account.
async fn account(
    admin: &Client,
    name: &str,
    role: Role,
    tier: Option<Tier>,
) -> Result<Client, Failure> {
    let body = NewAccount {
        name: name.to_owned(),
        role,
        tier,
    };
    let account: AccountView = admin.call(Method::POST, "/v1/accounts", &body).await?;
    let label = NewToken {
        label: "demo".into(),
    };
    let token: CreatedToken = admin
        .call(
            Method::POST,
            &format!("/v1/accounts/{}/tokens", account.id),
            &label,
        )
        .await?;
    Ok(admin.with_token(&token.token))
}

/// Where the files go: a directory the user keeps, or one removed at the end.
enum Output {
    Kept(PathBuf),
    Temporary(tempfile::TempDir),
}

impl Output {
    fn path(&self) -> &Path {
        match self {
            Output::Kept(dir) => dir,
            Output::Temporary(dir) => dir.path(),
        }
    }
}

fn internal(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Internal(e.into())
}
