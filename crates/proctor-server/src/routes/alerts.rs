//! Usage alerts: a vendor reads the alerts on its own grants and acknowledges them, sets a
//! grant's alert settings (thresholds, window, suspension, webhook) and reinstates a grant an
//! alert suspended; an admin reads and acknowledges every alert. Evaluators get 403 on each:
//! an alert says how their traffic looks to the vendor, and what would make it fire.

use axum::Json;
use axum::extract::State;
use proctor_api::ErrorBody;
use proctor_api::alerts::{
    AlertKindView, AlertSettingsBody, AlertSettingsView, AlertView, ListAlerts,
};
use proctor_api::grants::GrantView;
use proctor_models::alerts_webhook::check_webhook_url;
use proctor_store::{
    Alert, AlertId, AlertKind, AlertReader, AlertSettings, Grant, GrantId, Role, Webhook,
};
use ring::rand::{SecureRandom, SystemRandom};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{
    Caller, JsonBody, PathParam, QueryParams, VendorCaller, list_limit, parse_id,
};
use crate::routes::grants::grant_view;
use crate::state::{App, AppState};

/// The longest window: 30 days.
const MAX_WINDOW_S: u64 = 30 * 86_400;
/// The longest history, in windows.
const MAX_HISTORY_WINDOWS: u64 = 10_000;

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(acknowledge))
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(reinstate))
}

/// An alert as the API shows it (and its webhook sends it).
pub fn alert_view(alert: &Alert) -> AlertView {
    AlertView {
        id: alert.id.to_string(),
        grant: alert.grant.to_string(),
        model: alert.model.to_string(),
        vendor: alert.vendor.to_string(),
        kind: match alert.kind {
            AlertKind::Volume => AlertKindView::Volume,
            AlertKind::PromptSizes => AlertKindView::PromptSizes,
            AlertKind::Repeats => AlertKindView::Repeats,
            AlertKind::Templates => AlertKindView::Templates,
            AlertKind::Reasoning => AlertKindView::Reasoning,
        },
        figures: alert.figures,
        window_start: alert.window.start.to_rfc3339(),
        window_end: alert.window.end().to_rfc3339(),
        suspended: alert.suspended,
        created_at: alert.created_at.to_rfc3339(),
        acknowledged_at: alert.acknowledged_at.map(|t| t.to_rfc3339()),
    }
}

fn reader(caller: &Caller) -> ApiResult<AlertReader> {
    caller.require(&[Role::Vendor, Role::Admin])?;
    Ok(match caller.0.role {
        Role::Admin => AlertReader::Admin,
        _ => AlertReader::Vendor(caller.id()),
    })
}

/// The alerts on the caller's grants (a vendor), or every alert (an admin), newest first.
#[utoipa::path(
    get, path = "/alerts", tag = "alerts", operation_id = "list_alerts",
    security(("bearer" = [])),
    params(ListAlerts),
    responses(
        (status = 200, description = "the alerts", body = Vec<AlertView>),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "neither a vendor nor an admin", body = ErrorBody),
        (status = 400, description = "`malformed_query`: a `limit` outside 1 to 1000", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListAlerts>,
) -> ApiResult<Json<Vec<AlertView>>> {
    let reader = reader(&caller)?;
    let limit = list_limit(query.limit)?;
    let alerts = state.store.alerts(reader, limit).await?;
    Ok(Json(alerts.iter().map(alert_view).collect()))
}

/// Acknowledge an alert on one of the caller's grants (an admin: any alert). Again keeps the
/// first time.
#[utoipa::path(
    post, path = "/alerts/{id}/ack", tag = "alerts", operation_id = "acknowledge_alert",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the alert's id")),
    responses(
        (status = 200, description = "the alert, acknowledged", body = AlertView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "neither a vendor nor an admin", body = ErrorBody),
        (status = 404, description = "no such alert on the caller's grants", body = ErrorBody),
    ),
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<AlertView>> {
    let reader = reader(&caller)?;
    let id: AlertId = parse_id(&id, "alert")?;
    let alert = state.store.acknowledge_alert(reader, id).await?;
    Ok(Json(alert_view(&alert)))
}

/// The caller's grant `id`, else 404.
async fn own_grant(app: &App, caller: &VendorCaller, id: &str) -> ApiResult<Grant> {
    let id: GrantId = parse_id(id, "grant")?;
    let grant = app.store.grant(id).await?;
    if grant.vendor != caller.0.id() {
        return Err(ApiError::not_found("grant"));
    }
    Ok(grant)
}

/// The view of a grant's settings; `secret` only when this answer generated it.
fn settings_view(grant: GrantId, s: &AlertSettings, secret: Option<String>) -> AlertSettingsView {
    AlertSettingsView {
        grant: grant.to_string(),
        enabled: s.enabled,
        window_s: s.window_s,
        history_windows: s.history_windows,
        thresholds: s.thresholds,
        suspend: s.suspend,
        webhook: s.webhook.as_ref().map(|w| w.url.clone()),
        webhook_secret: secret,
    }
}

/// The sealing context of a grant's webhook secret: a sealed secret copied to another grant
/// does not open.
pub fn secret_context(grant: GrantId) -> String {
    format!("alert-webhook:{grant}")
}

