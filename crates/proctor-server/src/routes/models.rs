//! Models: a vendor registers and reads its own, and sets its model-wide ledger caps (epsilon
//! and leakage bits across all evaluators); others see a public view without the
//! configuration or the ledger. No route ever returns a credential, sealed or not.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use proctor_models::{AdapterKind, ModelConfig};
use proctor_store::{Model, ModelCaps, ModelId, ModelLedger, NewModel, Role};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, JsonBody, PathParam, VendorCaller, parse_id};
use crate::sealing::model_context;
use crate::state::AppState;

/// `POST /v1/models`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterModel {
    name: String,
    version: String,
    config: ModelConfig,
    /// The endpoint's API key; sealed at once, never shown again.
    #[serde(default)]
    credential: Option<String>,
}

/// A model as the API shows it. `config` only for its vendor.
#[derive(Debug, Serialize)]
pub struct ModelView {
    id: String,
    owner: String,
    name: String,
    version: String,
    adapter: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    has_credential: Option<bool>,
    created_at: String,
    /// For an evaluator's listing: the grant that gives it access.
    #[serde(skip_serializing_if = "Option::is_none")]
    grant: Option<String>,
    /// For its vendor: the model-wide caps and what all evaluators spent.
    #[serde(skip_serializing_if = "Option::is_none")]
    ledger: Option<LedgerView>,
}

/// A model's ledger as its vendor sees it: the caps across all evaluators (`null`: none) and
/// what their accepted jobs spent.
#[derive(Debug, Serialize)]
pub struct LedgerView {
    model: String,
    epsilon_total: Option<f64>,
    bits_total: Option<f64>,
    epsilon_spent: f64,
    bits_spent: f64,
}

impl From<ModelLedger> for LedgerView {
    fn from(l: ModelLedger) -> LedgerView {
        LedgerView {
            model: l.model.to_string(),
            epsilon_total: l.caps.epsilon_total,
            bits_total: l.caps.bits_total,
            epsilon_spent: l.epsilon_spent,
            bits_spent: l.bits_spent,
        }
    }
}

/// `PUT /v1/models/{id}/ledger`: the caps, each a number or `null` (no cap); a key left out
/// is `null`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLedger {
    #[serde(default)]
    epsilon_total: Option<f64>,
    #[serde(default)]
    bits_total: Option<f64>,
}

impl ModelView {
    /// The owner's view has the configuration and the ledger; others' have neither.
    fn owned(model: Model, ledger: ModelLedger) -> ModelView {
        let mut view = ModelView::new(model, true);
        view.ledger = Some(ledger.into());
        view
    }

    fn new(model: Model, for_owner: bool) -> ModelView {
        ModelView {
            id: model.id.to_string(),
            owner: model.owner.to_string(),
            name: model.name,
            version: model.version,
            adapter: model.adapter,
            config: for_owner
                .then(|| serde_json::from_str(&model.config).ok())
                .flatten(),
            has_credential: for_owner.then_some(model.has_credential),
            created_at: model.created_at.to_rfc3339(),
            grant: None,
            ledger: None,
        }
    }
}

const MAX_FIELD: usize = 128;
const MAX_CREDENTIAL: usize = 8192;

