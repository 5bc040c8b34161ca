//! CPU metering of a job's samples: the CPU time the threads polling each sample's future spent
//! in those polls, summed over the job, and the job stopped once the sum passes its budget.
//!
//! Why the thread CPU clock (`CLOCK_THREAD_CPUTIME_ID`) read around each poll: a sample runs on
//! whichever tokio worker thread polls it, and that thread does nothing else during the poll,
//! so the clock's difference across one poll is what that poll cost the machine (wasm, host
//! calls, instantiation), unpolluted by other jobs running at the same time, which a
//! process-wide measure (`getrusage`) would charge to this one. Waiting for the model is not
//! counted (the future is parked, not polled), nor is compiling the eval (done before the job).
//! A poll is short (wasm yields every ten million units of fuel and at every epoch tick), so the
//! job stops within one poll per sample in flight of passing the budget.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A job's CPU budget and what its samples have used of it.
#[derive(Debug)]
pub struct CpuBudget {
    limit_ns: u64,
    used_ns: AtomicU64,
    spent: AtomicBool,
    stop: CancellationToken,
}

impl CpuBudget {
    /// A budget of `limit` CPU time; once the samples pass it, `stop` is cancelled (the job's
    /// own token, so the job loop stops as when it is cancelled) and [`CpuBudget::is_spent`]
    /// says why.
    pub fn new(limit: Duration, stop: CancellationToken) -> CpuBudget {
        CpuBudget {
            limit_ns: u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX),
            used_ns: AtomicU64::new(0),
            spent: AtomicBool::new(false),
            stop,
        }
    }

    /// The CPU time the job's samples used so far.
    pub fn used(&self) -> Duration {
        Duration::from_nanos(self.used_ns.load(Ordering::Relaxed))
    }

    /// Whether the samples passed the budget (and the job was stopped for it).
    pub fn is_spent(&self) -> bool {
        self.spent.load(Ordering::Acquire)
    }

    fn charge(&self, ns: u64) {
        let used = self
            .used_ns
            .fetch_add(ns, Ordering::Relaxed)
            .saturating_add(ns);
        if used > self.limit_ns && !self.spent.swap(true, Ordering::AcqRel) {
            self.stop.cancel();
        }
    }

    /// Runs `future`, charging the CPU time of every poll of it to this budget.
    pub(crate) async fn meter<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        std::future::poll_fn(|cx| {
            let before = thread_cpu_ns();
            let polled = future.as_mut().poll(cx);
            self.charge(thread_cpu_ns().saturating_sub(before));
            polled
        })
        .await
    }
}

/// The calling thread's CPU time (user and system), in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    // Never negative: a thread's CPU clock starts at 0.
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns about `d` of this thread's CPU time.
    fn spin(d: Duration) {
        let start = thread_cpu_ns();
        while thread_cpu_ns() - start < u64::try_from(d.as_nanos()).unwrap_or(u64::MAX) {
            std::hint::black_box(0u64);
        }
    }

    #[tokio::test]
    async fn polls_that_burn_cpu_are_charged_and_waiting_is_not() {
        let budget = CpuBudget::new(Duration::from_secs(60), CancellationToken::new());
        budget
            .meter(async {
                spin(Duration::from_millis(30));
                tokio::time::sleep(Duration::from_millis(200)).await;
            })
            .await;
        let used = budget.used();
        assert!(used >= Duration::from_millis(30), "{used:?}");
        assert!(
            used < Duration::from_millis(150),
            "the sleep was charged: {used:?}"
        );
        assert!(!budget.is_spent());
    }

    #[tokio::test]
    async fn passing_the_budget_stops_the_job_once() {
        let stop = CancellationToken::new();
        let budget = CpuBudget::new(Duration::from_millis(10), stop.clone());
        budget.meter(async { spin(Duration::from_millis(5)) }).await;
        assert!(!stop.is_cancelled(), "within the budget");
        budget
            .meter(async { spin(Duration::from_millis(10)) })
            .await;
        assert!(stop.is_cancelled() && budget.is_spent());
    }
}
