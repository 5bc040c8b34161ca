//! The built-in models: deterministic stand-ins for a vendor's endpoint, for tests, benchmarks
//! and the demo. They answer in-process, behind the same [`Model`] trait as the HTTP adapters.
//!
//! | ref | answers |
//! | --- | --- |
//! | `builtin:arith` | the sum of the first `A + B` in the last user message, as bare digits; else `I don't know` |
//! | `builtin:echo` | the last user message |
//! | `builtin:refuse` | `I can't help with that.`, finish `refused` |
//! | `builtin:lm` | one word, the argmax of a toy language model's seeded logits with near ties, sampled at the request's temperature ([`crate::builtin_lm`]) |
//!
//! Options as a query string: `latency_ms` (every model) delays each answer;
//! `error_rate` (arith only) makes that share of answers wrong (the sum plus one), chosen from a
//! hash of the seed and the prompt, so the same prompt gets the same answer on every run;
//! `weights` (lm only, an integer, 0 by default) seeds the toy model's logits, `swap_after`
//! (lm only) perturbs them from the instance's `N+1`-th query on (a silent swap mid-job), and
//! `noise` (lm only, 0 to 10) adds serving noise of that scale to every answer, also at
//! temperature 0.
//! Tokens are whitespace-separated words: all messages in, the reply out; `max_tokens` cuts the
//! reply to that many words (finish `length`).

use std::time::Duration;

use async_trait::async_trait;
use proctor_core::{
    Completion, CompletionRequest, FinishReason, Model, ModelDescriptor, ModelError, Role,
};

use crate::builtin_lm::ToyLm;
use crate::error::ModelRefError;

/// Longest latency a built-in accepts: ten minutes, past any sample timeout.
const MAX_LATENCY_MS: u64 = 600_000;

/// Which built-in behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinKind {
    /// Answers `A + B`.
    Arith,
    /// Repeats the last user message.
    Echo,
    /// Declines everything.
    Refuse,
    /// A toy language model with near ties.
    Lm,
}

impl BuiltinKind {
    fn name(self) -> &'static str {
        match self {
            BuiltinKind::Arith => "arith",
            BuiltinKind::Echo => "echo",
            BuiltinKind::Refuse => "refuse",
            BuiltinKind::Lm => "lm",
        }
    }
}

/// A built-in model with its options.
#[derive(Debug, Clone)]
pub struct Builtin {
    reference: String,
    kind: BuiltinKind,
    latency: Duration,
    error_rate: f64,
    seed: u64,
    lm: ToyLm,
}

impl Builtin {
    /// A built-in with no latency and no errors.
    pub fn new(kind: BuiltinKind) -> Builtin {
        Builtin {
            reference: format!("builtin:{}", kind.name()),
            kind,
            latency: Duration::ZERO,
            error_rate: 0.0,
            seed: 0,
            lm: ToyLm::default(),
        }
    }

