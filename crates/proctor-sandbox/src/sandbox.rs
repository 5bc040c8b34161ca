//! The engine and what is prepared once per component: validation, compilation, `describe`.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use proctor_component::{self as validate, ComponentError, ImportSurvey, World};
use proctor_core::{EvalInfo, Policy, Sha256Digest, WasiMode};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    StoreLimitsBuilder,
};

use crate::bindings::{Eval, EvalPre, v2};
use crate::cache::CompileCache;
use crate::error::SandboxError;
use crate::host::{Phase, SampleState};
use crate::outcome::classify_describe_error;
use crate::world::WorldPre;

/// How often the epoch ticks: the granularity of wall-clock deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Fuel, between which a running guest yields to the executor, so one busy sample cannot
/// starve the others on its thread (~10 ms of compute).
pub(crate) const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// Limits `describe` runs under, whatever the job's policy: it must be quick and small.
const DESCRIBE_FUEL: u64 = 1_000_000_000;
const DESCRIBE_MEMORY_MIB: u64 = 256;
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pool slots kept for `describe` calls beside the samples in flight.
const DESCRIBE_SLOTS: u32 = 4;

/// Core instances a component may need per sample. Measured: a Rust guest needs 1–3, a
/// componentize-py guest ~14 (~76 with `--stub-wasi`).
const CORE_INSTANCES_PER_SAMPLE: u32 = 80;

/// What one share of the pool holds besides an instance: memories and tables. A component
/// takes as many shares as its memories and tables need (at least one) for each instance of it
/// in flight, so however many a guest declares, the instances in flight never hold more than
/// the pool has: the most a component may declare is [`MAX_SHARES`] shares' worth.
const MEMORIES_PER_SHARE: u32 = 4;
const TABLES_PER_SHARE: u32 = 8;
const MAX_MEMORIES_PER_COMPONENT: u32 = 16;
const MAX_TABLES_PER_COMPONENT: u32 = 32;
/// The most shares one instance takes.
const MAX_SHARES: u32 = MAX_MEMORIES_PER_COMPONENT / MEMORIES_PER_SHARE;
const _: () = assert!(MAX_TABLES_PER_COMPONENT / TABLES_PER_SHARE == MAX_SHARES);

/// Written linear memory a free pool slot keeps resident at most, reset in place by wasmtime
/// before the slot is used again. Enough for an interpreter's touched heap per sample.
const MEMORY_KEEP_RESIDENT: usize = 32 << 20;

/// What all slots together may keep resident (one large memory per sample slot): `proctor
/// run` (260 slots) keeps ~31 MiB per slot, the service (1,028) 8 MiB.
const RESIDENT_BUDGET: u64 = 8 << 30;

/// Table bytes a free slot keeps resident (128 Ki entries).
const TABLE_KEEP_RESIDENT: usize = 1 << 20;

/// What the engine's pooling allocator is sized for. A policy may not ask for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// Samples in flight at once, across all jobs of the process.
    pub max_concurrent_samples: u32,
    /// Largest linear memory per instance, MiB.
    pub max_memory_mib: u64,
    /// Largest table, elements.
    pub max_table_elements: u64,
}

impl EngineSettings {
    /// Enough for any policy within core's bounds (a service process).
    pub fn service() -> EngineSettings {
        EngineSettings {
            max_concurrent_samples: proctor_core::policy::bounds::MAX_CONCURRENCY as u32,
            max_memory_mib: 4096,
            max_table_elements: 1_000_000,
        }
    }

    /// Just enough for one policy (a local `proctor run`).
    pub fn for_policy(policy: &Policy) -> EngineSettings {
        EngineSettings {
            max_concurrent_samples: policy.limits.max_concurrency as u32,
            max_memory_mib: policy.limits.memory_mib,
            max_table_elements: policy.limits.table_elements,
        }
    }
}

/// Prepared evals kept in memory (about a quarter of a MiB each, more for large components):
/// every distinct upload would otherwise stay for the life of the process.
const PREPARED_IN_MEMORY: NonZeroUsize = NonZeroUsize::new(128).expect("not zero");

