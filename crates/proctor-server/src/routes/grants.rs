//! Grants: a vendor grants an evaluator tier or account access to one of its models, under a
//! shipped policy tightened by overrides, with budgets, an approval mode and an expiry; it
//! lists, reads and revokes its grants. An evaluator reads the grants that name it and their
//! remaining budgets.
//!
//! Under DP (the grant's policy has `dp_epsilon`) a grant must carry `epsilon_total`, and its
//! evaluator's budget view shows only figures that do not depend on model outputs: limits,
//! the worst cases its jobs held at acceptance, and the ledger (epsilon, bits). Exact query and
//! token counts move with each settled query (by a guest-chosen prompt size and the model's
//! real token counts), so they stay with the vendor (its budget view, `/v1/usage`).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use proctor_api::ErrorBody;
use proctor_api::grants::{
    ApprovalMode as ApprovalView, BitsBudget, BudgetFigures, BudgetView, CreateGrant,
    EpsilonBudget, ExactBudget, GrantBudgets, GrantPolicyView, GrantStatus, GrantView,
    Grantee as GranteeBody, RemainingView, RevokedView, WorstCaseBudget,
};
use proctor_core::{Policy, PolicyError, PolicyOverrides};
use proctor_store::{
    Account, AccountId, ApprovalMode, BudgetUse, Budgets, Grant, GrantId, Grantee, ModelId,
    NewGrant, Remaining, Role, Tier, Timestamp,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ending::revoke_grant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, JsonBody, PathParam, VendorCaller, parse_id};
use crate::routes::alerts::settings_of;
use crate::state::{App, AppState};

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(revoke))
        .routes(routes!(budget))
}

/// The store's budgets as the API spells them.
fn budgets_view(b: Budgets) -> GrantBudgets {
    GrantBudgets {
        jobs_per_day: b.jobs_per_day,
        queries_per_day: b.queries_per_day,
        tokens_per_day: b.tokens_per_day,
        queries_total: b.queries_total,
        tokens_total: b.tokens_total,
        epsilon_total: b.epsilon_total,
        bits_per_job: b.bits_per_job,
        bits_total: b.bits_total,
        cpu_seconds_per_job: b.cpu_seconds_per_job,
    }
}

/// The API's budgets as the store keeps them.
fn budgets_of(b: GrantBudgets) -> Budgets {
    Budgets {
        jobs_per_day: b.jobs_per_day,
        queries_per_day: b.queries_per_day,
        tokens_per_day: b.tokens_per_day,
        queries_total: b.queries_total,
        tokens_total: b.tokens_total,
        epsilon_total: b.epsilon_total,
        bits_per_job: b.bits_per_job,
        bits_total: b.bits_total,
        cpu_seconds_per_job: b.cpu_seconds_per_job,
    }
}

/// The view of `grant` at `now`.
///
/// # Errors
///
/// A 500 when the stored policy or overrides no longer make a policy.
pub fn grant_view(grant: Grant, now: Timestamp) -> ApiResult<GrantView> {
    // Checked when the grant was made: a stored one that no longer makes a policy is the
    // service's fault.
    let overrides = PolicyOverrides::from_json(&grant.policy_overrides)
        .map_err(|e| ApiError::internal("a stored grant's overrides", &e))?;
    let policy = grant_policy(&grant.policy_name, &grant.policy_overrides)
        .map_err(|e| ApiError::internal("a stored grant's policy", &e))?;
    let status = match grant.inactive_reason(now) {
        None => GrantStatus::Active,
        Some(proctor_store::Refusal::Revoked) => GrantStatus::Revoked,
        Some(proctor_store::Refusal::Suspended) => GrantStatus::Suspended,
        Some(_) => GrantStatus::Expired,
    };
    Ok(GrantView {
        id: grant.id.to_string(),
        vendor: grant.vendor.to_string(),
        model: grant.model.to_string(),
        grantee: match grant.grantee {
            Grantee::Tier(t) => GranteeBody::Tier(t.as_str().to_owned()),
            Grantee::Account(a) => GranteeBody::Account(a.to_string()),
        },
        policy: GrantPolicyView {
            name: policy.name.clone(),
            sha256: policy.digest().to_hex(),
            effective: policy,
        },
        overrides,
        budgets: budgets_view(grant.budgets),
        approval: match grant.approval {
            ApprovalMode::Auto => ApprovalView::Auto,
            ApprovalMode::Manual => ApprovalView::Manual,
        },
        expires_at: grant.expires_at.map(|t| t.to_rfc3339()),
        revoked_at: grant.revoked_at.map(|t| t.to_rfc3339()),
        created_at: grant.created_at.to_rfc3339(),
        status,
    })
}

