//! A grant's usage profile: what its model queries looked like, one window of time at a time,
//! as aggregates that hold no prompt text, no model text and no per-query row.
//!
//! Each query is reduced, when it is sent, to [`QueryFeatures`]: its prompt's size, a keyed
//! hash of the whole prompt, a keyed hash of its template (the prompt's opening with digit
//! runs, quoted spans and long words masked, so prompts filled in from one template collide),
//! `max_tokens`, the number of stop sequences, and whether it asks for reasoning (a phrase such
//! as "step by step", or a long answer with no stop sequence). The hashes are HMAC-SHA256 under
//! a key the service holds ([`UsageKey`]): a plain hash of a short prompt could be reversed by
//! guessing it.
//!
//! A window's [`WindowProfile`] adds the features up: the query count, a histogram of prompt
//! sizes, the reasoning count, a HyperLogLog sketch of the prompt hashes (how many distinct
//! prompts) and a Misra-Gries summary of the template hashes (the most common templates and a
//! lower bound on their counts). All of it merges exactly (sketches by register maximum,
//! summaries by the Misra-Gries merge), so the profiles of many jobs and of many servers add
//! up to the window's, whatever order their batches arrive in, and a window's size is bounded
//! (one kilobyte of sketch and [`TEMPLATE_SLOTS`] template counters) however many queries it
//! holds.

use ring::hmac;

use crate::model::{CompletionRequest, Role};

/// Bins of the prompt-size histogram: prompt characters `< 32`, `< 64`, ... `< 8192`, and
/// `>= 8192` (powers of two from 32).
pub const SIZE_BINS: usize = 10;
/// Registers of the distinct-prompt sketch (HyperLogLog, 2^10): a relative standard error of
/// 1.04 / 32 ≈ 3.3 %.
pub const SKETCH_REGISTERS: usize = 1 << SKETCH_BITS;
const SKETCH_BITS: u32 = 10;
/// Counters of the template summary (Misra-Gries): a template's count is under-stated by at
/// most `queries / (TEMPLATE_SLOTS + 1)`.
pub const TEMPLATE_SLOTS: usize = 32;
/// Characters of the masked prompt that make its template.
pub const TEMPLATE_CHARS: usize = 24;
/// Words longer than this are masked in a template (a topic or a name filled into a slot).
pub const TEMPLATE_WORD: usize = 10;
/// A query with at least this `max_tokens` and no stop sequence asks for a long free answer.
pub const LONG_ANSWER_TOKENS: u32 = 512;

/// Phrases that ask a model to spell out its reasoning (matched lower-case).
const REASONING_PHRASES: &[&str] = &[
    "step by step",
    "step-by-step",
    "explain your reasoning",
    "show your reasoning",
    "show your work",
    "think through",
    "reason through",
    "chain of thought",
    "let's think",
    "walk me through",
];

/// The service's key for the usage profile's hashes. Every replica derives the same one from
/// the credential key, so hashes of one prompt agree across servers.
#[derive(Clone)]
pub struct UsageKey(hmac::Key);

impl std::fmt::Debug for UsageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsageKey(<redacted>)")
    }
}

impl UsageKey {
    /// The key derived from a 32-byte secret (HMAC-SHA256 of a fixed label under it), so the
    /// secret itself never keys the hashes.
    pub fn derive(secret: &[u8; 32]) -> UsageKey {
        let outer = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(&outer, b"proctor usage-profile hash key v1");
        UsageKey(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    /// The first 8 bytes of HMAC-SHA256 of `domain` and `bytes`, as a number.
    fn hash(&self, domain: u8, bytes: &[u8]) -> u64 {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(&[domain]);
        ctx.update(bytes);
        let tag = ctx.sign();
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.as_ref()[..8]);
        u64::from_be_bytes(first)
    }
}

/// What one query contributes to its window's profile; nothing of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryFeatures {
    /// Characters of all message contents.
    pub prompt_chars: u64,
    /// Keyed hash of the whole prompt (roles and contents).
    pub prompt_hash: u64,
    /// Keyed hash of the prompt's template ([`template_of`]).
    pub template_hash: u64,
    /// The query's `max_tokens` (after the policy).
    pub max_tokens: u32,
    /// How many stop sequences it set.
    pub stops: u32,
    /// Whether it asks for reasoning: a phrase of [`REASONING_PHRASES`], or at least
    /// [`LONG_ANSWER_TOKENS`] with no stop sequence.
    pub reasoning: bool,
}

