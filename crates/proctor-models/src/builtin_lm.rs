//! `builtin:lm`: a toy language model with near ties, for the identity canaries' tests.
//!
//! Its answer to a prompt is one word of [`VOCABULARY`]: the argmax over the words of
//! `score(prompt, word) + temperature · G + noise · U`, where `score` is a logit in
//! `[0, LOGIT_SCALE)` drawn from a hash of the model's `weights` (an option, 0 by default), the
//! prompt and the word; `G` is Gumbel noise (so the answer is a sample of the softmax at that
//! temperature) and `U` uniform in `[-1, 1]` (serving noise that a real endpoint shows even at
//! temperature 0), both drawn from a hash of the instance's seed, the query's ordinal and the
//! word. With six words and logits that spread over 4, many prompts have a top two within a
//! fraction of a logit: near ties, whose answer varies at a low temperature.
//!
//! `swap_after=N`: from its `N+1`-th query on, the instance answers with perturbed weights:
//! each logit moves by up to [`SWAP_SHIFT`] (a hash of the weights, the prompt and the word),
//! a small change that flips many near ties and few other answers.
//!
//! Deterministic given its seed and the order of its queries: the instance counts them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proctor_core::CompletionRequest;

/// The words the model answers with.
pub const VOCABULARY: [&str; 6] = ["yes", "no", "maybe", "red", "blue", "green"];

/// The spread of the logits.
pub const LOGIT_SCALE: f64 = 4.0;

/// How far a swap moves each logit, at most.
pub const SWAP_SHIFT: f64 = 0.8;

/// The toy model's state and options.
#[derive(Debug, Clone, Default)]
pub struct ToyLm {
    /// The seed of its weights (`weights=`).
    pub weights: u64,
    /// Queries before its weights are perturbed (`swap_after=`).
    pub swap_after: Option<u64>,
    /// The scale of its serving noise (`noise=`).
    pub noise: f64,
    /// The seed of its sampling.
    pub seed: u64,
    /// Queries answered so far (shared by clones: one endpoint).
    pub answered: Arc<AtomicU64>,
}

/// A uniform draw in `[0, 1)` from a hash of `parts`.
fn uniform(parts: &[&[u8]]) -> f64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part);
    }
    let digest = ctx.finish();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest.as_ref()[..8]);
    (u64::from_le_bytes(head) >> 11) as f64 / (1u64 << 53) as f64
}

impl ToyLm {
    /// The logit of `word` for `prompt`, before or after the swap.
    pub fn logit(&self, prompt: &str, word: &str, swapped: bool) -> f64 {
        let weights = self.weights.to_le_bytes();
        let base = LOGIT_SCALE
            * uniform(&[
                &b"score"[..],
                &weights[..],
                prompt.as_bytes(),
                word.as_bytes(),
            ]);
        if !swapped {
            return base;
        }
        let shift =
            2.0 * uniform(&[
                &b"swap"[..],
                &weights[..],
                prompt.as_bytes(),
                word.as_bytes(),
            ]) - 1.0;
        base + SWAP_SHIFT * shift
    }

    /// Answers `request`: the words of every message are the prompt.
    pub fn answer(&self, request: &CompletionRequest) -> String {
        let call = self.answered.fetch_add(1, Ordering::SeqCst);
        let swapped = self.swap_after.is_some_and(|n| call >= n);
        let prompt: Vec<&str> = request
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        let prompt = prompt.join("\n");
        let temperature = request.params.temperature.unwrap_or(0.0).max(0.0);
        let (seed, call) = (self.seed.to_le_bytes(), call.to_le_bytes());
        let mut best = (f64::NEG_INFINITY, VOCABULARY[0]);
        for word in VOCABULARY {
            let mut value = self.logit(&prompt, word, swapped);
            if temperature > 0.0 {
                // Gumbel-max: argmax(logit / T + G) samples softmax(logit / T).
                let u = uniform(&[&b"gumbel"[..], &seed[..], &call[..], word.as_bytes()])
                    .max(f64::MIN_POSITIVE);
                value += temperature * -(-u.ln()).ln();
            }
            if self.noise > 0.0 {
                let u = uniform(&[&b"noise"[..], &seed[..], &call[..], word.as_bytes()]);
                value += self.noise * (2.0 * u - 1.0);
            }
            if value > best.0 {
                best = (value, word);
            }
        }
        best.1.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use proctor_core::{Message, Params, Role};

    use super::*;

    fn ask(text: &str, temperature: f64) -> CompletionRequest {
        CompletionRequest {
            messages: vec![Message {
                role: Role::User,
                content: text.to_owned(),
            }],
            params: Params {
                max_tokens: 16,
                temperature: Some(temperature),
                stop: vec![],
            },
        }
    }

    #[test]
    fn at_temperature_zero_the_answer_is_the_argmax_and_repeats() {
        let lm = ToyLm::default();
        for i in 0..50 {
            let prompt = format!("prompt {i}");
            let first = lm.answer(&ask(&prompt, 0.0));
            assert_eq!(first, lm.answer(&ask(&prompt, 0.0)));
            let top = VOCABULARY
                .iter()
                .max_by(|a, b| {
                    lm.logit(&prompt, a, false)
                        .total_cmp(&lm.logit(&prompt, b, false))
                })
                .expect("words");
            assert_eq!(&first, top);
        }
    }

    #[test]
    fn near_ties_vary_at_a_low_temperature_and_clear_winners_do_not() {
        let lm = ToyLm::default();
        let gap = |prompt: &str| {
            let mut logits: Vec<f64> = VOCABULARY
                .iter()
                .map(|w| lm.logit(prompt, w, false))
                .collect();
            logits.sort_by(|a, b| b.total_cmp(a));
            logits[0] - logits[1]
        };
        let (mut tight, mut clear) = (None, None);
        for i in 0..200 {
            let prompt = format!("prompt {i}");
            let g = gap(&prompt);
            if g < 0.05 && tight.is_none() {
                tight = Some(prompt);
            } else if g > 2.0 && clear.is_none() {
                clear = Some(prompt);
            }
        }
        let (tight, clear) = (tight.expect("a near tie"), clear.expect("a clear winner"));
        let answers = |prompt: &str| {
            (0..40)
                .map(|_| lm.answer(&ask(prompt, 0.2)))
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        assert!(answers(&tight) > 1);
        assert_eq!(answers(&clear), 1);
    }

    #[test]
    fn a_swap_flips_some_answers_and_keeps_most() {
        let lm = ToyLm {
            swap_after: Some(0),
            ..ToyLm::default()
        };
        let flipped = (0..1000)
            .filter(|i| {
                let prompt = format!("prompt {i}");
                let before = ToyLm::default().answer(&ask(&prompt, 0.0));
                before != lm.answer(&ask(&prompt, 0.0))
            })
            .count();
        assert!((50..400).contains(&flipped), "{flipped} of 1000 flipped");
    }
}
