//! Implementations of [`proctor_core::Model`]: the built-in test models, and clients of the
//! two HTTP protocols vendors' models speak, OpenAI-compatible Chat Completions and Anthropic
//! Messages.
//!
//! A model is described by a [`ModelConfig`] (TOML for `proctor run --model-config`, stored by
//! the service) and built with [`ModelConfig::build`]. The HTTP models share, per model and
//! across every job in the process, one pooled client and one set of limits (`limits.rs`); the
//! retry, timeout and `Retry-After` rules are in `http.rs`.
//!
//! Architecture invariants: nothing here logs or returns model text or credentials in an
//! error; error messages are written by this crate. A credential is sent to the configured
//! endpoint only (redirects are not followed) and prints as `<redacted>`. Building an HTTP
//! model takes a [`HostPolicy`]: the service's refuses endpoints inside its own network, on
//! the URL and on every address a name resolves to (`hosts.rs`, `resolver.rs`); a local run's
//! ([`HostPolicy::any`]) calls whatever it is given.

mod adapter;
pub mod alerts_webhook;
mod anthropic;
pub mod builtin;
pub mod builtin_lm;
mod config;
mod credential;
mod error;
mod hosts;
mod http;
mod limits;
mod openai;
mod probe;
mod resolver;

pub use builtin::{Builtin, BuiltinKind};
pub use config::{
    AdapterKind, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT_S, MaxTokensField,
    ModelConfig,
};
pub use credential::Credential;
pub use error::{ConfigError, ModelRefError, ProbeError};
pub use hosts::{AddressClass, AllowanceError, HostPolicy, HostRefused};
pub use probe::{ProbeReport, TokenCounts};

use std::sync::Arc;

use proctor_core::Model;

/// Resolves a model reference given on a command line (`builtin:arith?latency_ms=50`).
/// `seed` steers the built-ins' deterministic choices.
pub fn parse_model_ref(
    reference: &str,
    seed: Option<u64>,
) -> Result<Arc<dyn Model>, ModelRefError> {
    match reference.split_once(':') {
        Some(("builtin", _)) => Ok(Arc::new(Builtin::parse(reference, seed.unwrap_or(0))?)),
        _ => Err(ModelRefError::UnknownScheme(
            reference.chars().take(100).collect(),
        )),
    }
}
