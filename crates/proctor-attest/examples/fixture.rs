//! Writes a verifiable attestation directory, as `proctor demo --out DIR` will:
//! `attestation.json`, `public-key.pem`, `checkpoint.txt`, `inclusion-proof.json` and the
//! `dataset.jsonl` the statement names. The eval is a stand-in (no component is run here), so
//! no `eval.wasm` is written.
//!
//! ```text
//! cargo run --release -p proctor-attest --example fixture -- DIR
//! proctor verify DIR
//! ```
//!
//! The log holds three jobs the way the service logs them: a job-accepted entry when each job
//! is accepted, a result when it ends (job 3 is still running); the attestation is job 1's
//! result, entry 3 of 5. The key is new on every run.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::executor::block_on;
use proctor_attest::proof::InclusionProof;
use proctor_attest::statement::{AttestedModel, JobRecord};
use proctor_attest::{Checkpoint, EvalResult, Exposure, JobAccepted, MemoryStore, SigningKey, log};
use proctor_core::release::{Mechanism, Release, ReleaseStatus, Usage};
use proctor_core::stats::MetricSummary;
use proctor_core::{
    DatasetRef, EvalRef, Leakage, MetricSpec, ModelDescriptor, ModelIdentity, Policy, PolicyRef,
    RunReport, SampleCounts, Sha256Digest,
};

const ORIGIN: &str = "proctor.example/log";
const DATASET: &str = "{\"a\": 2, \"b\": 5}\n{\"a\": 40, \"b\": 2}\n";

/// The dataset's exposure before job `job`: every earlier job of the fixture ran over it.
fn exposure(job: u64, report: &RunReport) -> Exposure {
    Exposure {
        jobs: job - 1,
        items: (job - 1) * report.dataset.items,
    }
}

fn report(job: u64) -> RunReport {
    RunReport {
        eval: EvalRef {
            name: "arith".into(),
            version: "1.0.0".into(),
            sha256: Sha256Digest::of(b"stand-in for the arith eval component"),
        },
        dataset: DatasetRef {
            sha256: Sha256Digest::of(DATASET.as_bytes()),
            items: 2,
        },
        model: ModelDescriptor {
            reference: "builtin:arith".into(),
            name: "arith".into(),
            version: format!("fixture-{job}"),
        },
        policy: PolicyRef {
            name: "standard".into(),
            sha256: Sha256Digest::of(b"stand-in for the standard policy's canonical JSON"),
        },
        samples: SampleCounts {
            total: 2,
            ok: 2,
            ..SampleCounts::default()
        },
        usage: Usage {
            queries: 2,
            input_tokens: 10,
            output_tokens: 2,
        },
        metrics: BTreeMap::from([(
            "accuracy".to_owned(),
            MetricSummary {
                n: 2,
                mean: Some(1.0),
                stderr: Some(0.0),
                ci95: Some([1.0, 1.0]),
            },
        )]),
        release: Release {
            status: ReleaseStatus::Released,
            reason: None,
            mechanism: Mechanism::None,
            epsilon: None,
            noise: None,
            decimals: 4,
            min_samples: 1,
            withheld_metrics: Vec::new(),
        },
        leakage: leakage(),
        model_identity: ModelIdentity::not_checked(),
    }
}

/// The bound of a two-item job of one metric under `standard`.
fn leakage() -> Leakage {
    let accuracy = MetricSpec {
        name: "accuracy".into(),
        description: "the reply is a + b".into(),
        min: 0.0,
        max: 1.0,
    };
    proctor_core::leakage::bound(&Policy::standard(), &[accuracy], 2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: fixture DIR")?
        .into();
    std::fs::create_dir_all(&dir)?;
    let key = SigningKey::generate()?;
    let mut store = MemoryStore::new();
    let mut accepted_at = Vec::new();
    let mut attestation = None;

    for job in 1..=3u64 {
        let report = report(job);
        let index = block_on(log::tree_head(&mut store))?.size;
        let accepted = JobAccepted {
            job_id: format!("job-{job}"),
            evaluator: "fixture-lab".into(),
            eval: report.eval.clone(),
            dataset: report.dataset.clone(),
            model: AttestedModel::new("fixture-vendor", &report.model),
            policy: report.policy.clone(),
            accepted_at: format!("2025-01-31T12:0{job}:00Z"),
            leakage: leakage(),
            exposure: exposure(job, &report),
            log_index: index,
            service_version: env!("CARGO_PKG_VERSION").into(),
        }
        .into_statement()
        .sign(&key)?;
        block_on(log::append_at(&mut store, index, accepted.as_bytes()))?;
        accepted_at.push(index);
    }
    for job in 1..=2u64 {
        let index = block_on(log::tree_head(&mut store))?.size;
        let result = EvalResult::succeeded(
            JobRecord {
                job_id: format!("job-{job}"),
                vendor: "fixture-vendor".into(),
                started_at: Some(format!("2025-01-31T12:0{job}:01Z")),
                finished_at: format!("2025-01-31T12:0{job}:09Z"),
                exposure: exposure(job, &report(job)),
                accepted_log_index: accepted_at[job as usize - 1],
                log_index: index,
                service_version: env!("CARGO_PKG_VERSION").into(),
            },
            report(job),
        )
        .into_statement()
        .sign(&key)?;
        block_on(log::append_at(&mut store, index, result.as_bytes()))?;
        if job == 1 {
            attestation = Some((index, result));
        }
    }
    let (index, envelope) = attestation.ok_or("no attestation was made")?;

    let head = block_on(log::tree_head(&mut store))?;
    let proof = InclusionProof {
        log_index: index,
        tree_size: head.size,
        root_hash: head.root,
        hashes: block_on(log::inclusion_proof(&mut store, index, head.size))?,
    };
    std::fs::write(dir.join("attestation.json"), envelope.as_bytes())?;
    std::fs::write(dir.join("public-key.pem"), key.verifying_key().to_pem())?;
    std::fs::write(
        dir.join("checkpoint.txt"),
        Checkpoint::new(ORIGIN, head).sign(&key)?,
    )?;
    std::fs::write(dir.join("inclusion-proof.json"), proof.to_json())?;
    std::fs::write(dir.join("dataset.jsonl"), DATASET)?;
    println!(
        "wrote an attestation (log entry {index} of {}) to {}",
        head.size,
        dir.display()
    );
    Ok(())
}
