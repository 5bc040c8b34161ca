//! `proctor demo`: one evaluation from end to end, on this machine. It runs the arithmetic
//! example against a built-in model through the job loop the service uses, signs the
//! pre-registration and the result as DSSE envelopes with a fresh service key, appends both to
//! a Merkle log, signs a checkpoint, writes what a regulator keeps (`--out`), and verifies it
//! offline with the checks `proctor verify` runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;
use proctor_attest::proof::InclusionProof;
use proctor_attest::statement::{AttestedModel, JobRecord};
use proctor_attest::verify::{AttestationInputs, verify_attestation};
use proctor_attest::{Checkpoint, EvalResult, JobAccepted, MemoryStore, SigningKey, log};
use proctor_core::{Dataset, Sha256Digest};
use proctor_evals::examples;

use crate::examples::write_atomically;
use crate::keys::PUBLIC_KEY_FILE;
use crate::run::{Failure, LocalJob, evaluate, render_table, run_to_exit};
use crate::verify::{
    ATTESTATION_FILE, CHECKPOINT_FILE, DATASET_FILE, EVAL_FILE, INCLUSION_PROOF_FILE,
};

/// The log's origin line in checkpoints.
const ORIGIN: &str = "proctor.local/demo";
/// Who the demo's parties are.
const VENDOR: &str = "demo-vendor";
const EVALUATOR: &str = "demo-evaluator";

#[derive(Args)]
pub struct DemoArgs {
    /// Keep what a regulator would keep in this directory (created; must not hold an
    /// attestation already).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The model under test.
    #[arg(long, default_value = "builtin:arith?latency_ms=20&error_rate=0.05")]
    model: String,
    /// The sandbox policy (a shipped name or a file).
    #[arg(long, default_value = "standard")]
    policy: String,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    run_to_exit(demo(args))
}

