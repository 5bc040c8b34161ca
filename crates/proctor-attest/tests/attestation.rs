//! Signed statements in DSSE envelopes: round trips, and every kind of tampering caught.

use std::collections::BTreeMap;

use proctor_attest::dsse::{DsseError, pae};
use proctor_attest::statement::{
    AttestedModel, DATASET_SUBJECT, EVAL_SUBJECT, JobRecord, PAYLOAD_TYPE, STATEMENT_TYPE,
};
use proctor_attest::{
    Envelope, EvalResult, Exposure, JobAccepted, JobStatus, SigningKey, Statement,
};
use proctor_core::release::{Mechanism, Release, ReleaseStatus, Usage};
use proctor_core::stats::MetricSummary;
use proctor_core::{
    DatasetRef, EvalRef, Leakage, MetricSpec, ModelDescriptor, ModelIdentity, Policy, PolicyRef,
    RunReport, SampleCounts, Sha256Digest,
};

fn report() -> RunReport {
    RunReport {
        eval: EvalRef {
            name: "arith".into(),
            version: "1.0.0".into(),
            sha256: Sha256Digest::of(b"eval component"),
        },
        dataset: DatasetRef {
            sha256: Sha256Digest::of(b"{\"a\": 1, \"b\": 2}\n"),
            items: 1,
        },
        model: ModelDescriptor {
            reference: "builtin:arith".into(),
            name: "arith".into(),
            version: "1".into(),
        },
        policy: PolicyRef {
            name: "standard".into(),
            sha256: Sha256Digest::of(b"policy"),
        },
        samples: SampleCounts {
            total: 1,
            ok: 1,
            ..SampleCounts::default()
        },
        usage: Usage {
            queries: 1,
            input_tokens: 5,
            output_tokens: 1,
        },
        metrics: BTreeMap::from([(
            "accuracy".to_owned(),
            MetricSummary {
                n: 1,
                mean: Some(1.0),
                stderr: None,
                ci95: None,
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

fn leakage() -> Leakage {
    let accuracy = MetricSpec {
        name: "accuracy".into(),
        description: String::new(),
        min: 0.0,
        max: 1.0,
    };
    proctor_core::leakage::bound(&Policy::standard(), &[accuracy], 2)
}

fn result_statement() -> Statement<EvalResult> {
    EvalResult::succeeded(
        JobRecord {
            job_id: "job-1".into(),
            vendor: "acme".into(),
            started_at: Some("2025-01-31T12:00:00Z".into()),
            finished_at: "2025-01-31T12:00:05Z".into(),
            exposure: Exposure { jobs: 2, items: 4 },
            accepted_log_index: 0,
            log_index: 1,
            service_version: "0.1.0".into(),
        },
        report(),
    )
    .into_statement()
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32])
}

#[test]
fn a_signed_result_round_trips_byte_for_byte() {
    let key = key(1);
    let statement = result_statement();
    let envelope = statement.sign(&key).unwrap();
    let again = Envelope::from_bytes(envelope.as_bytes()).unwrap();
    assert_eq!(again, envelope);
    assert_eq!(again.as_bytes(), envelope.as_bytes());

    let verified = again.verify(&[key.verifying_key()]).unwrap();
    assert_eq!(verified.payload_type, PAYLOAD_TYPE);
    assert_eq!(verified.key_id, key.key_id());
    let read = Statement::<EvalResult>::from_payload(verified.payload).unwrap();
    assert_eq!(read, statement);
    assert_eq!(read.statement_type, STATEMENT_TYPE);
    assert_eq!(read.predicate.status, JobStatus::Succeeded);
    assert_eq!(read.predicate.model.vendor, "acme");
    assert_eq!(
        read.subject_digest(EVAL_SUBJECT),
        Some(report().eval.sha256)
    );
    assert_eq!(
        read.subject_digest(DATASET_SUBJECT),
        Some(report().dataset.sha256)
    );
    // Signing is deterministic, so the same statement gives the same bytes.
    assert_eq!(statement.sign(&key).unwrap(), envelope);
}

#[test]
fn the_statement_json_has_the_in_toto_shape() {
    let envelope = result_statement().sign(&key(1)).unwrap();
    let payload: serde_json::Value = serde_json::from_slice(envelope.payload_unverified()).unwrap();
    assert_eq!(payload["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        payload["predicateType"],
        "https://proctor.dev/attestation/eval-result/v4"
    );
    assert_eq!(payload["subject"][0]["name"], "eval.wasm");
    assert_eq!(
        payload["subject"][1]["digest"]["sha256"],
        report().dataset.sha256.to_hex()
    );
    let predicate = &payload["predicate"];
    for field in [
        "job_id",
        "status",
        "eval",
        "dataset",
        "model",
        "policy",
        "samples",
        "usage",
        "metrics",
        "release",
        "started_at",
        "finished_at",
        "accepted_log_index",
        "log_index",
        "service_version",
    ] {
        assert!(predicate.get(field).is_some(), "{field}");
    }
    assert!(predicate.get("reason").is_none());
    assert_eq!(predicate["model"]["ref"], "builtin:arith");
}

#[test]
fn a_job_accepted_statement_round_trips_and_is_not_a_result() {
    let report = report();
    let accepted = JobAccepted {
        job_id: "job-1".into(),
        evaluator: "uni-lab".into(),
        eval: report.eval.clone(),
        dataset: report.dataset.clone(),
        model: AttestedModel::new("acme", &report.model),
        policy: report.policy.clone(),
        accepted_at: "2025-01-31T11:59:00Z".into(),
        leakage: leakage(),
        exposure: Exposure { jobs: 2, items: 4 },
        log_index: 0,
        service_version: "0.1.0".into(),
    }
    .into_statement();
    let key = key(2);
    let envelope = accepted.sign(&key).unwrap();
    let payload = envelope.verify(&[key.verifying_key()]).unwrap().payload;
    assert_eq!(
        Statement::<JobAccepted>::from_payload(payload).unwrap(),
        accepted
    );
    assert!(Statement::<EvalResult>::from_payload(payload).is_err());
    let json: serde_json::Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(json["predicate"]["created_at"], "2025-01-31T11:59:00Z");
    assert_eq!(json["predicate"]["producer"]["id"], "uni-lab");
}

#[test]
fn standard_field_names_repeat_proctors_own() {
    // docs/in-toto-mapping.md: eval-result v0.1 (in-toto/attestation PR 575) names.
    let key = key(1);
    let envelope = result_statement().sign(&key).unwrap();
    let payload = envelope.verify(&[key.verifying_key()]).unwrap().payload;
    let json: serde_json::Value = serde_json::from_slice(payload).unwrap();
    let p = &json["predicate"];
    assert_eq!(p["evaluatedAt"], p["finished_at"]);
    assert_eq!(p["suite"]["name"], "arith");
    assert_eq!(p["suite"]["version"], "1.0.0");
    assert_eq!(p["sampleSize"], p["samples"]["total"]);
    assert_eq!(p["commitments"]["dataset"]["alg"], "sha256");
    assert_eq!(p["commitments"]["dataset"]["value"], p["dataset"]["sha256"]);
    assert_eq!(p["commitments"]["dataset"]["salted"], false);
    assert!(p["commitments"].get("model").is_none());
    assert_eq!(p["assuranceLevel"], "third_party");
    assert_eq!(
        p["harness"],
        serde_json::json!({"name": "proctor", "version": "0.1.0"})
    );
    // No verdicts Proctor does not make.
    assert!(p.get("claims").is_none());
    // Proctor's own fields come first, in their order, as before.
    let text = std::str::from_utf8(payload).unwrap();
    assert!(text.find("\"job_id\"").unwrap() < text.find("\"evaluatedAt\"").unwrap());
    assert!(text.find("\"service_version\"").unwrap() < text.find("\"evaluatedAt\"").unwrap());
}

#[test]
fn flipping_any_byte_of_the_envelope_is_detected() {
    let key = key(1);
    let keys = [key.verifying_key()];
    let bytes = result_statement().sign(&key).unwrap().into_bytes();
    for i in 0..bytes.len() {
        for bit in [0x01, 0x20] {
            let mut tampered = bytes.clone();
            tampered[i] ^= bit;
            let verified = Envelope::from_bytes(&tampered).and_then(|e| {
                e.verify(&keys)?;
                Ok(())
            });
            assert!(verified.is_err(), "byte {i} ^ {bit:#x} went unnoticed");
        }
    }
}

/// Re-encodes an envelope with one of its decoded parts changed, as a forger would.
fn reencode(payload: &[u8], payload_type: &str, keyid: &str, sig: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::to_vec(&serde_json::json!({
        "payload": b64.encode(payload),
        "payloadType": payload_type,
        "signatures": [{"keyid": keyid, "sig": b64.encode(sig)}],
    }))
    .unwrap()
}

#[test]
fn flipping_any_byte_of_the_payload_the_signature_or_the_key_id_is_detected() {
    let key = key(1);
    let keys = [key.verifying_key()];
    let envelope = result_statement().sign(&key).unwrap();
    let payload = envelope.payload_unverified().to_vec();
    let sig = envelope.signatures()[0].sig.clone();
    let keyid = envelope.signatures()[0].keyid.clone();
    // Re-encoding the untouched parts gives a valid envelope: the checks below test the change.
    let same = Envelope::from_bytes(&reencode(&payload, PAYLOAD_TYPE, &keyid, &sig)).unwrap();
    same.verify(&keys).unwrap();

    for i in 0..payload.len() {
        let mut p = payload.clone();
        p[i] ^= 0x01;
        let env = Envelope::from_bytes(&reencode(&p, PAYLOAD_TYPE, &keyid, &sig)).unwrap();
        assert!(
            matches!(env.verify(&keys), Err(DsseError::BadSignature(_))),
            "payload byte {i}"
        );
    }
    for i in 0..sig.len() {
        let mut s = sig.clone();
        s[i] ^= 0x01;
        let env = Envelope::from_bytes(&reencode(&payload, PAYLOAD_TYPE, &keyid, &s)).unwrap();
        assert!(
            matches!(env.verify(&keys), Err(DsseError::BadSignature(_))),
            "signature byte {i}"
        );
    }
    for i in 0..keyid.len() {
        let mut k = keyid.clone().into_bytes();
        k[i] ^= 0x01;
        let k = String::from_utf8(k).unwrap();
        let env = Envelope::from_bytes(&reencode(&payload, PAYLOAD_TYPE, &k, &sig)).unwrap();
        assert!(
            matches!(env.verify(&keys), Err(DsseError::UnknownKey(_))),
            "key id byte {i}"
        );
    }
    let env = Envelope::from_bytes(&reencode(&payload, "application/json", &keyid, &sig)).unwrap();
    assert!(env.verify(&keys).is_err(), "payload type");
}

#[test]
fn changing_a_subject_digest_breaks_the_signature() {
    let key = key(1);
    let envelope = result_statement().sign(&key).unwrap();
    let text = String::from_utf8(envelope.payload_unverified().to_vec()).unwrap();
    let digest = report().dataset.sha256.to_hex();
    let other = Sha256Digest::of(b"another dataset").to_hex();
    let forged_payload = text.replace(&digest, &other);
    assert_ne!(forged_payload, text);
    let sig = &envelope.signatures()[0];
    let forged = Envelope::from_bytes(&reencode(
        forged_payload.as_bytes(),
        PAYLOAD_TYPE,
        &sig.keyid,
        &sig.sig,
    ))
    .unwrap();
    assert!(matches!(
        forged.verify(&[key.verifying_key()]),
        Err(DsseError::BadSignature(_))
    ));
}

#[test]
fn a_signature_by_another_key_is_rejected() {
    let ours = key(1);
    let theirs = key(2);
    let by_them = result_statement().sign(&theirs).unwrap();
    // Under its own key id: a key we do not hold.
    assert!(matches!(
        by_them.verify(&[ours.verifying_key()]),
        Err(DsseError::UnknownKey(_))
    ));
    // Relabelled with our key id: the signature does not verify.
    let sig = &by_them.signatures()[0];
    let relabelled = Envelope::from_bytes(&reencode(
        by_them.payload_unverified(),
        PAYLOAD_TYPE,
        &ours.key_id(),
        &sig.sig,
    ))
    .unwrap();
    assert!(matches!(
        relabelled.verify(&[ours.verifying_key()]),
        Err(DsseError::BadSignature(_))
    ));
    // A second, unknown signature beside ours is not ignored.
    let ours_env = result_statement().sign(&ours).unwrap();
    let mut value: serde_json::Value = serde_json::from_slice(ours_env.as_bytes()).unwrap();
    let extra: serde_json::Value = serde_json::from_slice(by_them.as_bytes()).unwrap();
    value["signatures"]
        .as_array_mut()
        .unwrap()
        .push(extra["signatures"][0].clone());
    let both = Envelope::from_bytes(&serde_json::to_vec(&value).unwrap()).unwrap();
    assert!(both.verify(&[ours.verifying_key()]).is_err());
    both.verify(&[ours.verifying_key(), theirs.verifying_key()])
        .unwrap();
}

#[test]
fn envelopes_without_signatures_or_with_extra_fields_are_refused() {
    let key = key(1);
    let unsigned = br#"{"payload":"aGk=","payloadType":"t","signatures":[]}"#;
    assert_eq!(
        Envelope::from_bytes(unsigned)
            .unwrap()
            .verify(&[key.verifying_key()]),
        Err(DsseError::Unsigned)
    );
    let extra = br#"{"payload":"aGk=","payloadType":"t","signatures":[],"x":1}"#;
    assert!(matches!(
        Envelope::from_bytes(extra),
        Err(DsseError::Malformed(_))
    ));
    let not_canonical = br#"{"payload":"aGl=","payloadType":"t","signatures":[]}"#;
    assert!(Envelope::from_bytes(not_canonical).is_err());
}

#[test]
fn the_signature_covers_the_pae_not_the_json() {
    let key = key(1);
    let envelope = Envelope::sign(PAYLOAD_TYPE, b"{}", &key).unwrap();
    key.verifying_key()
        .verify(&pae(PAYLOAD_TYPE, b"{}"), &envelope.signatures()[0].sig)
        .unwrap();
}
