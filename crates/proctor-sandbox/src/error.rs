//! Why the sandbox refused a component, a policy or a job before it ran.

/// Refusals before a job runs. Messages are written for the evaluator and name the cause.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Zero bytes.
    #[error("the file is empty: expected a WebAssembly component")]
    Empty,
    /// Not WebAssembly at all.
    #[error("not a WebAssembly component: the file does not start with the `\\0asm` magic bytes")]
    NotWasm,
    /// A core module where a component is needed.
    #[error(
        "this is a core WebAssembly module, not a component: build with `--target wasm32-wasip2`, \
         or encode the module with `wasm-tools component new` (the proctor-guest SDK does this for \
         you; componentize-py and componentize-js emit components)"
    )]
    CoreModule,
    /// `\0asm` followed by an unknown version or layer.
    #[error("unsupported WebAssembly version or layer bytes {0:02x?}")]
    UnknownLayer([u8; 4]),
    /// wasmtime could not compile it.
    #[error("the component is malformed or uses unsupported features: {0}")]
    Invalid(String),
    /// Imports outside the eval world and the WASI the policy allows.
    #[error("the component imports what the policy does not provide: {}", .0.join(", "))]
    ForbiddenImports(Vec<String>),
    /// Not the `proctor:eval/eval` world, of 0.1.0 or 0.2.0.
    #[error(
        "the component is not built for the proctor:eval `eval` world (0.1.0, or 0.2.0 with isolation): {0}"
    )]
    WrongWorld(String),
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
