//! Models: a vendor registers and reads its own; others see a public view without the
//! configuration. No route ever returns a credential, sealed or not.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use proctor_models::{AdapterKind, ModelConfig};
use proctor_store::{Model, ModelId, NewModel, Role};
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
}

impl ModelView {
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
    Ok((StatusCode::CREATED, Json(ModelView::new(model, true))))
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
        return Ok(Json(
            models
                .into_iter()
                .map(|m| ModelView::new(m, true))
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
    Ok(Json(ModelView::new(model, owner)))
}