/// The sandbox: one wasmtime engine, its linker, and the components prepared on it.
pub struct Sandbox {
    pub(crate) engine: Engine,
    linker: Linker<SampleState>,
    pub(crate) settings: EngineSettings,
    cache: CompileCache,
    /// The most recently used preparations; an evicted one is prepared again from the compile
    /// cache on disk (milliseconds) when it is next needed.
    prepared: Mutex<LruCache<Sha256Digest, Arc<PreparedEval>>>,
    /// The pool's shares for samples and `describe`: each instance in flight holds its eval's
    /// [`PreparedEval::shares`] of them. Past them, instantiation would fail outright instead
    /// of waiting, and one job's wide guest would fail another job's samples.
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    /// The same for isolated instances (0.2.0), which have shares of their own.
    pub(crate) isolation_slots: Arc<tokio::sync::Semaphore>,
}

/// A component that passed validation, compiled, with its `describe` result.
pub struct PreparedEval {
    /// sha256 of the component's bytes.
    pub digest: Sha256Digest,
    /// What `describe` declared.
    pub info: Arc<EvalInfo>,
    /// What it imports.
    pub imports: ImportSurvey,
    /// Pool shares one instance of it holds (1 to [`MAX_SHARES`]), from the memories and
    /// tables its core instances define.
    pub(crate) shares: u32,
    pub(crate) pre: WorldPre,
}

impl PreparedEval {
    /// The contract version the component was built for.
    pub fn world(&self) -> World {
        self.pre.world()
    }

    /// Refuses the eval under a policy it does not fit: WASI under `wasi = "none"`, more
    /// metrics than `max_metrics`.
    pub fn check_policy(&self, policy: &Policy) -> Result<(), SandboxError> {
        validate::check_imports(&self.imports, policy.wasi)?;
        if self.info.metrics.len() as u64 > policy.release.max_metrics {
            return Err(SandboxError::TooManyMetrics {
                declared: self.info.metrics.len(),
                allowed: policy.release.max_metrics,
            });
        }
        // Refused before the job runs, never discovered at its end.
        proctor_core::release::check_scales(policy, &self.info.metrics)?;
        Ok(())
    }
}

