//! in-toto Statement v1 (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>)
//! and Proctor's two predicates.
//!
//! ```json
//! {"_type": "https://in-toto.io/Statement/v1",
//!  "subject": [{"name": "eval.wasm", "digest": {"sha256": "<hex>"}},
//!              {"name": "dataset.jsonl", "digest": {"sha256": "<hex>"}}],
//!  "predicateType": "https://proctor.dev/attestation/eval-result/v4",
//!  "predicate": {...}}
//! ```
//!
//! # Subjects
//!
//! Every Proctor statement has two subjects, by SHA-256 of their bytes: the eval component,
//! named `eval.wasm`, and the dataset, named `dataset.jsonl`: the names of the files
//! `proctor demo` and `proctor attestation get` write beside the attestation, so
//! `proctor verify DIR` finds what to hash.
//!
//! # Predicate `https://proctor.dev/attestation/job-accepted/v3` ([`JobAccepted`])
//!
//! Logged when a job is accepted, before it runs (pre-registration: an evaluator cannot run
//! many variants and publish only the best without the others being in the log).
//!
//! | field | meaning |
//! | --- | --- |
//! | `job_id` | the job's id |
//! | `evaluator` | the account that submitted the job |
//! | `eval` | `{name, version, sha256}`: the eval as its `describe` declared it, and the component's digest |
//! | `dataset` | `{sha256, items}`: the dataset file's digest and its number of items |
//! | `model` | `{vendor, ref, name, version}`: the vendor account that registered the model, how the job named it, its name at the endpoint, its version |
//! | `policy` | `{name, sha256}`: the sandbox policy and the digest of its effective canonical JSON |
//! | `accepted_at` | when the job was accepted, RFC 3339 UTC (`2025-01-31T12:00:00Z`); on the policy's `time_grid_s` grid when it has one |
//! | `leakage` | `{bits_max, channels, excluded}`: the bound, fixed before the job runs, on the bits its evaluator-visible outputs can carry about model outputs (`proctor_core::leakage`) |
//! | `exposure` | `{jobs, items}`: the dataset's exposure to the model's vendor before this job: how many jobs on any of the vendor's models, by any evaluator who holds the same bytes, were accepted over it, and the samples they were to dispatch ([`Exposure`]) |
//! | `log_index` | this entry's own index in the log |
//! | `service_version` | the Proctor version that accepted the job |
//!
//! # Predicate `https://proctor.dev/attestation/eval-result/v4` ([`EvalResult`])
//!
//! Logged when a job ends, whether it succeeded or not: a result is never silently dropped.
//!
//! | field | meaning |
//! | --- | --- |
//! | `job_id` | the job's id |
//! | `status` | `succeeded`, `failed`, `cancelled` or `revoked` |
//! | `reason` | why, when the status is not `succeeded` (host-written text); absent otherwise |
//! | `eval`, `dataset`, `model`, `policy` | as in the job-accepted predicate |
//! | `samples` | `{total, ok, failed: {...}, trapped: {...}}`: sample counts by outcome (noised under DP) |
//! | `usage` | `{queries, input_tokens, output_tokens}`: as the evaluator may see it |
//! | `metrics` | per metric `{n, mean, stderr, ci95}` as released; empty when withheld or not run |
//! | `release` | `{status, reason?, mechanism, epsilon, noise, decimals, min_samples}`: how the figures were released; null when the job ended before a release |
//! | `leakage` | the bound of the job's pre-registration, repeated so one entry stands alone |
//! | `exposure` | the exposure of the job's pre-registration, repeated likewise |
//! | `model_identity` | `{test, queries, mismatches, p_value, verdict}`: whether the model that answered was the one registered, by the service's identity canaries right before and right after the job (`proctor_core::identity`): `test` `border-binomial/v1`, `verdict` `same`, `changed` or `not_checked`, `p_value` rounded up to `10^-4` (null when not checked); `not_checked` for a job that did not run to its end |
//! | `started_at` | when the first sample started, RFC 3339 UTC; null if none did; on the time grid when the policy has one |
//! | `finished_at` | when the job ended, RFC 3339 UTC; under a time grid, the grid point the end was padded to |
//! | `accepted_log_index` | the log index of the job's job-accepted entry, which pairs the two |
//! | `log_index` | this entry's own index in the log |
//! | `service_version` | the Proctor version that ran the job |
//!
//! `samples`, `usage`, `metrics`, `release`, `leakage` and `model_identity` are the fields of
//! `proctor run --json` (CONTRACTS.md; a local run states `not_checked`). A new or changed field is a new predicate type, never an edit of
//! these: `v2` added `leakage` and moved released figures to the range-relative grid; `v3`
//! (both predicates) added `exposure`; `v4` (eval-result only) added `model_identity`. The
//! standard field names below are the one exception: they only repeat, under another name,
//! what a field above says, so no reader learns anything new or loses anything.
//!
//! # Standard field names
//!
//! in-toto/attestation has open proposals for ML evaluation predicates: `eval-result` v0.1
//! (PR 575) and the pre-registration predicate PRML v0.1 (PR 587). Where a field of theirs
//! means what one of ours means, the signed predicate also carries it under their name
//! ([`Predicate::standard_terms`]), so a tool written for them finds it:
//!
//! | predicate | standard field | from |
//! | --- | --- | --- |
//! | eval-result | `evaluatedAt` | `finished_at` |
//! | eval-result | `suite` `{name, version}` | `eval.name`, `eval.version` |
//! | eval-result | `sampleSize` | `samples.total` |
//! | eval-result | `commitments.dataset` `{alg: "sha256", value, salted: false}` | `dataset.sha256` |
//! | eval-result | `assuranceLevel` | `"third_party"`: Proctor runs the eval for parties that do not trust each other |
//! | eval-result | `harness` `{name: "proctor", version}` | `service_version` |
//! | job-accepted | `created_at` (PRML) | `accepted_at` |
//! | job-accepted | `producer.id` (PRML) | `evaluator` |
//!
//! What does not fit, and why, is in `docs/in-toto-mapping.md`.