async fn demo(args: DemoArgs) -> Result<(), Failure> {
    let policy = crate::run::load_policy(&args.policy)?;
    let model = proctor_models::parse_model_ref(&args.model, Some(0))?;
    let out = match &args.out {
        Some(dir) => {
            if dir.join(ATTESTATION_FILE).exists() {
                return Err(anyhow::anyhow!(
                    "{} already holds an attestation; choose another --out",
                    dir.display()
                )
                .into());
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Output::Kept(dir.clone())
        }
        None => Output::Temporary(tempfile::tempdir().map_err(internal)?),
    };
    let dataset = Dataset::parse(examples::ARITH_JSONL.as_bytes(), usize::MAX).map_err(internal)?;
    let key = SigningKey::generate().map_err(internal)?;
    let job_id = uuid::Uuid::new_v4().to_string();
    let eval_digest = Sha256Digest::of(examples::ARITH_WASM);
    let dataset_digest = Sha256Digest::of(examples::ARITH_JSONL.as_bytes());
    eprintln!(
        "proctor demo: job {job_id}\n  vendor {VENDOR} offers {}; evaluator {EVALUATOR} submits the arith eval ({} items) under policy {}",
        args.model,
        dataset.len(),
        policy.name
    );

    // Pre-registration: the job is in the log before it runs.
    let mut log_store = MemoryStore::new();
    let accepted_index = next_index(&mut log_store).await?;
    let accepted = JobAccepted {
        job_id: job_id.clone(),
        evaluator: EVALUATOR.into(),
        eval: proctor_core::EvalRef {
            name: "arith".into(),
            version: "1.0.0".into(),
            sha256: eval_digest,
        },
        dataset: proctor_core::DatasetRef {
            sha256: dataset_digest,
            items: dataset.len() as u64,
        },
        model: AttestedModel::new(VENDOR, &model.descriptor()),
        policy: proctor_core::PolicyRef {
            name: policy.name.clone(),
            sha256: policy.digest(),
        },
        accepted_at: now(),
        log_index: accepted_index,
        service_version: env!("CARGO_PKG_VERSION").into(),
    }
    .into_statement()
    .sign(&key)
    .map_err(internal)?;
    log::append_at(&mut log_store, accepted_index, accepted.as_bytes())
        .await
        .map_err(internal)?;
    eprintln!("  logged the job-accepted entry at index {accepted_index}");

    let started_at = now();
    let report = evaluate(LocalJob {
        eval_label: "arith (embedded example)".into(),
        eval_bytes: examples::ARITH_WASM,
        dataset,
        model,
        policy,
        concurrency: None,
        seed: 0,
    })
    .await?;

    let result_index = next_index(&mut log_store).await?;
    let job = JobRecord {
        job_id: job_id.clone(),
        vendor: VENDOR.into(),
        started_at: Some(started_at),
        finished_at: now(),
        accepted_log_index: accepted_index,
        log_index: result_index,
        service_version: env!("CARGO_PKG_VERSION").into(),
    };
    let envelope = EvalResult::succeeded(job, report.clone())
        .into_statement()
        .sign(&key)
        .map_err(internal)?;
    log::append_at(&mut log_store, result_index, envelope.as_bytes())
        .await
        .map_err(internal)?;
    let head = log::tree_head(&mut log_store).await.map_err(internal)?;
    let proof = InclusionProof {
        log_index: result_index,
        tree_size: head.size,
        root_hash: head.root,
        hashes: log::inclusion_proof(&mut log_store, result_index, head.size)
            .await
            .map_err(internal)?,
    };
    let checkpoint = Checkpoint::new(ORIGIN, head).sign(&key).map_err(internal)?;
    eprintln!(
        "  logged the signed result at index {result_index}; tree size {}",
        head.size
    );

    let dir = out.path();
    let (public_key, proof_json) = (key.verifying_key().to_pem(), proof.to_json());
    let files: [(&str, &[u8]); 6] = [
        (ATTESTATION_FILE, envelope.as_bytes()),
        (PUBLIC_KEY_FILE, public_key.as_bytes()),
        (CHECKPOINT_FILE, checkpoint.as_bytes()),
        (INCLUSION_PROOF_FILE, proof_json.as_bytes()),
        (EVAL_FILE, examples::ARITH_WASM),
        (DATASET_FILE, examples::ARITH_JSONL.as_bytes()),
    ];
    for (name, bytes) in files {
        write_atomically(&dir.join(name), bytes).map_err(Failure::Internal)?;
    }

    // The regulator's side: only the files, read back from disk.
    let read =
        |name: &str| std::fs::read(dir.join(name)).with_context(|| format!("reading {name}"));
    let verifying_key = proctor_attest::VerifyingKey::from_pem(&String::from_utf8_lossy(
        &read(PUBLIC_KEY_FILE).map_err(Failure::Internal)?,
    ))
    .map_err(internal)?;
    let (attestation, checkpoint, proof) = (
        read(ATTESTATION_FILE).map_err(Failure::Internal)?,
        read(CHECKPOINT_FILE).map_err(Failure::Internal)?,
        read(INCLUSION_PROOF_FILE).map_err(Failure::Internal)?,
    );
    let verification = verify_attestation(&AttestationInputs {
        envelope: &attestation,
        keys: &[verifying_key],
        eval: Some(Sha256Digest::of(
            &read(EVAL_FILE).map_err(Failure::Internal)?,
        )),
        dataset: Some(Sha256Digest::of(
            &read(DATASET_FILE).map_err(Failure::Internal)?,
        )),
        checkpoint: Some(&checkpoint),
        inclusion_proof: Some(&proof),
    });

    print!("{}", render_table(&report));
    println!("\nattestation (key id {})", key.key_id());
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
    if verification.all_passed() {
        Ok(())
    } else {
        Err(Failure::Internal(anyhow::anyhow!(
            "the demo's own attestation did not verify"
        )))
    }
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

async fn next_index(store: &mut MemoryStore) -> Result<u64, Failure> {
    Ok(log::tree_head(store).await.map_err(internal)?.size)
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn internal(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Internal(e.into())
}
