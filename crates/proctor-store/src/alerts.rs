//! Usage alerts for vendors: a grant's alert settings, the alerts raised on it (at most one
//! per grant, window and kind), the webhook outbox, and a suspended grant's reinstatement.
//!
//! An alert and its outbox row are written in one transaction, so an alert whose grant has a
//! webhook is delivered even if the server dies right after raising it: the outbox is claimed
//! by whichever server looks next ([`Store::claim_webhooks`], a lease on the row), retried with
//! backoff, and marked delivered or, after the last attempt, failed. Alerts are the vendor's:
//! nothing here is read on an evaluator's behalf.

use proctor_core::anomaly::{Figures, Signal, Thresholds};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Result, StoreError};
use crate::grants::{GRANT_COLUMNS, Grant, grant_from_row, lock_grant};
use crate::ids::{AccountId, AlertId, GrantId, ModelId};
use crate::rows::{opt_timestamp, parse_id, parse_text, timestamp, to_i64, to_u64};
use crate::store::Store;
use crate::text_enum::text_enum;
use crate::time::Timestamp;
use crate::usage_profile::UsageWindow;

/// What an alert is about: the usage signal that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// Queries in the window, against the busiest earlier window.
    Volume,
    /// The prompt-size distribution.
    PromptSizes,
    /// Prompts repeated within the window.
    Repeats,
    /// One template's share of the queries.
    Templates,
    /// Reasoning-eliciting queries' share.
    Reasoning,
}

text_enum!(
    AlertKind,
    "alert kind",
    Volume = "volume",
    PromptSizes = "prompt-sizes",
    Repeats = "repeats",
    Templates = "templates",
    Reasoning = "reasoning",
);

impl From<Signal> for AlertKind {
    fn from(signal: Signal) -> AlertKind {
        match signal {
            Signal::Volume => AlertKind::Volume,
            Signal::PromptSizes => AlertKind::PromptSizes,
            Signal::Repeats => AlertKind::Repeats,
            Signal::Templates => AlertKind::Templates,
            Signal::Reasoning => AlertKind::Reasoning,
        }
    }
}

/// Where a grant's alerts are POSTed, and the secret they are signed with (sealed by the
/// server; the store never holds it in the clear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// An http(s) URL the service's host rules admit.
    pub url: String,
    /// The signing secret, sealed.
    pub sealed_secret: Vec<u8>,
}

/// A grant's alert settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Whether the grant's usage is tested at all.
    pub enabled: bool,
    /// The window's length, seconds.
    pub window_s: u64,
    /// How many earlier windows the history keeps.
    pub history_windows: u64,
    /// The test's thresholds.
    pub thresholds: Thresholds,
    /// Whether an alert suspends the grant.
    pub suspend: bool,
    /// The webhook, if any.
    pub webhook: Option<Webhook>,
}

/// A window's default length: one hour.
pub const DEFAULT_WINDOW_S: u64 = 3600;
/// The history's default length: a week of hourly windows.
pub const DEFAULT_HISTORY_WINDOWS: u64 = 168;

impl Default for AlertSettings {
    fn default() -> AlertSettings {
        AlertSettings {
            enabled: true,
            window_s: DEFAULT_WINDOW_S,
            history_windows: DEFAULT_HISTORY_WINDOWS,
            thresholds: Thresholds::default(),
            suspend: false,
            webhook: None,
        }
    }
}

/// An alert to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    /// The grant whose usage fired it.
    pub grant: GrantId,
    /// The signal.
    pub kind: AlertKind,
    /// The test's figures.
    pub figures: Figures,
    /// The window it is about.
    pub window: UsageWindow,
    /// Whether it suspends the grant (the settings say so and the grant was not reinstated
    /// in this window).
    pub suspends: bool,
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Its id.
    pub id: AlertId,
    /// The grant.
    pub grant: GrantId,
    /// The grant's model.
    pub model: ModelId,
    /// The grant's vendor.
    pub vendor: AccountId,
    /// The signal.
    pub kind: AlertKind,
    /// The test's figures.
    pub figures: Figures,
    /// The window.
    pub window: UsageWindow,
    /// Whether it suspended the grant.
    pub suspended: bool,
    /// When it was raised.
    pub created_at: Timestamp,
    /// When its vendor acknowledged it.
    pub acknowledged_at: Option<Timestamp>,
}

const ALERT_COLUMNS: &str = "id, grant_id, model_id, vendor_id, kind, figures, window_start, \
    window_end, suspended, created_at, acknowledged_at";

