//! A job's meter: its model queries draw budget from reservation blocks leased from its grant
//! ([`proctor_store::blocks`]), in memory, and what they came to is settled in batches.
//!
//! - A query draws one query and its worst-case tokens from the job's open block; only when
//!   the block cannot cover it does the meter go to the store, once for all the samples that
//!   wait: one transaction gives back the old block's rest, applies what is pending, and
//!   leases a new block. Blocks grow while the job uses them up quickly (doubling up to
//!   [`MAX_BLOCK`] queries when one lasted less than [`GROW_BELOW`]) and shrink when they
//!   last long, so a slow job holds little of its grant and a fast one goes to the store a few
//!   times a second.
//! - What queries came to (settled as the model reported, or given back when a request
//!   failed) is batched per block and written at least every [`FLUSH_EVERY`] by a task of
//!   the meter's own; the same step tells whether the grant still covers the job, at least
//!   every [`CHECK_EVERY`] while the job holds a block, so a revocation or an expiry on any
//!   server stops the job within [`STOP_BOUND`].
//! - When the job ends ([`MeterTask::close`]) the rest of its block goes back and the last
//!   batches are written, so its vendor's usage view is exact once the job has ended. A query
//!   dropped in flight (its sample stopped) counts at its worst case: it may have gone out.
//!   What a meter could not write (the store failed, the worker died) stays open in its
//!   block and counts at its worst case when the job ends ([`Store::abandon_blocks`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use proctor_sandbox::CancellationToken;
use proctor_store::{
    Batch, BlockId, GrantId, JobId, Refusal, Step, Stepped, Store, StoreError, Want,
};
use tokio::task::JoinHandle;
use tracing::{Instrument, warn};

use crate::metrics::MeterMetrics;
use crate::usage_profile::UsageTap;

/// Batches are written at least this often while there are any.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// While the job holds a block, whether its grant still covers it is checked at least this
/// often (with the batches, when there are any).
pub const CHECK_EVERY: Duration = Duration::from_millis(250);
/// A revocation or an expiry stops the job's queries within this long on any server: the
/// check interval, plus the step's own time with room to spare.
pub const STOP_BOUND: Duration = Duration::from_secs(1);
/// The first block's queries.
pub const FIRST_BLOCK: u64 = 8;
/// The largest block's queries.
pub const MAX_BLOCK: u64 = 4096;
/// A block used up faster than this makes the next one twice as large.
pub const GROW_BELOW: Duration = Duration::from_secs(1);
/// A block that lasted longer than this makes the next one half as large.
pub const SHRINK_ABOVE: Duration = Duration::from_secs(8);

/// Budget drawn for one query, until it is settled or given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw {
    block: BlockId,
    worst: u64,
}

/// The block the job draws from now: what is left of it.
#[derive(Debug, Clone, Copy)]
struct Open {
    id: BlockId,
    queries: u64,
    tokens: u64,
    leased_at: Instant,
}

#[derive(Debug)]
struct State {
    open: Option<Open>,
    pending: Vec<(BlockId, Batch)>,
    /// The grant stopped covering the job: no more draws.
    stopped: Option<Refusal>,
    /// The next block's queries.
    size: u64,
    /// The largest worst case drawn so far: a block's tokens are its queries times this.
    worst: u64,
}

impl State {
    fn try_draw(&mut self, worst: u64) -> Result<Option<Draw>, StoreError> {
        if let Some(refusal) = self.stopped {
            return Err(StoreError::NoGrant(refusal));
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(None);
        };
        if open.queries == 0 || open.tokens < worst {
            return Ok(None);
        }
        open.queries -= 1;
        open.tokens -= worst;
        Ok(Some(Draw {
            block: open.id,
            worst,
        }))
    }

    fn batch(&mut self, block: BlockId) -> &mut Batch {
        let at = match self.pending.iter().position(|(id, _)| *id == block) {
            Some(at) => at,
            None => {
                self.pending.push((block, Batch::default()));
                self.pending.len() - 1
            }
        };
        &mut self.pending[at].1
    }

    /// Stops drawing from the open block: its rest goes back with the next step.
    fn retire(&mut self) -> Option<Open> {
        let open = self.open.take()?;
        let batch = self.batch(open.id);
        batch.returned += open.queries;
        batch.returned_tokens += open.tokens;
        Some(open)
    }

    fn take_pending(&mut self) -> Vec<(BlockId, Batch)> {
        std::mem::take(&mut self.pending)
    }

    /// Puts batches that could not be written back in front of what came since.
    fn restore(&mut self, batches: Vec<(BlockId, Batch)>) {
        for (id, batch) in batches {
            self.batch(id).add(&batch);
        }
    }
}

