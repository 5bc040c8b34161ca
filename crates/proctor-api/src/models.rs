//! `/v1/models`: a vendor registers a model (its credential sealed at once, never shown again),
//! reads and lists its own with their configuration and model-wide ledger, and caps the
//! ledger; an evaluator lists the models its grants cover; anyone else reads a public view
//! without configuration or ledger.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/models`: register a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterModel {
    /// Unique among the vendor's models: 1 to 128 printable characters.
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    /// The version the attestations name: 1 to 128 printable characters.
    #[schema(min_length = 1, max_length = 128)]
    pub version: String,
    /// How the service reaches the model.
    pub config: ModelConfig,
    /// The endpoint's API key, 1 to 8192 bytes: sealed at once, never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 8192)]
    pub credential: Option<String>,
}

/// A model's configuration, as `proctor model test` reads it from TOML. A key the adapter does
/// not use is refused (a built-in takes only `model`), and so is `api_key_env`: the service
/// never reads its own environment for a vendor, so the key goes in `credential`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The protocol.
    pub adapter: ModelAdapter,
    /// The model's name at the endpoint; for `builtin`, the built-in with its options
    /// (`arith`, `echo?latency_ms=50`, ...).
    #[schema(min_length = 1, max_length = 256)]
    pub model: String,
    /// Where the endpoint is: ending in `/v1` for `openai`, the host root for `anthropic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The environment variable holding the key, as in a TOML configuration: refused by the
    /// service (422 `invalid_model`), so left out of the description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub api_key_env: Option<String>,
    /// The version attested; the service sets the registered `version` when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub version: Option<String>,
    /// Requests in flight at once, across all jobs; default 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4096)]
    pub max_concurrency: Option<u32>,
    /// Requests started per minute, across all jobs; absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub requests_per_minute: Option<u32>,
    /// Seconds one attempt may take, more than 0 and at most 3600; default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 3600)]
    pub timeout_s: Option<f64>,
    /// Attempts per request; default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10)]
    pub max_attempts: Option<u32>,
    /// `openai` only: the name of the output-token ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<MaxTokensField>,
}

/// Which protocol a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelAdapter {
    /// OpenAI-compatible Chat Completions (`{base_url}/chat/completions`).
    Openai,
    /// Anthropic Messages (`{base_url}/v1/messages`).
    Anthropic,
    /// A built-in test model, answered in-process.
    Builtin,
}

/// The name an OpenAI-compatible endpoint wants for the output-token ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens`: what every compatible server takes.
    MaxTokens,
    /// `max_completion_tokens`: what OpenAI's newest models require.
    MaxCompletionTokens,
}

/// A model as the API shows it: `config`, `has_credential` and `ledger` only to its vendor,
/// `grant` only in an evaluator's listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    /// The model's id.
    #[schema(format = "uuid")]
    pub id: String,
    /// The vendor's account id.
    #[schema(format = "uuid")]
    pub owner: String,
    /// The model's name, unique among its vendor's.
    pub name: String,
    /// The version the attestations name.
    pub version: String,
    /// The protocol.
    pub adapter: ModelAdapter,
    /// For its vendor: the configuration (never a credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ModelConfig>,
    /// For its vendor: whether a sealed credential is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_credential: Option<bool>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// In an evaluator's listing: the grant that gives it access, the one its jobs run under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uuid")]
    pub grant: Option<String>,
    /// For its vendor: the model-wide caps and what all evaluators spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<ModelLedgerView>,
}

/// A model's ledger as its vendor sees it: the caps across all evaluators (`null`: none) and
/// what their accepted jobs spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelLedgerView {
    /// The model's id.
    #[schema(format = "uuid")]
    pub model: String,
    /// The cap on epsilon spent across all evaluators; `null`: none.
    pub epsilon_total: Option<f64>,
    /// The cap on leakage bits spent across all evaluators; `null`: none.
    pub bits_total: Option<f64>,
    /// Epsilon the model's accepted jobs spent.
    pub epsilon_spent: f64,
    /// Leakage bits the model's accepted jobs spent.
    pub bits_spent: f64,
}

/// `PUT /v1/models/{id}/ledger`: the caps, each a finite number, 0 or more, or `null` (no
/// cap); a key left out is `null`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetModelLedger {
    /// The cap on epsilon across all evaluators (kept in millionths, so at most 9.2e12).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9.2e12)]
    pub epsilon_total: Option<f64>,
    /// The cap on leakage bits across all evaluators: at most 9e15, where a JSON number is
    /// still exact as a float (kept in thousandths, the store could hold 9.2e15).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9e15)]
    pub bits_total: Option<f64>,
}
