//! Turning how a sample ended into its named outcome.
//!
//! Flags the host set (a policy violation, a limit hit) take precedence over the trap code:
//! they say why the guest was stopped, where the trap says only how.

use proctor_core::Outcome;
use wasmtime::Trap;

use crate::bindings::SampleError;
use crate::host::{SampleState, Violation};

/// The outcome of a `run-sample` call that returned.
pub(crate) fn from_return(result: Result<(), SampleError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Ok,
        Err(SampleError::ModelUnavailable) => Outcome::ModelUnavailable,
        Err(SampleError::BudgetExhausted) => Outcome::BudgetExhausted,
        Err(SampleError::InvalidItem) => Outcome::InvalidItem,
        Err(SampleError::Failed) => Outcome::Failed,
    }
}

/// The outcome of a sample that trapped (or failed to instantiate).
pub(crate) fn from_trap(error: &wasmtime::Error, state: &SampleState) -> Outcome {
    if state.limiter.exceeded || state.violation == Some(Violation::Resources) {
        return Outcome::Memory;
    }
    match state.violation {
        Some(Violation::Policy(_)) => return Outcome::PolicyViolation,
        // Neither the guest's doing nor the model's; `other` blames neither.
        Some(Violation::Service) => return Outcome::Other,
        Some(Violation::Resources) | None => {}
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::OutOfFuel,
        Some(Trap::Interrupt) => Outcome::Deadline,
        Some(Trap::StackOverflow) => Outcome::StackOverflow,
        _ => Outcome::Other,
    }
}

/// A host-written sentence for a `describe` that failed: which rule, never guest text.
pub(crate) fn classify_describe_error(error: &wasmtime::Error, state: &SampleState) -> String {
    if let Some(Violation::Policy(rule)) = state.violation {
        return rule.to_owned();
    }
    match from_trap(error, state) {
        Outcome::OutOfFuel => "it ran out of fuel".into(),
        Outcome::Deadline => "it did not return within its time limit".into(),
        Outcome::StackOverflow => "it overflowed its stack".into(),
        Outcome::Memory => "it grew its memory past the limit".into(),
        _ => match error.downcast_ref::<Trap>() {
            Some(trap) => format!("it trapped: {trap}"),
            None => "it trapped or could not be instantiated".into(),
        },
    }
}
