//! Accounts and tokens: the admin's routes, and `GET /v1/me` for everyone.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use proctor_store::{Account, AccountId, Role, Tier, TokenId, TokenInfo};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::{AdminCaller, Caller, JsonBody, PathParam, parse_id};
use crate::state::AppState;

/// An account as the API shows it.
#[derive(Debug, Serialize)]
pub struct AccountView {
    id: String,
    name: String,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<&'static str>,
    created_at: String,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> AccountView {
        AccountView {
            id: a.id.to_string(),
            name: a.name,
            role: a.role.as_str(),
            tier: a.tier.map(Tier::as_str),
            created_at: a.created_at.to_rfc3339(),
        }
    }
}

/// A token's metadata (never its secret, which only `create_token`'s response holds).
#[derive(Debug, Serialize)]
pub struct TokenView {
    id: String,
    account: String,
    label: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
}

impl From<TokenInfo> for TokenView {
    fn from(t: TokenInfo) -> TokenView {
        TokenView {
            id: t.id.to_string(),
            account: t.account.to_string(),
            label: t.label,
            created_at: t.created_at.to_rfc3339(),
            revoked_at: t.revoked_at.map(|r| r.to_rfc3339()),
        }
    }
}

/// `POST /v1/accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    name: String,
    role: String,
    #[serde(default)]
    tier: Option<String>,
}

const MAX_NAME: usize = 128;

/// Account names: short, printable, no surprises in logs or URLs.
fn check_name(name: &str, what: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "invalid_name",
            format!("{what} must be 1 to {MAX_NAME} characters of A-Z a-z 0-9 - _ ."),
        ))
    }
}

pub async fn create_account(
    State(state): State<AppState>,
    _admin: AdminCaller,
    JsonBody(body): JsonBody<NewAccount>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    check_name(&body.name, "an account name")?;
    let role: Role = body.role.parse().map_err(|_| {
        ApiError::unprocessable(
            "invalid_role",
            "role must be admin, vendor, evaluator or regulator",
        )
    })?;
    let tier = body
        .tier
        .as_deref()
        .map(str::parse::<Tier>)
        .transpose()
        .map_err(|_| {
            ApiError::unprocessable(
                "invalid_tier",
                "tier must be academic, auditor, regulator or commercial",
            )
        })?;
    if (role == Role::Evaluator) != tier.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_tier",
            "an evaluator needs a tier, and only evaluators have one",
        ));
    }
    let account = state.store.create_account(&body.name, role, tier).await?;
    Ok((StatusCode::CREATED, Json(account.into())))
}

pub async fn list_accounts(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<AccountView>>> {
    caller.require(&[Role::Admin])?;
    let accounts = state.store.list_accounts().await?;
    Ok(Json(accounts.into_iter().map(Into::into).collect()))
}

pub async fn get_account(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<AccountView>> {
    caller.require(&[Role::Admin])?;
    let id: AccountId = parse_id(&id, "account")?;
    Ok(Json(state.store.account(id).await?.into()))
}

pub async fn me(caller: Caller) -> Json<AccountView> {
    Json(caller.0.into())
}

/// `POST /v1/accounts/{id}/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    #[serde(default)]
    label: String,
}

/// The one response that holds a token's secret.
#[derive(Serialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    info: TokenView,
    token: String,
}

pub async fn create_token(
    State(state): State<AppState>,
    _admin: AdminCaller,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<NewTokenBody>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let id: AccountId = parse_id(&id, "account")?;
    if body.label.len() > MAX_NAME || body.label.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_label",
            format!("a label is at most {MAX_NAME} printable characters"),
        ));
    }
    // The account must exist; the store would say so too, but as a foreign-key error.
    state.store.account(id).await?;
    let token = state.store.create_token(id, &body.label).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: token.info.into(),
            token: token.secret,
        }),
    ))
}

pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<Vec<TokenView>>> {
    caller.require(&[Role::Admin])?;
    let id: AccountId = parse_id(&id, "account")?;
    state.store.account(id).await?;
    let tokens = state.store.tokens_of(id).await?;
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<StatusCode> {
    caller.require(&[Role::Admin])?;
    let id: TokenId = parse_id(&id, "token")?;
    state.store.revoke_token(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
