//! Why a component was refused from its bytes alone.

/// Refusals of a component for what it is, before anything of it runs. Messages are written
/// for the evaluator and name the cause; none quotes more of the binary than its import and
/// export names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentError {
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
    /// The binary does not parse, or the engine could not compile it.
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
}
