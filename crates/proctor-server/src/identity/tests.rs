//! The identity test's measured power and false-positive rate, on `builtin:lm` over many
//! seeds: each seed is a model (its weights) with a probe secret of its own, fingerprinted as
//! registration does, then checked as a job is (a check before, a check after).

use proctor_core::identity::{IdentityVerdict, JOB_QUERIES, ModelIdentity};
use proctor_core::identity_probes::{self, Fingerprint, ProbeSecret};
use proctor_models::builtin::Builtin;

fn secret(seed: u64) -> ProbeSecret {
    let digest = ring::digest::digest(&ring::digest::SHA256, &seed.to_le_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    ProbeSecret::from_bytes(bytes)
}

fn lm(weights: u64, options: &str, seed: u64) -> Builtin {
    Builtin::parse(&format!("builtin:lm?weights={weights}{options}"), seed).expect("a valid ref")
}

async fn register(weights: u64, options: &str) -> Fingerprint {
    identity_probes::fingerprint(&lm(weights, options, 1), &secret(weights))
        .await
        .expect("built-ins answer")
}

/// A job on `model`: a check before its samples, `samples` queries of its own, a check after.
async fn job(
    model: &Builtin,
    weights: u64,
    fingerprint: &Fingerprint,
    samples: u64,
) -> ModelIdentity {
    let secret = secret(weights);
    let mut state = weights;
    let mut draw = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    let before = identity_probes::check(model, &secret, fingerprint, &mut draw)
        .await
        .expect("built-ins answer");
    for i in 0..samples {
        let ask = proctor_core::CompletionRequest {
            messages: vec![proctor_core::Message {
                role: proctor_core::Role::User,
                content: format!("What is {i} + 1?"),
            }],
            params: proctor_core::Params {
                max_tokens: 16,
                temperature: Some(0.0),
                stop: vec![],
            },
        };
        proctor_core::Model::complete(model, ask)
            .await
            .expect("built-ins answer");
    }
    let after = identity_probes::check(model, &secret, fingerprint, &mut draw)
        .await
        .expect("built-ins answer");
    assert_eq!(before.plus(after).queries, JOB_QUERIES);
    ModelIdentity::assess(before.plus(after))
}

struct Tally {
    registered: u64,
    usable: u64,
    border: u64,
    changed: u64,
    mismatches: Vec<u64>,
}

async fn tally(seeds: std::ops::Range<u64>, registered_as: &str, job_as: &str) -> Tally {
    let mut t = Tally {
        registered: 0,
        usable: 0,
        border: 0,
        changed: 0,
        mismatches: Vec::new(),
    };
    for weights in seeds {
        t.registered += 1;
        let fingerprint = register(weights, registered_as).await;
        if !fingerprint.usable() {
            continue;
        }
        t.usable += 1;
        t.border += fingerprint.probes.iter().filter(|p| p.border).count() as u64;
        let model = lm(weights, job_as, weights + 7);
        let identity = job(&model, weights, &fingerprint, 40).await;
        t.mismatches.push(identity.mismatches);
        if identity.verdict == IdentityVerdict::Changed {
            t.changed += 1;
        }
    }
    t
}

fn report(what: &str, t: &Tally) {
    let mean = t.mismatches.iter().sum::<u64>() as f64 / t.mismatches.len().max(1) as f64;
    eprintln!(
        "{what}: {} of {} registrations usable, {:.1} border probes of 32 on average, \
         {} of {} jobs flagged changed, {mean:.2} mismatches of 64 on average",
        t.usable,
        t.registered,
        t.border as f64 / t.usable.max(1) as f64,
        t.changed,
        t.usable,
    );
}

#[tokio::test]
async fn an_unchanged_model_is_not_flagged_over_two_hundred_seeds() {
    let t = tally(0..200, "", "").await;
    report("unchanged", &t);
    assert_eq!(t.usable, 200, "a noiseless model is always stable");
    assert_eq!(t.changed, 0, "false positives");
}

#[tokio::test]
async fn with_serving_noise_an_unchanged_model_is_flagged_no_more_than_the_level_allows() {
    // Noise of 0.02 logits at every answer, temperature 0 included: some near ties flip
    // between two identical queries, as batched inference does.
    let t = tally(1000..1200, "&noise=0.02", "&noise=0.02").await;
    report("unchanged, serving noise 0.02", &t);
    assert!(t.usable >= 150, "{} of 200 usable", t.usable);
    // At ALPHA = 0.001 per job, more than 2 of 200 would be past the 1.8% tail.
    assert!(
        t.changed <= 2,
        "{} false positives of {}",
        t.changed,
        t.usable
    );
}

#[tokio::test]
async fn a_model_swapped_mid_job_is_flagged_changed_with_the_stated_power() {
    // The swap comes after the check before the job and 10 of its 40 queries.
    let t = tally(0..200, "", &format!("&swap_after={}", 32 + 10)).await;
    report("swapped mid-job", &t);
    let power = t.changed as f64 / t.usable as f64;
    assert!(power >= 0.9, "power {power}");
}

#[tokio::test]
async fn a_model_swapped_before_the_job_is_always_flagged() {
    let t = tally(0..200, "", "&swap_after=0").await;
    report("swapped before the job", &t);
    assert!(
        t.changed as f64 >= 0.99 * t.usable as f64,
        "{} of {}",
        t.changed,
        t.usable
    );
}
