//! The client commands: each reads its input, makes its call to the service and renders the
//! answer. `proctor model register`, `eval upload`, `dataset upload|exposure`,
//! `job submit|status|result|cancel`,
//! `attestation get` and `log checkpoint`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use proctor_api::artifacts::{DatasetView, EvalView, ExposureView};
use proctor_api::jobs::{ApprovalState, JobStatus, JobView, ResultView, SubmitJob};
use proctor_api::log::AttestationView;
use proctor_api::models::{ModelView, RegisterModel};
use proctor_attest::proof::InclusionProof;
use proctor_attest::tlog_proof::TlogProof;
use proctor_models::ModelConfig;
use proctor_server::routes::models::config_view;
use reqwest::Method;
use serde::de::DeserializeOwned;

use crate::client::{Client, ServerArgs};
use crate::examples::write_atomically;
use crate::keys::PUBLIC_KEY_FILE;
use crate::run::{Failure, render_table, run_to_exit};
use crate::verify::{
    ATTESTATION_FILE, CHECKPOINT_FILE, DATASET_FILE, EVAL_FILE, INCLUSION_PROOF_FILE,
    TLOG_PROOF_FILE,
};

/// How often `--wait` asks for a job's progress.
const POLL: Duration = Duration::from_millis(200);

#[derive(Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The model's name (unique among this vendor's models).
    #[arg(long)]
    name: String,
    /// The version the attestations name.
    #[arg(long)]
    version: String,
    /// The model configuration (TOML), as `proctor model test` takes it.
    #[arg(long, value_name = "FILE.toml")]
    config: PathBuf,
    /// The environment variable holding the endpoint's key, sent once and sealed by the
    /// service; default: the config's `api_key_env`, if any.
    #[arg(long, value_name = "VAR")]
    credential_env: Option<String>,
}

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Write a new eval project, ready to build: `proctor eval new NAME --lang rust`.
    New(crate::new_eval::NewArgs),
    /// Upload an eval component (.wasm); prints its sha256, the id jobs name it by.
    Upload(UploadArgs),
}

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Upload a dataset (JSONL); prints its sha256, the id jobs name it by.
    Upload(UploadArgs),
    /// How often one of your datasets went to each vendor's models: jobs and samples, by
    /// anyone who uploaded the same bytes; one line per vendor.
    Exposure(ExposureArgs),
}

#[derive(Args)]
pub struct ExposureArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The dataset's id (its sha256, as `proctor dataset upload` prints it).
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct UploadArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The file to upload.
    file: PathBuf,
}

#[derive(Subcommand)]
pub enum JobCommand {
    /// Submit a job: an eval and a dataset (by sha256) against a model (by id).
    Submit(SubmitArgs),
    /// A job's status and progress.
    Status(JobIdArgs),
    /// A finished job's released result.
    Result(ResultArgs),
    /// Cancel a job: at once when it is queued, at its next sample when it runs.
    Cancel(CancelArgs),
}

#[derive(Args)]
pub struct CancelArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The job id.
    id: String,
    /// As the service's operator (an admin token): any job, attested as cancelled by the
    /// operator.
    #[arg(long)]
    as_operator: bool,
}

#[derive(Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The eval's id (its sha256, as `proctor eval upload` prints it).
    #[arg(long, value_name = "SHA256")]
    eval: String,
    /// The dataset's id (its sha256, as `proctor dataset upload` prints it).
    #[arg(long, value_name = "SHA256")]
    dataset: String,
    /// The model's id (as `proctor model register` prints it).
    #[arg(long, value_name = "ID")]
    model: String,
    /// The grant's policy, to check it (the job runs under its grant's policy; naming another
    /// is refused).
    #[arg(long, value_name = "NAME")]
    policy: Option<String>,
    /// Wait for the job to end and print its result.
    #[arg(long)]
    wait: bool,
    /// With --wait: print the result as one JSON object.
    #[arg(long, requires = "wait")]
    json: bool,
    /// With --wait: stop waiting after this long (e.g. `10m`); the job goes on.
    #[arg(long, requires = "wait", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

#[derive(Args)]
pub struct JobIdArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The job id.
    id: String,
}