use std::collections::BTreeMap;

use proctor_core::{
    DatasetRef, EvalRef, Leakage, ModelDescriptor, ModelIdentity, PolicyRef, RunReport,
    Sha256Digest,
    outcome::SampleCounts,
    release::{Release, Usage},
    stats::MetricSummary,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::dsse::{DsseError, Envelope};
use crate::keys::SigningKey;

/// The statement type of in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The subject name of the eval component.
pub const EVAL_SUBJECT: &str = "eval.wasm";
/// The subject name of the dataset.
pub const DATASET_SUBJECT: &str = "dataset.jsonl";

/// Why a statement could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// The payload is not an in-toto Statement v1 (or not of the expected predicate type).
    #[error("not an in-toto Statement v1: {0}")]
    Malformed(String),
    /// Signing failed.
    #[error(transparent)]
    Dsse(#[from] DsseError),
}

/// A predicate with its own versioned type URI.
pub trait Predicate: Serialize + DeserializeOwned {
    /// The `predicateType`.
    const TYPE: &'static str;

    /// Fields the in-toto standard proposals name, derived from the predicate's own fields and
    /// written after them when it is signed (see "Standard field names" in the module docs).
    /// Readers ignore them: they repeat what the predicate says.
    fn standard_terms(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
}

/// A statement as signed: the predicate's fields, then its [`Predicate::standard_terms`].
#[derive(Serialize)]
struct SignedForm<'a, P: Serialize> {
    #[serde(rename = "_type")]
    statement_type: &'a str,
    subject: &'a [Subject],
    #[serde(rename = "predicateType")]
    predicate_type: &'a str,
    predicate: PredicateForm<'a, P>,
}

#[derive(Serialize)]
struct PredicateForm<'a, P: Serialize> {
    #[serde(flatten)]
    fields: &'a P,
    #[serde(flatten)]
    terms: serde_json::Map<String, serde_json::Value>,
}

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement<P> {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// The predicate's type URI.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// What is claimed.
    pub predicate: P,
}

/// A subject: a named artifact and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The artifact's name ([`EVAL_SUBJECT`] or [`DATASET_SUBJECT`]).
    pub name: String,
    /// Its digests.
    pub digest: SubjectDigest,
}

/// A subject's digests; Proctor uses SHA-256 only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectDigest {
    /// SHA-256, lowercase hex.
    pub sha256: Sha256Digest,
}

impl Subject {
    /// A subject named `name` with this digest.
    pub fn new(name: &str, sha256: Sha256Digest) -> Subject {
        Subject {
            name: name.to_owned(),
            digest: SubjectDigest { sha256 },
        }
    }
}