impl QueryFeatures {
    /// The features of `request`, hashed under `key`. Reads the text once and keeps none of
    /// it.
    pub fn of(key: &UsageKey, request: &CompletionRequest) -> QueryFeatures {
        let mut whole = Vec::new();
        let mut chars = 0u64;
        let mut asks_reasoning = false;
        for message in &request.messages {
            whole.push(role_byte(message.role));
            whole.extend_from_slice(message.content.as_bytes());
            whole.push(0x1e);
            chars += message.content.chars().count() as u64;
            if !asks_reasoning && message.role != Role::Assistant {
                let lower = message.content.to_lowercase();
                asks_reasoning = REASONING_PHRASES.iter().any(|p| lower.contains(p));
            }
        }
        let stops = u32::try_from(request.params.stop.len()).unwrap_or(u32::MAX);
        let long_answer = request.params.max_tokens >= LONG_ANSWER_TOKENS && stops == 0;
        QueryFeatures {
            prompt_chars: chars,
            prompt_hash: key.hash(b'p', &whole),
            template_hash: key.hash(b't', template_of(request).as_bytes()),
            max_tokens: request.params.max_tokens,
            stops,
            reasoning: asks_reasoning || long_answer,
        }
    }
}

fn role_byte(role: Role) -> u8 {
    match role {
        Role::System => b's',
        Role::User => b'u',
        Role::Assistant => b'a',
    }
}

/// A prompt's template: for the system message (if any) and the last user message, the first
/// [`TEMPLATE_CHARS`] characters after masking digit runs (`#`), quoted spans (`"`) and words
/// longer than [`TEMPLATE_WORD`] letters (`~`). Prompts filled into one template whose slots
/// come later, or hold numbers, quotes or long words, share it; a template whose variable
/// part starts at once does not (its volume, sizes and reasoning share still show).
pub fn template_of(request: &CompletionRequest) -> String {
    let system = request.messages.iter().find(|m| m.role == Role::System);
    let user = request.messages.iter().rev().find(|m| m.role == Role::User);
    let mut out = String::new();
    for message in [system, user].into_iter().flatten() {
        out.push(char::from(role_byte(message.role)));
        out.push_str(&mask(&message.content));
        out.push('\u{1e}');
    }
    out
}

/// The first [`TEMPLATE_CHARS`] characters of `text`, masked.
fn mask(text: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if count >= TEMPLATE_CHARS {
            break;
        }
        if c.is_ascii_digit() {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('#');
        } else if matches!(c, '"' | '\'' | '`' | '“' | '«') {
            let close = match c {
                '“' => '”',
                '«' => '»',
                other => other,
            };
            for inner in chars.by_ref() {
                if inner == close {
                    break;
                }
            }
            out.push('"');
        } else if c.is_alphabetic() {
            let mut word = String::from(c);
            while let Some(&next) = chars.peek() {
                if !next.is_alphabetic() {
                    break;
                }
                word.push(next);
                chars.next();
            }
            if word.chars().count() > TEMPLATE_WORD {
                out.push('~');
            } else {
                out.push_str(&word.to_lowercase());
            }
        } else if c.is_whitespace() {
            out.push(' ');
        } else {
            out.push(c);
        }
        count = out.chars().count();
    }
    out.chars().take(TEMPLATE_CHARS).collect()
}

/// The histogram bin of a prompt of `chars` characters.
pub fn size_bin(chars: u64) -> usize {
    let mut bin = 0;
    let mut bound = 32u64;
    while bin < SIZE_BINS - 1 && chars >= bound {
        bin += 1;
        bound *= 2;
    }
    bin
}

/// A HyperLogLog sketch of distinct 64-bit hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinctSketch {
    registers: Vec<u8>,
}

impl Default for DistinctSketch {
    fn default() -> DistinctSketch {
        DistinctSketch {
            registers: vec![0; SKETCH_REGISTERS],
        }
    }
}

impl DistinctSketch {
    /// Counts `hash` (uniform: a keyed hash's bits).
    pub fn insert(&mut self, hash: u64) {
        let index = (hash >> (64 - SKETCH_BITS)) as usize;
        let rest = hash << SKETCH_BITS;
        // The rank of the first set bit in the remaining 54 bits, 1-based (55 when none).
        let rank = (rest.leading_zeros().min(64 - SKETCH_BITS) + 1) as u8;
        if self.registers[index] < rank {
            self.registers[index] = rank;
        }
    }

    /// Adds `other` to it: the sketch of both sets.
    pub fn merge(&mut self, other: &DistinctSketch) {
        for (mine, theirs) in self.registers.iter_mut().zip(&other.registers) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// The estimated number of distinct hashes (HyperLogLog with linear counting for small
    /// sets, Flajolet et al. 2007).
    pub fn estimate(&self) -> f64 {
        let m = SKETCH_REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self
            .registers
            .iter()
            .map(|&r| 2f64.powi(-i32::from(r)))
            .sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }

    /// The registers as lower-case hex, for storage.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.registers)
    }