/// The effective policy of a grant: the shipped policy `name` tightened by `overrides` (JSON
/// text). Jobs under the grant run under exactly this policy, and their attestations carry its
/// digest.
///
/// # Errors
///
/// 422 `unknown_policy`, `policy_loosened`, or `invalid_policy` (a bad key or value).
pub fn grant_policy(name: &str, overrides: &str) -> ApiResult<Policy> {
    let base = Policy::named(name).map_err(policy_error)?;
    let overrides = PolicyOverrides::from_json(overrides).map_err(policy_error)?;
    base.tightened(&overrides).map_err(policy_error)
}

fn policy_error(err: PolicyError) -> ApiError {
    let code = match &err {
        PolicyError::UnknownName(_) => "unknown_policy",
        PolicyError::Loosens { .. } => "policy_loosened",
        PolicyError::Syntax(_) | PolicyError::OutOfRange { .. } => "invalid_policy",
    };
    let message = match &err {
        // The name is the client's; keep it short in the message.
        PolicyError::UnknownName(name) => format!(
            "no policy named `{}`: shipped policies are `standard` and `strict`",
            name.chars().take(64).collect::<String>()
        ),
        other => other.to_string(),
    };
    ApiError::unprocessable(code, message)
}

/// Milliseconds since the epoch now, by this server's clock.
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn parse_expiry(text: &str) -> ApiResult<Timestamp> {
    let at = humantime::parse_rfc3339_weak(text).map_err(|_| {
        ApiError::unprocessable(
            "invalid",
            "expires_at must be an RFC 3339 time, e.g. 2027-01-01T00:00:00Z",
        )
    })?;
    let millis = at
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| ApiError::unprocessable("invalid", "expires_at is out of range"))?;
    if millis <= now_millis() {
        return Err(ApiError::unprocessable(
            "invalid",
            "expires_at is in the past",
        ));
    }
    Ok(Timestamp(millis))
}

fn parse_grantee(body: &GranteeBody) -> ApiResult<Grantee> {
    match body {
        GranteeBody::Tier(tier) => {
            let tier: Tier = tier.parse().map_err(|_| {
                ApiError::unprocessable(
                    "invalid",
                    "grantee tier must be academic, auditor or regulator",
                )
            })?;
            if tier == Tier::Commercial {
                return Err(ApiError::unprocessable(
                    "invalid",
                    "commercial evaluators are granted access by account only",
                ));
            }
            Ok(Grantee::Tier(tier))
        }
        GranteeBody::Account(id) => Ok(Grantee::Account(parse_id(id, "account")?)),
    }
}