    /// Parses `builtin:NAME[?key=value&...]`.
    pub fn parse(reference: &str, seed: u64) -> Result<Builtin, ModelRefError> {
        let rest = reference
            .strip_prefix("builtin:")
            .ok_or_else(|| ModelRefError::UnknownScheme(clip(reference)))?;
        let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
        let kind = match name {
            "arith" => BuiltinKind::Arith,
            "echo" => BuiltinKind::Echo,
            "refuse" => BuiltinKind::Refuse,
            "lm" => BuiltinKind::Lm,
            other => return Err(ModelRefError::UnknownBuiltin(clip(other))),
        };
        let mut model = Builtin::new(kind);
        model.reference = reference.to_owned();
        model.seed = seed;
        model.lm.seed = seed;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = |reason: &str| ModelRefError::BadOption {
                key: clip(key),
                reason: reason.to_owned(),
            };
            match key {
                "latency_ms" => {
                    let ms: u64 = value
                        .parse()
                        .map_err(|_| bad("must be a whole number of milliseconds"))?;
                    if ms > MAX_LATENCY_MS {
                        return Err(bad("must be at most 600000"));
                    }
                    model.latency = Duration::from_millis(ms);
                }
                "error_rate" if kind == BuiltinKind::Arith => {
                    let rate: f64 = value.parse().map_err(|_| bad("must be a number"))?;
                    if !(0.0..=1.0).contains(&rate) {
                        return Err(bad("must be between 0 and 1"));
                    }
                    model.error_rate = rate;
                }
                "error_rate" => return Err(bad("only builtin:arith takes it")),
                "weights" | "swap_after" | "noise" if kind != BuiltinKind::Lm => {
                    return Err(bad("only builtin:lm takes it"));
                }
                "weights" => {
                    model.lm.weights = value.parse().map_err(|_| bad("must be a whole number"))?;
                }
                "swap_after" => {
                    model.lm.swap_after = Some(
                        value
                            .parse()
                            .map_err(|_| bad("must be a whole number of queries"))?,
                    );
                }
                "noise" => {
                    let noise: f64 = value.parse().map_err(|_| bad("must be a number"))?;
                    if !(0.0..=10.0).contains(&noise) {
                        return Err(bad("must be between 0 and 10"));
                    }
                    model.lm.noise = noise;
                }
                _ => {
                    return Err(bad(
                        "unknown option; the options are latency_ms, error_rate, weights, \
                         swap_after and noise",
                    ));
                }
            }
        }
        Ok(model)
    }

    /// Which behaviour this is.
    pub fn kind(&self) -> BuiltinKind {
        self.kind
    }

    fn answer(&self, request: &CompletionRequest) -> (String, FinishReason) {
        let last_user = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map_or("", |m| m.content.as_str());
        match self.kind {
            BuiltinKind::Arith => match first_sum(last_user) {
                Some(sum) if self.answers_wrong(request) => {
                    ((sum + 1).to_string(), FinishReason::Stop)
                }
                Some(sum) => (sum.to_string(), FinishReason::Stop),
                None => ("I don't know".to_owned(), FinishReason::Stop),
            },
            BuiltinKind::Echo => (last_user.to_owned(), FinishReason::Stop),
            BuiltinKind::Refuse => ("I can't help with that.".to_owned(), FinishReason::Refused),
            BuiltinKind::Lm => (self.lm.answer(request), FinishReason::Stop),
        }
    }

    /// The error draw: a hash of the seed and every message, mapped to [0, 1).
    fn answers_wrong(&self, request: &CompletionRequest) -> bool {
        if self.error_rate <= 0.0 {
            return false;
        }
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.seed.to_le_bytes());
        for m in &request.messages {
            ctx.update(&(m.content.len() as u64).to_le_bytes());
            ctx.update(m.content.as_bytes());
        }
        let digest = ctx.finish();
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest.as_ref()[..8]);
        let draw = (u64::from_le_bytes(head) >> 11) as f64 / (1u64 << 53) as f64;
        draw < self.error_rate
    }
}