pub async fn register(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    JsonBody(body): JsonBody<RegisterModel>,
) -> ApiResult<(StatusCode, Json<ModelView>)> {
    for (what, value) in [("name", &body.name), ("version", &body.version)] {
        if value.is_empty() || value.len() > MAX_FIELD || value.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(
                "invalid_model",
                format!("`{what}` must be 1 to {MAX_FIELD} printable characters"),
            ));
        }
    }
    let mut config = body.config;
    // The server's environment is not the vendor's: reading a variable the vendor names
    // would send the server's own secrets to the vendor's endpoint.
    if config.api_key_env.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_model",
            "`config.api_key_env` is not accepted by the service; send the key as `credential`",
        ));
    }
    if config.adapter != AdapterKind::Builtin && config.version.is_none() {
        // The registered version is the one attested.
        config.version = Some(body.version.clone());
    }
    config
        .validate()
        .map_err(|e| ApiError::unprocessable("invalid_model", e.to_string()))?;
    let credential = match body.credential {
        Some(c) if c.is_empty() || c.len() > MAX_CREDENTIAL => {
            return Err(ApiError::unprocessable(
                "invalid_model",
                format!("`credential` must be 1 to {MAX_CREDENTIAL} bytes"),
            ));
        }
        Some(c) => Some(
            state
                .sealer
                .seal(&model_context(&caller.id(), &body.name), c.as_bytes())
                .map_err(|e| ApiError::internal("sealing a credential", &e))?,
        ),
        None => None,
    };
    let config_json =
        serde_json::to_string(&config).map_err(|e| ApiError::internal("model config", &e))?;
    let model = state
        .store
        .register_model(&NewModel {
            owner: caller.id(),
            name: body.name,
            version: body.version,
            adapter: config.adapter.as_str().to_owned(),
            config: config_json,
            credential,
        })
        .await?;
    let ledger = state.store.model_ledger(model.id).await?;
    Ok((StatusCode::CREATED, Json(ModelView::owned(model, ledger))))
}

/// A vendor lists its own models; an evaluator lists the models an active grant gives it
/// (each with that grant, the one its jobs would run under).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ModelView>>> {
    caller.require(&[Role::Vendor, Role::Evaluator])?;
    if caller.0.role == Role::Vendor {
        let models = state.store.models_of(caller.id()).await?;
        let mut ledgers = state.store.model_ledgers_of(caller.id()).await?;
        return Ok(Json(
            models
                .into_iter()
                .map(|m| {
                    let ledger = ledgers
                        .remove(&m.id)
                        .unwrap_or_else(|| ModelLedger::empty(m.id));
                    ModelView::owned(m, ledger)
                })
                .collect(),
        ));
    }
    let grants = state.store.covering_grants(caller.id()).await?;
    let mut views = Vec::with_capacity(grants.len());
    for grant in grants {
        let mut view = ModelView::new(state.store.model(grant.model).await?, false);
        view.grant = Some(grant.id.to_string());
        views.push(view);
    }
    Ok(Json(views))
}

/// A vendor reads its own model in full; an evaluator, regulator or admin reads the public
/// view of any model (to name it in a job, or to check an attestation); another vendor's model
/// is not found for a vendor.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<ModelView>> {
    let id: ModelId = parse_id(&id, "model")?;
    let model = state.store.model(id).await?;
    let owner = model.owner == caller.id();
    if caller.0.role == Role::Vendor && !owner {
        return Err(ApiError::not_found("model"));
    }
    if owner {
        let ledger = state.store.model_ledger(model.id).await?;
        return Ok(Json(ModelView::owned(model, ledger)));
    }
    Ok(Json(ModelView::new(model, false)))
}

/// The vendor sets its model's caps across all evaluators: a job that would take the model's
/// epsilon or bits past one is refused at submission (429 `budget_exhausted`). Another
/// vendor's model is not found; other roles are forbidden.
pub async fn set_ledger(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<SetLedger>,
) -> ApiResult<Json<LedgerView>> {
    let id: ModelId = parse_id(&id, "model")?;
    for (key, value) in [
        ("epsilon_total", body.epsilon_total),
        ("bits_total", body.bits_total),
    ] {
        if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
            return Err(ApiError::unprocessable(
                "invalid",
                format!("`{key}` must be a finite number, 0 or more, or null"),
            ));
        }
    }
    let caps = ModelCaps {
        epsilon_total: body.epsilon_total,
        bits_total: body.bits_total,
    };
    let ledger = state.store.set_model_caps(caller.id(), id, caps).await?;
    Ok(Json(ledger.into()))
}
