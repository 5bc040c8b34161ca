//! The probe set of a model's identity canaries: candidate prompts generated from a secret, the
//! border search that picks the probes at registration, and a check that sends them again.
//!
//! Everything is regenerated from the model's [`ProbeSecret`] (32 bytes from a CSPRNG, kept
//! sealed by the service): candidate `i`'s text is a function of the secret and `i`, and the
//! answers are kept only as HMAC-SHA256 under a key derived from the secret. So what is stored
//! of a fingerprint (candidate indexes and answer hashes) says nothing of the probes' text or
//! the model's answers to whoever reads the database without the service's key.
//!
//! # The border search, and what it costs
//!
//! B3IT-style: a probe is most sensitive to a change of model where the model's top two
//! continuations nearly tie. Black-box, a near tie shows as an answer that varies at a low
//! temperature. Registration:
//!
//! 1. sends each of [`CANDIDATES`] candidates [`BORDER_SAMPLES`] times at
//!    [`BORDER_TEMPERATURE`]: a candidate whose answers differ is a border candidate;
//! 2. takes border candidates first, then the others, and sends each twice at temperature 0,
//!    keeping it when both answers agree (the fingerprint holds the hash of that answer),
//!    until [`PROBES`] are kept;
//! 3. sends every kept probe once more at temperature 0 and counts the answers that differ:
//!    the model's measured null mismatches ([`crate::identity::unstable`] decides from them).
//!
//! At most [`MAX_REGISTRATION_QUERIES`] queries (`64·4 + 2·64 + 32 = 416`), sent one after
//! the other: about that many times the endpoint's latency. A check sends the [`PROBES`]
//! probes once each, in an order drawn afresh, with the request shape of ordinary traffic:
//! one user message, `max_tokens` [`PROBE_MAX_TOKENS`], temperature 0, no stop sequences.

use std::fmt;

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::identity::{CheckCounts, PROBES};
use crate::model::{CompletionRequest, Message, Model, ModelError, Params, Role};

/// Candidate prompts a registration tries.
pub const CANDIDATES: u64 = 64;

/// Low-temperature queries per candidate in the border search.
pub const BORDER_SAMPLES: u64 = 4;

/// The border search's temperature.
pub const BORDER_TEMPERATURE: f64 = 0.2;

/// `max_tokens` of every probe query.
pub const PROBE_MAX_TOKENS: u32 = 16;

/// The most queries a registration's fingerprint sends (module docs).
pub const MAX_REGISTRATION_QUERIES: u64 = CANDIDATES * BORDER_SAMPLES + 2 * CANDIDATES + PROBES;

/// A model's probe secret: the seed of its candidate prompts and the key of its answer hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct ProbeSecret([u8; 32]);

impl fmt::Debug for ProbeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProbeSecret(<redacted>)")
    }
}

/// Words the candidate prompts are made of.
const SUBJECTS: [&str; 16] = [
    "a lighthouse",
    "the colour of rust",
    "a quiet library",
    "an old bicycle",
    "the smell of rain",
    "a paper boat",
    "a mountain lake",
    "a broken clock",
    "a winter market",
    "the first snow",
    "a night train",
    "a glass of milk",
    "a forgotten key",
    "the sound of bells",
    "a desert road",
    "a spiral staircase",
];
const CHOICES: [&str; 24] = [
    "warm", "cold", "calm", "loud", "old", "new", "bright", "dark", "soft", "sharp", "slow",
    "fast", "sweet", "bitter", "heavy", "light", "red", "blue", "green", "grey", "round", "square",
    "near", "far",
];
const FRAMES: [&str; 4] = [
    "Answer with one word only. Is {s} more {a} or more {b}?",
    "One word, please: {s} feels {a} or {b}?",
    "Pick one word, {a} or {b}, for {s}. Reply with the word alone.",
    "Without explaining: would you call {s} {a} or {b}? One word.",
];

impl ProbeSecret {
    /// The secret with these bytes (as the service unsealed them).
    pub fn from_bytes(bytes: [u8; 32]) -> ProbeSecret {
        ProbeSecret(bytes)
    }

    /// Its bytes, to seal.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn derive(&self, label: &[u8]) -> hmac::Tag {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.0), label)
    }

    /// Candidate `index`'s text.
    pub fn prompt(&self, index: u64) -> String {
        let mut label = b"proctor identity prompt v1\n".to_vec();
        label.extend_from_slice(&index.to_le_bytes());
        let tag = self.derive(&label);
        let b = tag.as_ref();
        let pick = |i: usize, n: usize| usize::from(u16::from_le_bytes([b[i], b[i + 1]])) % n;
        let frame = FRAMES[pick(0, FRAMES.len())];
        let subject = SUBJECTS[pick(2, SUBJECTS.len())];
        let first = pick(4, CHOICES.len());
        // A second choice other than the first.
        let second = (first + 1 + pick(6, CHOICES.len() - 1)) % CHOICES.len();
        // A tail of digits makes every candidate's text its own, also when two draw the same
        // words.
        let nonce = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) % 10_000;
        format!(
            "{} (ref {nonce:04})",
            frame
                .replace("{s}", subject)
                .replace("{a}", CHOICES[first])
                .replace("{b}", CHOICES[second])
        )
    }

    /// The keyed hash of an answer, hex: HMAC-SHA256 of its text under a key derived from the
    /// secret.
    pub fn answer_hash(&self, answer: &str) -> String {
        let key = self.derive(b"proctor identity answer key v1");
        let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_ref());
        hex::encode(hmac::sign(&key, answer.as_bytes()).as_ref())
    }
}