#[async_trait]
impl Model for Builtin {
    fn descriptor(&self) -> ModelDescriptor {
        ModelDescriptor {
            reference: self.reference.clone(),
            name: self.kind.name().to_owned(),
            version: concat!("builtin-", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let (text, finish) = self.answer(&request);
        let input_tokens: usize = request
            .messages
            .iter()
            .map(|m| m.content.split_whitespace().count())
            .sum();
        let limit = request.params.max_tokens as usize;
        let words = text.split_whitespace().count();
        let (text, finish, output_tokens) = if words > limit {
            let cut: Vec<&str> = text.split_whitespace().take(limit).collect();
            (cut.join(" "), FinishReason::Length, limit)
        } else {
            (text, finish, words)
        };
        Ok(Completion {
            text,
            finish,
            input_tokens: saturate(input_tokens),
            output_tokens: saturate(output_tokens),
        })
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn clip(s: &str) -> String {
    s.chars().take(100).collect()
}

/// The sum of the first `A + B` (optionally signed integers, spaces allowed around `+`).
fn first_sum(text: &str) -> Option<i128> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if let Some((a, after_a)) = integer_at(bytes, i) {
            let mut j = after_a;
            while j < bytes.len() && bytes[j] == b' ' {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'+' {
                j += 1;
                while j < bytes.len() && bytes[j] == b' ' {
                    j += 1;
                }
                if let Some((b, _)) = integer_at(bytes, j) {
                    return a.checked_add(b);
                }
            }
            i = after_a;
        } else {
            i += 1;
        }
    }
    None
}

/// An integer starting at `start` (a leading `-` allowed), and the index after it.
fn integer_at(bytes: &[u8], start: usize) -> Option<(i128, usize)> {
    let digits_from = if bytes.get(start) == Some(&b'-') {
        start + 1
    } else {
        start
    };
    let end = digits_from
        + bytes[digits_from.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    if end == digits_from {
        return None;
    }
    // Digits only; a number too large for i128 is not a question the model can answer.
    let text = std::str::from_utf8(&bytes[start..end]).ok()?;
    Some((text.parse().ok()?, end))
}

#[cfg(test)]
mod tests {
    use proctor_core::{Message, Params};

    use super::*;

    fn ask(text: &str, max_tokens: u32) -> CompletionRequest {
        CompletionRequest {
            messages: vec![Message {
                role: Role::User,
                content: text.to_owned(),
            }],
            params: Params {
                max_tokens,
                temperature: Some(0.0),
                stop: vec![],
            },
        }
    }

    async fn reply(model: &Builtin, text: &str) -> Completion {
        model
            .complete(ask(text, 16))
            .await
            .expect("built-ins always answer")
    }

    #[tokio::test]
    async fn arith_answers_the_first_sum_as_bare_digits() {
        let model = Builtin::new(BuiltinKind::Arith);
        assert_eq!(reply(&model, "What is 3 + 4?").await.text, "7");
        assert_eq!(reply(&model, "What is -12+5? And 1 + 1?").await.text, "-7");
        assert_eq!(reply(&model, "x 10 y 2 + 2").await.text, "4");
        assert_eq!(
            reply(&model, "What is the capital of France?").await.text,
            "I don't know"
        );
        let c = reply(&model, "What is 3 + 4?").await;
        assert_eq!(
            (c.input_tokens, c.output_tokens, c.finish),
            (5, 1, FinishReason::Stop)
        );
    }

    #[tokio::test]
    async fn echo_and_refuse_behave_as_documented() {
        let echo = Builtin::new(BuiltinKind::Echo);
        assert_eq!(reply(&echo, "hello there").await.text, "hello there");
        let refuse = Builtin::new(BuiltinKind::Refuse);
        let c = reply(&refuse, "anything").await;
        assert_eq!(
            (c.text.as_str(), c.finish),
            ("I can't help with that.", FinishReason::Refused)
        );
    }

    #[tokio::test]
    async fn max_tokens_cuts_the_reply_in_words() {
        let echo = Builtin::new(BuiltinKind::Echo);
        let c = echo
            .complete(ask("one two three four", 2))
            .await
            .expect("answer");
        assert_eq!(
            (c.text.as_str(), c.output_tokens, c.finish),
            ("one two", 2, FinishReason::Length)
        );
    }

    #[tokio::test]
    async fn the_error_rate_is_deterministic_per_prompt_and_close_to_its_target() {
        let model = Builtin::parse("builtin:arith?error_rate=0.25", 7).expect("valid ref");
        let mut wrong = 0;
        for a in 0..2000 {
            let question = format!("What is {a} + 1?");
            let first = reply(&model, &question).await.text;
            assert_eq!(
                first,
                reply(&model, &question).await.text,
                "same prompt, same answer"
            );
            if first != (a + 1).to_string() {
                assert_eq!(
                    first,
                    (a + 2).to_string(),
                    "a wrong answer is the sum plus one"
                );
                wrong += 1;
            }
        }
        assert!(
            (400..600).contains(&wrong),
            "{wrong} wrong answers of 2000 at rate 0.25"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_every_answer() {
        let model = Builtin::parse("builtin:echo?latency_ms=50", 0).expect("valid ref");
        let start = tokio::time::Instant::now();
        reply(&model, "hi").await;
        assert_eq!(start.elapsed(), Duration::from_millis(50));
    }

    #[test]
    fn bad_references_name_what_is_wrong() {
        let err = |r: &str| Builtin::parse(r, 0).expect_err("invalid").to_string();
        assert!(err("builtin:oracle").contains("\"oracle\""));
        assert!(err("builtin:arith?latency=5").contains("\"latency\""));
        assert!(err("builtin:arith?error_rate=2").contains("between 0 and 1"));
        assert!(err("builtin:echo?error_rate=0.1").contains("only builtin:arith"));
        assert!(err("builtin:arith?latency_ms=-1").contains("milliseconds"));
        assert!(err("builtin:arith?swap_after=3").contains("only builtin:lm"));
        assert!(err("builtin:lm?noise=11").contains("between 0 and 10"));
        assert!(err("builtin:lm?swap_after=x").contains("whole number"));
        let lm = Builtin::parse("builtin:lm?weights=3&swap_after=10&noise=0.1", 1).expect("valid");
        assert_eq!(lm.kind(), BuiltinKind::Lm);
        assert!(crate::parse_model_ref("openai:gpt", None).is_err());
        let ok = Builtin::parse("builtin:arith?latency_ms=50&error_rate=0.1", 3).expect("valid");
        assert_eq!(
            ok.descriptor().reference,
            "builtin:arith?latency_ms=50&error_rate=0.1"
        );
        assert_eq!(ok.descriptor().name, "arith");
    }
}
