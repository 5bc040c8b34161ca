//! The host side of the eval world: what a guest's `model`, `dataset` and `scores` imports do,
//! and the inert WASI a guest may link.
//!
//! Every guest call is checked here against the policy. A guest that breaks a rule it could
//! have kept (an undeclared metric, a non-finite score, an item out of range, touching the
//! model or dataset from `describe`) is killed with a trap; a refused model query is returned
//! to the guest as a `query-error`, as the contract says. Trap messages are host-written and
//! never echo guest strings, which may carry model output.
//!
//! A completion's reported token counts are clamped to the query's worst case (its prompt's
//! worst-case input, its max-tokens out) before the sample counts them: the released usage's
//! noise is scaled to that worst case, so an endpoint that reports more must not move the
//! tally further. The vendor still bills what the endpoint reported (the caller's metering).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proctor_core::{CompletionRequest, Dataset, EvalInfo, Model, ModelError, Usage};
use rand::SeedableRng;
use rand::rngs::StdRng;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use crate::bindings::proctor::eval::{dataset, model, scores, types};
use crate::dev::StderrCapture;
use crate::isolation::Isolation;

/// Why the host killed a guest. Kept in the store so the outcome does not depend on parsing
/// trap messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A host call that the contract forbids or a value it refuses.
    Policy(&'static str),
    /// A memory or table grow past the limit.
    Resources,
    /// The service failed under a host call (the model's metering): not the guest's doing
    /// nor the model's.
    Service,
}

/// Which export is running: only a sample may touch the model, the dataset, scores or
/// isolation; `describe` and an isolated run (`run-isolated`) may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Describe,
    Sample,
    Isolated,
}

/// What every sample of a job shares.
pub(crate) struct JobShared {
    pub model: Arc<dyn Model>,
    pub dataset: Arc<Dataset>,
    pub info: Arc<EvalInfo>,
    pub max_queries: u64,
    pub max_prompt_bytes: u64,
    pub max_tokens: u64,
    pub seed: u64,
}

/// The state of one store: one instance, one sample.
pub(crate) struct SampleState {
    pub phase: Phase,
    pub job: Option<Arc<JobShared>>,
    /// Last value per declared metric, already clipped.
    pub scores: Vec<Option<f64>>,
    pub queries: u64,
    pub usage: Usage,
    pub violation: Option<Violation>,
    pub deadline: Instant,
    pub limiter: Limiter,
    /// A 0.2.0 sample's isolation budget; `None` in every other store, whose
    /// `isolation.run` then traps.
    pub isolation: Option<Isolation>,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl SampleState {
    pub fn new(
        phase: Phase,
        job: Option<Arc<JobShared>>,
        metrics: usize,
        limits: StoreLimits,
        deadline: Instant,
        sample_seed: u64,
        stderr: Option<StderrCapture>,
    ) -> SampleState {
        SampleState {
            phase,
            job,
            scores: vec![None; metrics],
            queries: 0,
            usage: Usage::default(),
            violation: None,
            deadline,
            limiter: Limiter {
                inner: limits,
                exceeded: false,
            },
            isolation: None,
            wasi: inert_wasi(sample_seed, stderr),
            table: ResourceTable::new(),
        }
    }

    pub(crate) fn kill(&mut self, violation: Violation, message: &'static str) -> wasmtime::Error {
        self.violation = Some(violation);
        wasmtime::Error::msg(message)
    }

    fn job(&mut self, what: &'static str) -> wasmtime::Result<Arc<JobShared>> {
        match (&self.job, self.phase) {
            (Some(job), Phase::Sample) => Ok(job.clone()),
            _ => Err(self.kill(Violation::Policy(what), what)),
        }
    }
}

/// Memory and table limits that remember they were hit, so the outcome is `memory`.
pub(crate) struct Limiter {
    inner: StoreLimits,
    pub exceeded: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.exceeded = true;
        }
        allowed
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.table_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.exceeded = true;
        }
        allowed
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// A wall clock frozen at 2000-01-01: a sample must not learn when it runs.
struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::from_secs(946_684_800)
    }
}

/// A monotonic clock that advances 1 µs per read: deterministic, yet a guest busy-waiting on
/// it still sees time pass and does not hang.
#[derive(Default)]
struct SteppingClock(AtomicU64);

impl HostMonotonicClock for SteppingClock {
    fn resolution(&self) -> u64 {
        1_000
    }

    fn now(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::Relaxed) + 1_000
    }
}

/// WASI as deny-all shims: no files, env, args or network; stdin empty, stdout discarded and
/// stderr too, unless the dev loop captures it; frozen wall clock; seeded randomness.
fn inert_wasi(seed: u64, stderr: Option<StderrCapture>) -> WasiCtx {
    let mut b = WasiCtxBuilder::new();
    if let Some(capture) = stderr {
        b.stderr(capture);
    }
    // wasmtime-wasi's documented defaults and its code have disagreed; say each one.
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .wall_clock(FrozenWallClock)
        .monotonic_clock(SteppingClock::default())
        .secure_random(StdRng::seed_from_u64(seed))
        .insecure_random(StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15))
        .insecure_random_seed(u128::from(seed));
    b.build()
}