impl Sandbox {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(settings: EngineSettings, cache: CompileCache) -> Result<Sandbox, SandboxError> {
        let engine_err = |e: wasmtime::Error| SandboxError::Engine(format!("{e:#}"));
        // Isolated instances (0.2.0) get pool slots and a semaphore of their own, so a
        // sample holding a slot never waits on one that samples hold.
        // At least one instance of the widest component must fit.
        let shares = settings.max_concurrent_samples.max(MAX_SHARES);
        let isolated = crate::isolation::pool_slots(shares);
        let slots = shares + DESCRIBE_SLOTS + isolated;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots * CORE_INSTANCES_PER_SAMPLE)
            .max_core_instances_per_component(CORE_INSTANCES_PER_SAMPLE)
            .total_memories(slots * MEMORIES_PER_SHARE)
            .total_tables(slots * TABLES_PER_SHARE)
            .total_stacks(slots)
            .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
            .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
            .max_memory_size((settings.max_memory_mib as usize) << 20)
            .table_elements(settings.max_table_elements as usize)
            // Written pages up to this much per memory are reset in place (the image's bytes
            // copied back, zeros elsewhere) instead of `madvise`d away: no syscall, no TLB
            // shootdown and no page faults on the slot's next use. With `pagemap_scan` the
            // kernel says which pages were written (Linux ≥ 6.7; a plain memset of the first
            // bytes elsewhere). Measured (`proctor run`, 5,000 samples): the interpreters' sys
            // time per sample 10–20% lower at 8–32 MiB than at 1 MiB, their RSS lower too.
            .linear_memory_keep_resident(keep_resident(slots))
            // Tables likewise: 1 MiB is 128 Ki entries, 64 KiB (the old figure) only 8 Ki.
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            // Determinism: the same sample computes the same on every machine.
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(engine_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        Eval::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_err)?;
        crate::isolation::add_to_linker(&mut linker).map_err(engine_err)?;
        spawn_epoch_ticker(&engine);
        Ok(Sandbox {
            engine,
            linker,
            settings,
            cache,
            prepared: Mutex::new(LruCache::new(PREPARED_IN_MEMORY)),
            slots: Arc::new(tokio::sync::Semaphore::new(shares as usize)),
            isolation_slots: Arc::new(tokio::sync::Semaphore::new(isolated as usize)),
        })
    }

    /// What the pool was sized for.
    pub fn settings(&self) -> EngineSettings {
        self.settings
    }

    /// Refuses a policy that asks for more than the engine was sized for.
    pub fn check_policy(&self, policy: &Policy) -> Result<(), SandboxError> {
        let s = &self.settings;
        let checks = [
            (
                "limits.memory_mib",
                policy.limits.memory_mib,
                s.max_memory_mib,
            ),
            (
                "limits.table_elements",
                policy.limits.table_elements,
                s.max_table_elements,
            ),
            (
                "limits.max_concurrency",
                policy.limits.max_concurrency,
                u64::from(s.max_concurrent_samples),
            ),
        ];
        for (key, value, max) in checks {
            if value > max {
                return Err(SandboxError::PolicyBeyondEngine { key, value, max });
            }
        }
        Ok(())
    }

    /// Validates, compiles (or loads from the cache) and describes a component. Refuses
    /// anything that is not a component of the eval world (0.1.0 or 0.2.0) importing only that
    /// world and WASI 0.2. The result is kept, so preparing the same bytes again is free.
    pub async fn prepare(&self, bytes: &[u8]) -> Result<Arc<PreparedEval>, SandboxError> {
        validate::check_header(bytes)?;
        let digest = Sha256Digest::of(bytes);
        if let Some(p) = self.lock_prepared().get(&digest) {
            return Ok(p.clone());
        }
        // The world's names first, from the binary: a component that imports what the host
        // does not link, or lacks an export, is refused without the cost of compiling it.
        let surface = validate::surface(bytes)?;
        let imports = validate::survey_imports(&surface);
        validate::check_imports(&imports, WasiMode::Inert)?;
        let world = validate::check_world(&surface)?;
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let owned = bytes.to_vec();
        // Compiling takes from 0.2 s to 10 s of CPU: keep it off the async workers.
        let component =
            tokio::task::spawn_blocking(move || cache.load_or_compile(&engine, &digest, &owned))
                .await
                .map_err(|e| SandboxError::Engine(e.to_string()))??;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| ComponentError::WrongWorld(format!("{e:#}")))?;
        let wrong_world = |e: wasmtime::Error| ComponentError::WrongWorld(format!("{e:#}"));
        let pre = match world {
            World::V0_1 => WorldPre::V0_1(EvalPre::new(instance_pre).map_err(wrong_world)?),
            World::V0_2 => WorldPre::V0_2(v2::EvalPre::new(instance_pre).map_err(wrong_world)?),
        };
        let shares = shares_of(component.resources_required());
        let info = self.describe(&pre, shares).await?;
        info.validate()?;
        let prepared = Arc::new(PreparedEval {
            digest,
            info: Arc::new(info),
            imports,
            shares,
            pre,
        });
        self.lock_prepared().put(digest, prepared.clone());
        Ok(prepared)
    }

    /// Calls `describe` in an instance whose `model`, `dataset` and `scores` trap, so nothing
    /// seen from them can ride out in metric names or descriptions.
    async fn describe(&self, pre: &WorldPre, shares: u32) -> Result<EvalInfo, SandboxError> {
        let _slot = self
            .slots
            .acquire_many(shares)
            .await
            .map_err(|e| SandboxError::Engine(e.to_string()))?;
        let memory = (DESCRIBE_MEMORY_MIB.min(self.settings.max_memory_mib) as usize) << 20;
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory)
            .table_elements(self.settings.max_table_elements as usize)
            .trap_on_grow_failure(true)
            .build();
        let deadline = Instant::now() + DESCRIBE_TIMEOUT;
        let mut store = Store::new(
            &self.engine,
            SampleState::new(Phase::Describe, None, 0, limits, deadline, 0, None),
        );
        configure_store(&mut store, DESCRIBE_FUEL)?;
        let run = pre.describe(&mut store);
        let result = tokio::time::timeout(DESCRIBE_TIMEOUT + 2 * EPOCH_TICK, run).await;
        let info = match result {
            Err(_) => {
                return Err(SandboxError::Describe(
                    "it did not return within 10 s".into(),
                ));
            }
            Ok(Err(e)) => {
                return Err(SandboxError::Describe(classify_describe_error(
                    &e,
                    store.data(),
                )));
            }
            Ok(Ok(info)) => info,
        };
        Ok(EvalInfo {
            name: info.name,
            version: info.version,
            metrics: info
                .metrics
                .into_iter()
                .map(|m| proctor_core::MetricSpec {
                    name: m.name,
                    description: m.description,
                    min: m.min,
                    max: m.max,
                })
                .collect(),
        })
    }

    fn lock_prepared(
        &self,
    ) -> std::sync::MutexGuard<'_, LruCache<Sha256Digest, Arc<PreparedEval>>> {
        // The map holds only finished preparations; a panic elsewhere cannot leave it torn.
        self.prepared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Fuel, the async yield interval, the epoch deadline and the memory limiter: one place