/// Grant an evaluator tier or account access to one of the caller's models, under a shipped
/// policy tightened by overrides, with budgets, an approval mode and an expiry.
#[utoipa::path(
    post, path = "/grants", tag = "grants", operation_id = "create_grant",
    security(("bearer" = [])),
    request_body = CreateGrant,
    responses(
        (status = 201, description = "the grant", body = GrantView),
        (status = 400, description = "`malformed_json`: a body that is not JSON", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
        (status = 404, description = "no such model of the caller's, or no such grantee account", body = ErrorBody),
        (status = 413, description = "a body over the JSON limit", body = ErrorBody),
        (status = 415, description = "not `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_body` (a body that does not fit, e.g. a negative budget); `unknown_policy`, `policy_loosened` or `invalid_policy` (the policy or its overrides); `policy_beyond_engine`; `noise_scale_too_large` (a DP policy whose noise would pass the safe bound); `epsilon_total_required` (a DP policy without `budgets.epsilon_total`); `invalid` (a commercial or unknown tier, a grantee that is not an evaluator, an approval other than `auto`/`manual`, an expiry not RFC 3339 or in the past, a budget beyond 2^63, an epsilon or bits limit negative or not finite, or `alerts` out of range, with a webhook the host rules refuse or without its secret)", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    JsonBody(body): JsonBody<CreateGrant>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let model: ModelId = parse_id(&body.model, "model")?;
    let grantee = parse_grantee(&body.grantee)?;
    let policy_name = body.policy.as_deref().unwrap_or("standard");
    let overrides = match &body.overrides {
        None => PolicyOverrides::default(),
        Some(value) => serde_json::from_value::<PolicyOverrides>(value.clone()).map_err(|e| {
            ApiError::unprocessable("invalid_policy", format!("invalid overrides: {e}"))
        })?,
    };
    let overrides = overrides.to_json();
    // Refused now, with the key named, rather than when a job is submitted.
    let policy = grant_policy(policy_name, &overrides)?;
    state.sandbox.check_policy(&policy)?;
    // A DP policy whose noise on counts or usage would be beyond the safe bound (an epsilon
    // of 1e-300, say) could run no job: refused here, naming the quantity. The scales of the
    // metrics' sums are checked when a job names its eval.
    proctor_core::release::check_scales(&policy, &[])
        .map_err(|e| ApiError::unprocessable("noise_scale_too_large", e.to_string()))?;
    let approval = match body.approval.as_deref() {
        None => ApprovalMode::Auto,
        Some(text) => text.parse().map_err(|_| {
            ApiError::unprocessable("invalid", "approval must be `auto` or `manual`")
        })?,
    };
    let expires_at = body.expires_at.as_deref().map(parse_expiry).transpose()?;
    let budgets = budgets_of(body.budgets);
    check_budgets(&budgets, &policy)?;
    if let Some(alerts) = &body.alerts {
        // Checked before the grant is made; sealed under its id once it is.
        if alerts.webhook.is_some() && alerts.webhook_secret.is_none() {
            return Err(ApiError::unprocessable(
                "invalid",
                "alerts.webhook needs alerts.webhook_secret when a grant is made; \
                 PUT /v1/grants/{id}/alerts generates one and shows it once",
            ));
        }
        settings_of(&state, GrantId::new(), alerts)?;
    }
    let grant = state
        .store
        .create_grant(&NewGrant {
            vendor: caller.id(),
            model,
            grantee,
            policy_name: policy_name.to_owned(),
            policy_overrides: overrides,
            budgets,
            approval,
            expires_at,
        })
        .await?;
    if let Some(alerts) = &body.alerts {
        let (settings, _) = settings_of(&state, grant.id, alerts)?;
        state.store.set_alert_settings(grant.id, &settings).await?;
    }
    let now = state.store.now().await?;
    Ok((StatusCode::CREATED, Json(grant_view(grant, now)?)))
}

/// Refuses budgets the ledger cannot keep: a negative or non-finite epsilon or bits limit, and
/// a DP policy without `epsilon_total` (the ledger is mandatory under DP: without a total,
/// repeated jobs would average the noise away).
fn check_budgets(budgets: &Budgets, policy: &Policy) -> ApiResult<()> {
    for (key, value) in [
        ("epsilon_total", budgets.epsilon_total),
        ("bits_per_job", budgets.bits_per_job),
        ("bits_total", budgets.bits_total),
    ] {
        if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
            return Err(ApiError::unprocessable(
                "invalid",
                format!("budgets.{key} must be a finite number, 0 or more"),
            ));
        }
    }
    if budgets.cpu_seconds_per_job == Some(0) {
        return Err(ApiError::unprocessable(
            "invalid",
            "budgets.cpu_seconds_per_job must be 1 or more".to_owned(),
        ));
    }
    if let Some(epsilon) = policy.release.dp_epsilon
        && budgets.epsilon_total.is_none()
    {
        return Err(ApiError::unprocessable(
            "epsilon_total_required",
            format!(
                "the policy `{}` releases under differential privacy (dp_epsilon {epsilon} per \
                 job): set budgets.epsilon_total, the most epsilon one evaluator may spend on \
                 this model across all its grants",
                policy.name
            ),
        ));
    }
    Ok(())
}

/// Whether `grant` names the evaluator `caller` (by account or tier).
fn names(grant: &Grant, caller: &Account) -> bool {
    match grant.grantee {
        Grantee::Account(id) => id == caller.id,
        Grantee::Tier(tier) => caller.tier == Some(tier) && tier != Tier::Commercial,
    }
}

/// A grant the caller may read: its vendor's, or one naming the evaluator; else 404.
async fn visible_grant(app: &App, caller: &Caller, id: &str) -> ApiResult<Grant> {
    caller.require(&[Role::Vendor, Role::Evaluator])?;
    let id: GrantId = parse_id(id, "grant")?;
    let grant = app.store.grant(id).await?;
    let visible = match caller.0.role {
        Role::Vendor => grant.vendor == caller.id(),
        _ => names(&grant, &caller.0),
    };
    if !visible {
        return Err(ApiError::not_found("grant"));
    }
    Ok(grant)
}

/// The vendor's grants, or the grants that name the evaluator (by account or tier).
#[utoipa::path(
    get, path = "/grants", tag = "grants", operation_id = "list_grants",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the grants", body = Vec<GrantView>),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "neither a vendor nor an evaluator", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<GrantView>>> {
    caller.require(&[Role::Vendor, Role::Evaluator])?;
    let grants = match caller.0.role {
        Role::Vendor => state.store.grants_of_vendor(caller.id()).await?,
        _ => state.store.grants_for_evaluator(caller.id()).await?,
    };
    let now = state.store.now().await?;
    let views = grants
        .into_iter()
        .map(|g| grant_view(g, now))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(views))
}

