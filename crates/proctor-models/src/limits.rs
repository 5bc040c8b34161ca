//! The politeness a vendor asks of Proctor: at most `max_concurrency` requests in flight and at
//! most `requests_per_minute` started, per model, shared by every job in the process.
//!
//! Requests are paced evenly (one slot every `60 s / requests_per_minute`) rather than allowed
//! in bursts: a burst of a minute's worth at once is what trips a provider's own limiter, and an
//! even pace never does. When the endpoint answers with `Retry-After`, every request to the
//! model waits, not only the one that was told: the others would only be told the same.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// The concurrency and rate limits of one model.
#[derive(Debug)]
pub(crate) struct Limits {
    in_flight: Semaphore,
    /// Time between two request starts; `None` when the vendor set no rate.
    interval: Option<Duration>,
    /// The earliest time the next request may start.
    next_start: Mutex<Instant>,
}

/// Leave to send one request; the concurrency slot is given back when it is dropped.
#[derive(Debug)]
pub(crate) struct Leave<'a> {
    _permit: SemaphorePermit<'a>,
}

impl Limits {
    /// Limits of `max_concurrency` requests in flight and, when set, `requests_per_minute`.
    pub(crate) fn new(max_concurrency: u32, requests_per_minute: Option<u32>) -> Limits {
        Limits {
            in_flight: Semaphore::new(max_concurrency as usize),
            interval: requests_per_minute
                .filter(|&rpm| rpm > 0)
                .map(|rpm| Duration::from_secs(60) / rpm),
            next_start: Mutex::new(Instant::now()),
        }
    }

    /// Waits for a concurrency slot, then for the request's turn under the rate.
    ///
    /// The slot is taken first so that only a request that can be sent reserves a start time:
    /// the reserved starts then match the requests actually sent, and the rate holds.
    pub(crate) async fn acquire(&self) -> Leave<'_> {
        let permit = match self.in_flight.acquire().await {
            Ok(permit) => permit,
            // The semaphore is never closed; if it were, sending unlimited would be the wrong
            // answer, so wait for ever and let the caller's deadline end the call.
            Err(_) => std::future::pending().await,
        };
        let now = Instant::now();
        let start = {
            let mut next = self
                .next_start
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let start = (*next).max(now);
            *next = match self.interval {
                Some(interval) => start + interval,
                None => start,
            };
            start
        };
        // A timer for a start that is already due would still wait for the timer wheel's next
        // turn (a millisecond or more under load), on every request.
        if start > now {
            tokio::time::sleep_until(start).await;
        }
        Leave { _permit: permit }
    }

    /// Holds back every request to the model until `until` (the endpoint said `Retry-After`).
    pub(crate) fn pause_until(&self, until: Instant) {
        let mut next = self
            .next_start
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *next < until {
            *next = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_start_one_interval_apart_under_a_rate() {
        let limits = Limits::new(8, Some(600));
        let begin = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..5 {
            let _leave = limits.acquire().await;
            starts.push(begin.elapsed());
        }
        let expected: Vec<Duration> = (0..5).map(|i| Duration::from_millis(100 * i)).collect();
        assert_eq!(starts, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_rate_only_concurrency_holds_requests_back() {
        let limits = Limits::new(2, None);
        let a = limits.acquire().await;
        let _b = limits.acquire().await;
        let waiting = tokio::time::timeout(Duration::from_secs(1), limits.acquire()).await;
        assert!(waiting.is_err(), "a third request waits for a slot");
        drop(a);
        let begin = Instant::now();
        let _c = limits.acquire().await;
        assert_eq!(begin.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_back_every_request_until_it_ends() {
        let limits = Limits::new(4, None);
        let begin = Instant::now();
        limits.pause_until(begin + Duration::from_secs(2));
        let _leave = limits.acquire().await;
        assert_eq!(begin.elapsed(), Duration::from_secs(2));
        limits.pause_until(begin);
        let _again = limits.acquire().await;
        assert_eq!(
            begin.elapsed(),
            Duration::from_secs(2),
            "an earlier pause does not move the clock back"
        );
    }
}
