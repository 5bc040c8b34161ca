//! The `Model` trait: what the sandbox calls when a guest asks the model under test.
//!
//! Implementations live in `proctor-models` (HTTP adapters, built-ins); callers may wrap a
//! model (metering, budgets) without the sandbox knowing. The types mirror the WIT records of
//! `proctor:eval/types` so a guest's request crosses the host unchanged.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The most messages one request may carry. Bounding them bounds the template overhead, so a
/// policy's worst case per query ([`worst_case_tokens`]) is finite.
pub const MAX_MESSAGES: u64 = 256;

/// Template tokens a chat endpoint may add per message (role markers, separators).
pub const TOKENS_PER_MESSAGE: u64 = 8;

/// Template tokens a chat endpoint may add per request.
pub const TOKENS_PER_REQUEST: u64 = 16;

/// The most tokens a request of `prompt_bytes` bytes of text in `messages` messages, asking
/// for at most `max_tokens` out, can be billed (see [`CompletionRequest::worst_case_tokens`]).
pub fn worst_case_tokens(prompt_bytes: u64, messages: u64, max_tokens: u64) -> u64 {
    prompt_bytes
        .saturating_add(messages.saturating_mul(TOKENS_PER_MESSAGE))
        .saturating_add(TOKENS_PER_REQUEST)
        .saturating_add(max_tokens)
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The user's turn.
    User,
    /// The model's own earlier turn.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

/// Sampling parameters after the policy has been applied: `max_tokens` is always set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Ceiling on output tokens (the policy's `max_tokens` when the guest gave none).
    pub max_tokens: u32,
    /// Sampling temperature, when the guest asked for one.
    pub temperature: Option<f64>,
    /// Stop sequences; empty for none.
    pub stop: Vec<String>,
}

/// One request to the model under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Sampling parameters.
    pub params: Params,
}

impl CompletionRequest {
    /// The prompt size the policy limits: UTF-8 bytes of all message contents.
    pub fn prompt_bytes(&self) -> usize {
        self.messages.iter().map(|m| m.content.len()).sum()
    }

    /// The most tokens this request can be billed (in + out): at most one input token per
    /// byte of message text (every byte-level BPE tokenizer encodes each byte in at most one
    /// token), plus chat-template overhead per message and per request, plus `max_tokens`
    /// out. Budgets reserve this before the request goes out.
    pub fn worst_case_tokens(&self) -> u64 {
        worst_case_tokens(
            self.prompt_bytes() as u64,
            self.messages.len() as u64,
            u64::from(self.params.max_tokens),
        )
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The model declined (refusal, content filter).
    Refused,
    /// Anything else the endpoint reported.
    Other,
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The text of the reply.
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Prompt tokens, as the endpoint counted them.
    pub input_tokens: u32,
    /// Reply tokens, as the endpoint counted them.
    pub output_tokens: u32,
}

/// What identifies a model in results and attestations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelDescriptor {
    /// How the user named it (`builtin:arith`, `openai:gpt-x`, a registered name).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The model's name at its endpoint.
    pub name: String,
    /// Its version: configured, else what the endpoint reports.
    pub version: String,
}

/// Why a model call produced no completion. Messages are host-written and never contain
/// model output or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The endpoint failed after retries, or timed out. The guest sees `unavailable`.
    #[error("model unavailable: {0}")]
    Unavailable(String),
    /// The request will not succeed as sent (e.g. the endpoint rejected it with a 4xx).
    /// The guest sees `rejected` with this text.
    #[error("request rejected: {0}")]
    Rejected(String),
    /// A budget was spent. The guest sees `budget-exhausted`.
    #[error("budget exhausted")]
    BudgetExhausted,
    /// The service itself failed before the request went out (its database, while
    /// metering the query). The sample ends at once, counted as `other`: the guest is not
    /// told, since any answer it could see would blame the model for the service's fault.
    #[error("service fault: {0}")]
    ServiceFault(String),
}

/// A model under test. Calls are async so that a guest waiting on the model holds no thread.
#[async_trait]
pub trait Model: Send + Sync {
    /// What identifies the model in results.
    fn descriptor(&self) -> ModelDescriptor;

    /// Sends one request. Implementations enforce their own retries, timeouts and rate limits.
    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError>;
}
