//! The configuration of a model: what the service stores when a vendor registers one, and what
//! `proctor run --model-config FILE.toml` reads.
//!
//! ```toml
//! adapter = "openai"                       # "openai" | "anthropic" | "builtin"
//! base_url = "https://api.openai.com/v1"   # openai: ends in /v1; anthropic: the host root
//! model = "gpt-4o-mini"                    # builtin: "arith", "echo?latency_ms=50", ...
//! api_key_env = "OPENAI_API_KEY"           # absent: no credential (keyless local servers)
//! version = "2024-07-18"                   # absent: the `model` field of the first answer
//! max_concurrency = 64                     # requests in flight, shared by all jobs
//! requests_per_minute = 500                # absent: no rate limit
//! timeout_s = 60                           # per attempt; the request gets max_attempts × this
//! max_attempts = 4
//! max_tokens_field = "max_tokens"          # openai only; "max_completion_tokens" for newer models
//! ```
//!
//! Unknown keys are errors, and so is a key the adapter does not use (a built-in takes no
//! `base_url`): a key that is silently ignored is a limit a vendor believes is in force.

use std::sync::Arc;
use std::time::Duration;

use proctor_core::Model;
use serde::{Deserialize, Serialize};

use crate::adapter::{Dialect, HttpModel};
use crate::anthropic::AnthropicMessages;
use crate::builtin::Builtin;
use crate::credential::Credential;
use crate::error::ConfigError;
use crate::hosts::{HostPolicy, HostRefused};
use crate::http::{RetryPolicy, SharedKey, Transport};
use crate::openai::OpenAiChat;

/// Requests in flight per model when the vendor sets none: polite to a small server, and
/// enough to keep a large one busy.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 64;
/// Seconds per attempt when the vendor sets none.
pub const DEFAULT_TIMEOUT_S: f64 = 60.0;
/// Attempts per request when the vendor sets none. With [`DEFAULT_TIMEOUT_S`], a request
/// gives up within 240 s, inside the standard policy's 300 s sample timeout.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;

const MAX_CONCURRENCY: u32 = 4096;
const MAX_TIMEOUT_S: f64 = 3600.0;
const MAX_ATTEMPTS: u32 = 10;
const MAX_MODEL_NAME: usize = 256;
const MAX_VERSION: usize = 128;
const MAX_ENV_NAME: usize = 128;

/// Which protocol a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// OpenAI-compatible Chat Completions (`{base_url}/chat/completions`).
    Openai,
    /// Anthropic Messages (`{base_url}/v1/messages`).
    Anthropic,
    /// A built-in test model, answered in-process.
    Builtin,
}

impl AdapterKind {
    /// The name used in the configuration and in model references.
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::Openai => "openai",
            AdapterKind::Anthropic => "anthropic",
            AdapterKind::Builtin => "builtin",
        }
    }
}

/// The name an OpenAI-compatible endpoint wants for the output-token ceiling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens`: what every compatible server takes.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: what OpenAI's newest models require.
    MaxCompletionTokens,
}

/// A model's configuration. Construct it with [`ModelConfig::from_toml`] or deserialize it, then
/// [`validate`](ModelConfig::validate) (which [`build`](ModelConfig::build) also does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The protocol.
    pub adapter: AdapterKind,
    /// The model's name at the endpoint; for `builtin`, the built-in with its options.
    pub model: String,
    /// Where the endpoint is: ending in `/v1` for `openai`, the host root for `anthropic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The environment variable that holds the credential; absent for keyless servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// The version attested; absent: the `model` field the endpoint returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Requests in flight at once, across all jobs; default [`DEFAULT_MAX_CONCURRENCY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Requests started per minute, across all jobs; absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Seconds one attempt may take; default [`DEFAULT_TIMEOUT_S`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Attempts per request; default [`DEFAULT_MAX_ATTEMPTS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// `openai` only: the name of the output-token ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<MaxTokensField>,
}

/// A configuration built into its concrete model, for callers that need more than the trait.
pub(crate) enum Built {
    Openai(HttpModel<OpenAiChat>),
    Anthropic(HttpModel<AnthropicMessages>),
    Builtin(Builtin),
}