fn alert_from_row(row: &AnyRow) -> Result<Alert> {
    let figures: String = row.try_get("figures")?;
    let start: i64 = row.try_get("window_start")?;
    let end: i64 = row.try_get("window_end")?;
    let suspended: i64 = row.try_get("suspended")?;
    Ok(Alert {
        id: parse_id(row, "id")?,
        grant: parse_id(row, "grant_id")?,
        model: parse_id(row, "model_id")?,
        vendor: parse_id(row, "vendor_id")?,
        kind: parse_text(row, "kind")?,
        figures: serde_json::from_str(&figures)
            .map_err(|_| StoreError::Corrupt("alerts.figures"))?,
        window: UsageWindow {
            window_s: to_u64((end - start) / 1000, "alerts.window_end")?,
            start: Timestamp(start),
        },
        suspended: suspended != 0,
        created_at: timestamp(row, "created_at")?,
        acknowledged_at: opt_timestamp(row, "acknowledged_at")?,
    })
}

/// A webhook delivery a server claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedWebhook {
    /// The alert to deliver.
    pub alert: Alert,
    /// Its grant's webhook now.
    pub webhook: Webhook,
    /// Attempts before this one.
    pub attempts: u32,
}

/// Who reads alerts: a vendor its own, an admin all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertReader {
    /// A vendor: its grants' alerts only.
    Vendor(AccountId),
    /// An admin: every alert.
    Admin,
}

impl Store {
    /// Sets a grant's alert settings (replacing any).
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a window or history of 0 or beyond 2^63;
    /// [`StoreError::Database`].
    pub async fn set_alert_settings(&self, grant: GrantId, settings: &AlertSettings) -> Result<()> {
        if settings.window_s == 0 || settings.history_windows == 0 {
            return Err(StoreError::Invalid("alert window (at least 1)"));
        }
        let thresholds = serde_json::to_string(&settings.thresholds)
            .map_err(|_| StoreError::Invalid("alert thresholds"))?;
        let sql = self.backend.sql(
            "INSERT INTO alert_settings (grant_id, enabled, window_s, history_windows, \
             thresholds, suspend, webhook_url, webhook_secret, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {now}) \
             ON CONFLICT (grant_id) DO UPDATE SET enabled = excluded.enabled, \
             window_s = excluded.window_s, history_windows = excluded.history_windows, \
             thresholds = excluded.thresholds, suspend = excluded.suspend, \
             webhook_url = excluded.webhook_url, webhook_secret = excluded.webhook_secret, \
             updated_at = excluded.updated_at",
        );
        sqlx::query(&sql)
            .bind(grant.to_string())
            .bind(i64::from(settings.enabled))
            .bind(to_i64(settings.window_s, "alert window")?)
            .bind(to_i64(settings.history_windows, "alert history")?)
            .bind(thresholds)
            .bind(i64::from(settings.suspend))
            .bind(settings.webhook.as_ref().map(|w| w.url.clone()))
            .bind(
                settings
                    .webhook
                    .as_ref()
                    .map(|w| hex::encode(&w.sealed_secret)),
            )
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A grant's alert settings; the defaults when it has none.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`], [`StoreError::Database`].
    pub async fn alert_settings(&self, grant: GrantId) -> Result<AlertSettings> {
        let row = sqlx::query(
            "SELECT enabled, window_s, history_windows, thresholds, suspend, webhook_url, \
             webhook_secret FROM alert_settings WHERE grant_id = $1",
        )
        .bind(grant.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(AlertSettings::default());
        };
        let thresholds: String = row.try_get("thresholds")?;
        let url: Option<String> = row.try_get("webhook_url")?;
        let secret: Option<String> = row.try_get("webhook_secret")?;
        let webhook = match (url, secret) {
            (Some(url), Some(secret)) => Some(Webhook {
                url,
                sealed_secret: hex::decode(secret)
                    .map_err(|_| StoreError::Corrupt("alert_settings.webhook_secret"))?,
            }),
            _ => None,
        };
        Ok(AlertSettings {
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            window_s: to_u64(row.try_get("window_s")?, "alert_settings.window_s")?,
            history_windows: to_u64(
                row.try_get("history_windows")?,
                "alert_settings.history_windows",
            )?,
            thresholds: serde_json::from_str(&thresholds)
                .map_err(|_| StoreError::Corrupt("alert_settings.thresholds"))?,
            suspend: row.try_get::<i64, _>("suspend")? != 0,
            webhook,
        })
    }

    /// Raises `alert` unless one of its kind was raised for its grant and window already
    /// (`None` then), with its webhook delivery queued in the same transaction when the grant
    /// has a webhook.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown grant; [`StoreError::Database`].
    pub async fn raise_alert(&self, alert: &NewAlert) -> Result<Option<Alert>> {
        let figures = serde_json::to_string(&alert.figures)
            .map_err(|_| StoreError::Invalid("alert figures"))?;
        self.transaction(async |tx| {
            let grant = lock_grant(tx, alert.grant).await?;
            let sql = tx.backend.sql(&format!(
                "INSERT INTO alerts ({ALERT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, {{now}}, NULL) \
                 ON CONFLICT (grant_id, window_start, kind) DO NOTHING RETURNING {ALERT_COLUMNS}"
            ));
            let row = sqlx::query(&sql)
                .bind(AlertId::new().to_string())
                .bind(grant.id.to_string())
                .bind(grant.model.to_string())
                .bind(grant.vendor.to_string())
                .bind(alert.kind.as_str())
                .bind(&figures)
                .bind(alert.window.start.0)
                .bind(alert.window.end().0)
                .bind(i64::from(alert.suspends))
                .fetch_optional(&mut *tx.inner)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let raised = alert_from_row(&row)?;
            let sql = tx.backend.sql(
                "INSERT INTO alert_webhooks (alert_id, attempts, next_attempt_at) \
                 SELECT $1, 0, {now} FROM alert_settings \
                 WHERE grant_id = $2 AND webhook_url IS NOT NULL",
            );
            sqlx::query(&sql)
                .bind(raised.id.to_string())
                .bind(grant.id.to_string())
                .execute(&mut *tx.inner)
                .await?;
            Ok(Some(raised))
        })
        .await
    }

    /// The alerts `reader` may read, newest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn alerts(&self, reader: AlertReader, limit: u32) -> Result<Vec<Alert>> {
        let rows = match reader {
            AlertReader::Vendor(vendor) => {
                sqlx::query(&format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE vendor_id = $1 \
                     ORDER BY created_at DESC, id LIMIT $2"
                ))
                .bind(vendor.to_string())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            AlertReader::Admin => {
                sqlx::query(&format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts ORDER BY created_at DESC, id LIMIT $1"
                ))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(alert_from_row).collect()
    }

    /// Acknowledges an alert `reader` may read (again: keeps the first time).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown alert or one of another vendor's grants.
    pub async fn acknowledge_alert(&self, reader: AlertReader, id: AlertId) -> Result<Alert> {
        let (only, vendor) = match reader {
            AlertReader::Vendor(vendor) => (" AND vendor_id = $2", Some(vendor.to_string())),
            AlertReader::Admin => ("", None),
        };
        let sql = self.backend.sql(&format!(
            "UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, {{now}}) \
             WHERE id = $1{only} RETURNING {ALERT_COLUMNS}"
        ));
        let mut query = sqlx::query(&sql).bind(id.to_string());
        if let Some(vendor) = vendor {
            query = query.bind(vendor);
        }
        let row = query
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("alert"))?;
        alert_from_row(&row)
    }

