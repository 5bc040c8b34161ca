//! The server's clock, and the grid on which an evaluator sees a job's times.
//!
//! Leases and every stored time keep the database's clock (one clock for every server). This
//! clock decides only what an evaluator sees of time, so it is injectable: the service runs on
//! [`SystemClock`]; tests hand the server a [`FixedClock`] or a [`ManualClock`], so grid times
//! are the same in every run and nobody waits a minute for a padded end.
//!
//! Under a policy with `release.time_grid_s` ([`TimeGrid`]) every time an evaluator can read of
//! a job (its view, its pre-registration, its result) lies on the grid, and a job's end is
//! padded: its worker waits, lease renewed, until the first grid point after its samples are
//! done before it writes the end, so the status flip, the result entry's append to the log and
//! the attested end all happen at a grid point that does not depend on how long any sample
//! took, only on how many grid steps the job took.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use proctor_core::Policy;
use proctor_store::{Job, Timestamp};
use tokio::sync::watch;

/// What the server reads the time from, and waits on.
#[async_trait]
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> Timestamp;

    /// Returns once the clock reads `at` or later (a [`FixedClock`] returns at once).
    async fn wait_until(&self, at: Timestamp);
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // A clock before 1970 or past the year 292 million reads as the epoch's edge.
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp(millis)
    }

    async fn wait_until(&self, at: Timestamp) {
        // Checked again after each sleep: the system clock may be stepped while we sleep.
        loop {
            let left = at.as_millis().saturating_sub(self.now().as_millis());
            if left <= 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(left.unsigned_abs())).await;
        }
    }
}

/// A clock that stands still at one instant and whose waits return at once, as if time jumped
/// to their end: every job on it shows the same grid points in every run (its start on the
/// instant's grid point, its end one step later).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Timestamp);

#[async_trait]
impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }

    async fn wait_until(&self, _at: Timestamp) {}
}

/// A clock that moves only when told ([`ManualClock::set`], [`ManualClock::advance`]); a wait
/// returns once the clock has been moved to or past its end. For tests that watch a padded end.
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<Timestamp>>,
}

impl ManualClock {
    /// A clock reading `at`.
    pub fn new(at: Timestamp) -> ManualClock {
        ManualClock {
            now: Arc::new(watch::Sender::new(at)),
        }
    }

    /// Moves the clock to `at` (also backwards), waking the waits it reaches.
    pub fn set(&self, at: Timestamp) {
        self.now.send_replace(at);
    }

    /// Moves the clock on by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now
            .send_modify(|now| *now = Timestamp(now.as_millis().saturating_add(by)));
    }

    /// How many waits are pending: a test sees a worker holding back a job's end by it.
    pub fn waiting(&self) -> usize {
        self.now.receiver_count()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &*self.now.borrow())
            .finish()
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    async fn wait_until(&self, at: Timestamp) {
        let mut now = self.now.subscribe();
        // The sender lives as long as `self`, so the wait ends only when the clock gets there.
        let _ = now.wait_for(|now| *now >= at).await;
    }
}

/// The grid a job's visible times lie on: the multiples of the policy's `time_grid_s` since
/// the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeGrid {
    step_ms: i64,
}

impl TimeGrid {
    /// The grid of `policy`, if it sets `release.time_grid_s` (required with `dp_epsilon`).
    pub fn of(policy: &Policy) -> Option<TimeGrid> {
        // The policy keeps the step within 1 s to a day, so the cast is exact.
        policy.release.time_grid_s.map(|seconds| TimeGrid {
            step_ms: ((seconds * 1000.0).round() as i64).max(1),
        })
    }

    /// The step, in milliseconds.
    pub fn step_ms(self) -> i64 {
        self.step_ms
    }

    /// The grid point at or before `t`.
    pub fn floor(self, t: Timestamp) -> Timestamp {
        Timestamp(t.as_millis().div_euclid(self.step_ms) * self.step_ms)
    }

    /// The first grid point strictly after `t`: where a job whose samples are done at `t` is
    /// shown to end. Strictly, so an end is never shown at the grid point its start is.
    pub fn after(self, t: Timestamp) -> Timestamp {
        Timestamp(self.floor(t).as_millis().saturating_add(self.step_ms))
    }
}

/// The times of a job its evaluator (and the public, in its attestations) may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisibleTimes {
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When it was first claimed.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

impl VisibleTimes {
    /// Without a grid, the database's exact times. With one, the server's clock readings on
    /// the grid (the end as its worker padded it); a reading the job lacks (it ended before
    /// it ran, or predates the readings) is stood in for by the database's time on the grid,
    /// never before the times it follows.
    pub fn of(job: &Job, grid: Option<TimeGrid>) -> VisibleTimes {
        let Some(grid) = grid else {
            return VisibleTimes {
                created_at: job.created_at,
                started_at: job.started_at,
                finished_at: job.finished_at,
            };
        };
        let created_at = grid.floor(job.clock_created_at.unwrap_or(job.created_at));
        let started_at = job.started_at.map(|db| {
            grid.floor(job.clock_started_at.unwrap_or(db))
                .max(created_at)
        });
        let finished_at = job.finished_at.map(|db| {
            grid.floor(job.clock_finished_at.unwrap_or(db))
                .max(started_at.unwrap_or(created_at))
        });
        VisibleTimes {
            created_at,
            started_at,
            finished_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(seconds: f64) -> TimeGrid {
        let mut policy = Policy::standard();
        policy.release.time_grid_s = Some(seconds);
        TimeGrid::of(&policy).expect("a grid")
    }

    #[test]
    fn times_fall_to_the_grid_point_before_and_ends_go_to_the_one_after() {
        let g = grid(60.0);
        assert_eq!(g.floor(Timestamp(119_999)), Timestamp(60_000));
        assert_eq!(g.floor(Timestamp(120_000)), Timestamp(120_000));
        assert_eq!(g.floor(Timestamp(-1)), Timestamp(-60_000));
        assert_eq!(g.after(Timestamp(120_000)), Timestamp(180_000));
        assert_eq!(g.after(Timestamp(179_999)), Timestamp(180_000));
        assert_eq!(grid(1.5).after(Timestamp(1)), Timestamp(1_500));
    }

    #[test]
    fn a_policy_without_a_grid_has_none() {
        assert_eq!(TimeGrid::of(&Policy::standard()), None);
        let strict = Policy::named("strict").expect("strict");
        assert_eq!(TimeGrid::of(&strict).map(TimeGrid::step_ms), Some(60_000));
    }

    #[tokio::test]
    async fn a_manual_clock_wait_ends_only_when_the_clock_gets_there() {
        let clock = ManualClock::new(Timestamp(0));
        let waiting = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.wait_until(Timestamp(60_000)).await })
        };
        while clock.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the wait ends")
            .expect("the task");
        assert_eq!(clock.now(), Timestamp(60_000));
    }
}