/// Checks `body` and makes the settings it gives (keys left out take their defaults), with
/// the secret generated for its webhook, if one was (to show once).
///
/// # Errors
///
/// 422 `invalid` for a value out of range, a threshold that makes no test, a webhook the host
/// rules refuse or a secret of the wrong length.
pub fn settings_of(
    app: &App,
    grant: GrantId,
    body: &AlertSettingsBody,
) -> ApiResult<(AlertSettings, Option<String>)> {
    let invalid = |message: String| ApiError::unprocessable("invalid", message);
    let defaults = AlertSettings::default();
    let window_s = body.window_s.unwrap_or(defaults.window_s);
    if !(1..=MAX_WINDOW_S).contains(&window_s) {
        return Err(invalid(format!(
            "alerts.window_s must be 1 to {MAX_WINDOW_S}"
        )));
    }
    let history_windows = body.history_windows.unwrap_or(defaults.history_windows);
    if !(1..=MAX_HISTORY_WINDOWS).contains(&history_windows) {
        return Err(invalid(format!(
            "alerts.history_windows must be 1 to {MAX_HISTORY_WINDOWS}"
        )));
    }
    let thresholds = body.thresholds.unwrap_or(defaults.thresholds);
    thresholds
        .check()
        .map_err(|e| invalid(format!("alerts.thresholds: {e}")))?;
    let (webhook, shown) = match &body.webhook {
        None => {
            if body.webhook_secret.is_some() {
                return Err(invalid("alerts.webhook_secret needs alerts.webhook".into()));
            }
            (None, None)
        }
        Some(url) => {
            check_webhook_url(&app.config.model_hosts, url).map_err(|e| invalid(e.to_string()))?;
            let (secret, shown) = match &body.webhook_secret {
                Some(secret) if (16..=256).contains(&secret.chars().count()) => {
                    (secret.clone(), None)
                }
                Some(_) => {
                    return Err(invalid(
                        "alerts.webhook_secret must be 16 to 256 characters".into(),
                    ));
                }
                None => {
                    let secret = generated_secret()?;
                    (secret.clone(), Some(secret))
                }
            };
            let sealed = app
                .sealer
                .seal(&secret_context(grant), secret.as_bytes())
                .map_err(|e| ApiError::internal("sealing a webhook secret", &e))?;
            (
                Some(Webhook {
                    url: url.clone(),
                    sealed_secret: sealed,
                }),
                shown,
            )
        }
    };
    Ok((
        AlertSettings {
            enabled: body.enabled.unwrap_or(defaults.enabled),
            window_s,
            history_windows,
            thresholds,
            suspend: body.suspend.unwrap_or(defaults.suspend),
            webhook,
        },
        shown,
    ))
}

/// A new webhook secret: `whsec_` and 64 hex digits from the OS's random source.
fn generated_secret() -> ApiResult<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("a webhook secret", &"the random source failed"))?;
    Ok(format!("whsec_{}", hex::encode(bytes)))
}

/// A grant's alert settings (the defaults if the vendor never set any).
#[utoipa::path(
    get, path = "/grants/{id}/alerts", tag = "alerts", operation_id = "get_alert_settings",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the grant's id")),
    responses(
        (status = 200, description = "the settings; never the webhook's secret", body = AlertSettingsView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
        (status = 404, description = "no such grant of the caller's", body = ErrorBody),
    ),
)]
pub async fn get_settings(
    State(state): State<AppState>,
    caller: VendorCaller,
    PathParam(id): PathParam,
) -> ApiResult<Json<AlertSettingsView>> {
    let grant = own_grant(&state, &caller, &id).await?;
    let settings = state.store.alert_settings(grant.id).await?;
    Ok(Json(settings_view(grant.id, &settings, None)))
}

/// Replace a grant's alert settings: keys left out take their defaults; a webhook without a
/// secret gets a generated one, shown in this answer only.
#[utoipa::path(
    put, path = "/grants/{id}/alerts", tag = "alerts", operation_id = "put_alert_settings",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the grant's id")),
    request_body = AlertSettingsBody,
    responses(
        (status = 200, description = "the settings (with a generated secret, once)", body = AlertSettingsView),
        (status = 400, description = "`malformed_json`", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
        (status = 404, description = "no such grant of the caller's", body = ErrorBody),
        (status = 415, description = "not `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_body`; `invalid` (a value out of range, a webhook the host rules refuse)", body = ErrorBody),
    ),
)]
pub async fn put_settings(
    State(state): State<AppState>,
    caller: VendorCaller,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<AlertSettingsBody>,
) -> ApiResult<Json<AlertSettingsView>> {
    let grant = own_grant(&state, &caller, &id).await?;
    let (settings, shown) = settings_of(&state, grant.id, &body)?;
    state.store.set_alert_settings(grant.id, &settings).await?;
    Ok(Json(settings_view(grant.id, &settings, shown)))
}

/// Reinstate a grant a usage alert suspended: it covers new jobs again (its ended jobs stay
/// ended), and no alert of the current window suspends it again.
#[utoipa::path(
    post, path = "/grants/{id}/reinstate", tag = "alerts", operation_id = "reinstate_grant",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the grant's id")),
    responses(
        (status = 200, description = "the grant, active again", body = GrantView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
        (status = 404, description = "no such grant of the caller's", body = ErrorBody),
        (status = 422, description = "`invalid`: the grant is not suspended", body = ErrorBody),
    ),
)]
pub async fn reinstate(
    State(state): State<AppState>,
    caller: VendorCaller,
    PathParam(id): PathParam,
) -> ApiResult<Json<GrantView>> {
    let grant = own_grant(&state, &caller, &id).await?;
    let grant = state.store.reinstate_grant(caller.0.id(), grant.id).await?;
    let now = state.store.now().await?;
    Ok(Json(grant_view(grant, now)?))
}