/// One grant: the vendor's own, or one that names the evaluator.
#[utoipa::path(
    get, path = "/grants/{id}", tag = "grants", operation_id = "get_grant",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the grant's id")),
    responses(
        (status = 200, description = "the grant", body = GrantView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "neither a vendor nor an evaluator", body = ErrorBody),
        (status = 404, description = "no such grant of the vendor's, or naming the evaluator", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<GrantView>> {
    let grant = visible_grant(&state, &caller, &id).await?;
    let now = state.store.now().await?;
    Ok(Json(grant_view(grant, now)?))
}

/// Revoke a grant: new jobs under it are refused, its queued jobs end `revoked` (with their
/// result entries) and its running ones stop within seconds. Revoking again keeps the first
/// time and ends whatever is left.
#[utoipa::path(
    post, path = "/grants/{id}/revoke", tag = "grants", operation_id = "revoke_grant",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the grant's id")),
    responses(
        (status = 200, description = "revoked", body = RevokedView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not a vendor", body = ErrorBody),
        (status = 404, description = "no such grant of the caller's", body = ErrorBody),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    VendorCaller(caller): VendorCaller,
    PathParam(id): PathParam,
) -> ApiResult<Json<RevokedView>> {
    let id: GrantId = parse_id(&id, "grant")?;
    if state.store.grant(id).await?.vendor != caller.id() {
        return Err(ApiError::not_found("grant"));
    }
    let revocation = revoke_grant(&state, caller.id(), id).await?;
    let now = state.store.now().await?;
    Ok(Json(RevokedView {
        grant: grant_view(revocation.grant, now)?,
        ended: revocation
            .ended
            .iter()
            .map(|(job, _)| job.id.to_string())
            .collect(),
        stopping: revocation
            .running
            .iter()
            .map(|job| job.id.to_string())
            .collect(),
    }))
}

/// A budget's exact figures.
fn exact(b: BudgetUse) -> ExactBudget {
    ExactBudget {
        limit: b.limit,
        used: b.used,
        reserved: b.reserved,
        remaining: b.remaining(),
    }
}

/// A budget's limit and the worst cases held at acceptance only.
fn worst_case(limit: Option<u64>, held: u64) -> WorstCaseBudget {
    WorstCaseBudget {
        limit,
        worst_case: held,
        remaining: limit.map(|l| l.saturating_sub(held)),
    }
}

/// `total - spent`, never below 0, rounded to the ledger's resolution (`per` units per one), so
/// 3 - 1 reads as 2, not 1.9999999999999998.
fn left(total: Option<f64>, spent: f64, per: f64) -> Option<f64> {
    total.map(|t| ((t - spent).max(0.0) * per).round() / per)
}

/// The view of a grant's budgets: `figures` decides whether the query and token budgets are
/// exact; `ledger` is the evaluator whose ledger on the model `epsilon` and `bits` show, with
/// what it spent (none: the grant's own spend).
fn remaining_view(
    grant: &Grant,
    r: Remaining,
    figures: BudgetFigures,
    ledger: Option<(AccountId, f64, f64)>,
) -> RemainingView {
    let day = Timestamp(r.day.saturating_mul(86_400_000)).to_rfc3339();
    let b = &grant.budgets;
    let w = r.worst_case;
    let view = |used: BudgetUse, held: u64| match figures {
        BudgetFigures::Exact => BudgetView::Exact(exact(used)),
        BudgetFigures::WorstCase => BudgetView::WorstCase(worst_case(used.limit, held)),
    };
    let (evaluator, epsilon_spent, bits_spent) = match ledger {
        Some((evaluator, epsilon, bits)) => (Some(evaluator.to_string()), epsilon, bits),
        None => (None, r.epsilon_spent, r.bits_spent),
    };
    let per_evaluator = evaluator.is_some();
    RemainingView {
        grant: r.grant.to_string(),
        day: day[..10].to_owned(),
        figures,
        evaluator,
        // Jobs accepted are the evaluator's own submissions, not model outputs: exact.
        jobs_today: exact(r.jobs_today),
        queries_today: view(r.queries_today, w.queries_today),
        tokens_today: view(r.tokens_today, w.tokens_today),
        queries_total: view(r.queries_total, w.queries_total),
        tokens_total: view(r.tokens_total, w.tokens_total),
        epsilon: EpsilonBudget {
            total: b.epsilon_total,
            spent: epsilon_spent,
            remaining: left(
                b.epsilon_total.filter(|_| per_evaluator),
                epsilon_spent,
                1e6,
            ),
        },
        bits: BitsBudget {
            per_job: b.bits_per_job,
            total: b.bits_total,
            spent: bits_spent,
            remaining: left(b.bits_total.filter(|_| per_evaluator), bits_spent, 1e3),
        },
    }
}

/// A grant's budgets now. The evaluator reads its budget under a grant that names it: limits,
/// its ledger on the model, and, under DP, worst cases only. The vendor reads exact figures,
/// with the named evaluator's ledger for an account grant and the grant's own spend for a tier
/// grant.
#[utoipa::path(
    get, path = "/grants/{id}/budget", tag = "grants", operation_id = "get_grant_budget",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the grant's id")),
    responses(
        (status = 200, description = "the budgets", body = RemainingView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "neither a vendor nor an evaluator", body = ErrorBody),
        (status = 404, description = "no such grant of the vendor's, or naming the evaluator", body = ErrorBody),
    ),
)]
pub async fn budget(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> ApiResult<Json<RemainingView>> {
    let grant = visible_grant(&state, &caller, &id).await?;
    let private = grant_policy(&grant.policy_name, &grant.policy_overrides)
        .map_err(|e| ApiError::internal("a stored grant's policy", &e))?
        .release
        .is_private();
    let (figures, evaluator) = match (caller.0.role, grant.grantee) {
        (Role::Vendor, Grantee::Account(account)) => (BudgetFigures::Exact, Some(account)),
        (Role::Vendor, Grantee::Tier(_)) => (BudgetFigures::Exact, None),
        (_, _) if private => (BudgetFigures::WorstCase, Some(caller.id())),
        (_, _) => (BudgetFigures::Exact, Some(caller.id())),
    };
    let r = state.store.remaining_budget(grant.id).await?;
    let ledger = match evaluator {
        Some(evaluator) => {
            let l = state.store.ledger(evaluator, grant.model).await?;
            Some((evaluator, l.epsilon_spent, l.bits_spent))
        }
        None => None,
    };
    Ok(Json(remaining_view(&grant, r, figures, ledger)))
}
