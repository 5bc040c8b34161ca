//! Why a model reference or configuration cannot be used.

/// A model reference that names no model Proctor can build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelRefError {
    /// Only `builtin:` references are resolved from a name; HTTP models need a configuration.
    #[error(
        "unknown model reference {0:?}: use builtin:arith, builtin:echo or builtin:refuse, or --model-config FILE.toml for an HTTP model"
    )]
    UnknownScheme(String),
    /// `builtin:` with a name that is not one of the built-ins.
    #[error("unknown built-in model {0:?}: the built-ins are arith, echo and refuse")]
    UnknownBuiltin(String),
    /// An option in the query string that the built-ins do not take, or a bad value.
    #[error("built-in model option {key:?}: {reason}")]
    BadOption {
        /// The option's name.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A model configuration that cannot be read, is invalid, or cannot be built.
///
/// Messages name the key or environment variable at fault and never carry a credential or a
/// value from the file (a key pasted into the wrong field must not reach a log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The TOML does not parse, or a key is unknown, missing or of the wrong type.
    #[error("{}{message}", location(*line, key.as_deref()))]
    Toml {
        /// 1-based line of the fault, when the parser knows it.
        line: Option<usize>,
        /// The key on that line, when there is one.
        key: Option<String>,
        /// The parser's message (it names keys and types, not the text of the line).
        message: String,
    },
    /// A key has a value Proctor cannot use.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key at fault.
        key: &'static str,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// `api_key_env` names a variable that is not set.
    #[error("the environment variable {var} (api_key_env) is not set")]
    CredentialMissing {
        /// The variable's name.
        var: String,
    },
    /// `api_key_env` names a variable whose value cannot be a credential.
    #[error("the environment variable {var} (api_key_env) {reason}")]
    CredentialUnusable {
        /// The variable's name.
        var: String,
        /// Why, without the value.
        reason: &'static str,
    },
    /// The credential cannot be sent in an HTTP header.
    #[error("the credential cannot be sent in an HTTP header (it holds control characters)")]
    CredentialNotAHeader,
    /// A built-in model named by `model` does not exist or has bad options.
    #[error("model: {0}")]
    Builtin(#[from] ModelRefError),
    /// The HTTP client could not be set up (TLS roots, resolver).
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// The host rules refuse the endpoint's `base_url`.
    #[error(transparent)]
    HostRefused(#[from] crate::hosts::HostRefused),
}

fn location(line: Option<usize>, key: Option<&str>) -> String {
    match (line, key) {
        (Some(line), Some(key)) => format!("line {line}, key {key}: "),
        (Some(line), None) => format!("line {line}: "),
        (None, Some(key)) => format!("key {key}: "),
        (None, None) => String::new(),
    }
}

/// Why `proctor model test` could not report on a model: its configuration (exit 2) or the
/// model itself (exit 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The configuration or credential is unusable; nothing was sent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The request was sent and failed.
    #[error(transparent)]
    Model(#[from] proctor_core::ModelError),
}
