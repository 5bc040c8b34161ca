//! A job's usage tap: each query its model sends is reduced to
//! [`QueryFeatures`](proctor_core::usage_profile::QueryFeatures) (sizes, keyed hashes, flags;
//! no text) and added to the grant's current window in memory; the job's meter takes what
//! gathered with each metering step and writes it in that step's transaction
//! ([`proctor_store::Store::meter_with_usage`]), so the profile costs the query path no
//! database round trip of its own. After a step that wrote some, the meter marks the grant for
//! the usage monitor ([`crate::alerts`]).
//!
//! Windows are on the system clock (wall time, shared by all replicas), never the evaluator's
//! padded clock: they are the vendor's, and no evaluator-visible time is read from them.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use proctor_core::CompletionRequest;
use proctor_core::usage_profile::{QueryFeatures, UsageKey, WindowProfile};
use proctor_store::{GrantId, Timestamp, UsageWindow};

use crate::alerts::UsageMonitor;

/// What one job's queries add to its grant's usage profile, until its meter writes it.
pub struct UsageTap {
    /// `None`: the grant's monitoring is off, and nothing is gathered.
    on: Option<On>,
}

struct On {
    key: UsageKey,
    window_s: u64,
    pending: Mutex<Vec<(UsageWindow, WindowProfile)>>,
    monitor: Arc<UsageMonitor>,
    grant: GrantId,
}

impl UsageTap {
    /// A tap gathering `grant`'s queries into windows of `window_s` seconds, reporting to
    /// `monitor`.
    pub fn new(monitor: Arc<UsageMonitor>, grant: GrantId, window_s: u64) -> UsageTap {
        UsageTap {
            on: Some(On {
                key: monitor.key().clone(),
                window_s,
                pending: Mutex::new(Vec::new()),
                monitor,
                grant,
            }),
        }
    }

    /// A tap that gathers nothing (the grant's monitoring is off).
    pub fn off() -> UsageTap {
        UsageTap { on: None }
    }

    /// Counts `request`, about to be sent.
    pub fn observe(&self, request: &CompletionRequest) {
        let Some(on) = &self.on else {
            return;
        };
        let features = QueryFeatures::of(&on.key, request);
        let window = UsageWindow::holding(on.window_s, now());
        let mut pending = on.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.iter_mut().find(|(w, _)| *w == window) {
            Some((_, profile)) => profile.observe(&features),
            None => {
                let mut profile = WindowProfile::default();
                profile.observe(&features);
                pending.push((window, profile));
            }
        }
    }

    /// What gathered since the last take.
    pub fn take(&self) -> Vec<(UsageWindow, WindowProfile)> {
        match &self.on {
            Some(on) => {
                std::mem::take(&mut *on.pending.lock().unwrap_or_else(PoisonError::into_inner))
            }
            None => Vec::new(),
        }
    }

    /// Puts back what could not be written, for the next step.
    pub fn restore(&self, usage: Vec<(UsageWindow, WindowProfile)>) {
        let Some(on) = &self.on else {
            return;
        };
        let mut pending = on.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for (window, profile) in usage {
            match pending.iter_mut().find(|(w, _)| *w == window) {
                Some((_, mine)) => mine.merge(&profile),
                None => pending.push((window, profile)),
            }
        }
    }

    /// Tells the monitor that the grant's profile grew.
    pub fn written(&self) {
        if let Some(on) = &self.on {
            on.monitor.mark(on.grant);
        }
    }
}

/// Now on the system clock.
pub(crate) fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp(ms)
}