#[derive(Args)]
pub struct ResultArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The job id.
    id: String,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum AttestationCommand {
    /// Write a job's attestation, the service key, a checkpoint, the inclusion proof and the
    /// C2SP tlog-proof receipt (attestation.tlog-proof) to a directory that `proctor verify`
    /// checks.
    Get(GetArgs),
}

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The job id.
    job: String,
    /// The directory (created; must not hold an attestation already).
    #[arg(long)]
    out: PathBuf,
    /// The eval component, copied in so `proctor verify` compares its digest.
    #[arg(long, value_name = "FILE")]
    eval: Option<PathBuf>,
    /// The dataset, copied in so `proctor verify` compares its digest.
    #[arg(long, value_name = "FILE")]
    dataset: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Print the log's signed checkpoint.
    Checkpoint(CheckpointArgs),
}

#[derive(Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    server: ServerArgs,
}

pub fn register(args: RegisterArgs) -> anyhow::Result<ExitCode> {
    run_to_exit(async move {
        let path = &args.config;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut config = ModelConfig::from_toml(&text)
            .with_context(|| format!("model config {}", path.display()))?;
        // The service never reads its own environment for a vendor: the key is read here and
        // sent once, and the variable's name stays on this machine.
        let variable = args.credential_env.clone().or(config.api_key_env.take());
        let credential = match variable {
            Some(var) => Some(std::env::var(&var).map_err(|_| {
                anyhow::anyhow!("the environment variable {var} (the credential) is not set")
            })?),
            None => None,
        };
        let body = RegisterModel {
            name: args.name,
            version: args.version,
            config: config_view(config),
            credential,
        };
        let client = args.server.client()?;
        let model: ModelView = client.call(Method::POST, "/v1/models", &body).await?;
        println!("{}", model.id);
        Ok(())
    })
}

pub fn eval(cmd: EvalCommand) -> anyhow::Result<ExitCode> {
    let args = match cmd {
        EvalCommand::New(args) => return crate::new_eval::run(args),
        EvalCommand::Upload(args) => args,
    };
    run_to_exit(async move {
        let eval: EvalView = upload(&args, "/v1/evals").await?;
        // The id on stdout alone, so scripts can capture it; what it is on stderr.
        println!("{}", eval.id);
        eprintln!("eval {} {}", eval.name, eval.version);
        Ok(())
    })
}

pub fn dataset(cmd: DatasetCommand) -> anyhow::Result<ExitCode> {
    let args = match cmd {
        DatasetCommand::Upload(args) => args,
        DatasetCommand::Exposure(args) => return run_to_exit(exposure(args)),
    };
    run_to_exit(async move {
        let dataset: DatasetView = upload(&args, "/v1/datasets").await?;
        println!("{}", dataset.id);
        eprintln!("dataset of {} items", dataset.items);
        Ok(())
    })
}

async fn exposure(args: ExposureArgs) -> Result<(), Failure> {
    let client = args.server.client()?;
    let exposure: Vec<ExposureView> = client
        .get(&format!("/v1/datasets/{}/exposure", segment(&args.id)?))
        .await?;
    if args.json {
        let text =
            serde_json::to_string_pretty(&exposure).map_err(|e| Failure::Internal(e.into()))?;
        println!("{text}");
        return Ok(());
    }
    if exposure.is_empty() {
        eprintln!("no job has run over this dataset");
    }
    for x in &exposure {
        println!(
            "{}  {} jobs  {} items  last {}",
            x.vendor, x.jobs, x.items, x.updated_at
        );
    }
    Ok(())
}

/// Uploads the file `args` names to `route`.
async fn upload<T: DeserializeOwned>(args: &UploadArgs, route: &str) -> Result<T, Failure> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    args.server.client()?.upload(route, bytes).await
}

pub fn job(cmd: JobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::Submit(args) => run_with_status(submit(args)),
        JobCommand::Status(args) => run_to_exit(status(args)),
        JobCommand::Result(args) => run_with_status(async move {
            let client = args.server.client()?;
            let result: ResultView = client
                .get(&format!("/v1/jobs/{}/result", segment(&args.id)?))
                .await?;
            print_result(&result, args.json)
        }),
        JobCommand::Cancel(args) => run_to_exit(cancel(args)),
    }
}

