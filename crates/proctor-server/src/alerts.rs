//! The usage monitor: tests each grant's current window of queries against its own history
//! ([`proctor_core::anomaly`]) once its meters wrote to it, raises alerts for its vendor, and
//! suspends the grant when the vendor chose so.
//!
//! - A meter that wrote a grant's usage marks the grant ([`UsageMonitor::mark`]); every
//!   [`EVALUATE_EVERY`] the monitor tests the marked grants, each once, so a grant under heavy
//!   use is tested at most that often per server and an idle one never.
//! - An alert is raised once per grant, window and kind (the store refuses a second); with a
//!   webhook, its delivery is queued in the same transaction ([`crate::alerts_webhook`]).
//! - With `suspend`, a finding suspends the grant unless its vendor reinstated it in the
//!   current window: the grant covers nothing, its queued jobs end `revoked` and its running
//!   ones stop as a revocation stops them ([`crate::ending::stop_grant`]). The evaluator sees
//!   that (the grant `suspended`, its jobs `revoked`), never the alert; at most one suspension
//!   per grant until its vendor reinstates it, so it carries at most one bit per
//!   reinstatement (README, sandbox-policies/README.md).
//! - Windows older than the grant's history are deleted as it is tested.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use proctor_core::anomaly::{Figures, findings};
use proctor_core::usage_profile::UsageKey;
use proctor_sandbox::CancellationToken;
use proctor_store::{
    AlertKind, GrantId, GrantStop, NewAlert, Store, StoreError, Timestamp, UsageWindow,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::ending::stop_grant;
use crate::error::ApiError;
use crate::state::App;
use crate::usage_profile::{UsageTap, now};

/// How often the monitor tests the grants marked since.
pub const EVALUATE_EVERY: Duration = Duration::from_millis(500);

/// The grants whose usage grew, for the monitor to test, and the key of the profile's hashes.
pub struct UsageMonitor {
    key: UsageKey,
    marked: Mutex<HashSet<GrantId>>,
    /// Wakes the webhook sender when an alert queued a delivery.
    pub(crate) deliveries: Notify,
}

impl UsageMonitor {
    /// A monitor whose profile hashes are keyed by `key`.
    pub fn new(key: UsageKey) -> UsageMonitor {
        UsageMonitor {
            key,
            marked: Mutex::default(),
            deliveries: Notify::new(),
        }
    }

    /// The key of the profile's hashes.
    pub fn key(&self) -> &UsageKey {
        &self.key
    }

    /// Marks `grant` for the next test.
    pub fn mark(&self, grant: GrantId) {
        self.marked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(grant);
    }

    fn take(&self) -> Vec<GrantId> {
        self.marked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect()
    }

    /// The tap a job under `grant` gathers its queries with: off when the grant's
    /// monitoring is.
    ///
    /// # Errors
    ///
    /// The store's, reading the grant's settings.
    pub async fn tap(
        self: &Arc<Self>,
        store: &Store,
        grant: GrantId,
    ) -> Result<UsageTap, StoreError> {
        let settings = store.alert_settings(grant).await?;
        Ok(if settings.enabled {
            UsageTap::new(self.clone(), grant, settings.window_s)
        } else {
            UsageTap::off()
        })
    }
}

/// Starts the monitor and the webhook sender; both end when `shutdown` fires.
pub fn spawn(app: &Arc<App>, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(run(app.clone(), shutdown.clone())),
        tokio::spawn(crate::alerts_webhook::run(app.clone(), shutdown.clone())),
    ]
}

async fn run(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVALUATE_EVERY) => {}
        }
        for grant in app.usage.take() {
            if let Err(err) = evaluate(&app, grant).await {
                warn!(%grant, error = err.code(), "testing a grant's usage failed");
            }
        }
    }
}

/// Tests `grant`'s current window against its history; raises what fired, suspends if the
/// grant's settings say so.
async fn evaluate(app: &App, grant: GrantId) -> Result<(), ApiError> {
    let settings = app.store.alert_settings(grant).await?;
    if !settings.enabled {
        return Ok(());
    }
    let current = UsageWindow::holding(settings.window_s, now());
    let span = settings
        .history_windows
        .saturating_mul(settings.window_s)
        .saturating_mul(1000);
    let since = Timestamp(
        current
            .start
            .0
            .saturating_sub(i64::try_from(span).unwrap_or(i64::MAX)),
    );
    let windows = app
        .store
        .usage_windows(grant, settings.window_s, since)
        .await?;
    app.store
        .forget_usage(grant, settings.window_s, since)
        .await?;
    let (now_windows, history): (Vec<_>, Vec<_>) =
        windows.into_iter().partition(|(w, _)| *w == current);
    let Some((_, profile)) = now_windows.into_iter().next() else {
        return Ok(());
    };
    let history: Vec<_> = history.into_iter().map(|(_, p)| p).collect();
    let found = findings(&settings.thresholds, &profile, &history);
    if found.is_empty() {
        return Ok(());
    }
    let stored = app.store.grant(grant).await?;
    // Whether these alerts suspend the grant: the vendor chose so, the grant is active, and
    // the vendor did not reinstate it in this window.
    let suspends = settings.suspend
        && stored.revoked_at.is_none()
        && stored.suspended_at.is_none()
        && stored.reinstated_at.is_none_or(|at| at < current.start);
    for finding in &found {
        let raised = app
            .store
            .raise_alert(&NewAlert {
                grant,
                kind: AlertKind::from(finding.signal),
                figures: Figures {
                    current: finding.current,
                    baseline: finding.baseline,
                    p_value: finding.p_value,
                    window_queries: profile.queries,
                    history_windows: history.len() as u64,
                },
                window: current,
                suspends,
            })
            .await?;
        if let Some(alert) = raised {
            info!(%grant, kind = %alert.kind, "a usage alert was raised");
            if settings.webhook.is_some() {
                app.usage.deliveries.notify_one();
            }
        }
    }
    if suspends {
        // Its running jobs here stop at once; elsewhere at their next metering step.
        stop_grant(app, stored.vendor, grant, GrantStop::Suspend).await?;
        info!(%grant, "a usage alert suspended the grant");
    }
    Ok(())
}