impl<P: Predicate> Statement<P> {
    /// A statement about the eval and dataset with these digests.
    pub fn new(eval: Sha256Digest, dataset: Sha256Digest, predicate: P) -> Statement<P> {
        Statement {
            statement_type: STATEMENT_TYPE.to_owned(),
            subject: vec![
                Subject::new(EVAL_SUBJECT, eval),
                Subject::new(DATASET_SUBJECT, dataset),
            ],
            predicate_type: P::TYPE.to_owned(),
            predicate,
        }
    }

    /// Serializes the statement and signs it in a DSSE envelope, once: the envelope's bytes are
    /// what is logged and served from then on.
    ///
    /// # Errors
    ///
    /// [`StatementError::Malformed`] if the predicate does not serialize (a map with non-string
    /// keys); [`StatementError::Dsse`].
    pub fn sign(&self, key: &SigningKey) -> Result<Envelope, StatementError> {
        let form = SignedForm {
            statement_type: &self.statement_type,
            subject: &self.subject,
            predicate_type: &self.predicate_type,
            predicate: PredicateForm {
                fields: &self.predicate,
                terms: self.predicate.standard_terms(),
            },
        };
        let payload =
            serde_json::to_vec(&form).map_err(|e| StatementError::Malformed(e.to_string()))?;
        Ok(Envelope::sign(PAYLOAD_TYPE, &payload, key)?)
    }

    /// Reads a statement of this predicate type from a (verified) payload.
    ///
    /// # Errors
    ///
    /// [`StatementError::Malformed`] for another `_type`, another `predicateType` or a
    /// predicate that does not parse.
    pub fn from_payload(payload: &[u8]) -> Result<Statement<P>, StatementError> {
        let statement: Statement<serde_json::Value> = Statement::parse_any(payload)?;
        if statement.predicate_type != P::TYPE {
            return Err(StatementError::Malformed(format!(
                "predicate type {:?}, expected {:?}",
                statement.predicate_type,
                P::TYPE
            )));
        }
        let predicate = serde_json::from_value(statement.predicate)
            .map_err(|e| StatementError::Malformed(e.to_string()))?;
        Ok(Statement {
            statement_type: statement.statement_type,
            subject: statement.subject,
            predicate_type: statement.predicate_type,
            predicate,
        })
    }
}

impl Statement<serde_json::Value> {
    /// Reads a statement with any predicate.
    ///
    /// # Errors
    ///
    /// [`StatementError::Malformed`] for anything but an in-toto Statement v1.
    pub fn parse_any(payload: &[u8]) -> Result<Statement<serde_json::Value>, StatementError> {
        let statement: Statement<serde_json::Value> = serde_json::from_slice(payload)
            .map_err(|e| StatementError::Malformed(e.to_string()))?;
        if statement.statement_type != STATEMENT_TYPE {
            return Err(StatementError::Malformed(format!(
                "_type {:?}, expected {STATEMENT_TYPE:?}",
                statement.statement_type
            )));
        }
        Ok(statement)
    }
}

impl<P> Statement<P> {
    /// The digest of the subject named `name`, if there is exactly one such subject.
    pub fn subject_digest(&self, name: &str) -> Option<Sha256Digest> {
        let mut found = self.subject.iter().filter(|s| s.name == name);
        match (found.next(), found.next()) {
            (Some(subject), None) => Some(subject.digest.sha256),
            _ => None,
        }
    }
}

/// The model under test, with the vendor that registered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestedModel {
    /// The vendor account that registered the model.
    pub vendor: String,
    /// How the job named it.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Its name at the endpoint.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl AttestedModel {
    /// The model a run reported, registered by `vendor`.
    pub fn new(vendor: &str, model: &ModelDescriptor) -> AttestedModel {
        AttestedModel {
            vendor: vendor.to_owned(),
            reference: model.reference.clone(),
            name: model.name.clone(),
            version: model.version.clone(),
        }
    }
}

/// A dataset's exposure to a vendor before a job: the jobs accepted over the dataset's bytes on
/// any of the vendor's models, and the samples they were to dispatch (each sample is one item
/// handed to the eval, which may send it to the model). Counted when each job is accepted, so
/// it depends on no model output; a job that ended early still counts all its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Exposure {
    /// Jobs accepted over the dataset on the vendor's models.
    pub jobs: u64,
    /// The samples those jobs were to dispatch.
    pub items: u64,
}

