//! Predicates of earlier versions that a live log still holds and the service must read back:
//! a job accepted before an upgrade ends after it, and its result restates its
//! pre-registration, whichever version that was signed in. Only reading: nothing signs these
//! versions any more.

use proctor_core::{DatasetRef, EvalRef, Leakage, PolicyRef};
use serde::{Deserialize, Serialize};

use crate::statement::{
    AttestedModel, Exposure, JobAccepted, Predicate, Statement, StatementError,
};

/// `https://proctor.dev/attestation/job-accepted/v2`: v3 without `exposure`, which v3 added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // The fields are v3's (the statement module's table).
pub struct JobAcceptedV2 {
    pub job_id: String,
    pub evaluator: String,
    pub eval: EvalRef,
    pub dataset: DatasetRef,
    pub model: AttestedModel,
    pub policy: PolicyRef,
    pub accepted_at: String,
    pub leakage: Leakage,
    pub log_index: u64,
    pub service_version: String,
}

impl Predicate for JobAcceptedV2 {
    const TYPE: &'static str = "https://proctor.dev/attestation/job-accepted/v2";
}

impl JobAcceptedV2 {
    /// The v3 predicate with `exposure`, which v2 did not state and the reader recounted.
    pub fn with_exposure(self, exposure: Exposure) -> JobAccepted {
        JobAccepted {
            job_id: self.job_id,
            evaluator: self.evaluator,
            eval: self.eval,
            dataset: self.dataset,
            model: self.model,
            policy: self.policy,
            accepted_at: self.accepted_at,
            leakage: self.leakage,
            exposure,
            log_index: self.log_index,
            service_version: self.service_version,
        }
    }
}

/// A pre-registration read back, in the version it was signed in.
#[derive(Debug, Clone, PartialEq)]
pub enum SignedAcceptance {
    /// The current version.
    V3(JobAccepted),
    /// Signed before exposure was counted.
    V2(JobAcceptedV2),
}

impl SignedAcceptance {
    /// Reads a job-accepted statement of either version from its payload.
    ///
    /// # Errors
    ///
    /// [`StatementError::Malformed`] for anything else.
    pub fn from_payload(payload: &[u8]) -> Result<SignedAcceptance, StatementError> {
        let any = Statement::parse_any(payload)?;
        if any.predicate_type == JobAcceptedV2::TYPE {
            Ok(SignedAcceptance::V2(
                Statement::<JobAcceptedV2>::from_payload(payload)?.predicate,
            ))
        } else {
            Ok(SignedAcceptance::V3(
                Statement::<JobAccepted>::from_payload(payload)?.predicate,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proctor_core::Sha256Digest;
    use proctor_core::model::ModelDescriptor;

    use super::*;
    use crate::keys::SigningKey;

    fn v2() -> JobAcceptedV2 {
        JobAcceptedV2 {
            job_id: "j".into(),
            evaluator: "lab".into(),
            eval: EvalRef {
                name: "arith".into(),
                version: "1".into(),
                sha256: Sha256Digest::of(b"eval"),
            },
            dataset: DatasetRef {
                sha256: Sha256Digest::of(b"data"),
                items: 20,
            },
            model: AttestedModel::new(
                "acme",
                &ModelDescriptor {
                    reference: "builtin:arith".into(),
                    name: "arith".into(),
                    version: "1".into(),
                },
            ),
            policy: PolicyRef {
                name: "standard".into(),
                sha256: Sha256Digest::of(b"policy"),
            },
            accepted_at: "2026-01-01T00:00:00Z".into(),
            leakage: Leakage {
                bits_max: 12.5,
                channels: BTreeMap::from([("figures".into(), 12.5)]),
                excluded: vec![],
            },
            log_index: 3,
            service_version: "0.1.0".into(),
        }
    }

    #[test]
    fn a_v2_pre_registration_reads_back_as_v2_and_a_v3_one_as_v3() {
        let key = SigningKey::generate().unwrap();
        let old = v2();
        let signed = Statement::new(old.eval.sha256, old.dataset.sha256, old.clone())
            .sign(&key)
            .unwrap();
        let read = SignedAcceptance::from_payload(signed.payload_unverified()).unwrap();
        assert_eq!(read, SignedAcceptance::V2(old.clone()));

        let exposure = Exposure { jobs: 2, items: 40 };
        let new = old.with_exposure(exposure);
        let signed = new.clone().into_statement().sign(&key).unwrap();
        let read = SignedAcceptance::from_payload(signed.payload_unverified()).unwrap();
        assert_eq!(read, SignedAcceptance::V3(new));
    }

    #[test]
    fn another_predicate_is_neither() {
        let payload = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],
            "predicateType":"https://proctor.dev/attestation/eval-result/v3","predicate":{}}"#;
        assert!(SignedAcceptance::from_payload(payload).is_err());
    }
}
