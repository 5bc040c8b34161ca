//! The model a service job calls: every query draws budget from the job's meter
//! ([`crate::meter`]: blocks leased from the grant) before the request goes out and is settled
//! with the tokens the model reported (or given back when the request failed), and the job's
//! running usage is counted for its progress and for an attestation of a job that ends early.
//!
//! The grant is billed what the endpoint reported; the job's running usage, which its
//! attestation and its evaluator see, counts each query's tokens clamped to the query's worst
//! case (as the sandbox tallies them), so an endpoint that reports more cannot widen what one
//! sample moves a visible figure by.
//!
//! A refusal by the grant reaches the guest as `budget-exhausted`, never as a trap; a store
//! failure while leasing is the service's fault ([`ModelError::ServiceFault`]: the sample
//! ends as `other`), never reported as the model being unavailable. A revoked
//! grant also stops the whole job at once (its cancellation token), so a revocation takes
//! effect on whichever server runs the job within [`crate::meter::STOP_BOUND`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use proctor_core::{Completion, CompletionRequest, Model, ModelDescriptor, ModelError, Usage};
use proctor_sandbox::CancellationToken;
use proctor_store::{Budget, StoreError};
use tracing::warn;

use crate::meter::{Draw, Meter};
use crate::metrics::ModelTiming;

/// Running totals of one job's model calls.
#[derive(Debug, Default)]
pub struct UsageCounter {
    queries: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
}

impl UsageCounter {
    /// The totals so far. Each field is read on its own, so a snapshot taken while calls
    /// complete may be one call behind in some field; the final snapshot, taken after the job
    /// loop returned, is exact.
    pub fn snapshot(&self) -> Usage {
        Usage {
            queries: self.queries.load(Ordering::Relaxed),
            input_tokens: self.input_tokens.load(Ordering::Relaxed),
            output_tokens: self.output_tokens.load(Ordering::Relaxed),
        }
    }

    fn add(&self, (input_tokens, output_tokens): (u64, u64)) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.input_tokens.fetch_add(input_tokens, Ordering::Relaxed);
        self.output_tokens
            .fetch_add(output_tokens, Ordering::Relaxed);
    }
}

/// What the grant refused during a job, for the job's stated reason.
#[derive(Debug, Default)]
pub struct GrantRefusals {
    revoked: AtomicBool,
    first: Mutex<Option<String>>,
}

impl GrantRefusals {
    /// Whether a query found the grant revoked.
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::SeqCst)
    }

    /// The first refusal, as a sentence: which budget ran out, or why the grant stopped
    /// covering the job.
    pub fn first(&self) -> Option<String> {
        self.first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn note(&self, reason: String) {
        let mut first = self
            .first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        first.get_or_insert(reason);
    }
}

/// A job's model, metered against its grant.
pub struct Metered {
    inner: Arc<dyn Model>,
    meter: Arc<Meter>,
    job: JobMetering,
    timing: ModelTiming,
}

/// What a job's model reports to: its usage, the grant's refusals, and the token that stops
/// the job when the grant was revoked.
#[derive(Clone)]
pub struct JobMetering {
    /// The job's running usage.
    pub usage: Arc<UsageCounter>,
    /// What the grant refused.
    pub refusals: Arc<GrantRefusals>,
    /// Stops the job.
    pub stop_job: CancellationToken,
}

impl Metered {
    /// Wraps `inner`, drawing from `meter`: counts into `job.usage`, notes refusals in
    /// `job.refusals`, cancels `job.stop_job` when the grant was revoked, and times each
    /// request into `timing`.
    pub fn new(
        inner: Arc<dyn Model>,
        meter: Arc<Meter>,
        job: JobMetering,
        timing: ModelTiming,
    ) -> Metered {
        Metered {
            inner,
            meter,
            job,
            timing,
        }
    }

    fn refused(&self, err: StoreError) -> ModelError {
        match err {
            StoreError::BudgetExhausted(budget) => {
                self.job.refusals.note(budget_reason(budget));
                ModelError::BudgetExhausted
            }
            StoreError::NoGrant(refusal) if refusal.stops_jobs() => {
                // A suspension ends the job as a revocation does.
                self.job.refusals.revoked.store(true, Ordering::SeqCst);
                self.job.refusals.note(refusal.message().to_owned());
                self.job.stop_job.cancel();
                ModelError::BudgetExhausted
            }
            StoreError::NoGrant(refusal) => {
                self.job.refusals.note(refusal.message().to_owned());
                ModelError::BudgetExhausted
            }
            other => {
                // The budget could not be checked, so the request does not go out; the
                // service failed, not the model, and the sample is not blamed on it.
                warn!(err = %other, "leasing budget for a model query failed");
                ModelError::ServiceFault("the budget could not be checked".into())
            }
        }
    }
}