/// The job-accepted predicate (module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // Each field is documented in the module's table.
pub struct JobAccepted {
    pub job_id: String,
    pub evaluator: String,
    pub eval: EvalRef,
    pub dataset: DatasetRef,
    pub model: AttestedModel,
    pub policy: PolicyRef,
    pub accepted_at: String,
    pub leakage: Leakage,
    pub exposure: Exposure,
    pub log_index: u64,
    pub service_version: String,
}

impl Predicate for JobAccepted {
    const TYPE: &'static str = "https://proctor.dev/attestation/job-accepted/v3";

    /// PRML (in-toto/attestation PR 587): when the criteria were locked, and by whom.
    fn standard_terms(&self) -> serde_json::Map<String, serde_json::Value> {
        terms(serde_json::json!({
            "created_at": self.accepted_at,
            "producer": {"id": self.evaluator},
        }))
    }
}

fn terms(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

impl JobAccepted {
    /// The statement: subjects from the eval and dataset digests.
    pub fn into_statement(self) -> Statement<JobAccepted> {
        Statement::new(self.eval.sha256, self.dataset.sha256, self)
    }
}

/// How a job ended: the final status of core's [`JobEnd`](proctor_core::JobEnd), serialized as
/// the predicate's `status` (`succeeded`, `failed`, `cancelled`, `revoked`).
pub type JobStatus = proctor_core::EndStatus;

/// The eval-result predicate (module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // Each field is documented in the module's table.
pub struct EvalResult {
    pub job_id: String,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub eval: EvalRef,
    pub dataset: DatasetRef,
    pub model: AttestedModel,
    pub policy: PolicyRef,
    pub samples: SampleCounts,
    pub usage: Usage,
    pub metrics: BTreeMap<String, MetricSummary>,
    pub release: Option<Release>,
    pub leakage: Leakage,
    pub exposure: Exposure,
    pub model_identity: ModelIdentity,
    pub started_at: Option<String>,
    pub finished_at: String,
    pub accepted_log_index: u64,
    pub log_index: u64,
    pub service_version: String,
}

impl Predicate for EvalResult {
    const TYPE: &'static str = "https://proctor.dev/attestation/eval-result/v4";

    /// The `eval-result` predicate proposal (in-toto/attestation PR 575, v0.1).
    fn standard_terms(&self) -> serde_json::Map<String, serde_json::Value> {
        terms(serde_json::json!({
            "evaluatedAt": self.finished_at,
            "suite": {"name": self.eval.name, "version": self.eval.version},
            "sampleSize": self.samples.total,
            "commitments": {
                "dataset": {"alg": "sha256", "value": self.dataset.sha256, "salted": false},
            },
            "assuranceLevel": "third_party",
            "harness": {"name": "proctor", "version": self.service_version},
        }))
    }
}

/// Where and when a job ran, for [`EvalResult::succeeded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// The job's id.
    pub job_id: String,
    /// The vendor that registered the model.
    pub vendor: String,
    /// When the first sample started, RFC 3339 UTC.
    pub started_at: Option<String>,
    /// When the job ended, RFC 3339 UTC.
    pub finished_at: String,
    /// The dataset's exposure to the vendor before the job, as its job-accepted entry states.
    pub exposure: Exposure,
    /// The index of the job's job-accepted entry.
    pub accepted_log_index: u64,
    /// The index this result entry will take.
    pub log_index: u64,
    /// The Proctor version.
    pub service_version: String,
}

impl EvalResult {
    /// The result of a job that ran to its end with this report.
    pub fn succeeded(job: JobRecord, report: RunReport) -> EvalResult {
        EvalResult {
            job_id: job.job_id,
            status: JobStatus::Succeeded,
            reason: None,
            model: AttestedModel::new(&job.vendor, &report.model),
            eval: report.eval,
            dataset: report.dataset,
            policy: report.policy,
            samples: report.samples,
            usage: report.usage,
            metrics: report.metrics,
            release: Some(report.release),
            leakage: report.leakage,
            exposure: job.exposure,
            model_identity: report.model_identity,
            started_at: job.started_at,
            finished_at: job.finished_at,
            accepted_log_index: job.accepted_log_index,
            log_index: job.log_index,
            service_version: job.service_version,
        }
    }

    /// The statement: subjects from the eval and dataset digests.
    pub fn into_statement(self) -> Statement<EvalResult> {
        Statement::new(self.eval.sha256, self.dataset.sha256, self)
    }
}
