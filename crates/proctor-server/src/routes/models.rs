//! Models: a vendor registers and reads its own, and sets its model-wide ledger caps (epsilon
//! and leakage bits across all evaluators); others see a public view without the
//! configuration or the ledger. No route ever returns a credential, sealed or not.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use proctor_api::ErrorBody;
use proctor_api::models::{
    MaxTokensField as ApiMaxTokensField, ModelAdapter, ModelConfig as ApiModelConfig,
    ModelLedgerView, ModelView, RegisterModel, SetModelLedger,
};
use proctor_core::text;
use proctor_models::{AdapterKind, MaxTokensField, ModelConfig};
use proctor_store::{Model, ModelCaps, ModelId, ModelLedger, NewModel, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, JsonBody, PathParam, VendorCaller, parse_id};
use crate::sealing::model_context;
use crate::state::AppState;

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(get))
        .routes(routes!(set_ledger))
}

/// The ledger's view.
fn ledger_view(l: ModelLedger) -> ModelLedgerView {
    ModelLedgerView {
        model: l.model.to_string(),
        epsilon_total: l.caps.epsilon_total,
        bits_total: l.caps.bits_total,
        epsilon_spent: l.epsilon_spent,
        bits_spent: l.bits_spent,
    }
}

/// The owner's view has the configuration and the ledger; others' have neither.
fn owned_view(model: Model, ledger: ModelLedger) -> ApiResult<ModelView> {
    let mut view = model_view(model, true)?;
    view.ledger = Some(ledger_view(ledger));
    Ok(view)
}

/// A model's view; with its configuration for its owner.
fn model_view(model: Model, for_owner: bool) -> ApiResult<ModelView> {
    let adapter = match model.adapter.as_str() {
        "openai" => ModelAdapter::Openai,
        "anthropic" => ModelAdapter::Anthropic,
        "builtin" => ModelAdapter::Builtin,
        other => return Err(ApiError::internal("a stored model's adapter", &other)),
    };
    // A stored configuration that no longer parses is left out rather than failing the read.
    let config = for_owner
        .then(|| serde_json::from_str::<ModelConfig>(&model.config).ok())
        .flatten()
        .map(config_view);
    Ok(ModelView {
        id: model.id.to_string(),
        owner: model.owner.to_string(),
        name: model.name,
        version: model.version,
        adapter,
        config,
        has_credential: for_owner.then_some(model.has_credential),
        created_at: model.created_at.to_rfc3339(),
        grant: None,
        ledger: None,
    })
}

/// The API's form of a configuration (every field named, so a new one cannot be forgotten);
/// the CLI sends a TOML configuration in this form too.
pub fn config_view(c: ModelConfig) -> ApiModelConfig {
    let ModelConfig {
        adapter,
        model,
        base_url,
        api_key_env,
        version,
        max_concurrency,
        requests_per_minute,
        timeout_s,
        max_attempts,
        max_tokens_field,
    } = c;
    ApiModelConfig {
        adapter: match adapter {
            AdapterKind::Openai => ModelAdapter::Openai,
            AdapterKind::Anthropic => ModelAdapter::Anthropic,
            AdapterKind::Builtin => ModelAdapter::Builtin,
        },
        model,
        base_url,
        api_key_env,
        version,
        max_concurrency,
        requests_per_minute,
        timeout_s,
        max_attempts,
        max_tokens_field: max_tokens_field.map(|f| match f {
            MaxTokensField::MaxTokens => ApiMaxTokensField::MaxTokens,
            MaxTokensField::MaxCompletionTokens => ApiMaxTokensField::MaxCompletionTokens,
        }),
    }
}

/// The adapters' configuration of the API's.
fn config_of(c: ApiModelConfig) -> ModelConfig {
    let ApiModelConfig {
        adapter,
        model,
        base_url,
        api_key_env,
        version,
        max_concurrency,
        requests_per_minute,
        timeout_s,
        max_attempts,
        max_tokens_field,
    } = c;
    ModelConfig {
        adapter: match adapter {
            ModelAdapter::Openai => AdapterKind::Openai,
            ModelAdapter::Anthropic => AdapterKind::Anthropic,
            ModelAdapter::Builtin => AdapterKind::Builtin,
        },
        model,
        base_url,
        api_key_env,
        version,
        max_concurrency,
        requests_per_minute,
        timeout_s,
        max_attempts,
        max_tokens_field: max_tokens_field.map(|f| match f {
            ApiMaxTokensField::MaxTokens => MaxTokensField::MaxTokens,
            ApiMaxTokensField::MaxCompletionTokens => MaxTokensField::MaxCompletionTokens,
        }),
    }
}

const MAX_FIELD: usize = 128;
const MAX_CREDENTIAL: usize = 8192;

