//! Why the sandbox refused a component, a policy or a job before it ran.

/// Refusals before a job runs. Messages are written for the evaluator and name the cause.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Refused for what it is, from its bytes (or its engine could not compile or link it).
    #[error(transparent)]
    Component(#[from] proctor_component::ComponentError),
    /// `describe` trapped, or touched `model`, `dataset` or `scores`.
    #[error("describe failed: {0}")]
    Describe(String),
    /// The `describe` result broke a bound.
    // The cause is in the message, not also a `source`: the CLI prints the whole chain and
    // the API the message, and each should name it once.
    #[error("invalid eval declaration: {0}")]
    Declaration(proctor_core::EvalInfoError),
    /// The eval declares more metrics than the policy allows.
    #[error("the eval declares {declared} metrics; the policy allows {allowed}")]
    TooManyMetrics {
        /// Metrics declared.
        declared: usize,
        /// The policy's `max_metrics`.
        allowed: u64,
    },
    /// Under the policy's DP release a noise scale would exceed the safe bound.
    #[error(transparent)]
    NoiseScale(#[from] proctor_core::release::ReleaseError),
    /// A policy value the engine was not sized for.
    #[error("invalid policy: `{key}` is {value}; this engine allows at most {max}")]
    PolicyBeyondEngine {
        /// Dotted key.
        key: &'static str,
        /// The policy's value.
        value: u64,
        /// The engine's ceiling.
        max: u64,
    },
    /// The engine itself could not be set up.
    #[error("could not set up the wasm engine: {0}")]
    Engine(String),
    /// The compile cache could not be read or written.
    #[error("compile cache at {path}: {message}")]
    Cache {
        /// The file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl From<proctor_core::EvalInfoError> for SandboxError {
    fn from(err: proctor_core::EvalInfoError) -> SandboxError {
        SandboxError::Declaration(err)
    }
}
