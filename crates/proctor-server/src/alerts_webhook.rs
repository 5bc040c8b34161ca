//! The webhook sender: delivers the outbox of usage alerts ([`proctor_store::alerts`]) to
//! their grants' webhooks, signed ([`proctor_models::alerts_webhook`]), retrying a failed
//! delivery with exponential backoff ([`retry_delay`]) up to [`MAX_ATTEMPTS`] times.
//!
//! The outbox is in the database, so a delivery survives a restart, and any server may send
//! it: each claims due rows with a lease ([`CLAIM_LEASE`]) longer than a delivery can take,
//! so two servers do not both send one (a server that dies mid-delivery leaves the row to be
//! claimed again when the lease passes: a receiver may see an alert twice, never none, and
//! tells by its id).

use std::sync::Arc;
use std::time::Duration;

use proctor_models::alerts_webhook::{DELIVERY_TIMEOUT, deliver};
use proctor_sandbox::CancellationToken;
use proctor_store::{ClaimedWebhook, Timestamp};
use tracing::{info, warn};

use crate::routes::alerts::{alert_view, secret_context};
use crate::state::App;

/// How often the sender looks for due deliveries when nothing woke it.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 12;
/// How long a claim keeps a delivery from other servers: a delivery's timeout and room.
pub const CLAIM_LEASE: Duration = Duration::from_secs(30);
const _: () = assert!(CLAIM_LEASE.as_secs() > 2 * DELIVERY_TIMEOUT.as_secs());

/// The wait before attempt `attempts + 1` after `attempts` failed ones: 1 s, 2 s, 4 s, ...
/// up to an hour.
pub fn retry_delay(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(12)).min(Duration::from_secs(3600))
}

/// Sends due deliveries until `shutdown` fires.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = app.usage.deliveries.notified() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
        let lease = i64::try_from(CLAIM_LEASE.as_millis()).unwrap_or(i64::MAX);
        let claimed = match app.store.claim_webhooks(lease, 16).await {
            Ok(claimed) => claimed,
            Err(err) => {
                warn!(%err, "claiming alert webhook deliveries failed");
                continue;
            }
        };
        for delivery in claimed {
            send(&app, delivery).await;
        }
    }
}

async fn send(app: &App, delivery: ClaimedWebhook) {
    let alert = &delivery.alert;
    let attempt = delivery.attempts + 1;
    let result = match app.sealer.open(
        &secret_context(alert.grant),
        &delivery.webhook.sealed_secret,
    ) {
        Ok(secret) => {
            let body = serde_json::to_vec(&alert_view(alert)).unwrap_or_default();
            let t = u64::try_from(crate::usage_profile::now().0 / 1000).unwrap_or(0);
            deliver(
                &app.config.model_hosts,
                &delivery.webhook.url,
                &secret,
                t,
                body,
            )
            .await
            .map_err(|e| e.to_string())
        }
        Err(err) => Err(err.to_string()),
    };
    let outcome = match &result {
        Ok(()) => {
            info!(alert = %alert.id, attempt, "an alert's webhook was delivered");
            Ok(())
        }
        Err(why) if attempt >= MAX_ATTEMPTS => {
            warn!(alert = %alert.id, attempt, %why, "an alert's webhook failed; given up");
            Err((why.as_str(), None))
        }
        Err(why) => {
            let delay = i64::try_from(retry_delay(attempt).as_millis()).unwrap_or(i64::MAX);
            let at = match app.store.now().await {
                Ok(now) => Timestamp(now.0.saturating_add(delay)),
                Err(_) => Timestamp(crate::usage_profile::now().0.saturating_add(delay)),
            };
            warn!(alert = %alert.id, attempt, %why, "an alert's webhook failed; it is retried");
            Err((why.as_str(), Some(at)))
        }
    };
    if let Err(err) = app.store.webhook_attempted(alert.id, outcome).await {
        // The claim's lease runs out and the delivery is tried again.
        warn!(%err, alert = %alert.id, "recording a webhook attempt failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_one_second_to_an_hour() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(5), Duration::from_secs(16));
        assert_eq!(retry_delay(40), Duration::from_secs(3600));
    }
}
