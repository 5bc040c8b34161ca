//! The isolation capability of `proctor:eval@0.2.0`: a sample runs code it does not trust (a
//! model's answer to a programming problem, say) in a fresh instance of its own component and
//! learns one word of how it went.
//!
//! Why a fresh instance, and not a budget inside the guest's interpreter: the code cannot touch
//! the eval's own state (patch `scores.report`, lift a `sys.settrace` budget, read the tests),
//! cannot reach the model, the dataset or scores (they trap there, and so does `isolation`
//! itself), and is stopped by wasmtime's fuel, memory limiter and the sample's deadline, which
//! nothing inside the interpreter can lift and which a memory bomb cannot defeat. Nothing of the
//! run goes back but its verdict: no string, no output, no error text.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proctor_core::Policy;
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Store, StoreLimitsBuilder, Trap};

use crate::bindings::v2::{self, proctor::eval0_2_0::isolation};
use crate::host::{Phase, SampleState, Violation};
use crate::sample::sample_seed;
use crate::sandbox::{EPOCH_TICK, PreparedEval, Sandbox, configure_store};
use crate::world::WorldPre;

use isolation::Verdict;

/// Every isolated run costs at least this much of its sample's isolation fuel, however little
/// it asked for or used. Starting a fresh instance costs the host CPU that fuel does not count
/// (about half a millisecond for a large interpreter component, as much as a million units of
/// fuel), so this bounds how many runs a sample can start.
pub const RUN_FUEL_FLOOR: u64 = 1_000_000;

/// An isolated run must end this long before its sample's deadline, so that the sample can
/// still report the verdict and return: a tenth of the sample's timeout, at most a second.
fn deadline_reserve(policy: &Policy) -> Duration {
    Duration::from_secs_f64(policy.limits.sample_timeout_s / 10.0).min(Duration::from_secs(1))
}

/// Pool shares kept for isolated instances: as many as samples have. A sample runs at most one
/// isolated instance at a time (the call blocks its guest, and an isolated instance cannot
/// start another), and an isolated instance of an eval takes as many shares as a sample of it,
/// so a sample never waits long for one; since the holder of isolated shares waits on nothing
/// a sample holds, the two semaphores cannot deadlock.
pub(crate) fn pool_slots(sample_shares: u32) -> u32 {
    sample_shares
}

/// Links `isolation` beside the 0.1.0 interfaces; a 0.1.0 component does not import it and
/// never sees it.
pub(crate) fn add_to_linker(linker: &mut Linker<SampleState>) -> wasmtime::Result<()> {
    isolation::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// One sample's isolation: its component, its limits, and what is left of its fuel.
pub(crate) struct Isolation {
    pre: v2::EvalPre<SampleState>,
    slots: Arc<Semaphore>,
    /// Shares of `slots` one isolated instance holds (the eval's).
    shares: u32,
    memory_bytes: usize,
    table_elements: usize,
    reserve: Duration,
    /// Shared by all of the sample's isolated runs; starts at the policy's `fuel_per_sample`.
    fuel_left: u64,
    /// The sample's seed; each run's WASI randomness is derived from it and the run's number.
    seed: u64,
    runs: u32,
}

impl Isolation {
    /// The isolation of one sample of `eval`, if `eval` is a 0.2.0 component.
    pub fn for_sample(
        sandbox: &Sandbox,
        eval: &PreparedEval,
        policy: &Policy,
        seed: u64,
    ) -> Option<Isolation> {
        let WorldPre::V0_2(pre) = &eval.pre else {
            return None;
        };
        Some(Isolation {
            pre: pre.clone(),
            slots: sandbox.isolation_slots.clone(),
            shares: eval.shares,
            memory_bytes: (policy.limits.memory_mib as usize) << 20,
            table_elements: policy.limits.table_elements as usize,
            reserve: deadline_reserve(policy),
            fuel_left: policy.limits.fuel_per_sample,
            seed,
            runs: 0,
        })
    }

    /// Runs `code` with at most `fuel` (less if less is left), to end before `sample_deadline`
    /// less the reserve, and debits what it used.
    async fn run(&mut self, code: &str, fuel: u64, sample_deadline: Instant) -> Verdict {
        self.runs = self.runs.saturating_add(1);
        let fuel = fuel.min(self.fuel_left);
        if fuel == 0 {
            return Verdict::OutOfFuel;
        }
        let deadline = sample_deadline
            .checked_sub(self.reserve)
            .filter(|d| Instant::now() < *d);
        let Some(deadline) = deadline else {
            return Verdict::TimedOut;
        };
        let (verdict, used) = self.run_fresh(code, fuel, deadline).await;
        self.fuel_left -= used.max(RUN_FUEL_FLOOR).min(self.fuel_left);
        verdict
    }

    /// One fresh instance in a store of its own: the verdict and the fuel it used.
    async fn run_fresh(&self, code: &str, fuel: u64, deadline: Instant) -> (Verdict, u64) {
        let until = tokio::time::Instant::from_std(deadline);
        // Waiting for a slot counts against the deadline too.
        let _slot = match tokio::time::timeout_at(until, self.slots.acquire_many(self.shares)).await
        {
            Ok(Ok(slot)) => slot,
            Ok(Err(_closed)) => return (Verdict::Crashed, 0),
            Err(_elapsed) => return (Verdict::TimedOut, 0),
        };
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes)
            .table_elements(self.table_elements)
            .trap_on_grow_failure(true)
            .build();
        let state = SampleState::new(
            Phase::Isolated,
            None,
            0,
            limits,
            deadline,
            sample_seed(self.seed, self.runs),
            None,
        );
        let mut store = Store::new(self.pre.engine(), state);
        if configure_store(&mut store, fuel).is_err() {
            return (Verdict::Crashed, 0);
        }
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance.call_run_isolated(&mut store, code).await
        };
        // Epochs stop wasm at the deadline; the timeout catches code parked in a host call
        // (a WASI sleep), which epochs cannot reach. Dropping the future frees the instance.
        let result = tokio::time::timeout_at(until + 2 * EPOCH_TICK, run).await;
        let used = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let verdict = match result {
            Err(_elapsed) => Verdict::TimedOut,
            Ok(Ok(true)) => Verdict::Passed,
            Ok(Ok(false)) => Verdict::Failed,
            Ok(Err(trap)) => verdict_of_trap(&trap, store.data()),
        };
        (verdict, used)
    }
}

/// How an isolated run that trapped (or could not be instantiated) ended. A policy violation
/// (a call to the model, the dataset, scores or isolation) is `crashed` like any other trap.
fn verdict_of_trap(error: &wasmtime::Error, state: &SampleState) -> Verdict {
    if state.limiter.exceeded {
        return Verdict::OutOfMemory;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Verdict::OutOfFuel,
        Some(Trap::Interrupt) => Verdict::TimedOut,
        _ => Verdict::Crashed,
    }
}

impl isolation::Host for SampleState {
    async fn run(&mut self, code: String, fuel: u64) -> wasmtime::Result<Verdict> {
        let deadline = self.deadline;
        if let Some(isolation) = self.isolation.as_mut() {
            return Ok(isolation.run(&code, fuel, deadline).await);
        }
        // `describe`, or an isolated run trying to nest one: neither is a sample.
        let rule = "only run-sample may call isolation.run";
        Err(self.kill(Violation::Policy(rule), rule))
    }
}
