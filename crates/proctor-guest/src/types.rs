//! Constructors for the contract's records, so an eval reads as plain Rust.

use crate::{EvalInfo, Message, Metric, Params, QueryError, Role, SampleError};

impl EvalInfo {
    /// An eval's name, version and metric declarations.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        metrics: Vec<Metric>,
    ) -> EvalInfo {
        EvalInfo {
            name: name.into(),
            version: version.into(),
            metrics,
        }
    }
}

impl Metric {
    /// A metric named `[a-z][a-z0-9_-]{0,63}` with values in `[min, max]` (`min < max`).
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        min: f64,
        max: f64,
    ) -> Metric {
        Metric {
            name: name.into(),
            description: description.into(),
            min,
            max,
        }
    }
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Message {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message (for few-shot conversations).
    pub fn assistant(content: impl Into<String>) -> Message {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// No token limit (the policy's applies), the endpoint's default temperature, no stop sequences.
impl Default for Params {
    fn default() -> Params {
        Params {
            max_tokens: None,
            temperature: None,
            stop: Vec::new(),
        }
    }
}

impl Params {
    /// Caps the reply at `n` tokens (at most the policy's `max_tokens`).
    pub fn max_tokens(mut self, n: u32) -> Params {
        self.max_tokens = Some(n);
        self
    }

    /// Sets the sampling temperature.
    pub fn temperature(mut self, t: f64) -> Params {
        self.temperature = Some(t);
        self
    }

    /// Adds a stop sequence.
    pub fn stop(mut self, s: impl Into<String>) -> Params {
        self.stop.push(s.into());
        self
    }
}

impl QueryError {
    /// The sample error that usually follows a refused query: the budget, the endpoint, or
    /// (for a request the policy rejected) a plain failure.
    pub fn into_sample_error(self) -> SampleError {
        match self {
            QueryError::BudgetExhausted => SampleError::BudgetExhausted,
            QueryError::Unavailable => SampleError::ModelUnavailable,
            QueryError::Rejected(_) => SampleError::Failed,
        }
    }
}
