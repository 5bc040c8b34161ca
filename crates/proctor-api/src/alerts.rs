//! `/v1/alerts` and a grant's alert settings: usage anomaly alerts for vendors (is a grant
//! being used to distil the model?). A vendor reads the alerts on its own grants, an admin
//! all; an evaluator none.

use proctor_core::anomaly::{Figures, Thresholds};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What an alert is about: the usage signal that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKindView {
    /// The window's queries against the busiest earlier window.
    Volume,
    /// The prompt-size distribution.
    PromptSizes,
    /// Prompts repeated within the window.
    Repeats,
    /// One template's share of the queries.
    Templates,
    /// The share of reasoning-eliciting queries.
    Reasoning,
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    /// Its id.
    #[schema(format = "uuid")]
    pub id: String,
    /// The grant whose usage fired it.
    #[schema(format = "uuid")]
    pub grant: String,
    /// The grant's model.
    #[schema(format = "uuid")]
    pub model: String,
    /// The grant's vendor.
    #[schema(format = "uuid")]
    pub vendor: String,
    /// The signal.
    pub kind: AlertKindView,
    /// The test's figures.
    pub figures: Figures,
    /// The window's start, RFC 3339.
    #[schema(format = DateTime)]
    pub window_start: String,
    /// The window's end, RFC 3339.
    #[schema(format = DateTime)]
    pub window_end: String,
    /// Whether it suspended the grant.
    pub suspended: bool,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, once its vendor acknowledged it; else `null`.
    #[schema(format = DateTime)]
    pub acknowledged_at: Option<String>,
}

/// A grant's alert settings, as given on grant creation (`alerts`) or
/// `PUT /v1/grants/{id}/alerts`. Every key may be left out: its default applies.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertSettingsBody {
    /// Whether the grant's usage is tested (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The window's length in seconds (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2_592_000)]
    pub window_s: Option<u64>,
    /// How many earlier windows the history keeps (default 168, a week of hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10_000)]
    pub history_windows: Option<u64>,
    /// The test's thresholds; each key left out keeps its default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Thresholds>,
    /// Whether an alert suspends the grant (default `false`); its vendor reinstates it with
    /// `POST /v1/grants/{id}/reinstate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Where alerts are POSTed (http or https, under the same host rules as a model's
    /// `base_url`); `null` or left out for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// The webhook's signing secret (16 to 256 characters); left out with a webhook, the
    /// service generates one and shows it once, in this call's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// A grant's alert settings as its vendor reads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertSettingsView {
    /// The grant.
    #[schema(format = "uuid")]
    pub grant: String,
    /// Whether its usage is tested.
    pub enabled: bool,
    /// The window's length in seconds.
    pub window_s: u64,
    /// Earlier windows the history keeps.
    pub history_windows: u64,
    /// The thresholds.
    pub thresholds: Thresholds,
    /// Whether an alert suspends the grant.
    pub suspend: bool,
    /// The webhook, if any.
    pub webhook: Option<String>,
    /// The webhook's secret, only in the answer that generated it; never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// `GET /v1/alerts?limit=N`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAlerts {
    /// How many, newest first (100 when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}