/// applies a sample's limits to its store.
pub(crate) fn configure_store(
    store: &mut Store<SampleState>,
    fuel: u64,
) -> Result<(), SandboxError> {
    let engine_err = |e: wasmtime::Error| SandboxError::Engine(format!("{e:#}"));
    store.limiter(|s| &mut s.limiter);
    store.set_fuel(fuel).map_err(engine_err)?;
    store
        .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
        .map_err(engine_err)?;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        // Yield at every tick (fairness) until the sample's wall-clock deadline, then stop it.
        if Instant::now() >= ctx.data().deadline {
            Ok(wasmtime::UpdateDeadline::Interrupt)
        } else {
            Ok(wasmtime::UpdateDeadline::Yield(1))
        }
    });
    Ok(())
}

/// Pool shares one instance of a component holds: enough for the memories and the tables its
/// core instances define; the most when wasmtime cannot tell (a component importing a module,
/// which the eval worlds never do).
fn shares_of(resources: Option<wasmtime::ResourcesRequired>) -> u32 {
    resources.map_or(MAX_SHARES, |r| {
        r.num_memories
            .div_ceil(MEMORIES_PER_SHARE)
            .max(r.num_tables.div_ceil(TABLES_PER_SHARE))
            .clamp(1, MAX_SHARES)
    })
}

/// Bytes of written linear memory a free slot keeps resident: up to [`MEMORY_KEEP_RESIDENT`],
/// less when that many slots could hold more than [`RESIDENT_BUDGET`] together.
fn keep_resident(slots: u32) -> usize {
    let share = RESIDENT_BUDGET / u64::from(slots.max(1));
    // Whole pages; the budget over at least one slot fits usize on any 64-bit host.
    let share = usize::try_from(share & !0xfff).unwrap_or(MEMORY_KEEP_RESIDENT);
    share.min(MEMORY_KEEP_RESIDENT)
}

/// Ticks the engine's epoch until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("proctor-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread: the process is out of threads at start-up");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arith example with a custom section appended: the same eval under another digest.
    fn variant(i: u32) -> Vec<u8> {
        const NAME: &[u8] = b"variant";
        let mut bytes = proctor_evals::examples::ARITH_WASM.to_vec();
        let payload = i.to_le_bytes();
        // Section id 0 (custom), its size, the name's length, the name, the payload: every
        // length under 128, so each LEB128 is one byte.
        bytes.extend([0, (1 + NAME.len() + payload.len()) as u8, NAME.len() as u8]);
        bytes.extend_from_slice(NAME);
        bytes.extend_from_slice(&payload);
        bytes
    }

    #[tokio::test]
    async fn prepared_evals_kept_in_memory_stop_at_the_bound_the_oldest_leaving_first() {
        let settings = EngineSettings {
            max_concurrent_samples: 4,
            max_memory_mib: 64,
            max_table_elements: 100_000,
        };
        let sandbox = Sandbox::new(settings, CompileCache::disabled()).expect("engine");
        let bound = PREPARED_IN_MEMORY.get() as u32;
        for i in 0..=bound {
            sandbox.prepare(&variant(i)).await.expect("prepares");
        }
        let kept = sandbox.lock_prepared();
        assert_eq!(kept.len(), bound as usize);
        assert!(!kept.contains(&Sha256Digest::of(&variant(0))));
        assert!(kept.contains(&Sha256Digest::of(&variant(1))));
        assert!(kept.contains(&Sha256Digest::of(&variant(bound))));
    }
}
