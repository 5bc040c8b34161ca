//! `proctor verify` and `proctor verify-consistency`: offline checks of attestations and logs.
//!
//! With `--policy FILE` (a tlog-policy), `proctor verify DIR` checks the attestation's
//! `.tlog-proof` receipt against it: the log's signature, the witnesses' quorum and the
//! inclusion, with the log key the policy pins (`proctor_attest::verify::verify_receipt`).
//!
//! Reads the files, hands their bytes to `proctor_attest::verify`, prints one line per check.
//! Exit status: 0 when every check passed, 1 when one failed, 2 (through `main`) when an input
//! could not be read. A file that is there but malformed is a failed check, not unreadable
//! input: a tampered attestation must read as "FAILED".

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use proctor_attest::tlog_policy::Policy;
use proctor_attest::verify::{
    AttestationInputs, ReceiptInputs, Report, verify_attestation, verify_consistency,
    verify_receipt,
};
use proctor_core::Sha256Digest;

use crate::keys::{PUBLIC_KEY_FILE, load_public_key};

/// File names in an attestation directory (`proctor demo --out`, `proctor attestation get`).
pub(crate) const ATTESTATION_FILE: &str = "attestation.json";
pub(crate) const CHECKPOINT_FILE: &str = "checkpoint.txt";
pub(crate) const INCLUSION_PROOF_FILE: &str = "inclusion-proof.json";
pub(crate) const EVAL_FILE: &str = "eval.wasm";
pub(crate) const DATASET_FILE: &str = "dataset.jsonl";
/// The C2SP tlog-proof receipt beside the attestation.
pub(crate) const TLOG_PROOF_FILE: &str = "attestation.tlog-proof";

#[derive(Args)]
pub struct VerifyArgs {
    /// An attestation directory (attestation.json, public-key.pem, checkpoint.txt,
    /// inclusion-proof.json, attestation.tlog-proof, eval.wasm, dataset.jsonl: each used when
    /// present), or one DSSE envelope file (then --key or --policy is needed).
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// The service's public key (PEM, or a key directory). Pass the key the service publishes:
    /// a directory's own public-key.pem only shows that its files agree with each other.
    #[arg(long, value_name = "PEM", conflicts_with = "policy")]
    key: Option<PathBuf>,
    /// A tlog-policy file (c2sp.org/tlog-policy): the log's vkey, the witnesses' vkeys and
    /// the quorum. Checks the receipt (attestation.tlog-proof): the log's signature, the
    /// witnesses' quorum and the inclusion, offline; the envelope with the policy's log key.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The tlog-proof receipt, with --policy (default: the directory's attestation.tlog-proof).
    #[arg(long, value_name = "FILE", requires = "policy")]
    receipt: Option<PathBuf>,
    /// The eval component to compare with the attested digest.
    #[arg(long, value_name = "FILE")]
    eval: Option<PathBuf>,
    /// The dataset to compare with the attested digest.
    #[arg(long, value_name = "FILE")]
    dataset: Option<PathBuf>,
    /// A signed checkpoint (C2SP signed note) of the log.
    #[arg(long, value_name = "FILE", requires = "proof")]
    checkpoint: Option<PathBuf>,
    /// The envelope's inclusion proof for that checkpoint (inclusion-proof.json).
    #[arg(long, value_name = "FILE", requires = "checkpoint")]
    proof: Option<PathBuf>,
}

