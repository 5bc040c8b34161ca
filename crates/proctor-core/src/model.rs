//! The `Model` trait: what the sandbox calls when a guest asks the model under test.
//!
//! Implementations live in `proctor-models` (HTTP adapters, built-ins); callers may wrap a
//! model (metering, budgets) without the sandbox knowing. The types mirror the WIT records of
//! `proctor:eval/types` so a guest's request crosses the host unchanged.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// A model under test. Calls are async so that a guest waiting on the model holds no thread.
#[async_trait]
pub trait Model: Send + Sync {
    /// What identifies the model in results.
    fn descriptor(&self) -> ModelDescriptor;

    /// Sends one request. Implementations enforce their own retries, timeouts and rate limits.
    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError>;
}