/// One job's meter, shared by its samples.
pub struct Meter {
    store: Store,
    grant: GrantId,
    job: JobId,
    state: Mutex<State>,
    /// One lease at a time: the samples that find the block empty wait for the same lease.
    leasing: tokio::sync::Mutex<()>,
    /// Cancelled when the grant was revoked: stops the whole job.
    stop_job: CancellationToken,
    metrics: MeterMetrics,
    /// The job's queries, for the grant's usage profile: written with each step.
    usage: UsageTap,
}

impl Meter {
    /// A meter for `job` under `grant`, and the task that writes its batches (and what
    /// `usage` gathered); cancels `stop_job` when the grant was revoked or suspended.
    pub fn start(
        store: Store,
        (grant, job): (GrantId, JobId),
        stop_job: CancellationToken,
        (metrics, usage): (MeterMetrics, UsageTap),
    ) -> (Arc<Meter>, MeterTask) {
        let meter = Arc::new(Meter {
            store,
            grant,
            job,
            state: Mutex::new(State {
                open: None,
                pending: Vec::new(),
                stopped: None,
                size: FIRST_BLOCK,
                worst: 0,
            }),
            leasing: tokio::sync::Mutex::new(()),
            stop_job,
            metrics,
            usage,
        });
        let closing = CancellationToken::new();
        let task = tokio::spawn(flush_loop(meter.clone(), closing.clone()).in_current_span());
        (
            meter.clone(),
            MeterTask {
                closing,
                task: Some(task),
            },
        )
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Draws one query of `worst` worst-case tokens, leasing a block when the open one
    /// cannot cover it.
    ///
    /// # Errors
    ///
    /// [`StoreError::BudgetExhausted`] or [`StoreError::NoGrant`] when the grant refuses;
    /// any other [`StoreError`] when the store failed.
    pub async fn draw(&self, worst: u64) -> Result<Draw, StoreError> {
        if let Some(draw) = self.state().try_draw(worst)? {
            return Ok(draw);
        }
        let _leasing = self.leasing.lock().await;
        // Another sample may have leased while this one waited.
        if let Some(draw) = self.state().try_draw(worst)? {
            return Ok(draw);
        }
        let (batches, want) = {
            let mut state = self.state();
            if let Some(old) = state.retire() {
                let lasted = old.leased_at.elapsed();
                state.size = if lasted < GROW_BELOW {
                    (state.size * 2).min(MAX_BLOCK)
                } else if lasted > SHRINK_ABOVE {
                    (state.size / 2).max(1)
                } else {
                    state.size
                };
            }
            state.worst = state.worst.max(worst);
            let want = Want {
                queries: state.size,
                tokens: state.size.saturating_mul(state.worst),
                min_tokens: worst,
            };
            (state.take_pending(), want)
        };
        let stepped = self.step(batches, Some(want)).await?;
        match stepped.lease {
            Some(Ok(block)) => {
                self.metrics.blocks_leased.inc();
                let mut state = self.state();
                state.open = Some(Open {
                    id: block.id,
                    queries: block.queries,
                    tokens: block.tokens,
                    leased_at: Instant::now(),
                });
                state.try_draw(worst)?.ok_or(StoreError::Invalid(
                    "a leased block does not cover the query it was leased for",
                ))
            }
            Some(Err(refused)) => {
                self.metrics.note_refusal(&refused);
                Err(refused)
            }
            None => Err(StoreError::Invalid(
                "a lease was asked for and not answered",
            )),
        }
    }

    /// Counts a query about to be sent in the grant's usage profile (no text is kept).
    pub fn observe(&self, request: &proctor_core::CompletionRequest) {
        self.usage.observe(request);
    }

    /// Counts a drawn query as answered, with the tokens the model reported.
    pub fn settle(&self, draw: Draw, input_tokens: u64, output_tokens: u64) {
        let mut state = self.state();
        let batch = state.batch(draw.block);
        batch.settled += 1;
        batch.settled_worst += draw.worst;
        batch.input_tokens = batch.input_tokens.saturating_add(input_tokens);
        batch.output_tokens = batch.output_tokens.saturating_add(output_tokens);
    }

    /// Counts a drawn query at its worst case (as input tokens): it may have gone out, and
    /// nothing says what it cost.
    pub fn settle_worst(&self, draw: Draw) {
        self.settle(draw, draw.worst, 0);
    }

    /// Gives a drawn query back: its request failed before the model billed anything.
    pub fn give_back(&self, draw: Draw) {
        let mut state = self.state();
        let batch = state.batch(draw.block);
        batch.returned += 1;
        batch.returned_tokens += draw.worst;
    }

    /// Writes `batches` (and leases, if `lease`), and stops the job's draws when the grant
    /// no longer covers it. Batches that could not be written are kept for the next step.
    async fn step(
        &self,
        batches: Vec<(BlockId, Batch)>,
        lease: Option<Want>,
    ) -> Result<Stepped, StoreError> {
        let (store, grant, job) = (self.store.clone(), self.grant, self.job);
        let sent = batches.clone();
        let returned = batches.iter().filter(|(_, b)| b.returned > 0).count();
        let usage = self.usage.take();
        let profile = usage.clone();
        let stepped = to_end(async move {
            let step = Step {
                grant,
                job,
                batches: &sent,
                lease,
            };
            store.meter_with_usage(step, &profile).await
        })
        .await;
        let stepped = match stepped {
            Ok(stepped) => stepped,
            Err(err) => {
                self.state().restore(batches);
                self.usage.restore(usage);
                return Err(err);
            }
        };
        if !usage.is_empty() {
            self.usage.written();
        }
        self.metrics.block_returns.inc_by(returned as u64);
        if stepped.ignored > 0 {
            warn!(
                ignored = stepped.ignored,
                "batches of blocks already counted at their worst case were not applied"
            );
        }
        if let Some(refusal) = stepped.inactive {
            let first = self.state().stopped.replace(refusal).is_none();
            if first && refusal.stops_jobs() {
                self.stop_job.cancel();
            }
        }
        Ok(stepped)
    }

    /// Whether the grant stopped covering the job, and why.
    pub fn stopped(&self) -> Option<Refusal> {
        self.state().stopped
    }

    /// One turn of the flush task: writes what is pending, or checks the grant while the job
    /// holds a block, when it is time to.
    async fn tick(&self, since_check: Duration) -> bool {
        let batches = {
            let mut state = self.state();
            let holding = state.open.is_some();
            if state.pending.is_empty() && !(holding && since_check >= CHECK_EVERY) {
                return false;
            }
            state.take_pending()
        };
        if let Err(err) = self.step(batches, None).await {
            warn!(%err, "writing the job's metering batches failed; they are kept for the next try");
        }
        true
    }

    /// The last step: gives back the open block's rest and writes every batch, retrying a
    /// failing store a few times.
    async fn finish(&self) {
        let _leasing = self.leasing.lock().await;
        self.state().retire();
        for attempt in 0..4_u32 {
            let batches = self.state().take_pending();
            if batches.is_empty() {
                return;
            }
            match self.step(batches, None).await {
                Ok(_) => {}
                Err(err) => {
                    warn!(%err, attempt, "writing the job's last metering batches failed");
                    tokio::time::sleep(FLUSH_EVERY * 2_u32.pow(attempt)).await;
                }
            }
        }
        if !self.state().pending.is_empty() {
            warn!(
                "the job's last metering batches were not written; its end counts them at their worst case"
            );
        }
    }
}

/// Writes batches every [`FLUSH_EVERY`] until closed, then the last ones.
async fn flush_loop(meter: Arc<Meter>, closing: CancellationToken) {
    let mut last_check = Instant::now();
    loop {
        tokio::select! {
            () = closing.cancelled() => break,
            () = tokio::time::sleep(FLUSH_EVERY) => {}
        }
        if meter.tick(last_check.elapsed()).await {
            last_check = Instant::now();
        }
    }
    meter.finish().await;
}

/// The meter's flush task. [`MeterTask::close`] ends it once the job's queries are over;
/// dropped unclosed (the job's task panicked or was aborted), it still writes the last
/// batches in the background.
pub struct MeterTask {
    closing: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl MeterTask {
    /// Gives back the rest of the job's block and writes the last batches. Call it once no
    /// query of the job is in flight.
    pub async fn close(mut self) {
        self.closing.cancel();
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
        {
            warn!(%err, "the metering task ended abnormally");
        }
    }
}

impl Drop for MeterTask {
    fn drop(&mut self) {
        self.closing.cancel();
    }
}

/// Runs a store call to its end in a task of its own, even if the sample awaiting it is
/// dropped meanwhile (a stopped job drops its samples; so does a sample's timeout). A write
/// transaction cut off mid-statement would leave its pooled SQLite connection holding the
/// database's write lock until that connection is used again, and every other write of the
/// service would wait on it.
async fn to_end<T: Send + 'static>(
    call: impl Future<Output = Result<T, StoreError>> + Send + 'static,
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