    /// A sketch from [`DistinctSketch::to_hex`]'s text; `None` if it is not one.
    pub fn from_hex(text: &str) -> Option<DistinctSketch> {
        let registers = hex::decode(text).ok()?;
        (registers.len() == SKETCH_REGISTERS && registers.iter().all(|&r| r <= 55))
            .then_some(DistinctSketch { registers })
    }
}

/// A Misra-Gries summary of template hashes: at most [`TEMPLATE_SLOTS`] counters; a template's
/// counter is at least its true count minus `n / (TEMPLATE_SLOTS + 1)`, and no more than it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateSummary {
    counters: Vec<(u64, u64)>,
}

impl TemplateSummary {
    /// Counts one query of template `hash`.
    pub fn insert(&mut self, hash: u64) {
        self.add(hash, 1);
        self.prune();
    }

    fn add(&mut self, hash: u64, count: u64) {
        match self.counters.iter_mut().find(|(h, _)| *h == hash) {
            Some((_, c)) => *c += count,
            None => self.counters.push((hash, count)),
        }
    }

    /// Keeps the [`TEMPLATE_SLOTS`] largest counters, each lowered by the next one's count
    /// (the Misra-Gries merge, Agarwal et al. 2012: the error bound still holds).
    fn prune(&mut self) {
        if self.counters.len() <= TEMPLATE_SLOTS {
            return;
        }
        self.counters
            .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let cut = self.counters[TEMPLATE_SLOTS].1;
        self.counters.truncate(TEMPLATE_SLOTS);
        for (_, c) in &mut self.counters {
            *c -= cut;
        }
        self.counters.retain(|(_, c)| *c > 0);
    }

    /// Adds `other` to it.
    pub fn merge(&mut self, other: &TemplateSummary) {
        for &(hash, count) in &other.counters {
            self.add(hash, count);
        }
        self.prune();
    }

    /// The largest counter: a lower bound on the most common template's count.
    pub fn top(&self) -> u64 {
        self.counters.iter().map(|&(_, c)| c).max().unwrap_or(0)
    }

