//! The model a service job calls: every query reserves budget from the job's grant before the
//! request goes out and is settled with the tokens the model reported (or given back when the
//! request failed), and the job's running usage is counted for its progress and for an
//! attestation of a job that ends early.
//!
//! The grant is billed what the endpoint reported; the job's running usage, which its
//! attestation and its evaluator see, counts each query's tokens clamped to the query's worst
//! case (as the sandbox tallies them), so an endpoint that reports more cannot widen what one
//! sample moves a visible figure by.
//!
//! A refusal by the grant reaches the guest as `budget-exhausted`, never as a trap; a store
//! failure while reserving is the service's fault ([`ModelError::ServiceFault`]: the sample
//! ends as `other`), never reported as the model being unavailable. A revoked
//! grant also stops the whole job at once (its cancellation token), so a revocation takes
//! effect at the job's next query on whichever server runs it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use proctor_core::{Completion, CompletionRequest, Model, ModelDescriptor, ModelError, Usage};
use proctor_sandbox::CancellationToken;
use proctor_store::{Budget, GrantId, JobId, Refusal, ReservationId, Store, StoreError};
use tracing::warn;

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
    store: Store,
    grant: GrantId,
    job: JobId,
    usage: Arc<UsageCounter>,
    refusals: Arc<GrantRefusals>,
    stop_job: CancellationToken,
}

impl Metered {
    /// Wraps `inner` for `job` under `grant`: counts into `usage`, notes refusals in
    /// `refusals`, and cancels `stop_job` when the grant was revoked.
    pub fn new(
        inner: Arc<dyn Model>,
        store: Store,
        (grant, job): (GrantId, JobId),
        usage: Arc<UsageCounter>,
        refusals: Arc<GrantRefusals>,
        stop_job: CancellationToken,
    ) -> Metered {
        Metered {
            inner,
            store,
            grant,
            job,
            usage,
            refusals,
            stop_job,
        }
    }

    fn refused(&self, err: StoreError) -> ModelError {
        match err {
            StoreError::BudgetExhausted(budget) => {
                self.refusals.note(budget_reason(budget));
                ModelError::BudgetExhausted
            }
            StoreError::NoGrant(Refusal::Revoked) => {
                self.refusals.revoked.store(true, Ordering::SeqCst);
                self.refusals.note(Refusal::Revoked.message().to_owned());
                self.stop_job.cancel();
                ModelError::BudgetExhausted
            }
            StoreError::NoGrant(refusal) => {
                self.refusals.note(refusal.message().to_owned());
                ModelError::BudgetExhausted
            }
            other => {
                // The budget could not be checked, so the request does not go out; the
                // service failed, not the model, and the sample is not blamed on it.
                warn!(err = %other, "reserving a model query failed");
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

/// Runs a store call to its end in a task of its own, even if the sample awaiting it is
/// dropped meanwhile (a stopped job drops its samples; so does a sample's timeout). A write
/// transaction cut off mid-statement would leave its pooled SQLite connection holding the
/// database's write lock until that connection is used again, and every other write of the
/// service would wait on it.
async fn to_end<T: Send + 'static>(
    call: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::spawn(call).await {
        Ok(result) => result,
        // The call panicked (or the runtime is shutting down): nothing was committed.
        Err(err) => Err(StoreError::Invalid(if err.is_panic() {
            "a store call panicked"
        } else {
            "a store call was cancelled"
        })),
    }
}

/// A reservation whose request is in flight. Dropped before it is settled (the job was
/// stopped mid-request), it is settled at its worst case in the background: the request may
/// have reached the endpoint, so it must count.
struct InFlight {
    store: Store,
    id: Option<ReservationId>,
    worst_case: u64,
}

impl InFlight {
    fn take(mut self) -> ReservationId {
        self.id
            .take()
            .expect("an in-flight reservation is taken once")
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let store = self.store.clone();
        let tokens = self.worst_case;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = store.settle(id, tokens, 0).await {
                    warn!(%err, "settling a stopped query failed; the job's end settles it");
                }
            });
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
        let (store, grant, job) = (self.store.clone(), self.grant, self.job);
        let reservation = to_end(async move { store.reserve_query(grant, job, worst_case).await })
            .await
            .map_err(|e| self.refused(e))?;
        let in_flight = InFlight {
            store: self.store.clone(),
            id: Some(reservation.id),
            worst_case,
        };
        let answer = self.inner.complete(request).await;
        let id = in_flight.take();
        match answer {
            Ok(completion) => {
                let store = self.store.clone();
                let (input, output) = (completion.input_tokens, completion.output_tokens);
                let settled =
                    to_end(
                        async move { store.settle(id, u64::from(input), u64::from(output)).await },
                    )
                    .await;
                if let Err(err) = settled {
                    // Left reserved, it keeps holding its worst case; the job's end settles it.
                    warn!(%err, "settling a model query failed");
                }
                self.usage.add((
                    u64::from(completion.input_tokens).min(max_input),
                    u64::from(completion.output_tokens).min(max_output),
                ));
                Ok(completion)
            }
            Err(err) => {
                // Failed requests are not billed: the reservation goes back.
                let store = self.store.clone();
                if let Err(release) = to_end(async move { store.release(id).await }).await {
                    warn!(err = %release, "giving back a failed query's reservation failed");
                }
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proctor_core::model::{Message, Params, Role};

    use super::*;

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

    /// A store that fails while reserving (here: closed) is the service's fault: the request
    /// does not go out, and the error says so instead of blaming the model.
    #[tokio::test]
    async fn a_store_failure_while_reserving_is_a_service_fault() {
        let store = Store::connect("sqlite::memory:").await.expect("store");
        store.close().await;
        let metered = Metered::new(
            Arc::new(Unreachable),
            store,
            (GrantId::new(), JobId::new()),
            Arc::default(),
            Arc::default(),
            CancellationToken::new(),
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
    }
}