/// The job's reason when a budget ran out during it.
fn budget_reason(budget: Budget) -> String {
    format!(
        "the grant's budget ran out ({}): {}",
        budget.as_str(),
        budget.message()
    )
}

/// A draw whose request is in flight. Dropped before it is settled (the job was stopped
/// mid-request), it counts at its worst case: the request may have reached the endpoint.
struct InFlight<'a> {
    meter: &'a Meter,
    draw: Option<Draw>,
}

impl InFlight<'_> {
    fn take(mut self) -> Draw {
        self.draw.take().expect("an in-flight draw is taken once")
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(draw) = self.draw.take() {
            self.meter.settle_worst(draw);
        }
    }
}

#[async_trait]
impl Model for Metered {
    fn descriptor(&self) -> ModelDescriptor {
        self.inner.descriptor()
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        let worst_case = request.worst_case_tokens();
        let max_output = u64::from(request.params.max_tokens);
        let max_input = worst_case.saturating_sub(max_output);
        let draw = self
            .meter
            .draw(worst_case)
            .await
            .map_err(|e| self.refused(e))?;
        let in_flight = InFlight {
            meter: &self.meter,
            draw: Some(draw),
        };
        self.meter.observe(&request);
        let started = std::time::Instant::now();
        let answer = self.inner.complete(request).await;
        self.timing
            .observe(started.elapsed().as_secs_f64(), &answer);
        let draw = in_flight.take();
        match answer {
            Ok(completion) => {
                self.meter.settle(
                    draw,
                    u64::from(completion.input_tokens),
                    u64::from(completion.output_tokens),
                );
                self.job.usage.add((
                    u64::from(completion.input_tokens).min(max_input),
                    u64::from(completion.output_tokens).min(max_output),
                ));
                Ok(completion)
            }
            Err(err) => {
                // Failed requests are not billed: the draw goes back.
                self.meter.give_back(draw);
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proctor_core::model::{Message, Params, Role};
    use proctor_store::{GrantId, JobId, Store};

    use super::*;
    use crate::metrics::Metrics;

    /// Answers anything; must never be reached when the budget cannot be checked.
    struct Unreachable;

    #[async_trait]
    impl Model for Unreachable {
        fn descriptor(&self) -> ModelDescriptor {
            ModelDescriptor {
                reference: "test:unreachable".into(),
                name: "unreachable".into(),
                version: "1".into(),
            }
        }

        async fn complete(&self, _: CompletionRequest) -> Result<Completion, ModelError> {
            panic!("the request went out although its budget was not checked");
        }
    }

    /// A store that fails while leasing (here: closed) is the service's fault: the request
    /// does not go out, and the error says so instead of blaming the model.
    #[tokio::test]
    async fn a_store_failure_while_leasing_is_a_service_fault() {
        let store = Store::connect("sqlite::memory:").await.expect("store");
        store.close().await;
        let stop_job = CancellationToken::new();
        let metrics = Metrics::new().expect("metrics");
        let (meter, task) = Meter::start(
            store,
            (GrantId::new(), JobId::new()),
            stop_job.clone(),
            (metrics.meter(), crate::usage_profile::UsageTap::off()),
        );
        let metered = Metered::new(
            Arc::new(Unreachable),
            meter,
            JobMetering {
                usage: Arc::default(),
                refusals: Arc::default(),
                stop_job,
            },
            metrics.model_timing("unreachable"),
        );
        let request = CompletionRequest {
            messages: vec![Message {
                role: Role::User,
                content: "2+2".into(),
            }],
            params: Params {
                max_tokens: 8,
                temperature: None,
                stop: Vec::new(),
            },
        };
        let err = metered.complete(request).await.expect_err("refused");
        assert!(matches!(err, ModelError::ServiceFault(_)), "{err:?}");
        task.close().await;
    }
}
