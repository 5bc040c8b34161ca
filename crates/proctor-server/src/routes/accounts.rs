//! Accounts and tokens: the admin's routes, and `GET /v1/me` for everyone.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use proctor_api::ErrorBody;
use proctor_api::accounts::{
    AccountView, CreatedToken, NewAccount, NewToken, Role as RoleView, Tier as TierView, TokenView,
};
use proctor_core::text;
use proctor_store::{Account, AccountId, Role, Tier, TokenId, TokenInfo};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AdminCaller, Caller, JsonBody, PathParam, parse_id};
use crate::state::AppState;

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_account, list_accounts))
        .routes(routes!(get_account))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(me))
}

/// The API's role of a stored one.
pub fn role_view(role: Role) -> RoleView {
    match role {
        Role::Admin => RoleView::Admin,
        Role::Vendor => RoleView::Vendor,
        Role::Evaluator => RoleView::Evaluator,
        Role::Regulator => RoleView::Regulator,
    }
}

/// The API's tier of a stored one.
pub fn tier_view(tier: Tier) -> TierView {
    match tier {
        Tier::Academic => TierView::Academic,
        Tier::Auditor => TierView::Auditor,
        Tier::Regulator => TierView::Regulator,
        Tier::Commercial => TierView::Commercial,
    }
}

/// The view of a stored account.
pub fn account_view(a: Account) -> AccountView {
    AccountView {
        id: a.id.to_string(),
        name: a.name,
        role: role_view(a.role),
        tier: a.tier.map(tier_view),
        created_at: a.created_at.to_rfc3339(),
    }
}

/// The view of a stored token's metadata (never its secret, which only `create_token`'s
/// answer holds).
pub fn token_view(t: TokenInfo) -> TokenView {
    TokenView {
        id: t.id.to_string(),
        account: t.account.to_string(),
        label: t.label,
        created_at: t.created_at.to_rfc3339(),
        revoked_at: t.revoked_at.map(|r| r.to_rfc3339()),
    }
}

/// [`NewAccount`] as read: its role and tier as text, so an unknown one is refused as
/// `invalid_role` / `invalid_tier` rather than as a body of the wrong shape. The described
/// body is [`NewAccount`]; the test below keeps the two the same.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccountBody {
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

/// Create an account (no token: `POST /v1/accounts/{id}/tokens` makes its first).
#[utoipa::path(
    post, path = "/accounts", tag = "accounts", operation_id = "create_account",
    security(("bearer" = [])),
    request_body = NewAccount,
    responses(
        (status = 201, description = "the account", body = AccountView),
        (status = 400, description = "`malformed_json`: a body that is not JSON", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 409, description = "`conflict`: the name is taken", body = ErrorBody),
        (status = 413, description = "a body over the JSON limit", body = ErrorBody),
        (status = 415, description = "not `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_body` (a missing or unknown field), `invalid_name`, `invalid_role`, or `invalid_tier` (an evaluator without a tier, or another role with one)", body = ErrorBody),
    ),
)]
pub async fn create_account(
    State(state): State<AppState>,
    _admin: AdminCaller,
    JsonBody(body): JsonBody<NewAccountBody>,
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
    Ok((StatusCode::CREATED, Json(account_view(account))))
}

/// Every account, oldest first.
#[utoipa::path(
    get, path = "/accounts", tag = "accounts", operation_id = "list_accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the accounts", body = Vec<AccountView>),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
    ),
)]
pub async fn list_accounts(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<AccountView>>> {
    caller.require(&[Role::Admin])?;
    let accounts = state.store.list_accounts().await?;
    Ok(Json(accounts.into_iter().map(account_view).collect()))
}

/// One account.
#[utoipa::path(
    get, path = "/accounts/{id}", tag = "accounts", operation_id = "get_account",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the account's id")),
    responses(
        (status = 200, description = "the account", body = AccountView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
    ),
)]
pub async fn get_account(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<AccountView>> {
    caller.require(&[Role::Admin])?;
    let id: AccountId = parse_id(&id, "account")?;
    Ok(Json(account_view(state.store.account(id).await?)))
}

/// The caller's own account, whatever its role.
#[utoipa::path(
    get, path = "/me", tag = "accounts", operation_id = "get_me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the caller's account", body = AccountView),
        (status = 401, description = "no valid token", body = ErrorBody),
    ),
)]
pub async fn me(caller: Caller) -> Json<AccountView> {
    Json(account_view(caller.0))
}

/// Make a token for an account; its secret is in this answer only.
#[utoipa::path(
    post, path = "/accounts/{id}/tokens", tag = "accounts", operation_id = "create_token",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the account's id")),
    request_body = NewToken,
    responses(
        (status = 201, description = "the token with its secret", body = CreatedToken),
        (status = 400, description = "`malformed_json`: a body that is not JSON", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
        (status = 413, description = "a body over the JSON limit", body = ErrorBody),
        (status = 415, description = "not `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_body` (an unknown field, a label not a string) or `invalid_label` (over 128 characters, or a control, invisible format or line separator character)", body = ErrorBody),
    ),
)]
pub async fn create_token(
    State(state): State<AppState>,
    _admin: AdminCaller,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let id: AccountId = parse_id(&id, "account")?;
    if body.label.chars().count() > MAX_NAME {
        return Err(ApiError::unprocessable(
            "invalid_label",
            format!("a label is at most {MAX_NAME} printable characters"),
        ));
    }
    // A label may be empty (none given), but not hold what would hide or disguise text.
    text::displayable(&body.label)
        .map_err(|e| ApiError::unprocessable("invalid_label", format!("`label` {e}")))?;
    // The account must exist; the store would say so too, but as a foreign-key error.
    state.store.account(id).await?;
    let token = state.store.create_token(id, &body.label).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: token_view(token.info),
            token: token.secret,
        }),
    ))
}

/// An account's tokens (never their secrets), revoked ones included.
#[utoipa::path(
    get, path = "/accounts/{id}/tokens", tag = "accounts", operation_id = "list_tokens",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the account's id")),
    responses(
        (status = 200, description = "the tokens", body = Vec<TokenView>),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
    ),
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<Vec<TokenView>>> {
    caller.require(&[Role::Admin])?;
    let id: AccountId = parse_id(&id, "account")?;
    state.store.account(id).await?;
    let tokens = state.store.tokens_of(id).await?;
    Ok(Json(tokens.into_iter().map(token_view).collect()))
}

/// Revoke a token: the next request that presents it is answered 401. Revoking a revoked
/// token changes nothing.
#[utoipa::path(
    delete, path = "/tokens/{id}", tag = "accounts", operation_id = "revoke_token",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the token's id")),
    responses(
        (status = 204, description = "revoked; no body"),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such token", body = ErrorBody),
    ),
)]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client sends as [`NewAccount`] is what the handler reads.
    #[test]
    fn the_described_body_is_the_one_read() {
        for body in [
            NewAccount {
                name: "acme".into(),
                role: RoleView::Vendor,
                tier: None,
            },
            NewAccount {
                name: "lab".into(),
                role: RoleView::Evaluator,
                tier: Some(TierView::Academic),
            },
        ] {
            let json = serde_json::to_value(&body).expect("serializes");
            let read: NewAccountBody = serde_json::from_value(json).expect("reads");
            assert_eq!(read.name, body.name);
            assert_eq!(read.role, body.role.as_str());
            assert_eq!(read.tier.as_deref(), body.tier.map(TierView::as_str));
            assert_eq!(
                read.role.parse::<Role>().ok().map(role_view),
                Some(body.role)
            );
        }
    }
}