impl ModelConfig {
    /// Parses and validates a TOML configuration. Errors name the line and key; they never
    /// quote the line, so a credential pasted into the file does not end up in a log.
    pub fn from_toml(text: &str) -> Result<ModelConfig, ConfigError> {
        let config: ModelConfig = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every key against the adapter; the first fault is returned, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.model.trim().is_empty() {
            return invalid("model", "must not be empty");
        }
        if self.model.len() > MAX_MODEL_NAME {
            return invalid("model", "must be at most 256 bytes");
        }
        if let Err(e) = proctor_core::text::displayable_name(&self.model) {
            return invalid("model", &e.to_string());
        }
        if self.adapter == AdapterKind::Builtin {
            return self.validate_builtin();
        }
        self.base_url()?;
        if let Some(var) = &self.api_key_env {
            let valid_start = var
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !valid_start
                || var.len() > MAX_ENV_NAME
                || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return invalid(
                    "api_key_env",
                    "must be the name of an environment variable (letters, digits and _), not the key itself",
                );
            }
        }
        if let Some(version) = &self.version
            && (version.is_empty()
                || version.len() > MAX_VERSION
                || !version.chars().all(|c| c.is_ascii_graphic()))
        {
            return invalid(
                "version",
                "must be 1 to 128 printable ASCII characters without spaces",
            );
        }
        match self.max_concurrency {
            Some(n) if !(1..=MAX_CONCURRENCY).contains(&n) => {
                return invalid("max_concurrency", "must be between 1 and 4096");
            }
            _ => {}
        }
        if self.requests_per_minute == Some(0) {
            return invalid(
                "requests_per_minute",
                "must be at least 1 (leave it out for no limit)",
            );
        }
        match self.timeout_s {
            Some(t) if !(t.is_finite() && t > 0.0 && t <= MAX_TIMEOUT_S) => {
                return invalid("timeout_s", "must be more than 0 and at most 3600 seconds");
            }
            _ => {}
        }
        match self.max_attempts {
            Some(n) if !(1..=MAX_ATTEMPTS).contains(&n) => {
                return invalid("max_attempts", "must be between 1 and 10");
            }
            _ => {}
        }
        if self.max_tokens_field.is_some() && self.adapter != AdapterKind::Openai {
            return invalid("max_tokens_field", "is for adapter = \"openai\" only");
        }
        Ok(())
    }

    fn validate_builtin(&self) -> Result<(), ConfigError> {
        let http_only = [
            ("base_url", self.base_url.is_some()),
            ("api_key_env", self.api_key_env.is_some()),
            ("version", self.version.is_some()),
            ("max_concurrency", self.max_concurrency.is_some()),
            ("requests_per_minute", self.requests_per_minute.is_some()),
            ("timeout_s", self.timeout_s.is_some()),
            ("max_attempts", self.max_attempts.is_some()),
            ("max_tokens_field", self.max_tokens_field.is_some()),
        ];
        if let Some((key, _)) = http_only.iter().find(|(_, set)| *set) {
            return Err(ConfigError::Invalid {
                key,
                reason: "is for the HTTP adapters; a built-in takes only `model`".to_owned(),
            });
        }
        Builtin::parse(&format!("builtin:{}", self.model), 0)?;
        Ok(())
    }

    /// Whether `hosts` lets the model's endpoint be called: its `base_url`'s host and scheme
    /// (a built-in calls nothing). The configuration is assumed valid
    /// ([`validate`](ModelConfig::validate)); the addresses a name resolves to are checked
    /// when connecting.
    ///
    /// # Errors
    ///
    /// Why the host is refused.
    pub fn check_hosts(&self, hosts: &HostPolicy) -> Result<(), HostRefused> {
        if self.adapter == AdapterKind::Builtin {
            return Ok(());
        }
        let url = self
            .base_url
            .as_deref()
            .and_then(|text| reqwest::Url::parse(text).ok())
            .ok_or(HostRefused::NoHost)?;
        hosts.check_url(&url)
    }

    /// The validated base URL without a trailing slash.
    fn base_url(&self) -> Result<String, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            key: "base_url",
            reason: reason.to_owned(),
        };
        let text = self
            .base_url
            .as_deref()
            .ok_or_else(|| invalid("is required for the HTTP adapters"))?;
        let url = reqwest::Url::parse(text).map_err(|_| invalid("is not a valid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                "must start with https:// (or http:// for a local server)",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "must not carry a user name or password; give the credential with api_key_env",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        let trimmed = url.as_str().trim_end_matches('/').to_owned();
        let path = url.path().trim_end_matches('/');
        match self.adapter {
            AdapterKind::Openai if !path.ends_with("/v1") => Err(invalid(
                "must end in /v1 for an OpenAI-compatible endpoint (e.g. https://api.openai.com/v1)",
            )),
            AdapterKind::Anthropic if path.ends_with("/v1") => Err(invalid(
                "must be the host root for Anthropic, without /v1 (e.g. https://api.anthropic.com)",
            )),
            _ => Ok(trimmed),
        }
    }

    /// Reads the credential from the variable `api_key_env` names; `None` when it names none.
    /// Errors name the variable and never the value.
    pub fn credential_from_env(&self) -> Result<Option<Credential>, ConfigError> {
        let Some(var) = &self.api_key_env else {
            return Ok(None);
        };
        match std::env::var(var) {
            Ok(value) if value.trim().is_empty() => Err(ConfigError::CredentialUnusable {
                var: var.clone(),
                reason: "is empty",
            }),
            Ok(value) => Ok(Some(Credential::new(value.trim()))),
            Err(std::env::VarError::NotPresent) => {
                Err(ConfigError::CredentialMissing { var: var.clone() })
            }
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::CredentialUnusable {
                var: var.clone(),
                reason: "is not valid UTF-8",
            }),
        }
    }

    /// Validates the configuration, checks it against `hosts` and builds the model.
    /// `credential` goes, as the protocol's header, to `base_url` and nowhere else; `seed`
    /// steers a built-in's choices. The service passes its [`HostPolicy::service`] rules, a
    /// local run [`HostPolicy::any`]; the model then connects under the same rules.
    pub fn build(
        &self,
        credential: Option<Credential>,
        seed: Option<u64>,
        hosts: &HostPolicy,
    ) -> Result<Arc<dyn Model>, ConfigError> {
        Ok(match self.build_concrete(credential, seed, hosts)? {
            Built::Openai(model) => Arc::new(model),
            Built::Anthropic(model) => Arc::new(model),
            Built::Builtin(model) => Arc::new(model),
        })
    }

    pub(crate) fn build_concrete(
        &self,
        credential: Option<Credential>,
        seed: Option<u64>,
        hosts: &HostPolicy,
    ) -> Result<Built, ConfigError> {
        self.validate()?;
        self.check_hosts(hosts)?;
        Ok(match self.adapter {
            AdapterKind::Builtin => Built::Builtin(Builtin::parse(
                &format!("builtin:{}", self.model),
                seed.unwrap_or(0),
            )?),
            AdapterKind::Openai => Built::Openai(self.http_model(
                OpenAiChat {
                    max_tokens_field: self.max_tokens_field.unwrap_or_default(),
                },
                credential.as_ref(),
                hosts,
            )?),
            AdapterKind::Anthropic => {
                Built::Anthropic(self.http_model(AnthropicMessages, credential.as_ref(), hosts)?)
            }
        })
    }

    fn http_model<D: Dialect>(
        &self,
        dialect: D,
        credential: Option<&Credential>,
        hosts: &HostPolicy,
    ) -> Result<HttpModel<D>, ConfigError> {
        let url = D::url(&self.base_url()?);
        let headers = D::headers(credential)?;
        let key = SharedKey {
            url,
            model: self.model.clone(),
            credential: credential.map(|c| {
                let digest = ring::digest::digest(&ring::digest::SHA256, c.expose().as_bytes());
                let mut hash = [0u8; 32];
                hash.copy_from_slice(digest.as_ref());
                hash
            }),
            max_concurrency: self.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY),
            requests_per_minute: self.requests_per_minute,
            hosts: hosts.clone(),
        };
        let policy = RetryPolicy {
            timeout: Duration::from_secs_f64(self.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S)),
            max_attempts: self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        };
        let reference = format!("{}:{}", self.adapter.as_str(), self.model);
        let transport = Transport::new(key, headers, policy, reference.clone())?;
        Ok(HttpModel::new(
            dialect,
            transport,
            self.model.clone(),
            reference,
            self.version.clone(),
        ))
    }
}