#[derive(Args)]
pub struct ConsistencyArgs {
    /// The older signed checkpoint.
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The newer signed checkpoint.
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// The consistency proof: {"old_size", "new_size", "hashes"}; not needed for two
    /// checkpoints of one size (different roots there are a split view).
    #[arg(long, value_name = "FILE")]
    proof: Option<PathBuf>,
    /// The service's public key (PEM, or a key directory); default: public-key.pem beside NEW.
    #[arg(long, value_name = "PEM", conflicts_with = "policy")]
    key: Option<PathBuf>,
    /// A tlog-policy file whose log keys to check the checkpoints with.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let dir = args.path.is_dir().then_some(args.path.as_path());
    // Flags win; in a directory, its files stand in for the flags not given.
    let in_dir = |name: &str| dir.map(|d| d.join(name)).filter(|p| p.exists());
    let envelope_path = match dir {
        Some(d) => d.join(ATTESTATION_FILE),
        None => args.path.clone(),
    };
    if let Some(policy) = &args.policy {
        let receipt = match args.receipt.clone().or_else(|| in_dir(TLOG_PROOF_FILE)) {
            Some(receipt) => receipt,
            None => bail!(
                "no {TLOG_PROOF_FILE} in {}: pass the receipt with --receipt FILE",
                args.path.display()
            ),
        };
        let policy = load_policy(policy)?;
        let eval = args.eval.clone().or_else(|| in_dir(EVAL_FILE));
        let dataset = args.dataset.clone().or_else(|| in_dir(DATASET_FILE));
        let report = verify_receipt(&ReceiptInputs {
            envelope: &read(&envelope_path)?,
            receipt: &read(&receipt)?,
            policy: &policy,
            eval: eval.as_deref().map(sha256_file).transpose()?,
            dataset: dataset.as_deref().map(sha256_file).transpose()?,
        });
        return Ok(finish(&report));
    }
    let key_path = match (&args.key, dir) {
        (Some(key), _) => key.clone(),
        (None, Some(d)) => d.join(PUBLIC_KEY_FILE),
        (None, None) => bail!(
            "{} is one envelope: pass the service's public key with --key PEM",
            args.path.display()
        ),
    };
    let eval = args.eval.clone().or_else(|| in_dir(EVAL_FILE));
    let dataset = args.dataset.clone().or_else(|| in_dir(DATASET_FILE));
    let checkpoint = args.checkpoint.clone().or_else(|| in_dir(CHECKPOINT_FILE));
    let proof = args.proof.clone().or_else(|| in_dir(INCLUSION_PROOF_FILE));

    let envelope = read(&envelope_path)?;
    let key = load_public_key(&key_path)?;
    if args.key.is_none() {
        eprintln!(
            "note: checked with {} (key id {}); compare it with the key the service publishes, or pass --key",
            key_path.display(),
            key.key_id()
        );
    }
    let checkpoint = checkpoint.as_deref().map(read).transpose()?;
    let proof = proof.as_deref().map(read).transpose()?;
    let report = verify_attestation(&AttestationInputs {
        envelope: &envelope,
        keys: &[key],
        eval: eval.as_deref().map(sha256_file).transpose()?,
        dataset: dataset.as_deref().map(sha256_file).transpose()?,
        checkpoint: checkpoint.as_deref(),
        inclusion_proof: proof.as_deref(),
    });
    Ok(finish(&report))
}

pub fn run_consistency(args: ConsistencyArgs) -> anyhow::Result<ExitCode> {
    let proof = args.proof.as_deref().map(read).transpose()?;
    if let Some(policy) = &args.policy {
        let keys: Vec<_> = load_policy(policy)?
            .logs()
            .iter()
            .map(|log| *log.vkey.key())
            .collect();
        let report = verify_consistency(
            &read(&args.old)?,
            &read(&args.new)?,
            proof.as_deref(),
            &keys,
        );
        return Ok(finish(&report));
    }
    let key_path = match args.key {
        Some(key) => key,
        None => {
            let beside = args
                .new
                .parent()
                .unwrap_or(Path::new("."))
                .join(PUBLIC_KEY_FILE);
            if !beside.exists() {
                bail!(
                    "no {} beside {}: pass the service's public key with --key PEM",
                    PUBLIC_KEY_FILE,
                    args.new.display()
                );
            }
            beside
        }
    };
    let key = load_public_key(&key_path)?;
    let report = verify_consistency(
        &read(&args.old)?,
        &read(&args.new)?,
        proof.as_deref(),
        &[key],
    );
    Ok(finish(&report))
}

/// Reads a tlog-policy file; one that does not parse is unreadable input (exit 2), not a
/// failed check: the verifier's own configuration is wrong.
fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    Policy::parse(&read(path)?).with_context(|| format!("{}", path.display()))
}

fn finish(report: &Report) -> ExitCode {
    print!("{report}");
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The sha256 of a file, read in pieces: datasets can be larger than memory is willing to be.
fn sha256_file(path: &Path) -> anyhow::Result<Sha256Digest> {
    let mut file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => ctx.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(Sha256Digest(out))
}
