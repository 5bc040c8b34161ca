//! The Rust SDK for Proctor evals: implement [`Eval`] and call [`export_eval!`] once.
//!
//! An eval is a WebAssembly component of the `proctor:eval@0.1.0` world (the WIT file lives in
//! `crates/proctor-sandbox/wit/proctor.wit`). This crate generates the bindings and hides them:
//! an author sees plain functions ([`model::complete`], [`dataset::item`], [`scores::report`]) and
//! plain types.
//!
//! ```ignore
//! use proctor_guest::{dataset, model, scores, Eval, EvalInfo, Message, Metric, Params, SampleError};
//!
//! struct Echo;
//!
//! impl Eval for Echo {
//!     fn describe() -> EvalInfo {
//!         EvalInfo::new("echo", "1.0.0", vec![Metric::new("same", "the reply repeats the item", 0.0, 1.0)])
//!     }
//!
//!     fn run_sample(index: u32) -> Result<(), SampleError> {
//!         let item = dataset::item(index);
//!         let reply = model::complete(&[Message::user(item.clone())], &Params::default())
//!             .map_err(|e| e.into_sample_error())?;
//!         scores::report("same", if reply.text == item { 1.0 } else { 0.0 });
//!         Ok(())
//!     }
//! }
//!
//! proctor_guest::export_eval!(Echo);
//! ```
//!
//! Build for `wasm32-unknown-unknown` and wrap the module as a component
//! (`wasm-tools component new`, or the `wit-component` crate): the result imports no WASI at
//! all and runs under every policy. `wasm32-wasip2` also works and emits a component directly.

mod types;

#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
// The generated ABI glue is unsafe by nature; it is wit-bindgen's, not ours.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../proctor-sandbox/wit",
        world: "eval",
        pub_export_macro: true,
        export_macro_name: "__export_proctor_eval",
    });
}

pub use bindings::proctor::eval::types::{
    Completion, FinishReason, Message, Metric, Params, QueryError, Role,
};
pub use bindings::{EvalInfo, SampleError};

/// An eval program: what it measures, and how one sample runs.
///
/// Each call of [`Eval::run_sample`] runs in a fresh instance: statics start over for every
/// sample, and nothing one sample saw is visible to another.
pub trait Eval {
    /// Names the eval and declares its metrics. Runs once, at upload, before any model or
    /// dataset access (calling [`model`] or [`dataset`] here traps).
    fn describe() -> EvalInfo;

    /// Runs sample `index`: read items, query the model, report scores. Returning an error
    /// counts the sample as failed and drops its scores.
    fn run_sample(index: u32) -> Result<(), SampleError>;
}

/// Exports a type implementing [`Eval`] as the component's `describe` and `run-sample`.
#[macro_export]
macro_rules! export_eval {
    ($eval:ty) => {
        const _: () = {
            struct ProctorEvalExport;

            impl $crate::bindings::Guest for ProctorEvalExport {
                fn describe() -> $crate::EvalInfo {
                    <$eval as $crate::Eval>::describe()
                }

                fn run_sample(index: u32) -> Result<(), $crate::SampleError> {
                    <$eval as $crate::Eval>::run_sample(index)
                }
            }

            $crate::bindings::__export_proctor_eval!(ProctorEvalExport with_types_in $crate::bindings);
        };
    };
}

/// The model under test: the eval's only capability.
pub mod model {
    use crate::{Completion, Message, Params, QueryError};

    /// Sends one request. Looks synchronous; the host waits for the model without holding a
    /// thread. The host checks the request against the policy first (prompt size, max tokens,
    /// queries per sample, budget) and answers a refusal as a [`QueryError`].
    pub fn complete(messages: &[Message], params: &Params) -> Result<Completion, QueryError> {
        crate::bindings::proctor::eval::model::complete(messages, params)
    }
}

/// The dataset the job runs over: one JSON text per item.
pub mod dataset {
    /// How many items the dataset has.
    pub fn count() -> u32 {
        crate::bindings::proctor::eval::dataset::count()
    }

    /// Item `index`, exactly as the line was written. An index past the end traps the sample.
    pub fn item(index: u32) -> String {
        crate::bindings::proctor::eval::dataset::item(index)
    }

    /// Item `index` parsed as JSON; a malformed or mistyped item is [`crate::SampleError::InvalidItem`].
    #[cfg(feature = "json")]
    pub fn item_json<T: serde::de::DeserializeOwned>(index: u32) -> Result<T, crate::SampleError> {
        serde_json::from_str(&item(index)).map_err(|_| crate::SampleError::InvalidItem)
    }
}

/// Scores: only declared metrics, finite values; the host clips to the declared range and keeps
/// the last value per metric per sample.
pub mod scores {
    /// Reports `value` for `metric`. An undeclared metric or a non-finite value traps the sample.
    pub fn report(metric: &str, value: f64) {
        crate::bindings::proctor::eval::scores::report(metric, value)
    }
}