    /// Claims up to `limit` webhook deliveries that are due: each is leased for `lease_ms`
    /// (another server takes it only once the lease has passed, so a server that died
    /// mid-delivery leaves it to be retried).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`], [`StoreError::Database`].
    pub async fn claim_webhooks(&self, lease_ms: i64, limit: u32) -> Result<Vec<ClaimedWebhook>> {
        self.transaction(async |tx| {
            let sql = tx.backend.sql(&format!(
                "SELECT w.alert_id, w.attempts FROM alert_webhooks w \
                 WHERE w.delivered_at IS NULL AND w.failed_at IS NULL \
                 AND w.next_attempt_at <= {{now}} ORDER BY w.next_attempt_at LIMIT {limit} \
                 {{for_update}}"
            ));
            let due = sqlx::query(&sql).fetch_all(&mut *tx.inner).await?;
            let mut claimed = Vec::new();
            for row in due {
                let id: String = row.try_get("alert_id")?;
                let attempts = u32::try_from(row.try_get::<i64, _>("attempts")?)
                    .map_err(|_| StoreError::Corrupt("alert_webhooks.attempts"))?;
                let sql = tx.backend.sql(
                    "UPDATE alert_webhooks SET next_attempt_at = {now} + $2 WHERE alert_id = $1",
                );
                sqlx::query(&sql)
                    .bind(&id)
                    .bind(lease_ms)
                    .execute(&mut *tx.inner)
                    .await?;
                let alert =
                    sqlx::query(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"))
                        .bind(&id)
                        .fetch_one(&mut *tx.inner)
                        .await?;
                let alert = alert_from_row(&alert)?;
                let hook = sqlx::query(
                    "SELECT webhook_url, webhook_secret FROM alert_settings WHERE grant_id = $1",
                )
                .bind(alert.grant.to_string())
                .fetch_optional(&mut *tx.inner)
                .await?;
                let webhook = match hook {
                    Some(hook) => {
                        let url: Option<String> = hook.try_get("webhook_url")?;
                        let secret: Option<String> = hook.try_get("webhook_secret")?;
                        url.zip(secret)
                    }
                    None => None,
                };
                match webhook {
                    Some((url, secret)) => claimed.push(ClaimedWebhook {
                        alert,
                        webhook: Webhook {
                            url,
                            sealed_secret: hex::decode(secret).map_err(|_| {
                                StoreError::Corrupt("alert_settings.webhook_secret")
                            })?,
                        },
                        attempts,
                    }),
                    // The vendor removed the webhook since: nothing to deliver to.
                    None => {
                        let sql = tx.backend.sql(
                            "UPDATE alert_webhooks SET failed_at = {now}, \
                             last_error = 'the grant has no webhook any more' WHERE alert_id = $1",
                        );
                        sqlx::query(&sql).bind(&id).execute(&mut *tx.inner).await?;
                    }
                }
            }
            Ok(claimed)
        })
        .await
    }

    /// Records a delivery attempt of `alert`'s webhook: delivered, or failed with `error`
    /// and retried at `retry_at` (`None`: the last attempt, given up).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn webhook_attempted(
        &self,
        alert: AlertId,
        outcome: std::result::Result<(), (&str, Option<Timestamp>)>,
    ) -> Result<()> {
        let id = alert.to_string();
        match outcome {
            Ok(()) => {
                let sql = self.backend.sql(
                    "UPDATE alert_webhooks SET attempts = attempts + 1, delivered_at = {now}, \
                     last_error = NULL WHERE alert_id = $1",
                );
                sqlx::query(&sql).bind(id).execute(&self.pool).await?;
            }
            Err((error, Some(at))) => {
                sqlx::query(
                    "UPDATE alert_webhooks SET attempts = attempts + 1, next_attempt_at = $2, \
                     last_error = $3 WHERE alert_id = $1",
                )
                .bind(id)
                .bind(at.0)
                .bind(error.chars().take(300).collect::<String>())
                .execute(&self.pool)
                .await?;
            }
            Err((error, None)) => {
                let sql = self.backend.sql(
                    "UPDATE alert_webhooks SET attempts = attempts + 1, failed_at = {now}, \
                     last_error = $2 WHERE alert_id = $1",
                );
                sqlx::query(&sql)
                    .bind(id)
                    .bind(error.chars().take(300).collect::<String>())
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Whether `alert`'s webhook was delivered, and the attempts made.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when it has no delivery; [`StoreError::Database`].
    pub async fn webhook_state(&self, alert: AlertId) -> Result<(bool, u32)> {
        let row =
            sqlx::query("SELECT delivered_at, attempts FROM alert_webhooks WHERE alert_id = $1")
                .bind(alert.to_string())
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound("webhook delivery"))?;
        let delivered: Option<i64> = row.try_get("delivered_at")?;
        let attempts = u32::try_from(row.try_get::<i64, _>("attempts")?)
            .map_err(|_| StoreError::Corrupt("alert_webhooks.attempts"))?;
        Ok((delivered.is_some(), attempts))
    }

    /// Reinstates a suspended grant of `vendor`'s: it covers jobs again, and an alert of the
    /// current window no longer suspends it.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown grant or one of another vendor;
    /// [`StoreError::Invalid`] for one that is not suspended (or revoked).
    pub async fn reinstate_grant(&self, vendor: AccountId, grant: GrantId) -> Result<Grant> {
        self.transaction(async |tx| {
            let locked = lock_grant(tx, grant).await?;
            if locked.vendor != vendor {
                return Err(StoreError::NotFound("grant"));
            }
            if locked.suspended_at.is_none() || locked.revoked_at.is_some() {
                return Err(StoreError::Invalid(
                    "grant to reinstate (it is not suspended)",
                ));
            }
            let sql = tx.backend.sql(&format!(
                "UPDATE grants SET suspended_at = NULL, reinstated_at = {{now}} WHERE id = $1 \
                 RETURNING {GRANT_COLUMNS}"
            ));
            let row = sqlx::query(&sql)
                .bind(grant.to_string())
                .fetch_one(&mut *tx.inner)
                .await?;
            grant_from_row(&row)
        })
        .await
    }
}