/// One probe of a fingerprint: which candidate, and the hash of its temperature-0 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The candidate's index (its text is regenerated from the secret).
    pub candidate: u64,
    /// [`ProbeSecret::answer_hash`] of its temperature-0 answer.
    pub answer: String,
    /// Whether the border search found it a near tie.
    pub border: bool,
}

/// What registration measured: the probes and the figures of the search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The probes, at most [`PROBES`].
    pub probes: Vec<Probe>,
    /// Border candidates the search found (of [`CANDIDATES`]).
    pub border_found: u64,
    /// Repeated temperature-0 queries of the kept probes (step 3).
    pub null_queries: u64,
    /// How many of them differed from the fingerprint.
    pub null_mismatches: u64,
    /// Every query the registration sent.
    pub queries: u64,
}

impl Fingerprint {
    /// Whether checks may run on it: a full probe set, and serving noise within the test's
    /// null rate ([`crate::identity::unstable`]).
    pub fn usable(&self) -> bool {
        self.probes.len() as u64 == PROBES
            && !crate::identity::unstable(self.null_queries, self.null_mismatches)
    }
}

fn probe_request(prompt: &str, temperature: f64) -> CompletionRequest {
    CompletionRequest {
        messages: vec![Message {
            role: Role::User,
            content: prompt.to_owned(),
        }],
        params: Params {
            max_tokens: PROBE_MAX_TOKENS,
            temperature: Some(temperature),
            stop: Vec::new(),
        },
    }
}

async fn ask(model: &dyn Model, prompt: &str, temperature: f64) -> Result<String, ModelError> {
    Ok(model
        .complete(probe_request(prompt, temperature))
        .await?
        .text)
}

/// Fingerprints `model` on the candidates of `secret` (module docs).
///
/// # Errors
///
/// The first query that failed; a fingerprint is all or nothing.
pub async fn fingerprint(
    model: &dyn Model,
    secret: &ProbeSecret,
) -> Result<Fingerprint, ModelError> {
    let mut queries = 0;
    let mut border = Vec::new();
    let mut steady = Vec::new();
    for candidate in 0..CANDIDATES {
        let prompt = secret.prompt(candidate);
        let first = ask(model, &prompt, BORDER_TEMPERATURE).await?;
        let mut varied = false;
        for _ in 1..BORDER_SAMPLES {
            varied |= ask(model, &prompt, BORDER_TEMPERATURE).await? != first;
        }
        queries += BORDER_SAMPLES;
        if varied {
            border.push(candidate);
        } else {
            steady.push(candidate);
        }
    }
    let border_found = border.len() as u64;
    let mut probes = Vec::new();
    let ordered = border
        .into_iter()
        .map(|c| (c, true))
        .chain(steady.into_iter().map(|c| (c, false)));
    for (candidate, is_border) in ordered {
        if probes.len() as u64 == PROBES {
            break;
        }
        let prompt = secret.prompt(candidate);
        let answer = ask(model, &prompt, 0.0).await?;
        let again = ask(model, &prompt, 0.0).await?;
        queries += 2;
        if answer == again {
            probes.push(Probe {
                candidate,
                answer: secret.answer_hash(&answer),
                border: is_border,
            });
        }
    }
    let mut null_mismatches = 0;
    for probe in &probes {
        let answer = ask(model, &secret.prompt(probe.candidate), 0.0).await?;
        if secret.answer_hash(&answer) != probe.answer {
            null_mismatches += 1;
        }
    }
    let null_queries = probes.len() as u64;
    Ok(Fingerprint {
        probes,
        border_found,
        null_queries,
        null_mismatches,
        queries: queries + null_queries,
    })
}

/// Sends every probe of `fingerprint` once at temperature 0, in an order drawn from `draw`,
/// and counts the answers whose hash differs.
///
/// # Errors
///
/// The first query that failed: a check is all or nothing.
pub async fn check(
    model: &dyn Model,
    secret: &ProbeSecret,
    fingerprint: &Fingerprint,
    draw: &mut (dyn FnMut() -> u64 + Send),
) -> Result<CheckCounts, ModelError> {
    let mut order: Vec<&Probe> = fingerprint.probes.iter().collect();
    // Fisher-Yates.
    for i in (1..order.len()).rev() {
        let j = (draw() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut counts = CheckCounts::default();
    for probe in order {
        let answer = ask(model, &secret.prompt(probe.candidate), 0.0).await?;
        counts.queries += 1;
        if secret.answer_hash(&answer) != probe.answer {
            counts.mismatches += 1;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_a_function_of_the_secret_and_the_index() {
        let a = ProbeSecret::from_bytes([1; 32]);
        let b = ProbeSecret::from_bytes([2; 32]);
        assert_eq!(a.prompt(3), a.prompt(3));
        assert_ne!(a.prompt(3), a.prompt(4));
        assert_ne!(a.prompt(3), b.prompt(3));
        let texts: std::collections::BTreeSet<String> =
            (0..CANDIDATES).map(|i| a.prompt(i)).collect();
        assert_eq!(
            texts.len() as u64,
            CANDIDATES,
            "every candidate is its own text"
        );
    }

    #[test]
    fn answer_hashes_are_keyed_by_the_secret() {
        let a = ProbeSecret::from_bytes([1; 32]);
        let b = ProbeSecret::from_bytes([2; 32]);
        assert_eq!(a.answer_hash("yes"), a.answer_hash("yes"));
        assert_ne!(a.answer_hash("yes"), a.answer_hash("no"));
        assert_ne!(a.answer_hash("yes"), b.answer_hash("yes"));
        assert_eq!(a.answer_hash("yes").len(), 64);
        assert_eq!(format!("{a:?}"), "ProbeSecret(<redacted>)");
    }

    #[test]
    fn the_registration_bound_is_what_the_docs_say() {
        assert_eq!(MAX_REGISTRATION_QUERIES, 416);
    }
}