impl WasiView for SampleState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for SampleState {}

impl model::Host for SampleState {
    async fn complete(
        &mut self,
        messages: Vec<types::Message>,
        params: types::Params,
    ) -> wasmtime::Result<Result<types::Completion, types::QueryError>> {
        let job = self.job("describe may not call model.complete")?;
        if self.queries >= job.max_queries {
            return Ok(Err(types::QueryError::BudgetExhausted));
        }
        let mut request = CompletionRequest {
            messages: messages
                .into_iter()
                .map(|m| proctor_core::Message {
                    role: match m.role {
                        types::Role::System => proctor_core::Role::System,
                        types::Role::User => proctor_core::Role::User,
                        types::Role::Assistant => proctor_core::Role::Assistant,
                    },
                    content: m.content,
                })
                .collect(),
            params: proctor_core::Params {
                max_tokens: 0,
                temperature: params.temperature,
                stop: params.stop,
            },
        };
        let count = request.messages.len() as u64;
        if count > proctor_core::model::MAX_MESSAGES {
            return Ok(Err(types::QueryError::Rejected(format!(
                "the request has {count} messages; at most {} are allowed",
                proctor_core::model::MAX_MESSAGES
            ))));
        }
        let prompt = request.prompt_bytes() as u64;
        if prompt > job.max_prompt_bytes {
            return Ok(Err(types::QueryError::Rejected(format!(
                "prompt is {prompt} bytes; the policy allows {}",
                job.max_prompt_bytes
            ))));
        }
        let max_tokens = params.max_tokens.map_or(job.max_tokens, u64::from);
        if max_tokens > job.max_tokens {
            return Ok(Err(types::QueryError::Rejected(format!(
                "max-tokens is {max_tokens}; the policy allows {}",
                job.max_tokens
            ))));
        }
        if max_tokens == 0 {
            return Ok(Err(types::QueryError::Rejected(
                "max-tokens must be at least 1".into(),
            )));
        }
        if request
            .params
            .temperature
            .is_some_and(|t| !t.is_finite() || t < 0.0)
        {
            return Ok(Err(types::QueryError::Rejected(
                "temperature must be a finite number, 0 or more".into(),
            )));
        }
        request.params.max_tokens = u32::try_from(max_tokens).unwrap_or(u32::MAX);
        let max_input = proctor_core::model::worst_case_tokens(prompt, count, 0);
        self.queries += 1;
        match job.model.complete(request).await {
            Ok(c) => {
                // Clamped, never above what was reported, so each still fits a u32.
                let input_tokens = c.input_tokens.min(clamp_u32(max_input));
                let output_tokens = c.output_tokens.min(clamp_u32(max_tokens));
                self.usage.queries += 1;
                self.usage.input_tokens += u64::from(input_tokens);
                self.usage.output_tokens += u64::from(output_tokens);
                Ok(Ok(types::Completion {
                    text: c.text,
                    finish: match c.finish {
                        proctor_core::FinishReason::Stop => types::FinishReason::Stop,
                        proctor_core::FinishReason::Length => types::FinishReason::Length,
                        proctor_core::FinishReason::Refused => types::FinishReason::Refused,
                        proctor_core::FinishReason::Other => types::FinishReason::Other,
                    },
                    input_tokens,
                    output_tokens,
                }))
            }
            Err(ModelError::BudgetExhausted) => Ok(Err(types::QueryError::BudgetExhausted)),
            Err(ModelError::Unavailable(_)) => Ok(Err(types::QueryError::Unavailable)),
            Err(ModelError::Rejected(reason)) => Ok(Err(types::QueryError::Rejected(reason))),
            Err(ModelError::ServiceFault(_)) => Err(self.kill(
                Violation::Service,
                "the service could not meter a model query",
            )),
        }
    }
}

fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl dataset::Host for SampleState {
    fn count(&mut self) -> wasmtime::Result<u32> {
        let job = self.job("describe may not read the dataset")?;
        Ok(u32::try_from(job.dataset.len()).unwrap_or(u32::MAX))
    }

    fn item(&mut self, index: u32) -> wasmtime::Result<String> {
        let job = self.job("describe may not read the dataset")?;
        match job.dataset.item(index as usize) {
            Some(text) => Ok(text.to_owned()),
            None => Err(self.kill(
                Violation::Policy("dataset.item index out of range"),
                "dataset.item index out of range",
            )),
        }
    }
}

impl scores::Host for SampleState {
    fn report(&mut self, metric: String, value: f64) -> wasmtime::Result<()> {
        let job = self.job("describe may not report scores")?;
        let Some(index) = job.info.metric_index(&metric) else {
            return Err(self.kill(
                Violation::Policy("report of an undeclared metric"),
                "report of an undeclared metric",
            ));
        };
        if !value.is_finite() {
            return Err(self.kill(
                Violation::Policy("report of a non-finite value"),
                "report of a non-finite value",
            ));
        }
        self.scores[index] = Some(job.info.metrics[index].clip(value));
        Ok(())
    }
}