async fn cancel(args: CancelArgs) -> Result<(), Failure> {
    let client = args.server.client()?;
    let id = segment(&args.id)?;
    let path = if args.as_operator {
        format!("/v1/admin/jobs/{id}/cancel")
    } else {
        format!("/v1/jobs/{id}/cancel")
    };
    let job: JobView = client
        .call(Method::POST, &path, &serde_json::json!({}))
        .await?;
    if job.status.is_terminal() {
        println!("job {} {}", job.id, job.status);
    } else {
        println!("job {} asked to stop: its worker ends it", job.id);
    }
    Ok(())
}

/// Like [`run_to_exit`], for commands whose success depends on how the job ended: exit 1 when
/// it failed or was cancelled.
fn run_with_status(body: impl Future<Output = Result<bool, Failure>>) -> anyhow::Result<ExitCode> {
    let mut succeeded = true;
    let code = run_to_exit(async {
        succeeded = body.await?;
        Ok(())
    })?;
    Ok(if code == ExitCode::SUCCESS && !succeeded {
        ExitCode::FAILURE
    } else {
        code
    })
}

async fn submit(args: SubmitArgs) -> Result<bool, Failure> {
    let client = args.server.client()?;
    let body = SubmitJob {
        eval: args.eval,
        dataset: args.dataset,
        model: args.model,
        policy: args.policy,
    };
    let job: JobView = client.call(Method::POST, "/v1/jobs", &body).await?;
    let id = job.id;
    if !args.wait {
        println!("{id}");
        return Ok(true);
    }
    eprintln!("job {id} submitted");
    wait_for_job(&client, &id, args.timeout).await?;
    let result: ResultView = client.get(&format!("/v1/jobs/{id}/result")).await?;
    print_result(&result, args.json)
}

async fn status(args: JobIdArgs) -> Result<(), Failure> {
    let client = args.server.client()?;
    let job: JobView = client
        .get(&format!("/v1/jobs/{}", segment(&args.id)?))
        .await?;
    // A private job shows neither progress nor attempts while it runs (they are null).
    let n = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
    println!(
        "job       {}\nstatus    {}\nprogress  {}/{} samples\nattempts  {}",
        job.id,
        job.status,
        n(job.progress.done),
        job.progress.total,
        n(job.attempts.map(u64::from))
    );
    if let Some(reason) = &job.reason {
        println!("reason    {reason}");
    }
    Ok(())
}

/// Polls a job until it leaves `queued`/`running`, with a progress bar on stderr (drawn only
/// when stderr is a terminal). Returns the job's last view. Past `timeout` it gives up waiting
/// (an internal failure: nothing was refused, and the job goes on).
pub async fn wait_for_job(
    client: &Client,
    id: &str,
    timeout: Option<Duration>,
) -> Result<JobView, Failure> {
    let started = std::time::Instant::now();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:8} {bar:40} {pos}/{len} samples  eta {eta}")
            .map_err(|e| Failure::Internal(e.into()))?,
    );
    let path = format!("/v1/jobs/{}", segment(id)?);
    let job = loop {
        let job: JobView = client.get(&path).await?;
        let status = job.status;
        bar.set_length(job.progress.total);
        bar.set_position(job.progress.done.unwrap_or(0));
        if status == JobStatus::Queued && job.approval == Some(ApprovalState::Pending) {
            bar.set_message("waiting for the vendor's approval");
        } else {
            bar.set_message(status.as_str());
        }
        if status.is_terminal() {
            break job;
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            bar.abandon();
            return Err(Failure::Internal(anyhow::anyhow!(
                "job {id} is still {status} after {}; check it later with `proctor job status {id}`",
                humantime::format_duration(started.elapsed())
            )));
        }
        tokio::time::sleep(POLL).await;
    };
    bar.finish_and_clear();
    Ok(job)
}

/// Prints a job's result: the table (or one JSON object). Returns whether it succeeded.
fn print_result(result: &ResultView, as_json: bool) -> Result<bool, Failure> {
    let status = result.status;
    if as_json {
        let text = serde_json::to_string_pretty(result).map_err(|e| Failure::Internal(e.into()))?;
        println!("{text}");
    } else {
        println!("status    {status}");
        if let Some(reason) = &result.reason {
            println!("reason    {reason}");
        }
        if let Some(report) = &result.report {
            print!("{}", render_table(report));
        }
    }
    if status != JobStatus::Succeeded {
        eprintln!("the job ended {status}");
    }
    Ok(status == JobStatus::Succeeded)
}