/// Register a model. Its configuration is validated first; its credential is sealed at once
/// and never shown again. The service never reads its own environment for a vendor, so
/// `config.api_key_env` is refused.
#[utoipa::path(
    post, path = "/models", tag = "models", operation_id = "register_model",
    security(("bearer" = [])),
    request_body = RegisterModel,
    responses(
        (status = 201, description = "registered: the vendor's view", body = ModelView),
        (status = 400, description = "`malformed_json`: a body that is not JSON", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
        (status = 409, description = "`conflict`: the vendor has a model of that name", body = ErrorBody),
        (status = 413, description = "a body over the JSON limit", body = ErrorBody),
        (status = 415, description = "not `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: JSON that is not a registration; `invalid_model`: a name, version, configuration or credential the service refuses (e.g. `config.api_key_env`, or a name holding an invisible format character); `model_host_refused`: a `base_url` the service's host rules refuse (a loopback, link-local, private or other non-public address, a `localhost` name, or plain http to a host the operator did not allow with `--allow-model-hosts`)", body = ErrorBody),
    ),
)]
pub async fn register(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    JsonBody(body): JsonBody<RegisterModel>,
) -> ApiResult<(StatusCode, Json<ModelView>)> {
    for (what, value) in [("name", &body.name), ("version", &body.version)] {
        if value.is_empty() || value.len() > MAX_FIELD {
            return Err(ApiError::unprocessable(
                "invalid_model",
                format!("`{what}` must be 1 to {MAX_FIELD} printable characters"),
            ));
        }
        text::displayable_name(value)
            .map_err(|e| ApiError::unprocessable("invalid_model", format!("`{what}` {e}")))?;
    }
    let mut config = config_of(body.config);
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
    // Checked again when a job builds the model, and on every address its name resolves to.
    config
        .check_hosts(&state.config.model_hosts)
        .map_err(|e| ApiError::unprocessable("model_host_refused", e.to_string()))?;
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
    // Its fingerprint is measured in the background; the model is usable meanwhile (its jobs
    // state `not_checked`), and stays registered if enrollment fails.
    if let Err(err) = crate::identity::enroll(&state.0, &model).await {
        tracing::warn!(%err, model = %model.id, "enrolling the model for identity checks failed");
    }
    let ledger = state.store.model_ledger(model.id).await?;
    Ok((StatusCode::CREATED, Json(owned_view(model, ledger)?)))
}

/// A vendor lists its own models; an evaluator lists the models an active grant gives it
/// (each with that grant, the one its jobs would run under).
#[utoipa::path(
    get, path = "/models", tag = "models", operation_id = "list_models",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the vendor's models in full, or the evaluator's covered models with their grants", body = Vec<ModelView>),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "neither a vendor nor an evaluator", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ModelView>>> {
    caller.require(&[Role::Vendor, Role::Evaluator])?;
    if caller.0.role == Role::Vendor {
        let models = state.store.models_of(caller.id()).await?;
        let mut ledgers = state.store.model_ledgers_of(caller.id()).await?;
        let views = models
            .into_iter()
            .map(|m| {
                let ledger = ledgers
                    .remove(&m.id)
                    .unwrap_or_else(|| ModelLedger::empty(m.id));
                owned_view(m, ledger)
            })
            .collect::<ApiResult<Vec<_>>>()?;
        return Ok(Json(views));
    }
    let grants = state.store.covering_grants(caller.id()).await?;
    let mut views = Vec::with_capacity(grants.len());
    for grant in grants {
        let mut view = model_view(state.store.model(grant.model).await?, false)?;
        view.grant = Some(grant.id.to_string());
        views.push(view);
    }
    Ok(Json(views))
}

/// A vendor reads its own model in full; an evaluator, regulator or admin reads the public
/// view of any model (to name it in a job, or to check an attestation); another vendor's model
/// is not found for a vendor.
#[utoipa::path(
    get, path = "/models/{id}", tag = "models", operation_id = "get_model",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the model's id")),
    responses(
        (status = 200, description = "the model: in full for its vendor, the public view for others", body = ModelView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such model, or another vendor's", body = ErrorBody),
    ),
)]
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
        return Ok(Json(owned_view(model, ledger)?));
    }
    Ok(Json(model_view(model, false)?))
}

/// The vendor sets its model's caps across all evaluators: a job that would take the model's
/// epsilon or bits past one is refused at submission (429 `budget_exhausted`). Another
/// vendor's model is not found; other roles are forbidden.
#[utoipa::path(
    put, path = "/models/{id}/ledger", tag = "models", operation_id = "set_model_ledger",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the model's id")),
    request_body = SetModelLedger,
    responses(
        (status = 200, description = "the model's ledger with its new caps", body = ModelLedgerView),
        (status = 400, description = "`malformed_json`: a body that is not JSON", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
        (status = 404, description = "no such model of the vendor's", body = ErrorBody),
        (status = 413, description = "a body over the JSON limit", body = ErrorBody),
        (status = 415, description = "not `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: JSON that is not a pair of caps; `invalid`: a cap that is negative, not finite or too large", body = ErrorBody),
    ),
)]
pub async fn set_ledger(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<SetModelLedger>,
) -> ApiResult<Json<ModelLedgerView>> {
    let id: ModelId = parse_id(&id, "model")?;
    // The store keeps the caps in millionths and thousandths in 64 bits; the described
    // maxima sit under that, bits at 9e15, where every integer is still exact as a float.
    for (key, value, max) in [
        ("epsilon_total", body.epsilon_total, 9.2e12),
        ("bits_total", body.bits_total, 9e15),
    ] {
        if value.is_some_and(|v| !(v.is_finite() && (0.0..=max).contains(&v))) {
            return Err(ApiError::unprocessable(
                "invalid",
                format!("`{key}` must be a number from 0 to {max:e}, or null"),
            ));
        }
    }
    let caps = ModelCaps {
        epsilon_total: body.epsilon_total,
        bits_total: body.bits_total,
    };
    let ledger = state.store.set_model_caps(caller.id(), id, caps).await?;
    Ok(Json(ledger_view(ledger)))
}
