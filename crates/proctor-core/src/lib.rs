//! Proctor's domain types and pure logic: policies, metric declarations, sample outcomes, the
//! `Model` trait, statistics and the release of results. Nothing here does I/O: no tokio,
//! wasmtime, HTTP or SQL.
#![deny(missing_docs)]

pub mod model;

pub use model::{
    Completion, CompletionRequest, FinishReason, Message, Model, ModelDescriptor, ModelError,
    Params, Role,
};