/// A TOML error as line, key and message, without quoting the file.
fn toml_error(text: &str, error: &toml::de::Error) -> ConfigError {
    // A missing key has no line of its own (the parser points at the table), and a span
    // over several lines points at no one line either.
    let span = error
        .span()
        .filter(|_| !error.message().starts_with("missing field"))
        .filter(|s| {
            text.get(s.clone())
                .is_some_and(|t| !t.trim_end().contains('\n'))
        });
    let (line, key) = match span {
        Some(span) => {
            let start = span.start.min(text.len());
            let before = text.get(..start).unwrap_or("");
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let line_text = text[line_start..].lines().next().unwrap_or("");
            let key = line_text
                .split_once('=')
                .map(|(k, _)| k.trim())
                .filter(|k| {
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                })
                .map(str::to_owned);
            (Some(before.matches('\n').count() + 1), key)
        }
        None => (None, None),
    };
    ConfigError::Toml {
        line,
        key,
        message: error.message().trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI: &str = r#"
adapter = "openai"
base_url = "http://127.0.0.1:8000/v1/"
model = "m"
"#;

    fn with(extra: &str) -> String {
        format!("{OPENAI}{extra}\n")
    }

    fn error(text: &str) -> String {
        ModelConfig::from_toml(text)
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn a_minimal_configuration_parses_with_defaults_left_out() {
        let config = ModelConfig::from_toml(OPENAI).expect("valid");
        assert_eq!(config.adapter, AdapterKind::Openai);
        assert_eq!(
            config.base_url().expect("valid"),
            "http://127.0.0.1:8000/v1"
        );
        assert_eq!(config.max_concurrency, None);
        let full = ModelConfig::from_toml(&with(
            "api_key_env = \"OPENAI_API_KEY\"\nversion = \"v2\"\nmax_concurrency = 8\n\
             requests_per_minute = 600\ntimeout_s = 1.5\nmax_attempts = 2\n\
             max_tokens_field = \"max_completion_tokens\"",
        ))
        .expect("valid");
        assert_eq!(full.timeout_s, Some(1.5));
        assert_eq!(
            full.max_tokens_field,
            Some(MaxTokensField::MaxCompletionTokens)
        );
    }

    #[test]
    fn unknown_missing_and_mistyped_keys_are_named_without_quoting_the_line() {
        let unknown = error(&with("api_key = \"sk-secret-value\""));
        assert!(unknown.contains("line 5, key api_key"), "{unknown}");
        assert!(unknown.contains("unknown field `api_key`"), "{unknown}");
        assert!(!unknown.contains("sk-secret-value"), "{unknown}");
        let missing = error("adapter = \"openai\"\nbase_url = \"http://h/v1\"\n");
        assert_eq!(missing, "missing field `model`");
        let mistyped = error(&with("max_concurrency = -1"));
        assert!(mistyped.contains("key max_concurrency"), "{mistyped}");
        let adapter = error("adapter = \"gemini\"\nmodel = \"m\"\n");
        assert!(adapter.contains("key adapter"), "{adapter}");
    }

    #[test]
    fn bad_values_are_refused_naming_their_key() {
        let cases = [
            (with("max_concurrency = 0"), "max_concurrency: must be between 1 and 4096"),
            (with("requests_per_minute = 0"), "requests_per_minute: must be at least 1"),
            (with("timeout_s = 0"), "timeout_s: must be more than 0"),
            (with("timeout_s = nan"), "timeout_s: must be more than 0"),
            (with("max_attempts = 0"), "max_attempts: must be between 1 and 10"),
            (with("api_key_env = \"sk-abc-123\""), "api_key_env: must be the name"),
            (with("version = \"\""), "version: must be 1 to 128"),
            (
                "adapter = \"openai\"\nbase_url = \"http://h:1/\"\nmodel = \"m\"".to_owned(),
                "base_url: must end in /v1",
            ),
            (
                "adapter = \"openai\"\nbase_url = \"ftp://h/v1\"\nmodel = \"m\"".to_owned(),
                "base_url: must start with https://",
            ),
            (
                "adapter = \"openai\"\nbase_url = \"https://u:p@h/v1\"\nmodel = \"m\"".to_owned(),
                "base_url: must not carry a user name",
            ),
            (
                "adapter = \"openai\"\nbase_url = \"not a url\"\nmodel = \"m\"".to_owned(),
                "base_url: is not a valid URL",
            ),
            (
                "adapter = \"openai\"\nmodel = \"m\"".to_owned(),
                "base_url: is required",
            ),
            (
                "adapter = \"anthropic\"\nbase_url = \"https://api.anthropic.com/v1\"\nmodel = \"m\""
                    .to_owned(),
                "base_url: must be the host root",
            ),
            (
                "adapter = \"anthropic\"\nbase_url = \"https://h\"\nmodel = \"m\"\nmax_tokens_field = \"max_tokens\""
                    .to_owned(),
                "max_tokens_field: is for adapter = \"openai\" only",
            ),
            (
                "adapter = \"openai\"\nbase_url = \"https://h/v1\"\nmodel = \" \"".to_owned(),
                "model: must not be empty",
            ),
            (
                "adapter = \"builtin\"\nmodel = \"arith\"\nbase_url = \"https://h/v1\"".to_owned(),
                "base_url: is for the HTTP adapters",
            ),
            (
                "adapter = \"builtin\"\nmodel = \"oracle\"".to_owned(),
                "model: unknown built-in model",
            ),
        ];
        for (text, expected) in cases {
            let message = error(&text);
            assert!(message.starts_with(expected), "{message:?} for {text:?}");
        }
    }

    #[test]
    fn a_builtin_is_built_from_its_name_and_options() {
        let config =
            ModelConfig::from_toml("adapter = \"builtin\"\nmodel = \"arith?latency_ms=5\"")
                .expect("valid");
        let model = config
            .build(None, Some(1), &HostPolicy::any())
            .expect("builds");
        assert_eq!(model.descriptor().reference, "builtin:arith?latency_ms=5");
    }

    #[test]
    fn an_http_model_describes_itself_by_adapter_and_name() {
        let config = ModelConfig::from_toml(&with("version = \"2025-01\"")).expect("valid");
        let model = config
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        let d = model.descriptor();
        assert_eq!(
            (d.reference.as_str(), d.name.as_str(), d.version.as_str()),
            ("openai:m", "m", "2025-01")
        );
    }

    #[test]
    fn building_for_the_service_checks_the_endpoint_against_its_host_rules() {
        // Registered while the operator allowed loopback, built after the allowance went.
        let local = ModelConfig::from_toml(OPENAI).expect("valid");
        let refused = local.build(None, None, &HostPolicy::service());
        assert_eq!(
            refused.err().map(|e| e.to_string()).as_deref(),
            Some(
                "base_url: 127.0.0.1 is a loopback address, which the service does not call unless its operator allows the host (proctor serve --allow-model-hosts)"
            )
        );
        let allowed = HostPolicy::service_allowing("127.0.0.1:8000").expect("valid");
        assert!(local.build(None, None, &allowed).is_ok());
        let builtin =
            ModelConfig::from_toml("adapter = \"builtin\"\nmodel = \"arith\"").expect("valid");
        assert!(builtin.check_hosts(&HostPolicy::service()).is_ok());
    }

    #[test]
    fn an_endpoint_model_name_refuses_invisible_characters() {
        let text = "adapter = \"openai\"\nbase_url = \"https://h/v1\"\nmodel = \"gpt\u{202E}\"";
        assert_eq!(
            error(text),
            "model: must not hold the invisible format character U+202E"
        );
    }

    #[test]
    fn the_credential_comes_from_the_named_variable_and_errors_name_only_the_variable() {
        let config = ModelConfig::from_toml(&with(
            "api_key_env = \"PROCTOR_TEST_SURELY_UNSET_VARIABLE\"",
        ))
        .expect("valid");
        let err = config.credential_from_env().expect_err("unset").to_string();
        assert_eq!(
            err,
            "the environment variable PROCTOR_TEST_SURELY_UNSET_VARIABLE (api_key_env) is not set"
        );
        let keyless = ModelConfig::from_toml(OPENAI).expect("valid");
        assert_eq!(keyless.credential_from_env(), Ok(None));
        let bad = keyless.build(
            Some(Credential::new("line\nbreak")),
            None,
            &HostPolicy::any(),
        );
        assert_eq!(
            bad.err().map(|e| e.to_string()).as_deref(),
            Some("the credential cannot be sent in an HTTP header (it holds control characters)")
        );
    }
}
