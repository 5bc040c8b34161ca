//! Per-account quotas, so that one account cannot take the service for itself: the bytes of
//! evals and datasets it holds, its upload attempts per hour (refused ones count too: each
//! costs a parse, and a component's a compile), the time its eval uploads spent compiling in
//! the last hour, and its jobs queued or running. A refusal is a 429 with the stable code
//! `quota_exceeded` and a message that names the quota. (The CPU time of a job's samples is a
//! grant's budget, `cpu_seconds_per_job`, set by the model's vendor.)
//!
//! Stored bytes and jobs are counted in the database, so every replica sees the same; upload
//! attempts and compile time are counted by each process (a replica set admits that many per
//! replica).
//!
//! Compile time is the wall-clock time of preparing an uploaded component (validating,
//! compiling or loading it from the compile cache, and `describe`), charged whether the
//! component was accepted or refused. It is measured around the sandbox's `prepare`, the one
//! place the server sees, because the compile itself runs on a blocking thread and on
//! Cranelift's parallel-compilation threads: so the CPU it bounds is at most the quota times
//! the machine's cores. An account past it is refused before its next compile starts; uploads
//! in flight at once (at most the service's concurrent uploads) may each take it past by one
//! compile.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use proctor_store::AccountId;

use crate::error::ApiError;

/// The quotas every account has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Bytes of evals and datasets one account may hold (each of its uploads counts in full,
    /// whoever else holds the same bytes).
    pub stored_bytes: u64,
    /// Upload attempts one account may make in an hour.
    pub uploads_per_hour: u32,
    /// Jobs one evaluator may have queued or running at once.
    pub unfinished_jobs: u64,
    /// Time one account's eval uploads may spend compiling in an hour.
    pub compile_per_hour: Duration,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            stored_bytes: 1 << 30,
            uploads_per_hour: 120,
            unfinished_jobs: 100,
            // Ten times what the 64 MiB component limit takes to compile on one core, about a
            // minute: an evaluator iterating on an eval is never near it.
            compile_per_hour: Duration::from_secs(600),
        }
    }
}

/// The 429 of a quota.
pub fn exceeded(message: String) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
}

const HOUR: Duration = Duration::from_secs(3600);

/// Accounts kept before those with no attempt in the last hour are forgotten.
const KEPT_ACCOUNTS: usize = 1024;

/// Each account's upload attempts in the last hour, in this process.
#[derive(Debug, Default)]
pub struct UploadAttempts {
    by_account: Mutex<HashMap<AccountId, VecDeque<Instant>>>,
}

impl UploadAttempts {
    /// Counts an attempt by `account`, unless it made `per_hour` in the last hour.
    ///
    /// # Errors
    ///
    /// A 429 `quota_exceeded` saying when the next attempt is possible.
    pub fn admit(&self, account: AccountId, per_hour: u32) -> Result<(), ApiError> {
        self.admit_at(account, per_hour, Instant::now())
    }

    fn admit_at(&self, account: AccountId, per_hour: u32, now: Instant) -> Result<(), ApiError> {
        let mut by_account = self.by_account.lock().unwrap_or_else(|e| e.into_inner());
        if by_account.len() > KEPT_ACCOUNTS {
            by_account.retain(|_, window| window.back().is_some_and(|t| now - *t < HOUR));
        }
        let window = by_account.entry(account).or_default();
        while window.front().is_some_and(|t| now - *t >= HOUR) {
            window.pop_front();
        }
        if window.len() >= per_hour as usize {
            let next = window.front().map_or(HOUR, |t| HOUR - (now - *t));
            return Err(exceeded(format!(
                "at most {per_hour} uploads an hour per account; the next is possible in {} s",
                next.as_secs() + 1
            )));
        }
        window.push_back(now);
        Ok(())
    }
}

/// Each account's compile time in the last hour, in this process.
#[derive(Debug, Default)]
pub struct CompileTime {
    by_account: Mutex<HashMap<AccountId, VecDeque<(Instant, Duration)>>>,
}

impl CompileTime {
    /// Refuses a compile for `account` once its compiles in the last hour took `per_hour`.
    ///
    /// # Errors
    ///
    /// A 429 `quota_exceeded` naming the quota and when the next compile is possible.
    pub fn check(&self, account: AccountId, per_hour: Duration) -> Result<(), ApiError> {
        self.check_at(account, per_hour, Instant::now())
    }

    /// Charges `spent` compiling to `account`.
    pub fn charge(&self, account: AccountId, spent: Duration) {
        self.charge_at(account, spent, Instant::now());
    }

