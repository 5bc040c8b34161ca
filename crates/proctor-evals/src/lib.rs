//! The example evals and the test guests, compiled to components by `build.rs` from the guest
//! crates in `crates/evals` and embedded, so `proctor demo` and `proctor examples` work from any
//! directory and the sandbox's tests run real components.

/// The example evals and their datasets. Both are zero-WASI components: they run under every
/// policy, `strict` included.
pub mod examples {
    include!(concat!(env!("OUT_DIR"), "/examples.rs"));

    /// 500 items `{"a": int, "b": int}`.
    pub const ARITH_JSONL: &str = include_str!("../../evals/arith/arith.jsonl");
    /// 40 multiple-choice items `{"question", "choices", "answer"}`.
    pub const KNOWLEDGE_JSONL: &str = include_str!("../../evals/knowledge/knowledge.jsonl");
}

/// Hostile and broken guests for the sandbox's tests. Each of the 0.1.0 ones misbehaves on even
/// sample indexes only and reports `ok = 1` on odd ones; the `isolation-*` ones (0.2.0, or
/// trying to be) say what they do in their own docs.
#[cfg(feature = "test-guests")]
pub mod test_guests {
    include!(concat!(env!("OUT_DIR"), "/test_guests.rs"));
}