    /// The counters as `hash:count` pairs (hex hash), comma-separated, for storage.
    pub fn to_text(&self) -> String {
        let mut counters = self.counters.clone();
        counters.sort_unstable();
        counters
            .iter()
            .map(|(h, c)| format!("{h:016x}:{c}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A summary from [`TemplateSummary::to_text`]'s text; `None` if it is not one.
    pub fn from_text(text: &str) -> Option<TemplateSummary> {
        let mut counters = Vec::new();
        for pair in text.split(',').filter(|p| !p.is_empty()) {
            let (hash, count) = pair.split_once(':')?;
            counters.push((u64::from_str_radix(hash, 16).ok()?, count.parse().ok()?));
        }
        (counters.len() <= TEMPLATE_SLOTS).then_some(TemplateSummary { counters })
    }
}

/// What one window's queries of one grant came to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WindowProfile {
    /// Queries.
    pub queries: u64,
    /// Prompt sizes ([`size_bin`]).
    pub sizes: [u64; SIZE_BINS],
    /// Queries that asked for reasoning.
    pub reasoning: u64,
    /// Distinct prompts.
    pub prompts: DistinctSketch,
    /// The most common templates.
    pub templates: TemplateSummary,
}

impl WindowProfile {
    /// Counts one query.
    pub fn observe(&mut self, query: &QueryFeatures) {
        self.queries += 1;
        self.sizes[size_bin(query.prompt_chars)] += 1;
        self.reasoning += u64::from(query.reasoning);
        self.prompts.insert(query.prompt_hash);
        self.templates.insert(query.template_hash);
    }

    /// Adds `other` to it.
    pub fn merge(&mut self, other: &WindowProfile) {
        self.queries += other.queries;
        for (mine, theirs) in self.sizes.iter_mut().zip(&other.sizes) {
            *mine += theirs;
        }
        self.reasoning += other.reasoning;
        self.prompts.merge(&other.prompts);
        self.templates.merge(&other.templates);
    }

    /// Whether it counts no query.
    pub fn is_empty(&self) -> bool {
        self.queries == 0
    }

    /// The share of its queries whose prompt repeats an earlier one in the window (from the
    /// sketch's estimate, clamped to `[0, 1]`).
    pub fn repeat_share(&self) -> f64 {
        if self.queries == 0 {
            return 0.0;
        }
        let distinct = self.prompts.estimate().min(self.queries as f64);
        (1.0 - distinct / self.queries as f64).clamp(0.0, 1.0)
    }

    /// The sizes histogram as comma-separated counts, for storage.
    pub fn sizes_text(&self) -> String {
        self.sizes
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A histogram from [`WindowProfile::sizes_text`]'s text.
    pub fn parse_sizes(text: &str) -> Option<[u64; SIZE_BINS]> {
        let counts: Vec<u64> = text
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        counts.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Message, Params};

    fn request(
        system: Option<&str>,
        user: &str,
        max_tokens: u32,
        stops: usize,
    ) -> CompletionRequest {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(Message {
                role: Role::System,
                content: system.into(),
            });
        }
        messages.push(Message {
            role: Role::User,
            content: user.into(),
        });
        CompletionRequest {
            messages,
            params: Params {
                max_tokens,
                temperature: None,
                stop: vec!["\n".into(); stops],
            },
        }
    }

    #[test]
    fn prompts_filled_into_one_template_share_its_hash_and_others_do_not() {
        let key = UsageKey::derive(&[7; 32]);
        let a = QueryFeatures::of(&key, &request(None, "What is 12 + 30?", 16, 0));
        let b = QueryFeatures::of(&key, &request(None, "What is 7 + 1234?", 16, 0));
        assert_eq!(a.template_hash, b.template_hash);
        assert_ne!(a.prompt_hash, b.prompt_hash);
        let c = QueryFeatures::of(&key, &request(None, "Which planet is closest?", 16, 0));
        assert_ne!(a.template_hash, c.template_hash);
        let quoted = |w: &str| format!("Translate \"{w}\" into French, please");
        let d = QueryFeatures::of(&key, &request(None, &quoted("cat"), 16, 0));
        let e = QueryFeatures::of(&key, &request(None, &quoted("a long sentence"), 16, 0));
        assert_eq!(d.template_hash, e.template_hash);
    }

    #[test]
    fn the_hashes_are_keyed() {
        let one = QueryFeatures::of(&UsageKey::derive(&[1; 32]), &request(None, "hi", 8, 0));
        let two = QueryFeatures::of(&UsageKey::derive(&[2; 32]), &request(None, "hi", 8, 0));
        assert_ne!(one.prompt_hash, two.prompt_hash);
        assert_ne!(one.template_hash, two.template_hash);
    }

    #[test]
    fn reasoning_is_a_phrase_or_a_long_answer_with_no_stop() {
        let key = UsageKey::derive(&[0; 32]);
        let asks = |user: &str, max, stops| {
            QueryFeatures::of(&key, &request(None, user, max, stops)).reasoning
        };
        assert!(asks("Explain Step by Step how tides work", 64, 1));
        assert!(asks("What is 2 + 2?", 1024, 0));
        assert!(!asks("What is 2 + 2?", 1024, 1));
        assert!(!asks("What is 2 + 2?", 16, 0));
    }

    #[test]
    fn sizes_fall_in_powers_of_two_from_32() {
        assert_eq!(size_bin(0), 0);
        assert_eq!(size_bin(31), 0);
        assert_eq!(size_bin(32), 1);
        assert_eq!(size_bin(127), 2);
        assert_eq!(size_bin(8191), 8);
        assert_eq!(size_bin(1 << 30), 9);
    }

    #[test]
    fn the_sketch_estimates_distinct_counts_within_a_few_percent_and_merges() {
        let key = UsageKey::derive(&[3; 32]);
        for n in [10u64, 300, 5_000, 50_000] {
            let mut one = DistinctSketch::default();
            let mut two = DistinctSketch::default();
            for i in 0..n {
                let h = key.hash(b'x', &i.to_be_bytes());
                if i % 2 == 0 {
                    one.insert(h)
                } else {
                    two.insert(h)
                }
                // Repeats do not count.
                one.insert(key.hash(b'x', &0u64.to_be_bytes()));
            }
            one.merge(&two);
            let estimate = one.estimate();
            assert!((estimate / n as f64 - 1.0).abs() < 0.1, "{n}: {estimate}");
            assert_eq!(DistinctSketch::from_hex(&one.to_hex()), Some(one));
        }
    }

    #[test]
    fn the_template_summary_keeps_the_heavy_template_through_merges() {
        let mut parts = vec![TemplateSummary::default(); 4];
        for i in 0..4000u64 {
            let part = &mut parts[(i % 4) as usize];
            // Half the queries share one template; the rest are all different.
            part.insert(if i % 2 == 0 { 42 } else { 1000 + i });
        }
        let mut all = TemplateSummary::default();
        for part in &parts {
            all.merge(part);
        }
        assert!(
            all.top() >= 2000 - 4000 / (TEMPLATE_SLOTS as u64 + 1) * 2,
            "{}",
            all.top()
        );
        assert!(all.top() <= 2000);
        let text = all.to_text();
        assert_eq!(
            TemplateSummary::from_text(&text).map(|t| t.to_text()),
            Some(text)
        );
    }
}