pub fn attestation(cmd: AttestationCommand) -> anyhow::Result<ExitCode> {
    let AttestationCommand::Get(args) = cmd;
    run_to_exit(async move {
        let read = |p: &Option<PathBuf>| -> Result<Option<Vec<u8>>, Failure> {
            Ok(p.as_deref()
                .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
                .transpose()?)
        };
        let (eval, dataset) = (read(&args.eval)?, read(&args.dataset)?);
        prepare_out(&args.out)?;
        let client = args.server.client()?;
        let index = save_attestation(
            &client,
            &args.job,
            &args.out,
            eval.as_deref(),
            dataset.as_deref(),
        )
        .await?;
        println!(
            "attestation of job {} (log index {index}) written to {}; check it with `proctor verify {}`",
            args.job,
            args.out.display(),
            args.out.display()
        );
        Ok(())
    })
}

/// Creates `dir`, refusing one that already holds an attestation: what a regulator keeps is
/// never overwritten.
pub fn prepare_out(dir: &Path) -> Result<(), Failure> {
    if dir.join(ATTESTATION_FILE).exists() {
        return Err(anyhow::anyhow!(
            "{} already holds an attestation; choose another --out",
            dir.display()
        )
        .into());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(())
}

/// Fetches a job's result attestation and the service key, and writes the files
/// `proctor verify` reads, the tlog-proof receipt among them (plus the eval and dataset when
/// given). Returns the log index.
pub async fn save_attestation(
    client: &Client,
    job: &str,
    dir: &Path,
    eval: Option<&[u8]>,
    dataset: Option<&[u8]>,
) -> Result<u64, Failure> {
    let view: AttestationView = client
        .get(&format!("/v1/attestations/{}", segment(job)?))
        .await?;
    let AttestationView {
        envelope,
        checkpoint,
        inclusion_proof,
        ..
    } = view;
    // Re-encoded through proctor-attest, so the file is in its format and its hashes are
    // checked to be what a proof holds.
    let proof = serde_json::to_vec(&inclusion_proof)
        .map_err(|e| Failure::Internal(e.into()))
        .and_then(|b| InclusionProof::from_json(&b).map_err(|e| Failure::Internal(e.into())))?;
    let public_key = client.get_bytes("/v1/public-key").await?;
    let proof_json = proof.to_json();
    // The same proof and checkpoint as one C2SP tlog-proof, the receipt `proctor verify
    // --policy` checks (with the witnesses' cosignatures the checkpoint carries).
    let receipt = TlogProof {
        extra: None,
        index: proof.log_index,
        hashes: proof.hashes.clone(),
        checkpoint: checkpoint.clone(),
    }
    .encode();
    let mut files: Vec<(&str, &[u8])> = vec![
        (PUBLIC_KEY_FILE, &public_key),
        (CHECKPOINT_FILE, checkpoint.as_bytes()),
        (INCLUSION_PROOF_FILE, proof_json.as_bytes()),
        (TLOG_PROOF_FILE, receipt.as_bytes()),
    ];
    files.extend(eval.map(|b| (EVAL_FILE, b)));
    files.extend(dataset.map(|b| (DATASET_FILE, b)));
    // The attestation last: its presence marks a complete directory.
    files.push((ATTESTATION_FILE, envelope.as_bytes()));
    for (name, bytes) in files {
        write_atomically(&dir.join(name), bytes).map_err(Failure::Internal)?;
    }
    Ok(proof.log_index)
}

pub fn log(cmd: LogCommand) -> anyhow::Result<ExitCode> {
    let LogCommand::Checkpoint(args) = cmd;
    run_to_exit(async move {
        let text = args
            .server
            .client()?
            .get_bytes("/v1/log/checkpoint")
            .await?;
        print!("{}", String::from_utf8_lossy(&text));
        Ok(())
    })
}

/// An id as one path segment: ids are hex or UUIDs, so anything else is refused here rather
/// than sent as another path.
pub(crate) fn segment(id: &str) -> Result<&str, Failure> {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(id)
    } else {
        Err(anyhow::anyhow!("`{id}` is not an id").into())
    }
}