    fn check_at(
        &self,
        account: AccountId,
        per_hour: Duration,
        now: Instant,
    ) -> Result<(), ApiError> {
        let mut by_account = self.lock();
        let Some(window) = by_account.get_mut(&account) else {
            return Ok(());
        };
        while window.front().is_some_and(|(t, _)| now - *t >= HOUR) {
            window.pop_front();
        }
        let spent: Duration = window.iter().map(|(_, d)| *d).sum();
        if spent >= per_hour {
            let next = window.front().map_or(HOUR, |(t, _)| HOUR - (now - *t));
            return Err(exceeded(format!(
                "the account's eval uploads spent {:.1} s compiling in the last hour, its quota                  of {} s; the next compile is possible in {} s",
                spent.as_secs_f64(),
                per_hour.as_secs_f64(),
                next.as_secs() + 1
            )));
        }
        Ok(())
    }

    fn charge_at(&self, account: AccountId, spent: Duration, now: Instant) {
        let mut by_account = self.lock();
        if by_account.len() > KEPT_ACCOUNTS {
            by_account.retain(|_, window| window.back().is_some_and(|(t, _)| now - *t < HOUR));
        }
        by_account
            .entry(account)
            .or_default()
            .push_back((now, spent));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, VecDeque<(Instant, Duration)>>> {
        self.by_account.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Refuses an upload of `size` bytes that would take an account holding `held` past `quota`.
///
/// # Errors
///
/// A 429 `quota_exceeded` naming what is held and the quota.
pub fn check_storage(held: u64, size: u64, quota: u64) -> Result<(), ApiError> {
    if held.saturating_add(size) > quota {
        return Err(exceeded(format!(
            "the account holds {held} bytes of evals and datasets; {size} more would pass its \
             quota of {quota} bytes"
        )));
    }
    Ok(())
}

/// Refuses a job from an evaluator with `unfinished` jobs queued or running at its quota.
///
/// # Errors
///
/// A 429 `quota_exceeded` naming the quota.
pub fn check_jobs(unfinished: u64, quota: u64) -> Result<(), ApiError> {
    if unfinished >= quota {
        return Err(exceeded(format!(
            "the evaluator has {unfinished} jobs queued or running, its quota; submit more when \
             some have ended"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_gets_its_uploads_per_hour_and_no_more_until_the_oldest_is_an_hour_old() {
        let attempts = UploadAttempts::default();
        let (one, other) = (AccountId::new(), AccountId::new());
        let start = Instant::now();
        for i in 0..3 {
            attempts
                .admit_at(one, 3, start + Duration::from_secs(i))
                .expect("within the quota");
        }
        let refused = attempts
            .admit_at(one, 3, start + Duration::from_secs(10))
            .expect_err("the fourth in an hour");
        assert_eq!(refused.code(), "quota_exceeded");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        attempts
            .admit_at(other, 3, start + Duration::from_secs(10))
            .expect("another account is not affected");
        attempts
            .admit_at(one, 3, start + HOUR)
            .expect("the first attempt is an hour old");
    }

    #[test]
    fn an_account_compiles_until_its_hourly_compile_time_is_spent() {
        let compiles = CompileTime::default();
        let (one, other) = (AccountId::new(), AccountId::new());
        let quota = Duration::from_secs(10);
        let start = Instant::now();
        compiles.check_at(one, quota, start).expect("nothing spent");
        compiles.charge_at(one, Duration::from_secs(6), start);
        compiles
            .check_at(one, quota, start + Duration::from_secs(1))
            .expect("6 of 10 s spent");
        compiles.charge_at(one, Duration::from_secs(6), start + Duration::from_secs(1));
        let refused = compiles
            .check_at(one, quota, start + Duration::from_secs(2))
            .expect_err("12 of 10 s spent");
        assert_eq!(refused.code(), "quota_exceeded");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        compiles
            .check_at(other, quota, start + Duration::from_secs(2))
            .expect("another account is not affected");
        compiles
            .check_at(one, quota, start + HOUR)
            .expect("the first compile is an hour old: 6 of 10 s spent");
    }

    #[test]
    fn storage_and_job_quotas_refuse_at_their_bound() {
        assert!(check_storage(900, 100, 1000).is_ok());
        assert_eq!(
            check_storage(900, 101, 1000).map_err(|e| e.code()),
            Err("quota_exceeded")
        );
        assert!(
            check_storage(u64::MAX, 1, u64::MAX - 1).is_err(),
            "the sum saturates instead of overflowing"
        );
        assert!(check_jobs(99, 100).is_ok());
        assert!(check_jobs(100, 100).is_err());
    }
}
